package engine

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"
)

// OCIRuntime is the wrapped runtime (runc, crun) as the shim's steps drive
// it, in the three ways they need; like nvidia-container-toolkit's
// oci.Runtime, a step wraps it rather than knowing how it is started.
type OCIRuntime interface {
	// Path is the runtime binary, for messages and commands to paste.
	Path() string
	// Exec replaces crhook with the runtime: exit codes, signals, stdio
	// and every fd are then the runtime's own. It returns only on failure.
	Exec(args []string) error
	// Run starts the runtime as a child that inherits every fd crhook got
	// and every signal it gets, and returns its exit status (128+N when
	// signal N killed it). stderr, when not nil, is where its stderr goes
	// instead of the host's (a step that keeps a copy, or holds it back).
	Run(args []string, stderr io.Writer) (int, error)
	// Output runs a short query (state, resume) and returns its stdout.
	Output(args []string) ([]byte, error)
}

// binary is the OCIRuntime of a runtime binary, started through host.
type binary struct {
	path string
	host *Host
	// queryTimeout bounds Output (defaultQueryTimeout when zero): a hung
	// `state` or `resume` must not hang the checkpoint that asked.
	queryTimeout time.Duration
}

// defaultQueryTimeout is far above what `runc state` takes (~5 ms).
const defaultQueryTimeout = time.Minute

func (b *binary) Path() string { return b.path }

func (b *binary) Exec(args []string) error {
	argv := append([]string{b.path}, args...)
	return b.host.Exec(b.path, argv, b.host.Environ())
}

func (b *binary) Run(args []string, stderr io.Writer) (int, error) {
	cmd := exec.Command(b.path, args...)
	cmd.Env = b.host.Environ()
	cmd.Stdin, cmd.Stdout, cmd.Stderr = b.host.Stdin, b.host.Stdout, b.host.Stderr
	if stderr != nil {
		cmd.Stderr = stderr
	}
	// Relay before start, so that no signal between start and the relay
	// is lost (it would kill crhook and orphan the runtime).
	sigs := make(chan os.Signal, 16)
	b.host.Notify(sigs)
	defer b.host.Stop(sigs)
	if err := cmd.Start(); err != nil {
		return 127, startError{fmt.Errorf("start %s: %w", b.path, err)}
	}
	done := make(chan struct{})
	relayed := make(chan struct{})
	go func() {
		defer close(relayed)
		for {
			select {
			case s := <-sigs:
				// SIGCHLD is ours; SIGURG is the Go scheduler's preemption.
				if s != syscall.SIGCHLD && s != syscall.SIGURG {
					_ = cmd.Process.Signal(s)
				}
			case <-done:
				return
			}
		}
	}()
	err := cmd.Wait()
	close(done)
	<-relayed
	return exitStatus(b.path, err)
}

// startError is a runtime that could not be started at all (EACCES on a
// noexec mount, ETXTBSY while it is replaced): nothing ran, so there is
// no CRIU log to explain and no container the runtime touched.
type startError struct{ err error }

func (e startError) Error() string { return e.err.Error() }
func (e startError) Unwrap() error { return e.err }

// exitStatus is the status a shell reports for a child that ended with
// err: its exit code, or 128+N when signal N killed it.
func exitStatus(path string, err error) (int, error) {
	var ee *exec.ExitError
	switch {
	case err == nil:
		return 0, nil
	case errors.As(err, &ee):
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return 128 + int(ws.Signal()), nil
		}
		return ee.ExitCode(), nil
	default:
		return 1, fmt.Errorf("%s: %w", path, err)
	}
}

func (b *binary) Output(args []string) ([]byte, error) {
	limit := b.queryTimeout
	if limit == 0 {
		limit = defaultQueryTimeout
	}
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	cmd := exec.CommandContext(ctx, b.path, args...)
	cmd.WaitDelay = time.Second // a killed runtime's children may hold its pipes
	cmd.Env = b.host.Environ()
	var errb bytes.Buffer
	cmd.Stderr = &errb
	out, err := cmd.Output()
	if ctx.Err() != nil {
		err = fmt.Errorf("no answer within %v, killed", limit)
	}
	if err != nil {
		return out, fmt.Errorf("%s: %w: %s", shellJoin(append([]string{b.path}, args...)), err, strings.TrimSpace(errb.String()))
	}
	return out, nil
}

// shellJoin quotes a command line for a user to paste into a shell.
func shellJoin(argv []string) string {
	q := make([]string, len(argv))
	for i, a := range argv {
		if a != "" && strings.Trim(a, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.,+-=/:@%") == "" {
			q[i] = a
		} else {
			q[i] = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
		}
	}
	return strings.Join(q, " ")
}
