package doctor

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"time"

	"github.com/crhook/crhook/config"
)

// Host is everything doctor looks at, so tests can hand it a fake machine:
// a directory standing for / (with proc, etc, boot, sys below it) and a
// command runner that answers for criu, runc, crun, podman and friends.
type Host struct {
	// Root stands for / when reading /proc, /sys, /etc, /boot and /run.
	Root string
	// Paths are crhook's own config paths (already below Root, or below
	// `crhook --root`): the config checks use the loader's own code.
	Paths config.Paths
	// Run looks up and runs programs.
	Run Runner
	// Getenv reads the environment doctor runs in (PATH, CONTAINERS_CONF).
	Getenv func(string) string
	// Libs returns the shared libraries a binary needs (ELF DT_NEEDED).
	Libs func(path string) ([]string, error)
	// LibFor finds the library a binary would dlopen() by soname and
	// the symbols it exports (crun loads libcriu.so.2 this way).
	LibFor func(binary, soname string) (path string, symbols map[string]bool, err error)
	// Euid is doctor's effective uid: criu check and podman need root.
	Euid int
	// Arch is GOARCH of the host: some known-bad rows are x86-only.
	Arch string
}

// NewHost describes the machine doctor runs on. paths are crhook's config
// paths as the CLI resolved them (honouring --root).
func NewHost(paths config.Paths) *Host {
	return &Host{
		Root:   "/",
		Paths:  paths,
		Run:    ExecRunner{Timeout: 60 * time.Second},
		Getenv: os.Getenv,
		Libs:   elfNeeded,
		LibFor: libFor,
		Euid:   os.Geteuid(),
		Arch:   runtime.GOARCH,
	}
}

// path maps an absolute host path below Root.
func (h *Host) path(p string) string { return filepath.Join(h.Root, p) }

// readFile reads a host file below Root.
func (h *Host) readFile(p string) ([]byte, error) { return os.ReadFile(h.path(p)) }

// exists reports whether a host path exists below Root.
func (h *Host) exists(p string) bool {
	_, err := os.Stat(h.path(p))
	return err == nil
}

// Output is what a command printed and how it ended.
type Output struct {
	Stdout, Stderr string
	// Code is the exit status; -1 when the command did not run or was killed.
	Code int
	// Err is set when the command could not be run at all (not found,
	// timed out); a non-zero exit is not an error here, only a Code.
	Err error
}

// Runner finds and runs programs. Tests replace it with canned output.
type Runner interface {
	LookPath(name string) (string, error)
	Run(ctx context.Context, name string, args ...string) Output
}

// ExecRunner runs real programs with the caller's PATH.
type ExecRunner struct {
	// Timeout bounds each command: a podman waiting on a held lock must
	// not hang the whole report.
	Timeout time.Duration
}

// LookPath finds name in PATH, as runc and podman will.
func (ExecRunner) LookPath(name string) (string, error) { return exec.LookPath(name) }

// Run runs name with args under LC_ALL=C, so the output parsed is English.
func (r ExecRunner) Run(ctx context.Context, name string, args ...string) Output {
	if r.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, r.Timeout)
		defer cancel()
	}
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = append(os.Environ(), "LC_ALL=C")
	var stdout, stderr limitedBuffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	out := Output{Stdout: stdout.String(), Stderr: stderr.String()}
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee) && ctx.Err() == nil:
		out.Code = ee.ExitCode()
	case ctx.Err() != nil:
		out.Code, out.Err = -1, fmt.Errorf("%s gave no answer within %s (another podman holding a lock?): %w", filepath.Base(name), r.Timeout, ctx.Err())
	default:
		out.Code, out.Err = -1, err
	}
	return out
}

// limitedBuffer keeps the first 1 MiB a command prints: podman ps on a
// host with thousands of containers must not eat the memory of a check.
type limitedBuffer struct{ b []byte }

const maxOutput = 1 << 20

func (l *limitedBuffer) Write(p []byte) (int, error) {
	if room := maxOutput - len(l.b); room > 0 {
		if len(p) < room {
			room = len(p)
		}
		l.b = append(l.b, p[:room]...)
	}
	return len(p), nil
}

func (l *limitedBuffer) String() string { return string(l.b) }
