package engine

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// uffdLink is what /proc/PID/fd/N reads for a userfaultfd.
const uffdLink = "anon_inode:[userfaultfd]"

// pfExiting is PF_EXITING in /proc/PID/stat's flags: set by do_exit
// before it closes the task's files.
const pfExiting = 0x4

// kcmpFile is KCMP_FILE (linux/kcmp.h).
const kcmpFile = 0

// uffdsIn lists the userfaultfd descriptors of process pid under proc
// (/proc, or a test's tree of symlinks).
func uffdsIn(proc string, pid int) ([]int, error) {
	dir := filepath.Join(proc, strconv.Itoa(pid), "fd")
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", dir, err)
	}
	var fds []int
	for _, e := range ents {
		fd, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if target, err := os.Readlink(filepath.Join(dir, e.Name())); err == nil && target == uffdLink {
			fds = append(fds, fd)
		}
	}
	return fds, nil
}

// statFields are the fields of /proc/PID/stat after the command name:
// [0] is the state, [1] the parent, [6] the flags.
func statFields(proc string, pid int) ([]string, error) {
	data, err := os.ReadFile(filepath.Join(proc, strconv.Itoa(pid), "stat"))
	if err != nil {
		return nil, err
	}
	i := strings.LastIndexByte(string(data), ')')
	if i < 0 {
		return nil, fmt.Errorf("%s/%d/stat: no command name: %q", proc, pid, data)
	}
	f := strings.Fields(string(data[i+1:]))
	if len(f) < 7 {
		return nil, fmt.Errorf("%s/%d/stat: %d fields", proc, pid, len(f))
	}
	return f, nil
}

// treeIn is the live (non-zombie) processes of the tree rooted at pid:
// each thread's children, recursively. At post-restore nothing of the
// tree runs yet, so it is the tree CRIU restored, and each live process
// sent the daemon one userfaultfd (zombies and helpers send none).
func treeIn(proc string, pid int) []int {
	var live []int
	queue := []int{pid}
	seen := map[int]bool{}
	for len(queue) > 0 {
		p := queue[0]
		queue = queue[1:]
		if seen[p] {
			continue
		}
		seen[p] = true
		f, err := statFields(proc, p)
		if err != nil {
			continue
		}
		if f[0] != "Z" && f[0] != "X" {
			live = append(live, p)
		}
		tasks, _ := os.ReadDir(filepath.Join(proc, strconv.Itoa(p), "task"))
		for _, t := range tasks {
			data, _ := os.ReadFile(filepath.Join(proc, strconv.Itoa(p), "task", t.Name(), "children"))
			for _, c := range strings.Fields(string(data)) {
				if n, err := strconv.Atoi(c); err == nil {
					queue = append(queue, n)
				}
			}
		}
	}
	return live
}

// kernelUffd is uffdSys on the kernel.
type kernelUffd struct {
	daemon   int
	daemonFD int // pidfd
	tree     []int
}

func (k *kernelUffd) Uffds(pid int) ([]int, error) { return uffdsIn("/proc", pid) }

func (k *kernelUffd) Grab(fd int) (int, error) { return unix.PidfdGetfd(k.daemonFD, fd, 0) }

func (k *kernelUffd) Same(held, fd int) bool {
	r, _, errno := unix.Syscall6(unix.SYS_KCMP, uintptr(os.Getpid()), uintptr(k.daemon), kcmpFile, uintptr(held), uintptr(fd), 0)
	return errno == 0 && r == 0
}

func (k *kernelUffd) Close(held int) { _ = unix.Close(held) }

// exited reports whether pidfd's process has exited (its pidfd reads
// readable then).
func exited(pidfd int) bool {
	fds := []unix.PollFd{{Fd: int32(pidfd), Events: unix.POLLIN}}
	n, err := unix.Poll(fds, 0)
	return err == nil && n > 0
}

func (k *kernelUffd) DaemonGone() bool {
	if exited(k.daemonFD) {
		return true
	}
	f, err := statFields("/proc", k.daemon)
	if err != nil {
		return true
	}
	flags, err := strconv.ParseUint(f[6], 10, 64)
	return err != nil || flags&pfExiting != 0 || exited(k.daemonFD)
}

func (k *kernelUffd) Tree(pid int) (int, error) {
	for _, p := range treeIn("/proc", pid) {
		fd, err := unix.PidfdOpen(p, 0)
		if err != nil {
			return 0, fmt.Errorf("pidfd_open of restored task %d: %w", p, err)
		}
		k.tree = append(k.tree, fd)
	}
	if len(k.tree) == 0 {
		return 0, fmt.Errorf("the restored tree of %d has no live task", pid)
	}
	return len(k.tree), nil
}

func (k *kernelUffd) TreeAlive() bool {
	for _, fd := range k.tree {
		if !exited(fd) {
			return true
		}
	}
	return false
}

func (k *kernelUffd) KillTree() {
	for _, fd := range k.tree {
		_ = unix.PidfdSendSignal(fd, unix.SIGKILL, nil, 0)
	}
}

// UffdHoldMain is the holder (crhook-runtime UffdHoldArg DIR GRAB
// TOTAL): the daemon is the supervised command of migration directory
// DIR; see uffdHolder.hold.
func UffdHoldMain(args []string, log io.Writer) int {
	if len(args) != 3 {
		fmt.Fprintf(log, "crhook: userfaultfd holder: usage: %s DIR GRAB TOTAL, got %q\n", UffdHoldArg, args)
		return 1
	}
	dir := args[0]
	fail := func(err error) int {
		fmt.Fprintf(log, "crhook: userfaultfd holder: %v\n", err)
		// The request, now or later, fails at once: nothing holds.
		if _, serr := os.Stat(filepath.Join(dir, uffdHoldAck)); errors.Is(serr, os.ErrNotExist) {
			_ = writeAtomic(filepath.Join(dir, uffdHoldAck), "error: "+err.Error()+"\n")
		}
		return 1
	}
	t := defaultUffdHoldTimes
	var err error
	if t.Grab, err = time.ParseDuration(args[1]); err != nil {
		return fail(err)
	}
	if t.Total, err = time.ParseDuration(args[2]); err != nil {
		return fail(err)
	}
	t.Request = t.Total
	k, err := openDaemon(dir, t.Grab)
	if err != nil {
		return fail(err)
	}
	// Opened now, before the daemon can end: the orchestrator removes the
	// directory once it read the status, maybe before the holder did.
	statusFile, err := os.Open(filepath.Join(dir, uffdHoldStatus))
	if err != nil {
		return fail(fmt.Errorf("the daemon's status file: %w", err))
	}
	defer statusFile.Close()
	status := func() string {
		buf := make([]byte, 32)
		n, _ := statusFile.ReadAt(buf, 0)
		if s, ok := strings.CutSuffix(string(buf[:n]), "\n"); ok {
			return s
		}
		return "" // none yet, or half written
	}
	h := &uffdHolder{sys: k, daemon: k.daemon, held: map[int]bool{}, log: log, status: status}
	if err := h.hold(dir, t); err != nil {
		return fail(err)
	}
	return 0
}

// openDaemon finds the lazy-pages daemon of dir: the pid its supervisor
// wrote, checked to be the supervisor's child once its pidfd is open
// (so the pid names that process, not a later one).
func openDaemon(dir string, within time.Duration) (*kernelUffd, error) {
	pidText, err := waitFile(filepath.Join(dir, LazyPagesRC+".pid"), within)
	if err != nil {
		return nil, fmt.Errorf("the supervisor never named the daemon: %w", err)
	}
	sup, err := os.ReadFile(filepath.Join(dir, PGID))
	if err != nil {
		return nil, fmt.Errorf("the daemon's supervisor: %w", err)
	}
	pid, err := strconv.Atoi(pidText)
	if err != nil || pid <= 1 {
		return nil, fmt.Errorf("daemon pid %q", pidText)
	}
	fd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		return nil, fmt.Errorf("pidfd_open of the daemon %d: %w", pid, err)
	}
	f, err := statFields("/proc", pid)
	if err != nil {
		_ = unix.Close(fd)
		return nil, fmt.Errorf("the daemon %d: %w", pid, err)
	}
	if f[1] != strings.TrimSpace(string(sup)) {
		_ = unix.Close(fd)
		return nil, fmt.Errorf("process %d (parent %s) is not the daemon of supervisor %s", pid, f[1], strings.TrimSpace(string(sup)))
	}
	return &kernelUffd{daemon: pid, daemonFD: fd}, nil
}

// startUffdHolder starts the holder for migration directory dir,
// detached (its own session, outside the supervisor's process group),
// its output in dir/uffd-hold.out, and writes the action script that
// asks it to hold. It returns the holder and the script's path.
func startUffdHolder(dir string, grab, total time.Duration) (*os.Process, string, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, "", fmt.Errorf("find crhook-runtime's own path for the userfaultfd holder: %w", err)
	}
	for _, f := range []string{uffdHoldReq, uffdHoldAck} {
		if err := os.Remove(filepath.Join(dir, f)); err != nil && !errors.Is(err, os.ErrNotExist) {
			return nil, "", fmt.Errorf("remove stale %q: %w", filepath.Join(dir, f), err)
		}
	}
	// Empty: the supervisor appends the daemon's exit status.
	if err := os.WriteFile(filepath.Join(dir, uffdHoldStatus), nil, 0o600); err != nil {
		return nil, "", fmt.Errorf("create the daemon's status file: %w", err)
	}
	script := filepath.Join(dir, uffdHoldScript)
	if strings.ContainsAny(script, " \t\n\"'\\#") {
		return nil, "", fmt.Errorf("the action script's path %q has characters criu.conf cannot carry", script)
	}
	if err := os.WriteFile(script+".tmp", []byte(uffdHoldScriptText(exe, dir, grab)), 0o700); err != nil {
		return nil, "", fmt.Errorf("write the userfaultfd holder's action script: %w", err)
	}
	if err := os.Rename(script+".tmp", script); err != nil {
		return nil, "", fmt.Errorf("write the userfaultfd holder's action script: %w", err)
	}
	logf, err := os.OpenFile(filepath.Join(dir, uffdHoldOut), os.O_WRONLY|os.O_CREATE|os.O_TRUNC|syscall.O_NOFOLLOW, 0o600)
	if err != nil {
		return nil, "", fmt.Errorf("open %q: %w", filepath.Join(dir, uffdHoldOut), err)
	}
	defer logf.Close()
	cmd := exec.Command(exe, UffdHoldArg, dir, grab.String(), total.String())
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	restore := cloexecInherited()
	err = cmd.Start()
	restore()
	if err != nil {
		return nil, "", fmt.Errorf("start the userfaultfd holder: %w", err)
	}
	return cmd.Process, script, nil
}
