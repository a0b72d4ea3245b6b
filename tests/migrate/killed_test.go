//go:build e2e

package migrate

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The foreground `crhook migrate` is SIGKILLed (kill -9, the OOM killer,
// its process group killed); its worker, `crhook migrate-agent worker`
// in a session of its own, finishes the protocol: rolled back before the
// destination ran, completed after. Nothing stays frozen, never two
// copies.

// startKillable starts `crhook migrate` on B as migrate does, without
// waiting for it; it returns the command, its exit channel and the pid of
// crhook itself (hostb.sh's exec runs it below a wrapper).
func (m *podmanMigration) startKillable(t *testing.T) (*exec.Cmd, <-chan error, int) {
	t.Helper()
	args := []string{"migrate", m.name, m.dest, "--mode", m.mode, "--ssh-config", m.sshConfig,
		"--format", "json", "--connect-timeout", "20s", "--no-progress-timeout", "30s", "--timeout", "5m"}
	cmd := m.h.cmd("crhook", args...)
	var out, errb strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done, exited := make(chan error, 1), make(chan struct{})
	go func() { done <- <-waitChan(cmd); close(exited) }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-exited
		t.Logf("crhook migrate (killed): stdout %q, stderr %q", out.String(), errb.String())
	})
	var pid int
	eventually(t, 30*time.Second, "crhook migrate running", func() bool {
		o, _ := exec.Command("pgrep", "-f", "--", "migrate "+m.name+" "+m.dest).Output()
		for _, f := range strings.Fields(string(o)) {
			comm, _ := os.ReadFile("/proc/" + f + "/comm")
			if strings.TrimSpace(string(comm)) == "crhook" {
				pid, _ = strconv.Atoi(f)
				return pid > 0
			}
		}
		return false
	})
	return cmd, done, pid
}

// workerMigrationID is the migration of the worker that moves m's
// container: found by its log in B's state directory, which names the
// container on its first line.
func (m *podmanMigration) workerMigrationID(t *testing.T) string {
	t.Helper()
	var migID string
	logs := filepath.Join(m.bStateDir(t), "migrate-worker", "*", "worker.log")
	eventually(t, 2*time.Minute, "the worker's log naming "+m.name, func() bool {
		files, _ := filepath.Glob(logs)
		for _, f := range files {
			data, _ := os.ReadFile(f)
			if strings.Contains(string(data), "container="+m.name+" ") {
				migID = filepath.Base(filepath.Dir(f))
				return true
			}
		}
		return false
	})
	return migID
}

// workerSummary waits for the summary the worker of migID leaves in B's
// state directory, and for the worker and every process naming the
// migration (ssh master, page server, lazy-pages daemon) to be gone.
func (m *podmanMigration) workerSummary(t *testing.T, migID string) map[string]any {
	t.Helper()
	dir := filepath.Join(m.bStateDir(t), "migrate-worker", migID)
	var s map[string]any
	eventually(t, 3*time.Minute, "the worker's summary in "+dir, func() bool {
		data, err := os.ReadFile(filepath.Join(dir, "summary.json"))
		return err == nil && json.Unmarshal(data, &s) == nil
	})
	log, _ := os.ReadFile(filepath.Join(dir, "worker.log"))
	t.Logf("worker's summary: %v\nworker's log:\n%s", s, log)
	var left []byte
	eventually(t, time.Minute, "no process of migration "+migID+" left", func() bool {
		left, _ = exec.Command("pgrep", "-af", migID).Output()
		return len(left) == 0
	})
	return s
}

// TestCrhookMigrateKilledDuringDump: crhook migrate --mode stream is
// SIGKILLed while the source is being dumped into A's page server. The
// promise: the worker rolls back: the source runs again with every page,
// A has nothing, no process of the migration is left, and the worker's
// summary says so. Without the worker (crhook migrate running the
// protocol itself) the dumped tasks stay frozen until podman's held
// delete expires at --timeout.
func TestCrhookMigrateKilledDuringDump(t *testing.T) {
	if os.Getenv("CRHOOK_MIGRATE_MIB") == "" {
		t.Setenv("CRHOOK_MIGRATE_MIB", "256") // a dump long enough to kill it in
	}
	m := setupStream(t, "crhook-kd", 16)
	// The migration's directory on A is the one that was not there
	// before: found without the worker, so that the test runs the same
	// against a crhook without one.
	before := map[string]bool{}
	old, _ := filepath.Glob(filepath.Join(aStateDir, "migrations", "*"))
	for _, d := range old {
		before[d] = true
	}
	_, done, pid := m.startKillable(t)
	var migID string
	eventually(t, 2*time.Minute, "pages arriving in A's page server", func() bool {
		pages, _ := filepath.Glob(filepath.Join(aStateDir, "migrations", "*", "pages", "pages-*.img"))
		for _, p := range pages {
			dir := filepath.Dir(filepath.Dir(p))
			if fi, err := os.Stat(p); err == nil && fi.Size() > 0 && !before[dir] {
				migID = filepath.Base(dir)
				return true
			}
		}
		return false
	})
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	if err := waitWithin(t, done, 30*time.Second, "crhook migrate after SIGKILL"); err == nil {
		t.Fatal("crhook migrate exited 0 after SIGKILL")
	}
	// The promise first, so that without a worker the test fails on it.
	// podman says "running" of a dumped container whose tasks are kept
	// frozen (--leave-running): memhog answering is the proof.
	eventually(t, 3*time.Minute, "the source container running on B, nothing on A", func() bool {
		return m.state(t, false) == "running" && m.state(t, true) == ""
	})
	if got := fields(m.ask(t, "check", 120*time.Second)); got["bad"] != "0" || got["pages"] != strconv.Itoa(m.mib<<8) {
		t.Fatalf("memory of the source after the rollback: %v", got)
	}
	s := m.workerSummary(t, migID)
	if src, _ := s["source_state"].(string); src != "running (rolled back)" {
		t.Errorf("the worker's summary: source_state %q, want running (rolled back)", src)
	}
	if i, _ := s["interrupted"].(string); !strings.Contains(i, "crhook migrate went away") || !strings.HasSuffix(i, "in phase checkpoint") {
		t.Errorf("the worker's summary: interrupted %q, want crhook migrate went away, in phase checkpoint", i)
	}
	m.noMigrationLeft(t, s)
}

// TestCrhookMigrateKilledAfterRestore: crhook migrate --mode lazy is
// SIGKILLed once A's copy runs and faults its pages in (phase pages).
// The promise: the worker completes the migration: A runs with every
// page, B's container is stopped and its frozen tasks gone: exactly one
// copy.
func TestCrhookMigrateKilledAfterRestore(t *testing.T) {
	if os.Getenv("CRHOOK_MIGRATE_MIB") == "" {
		t.Setenv("CRHOOK_MIGRATE_MIB", "256") // a pages phase long enough to kill it in
	}
	m := setupPodmanMigration(t, "crhook-ka", 17)
	_, done, pid := m.startKillable(t)
	// The worker logs each phase as it starts (slog, its log in B's
	// state directory): kill at "pages".
	// A's copy runs and pages move (about 2 s for 256 MiB here): the
	// worker's log says "phase=pages" (it logs each phase as it starts).
	// A crhook without a worker (the test run against the code before)
	// has no log: A running is the sign then.
	logs := filepath.Join(m.bStateDir(t), "migrate-worker", "*", "worker.log")
	eventually(t, 2*time.Minute, "the migration in phase pages", func() bool {
		files, _ := filepath.Glob(logs)
		for _, f := range files {
			data, _ := os.ReadFile(f)
			if strings.Contains(string(data), "container="+m.name+" ") {
				return strings.Contains(string(data), "phase=pages")
			}
		}
		return m.state(t, true) == "running"
	})
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	if err := waitWithin(t, done, 30*time.Second, "crhook migrate after SIGKILL"); err == nil {
		t.Fatal("crhook migrate exited 0 after SIGKILL")
	}
	// The promise first: one copy, on A, and B's frozen tasks gone.
	eventually(t, 3*time.Minute, "the container running on A, stopped on B", func() bool {
		b := m.state(t, false)
		return m.state(t, true) == "running" && b != "running" && b != ""
	})
	s := m.workerSummary(t, m.workerMigrationID(t))
	if s["phase"] != "done" || s["source_state"] != "stopped" || s["destination_state"] != "running, every page moved" {
		t.Errorf("the worker's summary: phase %v, source %v, destination %v; want done, stopped, running with every page",
			s["phase"], s["source_state"], s["destination_state"])
	}
	if i, _ := s["interrupted"].(string); !strings.Contains(i, "crhook migrate went away") || !strings.HasSuffix(i, "in phase pages") {
		t.Errorf("the worker's summary: interrupted %q, want crhook migrate went away, in phase pages", i)
	}
	if got := m.state(t, true); got != "running" {
		t.Fatalf("container on A: %q, want running", got)
	}
	if got := m.state(t, false); got == "running" || got == "" {
		t.Fatalf("container on B: %q, want stopped (exited)", got)
	}
	line := m.ask(t, "check", 120*time.Second)
	if got := fields(line); got["bad"] != "0" || got["pages"] != strconv.Itoa(m.mib<<8) {
		t.Fatalf("memory on A after the migration: %s (want %d pages, 0 bad)", line, m.mib<<8)
	}
	m.noTasksOnB(t, s)
	m.noMigrationLeft(t, s)
}
