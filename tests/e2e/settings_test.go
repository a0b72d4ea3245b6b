//go:build e2e

package e2e

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// dropIn writes a crhook.toml drop-in for one test and removes it after.
func dropIn(t *testing.T, name, content string) {
	t.Helper()
	path := filepath.Join("/etc/crhook/crhook.d", name)
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.Remove(path) })
}

// TestBrokenSettingsKeepConfiguredRuntime: a container created by crhook
// on crun must stay reachable through crun when an unrelated setting
// breaks later. Before, crhook fell back to runc: `podman kill` failed
// with "container does not exist" and `podman rm -f` succeeded while the
// container kept running.
func TestBrokenSettingsKeepConfiguredRuntime(t *testing.T) {
	need(t)
	if _, err := os.Stat("/usr/bin/crun"); err != nil {
		t.Skip("needs crun at /usr/bin/crun (apt-get install crun)")
	}
	layers(t, nil)
	dropIn(t, "50-e2e-runtime.toml", "[runtime]\npath = \"/usr/bin/crun\"\n")
	ctr := startCtr(t, runtime, nil, `trap 'exit 3' USR1; while :; do sleep 0.05; done`)
	pid, err := strconv.Atoi(strings.TrimSpace(mustPodman(t, "inspect", "--format", "{{.State.Pid}}", ctr)))
	if err != nil || pid <= 0 {
		t.Fatalf("container pid: %v", err)
	}
	// Whatever happens, no container process outlives the test.
	t.Cleanup(func() { _ = syscall.Kill(pid, syscall.SIGKILL) })
	ctr2 := startCtr(t, runtime, nil, "while :; do sleep 0.05; done")
	pid2, _ := strconv.Atoi(strings.TrimSpace(mustPodman(t, "inspect", "--format", "{{.State.Pid}}", ctr2)))
	t.Cleanup(func() { _ = syscall.Kill(pid2, syscall.SIGKILL) })

	dropIn(t, "60-e2e-broken.toml", "[criu]\ndeny = [\"no-such-option\"]\n")
	if r := podman(t, "inspect", "--format", "{{.State.Status}}", ctr); r.code != 0 || strings.TrimSpace(r.out) != "running" {
		t.Fatalf("podman inspect with a broken setting: %s", r)
	}
	if r := podman(t, "rm", "-f", "-t", "0", ctr2); r.code != 0 {
		t.Errorf("podman rm -f with a broken setting: %s", r)
	}
	deadline := time.Now().Add(10 * time.Second)
	for syscall.Kill(pid2, 0) == nil && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if syscall.Kill(pid2, 0) == nil {
		t.Errorf("after podman rm -f the container's process %d still runs: leaked", pid2)
	}
	if r := podman(t, "kill", "--signal", "USR1", ctr); r.code != 0 {
		t.Fatalf("podman kill with a broken setting: %s", r)
	}
	eventually(t, 10*time.Second, "container exits on USR1", func() bool { return !running(t, ctr) })
	if code := strings.TrimSpace(mustPodman(t, "inspect", "--format", "{{.State.ExitCode}}", ctr)); code != "3" {
		t.Errorf("exit code %s, want 3 (the USR1 trap ran)", code)
	}
}
