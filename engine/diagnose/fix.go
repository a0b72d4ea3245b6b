package diagnose

import (
	"fmt"
	"slices"
	"strings"
)

// Engine is what drives the container runtime. It decides how a fix is
// written: the same CRIU option is a podman flag for a podman user, a pod
// annotation on a Kubernetes node, a runc flag for someone running runc by
// hand. engine.DetectEngine says how crhook-runtime tells them apart.
type Engine string

// Engines crhook renders fixes for.
const (
	EnginePodman     Engine = "podman"
	EngineCRIO       Engine = "cri-o"      // CRI-O, under the kubelet
	EngineContainerd Engine = "containerd" // containerd's runc shim (its CRI plugin, or ctr, nerdctl)
	EngineRunc       Engine = "runc"       // the runtime run by hand or by a script
	EngineCRIU       Engine = "criu"       // a plain criu command line, no container runtime
)

// Engines lists every engine, in the order help texts name them.
var Engines = []Engine{EnginePodman, EngineCRIO, EngineContainerd, EngineRunc, EngineCRIU}

// ParseEngine reads an engine name as Engines spells it.
func ParseEngine(s string) (Engine, error) {
	for _, e := range Engines {
		if string(e) == s {
			return e, nil
		}
	}
	names := make([]string, len(Engines))
	for i, e := range Engines {
		names[i] = string(e)
	}
	return "", fmt.Errorf("unknown engine %q: use one of %s", s, strings.Join(names, ", "))
}

// kubernetes reports an engine the kubelet drives: its checkpoint API takes
// no CRIU options, so there is no "this time" fix, and per-container
// options are pod annotations.
func (e Engine) kubernetes() bool { return e == EngineCRIO || e == EngineContainerd }

// optionFix is a fix as data: the CRIU option (and value, "" for a switch)
// that cures a failure. It is written as commands only at the edge, by
// render, for the engine the user drives.
type optionFix struct {
	option, value string
}

// Which options the engines' own checkpoint and restore commands take as a
// flag (podman container checkpoint/restore, runc checkpoint/restore);
// for the others only the config and annotation fixes apply.
var (
	podmanFlags = map[string]bool{"tcp-established": true, "file-locks": true}
	runcFlags   = map[string]bool{"tcp-established": true, "ext-unix-sk": true, "shell-job": true, "file-locks": true}
)

// runcConf is runc's own CRIU config file: runc reads it itself, and
// crhook-runtime reads it as the runtime's layer.
const runcConf = "/etc/criu/runc.conf"

// render writes the option fix for engine, most general scope first.
// vars holds container, op, podman_op and runc_op.
func (f optionFix) render(engine Engine, op string, vars map[string]string) []Fix {
	value := expand(f.value, vars)
	set, flag := f.option, "--"+f.option
	annValue := "true"
	if value != "" {
		set, flag, annValue = f.option+" "+value, flag+" "+value, value
	}
	ann := annotationPrefix + f.option
	// On pre-dump the runtime's flag would not help: the next full dump
	// needs the option too, so only lasting fixes are offered.
	thisTime := op != OpPreDump

	switch {
	case engine == EnginePodman:
		fixes := []Fix{
			{ScopeAll, "crhook config set " + set},
			{ScopeContainer, "podman run --annotation " + ann + "=" + annValue + " ..."},
		}
		if thisTime && podmanFlags[f.option] {
			fixes = append(fixes, Fix{ScopeThisTime, "podman container " + vars["podman_op"] + " " + flag + " " + vars["container"]})
		}
		return fixes
	case engine.kubernetes():
		// The CRI passes a pod annotation to the runtime only when the
		// node allows it: CRI-O's allowed_annotations of the runtime
		// handler, containerd's pod_annotations of the runtime.
		passes := "allowed_annotations"
		if engine == EngineContainerd {
			passes = "pod_annotations"
		}
		return []Fix{
			{ScopeAll, "crhook config set " + set + "   # on every node"},
			{ScopeContainer, fmt.Sprintf("metadata.annotations: {%s: %q}   # pod spec; recreate the pod (the node's %s must pass %s*)",
				ann, annValue, passes, annotationPrefix)},
		}
	case engine == EngineRunc:
		fixes := []Fix{
			{ScopeAll, "crhook config set --file " + runcConf + " " + set},
			{ScopeContainer, fmt.Sprintf(`"annotations": {%q: %q}   # in the bundle's config.json, before runc create`, ann, annValue)},
		}
		if thisTime && runcFlags[f.option] {
			fixes = append(fixes, Fix{ScopeThisTime, "runc " + vars["runc_op"] + " " + flag + " " + vars["container"]})
		}
		return fixes
	default: // plain criu: crhook config set writes default.conf, which criu reads
		return []Fix{
			{ScopeAll, "crhook config set " + set},
			{ScopeThisTime, "criu " + vars["op"] + " " + flag + " ..."},
		}
	}
}

// annotationPrefix is crhook's per-container option annotation.
const annotationPrefix = "io.crhook.criu."

// fixTemplate is a fix that is not a CRIU option (a host command), for
// the engines it names (none: every engine).
type fixTemplate struct {
	Scope, Command string
	engines        []Engine
}

func (t fixTemplate) appliesTo(e Engine) bool {
	return len(t.engines) == 0 || slices.Contains(t.engines, e)
}
