//go:build e2e

package migrate

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/crhook/crhook/engine/migrate"
	"github.com/crhook/crhook/engine/migrate/pki"
)

// aStateDir is A's crhook state_dir (contrib/crhook.toml), where the
// destination's page server of a stream writes its pages.
const aStateDir = "/run/crhook"

// setupStream is setupPodmanMigration for `crhook migrate --mode stream`.
func setupStream(t *testing.T, bed string, index int) *podmanMigration {
	t.Helper()
	m := setupPodmanMigration(t, bed, index)
	m.mode = "stream"
	return m
}

// bStateDir is B's crhook state_dir as seen from A: through the root of
// B's sshd (B's /run is its own tmpfs).
func (m *podmanMigration) bStateDir(t *testing.T) string {
	t.Helper()
	pid, err := os.ReadFile(filepath.Join(m.h.state, "sshd.pid"))
	if err != nil {
		t.Fatal(err)
	}
	return "/proc/" + strings.TrimSpace(string(pid)) + "/root/run/crhook"
}

// noMigrationLeft: neither host keeps the migration's plan, TLS files,
// pages or a CRIU process of it.
func (m *podmanMigration) noMigrationLeft(t *testing.T, s map[string]any) {
	t.Helper()
	migID, _ := s["migration_id"].(string)
	id, _ := s["id"].(string)
	if migID == "" || id == "" {
		t.Fatalf("the summary names no migration or container: %v", s)
	}
	for host, dir := range map[string]string{"A": aStateDir, "B": m.bStateDir(t)} {
		if _, err := os.Stat(filepath.Join(dir, "migrations", migID)); err == nil {
			t.Errorf("the migration's files stay on %s in %s", host, filepath.Join(dir, "migrations", migID))
		}
		if _, err := os.Stat(filepath.Join(dir, "containers", id, "migration.json")); err == nil {
			t.Errorf("the migration's plan stays on %s", host)
		}
	}
	if out, _ := exec.Command("pgrep", "-af", "criu page-server .*"+migID).Output(); len(out) > 0 {
		t.Errorf("the destination's page server still runs: %s", out)
	}
}

// TestCrhookMigrateStream moves a podman container from B to A with
// `crhook migrate --mode stream`: the dump goes into A's page server,
// every page is checked on A, the heartbeat goes on, the source is left
// stopped with its frozen tasks gone, exactly one copy runs, and neither
// host keeps anything of the migration.
func TestCrhookMigrateStream(t *testing.T) {
	m := setupStream(t, "crhook-sm", 10)

	dr := runCmd(t, m.h.cmd("crhook", "migrate", m.name, m.dest, "--mode", "stream", "--ssh-config", m.sshConfig, "--dry-run", "--format", "json"))
	var plan struct {
		Mode       string         `json:"mode"`
		Running    bool           `json:"running"`
		PageServer map[string]any `json:"page_server"`
		Steps      []string       `json:"steps"`
	}
	if err := json.Unmarshal([]byte(dr.out), &plan); err != nil || dr.code != 0 {
		t.Fatalf("crhook migrate --mode stream --dry-run: %v: %s", err, dr)
	}
	if plan.Mode != "stream" || !plan.Running || plan.PageServer["address"] != m.h.aAddr || !strings.Contains(strings.Join(plan.Steps, "\n"), "--leave-running --page-server") {
		t.Errorf("dry run: %+v; want stream with the page server on A's %s", plan, m.h.aAddr)
	}
	if got := m.state(t, true); got != "" {
		t.Fatalf("--dry-run left a container on A: %s", got)
	}

	start := time.Now()
	r, s := m.migrate(t)
	took := time.Since(start)
	if r.code != 0 {
		t.Fatalf("crhook migrate --mode stream: %s", r)
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
	// The heartbeat goes on: a fresh window shows no gap of note.
	m.ask(t, "reset", 10*time.Second)
	time.Sleep(300 * time.Millisecond)
	if after := fields(m.ask(t, "check", 120*time.Second)); after["max_gap_us"] == "" {
		t.Fatalf("no heartbeat after the migration: %v", after)
	} else if g, _ := strconv.Atoi(after["max_gap_us"]); g > 250_000 {
		t.Errorf("the heartbeat stalls on A after the migration: gap %d µs", g)
	}
	t.Logf("crhook migrate --mode stream of %d MiB B→A in %v: heartbeat gap %v, summary %v", m.mib, took.Round(time.Millisecond),
		(time.Duration(gap) * time.Microsecond).Round(time.Millisecond), s)
	m.noTasksOnB(t, s)
	m.noMigrationLeft(t, s)
	if s["phase"] != "done" || s["source_state"] != "stopped" || s["mode"] != "stream" {
		t.Errorf("summary: %v", s)
	}
	if pb, _ := s["page_bytes"].(float64); pb < float64(m.mib)*(1<<20) {
		t.Errorf("summary's page_bytes %v: fewer than the %d MiB the container filled", s["page_bytes"], m.mib)
	}
	if img, _ := s["image_bytes"].(float64); img > float64(m.mib)*(1<<20)/4 {
		t.Errorf("the checkpoint archive holds %v bytes for %d MiB: pages went with it, not into the page server", img, m.mib)
	}
	if d, _ := s["downtime_estimate_ms"].(float64); d <= 0 {
		t.Errorf("summary has no downtime: %v", s)
	}
}

// TestCrhookMigrateStreamCrun: with crun 1.28 as the wrapped runtime
// (podman runtime crhook-crun, tests/setup-crun.sh), which has no lazy
// pages: --mode lazy is refused with the reason and leaves the source
// running; auto's dry run picks stream and says why; the default mode
// moves the container with every page, as stream does with runc; and a
// stream back whose restore fails rolls back with every page.
//
// The container runs in its own cgroup namespace (--cgroupns private,
// the default on cgroup v2 hosts such as Fedora's). memhog is a Go
// program, and Go (1.25 on) keeps its cgroup's CPU quota file open; on
// this cgroup v1 host without a cgroup namespace crun shows the whole
// hierarchy, so that file's path names host B's cgroup subtree of the
// test bed, which A's restore cannot open (docs/migration.md: two real
// hosts have the same path).
func TestCrhookMigrateStreamCrun(t *testing.T) {
	if _, err := os.Stat("/usr/local/libexec/crhook-test/crhook-crun"); err != nil {
		t.Skip("podman runtime crhook-crun (crhook wrapping crun 1.28 +CRIU) is not set up: run tests/setup-crun.sh")
	}
	m := setupPodmanMigrationOn(t, "crhook-sc", 14, "crhook-crun", "--cgroupns", "private")

	m.mode = "lazy"
	r, s := m.migrate(t)
	if r.code == 0 || !strings.Contains(r.err, "no lazy pages") {
		t.Fatalf("crhook migrate --mode lazy of a crun container: want the refusal: %s", r)
	}
	if got := m.state(t, false); got != "running" {
		t.Fatalf("source container on B after the refusal: %q, want running", got)
	}
	if got := m.state(t, true); got != "" {
		t.Errorf("destination holds the container after the refusal (%s)", got)
	}
	m.noMigrationLeft(t, s)

	mode, decision, _ := m.dryRunAuto(t)
	if mode != "stream" || !strings.Contains(decision, "crun") {
		t.Errorf("auto's dry run for a crun container: mode %q, decision %q; want stream, saying crun has no lazy pages", mode, decision)
	}

	m.mode = "auto"
	r, s = m.migrate(t)
	if r.code != 0 {
		t.Fatalf("crhook migrate (auto) of a crun container: %s", r)
	}
	if s["mode"] != "stream" || s["phase"] != "done" || s["source_state"] != "stopped" {
		t.Errorf("summary: %v; want a committed stream", s)
	}
	if got := m.state(t, true); got != "running" {
		t.Fatalf("container on A after the migration: %q, want running", got)
	}
	if rt := runCmd(t, exec.Command("podman", "inspect", "--format", "{{.OCIRuntime}}", m.name)).out; strings.TrimSpace(rt) != "crhook-crun" {
		t.Errorf("A runs the container with runtime %q, want crhook-crun", strings.TrimSpace(rt))
	}
	line := m.ask(t, "check", 120*time.Second)
	if got := fields(line); got["bad"] != "0" || got["pages"] != strconv.Itoa(m.mib<<8) {
		t.Fatalf("memory on A after the migration: %s (want %d pages, 0 bad)", line, m.mib<<8)
	}
	if got := m.state(t, false); got == "running" || got == "" {
		t.Fatalf("container on B after the migration: %q, want stopped (exited)", got)
	}
	id, _ := s["id"].(string)
	eventually(t, 30*time.Second, "the source's crun container gone from B", func() bool {
		out := runCmd(t, m.h.cmd("/usr/local/libexec/crhook-test/crun", "list", "-q")).out
		return id != "" && !strings.Contains(out, id)
	})
	m.noMigrationLeft(t, s)

	// Back from A to B, where the stopped source still holds the name:
	// B's restore fails, and the rollback re-dumps the frozen tasks and
	// crun restores them on A. (A is the source here because crun cannot
	// restore anything on B of this bed: CRIU bind-mounts the cgroup
	// roots by their path in the whole hierarchy, and B's hierarchies are
	// bind mounts of subtrees, docs/migration.md.)
	back := runCmd(t, exec.Command("crhook", "migrate", m.name, "ssh://"+m.h.name, "--mode", "stream", "--ssh-config", m.h.sshConfig,
		"--format", "json", "--connect-timeout", "20s", "--no-progress-timeout", "30s", "--timeout", "5m"))
	var bs map[string]any
	_ = json.Unmarshal([]byte(back.out), &bs)
	if back.code == 0 {
		t.Fatalf("crhook migrate A→B succeeded although B holds the name: %s", back)
	}
	if src, _ := bs["source_state"].(string); src != "running (rolled back)" {
		t.Fatalf("A→B summary's source_state %q, want running (rolled back)\n%s", src, back)
	}
	if got := m.state(t, true); got != "running" {
		t.Fatalf("container on A after the rollback: %q, want running", got)
	}
	line = m.ask(t, "check", 120*time.Second)
	if got := fields(line); got["bad"] != "0" || got["pages"] != strconv.Itoa(m.mib<<8) {
		t.Fatalf("memory on A after the rollback: %s", line)
	}
	if got := m.state(t, false); got == "running" {
		t.Errorf("B runs the container after the failed migration: two copies")
	}
	m.noMigrationLeft(t, bs)
}

// TestCrhookMigrateStreamPageServerKilled: A's page server is killed
// while the dump streams into it. The promise: the source runs again
// with every page intact, A holds nothing of the migration.
func TestCrhookMigrateStreamPageServerKilled(t *testing.T) {
	if os.Getenv("CRHOOK_MIGRATE_MIB") == "" {
		t.Setenv("CRHOOK_MIGRATE_MIB", "256") // a dump long enough to break
	}
	m := setupStream(t, "crhook-sk", 11)
	killed := make(chan string, 1)
	go func() {
		deadline := time.Now().Add(2 * time.Minute)
		for time.Now().Before(deadline) {
			// Pages arriving: the dump is under way. Kill CRIU itself, not
			// its supervisor, as if it crashed.
			pages, _ := filepath.Glob(filepath.Join(aStateDir, "migrations", "*", "pages", "pages-*.img"))
			for _, p := range pages {
				if fi, err := os.Stat(p); err != nil || fi.Size() == 0 {
					continue
				}
				migID := filepath.Base(filepath.Dir(filepath.Dir(p)))
				out, _ := exec.Command("pgrep", "-f", `^\S*criu page-server .*`+migID).Output()
				for _, pid := range strings.Fields(string(out)) {
					_ = exec.Command("kill", "-9", pid).Run()
				}
				if len(out) > 0 {
					killed <- strings.TrimSpace(string(out))
					return
				}
			}
			time.Sleep(time.Millisecond)
		}
		killed <- ""
	}()
	r, s := m.migrate(t)
	pid := <-killed
	t.Logf("killed page server %q; summary: %v", pid, s)
	if pid == "" {
		t.Fatal("the page server was never seen receiving pages")
	}
	if r.code == 0 {
		t.Fatalf("crhook migrate succeeded although its page server was killed mid-dump: %s", r)
	}
	if got := m.state(t, false); got != "running" {
		t.Fatalf("source container on B: %q, want running again\n%s", got, r)
	}
	if src, _ := s["source_state"].(string); !strings.HasPrefix(src, "running") {
		t.Errorf("summary's source_state %q, want running", src)
	}
	if got := m.state(t, true); got != "" {
		t.Errorf("destination holds the container (%s)", got)
	}
	line := m.ask(t, "check", 120*time.Second)
	if got := fields(line); got["bad"] != "0" || got["pages"] != strconv.Itoa(m.mib<<8) {
		t.Fatalf("memory of the source after the failed dump: %s", line)
	}
	m.noMigrationLeft(t, s)
}

// TestCrhookMigrateStreamRestoreFails: A's restore fails (a container of
// another ID has the name there). The promise: the source runs again
// with every page, restored from its frozen tasks; A's namesake is
// untouched and A keeps nothing of the migration.
func TestCrhookMigrateStreamRestoreFails(t *testing.T) {
	m := setupStream(t, "crhook-sf", 12)
	decoy := strings.TrimSpace(mustRun(t, "podman", "create", "--name", m.name, memhogImage, "/memhog"))
	r, s := m.migrate(t)
	if r.code == 0 {
		t.Fatalf("crhook migrate succeeded although the destination's restore must fail: %s", r)
	}
	t.Logf("summary: %v", s)
	if got := m.state(t, false); got != "running" {
		t.Fatalf("source container on B after the failed migration: %q, want running again\n%s", got, r)
	}
	if src, _ := s["source_state"].(string); src != "running (rolled back)" {
		t.Errorf("summary's source_state %q, want running (rolled back)", src)
	}
	line := m.ask(t, "check", 120*time.Second)
	if got := fields(line); got["bad"] != "0" || got["pages"] != strconv.Itoa(m.mib<<8) {
		t.Fatalf("memory of the rolled-back source: %s", line)
	}
	ids := strings.Fields(mustRun(t, "podman", "ps", "-a", "--filter", "name=^"+m.name+"$", "--format", "{{.ID}}"))
	if len(ids) != 1 || !strings.HasPrefix(decoy, ids[0]) {
		t.Fatalf("destination after the rollback holds %v, want only the namesake %s", ids, decoy[:12])
	}
	m.noMigrationLeft(t, s)
}

// TestCrhookMigrateStreamSSHDrops: the control channel to A drops once
// the source is dumped (the archive exists), before A said every page
// arrived. The promise: the source runs again with every page; A never
// runs the container.
func TestCrhookMigrateStreamSSHDrops(t *testing.T) {
	m := setupStream(t, "crhook-ss", 13)
	r, s := m.migrateCuttingSSHAfterDump(t)
	m.sourceRunsAgain(t, r, s)
	if src, _ := s["source_state"].(string); src != "running (rolled back)" {
		t.Errorf("summary's source_state %q, want running (rolled back)", src)
	}
	if d, _ := s["destination_state"].(string); !strings.HasPrefix(d, "unknown") {
		t.Errorf("summary's destination_state %q: A was unreachable, its state cannot be known", d)
	}
}

// TestStreamPageServerRefusesStranger: the page server `crhook
// migrate-agent serve` starts for a stream listens on the address it is
// given only, and gives a client without this migration's certificate
// nothing: no page is written, and it does not stay up for another try.
func TestStreamPageServerRefusesStranger(t *testing.T) {
	needRoot(t, "criu", "crhook")
	if r := run(t, "crhook", "migrate-agent", "serve", "--help"); r.code != 0 {
		t.Skipf("the installed crhook has no migrate-agent serve: run make install: %s", r)
	}
	material, err := pki.NewTLSMaterial([]string{"127.0.0.1"}, time.Hour, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	id := fmt.Sprintf("%064x", time.Now().UnixNano())
	migID := "stranger-" + strconv.FormatInt(time.Now().UnixNano(), 16)
	d := migrate.Duration(20 * time.Second)
	plan := &migrate.Plan{Version: migrate.PlanVersion, Mode: migrate.ModeStream, MigrationID: migID,
		PageServer: migrate.PageServer{Address: "127.0.0.1"}, Timeouts: migrate.Timeouts{Connect: d, NoProgress: d, Total: migrate.Duration(time.Minute)},
		Status: migrate.StatusPlanned}
	req, err := json.Marshal(map[string]any{"plan": plan, "role": "server",
		"material": &pki.TLSMaterial{CACert: material.CACert, ServerCert: material.ServerCert, ServerKey: material.ServerKey}})
	if err != nil {
		t.Fatal(err)
	}
	serve := exec.Command("crhook", "migrate-agent", "serve", id)
	serve.Stdin = bytes.NewReader(req)
	t.Cleanup(func() { _ = exec.Command("crhook", "migrate-agent", "abort", id, migID).Run() })
	r := runCmd(t, serve)
	var ans struct{ Port int }
	if err := json.Unmarshal([]byte(r.out), &ans); r.code != 0 || err != nil || ans.Port == 0 {
		t.Fatalf("crhook migrate-agent serve: %v: %s", err, r)
	}
	// It listens on 127.0.0.1 only.
	hexPort := fmt.Sprintf(":%04X", ans.Port)
	tcp, _ := os.ReadFile("/proc/net/tcp")
	listening := ""
	for _, l := range strings.Split(string(tcp), "\n") {
		if f := strings.Fields(l); len(f) > 3 && f[3] == "0A" && strings.HasSuffix(f[1], hexPort) {
			listening = f[1]
		}
	}
	if listening != "0100007F"+hexPort {
		t.Fatalf("the page server listens on %q, want 127.0.0.1 only", listening)
	}

	conn, err := net.DialTimeout("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(ans.Port)), 5*time.Second)
	if err != nil {
		t.Fatalf("dial the page server: %v", err)
	}
	serverDER, _ := pem.Decode(material.ServerCert)
	sawServerCert := false
	c := tls.Client(conn, &tls.Config{InsecureSkipVerify: true, //nolint:gosec // the stranger trusts anyone, and notes who answered
		VerifyPeerCertificate: func(raw [][]byte, _ [][]*x509.Certificate) error {
			sawServerCert = len(raw) > 0 && bytes.Equal(raw[0], serverDER.Bytes)
			return nil
		}})
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	herr := c.Handshake()
	n := 0
	if herr == nil {
		// A page-server request header, then a page's worth of data.
		_, _ = c.Write(make([]byte, 4096+32))
		n, herr = c.Read(make([]byte, 4096))
	}
	_ = c.Close()
	if !sawServerCert {
		t.Fatalf("the page server did not present this migration's certificate (%v): is it running without TLS?", herr)
	}
	if n > 0 || herr == nil {
		t.Fatalf("the page server answered a client without a certificate with %d bytes (%v)", n, herr)
	}
	dir := filepath.Join(aStateDir, "migrations", migID)
	var rc []byte
	eventually(t, 30*time.Second, "the page server ends after the refused client", func() bool {
		rc, err = os.ReadFile(filepath.Join(dir, "page-server.rc"))
		return err == nil
	})
	if strings.TrimSpace(string(rc)) == "0" {
		t.Errorf("the page server exited 0 after a stranger: a restore would take its pages as complete")
	}
	if pages, _ := filepath.Glob(filepath.Join(dir, "pages", "*")); len(pages) > 0 {
		t.Errorf("the page server wrote %v for a client without a certificate", pages)
	}
	t.Logf("refused (%v); page server exit %s", herr, strings.TrimSpace(string(rc)))
}
