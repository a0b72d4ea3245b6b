//go:build e2e

package cri

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"text/template"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/crhook/crhook/tests/hosttest"
)

// nodeConfig is the containerd config a Kubernetes node would use to run
// pods through crhook: the CRI plugin's runc v2 runtime with crhook as
// the binary it runs, and the crhook annotations passed to it. The same
// runtime section is quoted in docs/kubernetes.md; TestDocSnippets keeps
// the two equal.
const nodeConfig = `version = 3
root = '{{.Root}}'
state = '{{.State}}'
# Plugins a test node does not need and that would touch shared host paths.
disabled_plugins = ['io.containerd.nri.v1.nri', 'io.containerd.internal.v1.opt', 'io.containerd.snapshotter.v1.btrfs', 'io.containerd.snapshotter.v1.zfs', 'io.containerd.snapshotter.v1.devmapper', 'io.containerd.snapshotter.v1.blockfile', 'io.containerd.snapshotter.v1.erofs', 'io.containerd.tracing.processor.v1.otlp', 'io.containerd.internal.v1.tracing']

[grpc]
  address = '{{.Socket}}'

[ttrpc]
  address = '{{.Socket}}.ttrpc'

[debug]
  level = 'info'

[plugins.'io.containerd.cri.v1.images'.pinned_images]
  sandbox = '{{.Pause}}'

# This host lacks CAP_SYS_RESOURCE, so runc cannot lower oom_score_adj to
# the pause container's -998; nodes that have it leave this out.
[plugins.'io.containerd.cri.v1.runtime']
  restrict_oom_score_adj = true

[plugins.'io.containerd.cri.v1.runtime'.cni]
  bin_dirs = ['{{.CNIBin}}']
  conf_dir = '{{.CNIConf}}'

[plugins.'io.containerd.grpc.v1.cri']
  stream_server_address = '127.0.0.1'
  stream_server_port = '0'

# --- crhook: begin (docs/kubernetes.md) ---
[plugins.'io.containerd.cri.v1.runtime'.containerd]
  default_runtime_name = 'crhook'

[plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.crhook]
  runtime_type = 'io.containerd.runc.v2'
  # Per-pod and per-container CRIU options: io.crhook.criu.<option>.
  pod_annotations = ['io.crhook.criu.*']
  container_annotations = ['io.crhook.criu.*']

[plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.crhook.options]
  BinaryName = '{{.BinaryName}}'
# --- crhook: end ---
  Root = '{{.State}}/runc'
`

const cniConfig = `{
  "cniVersion": "1.0.0",
  "name": "crhook-test",
  "plugins": [{
    "type": "bridge",
    "bridge": "{{.Bridge}}",
    "isGateway": false,
    "ipMasq": false,
    "ipam": {"type": "host-local", "ranges": [[{"subnet": "198.18.213.0/24"}]], "dataDir": "{{.IPAM}}"}
  }]
}
`

// node is one containerd started for a test, with a CRI client.
type node struct {
	t                   *testing.T
	dir, root, state    string
	socket, bridge      string
	cmd                 *exec.Cmd
	log                 *os.File
	rt                  runtimeapi.RuntimeServiceClient
	img                 runtimeapi.ImageServiceClient
	conn                *grpc.ClientConn
	pods                []string
	registry            *imageRegistry
	pause, busybox      string
	checkpointDir, logs string
}

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func render(t *testing.T, path, tmpl string, data any) {
	t.Helper()
	var b bytes.Buffer
	if err := template.Must(template.New(path).Parse(tmpl)).Execute(&b, data); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
}

// startNode starts containerd with its own root, state, socket and CNI
// config, pushes the test images to an in-process registry on loopback
// and pulls them through CRI, as a node would. Everything is removed when
// the test ends.
func startNode(t *testing.T) *node { return startNodeWith(t, crhookRuntime) }

// startNodeWith starts a node whose runc shim runs binary.
func startNodeWith(t *testing.T, binary string) *node {
	t.Helper()
	id := randHex(4)
	n := &node{
		t:      t,
		dir:    t.TempDir(),
		root:   "/var/lib/crhook-test/containerd-" + id,
		state:  "/run/crhook-test/containerd-" + id,
		bridge: "crhk" + id,
	}
	n.socket = filepath.Join(n.state, "containerd.sock")
	n.checkpointDir = filepath.Join(n.dir, "checkpoints")
	n.logs = filepath.Join(n.dir, "pods")
	for _, d := range []string{n.root, n.state, filepath.Join(n.dir, "cni"), n.checkpointDir, n.logs} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(n.stop)

	n.registry = startRegistry(t)
	n.pause = n.registry.push(t, "crhook-test/pause:1", []string{"/bin/sh", "-c", pauseScript})
	n.busybox = n.registry.push(t, "crhook-test/busybox:1", nil)

	render(t, filepath.Join(n.dir, "config.toml"), nodeConfig, map[string]string{
		"Root": n.root, "State": n.state, "Socket": n.socket, "Pause": n.pause,
		"CNIBin": cniBinDir, "CNIConf": filepath.Join(n.dir, "cni"), "BinaryName": binary,
	})
	render(t, filepath.Join(n.dir, "cni", "10-crhook-test.conflist"), cniConfig, map[string]string{
		"Bridge": n.bridge, "IPAM": filepath.Join(n.dir, "ipam"),
	})

	log, err := os.OpenFile(filepath.Join(n.dir, "containerd.log"), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	n.log = log
	n.cmd = exec.Command(filepath.Join(containerdDir, "containerd"), "--config", filepath.Join(n.dir, "config.toml"))
	// The runc shim is found on PATH; CRIU (containerd's version probe
	// and libcriu-less runc) in /usr/local/sbin.
	n.cmd.Env = append(os.Environ(), "PATH="+containerdDir+":/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
	n.cmd.Stdout, n.cmd.Stderr = log, log
	n.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := n.cmd.Start(); err != nil {
		t.Fatal(err)
	}

	n.conn, err = grpc.NewClient("unix://"+n.socket, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	n.rt = runtimeapi.NewRuntimeServiceClient(n.conn)
	n.img = runtimeapi.NewImageServiceClient(n.conn)
	eventually(t, 30*time.Second, "containerd answers CRI Version on "+n.socket, func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_, err := n.rt.Version(ctx, &runtimeapi.VersionRequest{})
		return err == nil
	})
	for _, ref := range []string{n.pause, n.busybox} {
		if _, err := n.img.PullImage(ctx(t), &runtimeapi.PullImageRequest{Image: &runtimeapi.ImageSpec{Image: ref}}); err != nil {
			t.Fatalf("CRI PullImage %s: %v\n%s", ref, err, n.logTail())
		}
	}
	return n
}

// pauseScript is the pod's infra process: it only waits, and exits on
// the signals a pod stop sends.
const pauseScript = `trap 'exit 0' TERM INT; while :; do sleep 3600 & wait $!; done`

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return c
}

func (n *node) logTail() string {
	data, _ := os.ReadFile(filepath.Join(n.dir, "containerd.log"))
	lines := strings.Split(strings.TrimSpace(string(data)), "\n")
	if len(lines) > 40 {
		lines = lines[len(lines)-40:]
	}
	return "containerd log (last lines):\n" + strings.Join(lines, "\n")
}

// stop removes every pod, stops containerd, ends the shims it started
// (by pid, found by this node's socket in their command line), unmounts
// what is left below its root and state, and deletes them.
func (n *node) stop() {
	t := n.t
	if n.rt != nil {
		for _, p := range n.pods {
			c, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			_, _ = n.rt.StopPodSandbox(c, &runtimeapi.StopPodSandboxRequest{PodSandboxId: p})
			_, _ = n.rt.RemovePodSandbox(c, &runtimeapi.RemovePodSandboxRequest{PodSandboxId: p})
			cancel()
		}
	}
	if n.conn != nil {
		_ = n.conn.Close()
	}
	if t.Failed() && n.log != nil {
		t.Log(n.logTail())
	}
	if n.cmd != nil && n.cmd.Process != nil {
		_ = n.cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan error, 1)
		go func() { done <- n.cmd.Wait() }()
		select {
		case err := <-done:
			if err != nil {
				t.Logf("containerd exited: %v", err)
			}
		case <-time.After(20 * time.Second):
			_ = n.cmd.Process.Kill()
			if err := <-done; err != nil {
				t.Logf("containerd killed after 20s: %v", err)
			}
		}
	}
	if n.log != nil {
		_ = n.log.Close()
	}
	for _, pid := range pidsMentioning(n.socket) {
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
	unmountBelow(n.root, n.state)
	for _, d := range []string{n.root, n.state} {
		if d != "" {
			if err := os.RemoveAll(d); err != nil {
				t.Logf("cleanup: %v", err)
			}
		}
	}
	if n.bridge != "" {
		_ = exec.Command("ip", "link", "del", n.bridge).Run()
	}
}

// pidsMentioning lists processes whose command line contains s.
func pidsMentioning(s string) []int {
	var pids []int
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		var pid int
		if _, err := fmt.Sscanf(e.Name(), "%d", &pid); err != nil || pid == os.Getpid() {
			continue
		}
		cmdline, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err == nil && bytes.Contains(cmdline, []byte(s)) {
			pids = append(pids, pid)
		}
	}
	return pids
}

// unmountBelow lazily unmounts every mount under the given directories,
// deepest first.
func unmountBelow(dirs ...string) {
	data, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return
	}
	var targets []string
	for _, l := range strings.Split(string(data), "\n") {
		f := strings.Fields(l)
		if len(f) < 5 {
			continue
		}
		for _, d := range dirs {
			if d != "" && (f[4] == d || strings.HasPrefix(f[4], d+"/")) {
				targets = append(targets, f[4])
			}
		}
	}
	for i := len(targets) - 1; i >= 0; i-- {
		_ = syscall.Unmount(targets[i], syscall.MNT_DETACH)
	}
}

// eventually polls cond until it holds or the deadline passes.
func eventually(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	hosttest.Eventually(t, within, what, cond)
}

// runPod starts a pod sandbox in its own network namespace.
func (n *node) runPod(t *testing.T, name string, annotations map[string]string) (string, *runtimeapi.PodSandboxConfig) {
	t.Helper()
	cfg := &runtimeapi.PodSandboxConfig{
		Metadata:     &runtimeapi.PodSandboxMetadata{Name: name, Uid: randHex(8), Namespace: "crhook-test"},
		Hostname:     name,
		LogDirectory: filepath.Join(n.logs, name),
		Annotations:  annotations,
		Linux: &runtimeapi.LinuxPodSandboxConfig{
			SecurityContext: &runtimeapi.LinuxSandboxSecurityContext{
				NamespaceOptions: podNamespaces(),
			},
		},
	}
	r, err := n.rt.RunPodSandbox(ctx(t), &runtimeapi.RunPodSandboxRequest{Config: cfg, RuntimeHandler: "crhook"})
	if err != nil {
		t.Fatalf("CRI RunPodSandbox %s: %v\n%s", name, err, n.logTail())
	}
	n.pods = append(n.pods, r.PodSandboxId)
	return r.PodSandboxId, cfg
}

// podNamespaces are the kubelet's defaults for a pod without
// hostNetwork or shareProcessNamespace: network and IPC per pod, a PID
// namespace per container. (The CRI zero value is a pod-wide PID
// namespace, where a restored container's PIDs can clash with the new
// pod's own: CRIU then fails with "Can't fork for N: File exists".)
func podNamespaces() *runtimeapi.NamespaceOption {
	return &runtimeapi.NamespaceOption{
		Network: runtimeapi.NamespaceMode_POD,
		Pid:     runtimeapi.NamespaceMode_CONTAINER,
		Ipc:     runtimeapi.NamespaceMode_POD,
	}
}

// startContainer creates and starts a container from image in a pod;
// image may be a checkpoint archive (containerd >= 2.1 restores it).
func (n *node) startContainer(t *testing.T, pod string, podCfg *runtimeapi.PodSandboxConfig, name, image string, cmd []string) string {
	t.Helper()
	cfg := &runtimeapi.ContainerConfig{
		Metadata: &runtimeapi.ContainerMetadata{Name: name},
		Image:    &runtimeapi.ImageSpec{Image: image},
		Command:  cmd,
		LogPath:  name + ".log",
		Linux: &runtimeapi.LinuxContainerConfig{
			SecurityContext: &runtimeapi.LinuxContainerSecurityContext{NamespaceOptions: podNamespaces()},
		},
	}
	c, err := n.rt.CreateContainer(ctx(t), &runtimeapi.CreateContainerRequest{PodSandboxId: pod, Config: cfg, SandboxConfig: podCfg})
	if err != nil {
		t.Fatalf("CRI CreateContainer %s from %s: %v\n%s", name, image, err, n.logTail())
	}
	if _, err := n.rt.StartContainer(ctx(t), &runtimeapi.StartContainerRequest{ContainerId: c.ContainerId}); err != nil {
		t.Fatalf("CRI StartContainer %s: %v%s\n%s", name, err, hosttest.CRIUErrors(err.Error()), n.logTail())
	}
	return c.ContainerId
}

// exec runs a command in a container and returns its stdout.
func (n *node) exec(t *testing.T, id string, cmd ...string) (string, error) {
	t.Helper()
	r, err := n.rt.ExecSync(ctx(t), &runtimeapi.ExecSyncRequest{ContainerId: id, Cmd: cmd, Timeout: 10})
	if err != nil {
		return "", err
	}
	if r.ExitCode != 0 {
		return string(r.Stdout), fmt.Errorf("%v exited %d: %s", cmd, r.ExitCode, r.Stderr)
	}
	return string(r.Stdout), nil
}

func (n *node) running(t *testing.T, id string) bool {
	t.Helper()
	r, err := n.rt.ContainerStatus(ctx(t), &runtimeapi.ContainerStatusRequest{ContainerId: id})
	return err == nil && r.Status.State == runtimeapi.ContainerState_CONTAINER_RUNNING
}

// checkpoint is the kubelet's checkpoint call: CRI CheckpointContainer
// with an archive location.
func (n *node) checkpoint(t *testing.T, id string) (string, error) {
	t.Helper()
	archive := filepath.Join(n.checkpointDir, "checkpoint-"+id[:12]+"-"+randHex(2)+".tar")
	_, err := n.rt.CheckpointContainer(ctx(t), &runtimeapi.CheckpointContainerRequest{ContainerId: id, Location: archive, Timeout: 60})
	if err != nil {
		_ = os.Remove(archive)
		return "", err
	}
	return archive, nil
}

// layers replaces the system CRIU layers for one test (hosttest.SetLayers).
func layers(t *testing.T, files map[string]string) {
	t.Helper()
	hosttest.SetLayers(t, files)
}
