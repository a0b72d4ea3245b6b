package orchestrate

import (
	"context"
	"fmt"
	"path/filepath"
	"strconv"
	"time"

	"github.com/crhook/crhook/engine/migrate"
	"github.com/crhook/crhook/engine/migrate/pki"
)

// PreDumper is a Source that runs pre-copy rounds.
type PreDumper interface {
	// PreDump runs one pre-dump round of the container into the page
	// server its plan names; the container keeps running.
	PreDump(ctx context.Context, name string) error
	// Replan updates the plan Prepare installed for the next round,
	// keeping its TLS files.
	Replan(ctx context.Context, id string, plan *migrate.Plan) error
}

// RoundServer is a Destination that serves pre-copy rounds.
type RoundServer interface {
	// ServeRound is ServePages for pre-copy round n (n >= 1), or for the
	// final dump (n == 0) after last rounds.
	ServeRound(ctx context.Context, id string, plan *migrate.Plan, m *pki.TLSMaterial, n, last int) (int, error)
	// RoundProgress reports round n's page server; PageBytes is what
	// that round's images hold.
	RoundProgress(ctx context.Context, migID string, n int) (Progress, error)
}

// RoundSummary is one pre-copy round in the summary.
type RoundSummary struct {
	Round int   `json:"round"`
	Bytes int64 `json:"bytes"`
	MS    int64 `json:"ms"`
	// Decision is the stop rule's verdict after this round, and why.
	Decision migrate.Action `json:"decision"`
	Reason   string         `json:"reason"`
}

// precopy: pre-dump rounds into page servers on the destination while
// the container runs, each round sending what changed since the one
// before, until the stop rule (o.Policy) says stop; then a final dump on
// top of the last round: a stream's, or with o.Final lazy a lazy
// migration's (finalLazy). A failure during the rounds leaves the source
// as it was, running: pre-dumps never stop it.
func (m *run) precopy(addr string) (*Summary, error) {
	ctx, o, s, c := m.ctx, m.o, m.s, m.c
	pd, ok := m.src.(PreDumper)
	rs, ok2 := m.dst.(RoundServer)
	if !ok || !ok2 {
		return m.failf("these hosts cannot run pre-copy rounds")
	}
	policy := o.Policy
	if policy == (migrate.Policy{}) {
		policy = migrate.DefaultPolicy
	}
	if _, err := policy.Next(nil); err != nil {
		return m.failf("%w", err)
	}
	// o.Port is the page server's on the host that serves the final
	// dump: for a lazy one the source's, and the rounds' page servers
	// on the destination take ephemeral ports.
	roundPort, srcAddr := o.Port, ""
	switch o.Final {
	case "", migrate.ModeStream:
	case migrate.ModeLazy:
		addrs, err := m.dst.Addresses(ctx)
		if err != nil {
			return m.failf("%w", err)
		}
		roundPort, srcAddr = 0, addrs.Source
	default:
		return m.failf("a pre-copy's final dump is stream or lazy, not %q", o.Final)
	}
	var err error
	if m.material, err = pki.NewTLSMaterial([]string{addr}, time.Duration(o.Timeouts.Total)+time.Hour, m.now()); err != nil {
		return m.failf("%w", err)
	}
	m.plan = &migrate.Plan{Version: migrate.PlanVersion, Mode: migrate.ModePrecopy, MigrationID: o.MigrationID,
		PageServer: migrate.PageServer{Address: addr, Port: roundPort}, Timeouts: o.Timeouts, Status: migrate.StatusPlanned}
	// Before the final dump nothing stopped the source: any failure
	// removes both ends' files and leaves it running.
	abort := func(format string, a ...any) (*Summary, error) {
		cerr := m.cleanPlans()
		s.SourceState = "running (pre-copy rounds never stop it)"
		s.DestinationState = "nothing: its rounds were removed"
		if cerr != nil {
			s.DestinationState = "unknown: removing its rounds failed: " + cerr.Error()
		}
		return m.failf(format+"; the source keeps running", a...)
	}

	m.phase(PhasePrecopy)
	var rounds []migrate.Round
	for n := 1; ; n++ {
		m.plan.Round, m.plan.ParentPath, m.plan.PageServer.Port = n, "", roundPort
		if n > 1 {
			m.plan.ParentPath = filepath.Join("rounds", strconv.Itoa(n-1))
		}
		port, err := rs.ServeRound(ctx, c.ID, m.plan, m.material, n, n-1)
		if err != nil {
			return abort("round %d: %w", n, err)
		}
		m.plan.PageServer.Port = port
		if n == 1 {
			err = m.src.Prepare(ctx, c.ID, m.plan, pki.RoleClient, m.material)
		} else {
			err = pd.Replan(ctx, c.ID, m.plan)
		}
		if err != nil {
			return abort("round %d: %w", n, err)
		}
		start := m.now()
		if err := pd.PreDump(ctx, o.Container); err != nil {
			return abort("round %d: %w", n, err)
		}
		bytes, err := m.waitRound(rs, n)
		if err != nil {
			return abort("round %d: %w", n, err)
		}
		took := m.now().Sub(start)
		if took <= 0 {
			took = time.Millisecond
		}
		rounds = append(rounds, migrate.Round{Bytes: bytes, Duration: took})
		d, err := policy.Next(rounds)
		if err != nil {
			return abort("round %d: %w", n, err)
		}
		s.Rounds = append(s.Rounds, RoundSummary{Round: n, Bytes: bytes, MS: took.Milliseconds(), Decision: d.Action, Reason: d.Reason})
		if o.OnRound != nil {
			o.OnRound(s.Rounds[len(s.Rounds)-1])
		}
		if d.Action != migrate.Continue {
			break
		}
		if err := m.interrupted(); err != nil {
			return abort("after round %d: %w", n, err)
		}
	}
	if err := m.interrupted(); err != nil {
		return abort("before the final dump: %w", err)
	}

	last := len(rounds)
	if o.Final == migrate.ModeLazy {
		s.FinalDump = migrate.ModeLazy
		return m.finalLazy(srcAddr, last)
	}
	s.FinalDump = migrate.ModeStream
	m.plan.Round, m.plan.PageServer.Port = 0, o.Port
	m.plan.ParentPath = filepath.Join("rounds", strconv.Itoa(last))
	port, err := rs.ServeRound(ctx, c.ID, m.plan, m.material, 0, last)
	if err != nil {
		return abort("final page server: %w", err)
	}
	m.plan.PageServer.Port = port
	if err := pd.Replan(ctx, c.ID, m.plan); err != nil {
		return abort("final dump: %w", err)
	}
	return m.streamDump()
}

// finalLazy is a pre-copy's lazy final dump (pre-copy and post-copy
// combined): lazy mode's protocol, run.lazy, the one copy of it (prepare
// both ends, dump with the source's page server up, restore, fault
// every page in, commit; its rollback before the destination runs, its
// kill of the destination after a broken page stream). Only the plans it
// writes differ: they are the pre-copy's (finalPlan), naming the last
// round as parent, so the source dumps on top of it (only what changed
// since is served) and the destination restores from the rounds it
// holds plus what it faults in. The roles turn round: the source serves
// now, with TLS material run.lazy makes for its address.
func (m *run) finalLazy(srcAddr string, last int) (*Summary, error) {
	parent := filepath.Join("rounds", strconv.Itoa(last))
	final := func(p *migrate.Plan) *migrate.Plan {
		q := *p
		q.Mode, q.Final, q.ParentPath, q.Round = migrate.ModePrecopy, migrate.ModeLazy, parent, 0
		return &q
	}
	m.src, m.dst = finalPlanSource{m.src, final}, finalPlanDest{m.dst, final}
	return m.lazy(srcAddr)
}

// finalPlanSource and finalPlanDest are the hosts with Prepare writing
// final(plan) in place of the lazy plan run.lazy makes.
type (
	finalPlanSource struct {
		Source
		final func(*migrate.Plan) *migrate.Plan
	}
	finalPlanDest struct {
		Destination
		final func(*migrate.Plan) *migrate.Plan
	}
)

func (h finalPlanSource) Prepare(ctx context.Context, id string, p *migrate.Plan, r pki.Role, m *pki.TLSMaterial) error {
	return h.Source.Prepare(ctx, id, h.final(p), r, m)
}

func (h finalPlanDest) Prepare(ctx context.Context, id string, p *migrate.Plan, r pki.Role, m *pki.TLSMaterial) error {
	return h.Destination.Prepare(ctx, id, h.final(p), r, m)
}

// waitRound waits for round n's page server to exit after the source's
// pre-dump returned, bounded by the no-progress and total timeouts; it
// returns the bytes the round wrote there. A page server that exited
// non-zero lost the round.
func (m *run) waitRound(rs RoundServer, n int) (int64, error) {
	o := m.o
	last, lastMoved := m.now(), int64(-1)
	for {
		p, err := rs.RoundProgress(m.ctx, o.MigrationID, n)
		switch {
		case err != nil:
			return 0, fmt.Errorf("cannot tell whether the destination's page server got the round: %w", err)
		case p.Done && p.Code != 0:
			return 0, fmt.Errorf("the destination's page server exited %d", p.Code)
		case p.Done:
			return p.PageBytes, nil
		}
		if p.Moved != lastMoved {
			last, lastMoved = m.now(), p.Moved
		} else if m.now().Sub(last) > time.Duration(o.Timeouts.NoProgress) {
			return 0, fmt.Errorf("the destination's page server did not finish: nothing moved for %v", time.Duration(o.Timeouts.NoProgress))
		}
		if m.now().Sub(m.start) > time.Duration(o.Timeouts.Total) {
			return 0, fmt.Errorf("not done within %v", time.Duration(o.Timeouts.Total))
		}
		select {
		case <-m.stop.Done():
			return 0, m.interrupted()
		case <-time.After(m.poll):
		}
	}
}
