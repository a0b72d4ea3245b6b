package orchestrate

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/crhook/crhook/engine"
	"github.com/crhook/crhook/engine/migrate"
)

// TestAgentProgressSupervisorWriting: the CRIU process has exited 0 and
// its supervisor shell is about to write the status. That moment is not
// "killed": reporting it as exit 137 made the orchestrator kill a
// destination that had every page (seen in TestCrhookMigrateAuto). Only a
// group whose supervisor is gone too, with no status, was killed.
func TestAgentProgressSupervisorWriting(t *testing.T) {
	state := t.TempDir()
	const migID = "m1"
	dir := engine.MigrationDir(state, migID)
	must(t, os.MkdirAll(dir, 0o700))
	rc := filepath.Join(dir, engine.LazyPagesRC)
	// The supervisor after its command exited: a shell (and its timer's
	// sleep) that writes the status a moment later.
	sup := exec.Command("/bin/sh", "-c", `sleep 0.5; echo 0 >"$1.tmp" && mv "$1.tmp" "$1"`, "sh", rc)
	sup.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	must(t, sup.Start())
	t.Cleanup(func() { _ = syscall.Kill(-sup.Process.Pid, syscall.SIGKILL); _ = sup.Wait() })
	must(t, os.WriteFile(filepath.Join(dir, engine.PGID), []byte(strconv.Itoa(sup.Process.Pid)), 0o600))

	p, err := AgentProgress(state, "client", migID)
	if err != nil {
		t.Fatal(err)
	}
	if p.Done {
		t.Fatalf("progress %+v while the supervisor is still writing the status: a finished daemon reported killed", p)
	}
	deadline := time.Now().Add(10 * time.Second)
	for !p.Done && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
		if p, err = AgentProgress(state, "client", migID); err != nil {
			t.Fatal(err)
		}
	}
	if !p.Done || p.Code != 0 {
		t.Fatalf("progress %+v once the supervisor wrote 0", p)
	}

	// The whole group killed (the supervisor's timeout, or kill -g):
	// no status will come, and that is exit 137.
	must(t, os.Remove(rc))
	killed := exec.Command("/bin/sh", "-c", "sleep 60")
	killed.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	must(t, killed.Start())
	must(t, os.WriteFile(filepath.Join(dir, engine.PGID), []byte(strconv.Itoa(killed.Process.Pid)), 0o600))
	must(t, syscall.Kill(-killed.Process.Pid, syscall.SIGKILL))
	_ = killed.Wait()
	if p, err = AgentProgress(state, "client", migID); err != nil || !p.Done || p.Code != 137 {
		t.Fatalf("progress %+v, %v of a killed group, want done, 137", p, err)
	}
}

// TestAgentFail: `migrate-agent fail` turns the host's plan into a
// rollback order (whatever role the host had: a stream's source holds
// client TLS files, a lazy one's server files), and refuses when there
// is no plan to act on.
func TestAgentFail(t *testing.T) {
	dir := t.TempDir()
	const id = "0123456789abcdef"
	if err := AgentFail(dir, id, "x"); err == nil || !strings.Contains(err.Error(), "no migration plan") {
		t.Fatalf("fail without a plan: %v", err)
	}
	p := &migrate.Plan{Version: migrate.PlanVersion, Mode: migrate.ModeStream, MigrationID: "m1",
		PageServer: migrate.PageServer{Address: "10.0.0.1", Port: 4000}, Status: migrate.StatusServing,
		TLS:      migrate.TLSPaths{CACert: "/t/ca.pem", Cert: "/t/c.pem", Key: "/t/k.pem"},
		Timeouts: migrate.Timeouts{Connect: 1, NoProgress: 1, Total: 1}}
	if err := engine.WritePlan(dir, id, p); err != nil {
		t.Fatal(err)
	}
	if err := AgentFail(dir, id, "rolled back on the source"); err != nil {
		t.Fatal(err)
	}
	got, err := engine.ReadPlan(dir, id)
	if err != nil || got.Status != migrate.StatusFailed || got.Error != "rolled back on the source" || got.TLS != p.TLS {
		t.Fatalf("plan after fail: %+v, %v", got, err)
	}
}
