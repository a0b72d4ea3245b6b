// Package orchestrate drives `crhook migrate`: the phases of a lazy
// (post-copy) or streamed migration through podman on two hosts, and the
// commit protocol that keeps exactly one copy of the container. The hosts are
// interfaces (Source, Destination), like go-criu's phaul Local/Remote, so
// the protocol is tested with fakes and run with podman over ssh.
package orchestrate

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/crhook/crhook/engine/migrate"
	"github.com/crhook/crhook/engine/migrate/pki"
)

// Phase is where a migration stands; the summary names the last one
// reached, and a failure the one it happened in.
type Phase string

// The phases, in order.
const (
	PhasePrepare    Phase = "prepare"    // plans and TLS material on both hosts
	PhasePrecopy    Phase = "precopy"    // pre-dump rounds while the container runs
	PhaseCheckpoint Phase = "checkpoint" // podman checkpoint --export; lazy: the page server comes up; stream: the pages move
	PhaseTransfer   Phase = "transfer"   // the small tar goes to the destination
	PhaseRestore    Phase = "restore"    // podman restore --import; the destination runs
	PhasePages      Phase = "pages"      // the destination faults every page in
	PhaseCommit     Phase = "commit"     // the source is left stopped or removed
	PhaseDone       Phase = "done"
)

// Container is the container to move, as the source's podman knows it.
type Container struct {
	ID, Name string
	Running  bool
}

// Progress is one end's view of the page transfer.
type Progress struct {
	// Done: the CRIU process (page server, lazy-pages daemon) exited.
	Done bool
	// Code is its exit status when Done.
	Code int
	// Moved grows while pages move (bytes of log or of pages): the
	// no-progress timeout watches it.
	Moved int64
	// PageBytes is what the destination's page server of a stream wrote
	// (pagemap and pages images); 0 elsewhere.
	PageBytes int64 `json:",omitempty"`
}

// Host is what both ends do.
type Host interface {
	// Prepare installs plan and this end's TLS material for container id.
	Prepare(ctx context.Context, id string, plan *migrate.Plan, role pki.Role, m *pki.TLSMaterial) error
	// Progress reports the migration's CRIU process on this host.
	Progress(ctx context.Context, migID string) (Progress, error)
	// Abort kills the migration's CRIU process and removes its plan and
	// files; missing is fine.
	Abort(ctx context.Context, id, migID string) error
	// Cleanup removes the plan and files of a finished migration.
	Cleanup(ctx context.Context, id, migID string) error
}

// Source is the host the container leaves.
type Source interface {
	Host
	Inspect(ctx context.Context, name string) (Container, error)
	// Checkpoint runs podman checkpoint --export into a local file and
	// returns its path and size; crhook-runtime returns at the status byte.
	Checkpoint(ctx context.Context, name string) (file string, size int64, err error)
	// Rollback brings the container back on the source after a failure
	// before the destination ran, from its dumped tasks that
	// crhook-runtime kept frozen: the page server may be dead, its pages
	// with it.
	Rollback(ctx context.Context, c Container, plan *migrate.Plan, m *pki.TLSMaterial) error
	// Remove deletes the stopped source container (--rm).
	Remove(ctx context.Context, name string) error
}

// Addresses are the two ends of the control channel as the destination
// sees it: where each host reaches the other.
type Addresses struct {
	Source, Destination string
}

// Destination is the host the container goes to.
type Destination interface {
	Host
	// ServePages (stream) installs plan and the page server's TLS
	// material, like Prepare, and starts the page server the source's
	// dump goes into; it returns the port it listens on (plan's, or an
	// ephemeral one when that is 0).
	ServePages(ctx context.Context, id string, plan *migrate.Plan, m *pki.TLSMaterial) (int, error)
	// Send copies the checkpoint file over and returns its path there.
	Send(ctx context.Context, file string) (string, error)
	Restore(ctx context.Context, name, file string) error
	// Import is Send and Restore in one remote command (one ssh session
	// fewer while the container is frozen); the archive is restored only
	// when all of it arrived.
	Import(ctx context.Context, name, file string) error
	// RemoveID deletes the migration's container there by its ID (podman
	// rm -f): never another container that happens to have its name.
	RemoveID(ctx context.Context, id string) error
	// KillID kills the migration's container there, keeping it for
	// inspection; not running is fine.
	KillID(ctx context.Context, id string) error
	// Addresses: the source's address is where a lazy-pages daemon
	// connects, the destination's where a streamed dump goes.
	Addresses(ctx context.Context) (Addresses, error)
}

// Options are the choices of one migration.
type Options struct {
	Container string
	// Mode is lazy (the default) or stream; Decision says why it was
	// chosen (default: asked for with --mode).
	Mode     migrate.Mode
	Decision string
	// Port is the page server's port: on the source for lazy (ephemeral,
	// chosen by the caller), on the destination for stream (0: the
	// destination picks an ephemeral one). MigrationID names the migration.
	Port        int
	MigrationID string
	Timeouts    migrate.Timeouts
	// RemoveSource: --rm.
	RemoveSource bool
	// Policy stops pre-copy rounds (zero: migrate.DefaultPolicy).
	Policy migrate.Policy
	// Final is a pre-copy's final dump: stream (zero too) or lazy.
	Final migrate.Mode
	// OnPhase, if set, is told each phase as it starts.
	OnPhase func(Phase)
	// OnPages, if set, is told while pages move: bytes read and written by
	// the CRIU processes of both ends so far (about twice the pages).
	OnPages func(moved int64)
	// OnRound, if set, is told each pre-copy round and the verdict.
	OnRound func(RoundSummary)
	// Poll is how often the page transfer is checked (default 100ms).
	Poll time.Duration
	Now  func() time.Time
}

// Summary is what happened, for --format json and the last line.
type Summary struct {
	Container   string `json:"container"`
	ID          string `json:"id"`
	MigrationID string `json:"migration_id"`
	Mode        string `json:"mode"`
	Decision    string `json:"decision"`
	Phase       Phase  `json:"phase"`
	// Downtime is from the start of the checkpoint to the destination
	// running: an upper bound of what the process saw.
	DowntimeMS int64 `json:"downtime_estimate_ms"`
	TotalMS    int64 `json:"total_ms"`
	// ImageBytes is the checkpoint tar's size (the pages are not in it).
	ImageBytes int64 `json:"image_bytes"`
	// PageBytes (stream) is what the destination's page server received.
	PageBytes int64 `json:"page_bytes,omitempty"`
	// SourceState and DestinationState say where the container is.
	SourceState      string `json:"source_state"`
	DestinationState string `json:"destination_state"`
	Error            string `json:"error,omitempty"`
	// PhasesMS is how long each phase took, by the wall clock: the
	// caller times them through OnPhase (crhook migrate does).
	PhasesMS map[Phase]int64 `json:"phases_ms,omitempty"`
	// Rounds (precopy) are the pre-dump rounds and the stop rule's
	// verdict after each.
	Rounds []RoundSummary `json:"rounds,omitempty"`
	// FinalDump (precopy) is how the final dump after the rounds went:
	// stream or lazy; empty when the rounds failed before it.
	FinalDump migrate.Mode `json:"final_dump,omitempty"`
}

// PhaseTimer times the phases of a migration through Options.OnPhase.
type PhaseTimer struct {
	now   func() time.Time
	cur   Phase
	start time.Time
	took  map[Phase]int64
}

// NewPhaseTimer returns a timer reading the clock now (time.Now if nil).
func NewPhaseTimer(now func() time.Time) *PhaseTimer {
	if now == nil {
		now = time.Now
	}
	return &PhaseTimer{now: now, took: map[Phase]int64{}}
}

// Enter is an OnPhase: the phase before p ends, p starts.
func (pt *PhaseTimer) Enter(p Phase) {
	t := pt.now()
	if pt.cur != "" {
		pt.took[pt.cur] += t.Sub(pt.start).Milliseconds()
	}
	pt.cur, pt.start = p, t
}

// Took ends the current phase and returns the time of each, in ms.
func (pt *PhaseTimer) Took() map[Phase]int64 {
	if pt.cur != "" && pt.cur != PhaseDone {
		pt.Enter(PhaseDone)
	}
	return pt.took
}

// ErrMigration wraps every failure of Run; the summary says what each
// host holds.
var ErrMigration = errors.New("migration failed")

// run is one migration under way: what Run's phases share.
type run struct {
	// ctx is what every host operation runs under: the caller's context
	// without its cancellation, so an interrupt never cuts a checkpoint,
	// a restore or a rollback in half. stop is the caller's: Run looks
	// at it between steps (interrupted).
	ctx      context.Context
	stop     context.Context
	src      Source
	dst      Destination
	o        Options
	s        *Summary
	now      func() time.Time
	poll     time.Duration
	start    time.Time
	c        Container
	plan     *migrate.Plan
	material *pki.TLSMaterial
}

// interrupted says whether the caller gave up (SIGINT, SIGTERM):
// before the destination runs, Run then rolls back at the next step;
// after, it finishes, since the destination is the container by then.
func (m *run) interrupted() error {
	if err := m.stop.Err(); err != nil {
		return fmt.Errorf("interrupted (%w) before the destination ran", err)
	}
	return nil
}

func (m *run) phase(p Phase) {
	m.s.Phase = p
	if m.o.OnPhase != nil {
		m.o.OnPhase(p)
	}
}

func (m *run) failf(format string, a ...any) (*Summary, error) {
	err := fmt.Errorf("%w in phase %s: "+format, append([]any{ErrMigration, m.s.Phase}, a...)...)
	m.s.Error = err.Error()
	m.s.TotalMS = m.now().Sub(m.start).Milliseconds()
	return m.s, err
}

func (m *run) cleanPlans() error {
	return errors.Join(m.src.Abort(m.ctx, m.c.ID, m.o.MigrationID), m.dst.Abort(m.ctx, m.c.ID, m.o.MigrationID))
}

// rollback is every failure after the source was dumped and before the
// destination ran: remove the destination's half (by ID: never a
// namesake already there), stop its CRIU process, and restore the source
// from the dumped tasks crhook-runtime kept frozen.
func (m *run) rollback(cause error) (*Summary, error) {
	ctx, c, s := m.ctx, m.c, m.s
	rerr := m.dst.RemoveID(ctx, c.ID)
	s.DestinationState = "removed"
	if rerr != nil {
		s.DestinationState = "unknown: " + rerr.Error()
	}
	if err := m.dst.Abort(ctx, c.ID, m.o.MigrationID); err != nil {
		rerr = errors.Join(rerr, err)
	}
	if err := m.src.Rollback(ctx, c, m.plan, m.material); err != nil {
		s.SourceState = "LOST: rollback failed: " + err.Error()
		return m.failf("%w; rolling back: %w", cause, errors.Join(rerr, err))
	}
	s.SourceState = "running (rolled back)"
	// The plan must not outlive the migration: a later checkpoint
	// would act on it.
	rerr = errors.Join(rerr, m.src.Cleanup(ctx, c.ID, m.o.MigrationID))
	if rerr != nil {
		return m.failf("%w; the source runs again; tidying the destination failed: %w", cause, rerr)
	}
	return m.failf("%w; the source runs again, the destination has nothing", cause)
}

// checkpoint runs podman's checkpoint on the source. A failure that left
// the container running (crhook-runtime resumes one it froze) only
// removes the plans; one that left it stopped came after the dump, so
// the kept tasks are the container: roll back to them, never delete them.
func (m *run) checkpoint() (file string, err error) {
	file, size, err := m.src.Checkpoint(m.ctx, m.o.Container)
	m.s.ImageBytes = size
	if err == nil {
		return file, nil
	}
	if c2, ierr := m.src.Inspect(m.ctx, m.o.Container); ierr == nil && !c2.Running {
		_, rerr := m.rollback(err)
		return "", rerr
	}
	cerr := m.cleanPlans()
	_, ferr := m.failf("%w (cleanup: %v)", err, cerr)
	return "", ferr
}

// Run migrates o.Container from src to dst, lazily or streamed
// (o.Mode). Before the destination runs, any failure brings the source
// back (Rollback) and removes the destination's half. After it runs: a
// stream commits at once (every page was there before it started); a
// lazy migration still moves pages, and a broken page stream has
// already killed the destination (the shim's supervisor): Run says so
// and what the source holds. The summary is returned in every case.
func Run(ctx context.Context, src Source, dst Destination, o Options) (*Summary, error) {
	if o.Mode == "" {
		o.Mode = migrate.ModeLazy
	}
	if o.Decision == "" {
		o.Decision = fmt.Sprintf("%s: asked for with --mode %s", o.Mode, o.Mode)
	}
	m := &run{ctx: context.WithoutCancel(ctx), stop: ctx, src: src, dst: dst, o: o, now: o.Now, poll: o.Poll}
	ctx = m.ctx
	if m.now == nil {
		m.now = time.Now
	}
	if m.poll == 0 {
		m.poll = 100 * time.Millisecond
	}
	m.start = m.now()
	m.s = &Summary{Container: o.Container, MigrationID: o.MigrationID, Mode: string(o.Mode),
		Decision: o.Decision, SourceState: "running", DestinationState: "absent"}
	if o.Mode != migrate.ModeLazy && o.Mode != migrate.ModeStream && o.Mode != migrate.ModePrecopy {
		return m.failf("mode %s is not built; lazy, stream and precopy are", o.Mode)
	}

	m.phase(PhasePrepare)
	c, err := src.Inspect(ctx, o.Container)
	if err != nil {
		return m.failf("%w", err)
	}
	m.c, m.s.ID = c, c.ID
	if !c.Running {
		m.s.SourceState = "stopped"
		return m.failf("container %q is not running; %s migration moves a running container", o.Container, o.Mode)
	}
	addrs, err := dst.Addresses(ctx)
	if err != nil {
		return m.failf("%w", err)
	}
	if o.Mode == migrate.ModeStream {
		return m.stream(addrs.Destination)
	}
	if o.Mode == migrate.ModePrecopy {
		return m.precopy(addrs.Destination)
	}
	return m.lazy(addrs.Source)
}

// stream: the destination's page server comes up first; the source's
// dump goes into it; only once it exited 0 (every page arrived) does
// the archive travel and the destination restore. The destination
// running is the commit: the source's frozen tasks are deleted then.
func (m *run) stream(addr string) (*Summary, error) {
	ctx, src, dst, o := m.ctx, m.src, m.dst, m.o
	var err error
	if m.material, err = pki.NewTLSMaterial([]string{addr}, time.Duration(o.Timeouts.Total)+time.Hour, m.now()); err != nil {
		return m.failf("%w", err)
	}
	m.plan = &migrate.Plan{Version: migrate.PlanVersion, Mode: migrate.ModeStream, MigrationID: o.MigrationID,
		PageServer: migrate.PageServer{Address: addr, Port: o.Port}, Timeouts: o.Timeouts, Status: migrate.StatusPlanned}
	port, err := dst.ServePages(ctx, m.c.ID, m.plan, m.material)
	if err != nil {
		return m.failf("%w; the source was not touched", errors.Join(err, dst.Abort(ctx, m.c.ID, o.MigrationID)))
	}
	m.plan.PageServer.Port = port
	if err := src.Prepare(ctx, m.c.ID, m.plan, pki.RoleClient, m.material); err != nil {
		return m.failf("%w; %v", err, m.cleanPlans())
	}
	if err := m.interrupted(); err != nil {
		return m.failf("%w; the source was not touched; %v", err, m.cleanPlans())
	}
	return m.streamDump()
}

// streamDump is a stream from the dump on, into the destination's page
// server already serving: also a pre-copy's final dump.
func (m *run) streamDump() (*Summary, error) {
	ctx, src, dst, o, s := m.ctx, m.src, m.dst, m.o, m.s
	m.phase(PhaseCheckpoint)
	frozen := m.now()
	file, err := m.checkpoint()
	if err != nil {
		return s, err
	}
	s.SourceState = "dumped; its tasks are kept frozen for a rollback"
	// The dump returned: the page server must end, 0, promptly.
	last, lastMoved := m.now(), int64(-1)
	for {
		p, err := dst.Progress(ctx, o.MigrationID)
		if err != nil {
			return m.rollback(fmt.Errorf("cannot tell whether the destination's page server got every page: %w", err))
		}
		if p.Done && p.Code != 0 {
			return m.rollback(fmt.Errorf("the destination's page server exited %d: pages are missing", p.Code))
		}
		if p.Done {
			s.PageBytes = p.PageBytes
			break
		}
		if p.Moved != lastMoved {
			last, lastMoved = m.now(), p.Moved
		} else if m.now().Sub(last) > time.Duration(o.Timeouts.NoProgress) {
			return m.rollback(fmt.Errorf("the destination's page server did not finish: nothing moved for %v", time.Duration(o.Timeouts.NoProgress)))
		}
		if m.now().Sub(m.start) > time.Duration(o.Timeouts.Total) {
			return m.rollback(fmt.Errorf("not done within %v", time.Duration(o.Timeouts.Total)))
		}
		select {
		case <-m.stop.Done():
			return m.rollback(m.interrupted())
		case <-time.After(m.poll):
		}
	}

	if err := m.interrupted(); err != nil {
		return m.rollback(err)
	}
	m.phase(PhaseRestore) // the archive's copy included
	if err := dst.Import(ctx, o.Container, file); err != nil {
		return m.rollback(err)
	}
	s.DowntimeMS = m.now().Sub(frozen).Milliseconds()
	s.DestinationState = "running, every page moved"

	m.phase(PhaseCommit)
	// The source's frozen tasks go now: the destination runs.
	s.SourceState = "stopped"
	cerr := src.Abort(ctx, m.c.ID, o.MigrationID)
	if cerr != nil {
		s.SourceState = "stopped; deleting its frozen tasks failed (they stay frozen, never resumed): " + cerr.Error()
	}
	return m.committed(cerr)
}

// committed finishes a migration whose destination runs with every page:
// --rm, and the destination's files.
func (m *run) committed(cerr error) (*Summary, error) {
	if m.o.RemoveSource {
		if err := m.src.Remove(m.ctx, m.o.Container); err != nil {
			cerr = errors.Join(cerr, err)
		} else {
			m.s.SourceState = "removed"
		}
	}
	cerr = errors.Join(cerr, m.dst.Cleanup(m.ctx, m.c.ID, m.o.MigrationID))
	m.phase(PhaseDone)
	m.s.TotalMS = m.now().Sub(m.start).Milliseconds()
	if cerr != nil {
		// Committed: the migration stands; only tidying failed.
		m.s.Error = "after commit: " + cerr.Error()
	}
	return m.s, nil
}

// lazy: the source's lazy page server comes up at its checkpoint; the
// destination runs at once and faults every page in.
func (m *run) lazy(addr string) (*Summary, error) {
	ctx, src, dst, o, s, c := m.ctx, m.src, m.dst, m.o, m.s, m.c
	now := m.now
	var err error
	if m.material, err = pki.NewTLSMaterial([]string{addr}, time.Duration(o.Timeouts.Total)+time.Hour, now()); err != nil {
		return m.failf("%w", err)
	}
	m.plan = &migrate.Plan{Version: migrate.PlanVersion, Mode: migrate.ModeLazy, MigrationID: o.MigrationID,
		PageServer: migrate.PageServer{Address: addr, Port: o.Port}, Timeouts: o.Timeouts, Status: migrate.StatusPlanned}
	if err := src.Prepare(ctx, c.ID, m.plan, pki.RoleServer, m.material); err != nil {
		return m.failf("%w; %v", err, m.cleanPlans())
	}
	if err := dst.Prepare(ctx, c.ID, m.plan, pki.RoleClient, m.material); err != nil {
		return m.failf("%w; %v", errors.Join(err, m.cleanPlans()), "the source was not touched")
	}
	if err := m.interrupted(); err != nil {
		return m.failf("%w; the source was not touched; %v", err, m.cleanPlans())
	}

	m.phase(PhaseCheckpoint)
	frozen := now()
	file, err := m.checkpoint()
	if err != nil {
		return s, err
	}
	s.SourceState = "dumped; its page server holds the memory"

	m.phase(PhaseTransfer)
	if p, err := src.Progress(ctx, o.MigrationID); err != nil {
		return m.rollback(fmt.Errorf("cannot tell whether the source's page server serves: %w", err))
	} else if p.Done {
		return m.rollback(fmt.Errorf("the source's page server is gone before the destination ran (exit %d)", p.Code))
	}
	if err := m.interrupted(); err != nil {
		return m.rollback(err)
	}

	m.phase(PhaseRestore) // the archive's copy included
	if err := dst.Import(ctx, o.Container, file); err != nil {
		return m.rollback(err)
	}
	s.DowntimeMS = now().Sub(frozen).Milliseconds()
	s.DestinationState = "running, faulting pages in"

	// After this point the destination has run: no rollback. A broken
	// stream kills it (the shim's supervisor); we wait and report.
	m.phase(PhasePages)
	last, lastMoved := now(), int64(-1)
	for {
		sp, serr := src.Progress(ctx, o.MigrationID)
		dp, derr := dst.Progress(ctx, o.MigrationID)
		switch {
		case derr != nil:
			// The control channel broke; the destination's supervisor still
			// guards its pages. Say what is known.
			s.DestinationState = "unknown (control channel: " + derr.Error() + ")"
			return m.failf("cannot watch the destination: %w", derr)
		case dp.Done && dp.Code != 0:
			// The daemon's supervisor killed the container the moment the
			// daemon died; kill it again in case the supervisor died too.
			s.DestinationState = "killed: its lazy-pages daemon failed, no page was zero-filled"
			if err := dst.KillID(ctx, c.ID); err != nil {
				s.DestinationState = "lazy-pages daemon failed; KILLING IT FAILED: " + err.Error()
			}
			s.SourceState = sourceAfter(sp, serr)
			_ = src.Abort(ctx, c.ID, o.MigrationID)
			_ = dst.Abort(ctx, c.ID, o.MigrationID)
			return m.failf("the page stream broke (lazy-pages daemon exit %d)", dp.Code)
		case serr == nil && sp.Done && sp.Code != 0:
			// The daemon sees the broken stream and fails; its supervisor
			// kills the destination. Wait for that rather than report early.
		case dp.Done && serr == nil && sp.Done:
			m.phase(PhaseCommit)
			s.DestinationState = "running, every page moved"
			s.SourceState = "stopped"
			return m.committed(src.Cleanup(ctx, c.ID, o.MigrationID))
		}
		if moved := sp.Moved + dp.Moved; moved != lastMoved {
			last, lastMoved = now(), moved
			if o.OnPages != nil {
				o.OnPages(moved)
			}
		} else if now().Sub(last) > time.Duration(o.Timeouts.NoProgress) {
			_ = dst.Abort(ctx, c.ID, o.MigrationID)
			_ = dst.RemoveID(ctx, c.ID)
			_ = src.Abort(ctx, c.ID, o.MigrationID)
			s.DestinationState = "killed: no progress"
			s.SourceState = "stopped; its page server was stopped"
			return m.failf("no page moved for %v", time.Duration(o.Timeouts.NoProgress))
		}
		if now().Sub(m.start) > time.Duration(o.Timeouts.Total) {
			_ = dst.Abort(ctx, c.ID, o.MigrationID)
			_ = dst.RemoveID(ctx, c.ID)
			_ = src.Abort(ctx, c.ID, o.MigrationID)
			s.DestinationState = "killed: total timeout"
			s.SourceState = "stopped; its page server was stopped"
			return m.failf("not done within %v", time.Duration(o.Timeouts.Total))
		}
		// An interrupt no longer stops anything: the destination runs and
		// is the container; the timeouts above still bound the wait.
		<-time.After(m.poll)
	}
}

func sourceAfter(p Progress, err error) string {
	switch {
	case err != nil:
		return "unknown: " + err.Error()
	case p.Done && p.Code == 0:
		return "stopped (its page server finished)"
	case p.Done:
		return fmt.Sprintf("stopped; its page server exited %d, the pages it still held are lost", p.Code)
	}
	return "stopped; its page server was stopped"
}
