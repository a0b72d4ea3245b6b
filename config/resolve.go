package config

import (
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/crhook/crhook/config/criuopt"
)

// AnnotationPrefix starts the per-container option annotations:
// io.crhook.criu.tcp-established=true.
const AnnotationPrefix = "io.crhook.criu."

// Origin says where a resolved option came from.
type Origin struct {
	File       string
	Line       int
	Annotation string // the annotation key, for the container layer
}

func (o Origin) String() string {
	if o.Annotation != "" {
		return "annotation " + o.Annotation
	}
	return fmt.Sprintf("%s:%d", o.File, o.Line)
}

// Option is one CRIU option as resolved for a container: the statement
// that won, and where it came from (a file line, or an annotation). Its
// Option field (from criuopt.Statement) is the catalog's description.
// Not to be confused with Settings, crhook's own crhook.toml.
type Option struct {
	criuopt.Statement
	Origin Origin
}

// Text renders the option as one CRIU config line.
func (s Option) Text() string { return criuopt.Format(s.Statement) }

// Dropped is an option that is kept off the container path, and why.
type Dropped struct {
	Option
	Reason string
}

// Layer is one file the resolver consulted.
type Layer struct {
	Path    string
	Present bool
	// NamedBy is the annotation that named this file ("org.criu.config"
	// for the container's own file, layer 4); empty for the fixed layers.
	NamedBy string `json:",omitempty"`
}

// ContainerFileAnnotation is the annotation with which a container names
// its own CRIU config file (runc's and CRI-O's mechanism): layer 4.
const ContainerFileAnnotation = "org.criu.config"

// rpcFileKeeps are the runtime-owned options that runc lets its RPC config
// file (runc.conf, or the file the container names) set: CRIU applies that
// file after runc's RPC options, so they win there. crhook keeps them in
// layers 3 and 4 only, and reads CRIU's log where CRIU then writes it. Every
// other runtime-owned option would break the runtime's contract with its
// caller (images in podman's directory, the pid runc waits for, the tree it
// dumps) and is dropped in every layer.
var rpcFileKeeps = map[string]bool{"log-file": true}

// Resolution is the option set CRIU gets for one container.
type Resolution struct {
	Options []Option
	Dropped []Dropped
	Layers  []Layer
}

// Input is what the resolver needs besides the paths.
type Input struct {
	// Runtime is the wrapped runtime (path or name); it picks the runtime layer.
	Runtime string
	// ContainerFile is the CRIU file the container names with
	// org.criu.config (layer 4, between the runtime's file and the
	// annotations); "" for none. It is vetted like every other layer.
	ContainerFile string
	// Annotations of the container; only io.crhook.criu.* keys are read.
	Annotations map[string]string
	Settings    *Settings
}

// defaultOn lists negatable options that CRIU turns on by itself, so their
// "no-" form must reach CRIU; for every other option "off" is the runtime's
// default and writing "no-X" would override a flag podman passed this time
// (podman container checkpoint --tcp-established).
var defaultOn = map[string]bool{"ghost-fiemap": true}

// CRIUFiles returns the CRIU option files in precedence order, lowest first,
// with the runtime layer resolved to the first file that exists.
func (p Paths) CRIUFiles(runtime string) []string {
	files := []string{p.SystemCRIU()}
	if p.UserCRIU != "" {
		files = append(files, p.UserCRIU)
	}
	cands := p.RuntimeCRIU(runtime)
	chosen := cands[len(cands)-1]
	for _, c := range cands {
		if fileExists(c) {
			chosen = c
			break
		}
	}
	return append(files, chosen)
}

// Resolve merges the layers for one container following CRIU's rules: a
// later layer wins per option, "no-" forms switch an option off, repeatable
// options accumulate, and options the runtime owns are dropped.
func Resolve(p Paths, in Input) (*Resolution, error) {
	if in.Settings == nil {
		return nil, fmt.Errorf("resolve: no settings given")
	}
	r := &Resolution{}
	m := merger{res: r, settings: in.Settings, index: map[string]int{}}
	files := p.CRIUFiles(in.Runtime)
	for i, f := range files {
		// The last fixed file is the runtime's own (layer 3).
		if err := m.addFile(Layer{Path: f}, i == len(files)-1); err != nil {
			return nil, err
		}
	}
	if in.ContainerFile != "" {
		if err := m.addFile(Layer{Path: in.ContainerFile, NamedBy: ContainerFileAnnotation}, true); err != nil {
			return nil, err
		}
	}
	ann, err := annotationOptions(in.Annotations, in.Settings)
	if err != nil {
		return nil, err
	}
	for _, s := range ann {
		m.add(s)
	}
	m.finish()
	return r, nil
}

// ResolveRuntimeFile vets the one file a runtime reads by itself, without
// crhook in between: the org.criu.config of a container created without
// crhook, or runc.conf for one without the annotation. It applies the same
// trust and syntax rules as Resolve and the rules of layers 3 and 4; the
// caller must refuse when anything is Dropped, since nobody can drop it
// from a file the runtime hands to CRIU as it is.
func ResolveRuntimeFile(path string, s *Settings) (*Resolution, error) {
	if s == nil {
		return nil, fmt.Errorf("resolve: no settings given")
	}
	r := &Resolution{}
	m := merger{res: r, settings: s, index: map[string]int{}}
	if err := m.addFile(Layer{Path: path}, true); err != nil {
		return nil, err
	}
	m.finish()
	return r, nil
}

type merger struct {
	res      *Resolution
	settings *Settings
	index    map[string]int // option name -> position in res.Options
}

// addFile reads one layer through readTrusted, the single trust rule, and
// merges its statements; rpcFile marks layers 3 and 4 (see rpcFileKeeps).
func (m *merger) addFile(l Layer, rpcFile bool) error {
	data, found, err := readTrusted(l.Path)
	if err != nil {
		return err
	}
	l.Present = found
	m.res.Layers = append(m.res.Layers, l)
	if !found {
		return nil
	}
	stmts, err := criuopt.Parse(l.Path, data)
	if err != nil {
		return err
	}
	for _, st := range stmts {
		m.addFrom(Option{Statement: st, Origin: Origin{File: l.Path, Line: st.Line}}, rpcFile)
	}
	return nil
}

func (m *merger) add(s Option) { m.addFrom(s, false) }

func (m *merger) addFrom(s Option, rpcFile bool) {
	switch {
	case s.Option.Owned && rpcFile && rpcFileKeeps[s.Option.Name]:
		// Kept: see rpcFileKeeps.
	case s.Option.Owned:
		m.res.Dropped = append(m.res.Dropped, Dropped{s, "set by the runtime for each checkpoint/restore"})
		return
	case m.settings.Denies(s.Option.Name):
		m.res.Dropped = append(m.res.Dropped, Dropped{s, "denied by criu.deny in crhook.toml"})
		return
	}
	if s.Option.Repeatable && s.HasValue {
		m.res.Options = append(m.res.Options, s)
		return
	}
	if i, ok := m.index[s.Option.Name]; ok {
		m.res.Options[i] = s
		return
	}
	m.index[s.Option.Name] = len(m.res.Options)
	m.res.Options = append(m.res.Options, s)
}

// finish removes switched-off options that need not reach CRIU.
func (m *merger) finish() {
	kept := m.res.Options[:0]
	for _, s := range m.res.Options {
		if s.Negated && !defaultOn[s.Option.Name] {
			continue
		}
		kept = append(kept, s)
	}
	m.res.Options = kept
}

// Get returns the resolved option of that name, if any layer set it.
func (r *Resolution) Get(name string) (Option, bool) {
	opt, _, ok := criuopt.Lookup(name)
	if !ok {
		return Option{}, false
	}
	for i := len(r.Options) - 1; i >= 0; i-- {
		if r.Options[i].Option == opt {
			return r.Options[i], true
		}
	}
	return Option{}, false
}

// annotationOptions turns io.crhook.criu.* annotations into options. A
// container's creator chooses them, so anything off the allow-list, or
// unsafe whatever the list says, fails the operation instead of being
// silently ignored: the user asked for it and must learn it did not apply.
func annotationOptions(ann map[string]string, s *Settings) ([]Option, error) {
	keys := make([]string, 0, len(ann))
	for k := range ann {
		if strings.HasPrefix(k, AnnotationPrefix) {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	var out []Option
	for _, key := range keys {
		name, value := strings.TrimPrefix(key, AnnotationPrefix), ann[key]
		shown := criuopt.Printable(key) // the creator chose the key: never echo its bytes raw
		opt, negated, ok := criuopt.Lookup(name)
		if ok && negated {
			// io.crhook.criu.no-X: the no- form is a file's way of saying it;
			// an annotation says it with a value.
			return nil, fmt.Errorf("annotation %s: %w: annotations take no no- form; write %s%s=false",
				shown, criuopt.ErrUnknownOption, AnnotationPrefix, opt.Name)
		}
		if !ok {
			return nil, fmt.Errorf("annotation %s: %w: %s%s", shown, criuopt.ErrUnknownOption, strconv.Quote(name), criuopt.DidYouMean(name))
		}
		if opt.Unsafe || opt.Owned {
			return nil, fmt.Errorf("annotation %s: %w: it names paths, code or runtime state, so containers may never set it; set it in /etc/criu/default.conf instead, or remove the annotation",
				shown, ErrDenied)
		}
		if !s.AllowsAnnotation(opt.Name) {
			// Said so that it also helps a container checkpointed while the
			// list allowed it: it cannot drop the annotation to restore.
			return nil, fmt.Errorf("annotation %s: %w: not on annotations.allow in crhook.toml; remove the annotation, set %s in /etc/criu/default.conf for all containers, or add %q to annotations.allow in /etc/crhook/crhook.toml (needed to restore a container checkpointed with it)",
				shown, ErrDenied, opt.Name, opt.Name)
		}
		// An annotation says a switch with true or false; criuopt.Check
		// decides the rest, as it does for the editor.
		negated, v := false, value
		switch {
		case opt.Arg != criuopt.RequiredArg && value == "true":
			v = "" // a switch, or an optional-value option used as one (ext-unix-sk)
		case opt.Arg == criuopt.NoArg && value == "false" && opt.Negatable:
			negated, v = true, ""
		}
		st, err := criuopt.Check(opt, negated, v)
		switch {
		case err != nil && opt.Arg == criuopt.NoArg:
			return nil, fmt.Errorf("annotation %s=%q: %w: use true%s", shown, value, criuopt.ErrInvalidValue,
				map[bool]string{true: " or false", false: ""}[opt.Negatable])
		case err != nil:
			return nil, fmt.Errorf("annotation %s=%q: %w", shown, value, err)
		}
		set := Option{Statement: st, Origin: Origin{Annotation: key}}
		out = append(out, set)
	}
	return out, nil
}
