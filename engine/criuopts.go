package engine

import (
	"errors"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"

	migrate "github.com/crhook/crhook/engine/migrate/plan" // the plan only: engine/migrate links net/url
)

// ErrCriuOpts is wrapped by every CriuOpts error: options that the
// wrapped runtime cannot take, or that would be unsafe together.
var ErrCriuOpts = errors.New("invalid migration options for the runtime")

// CriuOpts are the migration options crhook adds to the wrapped
// runtime's checkpoint or restore, as a typed value turned into flags
// in one place (Args), never by patching strings: like runc's own
// CriuOpts (libcontainer/criu_opts_linux.go), which these flags feed.
type CriuOpts struct {
	// PreDump: checkpoint --pre-dump, a pre-copy round; the container
	// keeps running.
	PreDump bool
	// ParentPath: checkpoint --parent-path, the previous round's images,
	// relative to the image path as runc wants it.
	ParentPath string
	// LazyPages: checkpoint --lazy-pages (serve the memory from a page
	// server after the dump) or restore --lazy-pages (fault it in from a
	// `criu lazy-pages` daemon).
	LazyPages bool
	// LeaveRunning: checkpoint --leave-running. A streamed dump uses it
	// on a container the shim paused first: CRIU puts back the freezer
	// state it found, so the dumped tasks stay frozen, the copy a
	// rollback restores (measured on cgroup v1, runc 1.1.5, CRIU 4.2.1).
	LeaveRunning bool
	// PageServer: checkpoint --page-server ADDR:PORT.
	PageServer *migrate.PageServer
	// StatusFd: checkpoint --status-fd; runc writes one byte to it when
	// the lazy page server is ready. 0 means none; 1 and 2 are refused.
	StatusFd int
	// TLS is the material for CRIU's --tls options. runc has no flags for
	// them: they go into the CRIU config file crhook generates (ConfLines)
	// and onto the lazy-pages daemon's command line (LazyPagesDaemonArgs).
	TLS *migrate.TLSPaths
}

// RuntimeKind is the wrapped runtime, by what it supports.
type RuntimeKind string

// The runtimes crhook wraps.
const (
	Runc RuntimeKind = "runc"
	// Crun checkpoints with --pre-dump, --parent-path and --leave-running
	// but has no --lazy-pages, --page-server or --status-fd; crun 1.28
	// hands CRIU the org.criu.config file, whose page-server, address and
	// port lines CRIU applies after crun's own options (ConfLinesFor).
	Crun RuntimeKind = "crun"
)

// KindOf names the runtime a path runs, from its file name.
func KindOf(runtimePath string) RuntimeKind {
	if strings.HasPrefix(filepath.Base(runtimePath), "crun") {
		return Crun
	}
	return Runc
}

// ownedFlags are the flags CriuOpts sets; a command line that already has
// one was not written by podman, and is refused rather than doubled.
// --leave-running is not among them: podman may pass --leave-running=false,
// and a step that adds it refuses a caller's --leave-running itself.
var ownedFlags = []string{"--pre-dump", "--parent-path", "--lazy-pages", "--page-server", "--status-fd"}

// validate checks o for subcommand cmd ("checkpoint" or "restore") of a
// runtime of kind k.
func (o CriuOpts) validate(k RuntimeKind, cmd string) error {
	var errs []string
	switch cmd {
	case "checkpoint":
		if o.LazyPages && o.PreDump {
			errs = append(errs, "--lazy-pages and --pre-dump exclude each other: a pre-dump leaves the container running")
		}
		if o.LazyPages && o.PageServer == nil {
			errs = append(errs, "--lazy-pages without --page-server would serve the pages only on this host")
		}
		if o.StatusFd != 0 && !o.LazyPages {
			errs = append(errs, "--status-fd only reports a lazy page server")
		}
		if o.StatusFd != 0 && o.StatusFd < 3 {
			errs = append(errs, fmt.Sprintf("--status-fd %d is a standard stream", o.StatusFd))
		}
		if o.LazyPages && o.StatusFd == 0 {
			errs = append(errs, "--lazy-pages needs --status-fd: without it nothing says when the page server is ready")
		}
		if o.LeaveRunning && o.LazyPages {
			errs = append(errs, "--leave-running and --lazy-pages exclude each other: the lazy page server ends the tasks once every page is served")
		}
		if o.ParentPath != "" && (filepath.IsAbs(o.ParentPath) || strings.Contains(o.ParentPath, "\x00")) {
			errs = append(errs, fmt.Sprintf("--parent-path %q must be relative to the image path", o.ParentPath))
		}
	case "restore":
		if o.PreDump || o.ParentPath != "" || o.PageServer != nil || o.StatusFd != 0 || o.LeaveRunning {
			errs = append(errs, "restore takes only --lazy-pages of these options")
		}
	default:
		errs = append(errs, fmt.Sprintf("%q is neither checkpoint nor restore", cmd))
	}
	if k == Crun && (o.LazyPages || o.StatusFd != 0) {
		errs = append(errs, "crun has no --lazy-pages or --status-fd: use runc as runtime.path for a lazy migration")
	}
	if o.PageServer != nil {
		errs = append(errs, pageServerErrs(*o.PageServer)...)
		// Fail closed: CRIU's page server takes anyone who connects.
		if o.TLS == nil {
			errs = append(errs, "a page server needs TLS material: CRIU's page server serves whoever connects")
		}
	}
	if o.TLS != nil {
		errs = append(errs, tlsErrs(*o.TLS)...)
	}
	if len(errs) > 0 {
		return fmt.Errorf("%w: %s %s: %s", ErrCriuOpts, k, cmd, strings.Join(errs, "; "))
	}
	return nil
}

func pageServerErrs(ps migrate.PageServer) []string {
	var errs []string
	if ps.Address == "" || strings.HasPrefix(ps.Address, "-") || strings.ContainsAny(ps.Address, " \t\n/\x00") {
		errs = append(errs, fmt.Sprintf("page server address %q is not a host name or IP address", ps.Address))
	}
	if ps.Port < 1 || ps.Port > 65535 {
		errs = append(errs, fmt.Sprintf("page server port %d is not in 1..65535", ps.Port))
	}
	return errs
}

// tlsErrs: each path absolute and clean, and one that a CRIU config file
// line carries unchanged. CRIU's parse_statement cuts a value at '#'
// even inside quotes, and checks a quoted value for spaces from an
// offset taken from the line, so a quoted path with a space is refused
// or not depending on where the space falls. Hence no blanks, '#',
// quotes, backslashes or control characters at all.
func tlsErrs(tls migrate.TLSPaths) []string {
	var errs []string
	for _, f := range []struct{ name, path string }{{"CA certificate", tls.CACert}, {"certificate", tls.Cert}, {"key", tls.Key}} {
		if !filepath.IsAbs(f.path) || filepath.Clean(f.path) != f.path || strings.ContainsFunc(f.path, func(r rune) bool {
			return r <= ' ' || r == 0x7f || r == '#' || r == '"' || r == '\\'
		}) {
			errs = append(errs, fmt.Sprintf("TLS %s %q must be a clean absolute path without blanks, '#', quotes or backslashes", f.name, f.path))
		}
	}
	return errs
}

// Flags are o's runtime flags for cmd, in a fixed order.
func (o CriuOpts) Flags(k RuntimeKind, cmd string) ([]string, error) {
	if err := o.validate(k, cmd); err != nil {
		return nil, err
	}
	var f []string
	if o.PreDump {
		f = append(f, "--pre-dump")
	}
	if o.ParentPath != "" {
		f = append(f, "--parent-path", o.ParentPath)
	}
	if o.LazyPages {
		f = append(f, "--lazy-pages")
	}
	if o.LeaveRunning {
		f = append(f, "--leave-running")
	}
	if o.PageServer != nil && k != Crun { // crun: in the CRIU config (ConfLinesFor)
		f = append(f, "--page-server", o.PageServer.String())
	}
	if o.StatusFd != 0 {
		f = append(f, "--status-fd", strconv.Itoa(o.StatusFd))
	}
	return f, nil
}

// Args returns the subcommand's arguments rest (as podman passed them,
// the container ID last) with o's flags inserted before the ID. An
// argument list that already holds one of these flags is refused: podman
// never passes them, so someone else did, and doubling them would leave
// which one runc takes to chance.
func (o CriuOpts) Args(k RuntimeKind, cmd string, rest []string) ([]string, error) {
	if len(rest) == 0 || strings.HasPrefix(rest[len(rest)-1], "-") {
		return nil, fmt.Errorf("%w: %s %s: no container ID at the end of %q", ErrCriuOpts, k, cmd, rest)
	}
	for _, a := range rest[:len(rest)-1] {
		for _, own := range ownedFlags {
			if a == own || strings.HasPrefix(a, own+"=") || a == "-"+own[2:] || strings.HasPrefix(a, "-"+own[2:]+"=") {
				return nil, fmt.Errorf("%w: %s %s already has %s; crhook sets it for a migration and will not double it", ErrCriuOpts, k, cmd, a)
			}
		}
	}
	flags, err := o.Flags(k, cmd)
	if err != nil {
		return nil, err
	}
	out := make([]string, 0, len(rest)+len(flags))
	out = append(out, rest[:len(rest)-1]...)
	out = append(out, flags...)
	return append(out, rest[len(rest)-1]), nil
}

// ConfLines are the CRIU config file lines for o's TLS material, to add
// to the generated criu.conf (runc passes no TLS options itself). Values
// are written bare: tlsErrs refused everything CRIU's parser could read
// otherwise (see there).
func (o CriuOpts) ConfLines() ([]string, error) {
	if o.TLS == nil {
		return nil, nil
	}
	if errs := tlsErrs(*o.TLS); len(errs) > 0 {
		return nil, fmt.Errorf("%w: criu.conf: %s", ErrCriuOpts, strings.Join(errs, "; "))
	}
	return []string{"tls", "tls-cacert " + o.TLS.CACert, "tls-cert " + o.TLS.Cert, "tls-key " + o.TLS.Key}, nil
}

// ConfLinesFor are ConfLines, and for crun, which has no --page-server
// flag, the page server's lines too: CRIU applies its RPC config file
// after the runtime's options (verified with crun 1.28 and CRIU 4.2.1:
// the dump goes to the page server). The address needs no quoting:
// pageServerErrs refused blanks and slashes.
func (o CriuOpts) ConfLinesFor(k RuntimeKind) ([]string, error) {
	lines, err := o.ConfLines()
	if err != nil || k != Crun || o.PageServer == nil {
		return lines, err
	}
	if errs := pageServerErrs(*o.PageServer); len(errs) > 0 {
		return nil, fmt.Errorf("%w: criu.conf: %s", ErrCriuOpts, strings.Join(errs, "; "))
	}
	return append(lines, "page-server", "address "+o.PageServer.Address, "port "+strconv.Itoa(o.PageServer.Port)), nil
}

// LazyPagesDaemonArgs is the `criu` command line of the destination's
// lazy-pages daemon: it fetches from the source's page server at ps,
// over TLS, and serves the restore through imagesDir's socket.
func LazyPagesDaemonArgs(ps migrate.PageServer, tls migrate.TLSPaths, imagesDir, logFile string) ([]string, error) {
	errs := append(pageServerErrs(ps), tlsErrs(tls)...)
	if !filepath.IsAbs(imagesDir) {
		errs = append(errs, fmt.Sprintf("images dir %q is not absolute", imagesDir))
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("%w: criu lazy-pages: %s", ErrCriuOpts, strings.Join(errs, "; "))
	}
	return []string{"lazy-pages", "--page-server", "--address", ps.Address, "--port", strconv.Itoa(ps.Port),
		"--tls", "--tls-cacert", tls.CACert, "--tls-cert", tls.Cert, "--tls-key", tls.Key,
		"-D", imagesDir, "-o", logFile}, nil
}

// PageServerArgs is the `criu` command line of the destination's page
// server for a streamed dump: it listens on ps (CRIU honours --address
// for a page server, unlike a lazy dump's), accepts only a client with
// this migration's certificate, writes the pages into imagesDir and
// writes one byte to fd 3 once it listens.
func PageServerArgs(ps migrate.PageServer, tls migrate.TLSPaths, imagesDir, logFile string) ([]string, error) {
	errs := append(pageServerErrs(ps), tlsErrs(tls)...)
	if !filepath.IsAbs(imagesDir) {
		errs = append(errs, fmt.Sprintf("images dir %q is not absolute", imagesDir))
	}
	if !filepath.IsAbs(logFile) {
		errs = append(errs, fmt.Sprintf("log file %q is not absolute", logFile))
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("%w: criu page-server: %s", ErrCriuOpts, strings.Join(errs, "; "))
	}
	return []string{"page-server", "--images-dir", imagesDir, "--address", ps.Address, "--port", strconv.Itoa(ps.Port),
		"--tls", "--tls-cacert", tls.CACert, "--tls-cert", tls.Cert, "--tls-key", tls.Key,
		"--status-fd", "3", "-o", logFile, "-v4"}, nil
}

// CriuOptsFromPlan is what the shim adds at cmd ("checkpoint" on the
// source, "restore" on the destination) for plan; statusFd is the pipe
// the shim reads runc's status byte from (checkpoint of a lazy plan).
func CriuOptsFromPlan(p *migrate.Plan, cmd string, statusFd int) (CriuOpts, error) {
	if err := p.Validate(); err != nil {
		return CriuOpts{}, err
	}
	tls := p.TLS
	switch {
	case p.Mode == migrate.ModeLazy && cmd == "checkpoint":
		ps := p.PageServer
		return CriuOpts{LazyPages: true, PageServer: &ps, StatusFd: statusFd, TLS: &tls}, nil
	case p.Mode == migrate.ModeLazy && cmd == "restore":
		return CriuOpts{LazyPages: true, TLS: &tls}, nil
	case p.Mode == migrate.ModeStream && cmd == "checkpoint":
		// Of a container the shim paused: the dumped tasks stay frozen.
		ps := p.PageServer
		return CriuOpts{LeaveRunning: true, PageServer: &ps, TLS: &tls}, nil
	case p.Final == migrate.ModeLazy && cmd == "checkpoint":
		// precopy's lazy final dump: a lazy one on top of the last round.
		ps := p.PageServer
		return CriuOpts{LazyPages: true, PageServer: &ps, StatusFd: statusFd, ParentPath: p.ParentPath, TLS: &tls}, nil
	case p.Final == migrate.ModeLazy && cmd == "restore":
		return CriuOpts{LazyPages: true, TLS: &tls}, nil
	case cmd == "checkpoint": // precopy's final dump: a stream's, on top of the last round
		ps := p.PageServer
		return CriuOpts{LeaveRunning: true, PageServer: &ps, ParentPath: p.ParentPath, TLS: &tls}, nil
	case cmd == "restore":
		return CriuOpts{}, nil
	}
	return CriuOpts{}, fmt.Errorf("%w: plan mode %s has nothing for %q", ErrCriuOpts, p.Mode, cmd)
}
