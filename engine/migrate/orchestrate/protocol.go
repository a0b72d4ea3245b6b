// Package orchestrate drives `crhook migrate`: the phases of a lazy
// (post-copy) migration through podman on two hosts, and the commit
// protocol that keeps exactly one copy of the container. The hosts are
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
	PhaseCheckpoint Phase = "checkpoint" // podman checkpoint --export; the page server comes up
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

// Destination is the host the container goes to.
type Destination interface {
	Host
	// Send copies the checkpoint file over and returns its path there.
	Send(ctx context.Context, file string) (string, error)
	Restore(ctx context.Context, name, file string) error
	// RemoveID deletes the migration's container there by its ID (podman
	// rm -f): never another container that happens to have its name.
	RemoveID(ctx context.Context, id string) error
	// KillID kills the migration's container there, keeping it for
	// inspection; not running is fine.
	KillID(ctx context.Context, id string) error
	// PageServerAddress is the source's address as the destination sees
	// it: where the lazy-pages daemon connects.
	PageServerAddress(ctx context.Context) (string, error)
}

// Options are the choices of one migration.
type Options struct {
	Container string
	// Port is the page server's port on the source (ephemeral, chosen by
	// the caller); MigrationID names the migration.
	Port        int
	MigrationID string
	Timeouts    migrate.Timeouts
	// RemoveSource: --rm.
	RemoveSource bool
	// OnPhase, if set, is told each phase as it starts.
	OnPhase func(Phase)
	// OnPages, if set, is told while pages move: bytes read and written by
	// the CRIU processes of both ends so far (about twice the pages).
	OnPages func(moved int64)
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
	// SourceState and DestinationState say where the container is.
	SourceState      string `json:"source_state"`
	DestinationState string `json:"destination_state"`
	Error            string `json:"error,omitempty"`
	// PhasesMS is how long each phase took, by the wall clock: the
	// caller times them through OnPhase (crhook migrate does).
	PhasesMS map[Phase]int64 `json:"phases_ms,omitempty"`
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

// Run migrates o.Container from src to dst lazily. Before the destination
// runs, any failure brings the source back (Rollback) and removes the
// destination's half; after, a broken page stream has already killed the
// destination (the shim's supervisor), and Run says so and what the
// source holds. The summary is returned in every case.
func Run(ctx context.Context, src Source, dst Destination, o Options) (*Summary, error) {
	now := o.Now
	if now == nil {
		now = time.Now
	}
	poll := o.Poll
	if poll == 0 {
		poll = 100 * time.Millisecond
	}
	start := now()
	s := &Summary{Container: o.Container, MigrationID: o.MigrationID, Mode: string(migrate.ModeLazy),
		Decision: "lazy: asked for with --mode lazy", SourceState: "running", DestinationState: "absent"}
	phase := func(p Phase) {
		s.Phase = p
		if o.OnPhase != nil {
			o.OnPhase(p)
		}
	}
	failf := func(format string, a ...any) (*Summary, error) {
		err := fmt.Errorf("%w in phase %s: "+format, append([]any{ErrMigration, s.Phase}, a...)...)
		s.Error = err.Error()
		s.TotalMS = now().Sub(start).Milliseconds()
		return s, err
	}

	phase(PhasePrepare)
	c, err := src.Inspect(ctx, o.Container)
	if err != nil {
		return failf("%w", err)
	}
	s.ID = c.ID
	if !c.Running {
		s.SourceState = "stopped"
		return failf("container %q is not running; lazy migration moves a running container", o.Container)
	}
	addr, err := dst.PageServerAddress(ctx)
	if err != nil {
		return failf("%w", err)
	}
	material, err := pki.NewTLSMaterial([]string{addr}, time.Duration(o.Timeouts.Total)+time.Hour, now())
	if err != nil {
		return failf("%w", err)
	}
	plan := &migrate.Plan{Version: migrate.PlanVersion, Mode: migrate.ModeLazy, MigrationID: o.MigrationID,
		PageServer: migrate.PageServer{Address: addr, Port: o.Port}, Timeouts: o.Timeouts, Status: migrate.StatusPlanned}
	cleanPlans := func() error {
		return errors.Join(src.Abort(ctx, c.ID, o.MigrationID), dst.Abort(ctx, c.ID, o.MigrationID))
	}
	if err := src.Prepare(ctx, c.ID, plan, pki.RoleServer, material); err != nil {
		return failf("%w; %v", err, cleanPlans())
	}
	if err := dst.Prepare(ctx, c.ID, plan, pki.RoleClient, material); err != nil {
		return failf("%w; %v", errors.Join(err, cleanPlans()), "the source was not touched")
	}

	phase(PhaseCheckpoint)
	frozen := now()
	file, size, err := src.Checkpoint(ctx, o.Container)
	s.ImageBytes = size
	if err != nil {
		// crhook-runtime resumes a container its failed checkpoint froze.
		cerr := cleanPlans()
		if c2, ierr := src.Inspect(ctx, o.Container); ierr == nil && !c2.Running {
			s.SourceState = "stopped"
		}
		return failf("%w (cleanup: %v)", err, cerr)
	}
	s.SourceState = "dumped; its page server holds the memory"

	// From here until the destination runs, a failure rolls back.
	rollback := func(cause error) (*Summary, error) {
		rerr := dst.RemoveID(ctx, c.ID)
		s.DestinationState = "removed"
		if rerr != nil {
			s.DestinationState = "unknown: " + rerr.Error()
		}
		if err := dst.Abort(ctx, c.ID, o.MigrationID); err != nil {
			rerr = errors.Join(rerr, err)
		}
		if err := src.Rollback(ctx, c, plan, material); err != nil {
			s.SourceState = "LOST: rollback failed: " + err.Error()
			return failf("%w; rolling back: %w", cause, errors.Join(rerr, err))
		}
		s.SourceState = "running (rolled back)"
		// The plan must not outlive the migration: a later checkpoint
		// would act on it.
		rerr = errors.Join(rerr, src.Cleanup(ctx, c.ID, o.MigrationID))
		if rerr != nil {
			return failf("%w; the source runs again; tidying the destination failed: %w", cause, rerr)
		}
		return failf("%w; the source runs again, the destination has nothing", cause)
	}

	phase(PhaseTransfer)
	remote, err := dst.Send(ctx, file)
	if err != nil {
		return rollback(err)
	}
	if p, err := src.Progress(ctx, o.MigrationID); err != nil {
		return rollback(fmt.Errorf("cannot tell whether the source's page server serves: %w", err))
	} else if p.Done {
		return rollback(fmt.Errorf("the source's page server is gone before the destination ran (exit %d)", p.Code))
	}

	phase(PhaseRestore)
	if err := dst.Restore(ctx, o.Container, remote); err != nil {
		return rollback(err)
	}
	s.DowntimeMS = now().Sub(frozen).Milliseconds()
	s.DestinationState = "running, faulting pages in"

	// After this point the destination has run: no rollback. A broken
	// stream kills it (the shim's supervisor); we wait and report.
	phase(PhasePages)
	last, lastMoved := now(), int64(-1)
	for {
		sp, serr := src.Progress(ctx, o.MigrationID)
		dp, derr := dst.Progress(ctx, o.MigrationID)
		switch {
		case derr != nil:
			// The control channel broke; the destination's supervisor still
			// guards its pages. Say what is known.
			s.DestinationState = "unknown (control channel: " + derr.Error() + ")"
			return failf("cannot watch the destination: %w", derr)
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
			return failf("the page stream broke (lazy-pages daemon exit %d)", dp.Code)
		case serr == nil && sp.Done && sp.Code != 0:
			// The daemon sees the broken stream and fails; its supervisor
			// kills the destination. Wait for that rather than report early.
		case dp.Done && serr == nil && sp.Done:
			goto committed
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
			return failf("no page moved for %v", time.Duration(o.Timeouts.NoProgress))
		}
		if now().Sub(start) > time.Duration(o.Timeouts.Total) {
			_ = dst.Abort(ctx, c.ID, o.MigrationID)
			_ = dst.RemoveID(ctx, c.ID)
			_ = src.Abort(ctx, c.ID, o.MigrationID)
			s.DestinationState = "killed: total timeout"
			s.SourceState = "stopped; its page server was stopped"
			return failf("not done within %v", time.Duration(o.Timeouts.Total))
		}
		select {
		case <-ctx.Done():
			return failf("%w", ctx.Err())
		case <-time.After(poll):
		}
	}
committed:
	phase(PhaseCommit)
	s.DestinationState = "running, every page moved"
	s.SourceState = "stopped"
	var cerr error
	if o.RemoveSource {
		if err := src.Remove(ctx, o.Container); err != nil {
			cerr = err
		} else {
			s.SourceState = "removed"
		}
	}
	cerr = errors.Join(cerr, src.Cleanup(ctx, c.ID, o.MigrationID), dst.Cleanup(ctx, c.ID, o.MigrationID))
	phase(PhaseDone)
	s.TotalMS = now().Sub(start).Milliseconds()
	if cerr != nil {
		// Committed: the migration stands; only tidying failed.
		s.Error = "after commit: " + cerr.Error()
	}
	return s, nil
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
