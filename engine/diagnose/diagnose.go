package diagnose

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"unicode"
	"unicode/utf8"

	"github.com/crhook/crhook/config/safefile"
)

// Operations, as CRIU names them.
const (
	OpDump    = "dump"
	OpPreDump = "pre-dump"
	OpRestore = "restore"
)

// Fix scopes: how far a fix reaches.
const (
	ScopeAll       = "all containers" // a CRIU config layer: every checkpoint on this host
	ScopeContainer = "one container"  // an io.crhook.criu.* annotation given when the container is created
	ScopeThisTime  = "this time"      // a flag of this one checkpoint or restore
	ScopeHost      = "host"           // something about the machine, not an option
)

// Diagnosis is what went wrong and what to do about it. Its JSON form is the
// stable output of "crhook explain --format json" (keys in
// crhook-explain(1), JSON OUTPUT).
type Diagnosis struct {
	// Rule names the catalog entry that matched, or generic, no-error,
	// empty-log or no-log.
	Rule string `json:"rule"`
	// Operation is dump, pre-dump or restore; empty when unknown.
	Operation string `json:"operation,omitempty"`
	LogPath   string `json:"log"`
	// Line is the 1-based line of the root-cause error; 0 when none.
	Line int `json:"line,omitempty"`
	// Quote holds the root-cause line and a few around it, as CRIU wrote
	// them (control characters escaped, long lines cut); QuoteLines has
	// their line numbers. For generic diagnoses they are the first and the
	// last error lines, so they need not be consecutive.
	Quote      []string `json:"quote"`
	QuoteLines []int    `json:"quote_lines"`
	Meaning    string   `json:"meaning"`
	// Engine is what the fixes are written for.
	Engine Engine `json:"engine"`
	Fixes  []Fix  `json:"fixes"`
	// Config is the CRIU config file that was in effect, when known.
	Config string `json:"config,omitempty"`
	// Generic is true when no catalog entry matched.
	Generic bool `json:"generic"`
}

// Fix is one way out, with how far it reaches.
type Fix struct {
	Scope   string `json:"scope"`
	Command string `json:"command"`
}

// Context is what the caller knows that the log may not say; every field
// is optional.
type Context struct {
	// Operation is dump, pre-dump or restore; empty lets the log decide.
	Operation string
	// ContainerName is the container as its engine's users name it (podman
	// prints 12 characters of the ID); ContainerID is its full ID, which
	// runc's own commands need.
	ContainerName, ContainerID string
	// Engine is what drives the runtime; fixes are written for it. When
	// empty it is podman if ContainerName is set or the log shows CRIU ran
	// for a container runtime, else plain criu.
	Engine Engine
	// ConfigFile is the CRIU config file crhook gave CRIU; when empty, the
	// one the log names is used.
	ConfigFile string
	// RuntimeOutput is what the wrapped runtime wrote to stderr. It is read
	// only when the log shows no CRIU error: runc refuses some operations
	// (pre-dump without memory tracking) before CRIU writes a line.
	RuntimeOutput string
}

// Explain diagnoses the CRIU log at logPath. It always returns a Diagnosis
// fit to print, even when the log is missing or unreadable (then err, which
// wraps ErrUnreadableLog and the cause, says why), so a caller on the failure
// path never stays silent.
//
// Only a regular file is read: the log is opened with O_NONBLOCK and its
// type checked on the descriptor, so a FIFO cannot hang crhook and a
// device (/dev/zero) cannot keep it reading forever.
func Explain(logPath string, ctx Context) (*Diagnosis, error) {
	f, _, err := safefile.OpenRegular(logPath)
	var nr *safefile.NotRegularError
	if errors.As(err, &nr) {
		d := noLog(logPath, ctx)
		d.Meaning = fmt.Sprintf("%q is %s, not a CRIU log; nothing was read from it. CRIU writes dump.log or restore.log in the work directory of the checkpoint or restore.",
			logPath, safefile.Kind(nr.Mode))
		return d, fmt.Errorf("%w: %w", ErrUnreadableLog, err)
	}
	if err != nil {
		d := noLog(logPath, ctx)
		return d, fmt.Errorf("%w: %w", ErrUnreadableLog, err) // err names the path
	}
	defer f.Close()
	return ExplainReader(logPath, f, ctx)
}

// ExplainReader diagnoses a CRIU log read from r; name is the path shown to
// the user. The log is streamed: memory stays bounded whatever its size.
func ExplainReader(name string, r io.Reader, ctx Context) (*Diagnosis, error) {
	s := newScanner(ctx, true)
	err := s.scan(r)
	if err != nil {
		err = fmt.Errorf("%w: read %s: %w", ErrUnreadableLog, name, err)
	}
	d := s.diagnose(name, ctx)
	if (d.Rule == ruleNoError || d.Rule == ruleEmpty) && ctx.RuntimeOutput != "" {
		// The runtime may have said why CRIU never got to log anything.
		rs := newScanner(ctx, false)
		rs.op = s.op
		if rs.scan(strings.NewReader(ctx.RuntimeOutput)) == nil && rs.best() != nil {
			rd := rs.diagnose("runtime stderr", ctx)
			rd.Config = d.Config
			return rd, err
		}
	}
	return d, err
}

// Limits of what a diagnosis keeps.
const (
	maxLine     = 1024 // bytes of one line that are kept; the head carries the message
	ctxBefore   = 2    // lines quoted before the root-cause line
	ctxAfter    = 2    // and after
	genericLast = 4    // last error lines quoted by the generic fallback
	factLines   = 64   // CRIU states version, kernel and config in its first lines
)

// rawLine is a line kept in the ring; it is cleaned only when quoted, so
// the millions of debug lines of a big log cost a copy, not an allocation.
type rawLine struct {
	n int
	b []byte
}

type qline struct {
	n    int
	text string
}

// candidate is the first line an entry matched, with its context.
type candidate struct {
	e      *entry
	n      int
	lines  []qline
	vars   map[string]string
	toRead int // context lines still to come
}

type scanner struct {
	errorsOnly bool // CRIU logs: only error and warning lines are tried
	ctx        Context
	t          *tables
	n          int
	ring       [ctxBefore]rawLine // the lines just read, buffers reused
	cands      []*candidate       // by catalog index
	open       []*candidate
	alsoSeen   []bool

	firstErr *candidate // first error line that is not noise
	lastErrs []qline    // ring of the last errors that are not noise
	anyLine  bool

	op, version, kernel, config string
	rpc                         bool
}

func newScanner(ctx Context, errorsOnly bool) *scanner {
	t := loadTables()
	return &scanner{
		errorsOnly: errorsOnly,
		ctx:        ctx,
		t:          t,
		cands:      make([]*candidate, len(t.catalog)),
		alsoSeen:   make([]bool, len(t.catalog)),
	}
}

var (
	errMark  = []byte("Error (")
	warnMark = []byte("Warn  (")
)

func (s *scanner) scan(r io.Reader) error {
	br := bufio.NewReaderSize(r, 64<<10)
	for {
		line, err := readLine(br)
		if len(line) > 0 || err == nil {
			s.line(line)
		}
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

// readLine returns the next line without its newline, cut to maxLine bytes,
// so that one huge line (or a binary file) cannot blow memory up. The
// returned slice is only valid until the next call.
func readLine(br *bufio.Reader) ([]byte, error) {
	line, err := br.ReadSlice('\n')
	if errors.Is(err, bufio.ErrBufferFull) {
		keep := line[:min(len(line), maxLine)]
		keep = append([]byte(nil), keep...)
		for errors.Is(err, bufio.ErrBufferFull) {
			_, err = br.ReadSlice('\n')
		}
		line = keep
	}
	line = bytes.TrimRight(line, "\r\n")
	if len(line) > maxLine {
		line = line[:maxLine]
	}
	return line, err
}

func (s *scanner) line(b []byte) {
	s.n++
	s.anyLine = true
	if len(s.open) > 0 {
		q := qline{s.n, clean(b)}
		open := s.open[:0]
		for _, c := range s.open {
			c.lines = append(c.lines, q)
			if c.toRead--; c.toRead > 0 {
				open = append(open, c)
			}
		}
		s.open = open
	}
	if s.n <= factLines {
		s.facts(b)
	}
	for i := range s.t.catalog {
		e := &s.t.catalog[i]
		if e.also != nil && !s.alsoSeen[i] && e.alsoMatch(b) {
			s.alsoSeen[i] = true
		}
	}
	isErr := bytes.Contains(b, errMark)
	if isErr || !s.errorsOnly || bytes.Contains(b, warnMark) {
		s.match(b)
	}
	if isErr {
		s.opFromSummary(b)
		if !s.t.noise.Match(b) {
			q := qline{s.n, clean(b)}
			if s.firstErr == nil {
				s.firstErr = s.capture(nil, q, nil)
			}
			if len(s.lastErrs) == genericLast {
				s.lastErrs = append(s.lastErrs[:0], s.lastErrs[1:]...)
			}
			s.lastErrs = append(s.lastErrs, q)
		}
	}
	r := &s.ring[(s.n-1)%ctxBefore]
	r.n, r.b = s.n, append(r.b[:0], b...)
}

func (s *scanner) match(b []byte) {
	str := ""
	for i := range s.t.catalog {
		e := &s.t.catalog[i]
		if s.cands[i] != nil {
			continue
		}
		for _, re := range e.match {
			if !re.Match(b) {
				continue
			}
			if str == "" {
				str = string(b)
			}
			s.cands[i] = s.capture(e, qline{s.n, clean(b)}, groups(re, str))
			break
		}
	}
}

// capture starts a candidate at the current line: the ring supplies the
// lines before it, the following lines are appended as they are read.
func (s *scanner) capture(e *entry, q qline, vars map[string]string) *candidate {
	c := &candidate{e: e, n: s.n, vars: vars, toRead: ctxAfter}
	for k := ctxBefore; k >= 1; k-- {
		if p := s.ring[(s.n-1+ctxBefore-k)%ctxBefore]; p.n == s.n-k && p.n > 0 {
			c.lines = append(c.lines, qline{p.n, clean(p.b)})
		}
	}
	c.lines = append(c.lines, q)
	s.open = append(s.open, c)
	return c
}

func groups(re *regexp.Regexp, s string) map[string]string {
	m := re.FindStringSubmatch(s)
	vars := map[string]string{}
	for i, name := range re.SubexpNames() {
		if name != "" && i < len(m) {
			vars[name] = clean([]byte(m[i]))
		}
	}
	return vars
}

// tables are the compiled catalog and patterns. They are built completely
// by loadTables, once, and never written afterwards: concurrent diagnoses
// share them without locks (TestConcurrentExplain runs that under -race).
type tables struct {
	catalog []entry
	// noise are error lines that never explain a failure: the rlimit one
	// CRIU logs and ignores when it lacks CAP_SYS_RESOURCE, and the
	// summaries CRIU prints after the real error.
	noise                                *regexp.Regexp
	versionRe, kernelRe, rpcRe, parsedRe *regexp.Regexp
}

// loadTables returns the tables, compiled on first use (crhook-runtime reads
// them only after a failure, so pass-through calls never pay for them).
var loadTables = sync.OnceValue(func() *tables {
	t := &tables{
		catalog:   catalogEntries(),
		noise:     regexp.MustCompile(`Can't setup RLIMIT_NOFILE for self|(Dumping|Pre-dumping|Restoring|Lazy pages transfer) FAILED\.|Dump files \(pid: \d+\) failed with`),
		versionRe: regexp.MustCompile(`Version: (\S+)`),
		kernelRe:  regexp.MustCompile(`Running on \S+ Linux (\S+)`),
		rpcRe:     regexp.MustCompile(`Would overwrite RPC settings with values from (\S+)`),
		parsedRe:  regexp.MustCompile(`^(?:\(\d+\.\d+\) )?Parsing config file (\S+)`),
	}
	for i := range t.catalog {
		if e := &t.catalog[i]; e.also != nil {
			lit, _ := e.also.LiteralPrefix()
			e.alsoLit = []byte(lit)
		}
	}
	return t
})

// facts picks what CRIU says about itself at the top of every log.
func (s *scanner) facts(b []byte) {
	if m := s.t.versionRe.FindSubmatch(b); m != nil {
		s.version = clean(m[1])
	}
	if m := s.t.kernelRe.FindSubmatch(b); m != nil {
		s.kernel = "Linux " + clean(m[1])
	}
	if m := s.t.rpcRe.FindSubmatch(b); m != nil {
		// Only RPC (criu swrk, as runc and crun use it) logs this, with
		// the config file the runtime passed: that is the one in effect.
		s.rpc, s.config = true, clean(m[1])
	}
	if m := s.t.parsedRe.FindSubmatch(b); m != nil && !s.rpc {
		// Plain criu: every file it parsed is in effect, later ones win.
		if s.config != "" {
			s.config += ", "
		}
		s.config += clean(m[1])
	}
}

func (s *scanner) opFromSummary(b []byte) {
	switch {
	case bytes.Contains(b, []byte("Pre-dumping FAILED")):
		s.op = OpPreDump
	case bytes.Contains(b, []byte("Dumping FAILED")):
		s.op = OpDump
	case bytes.Contains(b, []byte("Restoring FAILED")):
		s.op = OpRestore
	}
}

// best is the winning candidate: highest priority, then earliest line.
func (s *scanner) best() *candidate {
	op := s.ctx.Operation
	if op == "" {
		op = s.op
	}
	var best *candidate
	for i, c := range s.cands {
		if c == nil {
			continue
		}
		e := &s.t.catalog[i]
		if e.also != nil && !s.alsoSeen[i] {
			continue
		}
		if e.ops != nil && !slices.Contains(e.ops, op) {
			continue
		}
		if best == nil || e.priority > best.e.priority ||
			(e.priority == best.e.priority && c.n < best.n) {
			best = c
		}
	}
	return best
}

func (s *scanner) diagnose(name string, ctx Context) *Diagnosis {
	d := &Diagnosis{LogPath: name, Operation: ctx.Operation, Config: ctx.ConfigFile}
	if d.Operation == "" {
		d.Operation = s.op
	}
	if d.Config == "" {
		d.Config = s.config
	}
	d.Engine = engineFor(ctx, s.rpc, name)
	container := orDefault(ctx.ContainerName, "CONTAINER")
	if d.Engine == EngineRunc {
		container = orDefault(ctx.ContainerID, container)
	}
	vars := map[string]string{
		"container":    container,
		"op":           orDefault(d.Operation, OpDump),
		"podman_op":    "checkpoint",
		"runc_op":      "checkpoint",
		"log":          name,
		"logdir":       filepath.Dir(name),
		"criu_version": orDefault(s.version, "unknown version"),
		"kernel":       orDefault(s.kernel, "this kernel"),
	}
	if d.Operation == OpRestore {
		vars["podman_op"], vars["runc_op"] = "restore", "restore"
	}

	if c := s.best(); c != nil {
		for k, v := range c.vars {
			vars[k] = v
		}
		if c.e.derive != nil {
			c.e.derive(vars)
		}
		d.Rule, d.Line = c.e.id, c.n
		d.Quote, d.QuoteLines = split(c.lines)
		d.Meaning = expand(c.e.meaning, vars)
		d.Fixes = c.e.fixesFor(d.Engine, d.Operation, vars)
		return d
	}

	d.Generic, d.Fixes = true, []Fix{}
	switch {
	case s.firstErr != nil:
		// The first real error (with its context) and the last ones: CRIU's
		// cascade usually starts with the cause and ends with the summary.
		lines := slices.Clone(s.firstErr.lines)
		for _, q := range s.lastErrs {
			if !slices.ContainsFunc(lines, func(l qline) bool { return l.n == q.n }) && q.n > lines[len(lines)-1].n {
				lines = append(lines, q)
			}
		}
		d.Rule, d.Line, d.Meaning = ruleGeneric, s.firstErr.n, meaningGeneric
		d.Quote, d.QuoteLines = split(lines)
	case s.anyLine:
		// No error at all: the last lines show how far CRIU got.
		d.Rule, d.Meaning = ruleNoError, meaningNoError
		d.Quote, d.QuoteLines = split(s.lastLines())
	default:
		d.Rule, d.Meaning = ruleEmpty, meaningEmpty
		d.Quote, d.QuoteLines = []string{}, []int{}
	}
	return d
}

func (s *scanner) lastLines() []qline {
	var out []qline
	for k := ctxBefore - 1; k >= 0; k-- {
		if p := s.ring[(s.n-1+ctxBefore-k)%ctxBefore]; p.n > 0 && p.n > s.n-ctxBefore {
			out = append(out, qline{p.n, clean(p.b)})
		}
	}
	return out
}

// engineFor is the caller's engine or, when it did not say, podman for a
// container (a name, a runtime's RPC log, podman's storage path) and
// plain criu otherwise.
func engineFor(ctx Context, rpc bool, name string) Engine {
	switch {
	case ctx.Engine != "":
		return ctx.Engine
	case ctx.ContainerName != "" || rpc || strings.Contains(name, "/overlay-containers/"):
		return EnginePodman
	default:
		return EngineCRIU
	}
}

func noLog(name string, ctx Context) *Diagnosis {
	return &Diagnosis{
		Rule: ruleNoLog, Operation: ctx.Operation, LogPath: name, Config: ctx.ConfigFile, Engine: engineFor(ctx, false, name),
		Quote: []string{}, QuoteLines: []int{}, Meaning: meaningNoLog, Fixes: []Fix{}, Generic: true,
	}
}

func split(lines []qline) ([]string, []int) {
	q, n := make([]string, len(lines)), make([]int, len(lines))
	for i, l := range lines {
		q[i], n[i] = l.text, l.n
	}
	return q, n
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// clean makes log text safe to print: CRIU logs file and socket names that
// whoever runs in the container chooses, so escape sequences and invalid
// UTF-8 must not reach the user's terminal.
func clean(b []byte) string {
	var sb strings.Builder
	sb.Grow(len(b))
	for len(b) > 0 {
		r, size := utf8.DecodeRune(b)
		switch {
		case r == utf8.RuneError && size <= 1:
			fmt.Fprintf(&sb, `\x%02x`, b[0])
		case r == '\t':
			sb.WriteString("    ")
		case unicode.IsControl(r) || r == '\u2028' || r == '\u2029' || unicode.Is(unicode.Bidi_Control, r):
			fmt.Fprintf(&sb, `\u%04x`, r)
		default:
			sb.WriteRune(r)
		}
		b = b[size:]
	}
	return sb.String()
}
