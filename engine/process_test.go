package engine

import (
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/crhook/crhook/config"
)

// TestChildExitStatus: a step that runs the runtime as a child (delete
// here) ends with the runtime's exit status, 128+N when signal N killed
// it, and 127 when it cannot start; pass-through ends as the exec'd
// runtime does.
func TestChildExitStatus(t *testing.T) {
	tests := []struct {
		name  string
		knobs map[string]string
		args  []string
		want  int
	}{
		{name: "delete succeeds", args: []string{"delete", testID}, want: 0},
		{name: "delete fails with 3", knobs: map[string]string{"exit-delete": "3"}, args: []string{"delete", testID}, want: 3},
		{name: "delete killed by SIGKILL", knobs: map[string]string{"killed-delete": ""}, args: []string{"delete", testID}, want: 128 + int(syscall.SIGKILL)},
		{name: "pass-through kill fails with 5", knobs: map[string]string{"exit-kill": "5"}, args: []string{"kill", testID, "TERM"}, want: 5},
		{name: "checkpoint fails with 9", knobs: map[string]string{"exit-checkpoint": "9"}, args: []string{"checkpoint", "--image-path", "IMG", testID}, want: 9},
		{name: "restore fails with 4", knobs: map[string]string{"exit-restore": "4"}, args: []string{"restore", "--bundle", "BUNDLE", "--image-path", "IMG", testID}, want: 4},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFake(t)
			for k, v := range tc.knobs {
				f.knob(k, v)
			}
			f.stateAnnotations(map[string]string{CRIUConfigAnnotation: f.generated()})
			bundle := f.bundle(nil)
			args := append([]string{"--root", f.runcRoot()}, tc.args...)
			for i, a := range args {
				args[i] = strings.NewReplacer("IMG", f.root, "BUNDLE", bundle).Replace(a)
			}
			if code, stderr := f.shim(args...); code != tc.want {
				t.Errorf("exit %d, want %d; stderr:\n%s", code, tc.want, stderr)
			}
		})
	}
}

// TestChildCannotStart: a runtime that disappears between lookup and
// start is reported, with 127, the shell's "cannot run".
func TestChildCannotStart(t *testing.T) {
	f := newFake(t)
	s, err := config.LoadSettings(f.paths)
	if err != nil {
		t.Fatal(err)
	}
	r := &runner{inv: parseArgs([]string{"delete", testID}), rt: &binary{path: f.bin + ".gone", host: f.host(&syncBuffer{})}, settings: s, stderr: &syncBuffer{}}
	if code, started := r.run(nil); code != 127 || started {
		t.Errorf("exit %d, started %v; want 127, not started", code, started)
	}
	if !strings.Contains(r.stderr.(*syncBuffer).String(), "start "+f.bin+".gone") {
		t.Errorf("stderr: %s", r.stderr)
	}
	if _, err := exitStatus("x", os.ErrPermission); err == nil {
		t.Error("a wait error that is no exit status was not reported")
	}
}

// TestSignalsReachTheChild: every signal crhook gets while the runtime
// runs as its child is passed on, but SIGCHLD (crhook's own) and SIGURG
// (the Go scheduler's); the relay stops when the child is gone.
func TestSignalsReachTheChild(t *testing.T) {
	f := newFake(t)
	f.knob("wait-delete", "")
	done := make(chan int, 1)
	go func() {
		code, _ := f.shim("delete", testID)
		done <- code
	}()
	var relay chan<- os.Signal
	select {
	case relay = <-f.notified:
	case <-time.After(10 * time.Second):
		t.Fatal("the shim never listened for signals")
	}
	f.waitFor("ready", 10*time.Second)
	for _, s := range []os.Signal{syscall.SIGCHLD, syscall.SIGURG, syscall.SIGHUP, syscall.SIGUSR1} {
		relay <- s
	}
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(f.read("signals"), "USR1") {
		if time.Now().After(deadline) {
			t.Fatalf("the runtime got %q, want HUP and USR1", f.read("signals"))
		}
		time.Sleep(5 * time.Millisecond)
	}
	relay <- syscall.SIGTERM
	select {
	case code := <-done:
		if code != 42 {
			t.Errorf("exit %d, want the runtime's 42", code)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("SIGTERM did not end the runtime")
	}
	if got := strings.Fields(f.read("signals")); strings.Join(got, " ") != "HUP USR1 TERM" {
		t.Errorf("the runtime got %q, want HUP USR1 TERM (no URG)", got)
	}
	if !f.stopped {
		t.Error("the signal relay was not stopped")
	}
}

// TestChildInheritsFds: conmon hands the runtime console sockets and sync
// pipes without CLOEXEC; a child-run runtime must get them too. A
// CLOEXEC fd (Go's default) stays crhook's.
func TestChildInheritsFds(t *testing.T) {
	for _, cloexec := range []bool{false, true} {
		t.Run("cloexec="+strconv.FormatBool(cloexec), func(t *testing.T) {
			f := newFake(t)
			r, w, err := os.Pipe()
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
			defer w.Close()
			fd := int(w.Fd()) // Fd leaves the pipe in blocking mode, as conmon's are
			if !cloexec {
				if _, _, e := syscall.Syscall(syscall.SYS_FCNTL, uintptr(fd), syscall.F_SETFD, 0); e != 0 {
					t.Fatal(e)
				}
			}
			f.knob("fd-delete", strconv.Itoa(fd))
			if code, stderr := f.shim("delete", testID); code != 0 {
				t.Fatalf("exit %d: %s", code, stderr)
			}
			want := strconv.Itoa(fd) + " open"
			if cloexec {
				want = strconv.Itoa(fd) + " closed"
			}
			if got := strings.TrimSpace(f.read("fds")); got != want {
				t.Errorf("runtime saw fd %q, want %q", got, want)
			}
		})
	}
}

// TestOutputTimesOut: a runtime query that never answers is killed after
// the query timeout and reported, so a checkpoint cannot hang on it.
func TestOutputTimesOut(t *testing.T) {
	f := newFake(t)
	f.knob("wait-state", "")
	b := &binary{path: f.bin, host: f.host(&syncBuffer{}), queryTimeout: 200 * time.Millisecond}
	start := time.Now()
	_, err := b.Output([]string{"state", testID})
	if err == nil || !strings.Contains(err.Error(), "no answer within 200ms, killed") || !strings.Contains(err.Error(), " state "+testID) {
		t.Fatalf("err = %v, want the command and its timeout", err)
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("Output took %v", took)
	}
}
