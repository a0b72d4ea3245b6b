//go:build e2e

package e2e

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestKilledAtFreezeLeavesContainerRunning kills CRIU while the
// container's cgroup is FROZEN (CRIU freezes it, seizes every task, then
// thaws it). runc then reports the container paused and podman cannot exec
// into it; crhook must resume it, and its memory must be intact.
//
// The freeze point is hit for certain: the test stops CRIU (SIGSTOP) when
// it reads FROZEN, reads the state again while CRIU cannot change it, and
// only then kills CRIU; a few hundred processes in the container keep the
// window wide (CRIU seizes them one by one). A round where CRIU thawed
// first is not counted.
func TestKilledAtFreezeLeavesContainerRunning(t *testing.T) {
	need(t)
	layers(t, nil)
	mp := buildHelper(t, "mempattern")
	script := `i=0; while [ $i -lt 400 ]; do sleep 1000000 & i=$((i+1)); done; exec /mempattern 512`
	name := startCtr(t, runtime, []string{"-v", mp + ":/mempattern:ro"}, script)
	eventually(t, 60*time.Second, "512 MiB filled", func() bool {
		return strings.Contains(podman(t, "logs", name).out, "filled 512 MiB")
	})
	id := strings.TrimSpace(mustPodman(t, "inspect", "--format", "{{.Id}}", name))
	freezer := freezerState(t, name)
	round := verifyMemory(t, name, 0)

	for attempt := 1; attempt <= 5; attempt++ {
		done := make(chan result, 1)
		go func() { done <- podman(t, "container", "checkpoint", name) }()
		killed, r := killCRIUWhenFrozen(t, id, freezer, done)
		if !killed {
			// CRIU thawed before it could be caught: a normal checkpoint.
			t.Logf("attempt %d: CRIU was not caught with the cgroup frozen (%s)", attempt, strings.TrimSpace(r.err))
			if r.code == 0 {
				mustPodman(t, "container", "restore", name)
			}
			round = verifyMemory(t, name, round)
			continue
		}
		t.Logf("attempt %d: killed CRIU with the cgroup FROZEN; podman said:\n%s", attempt, r.err)
		if r.code == 0 {
			t.Fatal("checkpoint succeeded although CRIU was killed")
		}
		if !strings.Contains(r.err, "crhook resumed it") {
			t.Errorf("podman's stderr does not say crhook resumed the container:\n%s", r.err)
		}
		if st := readFile(t, freezer); st != "THAWED" {
			t.Errorf("freezer.state is %s after the failed checkpoint", st)
		}
		if !running(t, name) {
			t.Fatal("container not running after the failed checkpoint")
		}
		if out := mustPodman(t, "exec", name, "echo", "answers"); strings.TrimSpace(out) != "answers" {
			t.Fatalf("exec: %q", out)
		}
		verifyMemory(t, name, round)
		return
	}
	t.Fatal("CRIU was never caught with the container frozen in 5 checkpoints")
}

// freezerState is the freezer.state file of the container's cgroup (v1).
func freezerState(t *testing.T, name string) string {
	t.Helper()
	pid := strings.TrimSpace(mustPodman(t, "inspect", "--format", "{{.State.Pid}}", name))
	for _, l := range strings.Split(readFile(t, "/proc/"+pid+"/cgroup"), "\n") {
		if parts := strings.SplitN(l, ":", 3); len(parts) == 3 && parts[1] == "freezer" {
			path := filepath.Join("/sys/fs/cgroup/freezer", parts[2], "freezer.state")
			if _, err := os.Stat(path); err == nil {
				return path
			}
		}
	}
	t.Skip("no cgroup v1 freezer for the container: this test needs CRIU to freeze through freezer.state")
	return ""
}

// verifyMemory asks the container's mempattern to check every word of its
// memory and fails unless it answers ok; it returns the round it used.
func verifyMemory(t *testing.T, name string, round int) int {
	t.Helper()
	round++
	mustPodman(t, "exec", name, "kill", "-USR1", "1")
	var got string
	eventually(t, 30*time.Second, "mempattern verdict round "+strconv.Itoa(round), func() bool {
		got = strings.TrimSpace(podman(t, "exec", name, "cat", "/tmp/verify").out)
		f := strings.Fields(got)
		return len(f) == 3 && f[1] == strconv.Itoa(round)
	})
	if want := "ok " + strconv.Itoa(round) + " 512"; got != want {
		t.Fatalf("memory check: %q, want %q", got, want)
	}
	return round
}

// killCRIUWhenFrozen watches the CRIU process that dumps container id and
// SIGKILLs it at the freeze point. It returns whether it did, and the
// checkpoint's result.
func killCRIUWhenFrozen(t *testing.T, id, freezer string, done <-chan result) (bool, result) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	criu := 0
	for time.Now().Before(deadline) {
		select {
		case r := <-done:
			return false, r
		default:
		}
		if criu == 0 || !isCRIU(criu) {
			criu = findCRIU(id)
			continue
		}
		if readFile(t, freezer) != "FROZEN" {
			continue
		}
		if err := syscall.Kill(criu, syscall.SIGSTOP); err != nil {
			continue // it exited
		}
		if readFile(t, freezer) == "FROZEN" {
			_ = syscall.Kill(criu, syscall.SIGKILL)
			return true, <-done
		}
		_ = syscall.Kill(criu, syscall.SIGCONT)
	}
	t.Fatal("checkpoint did not end within 2 minutes")
	return false, result{}
}

func isCRIU(pid int) bool {
	comm, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/comm")
	return err == nil && string(comm) == "criu\n"
}

// findCRIU returns the pid of a criu whose parent is the runtime working
// on container id, or 0.
func findCRIU(id string) int {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return 0
	}
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || !isCRIU(pid) {
			continue
		}
		stat, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...
		f := strings.Fields(string(stat[bytes.LastIndexByte(stat, ')')+1:]))
		if len(f) < 2 {
			continue
		}
		cmdline, err := os.ReadFile("/proc/" + f[1] + "/cmdline")
		if err == nil && bytes.Contains(cmdline, []byte("checkpoint\x00")) && bytes.Contains(cmdline, []byte(id)) {
			return pid
		}
	}
	return 0
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(data))
}
