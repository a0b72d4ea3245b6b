//go:build e2e

package e2e

import (
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Each failure crhook can explain and this host can provoke, through
// podman: podman's stderr must carry the fix, and the container must live.

func assertHint(t *testing.T, w *wrapped, r result, want ...string) {
	t.Helper()
	for _, s := range want {
		has := strings.Contains(r.err, s)
		if w != nil {
			w.note("hint has %q: %v", s, has)
		}
		if !has {
			t.Errorf("podman stderr lacks %q:\n%s", s, r.err)
		}
	}
}

func TestHintTCP(t *testing.T) {
	forEachRuntime(t, func(t *testing.T, w *wrapped) {
		layers(t, nil)
		name := startTCP(t, w)
		r := checkpointFails(t, w, name)
		assertHint(t, w, r, "crhook: CRIU dump failed (tcp-established)", "Connected TCP socket",
			"crhook config set tcp-established", "podman run --annotation io.crhook.criu.tcp-established=true",
			"podman container checkpoint --tcp-established", "Config in effect: /run/crhook/containers/")
	})
}

func TestHintFileLocks(t *testing.T) {
	locker := buildHelper(t, "locker")
	forEachRuntime(t, func(t *testing.T, w *wrapped) {
		layers(t, nil)
		name := startCtr(t, w.podman, []string{"-v", locker + ":/locker:ro"}, `exec /locker hold /tmp/lock`)
		eventually(t, 10*time.Second, "lock held", func() bool {
			return podman(t, "exec", name, "/locker", "try", "/tmp/lock").code == 1
		})
		assertHint(t, w, checkpointFails(t, w, name), "crhook config set file-locks", "podman container checkpoint --file-locks")
	})
}

func TestHintExternalUnixSocket(t *testing.T) {
	forEachRuntime(t, hintExternalUnixSocket)
}

func hintExternalUnixSocket(t *testing.T, w *wrapped) {
	layers(t, nil)
	dir := t.TempDir()
	l, err := net.Listen("unix", filepath.Join(dir, "sock"))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = l.Close() }()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			defer func() { _ = c.Close() }()
		}
	}()
	peer := buildHelper(t, "unixpeer")
	name := startCtr(t, w.podman, []string{"-v", peer + ":/unixpeer:ro", "-v", dir + ":/s"}, "exec /unixpeer /s/sock")
	eventually(t, 10*time.Second, "connected", func() bool { return strings.Contains(mustPodman(t, "logs", name), "connected") })
	assertHint(t, w, checkpointFails(t, w, name), "crhook config set ext-unix-sk")
}

func TestHintPreDump(t *testing.T) {
	need(t)
	layers(t, nil)
	name := startCtr(t, runtime, nil, "exec sleep 1000000")
	r := podman(t, "container", "checkpoint", "--pre-checkpoint", name)
	if r.code == 0 {
		t.Skip("pre-checkpoint worked: this kernel has soft-dirty tracking")
	}
	assertHint(t, nil, r, "crhook: CRIU pre-dump failed", "soft-dirty")
	if !running(t, name) {
		t.Fatal("container stopped after a failed pre-checkpoint")
	}
}

func TestHintPIDInUse(t *testing.T) {
	need(t)
	layers(t, nil)
	// With the host PID namespace the copy must reuse the original's PIDs,
	// which are still taken: the restore clashes.
	name := startCtr(t, runtime, []string{"--pid=host"}, "exec sleep 1000000")
	archive := filepath.Join(t.TempDir(), "ckpt.tar.gz")
	mustPodman(t, "container", "checkpoint", "--leave-running", "--export", archive, name)
	copyName := name + "-copy"
	t.Cleanup(func() { podman(t, "rm", "-f", "-t", "0", copyName) })
	r := podman(t, "container", "restore", "--import", archive, "--name", copyName)
	if r.code == 0 {
		t.Fatal("restore of a copy whose PIDs are taken succeeded")
	}
	assertHint(t, nil, r, "(pid-in-use)", "Can't fork for", "ps -o pid,user,args -p")
	if !running(t, name) {
		t.Fatal("the original stopped")
	}
}
