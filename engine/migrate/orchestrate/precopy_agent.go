package orchestrate

import (
	"encoding/json"
	"fmt"
	"io"
	"os"

	"github.com/crhook/crhook/engine"
	"github.com/crhook/crhook/engine/migrate"
	"github.com/crhook/crhook/engine/migrate/pki"
)

// AgentServeRound is AgentServe for a pre-copy migration's destination:
// the page server of round n (n >= 1), or of the final dump (n == 0)
// after last rounds. The plan it installs (the final's names the last
// round) is what the destination's restore reads.
func AgentServeRound(stateDir, id string, n, last int, r io.Reader) (int, error) {
	req, role, err := readRequest(r)
	if err != nil {
		return 0, err
	}
	if role != pki.RoleServer || req.Plan.Mode != migrate.ModePrecopy {
		return 0, fmt.Errorf("a pre-copy round's page server is served for mode precopy in the server role, not %s as %s", req.Plan.Mode, req.Role)
	}
	if req.Plan.PageServer.Port == 0 {
		if req.Plan.PageServer.Port, err = freePort(req.Plan.PageServer.Address); err != nil {
			return 0, err
		}
	}
	// The TLS files are written once, for round 1: they are made fresh
	// for each migration and never overwritten (pki.WriteFiles).
	if n == 1 {
		err = install(stateDir, id, req, role)
	} else {
		err = replan(stateDir, id, req.Plan)
	}
	if err != nil {
		return 0, err
	}
	if err := engine.StartRoundPageServer(stateDir, req.Plan, engine.CriuBinary("criu"), n, last); err != nil {
		return 0, err
	}
	return req.Plan.PageServer.Port, nil
}

// AgentReplan reads a plan from r and installs it for container id in
// place of the plan of the same pre-copy migration already there, with
// the TLS files that one names: the source's plan for each round after
// the first, and for the final dump.
func AgentReplan(stateDir, id string, r io.Reader) error {
	dec := json.NewDecoder(io.LimitReader(r, 1<<20))
	dec.DisallowUnknownFields()
	var p migrate.Plan
	if err := dec.Decode(&p); err != nil {
		return fmt.Errorf("read the pre-copy plan: %w", err)
	}
	return replan(stateDir, id, &p)
}

// replan writes p over the plan of the same pre-copy migration, keeping
// its TLS paths; there must be one.
func replan(stateDir, id string, p *migrate.Plan) error {
	old, err := engine.ReadPlan(stateDir, id)
	if err != nil {
		return err
	}
	if old == nil || old.MigrationID != p.MigrationID || old.Mode != migrate.ModePrecopy || p.Mode != migrate.ModePrecopy {
		return fmt.Errorf("container %s has no plan of pre-copy migration %s here to update (round 1 installs it)", id, p.MigrationID)
	}
	p.TLS = old.TLS
	return engine.WritePlan(stateDir, id, p)
}

// AgentRoundProgress is AgentProgress of the destination's page server
// of pre-copy round n: PageBytes is what that round's directory holds.
func AgentRoundProgress(stateDir, migID string, n int) (Progress, error) {
	p, err := AgentProgress(stateDir, pki.RoleServer.String(), migID)
	if err != nil {
		return p, err
	}
	p.PageBytes = 0
	ents, err := os.ReadDir(engine.RoundDir(engine.MigrationDir(stateDir, migID), n))
	if err != nil {
		return p, fmt.Errorf("read pre-copy round %d's images: %w", n, err)
	}
	for _, e := range ents {
		if fi, err := e.Info(); err == nil && fi.Mode().IsRegular() {
			p.PageBytes += fi.Size()
		}
	}
	return p, nil
}
