//go:build e2e

package e2e

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// tcpScript keeps an established loopback TCP connection busy inside the
// container: a client sends numbered lines every 20 ms to a server that
// appends them to /tmp/recv. Both ends are checkpointed together.
const tcpScript = `sleep 1000000 | nc -l -p 5000 > /tmp/recv & sleep 0.3; ` +
	`i=0; while :; do echo $i; i=$((i+1)); usleep 20000; done | nc 127.0.0.1 5000`

// received returns the lines the server got; a last line without its
// newline yet is left out.
func received(t *testing.T, name string) []string {
	t.Helper()
	r := podman(t, "exec", name, "cat", "/tmp/recv")
	if r.code != 0 {
		return nil
	}
	lines := strings.SplitAfter(r.out, "\n")
	var out []string
	for _, l := range lines {
		if strings.HasSuffix(l, "\n") {
			out = append(out, strings.TrimSuffix(l, "\n"))
		}
	}
	return out
}

// assertSequence checks every number arrived once and in order.
func assertSequence(t *testing.T, lines []string) {
	t.Helper()
	for i, l := range lines {
		if l != strconv.Itoa(i) {
			t.Fatalf("line %d is %q, want %d: bytes lost, duplicated or reordered (%d lines)", i, l, i, len(lines))
		}
	}
}

func startTCP(t *testing.T, w *wrapped, extra ...string) string {
	t.Helper()
	name := startCtr(t, w.podman, extra, tcpScript)
	eventually(t, 10*time.Second, "TCP stream flowing in "+name, func() bool { return len(received(t, name)) > 5 })
	return name
}

// checkpointFails asserts a checkpoint fails and leaves the container up.
// wantStderr must not depend on the wrapped runtime: runc and crun word
// their own errors differently, crhook's hints do not.
func checkpointFails(t *testing.T, w *wrapped, name string, wantStderr ...string) result {
	t.Helper()
	r := podman(t, "container", "checkpoint", name)
	w.note("checkpoint fails: %v", r.code != 0)
	if r.code == 0 {
		t.Fatalf("checkpoint of %s succeeded, want failure", name)
	}
	for _, want := range wantStderr {
		has := strings.Contains(r.err, want)
		w.note("stderr has %q: %v", want, has)
		if !has {
			t.Errorf("checkpoint stderr lacks %q:\n%s", want, r.err)
		}
	}
	up := running(t, name)
	w.note("running after the failed checkpoint: %v", up)
	if !up {
		t.Fatalf("container %s is not running after a failed checkpoint", name)
	}
	return r
}

// checkpointRestore checkpoints and restores, then asserts the stream
// keeps flowing with every number in order.
func checkpointRestore(t *testing.T, w *wrapped, name string) {
	t.Helper()
	mustPodman(t, "container", "checkpoint", name)
	w.note("checkpoint succeeds")
	if running(t, name) {
		t.Fatalf("%s still running after checkpoint", name)
	}
	mustPodman(t, "container", "restore", name)
	w.note("restore succeeds")
	before := len(received(t, name))
	eventually(t, 10*time.Second, "stream continues after restore", func() bool {
		return len(received(t, name)) > before+20
	})
	assertSequence(t, received(t, name))
	w.note("TCP stream continues, every number once and in order")
}

func TestTCPNeedsConfigThenWorks(t *testing.T) {
	forEachRuntime(t, func(t *testing.T, w *wrapped) {
		layers(t, nil)
		name := startTCP(t, w)
		checkpointFails(t, w, name, "crhook: CRIU dump failed (tcp-established)")
		if r := w.crhook(t, "config", "set", "tcp-established"); r.code != 0 {
			t.Fatalf("crhook config set: %s", r)
		}
		checkpointRestore(t, w, name)
	})
}

func TestDefaultConfAloneDoesNothingWithoutCrhook(t *testing.T) {
	// The gap crhook closes: the same edit under plain runc or crun is
	// ignored (both hand CRIU their own config file over RPC, and CRIU
	// then reads no default.conf).
	forEachRuntime(t, func(t *testing.T, w *wrapped) {
		layers(t, map[string]string{"/etc/criu/default.conf": "tcp-established\n"})
		name := startCtr(t, w.plain, nil, tcpScript)
		eventually(t, 10*time.Second, "stream flowing", func() bool { return len(received(t, name)) > 5 })
		checkpointFails(t, w, name)
	})
}

func TestFileLocks(t *testing.T) {
	locker := buildHelper(t, "locker")
	forEachRuntime(t, func(t *testing.T, w *wrapped) {
		layers(t, nil)
		name := startCtr(t, w.podman, []string{"-v", locker + ":/locker:ro"}, `exec /locker hold /tmp/lock`)
		locked := func() bool { return podman(t, "exec", name, "/locker", "try", "/tmp/lock").code == 1 }
		eventually(t, 10*time.Second, "lock held", locked)
		checkpointFails(t, w, name, "crhook config set file-locks")
		layers(t, map[string]string{"/etc/criu/default.conf": "# locks\nfile-locks\n"})
		mustPodman(t, "container", "checkpoint", name)
		mustPodman(t, "container", "restore", name)
		w.note("checkpoint and restore with file-locks in default.conf succeed")
		if !locked() {
			t.Fatal("after restore a second locker got the lock: the flock was not restored")
		}
		w.note("lock still held after restore")
	})
}

func TestAnnotationIsPerContainer(t *testing.T) {
	forEachRuntime(t, func(t *testing.T, w *wrapped) {
		layers(t, nil)
		with := startTCP(t, w, "--annotation", "io.crhook.criu.tcp-established=true")
		without := startTCP(t, w)
		checkpointFails(t, w, without, "crhook: CRIU dump failed (tcp-established)")
		checkpointRestore(t, w, with)
	})
}

func TestPrecedence(t *testing.T) {
	forEachRuntime(t, func(t *testing.T, w *wrapped) {
		// runc.conf is runc's own layer, and crun's when there is no
		// crun.conf (crun >= 1.26 falls back to it).
		layers(t, map[string]string{
			"/etc/criu/default.conf": "tcp-established\n",
			"/etc/criu/runc.conf":    "no-tcp-established\n",
		})
		plain := startTCP(t, w)
		checkpointFails(t, w, plain, "crhook: CRIU dump failed (tcp-established)")
		show := w.crhook(t, "config", "show", "--origin", "--container", plain)
		claims := strings.Contains(show.out, "tcp-established") && !strings.Contains(show.out, "no-tcp-established")
		w.note("config show claims tcp-established is on: %v", claims)
		if claims {
			t.Errorf("config show claims tcp-established is on:\n%s", show.out)
		}
		annotated := startTCP(t, w, "--annotation", "io.crhook.criu.tcp-established=true")
		checkpointRestore(t, w, annotated)
	})
}

func TestDeniedAnnotation(t *testing.T) {
	forEachRuntime(t, func(t *testing.T, w *wrapped) {
		layers(t, nil)
		dir := t.TempDir()
		marker := filepath.Join(dir, "ran")
		script := filepath.Join(dir, "x")
		if err := os.WriteFile(script, []byte("#!/bin/sh\ntouch "+marker+"\n"), 0o755); err != nil {
			t.Fatal(err)
		}
		name := startCtr(t, w.podman, []string{"--annotation", "io.crhook.criu.action-script=" + script}, "exec sleep 1000000")
		checkpointFails(t, w, name, "io.crhook.criu.action-script")
		_, err := os.Stat(marker)
		w.note("denied action script ran: %v", err == nil)
		if err == nil {
			t.Fatal("the denied action script ran")
		}
	})
}

func TestBrokenLayerFailsCheckpointOnly(t *testing.T) {
	forEachRuntime(t, func(t *testing.T, w *wrapped) {
		broken := "# ok\ntcp-established \"unterminated\n"
		// runc.conf is read by crhook only (crun's too, with no crun.conf),
		// so crhook reports it on checkpoint.
		layers(t, map[string]string{"/etc/criu/runc.conf": broken})
		name := startCtr(t, w.podman, nil, "exec sleep 1000000")
		checkpointFails(t, w, name, "/etc/criu/runc.conf:2:")
		// CRIU reads default.conf for every command, so podman's own CRIU
		// version probe fails before crhook runs; `crhook config check`
		// then names the line, and nothing else breaks.
		layers(t, map[string]string{"/etc/criu/default.conf": broken})
		checkpointFails(t, w, name)
		r := w.crhook(t, "config", "check")
		named := r.code == 1 && strings.Contains(r.err, "/etc/criu/default.conf:2:")
		w.note("config check names default.conf:2: %v", named)
		if !named {
			t.Errorf("crhook config check on a broken default.conf: %s", r)
		}
		r = podman(t, append(append([]string{"--runtime", w.podman, "run", "--rm"}, limits...), image, "echo", "ran")...)
		w.note("podman run with a broken layer: exit %d, %q", r.code, strings.TrimSpace(r.out))
		if r.code != 0 || strings.TrimSpace(r.out) != "ran" {
			t.Fatalf("podman run with a broken layer: %s", r)
		}
		if out := mustPodman(t, "exec", name, "echo", "exec"); strings.TrimSpace(out) != "exec" {
			t.Fatalf("exec: %q", out)
		}
		mustPodman(t, "stop", "-t", "1", name)
		mustPodman(t, "rm", name)
		w.note("exec, stop and rm work")
	})
}

func TestCheckpointVariants(t *testing.T) {
	forEachRuntime(t, func(t *testing.T, w *wrapped) {
		layers(t, map[string]string{"/etc/criu/default.conf": "tcp-established\n"})
		name := startTCP(t, w)

		// --leave-running: the container keeps going and the stream too.
		mustPodman(t, "container", "checkpoint", "--leave-running", name)
		if !running(t, name) {
			t.Fatal("not running after checkpoint --leave-running")
		}
		before := len(received(t, name))
		eventually(t, 10*time.Second, "stream continues after --leave-running", func() bool {
			return len(received(t, name)) > before+10
		})
		w.note("--leave-running: still running, stream continues")

		// --export, then --import under a new name while the original is gone.
		archive := filepath.Join(t.TempDir(), "ckpt.tar.gz")
		mustPodman(t, "container", "checkpoint", "--export", archive, name)
		copyName := name + "-copy"
		t.Cleanup(func() { podman(t, "rm", "-f", "-t", "0", copyName) })
		mustPodman(t, "container", "restore", "--import", archive, "--name", copyName)
		before = len(received(t, copyName))
		eventually(t, 10*time.Second, "imported copy streams", func() bool { return len(received(t, copyName)) > before+20 })
		assertSequence(t, received(t, copyName))
		w.note("--export/--import: the copy streams in order")

		// --keep leaves the checkpoint files behind after restore. A fresh
		// container: restoring the exported original again is podman's
		// business (it reapplies its own rootfs diff), not crhook's.
		kept := startTCP(t, w)
		mustPodman(t, "container", "checkpoint", kept)
		mustPodman(t, "container", "restore", "--keep", kept)
		before = len(received(t, kept))
		eventually(t, 10*time.Second, "stream continues after restore --keep", func() bool {
			return len(received(t, kept)) > before+10
		})
		assertSequence(t, received(t, kept))
		dir := strings.TrimSpace(mustPodman(t, "inspect", "--format", "{{.StaticDir}}", kept))
		if _, err := os.Stat(filepath.Join(dir, "checkpoint")); err != nil {
			t.Fatalf("restore --keep removed the checkpoint: %v", err)
		}
		w.note("restore --keep: streams, checkpoint kept")
	})
}

func TestContainerCreatedWithoutCrhook(t *testing.T) {
	need(t)
	layers(t, nil)
	name := startCtr(t, "runc", nil, "exec sleep 1000000")
	r := crhook(t, "config", "show", "--container", name)
	if r.code != 0 || !strings.Contains(r.out, "bypasses crhook") {
		t.Fatalf("config show --container on a runc container: %s", r)
	}
	if out := mustPodman(t, "exec", name, "echo", "fine"); strings.TrimSpace(out) != "fine" {
		t.Fatalf("exec: %q", out)
	}
	mustPodman(t, "stop", "-t", "1", name)
}

func TestCrunConfBeforeRuncConf(t *testing.T) {
	need(t)
	w := wrappers[1]
	if reason := w.missing(); reason != "" {
		t.Skip(reason)
	}
	// crun >= 1.26 reads crun.conf and only without it runc.conf; crhook
	// over crun resolves the same way (runc, of course, never reads
	// crun.conf: that difference is by design, so it is tested here and
	// not compared).
	layers(t, map[string]string{"/etc/criu/runc.conf": "tcp-established\n", "/etc/criu/crun.conf": "no-tcp-established\n"})
	name := startTCP(t, &w)
	checkpointFails(t, &w, name, "crhook: CRIU dump failed (tcp-established)")
	layers(t, map[string]string{"/etc/criu/runc.conf": "tcp-established\n"})
	checkpointRestore(t, &w, name)
}
