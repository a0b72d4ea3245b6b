package engine

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// uffdUserModeOnly is UFFD_USER_MODE_ONLY: a userfaultfd an unprivileged
// process may open (it handles user-space faults only).
const uffdUserModeOnly = 1

func openUserfaultfd() (int, error) {
	fd, _, errno := unix.Syscall(unix.SYS_USERFAULTFD, unix.O_CLOEXEC|uffdUserModeOnly, 0, 0)
	if errno != 0 {
		return -1, errno
	}
	return int(fd), nil
}

// needUserfaultfd skips a test that needs a process holding a real
// userfaultfd where this kernel gives none.
func needUserfaultfd(t *testing.T) {
	t.Helper()
	fd, err := openUserfaultfd()
	if err != nil {
		t.Skipf("userfaultfd(UFFD_USER_MODE_ONLY) fails here (%v): the lazy restore's fakes need a process holding one", err)
	}
	_ = unix.Close(fd)
}

// testUffdDaemon is the fake lazy-pages daemon's body (fakeCriu): it
// holds a userfaultfd until the file args[0] appears, then exits 0, as
// a daemon that delivered every page.
func testUffdDaemon(args []string) int {
	if _, err := openUserfaultfd(); err != nil {
		return 3
	}
	for range 6000 {
		if _, err := os.Stat(args[0]); err == nil {
			return 0
		}
		time.Sleep(10 * time.Millisecond)
	}
	return 0
}

// TestUffdsIn: only the descriptors that read anon_inode:[userfaultfd]
// are the daemon's userfaultfds.
func TestUffdsIn(t *testing.T) {
	proc := t.TempDir()
	fdDir := filepath.Join(proc, "42", "fd")
	if err := os.MkdirAll(fdDir, 0o755); err != nil {
		t.Fatal(err)
	}
	for fd, target := range map[string]string{
		"0": "/dev/null", "3": "anon_inode:[userfaultfd]", "4": "anon_inode:[eventpoll]",
		"5": "socket:[1234]", "7": "anon_inode:[userfaultfd]", "8": "/tmp/anon_inode:[userfaultfd]",
	} {
		if err := os.Symlink(target, filepath.Join(fdDir, fd)); err != nil {
			t.Fatal(err)
		}
	}
	got, err := uffdsIn(proc, 42)
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(got)
	if want := []int{3, 7}; !reflect.DeepEqual(got, want) {
		t.Errorf("uffdsIn = %v, want %v", got, want)
	}
	if _, err := uffdsIn(proc, 43); err == nil {
		t.Error("a process that is gone: no error")
	}
}

// TestTreeIn: the restored tree's live processes, through every
// thread's children; a zombie (it sent the daemon no userfaultfd) is not
// counted, but its children are.
func TestTreeIn(t *testing.T) {
	proc := t.TempDir()
	task := func(pid, state string, children map[string]string) {
		write := func(rel, content string) {
			path := filepath.Join(proc, pid, rel)
			if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		write("stat", pid+" (a b) "+state+" 1 1 1 0 -1 4194560 0 0 0 0\n")
		for tid, kids := range children {
			write("task/"+tid+"/children", kids)
		}
	}
	task("10", "S", map[string]string{"10": "11 12 ", "13": "14 "})
	task("11", "R", nil)
	task("12", "Z", map[string]string{"12": ""})
	task("14", "S", map[string]string{"14": "15"})
	task("15", "t", nil)
	got := treeIn(proc, 10)
	slices.Sort(got)
	if want := []int{10, 11, 14, 15}; !reflect.DeepEqual(got, want) {
		t.Errorf("treeIn = %v, want %v", got, want)
	}
}

// fakeUffd is uffdSys over a scripted daemon: its userfaultfds are
// names (files), the holder's descriptors map to them.
type fakeUffd struct {
	mu        sync.Mutex
	daemonFDs map[int]string // the daemon's fd -> file
	held      map[int]string // the holder's fd -> file
	next      int
	gone      bool // the daemon exited (or is exiting)
	tree      int  // live restored tasks
	treeAlive bool
	killed    bool
	// closedWhileAlive records a file let go while the daemon had failed
	// and the tree still ran: the gap this holder closes.
	closedWhileAlive []string
	failed           bool
}

func (f *fakeUffd) Uffds(int) ([]int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var fds []int
	for fd := range f.daemonFDs {
		fds = append(fds, fd)
	}
	return fds, nil
}

func (f *fakeUffd) Grab(fd int) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	file, ok := f.daemonFDs[fd]
	if !ok {
		return -1, syscall.EBADF
	}
	f.next++
	f.held[100+f.next] = file
	return 100 + f.next, nil
}

func (f *fakeUffd) Same(held, fd int) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.held[held] != "" && f.held[held] == f.daemonFDs[fd]
}

func (f *fakeUffd) Close(held int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.failed && f.treeAlive {
		f.closedWhileAlive = append(f.closedWhileAlive, f.held[held])
	}
	delete(f.held, held)
}

func (f *fakeUffd) DaemonGone() bool { f.mu.Lock(); defer f.mu.Unlock(); return f.gone }
func (f *fakeUffd) Tree(int) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.tree == 0 {
		return 0, errors.New("no live task")
	}
	return f.tree, nil
}
func (f *fakeUffd) TreeAlive() bool { f.mu.Lock(); defer f.mu.Unlock(); return f.treeAlive }
func (f *fakeUffd) KillTree() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.killed, f.treeAlive = true, false
}

func (f *fakeUffd) do(fn func(f *fakeUffd)) { f.mu.Lock(); fn(f); f.mu.Unlock() }

func (f *fakeUffd) heldFiles() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var files []string
	for _, file := range f.held {
		files = append(files, file)
	}
	slices.Sort(files)
	return files
}

// TestUffdHolderLifecycle drives the holder through each way a lazy
// restore's daemon ends, with a scripted daemon and tree.
func TestUffdHolderLifecycle(t *testing.T) {
	times := uffdHoldTimes{Request: 2 * time.Second, Grab: 300 * time.Millisecond, Total: 5 * time.Second, RC: 200 * time.Millisecond, Kill: 300 * time.Millisecond, Tick: time.Millisecond}
	for _, tc := range []struct {
		name string
		tree int
		fds  map[int]string
		// script runs once the holder answered; it returns what the
		// daemon's supervisor wrote as exit status ("" for nothing).
		script  func(t *testing.T, f *fakeUffd) string
		wantAck string
		wantErr string
		check   func(t *testing.T, f *fakeUffd, log string)
	}{
		{
			name: "every page delivered", tree: 2, fds: map[int]string{5: "a", 9: "b"}, wantAck: "held 2",
			script: func(t *testing.T, f *fakeUffd) string {
				f.do(func(f *fakeUffd) { f.daemonFDs, f.gone = nil, true })
				return "0"
			},
			check: func(t *testing.T, f *fakeUffd, log string) {
				if f.killed || !strings.Contains(log, "delivered every page") {
					t.Errorf("killed %v; log %q", f.killed, log)
				}
			},
		},
		{
			name: "daemon fails, the supervisor kills the container", tree: 1, fds: map[int]string{5: "a"}, wantAck: "held 1",
			script: func(t *testing.T, f *fakeUffd) string {
				f.do(func(f *fakeUffd) { f.daemonFDs, f.gone, f.failed = nil, true, true })
				// The supervisor's kill lands 50 ms later: closedWhileAlive
				// catches a holder that let go before.
				time.AfterFunc(50*time.Millisecond, func() { f.do(func(f *fakeUffd) { f.treeAlive = false }) })
				return "137"
			},
			check: func(t *testing.T, f *fakeUffd, log string) {
				if f.killed {
					t.Error("the holder killed the container the supervisor killed")
				}
			},
		},
		{
			name: "daemon and supervisor killed: the holder kills the container", tree: 1, fds: map[int]string{5: "a"}, wantAck: "held 1",
			script: func(t *testing.T, f *fakeUffd) string {
				f.do(func(f *fakeUffd) { f.daemonFDs, f.gone, f.failed = nil, true, true })
				return ""
			},
			check: func(t *testing.T, f *fakeUffd, log string) {
				if !f.killed || !strings.Contains(log, "killing its tasks") {
					t.Errorf("the container was not killed by the holder; log %q", log)
				}
			},
		},
		{
			name: "a task's pages all came, another forked", tree: 2, fds: map[int]string{5: "a", 9: "b"}, wantAck: "held 2",
			script: func(t *testing.T, f *fakeUffd) string {
				f.do(func(f *fakeUffd) { delete(f.daemonFDs, 5); f.daemonFDs[11] = "c" })
				eventually(t, time.Second, "b and c held, a let go", func() bool { return reflect.DeepEqual(f.heldFiles(), []string{"b", "c"}) })
				f.do(func(f *fakeUffd) { f.daemonFDs, f.gone = nil, true })
				return "0"
			},
		},
		{
			name: "fewer userfaultfds than tasks", tree: 3, fds: map[int]string{5: "a"},
			wantAck: "error: the lazy-pages daemon 7 holds 1 userfaultfds", wantErr: "holds 1 userfaultfds",
		},
		{
			name: "no live task", tree: 0, fds: map[int]string{5: "a"}, wantAck: "error: no live task", wantErr: "no live task",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			f := &fakeUffd{daemonFDs: tc.fds, held: map[int]string{}, tree: tc.tree, treeAlive: true}
			var log syncBuffer
			h := &uffdHolder{sys: f, daemon: 7, held: map[int]bool{}, log: &log, status: func() string {
				data, _ := os.ReadFile(filepath.Join(dir, LazyPagesRC))
				return strings.TrimSpace(string(data))
			}}
			done := make(chan error, 1)
			go func() { done <- h.hold(dir, times) }()
			if err := writeAtomic(filepath.Join(dir, uffdHoldReq), "1234\n"); err != nil {
				t.Fatal(err)
			}
			ack, err := waitFile(filepath.Join(dir, uffdHoldAck), 2*time.Second)
			if err != nil || !strings.HasPrefix(ack, tc.wantAck) {
				t.Fatalf("ack %q (%v), want %q", ack, err, tc.wantAck)
			}
			if tc.script != nil {
				if rc := tc.script(t, f); rc != "" {
					if err := writeAtomic(filepath.Join(dir, LazyPagesRC), rc+"\n"); err != nil {
						t.Fatal(err)
					}
				}
			}
			select {
			case err := <-done:
				if tc.wantErr == "" && err != nil || tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)) {
					t.Fatalf("hold: %v, want error %q", err, tc.wantErr)
				}
			case <-time.After(3 * time.Second):
				t.Fatal("the holder outlived the container and its daemon")
			}
			if len(f.held) != 0 {
				t.Errorf("the holder ended holding %v", f.heldFiles())
			}
			if len(f.closedWhileAlive) != 0 {
				t.Errorf("let go of %v while the daemon had failed and the container ran: zero pages", f.closedWhileAlive)
			}
			if tc.check != nil {
				tc.check(t, f, log.String())
			}
		})
	}
}

// TestUffdHolderExitingDaemon: a daemon whose table empties as it exits
// (do_exit closes its files before its pidfd reads as exited) is not one
// that closed its userfaultfds: the holder keeps them.
func TestUffdHolderExitingDaemon(t *testing.T) {
	f := &fakeUffd{daemonFDs: map[int]string{5: "a"}, held: map[int]string{}, tree: 1, treeAlive: true}
	h := &uffdHolder{sys: f, daemon: 7, held: map[int]bool{}, log: &bytes.Buffer{}}
	if err := h.sync(); err != nil || len(h.held) != 1 {
		t.Fatalf("sync: %v, held %v", err, f.heldFiles())
	}
	f.do(func(f *fakeUffd) { f.daemonFDs, f.gone = nil, true })
	if err := h.sync(); err != nil || !reflect.DeepEqual(f.heldFiles(), []string{"a"}) {
		t.Errorf("sync on an exiting daemon: %v, holds %v, want a", err, f.heldFiles())
	}
}

// TestUffdHolderNoRequest: a restore that never reaches post-restore
// (it failed, or the daemon died first) leaves the holder nothing to
// hold: it ends, with an error for a request that would come late.
func TestUffdHolderNoRequest(t *testing.T) {
	dir := t.TempDir()
	f := &fakeUffd{daemonFDs: map[int]string{5: "a"}, held: map[int]string{}, tree: 1, treeAlive: true, gone: true}
	h := &uffdHolder{sys: f, daemon: 7, held: map[int]bool{}, log: &bytes.Buffer{}}
	if err := h.hold(dir, uffdHoldTimes{Request: time.Second, Tick: time.Millisecond}); err != nil {
		t.Fatal(err)
	}
	if ack, _ := os.ReadFile(filepath.Join(dir, uffdHoldAck)); !strings.HasPrefix(string(ack), "error: ") || len(h.held) != 0 {
		t.Errorf("answer %q, holds %v; want an error for a late request, nothing held", ack, f.heldFiles())
	}
}

// TestUffdHoldRequest: the action script acts at post-restore only, and
// succeeds only when the holder says it holds.
func TestUffdHoldRequest(t *testing.T) {
	for _, tc := range []struct {
		name, action, ack string
		want              int
	}{
		{"other stage", "pre-resume", "", 0},
		{"held", "post-restore", "held 2\n", 0},
		{"holder failed", "post-restore", "error: the daemon is gone\n", 1},
		{"no holder", "post-restore", "", 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			t.Setenv("CRTOOLS_SCRIPT_ACTION", tc.action)
			t.Setenv("CRTOOLS_INIT_PID", "4321")
			if tc.ack != "" {
				go func() {
					if _, err := waitFile(filepath.Join(dir, uffdHoldReq), time.Second); err == nil {
						_ = writeAtomic(filepath.Join(dir, uffdHoldAck), tc.ack)
					}
				}()
			}
			var stderr bytes.Buffer
			if got := UffdHoldRequest([]string{dir, "300ms"}, &stderr); got != tc.want {
				t.Fatalf("exit %d, want %d: %s", got, tc.want, stderr.String())
			}
			if req, _ := os.ReadFile(filepath.Join(dir, uffdHoldReq)); tc.action == "post-restore" && string(req) != "4321\n" {
				t.Errorf("request %q, want the root pid", req)
			}
		})
	}
}

// eventually polls cond every millisecond until it holds, failing the
// test after within.
func eventually(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not within %v: %s", within, what)
		}
		time.Sleep(time.Millisecond)
	}
}

// ioctls of linux/userfaultfd.h: _IOWR(0xAA, nr, size).
const (
	uffdioAPI      = 0xC018AA3F // UFFDIO_API, struct uffdio_api (24 bytes)
	uffdioRegister = 0xC020AA00 // UFFDIO_REGISTER, struct uffdio_register (32 bytes)
)

// testUffdVictim is a restored task in miniature: one page registered
// for missing faults on a userfaultfd that only its "daemon" (a sleep
// it starts, holding it as fd 3) keeps open. It prints "ready DAEMON",
// reads the page when told "go", and prints what it read.
func testUffdVictim() int {
	fd, err := openUserfaultfd()
	if err != nil {
		fmt.Println("error", err)
		return 3
	}
	api := [3]uint64{0xAA}
	if _, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), uffdioAPI, uintptr(unsafe.Pointer(&api))); errno != 0 {
		fmt.Println("error UFFDIO_API", errno)
		return 3
	}
	mem, err := unix.Mmap(-1, 0, 4096, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		fmt.Println("error", err)
		return 3
	}
	reg := [4]uint64{uint64(uintptr(unsafe.Pointer(&mem[0]))), 4096, 1 /* MODE_MISSING */}
	if _, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), uffdioRegister, uintptr(unsafe.Pointer(&reg))); errno != 0 {
		fmt.Println("error UFFDIO_REGISTER", errno)
		return 3
	}
	f := os.NewFile(uintptr(fd), "userfaultfd")
	daemon := exec.Command("sleep", "60")
	daemon.ExtraFiles = []*os.File{f}
	if err := daemon.Start(); err != nil {
		fmt.Println("error", err)
		return 3
	}
	f.Close() // the daemon holds the only reference, as criu lazy-pages does
	fmt.Println("ready", daemon.Process.Pid)
	in := bufio.NewScanner(os.Stdin)
	for in.Scan() && in.Text() != "go" {
	}
	fmt.Println("read", mem[0])
	return 0
}

// TestHeldUffdBlocksFault shows on the kernel what the holder is for:
// the daemon holding a task's only userfaultfd dies, then the task reads
// a page never delivered. With nobody else holding it, the read returns
// zero (the gap); with the holder's duplicate (taken by its sync, with
// pidfd_getfd), the read blocks until the task is killed.
func TestHeldUffdBlocksFault(t *testing.T) {
	needUserfaultfd(t)
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	for _, hold := range []bool{false, true} {
		t.Run(map[bool]string{false: "not held", true: "held"}[hold], func(t *testing.T) {
			victim := exec.Command(exe, "__test-uffd-victim")
			stdin, err := victim.StdinPipe()
			if err != nil {
				t.Fatal(err)
			}
			stdout, err := victim.StdoutPipe()
			if err != nil {
				t.Fatal(err)
			}
			victim.Stderr = os.Stderr
			if err := victim.Start(); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = victim.Process.Kill(); _ = victim.Wait() })
			lines := make(chan string, 4)
			go func() {
				sc := bufio.NewScanner(stdout)
				for sc.Scan() {
					lines <- sc.Text()
				}
				close(lines)
			}()
			var daemon int
			select {
			case l := <-lines:
				if _, err := fmt.Sscanf(l, "ready %d", &daemon); err != nil {
					t.Fatalf("victim: %q", l)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("the victim never got ready")
			}
			t.Cleanup(func() { _ = syscall.Kill(daemon, syscall.SIGKILL) })
			pidfd, err := unix.PidfdOpen(daemon, 0)
			if err != nil {
				t.Fatal(err)
			}
			defer func() { _ = unix.Close(pidfd) }()
			k := &kernelUffd{daemon: daemon, daemonFD: pidfd}
			h := &uffdHolder{sys: k, daemon: daemon, held: map[int]bool{}, log: io.Discard}
			if hold {
				if err := h.sync(); err != nil || len(h.held) != 1 {
					t.Fatalf("sync: %v; holds %d userfaultfds, want the daemon's one", err, len(h.held))
				}
				defer h.releaseAll()
			}
			if err := syscall.Kill(daemon, syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
			eventually(t, 5*time.Second, "the daemon gone", k.DaemonGone)
			if _, err := io.WriteString(stdin, "go\n"); err != nil {
				t.Fatal(err)
			}
			select {
			case l := <-lines:
				if hold {
					t.Fatalf("the task read a page its dead daemon never delivered: %q (want a blocked fault)", l)
				}
				if l != "read 0" {
					t.Fatalf("without a holder the task read %q; the kernel gives a zero page (read 0)", l)
				}
			case <-time.After(500 * time.Millisecond):
				if !hold {
					t.Fatal("without a holder the fault blocked: the kernel no longer zero-fills; docs/migration.md's reason for the holder is gone")
				}
				// Blocked; SIGKILL ends it, as the supervisor's kill does.
				_ = victim.Process.Kill()
				done := make(chan error, 1)
				go func() { done <- victim.Wait() }()
				select {
				case err := <-done:
					t.Logf("the blocked task ended: %v", err)
				case <-time.After(5 * time.Second):
					t.Fatal("the task blocked on a held userfaultfd does not die of SIGKILL")
				}
			}
		})
	}
}
