//go:build e2e

package migrate

import (
	"archive/tar"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// memhogImage is the image the podman migration tests run: memhog alone.
const memhogImage = "localhost/crhook-test/memhog:e2e"

// podmanMigration is a memhog container in host B's podman, ready to be
// moved to host A with `crhook migrate`, run on B.
//
// The direction is B to A on purpose, as in TestLazyMigrationRunc: the
// lazy page server runs on the source and listens on every address it
// has whatever it is told; on B that is the veth pair alone.
type podmanMigration struct {
	h         *hostB
	name      string
	ctl       string // memhog's control directory, bind-mounted from A's file system (B shares it)
	mib       int
	sshConfig string // B's ssh client config for host "hosta" (A's test sshd)
	dest      string // ssh://hosta:PORT
	cutSSH    func() // kills A's test sshd and its sessions: the control channel drops
	seq       int
	mode      string // crhook migrate --mode: lazy unless a test says otherwise
}

func setupPodmanMigration(t *testing.T, bed string, index int) *podmanMigration {
	t.Helper()
	return setupPodmanMigrationOn(t, bed, index, "crhook")
}

// setupPodmanMigrationOn is setupPodmanMigration with the container run
// by podman runtime runtime (crhook, or crhook-crun: crhook wrapping crun).
//
// runFlags are more `podman run` flags for the container.
func setupPodmanMigrationOn(t *testing.T, bed string, index int, runtime string, runFlags ...string) *podmanMigration {
	t.Helper()
	needRoot(t, "runc", "criu", "crhook")
	if r := run(t, "criu", "check", "--feature", "uffd-noncoop"); r.code != 0 {
		t.Skipf("CRIU says lazy pages cannot work here (criu check --feature uffd-noncoop): %s", r.err+r.out)
	}
	if r := run(t, "crhook", "migrate", "--help"); r.code != 0 {
		t.Skipf("the installed crhook has no migrate command: run make install: %s", r)
	}
	raisePipeMaxSize(t)
	h := upHostB(t, bed, index)
	scratch := scratchDir(t)
	m := &podmanMigration{h: h, name: "mig-" + strconv.Itoa(rand.IntN(1e6)), ctl: filepath.Join(scratch, "ctl"), mib: 64, mode: "lazy"}
	if v := os.Getenv("CRHOOK_MIGRATE_MIB"); v != "" {
		m.mib, _ = strconv.Atoi(v)
	}
	if err := os.MkdirAll(m.ctl, 0o777); err != nil {
		t.Fatal(err)
	}
	var port int
	m.sshConfig, port, m.cutSSH = startSSHDOnA(t, h, scratch)
	m.dest = "ssh://hosta:" + strconv.Itoa(port)
	buildMemhogImage(t, scratch)
	t.Cleanup(func() { _ = exec.Command("podman", "rm", "-f", "-t", "0", m.name).Run() })
	// The image in B's store, as a user would bring it.
	save := exec.Command("sh", "-c", fmt.Sprintf("podman save %s | ssh -F %s %s podman load -q", memhogImage, h.sshConfig, h.name))
	if out, err := save.CombinedOutput(); err != nil {
		t.Fatalf("copy %s to B: %v\n%s", memhogImage, err, out)
	}
	seed := strconv.FormatUint(rand.Uint64()>>1, 10)
	h.mustSSH(t, fmt.Sprintf("podman run -d --name %s --runtime %s %s --network none --ulimit nofile=1024:1024 --ulimit nproc=4096:4096 -v %s:/ctl %s /memhog -mib %d -seed %s -ctl /ctl",
		m.name, runtime, strings.Join(runFlags, " "), m.ctl, memhogImage, m.mib, seed))
	eventually(t, 60*time.Second, "memhog ready on B", func() bool {
		_, err := os.Stat(filepath.Join(m.ctl, "ready"))
		return err == nil
	})
	m.ask(t, "reset", 10*time.Second)
	return m
}

// ask sends memhog a command through its control directory and returns
// the answer.
func (m *podmanMigration) ask(t *testing.T, cmd string, within time.Duration) string {
	t.Helper()
	m.seq++
	seq := strconv.Itoa(m.seq)
	tmp := filepath.Join(m.ctl, "cmd.tmp")
	if err := os.WriteFile(tmp, []byte(seq+" "+cmd+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(m.ctl, "cmd")); err != nil {
		t.Fatal(err)
	}
	var answer string
	eventually(t, within, fmt.Sprintf("memhog answers %q", cmd), func() bool {
		data, err := os.ReadFile(filepath.Join(m.ctl, "out"))
		if s, a, ok := strings.Cut(strings.TrimSpace(string(data)), " "); err == nil && ok && s == seq {
			answer = a
			return true
		}
		return false
	})
	return answer
}

// migrate runs `crhook migrate` on B, to A.
func (m *podmanMigration) migrate(t *testing.T, extra ...string) (result, map[string]any) {
	t.Helper()
	args := append([]string{"migrate", m.name, m.dest, "--mode", m.mode, "--ssh-config", m.sshConfig,
		"--format", "json", "--connect-timeout", "20s", "--no-progress-timeout", "30s", "--timeout", "5m"}, extra...)
	r := runCmd(t, m.h.cmd("crhook", args...))
	var s map[string]any
	if err := json.Unmarshal([]byte(r.out), &s); err != nil {
		t.Logf("crhook migrate printed no JSON summary (%v): %s", err, r)
	}
	return r, s
}

// state is the container's podman state on A (a) or B, "" when absent.
func (m *podmanMigration) state(t *testing.T, onA bool) string {
	t.Helper()
	cmd := exec.Command("podman", "inspect", "--format", "{{.State.Status}}", m.name)
	if !onA {
		cmd = m.h.cmd("podman", "inspect", "--format", "{{.State.Status}}", m.name)
	}
	r := runCmd(t, cmd)
	if r.code != 0 {
		return ""
	}
	return strings.TrimSpace(r.out)
}

// TestCrhookMigrateLazy moves a podman container from B to A with
// `crhook migrate --mode lazy`: every page checked on A, the heartbeat
// gap measured, the source left stopped, exactly one running copy.
func TestCrhookMigrateLazy(t *testing.T) {
	m := setupPodmanMigration(t, "crhook-tm", 5)

	// --dry-run says what it would do and on which facts, and does nothing.
	dr := runCmd(t, m.h.cmd("crhook", "migrate", m.name, m.dest, "--ssh-config", m.sshConfig, "--dry-run", "--format", "json"))
	var plan struct {
		ID         string            `json:"id"`
		Running    bool              `json:"running"`
		PageServer map[string]any    `json:"page_server"`
		Facts      map[string]string `json:"facts"`
		Steps      []string          `json:"steps"`
	}
	if err := json.Unmarshal([]byte(dr.out), &plan); err != nil || dr.code != 0 {
		t.Fatalf("crhook migrate --dry-run: %v: %s", err, dr)
	}
	if !plan.Running || plan.PageServer["address"] != m.h.addr || plan.Facts["lazy_dump"] != "possible" || len(plan.Steps) == 0 {
		t.Errorf("dry run: %+v; want running, page server on B's %s, lazy dump possible", plan, m.h.addr)
	}
	if got := m.state(t, true); got != "" {
		t.Fatalf("--dry-run left a container on A: %s", got)
	}
	if got := m.state(t, false); got != "running" {
		t.Fatalf("--dry-run touched the source: %s", got)
	}

	sshdLog := filepath.Join(filepath.Dir(m.sshConfig), "sshd.log")
	logged := func() int { data, _ := os.ReadFile(sshdLog); return strings.Count(string(data), "Accepted publickey") }
	before := logged()
	start := time.Now()
	r, s := m.migrate(t)
	took := time.Since(start)
	if r.code != 0 {
		t.Fatalf("crhook migrate: %s", r)
	}
	// One ssh connection carried every command (ControlMaster): no key
	// exchange and authentication inside the frozen window.
	if n := logged() - before; n != 1 {
		t.Errorf("crhook migrate authenticated %d ssh connections to the destination, want 1 shared by every command", n)
	}
	if got := m.state(t, true); got != "running" {
		t.Fatalf("container on A after the migration: %q, want running", got)
	}
	if got := m.state(t, false); got == "running" || got == "" {
		t.Fatalf("container on B after the migration: %q, want stopped (exited)", got)
	}
	line := m.ask(t, "check", 120*time.Second)
	got := fields(line)
	if got["bad"] != "0" || got["pages"] != strconv.Itoa(m.mib<<8) {
		t.Fatalf("memory on A after the migration: %s (want %d pages, 0 bad)", line, m.mib<<8)
	}
	gap, _ := strconv.Atoi(got["max_gap_us"])
	t.Logf("crhook migrate --mode lazy of %d MiB B→A in %v: heartbeat gap %v, summary %v", m.mib, took.Round(time.Millisecond),
		(time.Duration(gap) * time.Microsecond).Round(time.Millisecond), s)
	m.noTasksOnB(t, s)
	if s["phase"] != "done" || s["source_state"] != "stopped" {
		t.Errorf("summary: %v", s)
	}
	if img, _ := s["image_bytes"].(float64); img > float64(m.mib)*(1<<20)/4 {
		t.Errorf("the checkpoint archive holds %v bytes for %d MiB: pages went with it, not lazily", img, m.mib)
	}
}

// startSSHDOnA runs an sshd on A's end of the veth pair, so B can reach
// A over ssh as `crhook migrate` on B does; it returns B's client config
// naming A "hosta", and the port. Keys are made for this test; the sshd is stopped
// when the test ends (and dies with the scratch directory's guard).
func startSSHDOnA(t *testing.T, h *hostB, scratch string) (string, int, func()) {
	t.Helper()
	dir := filepath.Join(scratch, "sshd-a")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	mustRun(t, "ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", filepath.Join(dir, "host_key"))
	mustRun(t, "ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", filepath.Join(dir, "id"))
	pub, err := os.ReadFile(filepath.Join(dir, "id.pub"))
	if err != nil {
		t.Fatal(err)
	}
	must(t, os.WriteFile(filepath.Join(dir, "authorized_keys"), pub, 0o600))
	port := 2200 + rand.IntN(700)
	must(t, os.WriteFile(filepath.Join(dir, "sshd_config"), []byte(fmt.Sprintf(`ListenAddress %s:%d
HostKey %s/host_key
AuthorizedKeysFile %s/authorized_keys
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
PidFile none
`, h.aAddr, port, dir, dir)), 0o600))
	must(t, os.MkdirAll("/run/sshd", 0o755))
	sshd := exec.Command("/usr/sbin/sshd", "-D", "-f", filepath.Join(dir, "sshd_config"), "-E", filepath.Join(dir, "sshd.log"))
	sshd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := sshd.Start(); err != nil {
		t.Fatal(err)
	}
	// The sessions too: each connection's sshd leaves the listener's
	// process group (setsid), and crhook migrate keeps one connection
	// for the whole migration (ssh ControlMaster).
	cut := func() {
		for _, pid := range descendants(sshd.Process.Pid) {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
		_ = syscall.Kill(-sshd.Process.Pid, syscall.SIGKILL)
	}
	t.Cleanup(func() { cut(); _ = sshd.Wait() })
	hostPub, err := os.ReadFile(filepath.Join(dir, "host_key.pub"))
	if err != nil {
		t.Fatal(err)
	}
	must(t, os.WriteFile(filepath.Join(dir, "known_hosts"), []byte(fmt.Sprintf("[%s]:%d %s", h.aAddr, port, hostPub)), 0o600))
	cfg := filepath.Join(dir, "ssh_config")
	must(t, os.WriteFile(cfg, []byte(fmt.Sprintf(`Host hosta
  HostName %s
  Port %d
  User root
  IdentityFile %s/id
  IdentitiesOnly yes
  UserKnownHostsFile %s/known_hosts
  StrictHostKeyChecking yes
  BatchMode yes
`, h.aAddr, port, dir, dir)), 0o600))
	eventually(t, 20*time.Second, "B reaches A's test sshd", func() bool {
		return runCmd(t, h.cmd("ssh", "-F", cfg, "hosta", "true")).code == 0
	})
	return cfg, port, cut
}

// descendants lists the processes below pid, from /proc.
func descendants(pid int) []int {
	children := map[int][]int{}
	stats, _ := filepath.Glob("/proc/[0-9]*/stat")
	for _, f := range stats {
		data, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...: comm may hold spaces and parentheses.
		rest := strings.Fields(string(data[strings.LastIndexByte(string(data), ')')+1:]))
		if len(rest) < 2 {
			continue
		}
		child, _ := strconv.Atoi(filepath.Base(filepath.Dir(f)))
		ppid, _ := strconv.Atoi(rest[1])
		children[ppid] = append(children[ppid], child)
	}
	var out []int
	for queue := children[pid]; len(queue) > 0; queue = queue[1:] {
		out = append(out, queue[0])
		queue = append(queue, children[queue[0]]...)
	}
	return out
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// buildMemhogImage imports memhog, alone, as an image into A's podman.
func buildMemhogImage(t *testing.T, scratch string) {
	t.Helper()
	bin := buildMemhog(t, scratch)
	data, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	tarPath := filepath.Join(scratch, "memhog.tar")
	f, err := os.OpenFile(tarPath, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	tw := tar.NewWriter(f)
	for _, d := range []string{"ctl/", "tmp/"} {
		must(t, tw.WriteHeader(&tar.Header{Name: d, Mode: 0o755, Typeflag: tar.TypeDir}))
	}
	must(t, tw.WriteHeader(&tar.Header{Name: "memhog", Mode: 0o755, Size: int64(len(data)), Typeflag: tar.TypeReg}))
	_, err = tw.Write(data)
	must(t, err)
	must(t, tw.Close())
	must(t, f.Close())
	mustRun(t, "podman", "import", tarPath, memhogImage)
	t.Cleanup(func() { _ = exec.Command("podman", "rmi", "-f", memhogImage).Run() })
}

// TestCrhookMigrateLazyRestoreFails: the destination's restore fails (a
// container of another ID already has the name there). The promise: the
// source runs again with every page, restored from its own page server;
// the destination holds nothing of the migration, and its namesake is
// untouched.
func TestCrhookMigrateLazyRestoreFails(t *testing.T) {
	m := setupPodmanMigration(t, "crhook-tf", 6)
	decoy := strings.TrimSpace(mustRun(t, "podman", "create", "--name", m.name, memhogImage, "/memhog"))
	r, s := m.migrate(t)
	if r.code == 0 {
		t.Fatalf("crhook migrate succeeded although the destination's restore must fail: %s", r)
	}
	t.Logf("summary: %v", s)
	if got := m.state(t, false); got != "running" {
		t.Fatalf("source container on B after the failed migration: %q, want running again\n%s", got, r)
	}
	if src, _ := s["source_state"].(string); !strings.HasPrefix(src, "running") {
		t.Errorf("summary's source_state %q, want running", src)
	}
	line := m.ask(t, "check", 120*time.Second)
	if got := fields(line); got["bad"] != "0" || got["pages"] != strconv.Itoa(m.mib<<8) {
		t.Fatalf("memory of the rolled-back source: %s", line)
	}
	ids := strings.Fields(mustRun(t, "podman", "ps", "-a", "--filter", "name=^"+m.name+"$", "--format", "{{.ID}}"))
	if len(ids) != 1 || !strings.HasPrefix(decoy, ids[0]) {
		t.Fatalf("destination after the rollback holds %v, want only the namesake %s", ids, decoy[:12])
	}
}

// TestCrhookMigrateLazyDaemonKilled: the destination's lazy-pages daemon
// is killed after the destination runs. The promise: the destination is
// killed (it never runs on with a page read as zeros), the failure is
// reported with the source's state, and nothing runs twice.
func TestCrhookMigrateLazyDaemonKilled(t *testing.T) {
	if os.Getenv("CRHOOK_MIGRATE_MIB") == "" {
		t.Setenv("CRHOOK_MIGRATE_MIB", "512") // long enough a transfer to break
	}
	m := setupPodmanMigration(t, "crhook-tk", 7)
	stateDir := "/run/crhook" // A's crhook state_dir (contrib/crhook.toml)
	killed := killLazyDaemonOnceRestored(stateDir)
	r, s := m.migrate(t)
	pids := <-killed
	if r.code == 0 {
		t.Skipf("every page moved before the daemon (%q) could be killed; raise CRHOOK_MIGRATE_MIB", pids)
	}
	t.Logf("killed lazy-pages %q; summary: %v", strings.TrimSpace(pids), s)
	if got := m.state(t, true); got == "running" {
		t.Fatalf("destination container still runs after its lazy-pages daemon died: it would read missing pages as zeros\n%s", r)
	}
	if got := m.state(t, false); got == "running" {
		t.Fatalf("source runs too: two copies\n%s", r)
	}
	m.noTasksOnB(t, s)
	// Nothing of the migration stays on A: no plan, no TLS key.
	if migID, _ := s["migration_id"].(string); migID != "" {
		if _, err := os.Stat(filepath.Join(stateDir, "migrations", migID)); err == nil {
			t.Errorf("the failed migration's files stay on A in %s", filepath.Join(stateDir, "migrations", migID))
		}
	}
	if d, _ := s["destination_state"].(string); !strings.HasPrefix(d, "killed") {
		t.Errorf("summary's destination_state %q, want killed", d)
	}
	if src, _ := s["source_state"].(string); src == "" || !strings.Contains(r.err, "source: ") {
		t.Errorf("the failure does not state the source's state: %s", r)
	}
}

// TestCrhookMigrateLazyPageServerKilled: the source's page server is
// killed before the destination restores. The promise: the source runs
// again, every page intact; the destination holds nothing.
func TestCrhookMigrateLazyPageServerKilled(t *testing.T) {
	m := setupPodmanMigration(t, "crhook-tp", 8)
	killed := make(chan string, 1)
	go func() {
		// The page server serves once podman writes the archive (it
		// exports after crhook-runtime returned at the status byte), and
		// the destination cannot have restored yet. Kill the page
		// server's whole process group (runc, CRIU), found in B's /run
		// through B's sshd's root.
		sshdPid, _ := os.ReadFile(filepath.Join(m.h.state, "sshd.pid"))
		bRun := "/proc/" + strings.TrimSpace(string(sshdPid)) + "/root/run/crhook/migrations"
		deadline := time.Now().Add(2 * time.Minute)
		for time.Now().Before(deadline) {
			tars, _ := filepath.Glob("/var/tmp/crhook-migrate-*/checkpoint.tar")
			for _, tarFile := range tars {
				id := strings.TrimPrefix(filepath.Base(filepath.Dir(tarFile)), "crhook-migrate-")
				data, err := os.ReadFile(filepath.Join(bRun, id, "pgid"))
				if err != nil {
					continue
				}
				g, _ := strconv.Atoi(strings.TrimSpace(string(data)))
				if g > 1 && syscall.Kill(-g, syscall.SIGKILL) == nil {
					killed <- strconv.Itoa(g)
					return
				}
			}
			time.Sleep(time.Millisecond)
		}
		killed <- ""
	}()
	r, s := m.migrate(t)
	pgid := <-killed
	t.Logf("killed page server group %q; summary: %v", pgid, s)
	if pgid == "" {
		t.Fatal("the page server was never seen serving")
	}
	if r.code == 0 {
		t.Fatalf("crhook migrate succeeded although its page server was killed: %s", r)
	}
	if got := m.state(t, true); got != "" {
		t.Errorf("destination holds the container (%s) after the page server died before it restored", got)
	}
	if got := m.state(t, false); got != "running" {
		diag := runCmd(t, m.h.cmd("sh", "-c", "podman inspect --format '{{.State.ExitCode}} {{.State.Error}} {{.State.Pid}}' "+m.name+"; runc list; podman logs "+m.name+" | tail -5; ls -la /run/crhook/migrations/*/ 2>&1; cat /run/crhook/migrations/*/*.out 2>&1 | tail; podman events --since 2m --stream=false --filter container="+m.name+"; tail -5 /var/lib/containers/storage/overlay-containers/*/userdata/restore.log; ls /var/lib/containers/storage/overlay-containers/*/userdata/"))
		t.Fatalf("source container on B: %q, want running again\n%s\n%s", got, r, diag)
	}
	line := m.ask(t, "check", 120*time.Second)
	if got := fields(line); got["bad"] != "0" || got["pages"] != strconv.Itoa(m.mib<<8) {
		t.Fatalf("memory of the source after the rollback: %s", line)
	}
}

// noTasksOnB: the source's dumped tasks, kept frozen while the page
// server served, are gone once the migration ended: no second copy
// waits to be thawed.
func (m *podmanMigration) noTasksOnB(t *testing.T, summary map[string]any) {
	t.Helper()
	id, _ := summary["id"].(string)
	if id == "" {
		t.Fatal("the summary names no container ID")
	}
	var out string
	eventually(t, 30*time.Second, "the source's runc container "+id[:12]+" gone from B", func() bool {
		out = runCmd(t, m.h.cmd("runc", "list", "-q")).out
		return !strings.Contains(out, id)
	})
}

// TestCrhookMigrateLazySSHDrops: the control channel to the destination
// drops once the source is dumped, before the archive is sent. The
// promise: the source runs again with every page; the destination never
// got the container.
func TestCrhookMigrateLazySSHDrops(t *testing.T) {
	m := setupPodmanMigration(t, "crhook-ts2", 9)
	r, s := m.migrateCuttingSSHAfterDump(t)
	m.sourceRunsAgain(t, r, s)
	if src, _ := s["source_state"].(string); !strings.HasPrefix(src, "running") {
		t.Errorf("summary's source_state %q, want running", src)
	}
}

// migrateCuttingSSHAfterDump runs `crhook migrate` and drops its control
// channel to A (the sshd and its sessions) the moment the checkpoint
// archive exists: after the dump, before A restored anything.
func (m *podmanMigration) migrateCuttingSSHAfterDump(t *testing.T) (result, map[string]any) {
	t.Helper()
	cut := make(chan bool, 1)
	// Only this migration's archive counts: one a killed crhook left
	// behind would cut the channel before anything was dumped.
	before, _ := filepath.Glob("/var/tmp/crhook-migrate-*/checkpoint.tar")
	go func() {
		deadline := time.Now().Add(2 * time.Minute)
		for time.Now().Before(deadline) {
			tars, _ := filepath.Glob("/var/tmp/crhook-migrate-*/checkpoint.tar")
			for _, tar := range tars {
				if !slices.Contains(before, tar) {
					m.cutSSH()
					cut <- true
					return
				}
			}
			time.Sleep(time.Millisecond)
		}
		cut <- false
	}()
	r, s := m.migrate(t)
	// Without its channel crhook cannot tidy A; the test does, as the
	// summary tells the user to (destination_state).
	t.Cleanup(func() {
		id, _ := s["id"].(string)
		migID, _ := s["migration_id"].(string)
		if id != "" && migID != "" {
			_ = exec.Command("crhook", "migrate-agent", "abort", id, migID).Run()
		}
	})
	if !<-cut {
		t.Fatal("the checkpoint archive never appeared")
	}
	t.Logf("summary: %v", s)
	if r.code == 0 {
		t.Fatalf("crhook migrate succeeded without its control channel: %s", r)
	}
	return r, s
}

// sourceRunsAgain: after a failed migration A holds no container of the
// name, and B's runs with every page.
func (m *podmanMigration) sourceRunsAgain(t *testing.T, r result, s map[string]any) {
	t.Helper()
	if got := m.state(t, true); got != "" {
		t.Errorf("destination holds the container (%s)", got)
	}
	if got := m.state(t, false); got != "running" {
		t.Fatalf("source container on B: %q, want running again\n%s", got, r)
	}
	line := m.ask(t, "check", 120*time.Second)
	if got := fields(line); got["bad"] != "0" || got["pages"] != strconv.Itoa(m.mib<<8) {
		t.Fatalf("memory of the source after the rollback: %s", line)
	}
}

// killLazyDaemonOnceRestored SIGKILLs the destination's lazy-pages
// daemon (the daemon itself, not its supervisor: as if it crashed) the
// moment a plan under stateDir says restored, while the container faults
// on pages not yet sent; it sends the pids it killed, "" when none did
// within 2 minutes.
func killLazyDaemonOnceRestored(stateDir string) <-chan string {
	killed := make(chan string, 1)
	go func() {
		deadline := time.Now().Add(2 * time.Minute)
		for time.Now().Before(deadline) {
			plans, _ := filepath.Glob(filepath.Join(stateDir, "containers", "*", "migration.json"))
			for _, p := range plans {
				data, err := os.ReadFile(p)
				if err != nil || !strings.Contains(string(data), `"restored"`) {
					continue
				}
				var plan struct {
					MigrationID string `json:"migration_id"`
				}
				_ = json.Unmarshal(data, &plan)
				out, _ := exec.Command("pgrep", "-f", `^\S*criu lazy-pages .*`+plan.MigrationID).Output()
				for _, pid := range strings.Fields(string(out)) {
					_ = exec.Command("kill", "-9", pid).Run()
				}
				killed <- string(out)
				return
			}
			time.Sleep(time.Millisecond)
		}
		killed <- ""
	}()
	return killed
}
