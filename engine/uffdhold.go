package engine

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// The userfaultfd holder closes the window between the lazy-pages
// daemon's death and the supervisor's kill of the destination's container
// (docs/migration.md, "Lazy restore: a page never reads as zeros").
//
// The restored tasks hand their userfaultfds to `criu lazy-pages` and
// close their own copies (criu/uffd.c setup_uffd, criu/pie/restorer.c):
// the daemon then holds the only reference. When it dies, the kernel
// releases the userfaultfd context, unregisters the ranges, and every
// page not yet delivered faults in as zeros until the kill lands. A
// second holder of each userfaultfd keeps the context alive: a fault with
// no reader blocks (killably) instead, and the supervisor's kill ends it.
//
// The holder is crhook-runtime itself, run detached by the shim before
// `runc restore` (outside the supervisor's process group, so the group's
// timeout kill leaves it to kill the container). CRIU runs the action
// script of the generated criu.conf (also in RPC mode, after runc's
// notification: criu/action-scripts.c) at post-restore, once every
// restored task has sent its userfaultfd and before any of them resumes;
// the script asks the holder to take a duplicate of each (pidfd_getfd(2)
// on the daemon's descriptors) and returns only once it holds as many as
// there are live restored tasks. A failed script aborts the restore
// (criu/cr-restore.c: "Aborting restore due to post-restore script"):
// nothing runs without a holder.

const (
	// UffdHoldArg, as crhook-runtime's first argument, runs the holder
	// (UffdHoldMain); UffdHoldRequestArg runs the post-restore action
	// script's request (UffdHoldRequest). Neither can be a runtime
	// command: podman never passes such a word first.
	UffdHoldArg        = "__crhook-uffd-hold"
	UffdHoldRequestArg = "__crhook-uffd-hold-request"

	// Files of the migration directory the holder and its request share.
	uffdHoldScript = "uffd-hold.sh"  // the action script criu.conf names
	uffdHoldReq    = "uffd-hold.req" // the request: the restored root task's pid
	uffdHoldAck    = "uffd-hold.ack" // "held N", or "error: ..."
	uffdHoldPID    = "daemon.pid"    // the daemon's pid, written by the supervisor
	uffdHoldOut    = "uffd-hold.out" // the holder's output
	// uffdHoldStatus (LazyPagesRC + ".status") gets the daemon's exit
	// status from its supervisor; the holder holds it open.
	uffdHoldStatus = LazyPagesRC + ".status"
)

// uffdHoldScriptText is the action script: CRIU runs it at every stage
// with the stage in CRTOOLS_SCRIPT_ACTION; the request acts only at
// post-restore.
func uffdHoldScriptText(exe, dir string, within time.Duration) string {
	return "#!/bin/sh\n# crhook: hold the restored tasks' userfaultfds (engine/uffdhold.go)\n" +
		`[ "$CRTOOLS_SCRIPT_ACTION" = post-restore ] || exit 0` + "\n" +
		"exec " + shellJoin([]string{exe, UffdHoldRequestArg, dir, within.String()}) + " </dev/null\n"
}

// UffdHoldRequest is the post-restore action script: it asks the holder
// of migration directory args[0] to hold the userfaultfds of the tree
// rooted at $CRTOOLS_INIT_PID, and waits up to args[1] for the answer.
// Exit 0 only when the holder holds them: anything else aborts the
// restore.
func UffdHoldRequest(args []string, stderr io.Writer) int {
	if os.Getenv("CRTOOLS_SCRIPT_ACTION") != "post-restore" {
		return 0
	}
	fail := func(err error) int {
		fmt.Fprintf(stderr, "crhook: the lazy restore's userfaultfd holder: %v; the restore is aborted, nothing runs\n", err)
		return 1
	}
	if len(args) != 2 {
		return fail(fmt.Errorf("usage: %s DIR TIMEOUT, got %q", UffdHoldRequestArg, args))
	}
	dir := args[0]
	within, err := time.ParseDuration(args[1])
	if err != nil {
		return fail(fmt.Errorf("timeout %q: %w", args[1], err))
	}
	pid, err := strconv.Atoi(os.Getenv("CRTOOLS_INIT_PID"))
	if err != nil || pid <= 1 {
		return fail(fmt.Errorf("CRIU gave no restored root pid (CRTOOLS_INIT_PID=%q)", os.Getenv("CRTOOLS_INIT_PID")))
	}
	if err := writeAtomic(filepath.Join(dir, uffdHoldReq), strconv.Itoa(pid)+"\n"); err != nil {
		return fail(err)
	}
	ack, err := waitFile(filepath.Join(dir, uffdHoldAck), within)
	if err != nil {
		return fail(fmt.Errorf("no answer from the holder within %v (its output: %s): %w", within, filepath.Join(dir, uffdHoldOut), err))
	}
	if !strings.HasPrefix(ack, "held ") {
		return fail(errors.New(ack))
	}
	return 0
}

// writeAtomic writes path through a rename: a reader sees all or nothing.
func writeAtomic(path, content string) error {
	if err := os.WriteFile(path+".tmp", []byte(content), 0o600); err != nil {
		return fmt.Errorf("write %q: %w", path+".tmp", err)
	}
	if err := os.Rename(path+".tmp", path); err != nil {
		return fmt.Errorf("rename %q: %w", path+".tmp", err)
	}
	return nil
}

// waitFile polls for path (written by writeAtomic) every millisecond,
// up to within, and returns its content trimmed. A millisecond: the
// post-restore stage is inside the migration's downtime.
func waitFile(path string, within time.Duration) (string, error) {
	deadline := time.Now().Add(within)
	for {
		data, err := os.ReadFile(path)
		if err == nil {
			return strings.TrimSpace(string(data)), nil
		}
		if !errors.Is(err, os.ErrNotExist) {
			return "", fmt.Errorf("read %q: %w", path, err)
		}
		if time.Now().After(deadline) {
			return "", fmt.Errorf("%q: %w", path, os.ErrDeadlineExceeded)
		}
		time.Sleep(time.Millisecond)
	}
}

// uffdSys is what the holder does to processes and descriptors; tests
// give it fakes (uffdhold_test.go), uffdhold_linux.go the kernel.
type uffdSys interface {
	// Uffds are the descriptor numbers of userfaultfds in process pid.
	Uffds(pid int) ([]int, error)
	// Grab duplicates descriptor fd of the daemon into the holder.
	Grab(fd int) (held int, err error)
	// Same reports whether the holder's held and the daemon's fd are
	// one open file.
	Same(held, fd int) bool
	Close(held int)
	// DaemonGone reports whether the daemon is exiting or gone: its
	// descriptor table can no longer be trusted to show what it holds.
	DaemonGone() bool
	// Tree opens the live (non-zombie) processes of the tree rooted at
	// pid; TreeAlive reports whether any still runs, KillTree SIGKILLs
	// them.
	Tree(pid int) (n int, err error)
	TreeAlive() bool
	KillTree()
}

// uffdHolder is the holder's state: the daemon's userfaultfds it holds.
type uffdHolder struct {
	sys    uffdSys
	daemon int
	held   map[int]bool // the holder's descriptors
	log    io.Writer
	// status is the daemon's exit status as its supervisor wrote it, ""
	// while there is none.
	status func() string
}

// sync takes what the daemon holds and the holder not (a task it learnt
// of at restore, or forked since: UFFD_EVENT_FORK gives the daemon a new
// userfaultfd), and lets go of what the daemon closed (a task whose pages
// all came, or that exited): a later fault there is the task's own (after
// madvise), which a held context would block. Nothing is let go while the
// daemon exits: its table empties then, and that is the case to hold.
func (h *uffdHolder) sync() error {
	fds, err := h.sys.Uffds(h.daemon)
	if err != nil {
		return err
	}
	seen := map[int]bool{}
	for _, fd := range fds {
		found := false
		for held := range h.held {
			if h.sys.Same(held, fd) {
				seen[held], found = true, true
				break
			}
		}
		if found {
			continue
		}
		held, err := h.sys.Grab(fd)
		if err != nil {
			if h.sys.DaemonGone() {
				return nil
			}
			return fmt.Errorf("pidfd_getfd of the daemon's descriptor %d: %w", fd, err)
		}
		h.held[held], seen[held] = true, true
	}
	if len(seen) == len(h.held) || h.sys.DaemonGone() {
		return nil
	}
	for held := range h.held {
		if !seen[held] {
			h.sys.Close(held)
			delete(h.held, held)
		}
	}
	return nil
}

func (h *uffdHolder) releaseAll() {
	for held := range h.held {
		h.sys.Close(held)
		delete(h.held, held)
	}
}

// uffdHoldTimes bound each of the holder's waits.
type uffdHoldTimes struct {
	Request time.Duration // from the start to the request
	Grab    time.Duration // from the request to holding every userfaultfd
	Total   time.Duration // the plan's total timeout: the daemon's supervisor kills it then
	RC      time.Duration // for the supervisor's exit status once the daemon is gone
	Kill    time.Duration // for the container to die after the daemon failed, before the holder kills it
	Tick    time.Duration // the poll period while holding
}

var defaultUffdHoldTimes = uffdHoldTimes{RC: 2 * time.Second, Kill: 10 * time.Second, Tick: 5 * time.Millisecond}

// hold is the holder's life in migration directory dir: wait for the
// request, hold every userfaultfd of the restored tree, answer, then keep
// them while the daemon runs. When the daemon exits 0 every page came:
// let go at once. When it fails, hold until the container is dead (the
// supervisor kills it), killing it itself after t.Kill, and never beyond
// the total timeout plus t.Kill twice: the holder never outlives the
// container and the plan.
func (h *uffdHolder) hold(dir string, t uffdHoldTimes) error {
	start := time.Now()
	ack := func(s string) error { return writeAtomic(filepath.Join(dir, uffdHoldAck), s+"\n") }
	req, err := h.waitRequest(dir, start.Add(t.Request), t.Tick)
	if err == nil && req == 0 {
		// A request that comes after all fails at once: nothing holds.
		err = ack("error: the lazy-pages daemon ended (or the holder gave up) before the restore reached post-restore")
	}
	if err != nil || req == 0 {
		return err
	}
	asked := time.Now()
	n, err := h.sys.Tree(req)
	if err != nil {
		return errors.Join(err, ack("error: "+err.Error()))
	}
	deadline := time.Now().Add(t.Grab)
	for {
		err := h.sync()
		switch {
		case err == nil && len(h.held) >= n:
			fmt.Fprintf(h.log, "holding %d userfaultfds of %d restored tasks (root %d), %v after the request\n", len(h.held), n, req, time.Since(asked).Round(time.Microsecond))
			if err := ack(fmt.Sprintf("held %d", len(h.held))); err != nil {
				h.releaseAll()
				return err
			}
			return h.watch(dir, start, t)
		case err == nil && h.sys.DaemonGone():
			err = fmt.Errorf("the lazy-pages daemon %d is gone before it held every userfaultfd (%d of %d)", h.daemon, len(h.held), n)
		case err == nil && time.Now().After(deadline):
			err = fmt.Errorf("the lazy-pages daemon %d holds %d userfaultfds after %v, the restored tree has %d live tasks", h.daemon, len(h.held), t.Grab, n)
		}
		if err != nil {
			h.releaseAll()
			return errors.Join(err, ack("error: "+err.Error()))
		}
		time.Sleep(t.Tick)
	}
}

// waitRequest waits for the action script's request: the restored root
// task's pid, or 0 when the daemon is gone or the restore never reached
// post-restore in time (nothing to hold).
func (h *uffdHolder) waitRequest(dir string, deadline time.Time, tick time.Duration) (int, error) {
	for {
		data, err := os.ReadFile(filepath.Join(dir, uffdHoldReq))
		if err == nil {
			pid, err := strconv.Atoi(strings.TrimSpace(string(data)))
			if err != nil || pid <= 1 {
				return 0, fmt.Errorf("request %q names no task", data)
			}
			return pid, nil
		}
		if h.sys.DaemonGone() || time.Now().After(deadline) {
			fmt.Fprintln(h.log, "no request: the restore never reached post-restore; nothing to hold")
			return 0, nil
		}
		time.Sleep(min(tick, time.Millisecond))
	}
}

// watch holds while the daemon runs, then ends as hold says.
func (h *uffdHolder) watch(dir string, start time.Time, t uffdHoldTimes) error {
	defer h.releaseAll()
	for !h.sys.DaemonGone() {
		if time.Since(start) > t.Total+t.Kill {
			// The supervisor kills the daemon at the total timeout:
			// still alive, the daemon holds its userfaultfds itself.
			fmt.Fprintln(h.log, "the daemon outlived the total timeout; it holds its own userfaultfds")
			return nil
		}
		if err := h.sync(); err != nil {
			fmt.Fprintf(h.log, "warning: %v\n", err)
		}
		time.Sleep(t.Tick)
	}
	rc := h.status()
	for deadline := time.Now().Add(t.RC); rc == "" && time.Now().Before(deadline); rc = h.status() {
		time.Sleep(time.Millisecond)
	}
	if rc == "0" {
		fmt.Fprintf(h.log, "the daemon delivered every page; let go of %d userfaultfds\n", len(h.held))
		return nil
	}
	fmt.Fprintf(h.log, "the daemon failed (exit status %q): holding %d userfaultfds until the container is dead\n", rc, len(h.held))
	kill := time.Now().Add(t.Kill)
	killed := false
	for h.sys.TreeAlive() {
		if time.Now().After(kill) {
			if killed {
				return fmt.Errorf("the restored tasks still run %v after SIGKILL; letting go of their userfaultfds", t.Kill)
			}
			fmt.Fprintf(h.log, "the container still runs %v after the daemon failed: killing its tasks\n", t.Kill)
			h.sys.KillTree()
			killed, kill = true, time.Now().Add(t.Kill)
		}
		time.Sleep(t.Tick)
	}
	fmt.Fprintln(h.log, "the container is dead; let go")
	return nil
}
