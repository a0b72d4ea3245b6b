package engine

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// These tests run the real shim on the real host (OSHost): this test
// binary as crhook-runtime (TestMain), over the same fake runtime. They
// show what only a process of its own can: that pass-through is one
// execve, and that real signals reach a child-run runtime.

// command is crhook-runtime (this test binary) on f's tree.
func (f *fake) command(args ...string) *exec.Cmd {
	f.t.Helper()
	self, err := os.Executable()
	if err != nil {
		f.t.Fatal(err)
	}
	bin := filepath.Join(f.root, "crhook-runtime")
	if _, err := os.Lstat(bin); err != nil {
		if err := os.Symlink(self, bin); err != nil {
			f.t.Fatal(err)
		}
	}
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), "CRHOOK_TEST_ROOT="+f.root, "CRHOOK_CONFIG=")
	return cmd
}

// TestPassThroughIsExec: pass-through replaces crhook with the runtime in
// the same process (same pid), which keeps crhook's fds, stdout and exit
// status, and gets the arguments exactly.
func TestPassThroughIsExec(t *testing.T) {
	f := newFake(t)
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	f.knob("fd-state", "3") // ExtraFiles[0] is fd 3, without CLOEXEC
	args := []string{"--root", f.runcRoot(), "--log-format", "json", "state", testID}
	cmd := f.command(args...)
	cmd.ExtraFiles = []*os.File{w}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("%v: %s", err, stderr.String())
	}
	if pid := strings.TrimSpace(f.read("pid")); pid != strconv.Itoa(cmd.Process.Pid) {
		t.Errorf("the runtime ran as pid %s, crhook as %d: not an execve", pid, cmd.Process.Pid)
	}
	if got := strings.TrimSpace(f.read("fds")); got != "3 open" {
		t.Errorf("fd 3 in the runtime: %q, want open", got)
	}
	if got := f.calls(); got != strings.Join(args, " ") {
		t.Errorf("runtime got %q, want %q", got, strings.Join(args, " "))
	}
	if !strings.HasPrefix(stdout.String(), `{"status":"running"`) {
		t.Errorf("stdout %q is not the runtime's answer", stdout.String())
	}

	f.knob("exit-state", "7")
	cmd = f.command("state", testID)
	err = cmd.Run()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 7 {
		t.Errorf("exit %v, want the runtime's 7", err)
	}
}

// TestRealSignalsReachTheChild: a signal sent to crhook-runtime while it
// runs `delete` as a child is passed on; the runtime's status is crhook's.
func TestRealSignalsReachTheChild(t *testing.T) {
	f := newFake(t)
	f.knob("wait-delete", "")
	cmd := f.command("delete", testID)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill() })
	f.waitFor("ready", 10*time.Second)
	if err := cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(f.read("signals"), "HUP") {
		if time.Now().After(deadline) {
			t.Fatalf("SIGHUP never reached the runtime; stderr: %s", stderr.String())
		}
		time.Sleep(5 * time.Millisecond)
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	err := cmd.Wait()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 42 {
		t.Errorf("crhook-runtime ended with %v, want the runtime's 42; stderr: %s", err, stderr.String())
	}
}
