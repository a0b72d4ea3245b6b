//go:build e2e

package cri

import (
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/crhook/crhook/tests/hosttest"
)

// tcpScript keeps an established loopback TCP connection busy inside the
// container: a client sends numbered lines every 20 ms to a server that
// appends them to /tmp/recv. Both ends are checkpointed together.
var tcpScript = []string{"/bin/sh", "-c", `sleep 1000000 | nc -l -p 5000 > /tmp/recv & sleep 0.3; ` +
	`i=0; while :; do echo $i; i=$((i+1)); usleep 20000; done | nc 127.0.0.1 5000`}

// received returns the complete lines the server got.
func (n *node) received(t *testing.T, id string) []string {
	t.Helper()
	out, err := n.exec(t, id, "cat", "/tmp/recv")
	if err != nil {
		return nil
	}
	var lines []string
	for _, l := range strings.SplitAfter(out, "\n") {
		if strings.HasSuffix(l, "\n") {
			lines = append(lines, strings.TrimSuffix(l, "\n"))
		}
	}
	return lines
}

func assertSequence(t *testing.T, lines []string) {
	t.Helper()
	for i, l := range lines {
		if l != strconv.Itoa(i) {
			t.Fatalf("line %d is %q, want %d: bytes lost, duplicated or reordered (%d lines)", i, l, i, len(lines))
		}
	}
}

// flowing waits until the stream in container id has grown by more
// than grow lines.
func (n *node) flowing(t *testing.T, id string, grow int, what string) {
	t.Helper()
	before := len(n.received(t, id))
	eventually(t, 15*time.Second, what, func() bool { return len(n.received(t, id)) > before+grow })
}

// TestCRICheckpointRestoreTCP is the kubelet's checkpoint (KEP-2008) and
// a restore from its archive, on containerd with crhook as the runc
// shim's binary. containerd's shim never asks for --tcp-established, so
// the checkpoint succeeds only because of /etc/criu/default.conf, which
// crhook makes CRIU read.
func TestCRICheckpointRestoreTCP(t *testing.T) {
	need(t)
	layers(t, nil)
	n := startNode(t)

	pod, podCfg := n.runPod(t, "tcp-"+randHex(3), nil)
	ctr := n.startContainer(t, pod, podCfg, "tcp", n.busybox, tcpScript)
	n.flowing(t, ctr, 5, "TCP stream flowing in the pod")

	// What the kubelet sees on a node without config: the checkpoint
	// fails, and the container keeps running.
	if _, err := n.checkpoint(t, ctr); err == nil {
		t.Fatal("CRI CheckpointContainer succeeded without tcp-established configured")
	} else {
		t.Logf("without config, as the kubelet sees it: %v", err)
		if !strings.Contains(err.Error(), "checkpoint") {
			t.Errorf("CheckpointContainer error does not say what failed: %v", err)
		}
		// containerd passes on only the first line of the runtime's
		// output: crhook puts its diagnosis and the node's fix there.
		for _, want := range []string{"crhook: CRIU dump failed (tcp-established)", "fix: crhook config set tcp-established"} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("what the kubelet sees lacks %q: %v", want, err)
			}
		}
	}
	if !n.running(t, ctr) {
		t.Fatal("container not running after a failed checkpoint")
	}
	n.flowing(t, ctr, 5, "stream continues after the failed checkpoint")

	if out, err := exec.Command(crhookBin, "config", "set", "tcp-established").CombinedOutput(); err != nil {
		t.Fatalf("crhook config set tcp-established: %v\n%s", err, out)
	}
	archive, err := n.checkpoint(t, ctr)
	if err != nil {
		t.Fatalf("CRI CheckpointContainer with tcp-established in default.conf: %v%s\n%s", err, hosttest.CRIUErrors(err.Error()), n.logTail())
	}
	// The kubelet's checkpoint leaves the container running.
	if !n.running(t, ctr) {
		t.Fatal("container not running after checkpoint")
	}

	// Restore into a new pod: the archive is the container's image.
	pod2, podCfg2 := n.runPod(t, "tcp-restored-"+randHex(3), nil)
	restored := n.startContainer(t, pod2, podCfg2, "tcp", archive, nil)
	if !n.running(t, restored) {
		t.Fatal("restored container not running")
	}
	lines := n.received(t, restored)
	if len(lines) < 5 {
		t.Fatalf("restored container has %d lines in /tmp/recv, want the checkpointed stream", len(lines))
	}
	n.flowing(t, restored, 20, "the restored connection carries data")
	assertSequence(t, n.received(t, restored))
}

// TestCRIDefaultConfIgnoredWithoutCrhook is the gap: the same node with
// the stock runc as the shim's binary ignores /etc/criu/default.conf.
func TestCRIDefaultConfIgnoredWithoutCrhook(t *testing.T) {
	need(t)
	runc, err := exec.LookPath("runc")
	if err != nil {
		t.Skip(err)
	}
	layers(t, map[string]string{"/etc/criu/default.conf": "tcp-established\n"})
	n := startNodeWith(t, runc)
	pod, podCfg := n.runPod(t, "runc-"+randHex(3), nil)
	ctr := n.startContainer(t, pod, podCfg, "tcp", n.busybox, tcpScript)
	n.flowing(t, ctr, 5, "TCP stream flowing in the pod")
	if _, err := n.checkpoint(t, ctr); err == nil {
		t.Fatal("CRI CheckpointContainer through plain runc succeeded: default.conf was read after all")
	}
	if !n.running(t, ctr) {
		t.Fatal("container not running after a failed checkpoint")
	}
}

// TestCRIPodAnnotation: a pod annotation io.crhook.criu.tcp-established,
// passed to crhook through containerd's pod_annotations, is enough on a
// node without any CRIU config; a pod without it is refused.
func TestCRIPodAnnotation(t *testing.T) {
	need(t)
	layers(t, nil)
	n := startNode(t)

	pod, podCfg := n.runPod(t, "ann-"+randHex(3), map[string]string{"io.crhook.criu.tcp-established": "true"})
	ctr := n.startContainer(t, pod, podCfg, "tcp", n.busybox, tcpScript)
	plainPod, plainCfg := n.runPod(t, "plain-"+randHex(3), nil)
	plain := n.startContainer(t, plainPod, plainCfg, "tcp", n.busybox, tcpScript)
	n.flowing(t, ctr, 5, "TCP stream flowing in the annotated pod")
	n.flowing(t, plain, 5, "TCP stream flowing in the plain pod")

	if _, err := n.checkpoint(t, plain); err == nil {
		t.Error("CRI CheckpointContainer of the pod without the annotation succeeded")
	}
	if _, err := n.checkpoint(t, ctr); err != nil {
		t.Fatalf("CRI CheckpointContainer of the annotated pod: %v\n%s", err, n.logTail())
	}
}

// TestDocSnippet: docs/kubernetes.md quotes the crhook part of the
// containerd config these tests run, byte for byte.
func TestDocSnippet(t *testing.T) {
	const begin, end = "# --- crhook: begin (docs/kubernetes.md) ---\n", "# --- crhook: end ---\n"
	i, j := strings.Index(nodeConfig, begin), strings.Index(nodeConfig, end)
	if i < 0 || j < i {
		t.Fatal("nodeConfig lacks the crhook begin/end markers")
	}
	snippet := strings.ReplaceAll(nodeConfig[i+len(begin):j], "{{.BinaryName}}", crhookRuntime)
	doc, err := os.ReadFile("../../docs/kubernetes.md")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(doc), "```toml\n"+snippet+"```\n") {
		t.Errorf("docs/kubernetes.md does not quote the tested containerd config:\n%s", snippet)
	}
}
