//go:build e2e

package migrate

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestHostBed proves the two-host bed: B answers ssh on its own address
// with the keys made for it and no others, has only the veth pair's
// address and no route beyond it, keeps containers in its own store, and
// `down` leaves nothing behind.
func TestHostBed(t *testing.T) {
	needRoot(t)
	h := upHostB(t, "crhook-tb", 1)

	// B's addresses: loopback and its end of the pair, nothing else.
	addrs := strings.Fields(h.mustSSH(t, "ip -4 -o addr show | awk '{print $4}'"))
	if strings.Join(addrs, " ") != "127.0.0.1/8 "+h.addr+"/30" {
		t.Errorf("B's IPv4 addresses = %v, want only loopback and %s/30", addrs, h.addr)
	}
	if routes := h.mustSSH(t, "ip -4 route show"); strings.Count(routes, "\n") != 1 || strings.Contains(routes, "default") {
		t.Errorf("B must route only its /30, got:\n%s", routes)
	}
	vethA := vethA(h.name)
	if out := mustRun(t, "ip", "-4", "-o", "addr", "show", "dev", vethA); strings.Count(out, "inet ") != 1 || !strings.Contains(out, h.aAddr+"/30") {
		t.Errorf("A's end %s should hold only %s/30:\n%s", vethA, h.aAddr, out)
	}
	if h.mustSSH(t, "readlink /proc/self/ns/net") == mustRun(t, "readlink", "/proc/self/ns/net") {
		t.Error("an ssh session on B runs in A's network namespace")
	}

	// Only the key made for this bed gets in.
	stranger := filepath.Join(t.TempDir(), "stranger")
	mustRun(t, "ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", stranger)
	if r := run(t, "ssh", "-F", "/dev/null", "-i", stranger, "-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes",
		"-o", "UserKnownHostsFile="+filepath.Join(h.state, "known_hosts"), "root@"+h.addr, "true"); r.code != 255 || !strings.Contains(r.err, "Permission denied") {
		t.Errorf("B's sshd should refuse a key it was never given, got %s", r)
	}
	if r := run(t, "ssh", "-F", "/dev/null", "-i", filepath.Join(h.state, "id_ed25519"), "-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes",
		"-o", "UserKnownHostsFile="+filepath.Join(h.state, "known_hosts"), "root@"+h.addr, "true"); r.code != 0 {
		t.Errorf("the bed's own key, without its ssh_config, is refused: %s", r)
	}

	// A container in B's own store, invisible to A's podman.
	h.loadImage(t)
	id := strings.TrimSpace(h.mustSSH(t, "podman run -d --name bed-ctr --network none "+testImage+" sleep 1000"))
	if strings.TrimSpace(h.mustSSH(t, "podman inspect --format '{{.State.Running}}' bed-ctr")) != "true" {
		t.Fatal("container bed-ctr is not running on B")
	}
	if _, err := os.Stat(filepath.Join(h.state, "var-lib-containers/storage/overlay-containers", id)); err != nil {
		t.Errorf("B's container is not in B's store under %s: %v", h.state, err)
	}
	if out := mustRun(t, "podman", "ps", "-a", "--format", "{{.ID}}"); strings.Contains(out, id[:12]) {
		t.Error("B's container shows up in A's podman")
	}
	// B's cgroups are its own: a migrated container keeps its ID, and a
	// shared cgroup would let B's frozen copy freeze A's.
	if _, err := os.Stat(filepath.Join("/sys/fs/cgroup/freezer/crhook-b-"+h.name, "libpod_parent/libpod-"+id)); err != nil {
		t.Errorf("B's container is not in B's cgroup subtree: %v", err)
	}
	if _, err := os.Stat("/sys/fs/cgroup/freezer/libpod_parent/libpod-" + id); err == nil {
		t.Error("B's container has a cgroup where A's namesake would")
	}
	if !strings.Contains(h.mustSSH(t, "findmnt -n -o SOURCE /run"), "tmpfs-"+h.name) {
		t.Error("B's /run (runroot, runc and crhook state) is not its own tmpfs")
	}

	h.down(t)
	assertGone(t, h.name, h.state, id)
}

// TestHostBedTornDownWhenOwnerKilled: the guard tears B down when the
// process that built it is killed and can run no cleanup of its own.
func TestHostBedTornDownWhenOwnerKilled(t *testing.T) {
	needRoot(t)
	owner := exec.Command("sleep", "1000")
	if err := owner.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = owner.Process.Kill(); _ = owner.Wait() })
	script, _ := filepath.Abs(hostbScript)
	env := bedEnv("crhook-tg", 2)
	cmd := exec.Command(script, "up", "--guard", strconv.Itoa(owner.Process.Pid))
	cmd.Env = env
	t.Cleanup(func() {
		down := exec.Command(script, "down")
		down.Env = env
		_ = down.Run()
	})
	r := runCmd(t, cmd)
	if r.code != 0 {
		t.Fatalf("hostb.sh up: %s", r)
	}
	vars := readEnvFile(t, strings.TrimSpace(r.out))
	h := &hostB{name: vars["HOSTB_NAME"], sshConfig: vars["HOSTB_SSH_CONFIG"], state: vars["HOSTB_STATE"]}
	h.mustSSH(t, "true")

	_ = owner.Process.Kill()
	_ = owner.Wait()
	eventually(t, 60*time.Second, "the guard tears B down after its owner was killed", func() bool {
		_, err := os.Stat(h.state)
		return err != nil
	})
	assertGone(t, h.name, h.state, "")
}

func vethA(name string) string {
	if len(name) > 11 {
		name = name[:11]
	}
	return name + "a"
}

// assertGone checks B left nothing on this host: namespace, link,
// state directory, mounts, processes (its sshd, or anything in the
// cgroup of container id).
func assertGone(t *testing.T, name, state, id string) {
	t.Helper()
	if strings.Contains(mustRun(t, "ip", "netns", "list"), name) {
		t.Errorf("netns %s left behind", name)
	}
	if run(t, "ip", "link", "show", vethA(name)).code == 0 {
		t.Errorf("link %s left behind", vethA(name))
	}
	if _, err := os.Stat(state); err == nil {
		t.Errorf("state dir %s left behind", state)
	}
	if mounts, _ := os.ReadFile("/proc/self/mountinfo"); strings.Contains(string(mounts), state) {
		t.Errorf("mounts under %s left behind", state)
	}
	procs, _ := filepath.Glob("/proc/[0-9]*")
	for _, p := range procs {
		cmdline, _ := os.ReadFile(p + "/cmdline")
		if strings.Contains(string(cmdline), state) {
			t.Errorf("process %s left behind: %q", p, strings.ReplaceAll(string(cmdline), "\x00", " "))
		}
		if id == "" {
			continue
		}
		if cg, _ := os.ReadFile(p + "/cgroup"); strings.Contains(string(cg), id) {
			t.Errorf("process %s of B's container %s left behind", p, id[:12])
		}
	}
	if left, _ := filepath.Glob("/sys/fs/cgroup/*/crhook-b-" + name); len(left) > 0 {
		t.Errorf("B's cgroup subtrees left behind: %v", left)
	}
	if id != "" {
		if left, _ := filepath.Glob("/sys/fs/cgroup/*/libpod_parent/libpod-" + id); len(left) > 0 {
			t.Errorf("cgroups of B's container left behind: %v", left)
		}
	}
}
