package engine

import (
	"errors"
	"io/fs"
	"os/exec"
	"syscall"
	"testing"
	"time"
)

// startGroup runs argv in a process group of its own, as lazy.go's
// supervisor runs CRIU, and kills the group when the test ends.
func startGroup(t *testing.T, argv ...string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %q: %v", argv, err)
	}
	t.Cleanup(func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		_ = cmd.Wait()
	})
	return cmd
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("after 10 s: %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestProcessGroup reads real process groups from /proc: a supervisor's
// shell and timer alone do not count as work, any other process does,
// and a group whose processes all ended is gone.
func TestProcessGroup(t *testing.T) {
	if _, err := exec.LookPath("sleep"); err != nil {
		t.Skip("no sleep command: ", err)
	}
	idle := startGroup(t, "sleep", "30")
	pgid := idle.Process.Pid
	waitFor(t, "the sleep's group appears in /proc", func() bool { return !GroupGone(pgid) })
	if GroupWorks(pgid) {
		t.Errorf("GroupWorks(%d) = true for a group running only sleep", pgid)
	}

	worker := startGroup(t, "tail", "-f", "/dev/null")
	wpgid := worker.Process.Pid
	waitFor(t, "tail's group counts as working", func() bool { return GroupWorks(wpgid) })

	if err := syscall.Kill(-pgid, syscall.SIGKILL); err != nil {
		t.Fatalf("kill group %d: %v", pgid, err)
	}
	_ = idle.Wait() // reaped: a zombie is not a member
	waitFor(t, "the killed group is gone", func() bool { return GroupGone(pgid) })
	if GroupWorks(pgid) {
		t.Errorf("GroupWorks(%d) = true for a group that is gone", pgid)
	}
}

func TestStartErrorUnwraps(t *testing.T) {
	err := error(startError{err: &fs.PathError{Op: "fork/exec", Path: "/usr/sbin/runc", Err: fs.ErrPermission}})
	if !errors.Is(err, fs.ErrPermission) {
		t.Errorf("errors.Is(%v, fs.ErrPermission) = false; a runtime that cannot start must keep its cause", err)
	}
}

func TestCriuBinary(t *testing.T) {
	if got := CriuBinary("crhook-no-such-criu"); got != "crhook-no-such-criu" {
		t.Errorf("CriuBinary(unknown) = %q, want the name back for the runtime to report", got)
	}
	sh, err := exec.LookPath("sh")
	if err != nil {
		t.Skip("no sh in PATH: ", err)
	}
	if got := CriuBinary("sh"); got != sh {
		t.Errorf("CriuBinary(%q) = %q, want %q from PATH", "sh", got, sh)
	}
}
