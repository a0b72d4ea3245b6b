package orchestrate

import (
	"strings"
	"testing"

	"github.com/crhook/crhook/engine"
	"github.com/crhook/crhook/engine/migrate"
)

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
