package engine

import (
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/crhook/crhook/config"
	"github.com/crhook/crhook/config/criuopt"
)

// Runtime is crhook-runtime: the OCI runtime podman calls. args are the
// arguments after argv[0]; the result is the process exit status.
func Runtime(args []string, paths config.Paths, stderr io.Writer) int {
	return Shim(args, paths, OSHost(stderr))
}

// Shim is Runtime on a given host. Only create, run, checkpoint, restore
// and delete are looked at, each by a step of its own around the wrapped
// runtime. Everything else is replaced by the runtime with a bare execve,
// so exit codes, signals, stdio, console sockets and preserved fds are the
// runtime's own; that path reads nothing but the settings and argv.
func Shim(args []string, paths config.Paths, host *Host) int {
	inv := parseArgs(args)
	step := stepFor(inv)
	cached := false
	if step == nil {
		cached = passCached(inv, paths, host) // returns only when it did not exec
	}
	files, rerr := readSettings(paths)
	settings, serr := loadSettings(files, rerr, paths, inv, host.Stderr)
	if settings == nil {
		return 127
	}
	path, err := lookRuntime(settings.Runtime.Path, func() config.Loc { return settings.Where("runtime.path") })
	if err != nil {
		fmt.Fprintf(host.Stderr, "crhook: %v\n", err)
		return 127
	}
	r := &runner{inv: inv, rt: &binary{path: path, host: host}, settings: settings, settingsErr: serr, paths: paths, stderr: host.Stderr}
	if step == nil {
		if serr == nil && !cached && paths.Cache != "" {
			// For the next call; a courtesy.
			if c, err := newSettingsCache(paths, files, settings.Runtime.Path); err == nil {
				_ = writeSettingsCache(paths.Cache, c)
			}
		}
		return r.exec() // pass-through: a bare execve, explained only if it fails
	}
	// A step prepares and runs things around the runtime: make sure first
	// that it can run, or a checkpoint would go on to diagnose a CRIU that
	// never ran.
	if err := r.vetRuntime(); err != nil {
		fmt.Fprintf(host.Stderr, "crhook: %v\n", err)
		return 127
	}
	r.paths = paths.WithUser() // the user's CRIU layer, which only steps read
	return step(r)
}

// passCached is the pass-through path while the settings files are as
// the settings cache recorded them (settingscache.go): runtime.path comes
// from the cache, and the runtime replaces crhook; the settings files are
// neither read nor decoded. It returns only when it did not exec: hit is
// false on a miss. When the cached runtime cannot be found or run, the
// full path runs next and says why in the settings' words (a failed
// execve changes nothing).
func passCached(inv invocation, p config.Paths, host *Host) (hit bool) {
	name, rewrite, ok := cachedRuntimePath(p)
	if !ok {
		return false
	}
	if rewrite != nil {
		rewrite.at = cacheNow().UnixNano() // after every entry was checked
		_ = writeSettingsCache(p.Cache, rewrite)
	}
	path, err := lookRuntime(name, func() config.Loc { return config.Loc{} })
	if err == nil {
		_ = (&binary{path: path, host: host}).Exec(inv.args)
	}
	return true
}

// step is what the shim does for one subcommand, around the runtime.
type step func(*runner) int

// stepFor picks the step of a command line; nil is pass-through. A
// switch, not a table: the pass-through path must not pay for building one.
func stepFor(inv invocation) step {
	if inv.wantsHelp() {
		// podman probes "checkpoint --help" to learn whether the runtime
		// can checkpoint at all: the runtime's to answer.
		return nil
	}
	if !validID(inv.containerID()) {
		switch inv.cmd {
		case "checkpoint", "restore":
			// Passed through, the runtime would hand CRIU whatever
			// org.criu.config the container names, unvetted: refuse.
			return oddIDStep
		case "create", "run":
			if inv.containerID() == "" {
				return nil // the runtime says it needs one
			}
			return oddIDCreateStep // starts, as always; said now, while it can be renamed
		}
		return nil // anything else odd is the runtime's to judge
	}
	switch inv.cmd {
	case "create", "run":
		return createStep
	case "checkpoint":
		return checkpointStep
	case "restore":
		return restoreStep
	case "delete":
		return deleteStep
	default:
		return nil
	}
}

// oddIDStep refuses a checkpoint or restore whose container ID crhook
// cannot use (the last argument as runc reads it: letters, digits and
// _ + - . only, not starting with . or -). runc also accepts ',' and a
// leading '.', crun more, and crun takes options after the ID.
func oddIDStep(r *runner) int {
	fmt.Fprintf(r.stderr, "crhook: %s refused: %q is not a container ID crhook can keep state for (letters, digits, _ + - . only, not starting with . or -, given last, after every option); "+
		"the runtime would hand CRIU the container's own CRIU config unvetted. Nothing was run: the container is unchanged. Rename the container, or put its ID last\n",
		r.inv.cmd, r.inv.containerID())
	return 1
}

// oddIDCreateStep starts a container crhook cannot keep state for, as the
// runtime would, and says now that its checkpoint will be refused.
func oddIDCreateStep(r *runner) int {
	fmt.Fprintf(r.stderr, "crhook: warning: %q is not a container ID crhook can keep state for (letters, digits, _ + - . only, not starting with . or -, given last); the container starts without crhook's CRIU config, and its checkpoint and restore will be refused\n",
		r.inv.containerID())
	return r.exec()
}

// loadSettings decodes crhook.toml, as read (files, readErr). A broken file must not stop containers
// from starting or stopping, nor send them to another runtime: it keeps
// runtime.path when that can still be read, the defaults for the rest,
// and returns the error so that checkpoint and restore refuse to run with
// a config nobody asked for. nil settings: runtime.path is undetermined,
// and nothing may run.
func loadSettings(files []config.SettingsFile, readErr error, paths config.Paths, inv invocation, stderr io.Writer) (*config.Settings, error) {
	settings, serr := decodeSettings(files, readErr)
	if serr == nil {
		return settings, nil
	}
	path, at, err := config.LoadRuntimePath(paths)
	if err == nil || err.Error() != serr.Error() {
		fmt.Fprintf(stderr, "crhook: %v\n", serr)
	}
	if err != nil {
		fmt.Fprintf(stderr, "crhook: %s refused: runtime.path is undetermined, so crhook cannot tell which runtime to run: %v\n", criuopt.Printable(inv.cmd), err)
		return nil, serr
	}
	settings = config.Fallback()
	settings.SetRuntimePath(path, at)
	// create and delete keep the configured state directory when it can
	// be read (its files stay where checkpoint will look).
	if dir, _, err := config.LoadStateDir(paths); err == nil {
		settings.StateDir = dir
	}
	return settings, serr
}

// readSettings and decodeSettings are config's; tests count their calls
// to show that a pass-through call served by the settings cache reads
// and decodes nothing.
var (
	readSettings   = config.Paths.ReadSettingsFiles
	decodeSettings = config.DecodeSettings
)

// runner is one invocation of the shim: the command line, the runtime it
// wraps, and what its steps learn on the way.
type runner struct {
	inv      invocation
	rt       OCIRuntime
	settings *config.Settings
	// settingsErr is what is wrong with crhook.toml; settings are then
	// the defaults, good enough to start and stop containers only.
	settingsErr error
	paths       config.Paths
	stderr      io.Writer
	// confPath is crhook's generated file when the runtime reads it, and
	// criuFile the file CRIU gets as its RPC config (confPath, or a file
	// the runtime reads by itself); both name the config in diagnoses.
	confPath string
	criuFile string
	// ctrFile is the container's own CRIU file (layer 4), "" for none.
	ctrFile string
	// logFile is where CRIU logs when a kept log-file moved its log.
	logFile string
}

func (r *runner) bundle() string {
	if b := r.inv.flag("--bundle", "-b"); b != "" {
		return b
	}
	wd, _ := os.Getwd() // runc's default bundle is the working directory
	return wd
}

// settingsBroken refuses a checkpoint or restore with broken settings:
// it would run with a CRIU config nobody asked for.
func (r *runner) settingsBroken() bool {
	if r.settingsErr == nil {
		return false
	}
	fmt.Fprintf(r.stderr, "crhook: %s of container %s refused: fix the settings file above; the container is unchanged\n",
		r.inv.cmd, r.inv.containerID())
	return true
}

// vetRuntime checks that the runtime can run at all.
func (r *runner) vetRuntime() error {
	return vetRuntime(r.rt.Path(), r.settings.Runtime.Path, func() config.Loc { return r.settings.Where("runtime.path") })
}

// exec replaces crhook with the runtime, with this invocation's arguments.
// When execve fails, vetRuntime says why in the settings' words if it can.
func (r *runner) exec() int {
	err := r.rt.Exec(r.inv.args)
	if verr := r.vetRuntime(); verr != nil {
		fmt.Fprintf(r.stderr, "crhook: %v\n", verr)
	} else {
		fmt.Fprintf(r.stderr, "crhook: exec %s: %v\n", r.rt.Path(), err)
	}
	return 127
}

// run starts the runtime as a child with this invocation's arguments; its
// exit status becomes crhook's. stderr, when not nil, replaces the host's.
// started is false when the runtime could not be started at all: then
// nothing ran, and a step has no CRIU log to explain.
func (r *runner) run(stderr io.Writer) (code int, started bool) {
	code, err := r.rt.Run(r.inv.args, stderr)
	if err == nil {
		return code, true
	}
	if !errors.As(err, new(startError)) {
		fmt.Fprintf(r.stderr, "crhook: %v\n", err)
		return code, true
	}
	if verr := r.vetRuntime(); verr != nil {
		fmt.Fprintf(r.stderr, "crhook: %s of container %s: %v\n", r.inv.cmd, r.inv.containerID(), verr)
		return code, false
	}
	fmt.Fprintf(r.stderr, "crhook: %s of container %s: the runtime could not be started: %v; check that runtime.path (%q, %s) is an executable file on a mount without noexec, then retry\n",
		r.inv.cmd, r.inv.containerID(), err, r.settings.Runtime.Path, r.settings.Where("runtime.path"))
	return code, false
}
