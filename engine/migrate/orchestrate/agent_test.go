package orchestrate

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/crhook/crhook/engine"
	"github.com/crhook/crhook/engine/migrate/pki"
)

// TestAgentProgressSupervisorStillWriting: the lazy-pages daemon has
// exited and its supervisor (the group's leader) has not yet written the
// exit status. That is not a daemon killed without a status: calling it
// one (exit 137) made the orchestrator kill a destination that had every
// page, with the source already gone. Only a supervisor gone without a
// status is.
func TestAgentProgressSupervisorStillWriting(t *testing.T) {
	state := t.TempDir()
	dir := engine.MigrationDir(state, "m1")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	rc := filepath.Join(dir, engine.LazyPagesRC)
	// A supervisor whose daemon is done: only sh and its sleep remain in
	// the group until it writes the status; the test says when.
	release := filepath.Join(dir, "release")
	sup := exec.Command("/bin/sh", "-c", `while [ ! -e "$1" ]; do sleep 0.01; done; echo 0 >"$2.tmp" && mv "$2.tmp" "$2"`, "sh", release, rc)
	sup.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := sup.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { _ = sup.Wait(); close(done) }()
	t.Cleanup(func() { _ = syscall.Kill(-sup.Process.Pid, syscall.SIGKILL); <-done })
	if err := os.WriteFile(filepath.Join(dir, engine.PGID), []byte(strconv.Itoa(sup.Process.Pid)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	p, err := AgentProgress(state, pki.RoleClient.String(), "m1")
	if err != nil {
		t.Fatal(err)
	}
	if p.Done {
		t.Fatalf("progress while the supervisor is about to write the status = %+v, want not done yet", p)
	}
	if err := os.WriteFile(release, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	<-done
	if p, err = AgentProgress(state, pki.RoleClient.String(), "m1"); err != nil || !p.Done || p.Code != 0 {
		t.Fatalf("progress once the supervisor wrote exit 0 = %+v, %v; want done, code 0", p, err)
	}

	// Killed with its supervisor, no status: a failure.
	if err := os.Remove(rc); err != nil {
		t.Fatal(err)
	}
	killed := exec.Command("/bin/sh", "-c", "sleep 60")
	killed.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := killed.Start(); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, engine.PGID), []byte(strconv.Itoa(killed.Process.Pid)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_ = syscall.Kill(-killed.Process.Pid, syscall.SIGKILL)
	_ = killed.Wait()
	deadline := time.Now().Add(10 * time.Second)
	for {
		p, err = AgentProgress(state, pki.RoleClient.String(), "m1")
		if err != nil || (p.Done && p.Code == 137) || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err != nil || !p.Done || p.Code != 137 {
		t.Fatalf("progress of a supervisor killed without a status = %+v, %v; want done, code 137", p, err)
	}
}
