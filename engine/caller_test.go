package engine

import (
	"os"
	"testing"

	"github.com/crhook/crhook/engine/diagnose"
)

// TestCallerEngine: what each engine's invocation looks like to
// crhook-runtime (podman's and conmon's as seen on this machine with a
// logging wrapper; CRI-O's and containerd's from their sources).
func TestCallerEngine(t *testing.T) {
	const id = "170b7de888972b6bf70aaabd5ee15c08c70114956604e300d0083ef2c57ab584"
	userdata := "/var/lib/containers/storage/overlay-containers/" + id + "/userdata"
	podmanConmon := []string{"/usr/bin/conmon", "--api-version", "1", "-c", id, "-u", id, "-r", "/usr/libexec/crhook/crhook-runtime",
		"-b", userdata, "--exit-dir", "/run/libpod/exits", "--socket-dir-path", "/run/libpod/socket",
		"--exit-command", "/usr/bin/podman", "--exit-command-arg", "--root"}
	crioConmon := []string{"/usr/libexec/crio/conmon", "-b", "/run/containers/storage/overlay-containers/" + id + "/userdata", "-c", id,
		"--exit-dir", "/var/run/crio/exits", "--persist-dir", "/var/lib/containers/storage/overlay-containers/" + id + "/userdata",
		"-r", "/usr/libexec/crhook/crhook-runtime", "--runtime-arg", "--root=/run/runc", "--socket-dir-path", "/var/run/crio", "--syslog", "-u", id}
	task := "/run/containerd/io.containerd.runtime.v2.task/k8s.io/" + id
	for _, c := range []struct {
		name string
		c    caller
		want diagnose.Engine
	}{
		{"podman checkpoint", caller{
			args:   []string{"checkpoint", "--image-path", userdata + "/checkpoint", "--work-path", userdata, id},
			env:    []string{"PATH=/usr/bin", "XDG_RUNTIME_DIR="},
			parent: "podman", parentArgs: []string{"podman", "container", "checkpoint", "web"},
		}, diagnose.EnginePodman},
		{"podman restore under conmon", caller{
			args:   []string{"restore", "--bundle", userdata, "--detach", "--image-path", userdata + "/checkpoint", "--work-path", userdata, id},
			env:    []string{"_CONTAINERS_ROOTLESS_UID=", "_CONTAINERS_USERNS_CONFIGURED=", "_OCI_STARTPIPE=4", "_OCI_SYNCPIPE=3"},
			parent: "conmon", parentArgs: podmanConmon,
		}, diagnose.EnginePodman},
		{"podman conmon, environment cleared", caller{
			args: []string{"restore", id}, parent: "conmon", parentArgs: podmanConmon,
		}, diagnose.EnginePodman},
		{"podman system service", caller{args: []string{"checkpoint", id}, parent: "podman"}, diagnose.EnginePodman},
		{"CRI-O checkpoint", caller{
			args:   []string{"--root=/run/runc", "checkpoint", "--file-locks", "--image-path", "/var/lib/x/checkpoint", "--work-path", "/var/lib/x", id},
			env:    []string{"PATH=/usr/bin"},
			parent: "crio", parentArgs: []string{"/usr/bin/crio"},
		}, diagnose.EngineCRIO},
		{"CRI-O restore under conmon", caller{
			args:   []string{"--root=/run/runc", "restore", "--bundle", "/run/x", "--detach", id},
			env:    []string{"PATH=/usr/bin", "_OCI_SYNCPIPE=3", "_OCI_STARTPIPE=4"},
			parent: "conmon", parentArgs: crioConmon,
		}, diagnose.EngineCRIO},
		{"CRI-O with conmon-rs", caller{args: []string{"restore", id}, parent: "conmonrs"}, diagnose.EngineCRIO},
		{"containerd shim checkpoint", caller{
			args:   []string{"--root", "/run/containerd/runc/k8s.io", "--log", task + "/log.json", "--log-format", "json", "checkpoint", "--image-path", "/var/lib/x", "--work-path", "/var/lib/y", id},
			parent: "containerd-shim", parentArgs: []string{"/usr/bin/containerd-shim-runc-v2", "-namespace", "k8s.io", "-id", id},
		}, diagnose.EngineContainerd},
		{"containerd, root moved, parent unknown", caller{
			args: []string{"--root", "/srv/runc", "--log=" + task + "/log.json", "restore", id},
		}, diagnose.EngineContainerd},
		{"runc by hand", caller{
			args:   []string{"checkpoint", "--image-path", "/tmp/img", "web"},
			env:    []string{"HOME=/root", "TERM=xterm"},
			parent: "bash", parentArgs: []string{"-bash"},
		}, diagnose.EngineRunc},
		{"runc from a script, --root given", caller{args: []string{"--root", "/run/runc", "checkpoint", "web"}, parent: "sh"}, diagnose.EngineRunc},
	} {
		if got := c.c.engine(); got != c.want {
			t.Errorf("%s: engine %q, want %q", c.name, got, c.want)
		}
	}
}

// TestDetectEngineHere: run by go test, the parent is neither an engine
// nor conmon, so the caller is someone running the runtime by hand.
func TestDetectEngineHere(t *testing.T) {
	if _, err := os.Stat("/proc/self/comm"); err != nil {
		t.Skip("no /proc: ", err)
	}
	if got := DetectEngine([]string{"checkpoint", "x"}); got != diagnose.EngineRunc {
		t.Errorf("DetectEngine under go test = %q, want runc", got)
	}
	if got := DetectEngine([]string{"--root", "/run/containerd/runc/default", "checkpoint", "x"}); got != diagnose.EngineContainerd {
		t.Errorf("DetectEngine with containerd's --root = %q", got)
	}
}
