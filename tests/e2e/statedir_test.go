//go:build e2e

package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestCheckpointRefusesUnsafeStateDir: a planted link at
// /run/crhook/containers/ID, or a state directory others can write, makes
// checkpoint refuse before anything is dumped: the link's target is left
// alone and the container keeps running.
func TestCheckpointRefusesUnsafeStateDir(t *testing.T) {
	need(t)
	layers(t, map[string]string{"/etc/criu/default.conf": "tcp-established\n"})
	const stateDir = "/run/crhook"
	if err := os.MkdirAll(filepath.Join(stateDir, "containers"), 0o700); err != nil {
		t.Fatal(err)
	}
	ctr := startCtr(t, runtime, nil, "while :; do sleep 0.05; done")
	id := strings.TrimSpace(mustPodman(t, "inspect", "--format", "{{.Id}}", ctr))
	idDir := filepath.Join(stateDir, "containers", id)

	t.Run("linked containers/ID", func(t *testing.T) {
		victim := t.TempDir()
		if err := os.Chmod(victim, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(victim, "criu.conf"), []byte("keep\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		_ = os.RemoveAll(idDir)
		if err := os.Symlink(victim, idDir); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = os.Remove(idDir) })
		r := podman(t, "container", "checkpoint", ctr)
		t.Logf("podman container checkpoint: %s", r)
		if r.code == 0 || !strings.Contains(r.err, "symbolic link") || !strings.Contains(r.err, idDir) {
			t.Errorf("checkpoint through a linked %s: %s; want a refusal naming the link", idDir, r)
		}
		if fi, err := os.Stat(victim); err != nil || fi.Mode().Perm() != 0o755 {
			t.Errorf("link target mode %v, %v; want 0755 untouched", fi.Mode(), err)
		}
		if b, _ := os.ReadFile(filepath.Join(victim, "criu.conf")); string(b) != "keep\n" {
			t.Errorf("link target's criu.conf now %q", b)
		}
		if !running(t, ctr) {
			t.Errorf("container not running after the refused checkpoint")
		}
	})

	t.Run("group-writable state_dir", func(t *testing.T) {
		fi, err := os.Stat(stateDir)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(stateDir, 0o770); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = os.Chmod(stateDir, fi.Mode().Perm()) })
		r := podman(t, "container", "checkpoint", ctr)
		t.Logf("podman container checkpoint: %s", r)
		if r.code == 0 || !strings.Contains(r.err, "writable by group or others") || !strings.Contains(r.err, `chmod go-w "/run/crhook"`) {
			t.Errorf("checkpoint with a group-writable %s: %s; want a refusal with the fix", stateDir, r)
		}
		if !running(t, ctr) {
			t.Errorf("container not running after the refused checkpoint")
		}
	})
}
