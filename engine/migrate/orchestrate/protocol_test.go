package orchestrate

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/crhook/crhook/engine/migrate"
	"github.com/crhook/crhook/engine/migrate/pki"
)

// fake is both ends: it records calls and fails where told.
type fake struct {
	calls    *[]string
	role     string
	failAt   string     // method name that fails
	progress []Progress // returned in turn, the last repeated
	// stopsAtCheckpoint: Inspect says stopped once Checkpoint ran (a
	// failure after the dump).
	stopsAtCheckpoint bool
	checkpointed      bool
	// interruptAt: the caller's context is cancelled (SIGINT) while this
	// method runs.
	interruptAt string
	interrupt   context.CancelFunc
}

func (f *fake) rec(m string) error {
	*f.calls = append(*f.calls, f.role+"."+m)
	if f.interruptAt == m {
		f.interrupt()
	}
	if f.failAt == m {
		return errors.New(f.role + " " + m + " broke")
	}
	return nil
}

func (f *fake) Prepare(_ context.Context, _ string, p *migrate.Plan, _ pki.Role, _ *pki.TLSMaterial) error {
	// Each host puts its own TLS paths into its copy of the plan.
	q := *p
	q.TLS = migrate.TLSPaths{CACert: "/t/ca.pem", Cert: "/t/c.pem", Key: "/t/k.pem"}
	if err := q.Validate(); err != nil {
		return err
	}
	return f.rec("Prepare")
}

func (f *fake) Progress(context.Context, string) (Progress, error) {
	err := f.rec("Progress")
	p := f.progress[0]
	if len(f.progress) > 1 {
		f.progress = f.progress[1:]
	}
	return p, err
}
func (f *fake) Abort(context.Context, string, string) error   { return f.rec("Abort") }
func (f *fake) Cleanup(context.Context, string, string) error { return f.rec("Cleanup") }
func (f *fake) Inspect(context.Context, string) (Container, error) {
	return Container{ID: "abc", Name: "ctr", Running: !(f.stopsAtCheckpoint && f.checkpointed)}, f.rec("Inspect")
}
func (f *fake) Checkpoint(ctx context.Context, _ string) (string, int64, error) {
	f.checkpointed = true
	err := f.rec("Checkpoint")
	return "/tmp/x.tar", 1000, errors.Join(err, ctx.Err())
}
func (f *fake) Rollback(ctx context.Context, _ Container, _ *migrate.Plan, _ *pki.TLSMaterial) error {
	return errors.Join(f.rec("Rollback"), ctx.Err())
}
func (f *fake) Remove(context.Context, string) error         { return f.rec("Remove") }
func (f *fake) RemoveID(context.Context, string) error       { return f.rec("Remove") }
func (f *fake) KillID(context.Context, string) error         { return f.rec("Kill") }
func (f *fake) Send(context.Context, string) (string, error) { return "/r/x.tar", f.rec("Send") }
func (f *fake) Restore(ctx context.Context, _, _ string) error {
	return errors.Join(f.rec("Restore"), ctx.Err())
}

// Import is the copy and the restore in one remote command: each can
// fail, the restore never runs after a failed copy.
func (f *fake) Import(ctx context.Context, name, file string) error {
	if _, err := f.Send(ctx, file); err != nil {
		return err
	}
	return f.Restore(ctx, name, file)
}
func (f *fake) Addresses(context.Context) (Addresses, error) {
	return Addresses{Source: "10.0.0.2", Destination: "10.0.0.1"}, f.rec("Addresses")
}

func (f *fake) ServePages(_ context.Context, _ string, p *migrate.Plan, _ *pki.TLSMaterial) (int, error) {
	if p.Mode != migrate.ModeStream || p.PageServer.Address != "10.0.0.1" {
		return 0, errors.New("page server for the wrong mode or address")
	}
	return 4322, f.rec("ServePages")
}

var received = Progress{Done: true, Moved: 2, PageBytes: 1 << 20}

// TestRunStream walks a streamed migration through each failure point.
// The promise: until the destination runs, every failure leaves the
// source running (resumed by crhook-runtime when nothing was dumped,
// rolled back from its frozen tasks when it was) and the destination's
// half removed by ID with its page server; the destination runs only
// once its page server got every page; then the source's frozen tasks
// are deleted: one copy.
func TestRunStream(t *testing.T) {
	for _, tc := range []struct {
		name             string
		srcFail, dstFail string
		dstProg          []Progress
		stops, rm        bool
		wantErr          string
		want, never      []string
		srcState         string
		dstState         string
	}{
		{name: "success", dstProg: []Progress{serving, received},
			want:     []string{"dst.Addresses", "dst.ServePages", "src.Prepare", "src.Checkpoint", "dst.Progress", "dst.Send", "dst.Restore", "src.Abort", "dst.Cleanup"},
			never:    []string{"src.Rollback", "dst.Remove", "src.Remove", "src.Progress", "dst.Prepare", "dst.Abort"},
			srcState: "stopped", dstState: "running, every page moved"},
		{name: "success --rm", rm: true, dstProg: []Progress{received},
			want: []string{"dst.Restore", "src.Abort", "src.Remove"}, never: []string{"src.Rollback"}, srcState: "removed"},
		{name: "page server does not start", dstFail: "ServePages", wantErr: "dst ServePages broke",
			want: []string{"dst.Abort"}, never: []string{"src.Prepare", "src.Checkpoint"}, srcState: "running"},
		{name: "source prepare fails", srcFail: "Prepare", wantErr: "src Prepare broke",
			want: []string{"dst.ServePages", "src.Abort", "dst.Abort"}, never: []string{"src.Checkpoint"}, srcState: "running"},
		{name: "dump fails, container resumed", srcFail: "Checkpoint", wantErr: "src Checkpoint broke",
			want: []string{"src.Abort", "dst.Abort"}, never: []string{"dst.Send", "src.Rollback"}, srcState: "running"},
		{name: "podman fails after the dump", srcFail: "Checkpoint", stops: true, wantErr: "src Checkpoint broke",
			want: []string{"dst.Remove", "dst.Abort", "src.Rollback", "src.Cleanup"}, never: []string{"dst.Send", "src.Abort"},
			srcState: "running (rolled back)", dstState: "removed"},
		{name: "page server killed mid-dump", dstProg: []Progress{broken}, wantErr: "page server exited 1",
			want: []string{"dst.Progress", "dst.Remove", "dst.Abort", "src.Rollback", "src.Cleanup"}, never: []string{"dst.Send", "dst.Restore", "src.Abort"},
			srcState: "running (rolled back)", dstState: "removed"},
		{name: "page server never finishes", dstProg: []Progress{serving}, wantErr: "did not finish",
			want: []string{"dst.Remove", "src.Rollback"}, never: []string{"dst.Send"}, srcState: "running (rolled back)"},
		{name: "ssh drops after the dump", dstFail: "Progress", dstProg: []Progress{received}, wantErr: "dst Progress broke",
			want: []string{"dst.Remove", "src.Rollback"}, never: []string{"dst.Send", "src.Abort"}, srcState: "running (rolled back)"},
		{name: "copy fails", dstFail: "Send", dstProg: []Progress{received}, wantErr: "dst Send broke",
			want: []string{"dst.Remove", "dst.Abort", "src.Rollback"}, never: []string{"dst.Restore"}, srcState: "running (rolled back)"},
		{name: "destination restore fails", dstFail: "Restore", dstProg: []Progress{received}, wantErr: "dst Restore broke",
			want: []string{"dst.Restore", "dst.Remove", "dst.Abort", "src.Rollback", "src.Cleanup"}, never: []string{"dst.Cleanup", "src.Abort"},
			srcState: "running (rolled back)", dstState: "removed"},
		{name: "rollback fails", dstFail: "Restore", srcFail: "Rollback", dstProg: []Progress{received}, wantErr: "src Rollback broke",
			want: []string{"src.Rollback"}, never: []string{"src.Abort"}, srcState: "LOST: rollback failed: src Rollback broke"},
		{name: "deleting the frozen tasks fails after commit", srcFail: "Abort", dstProg: []Progress{received},
			want: []string{"dst.Restore", "src.Abort", "dst.Cleanup"}, never: []string{"src.Rollback", "dst.Remove"},
			srcState: "stopped; deleting its frozen tasks failed (they stay frozen, never resumed): src Abort broke", dstState: "running, every page moved"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var calls []string
			if tc.dstProg == nil {
				tc.dstProg = []Progress{serving}
			}
			src := &fake{calls: &calls, role: "src", failAt: tc.srcFail, progress: []Progress{serving}, stopsAtCheckpoint: tc.stops}
			dst := &fake{calls: &calls, role: "dst", failAt: tc.dstFail, progress: tc.dstProg}
			clock := time.Unix(0, 0)
			o := Options{Container: "ctr", Mode: migrate.ModeStream, MigrationID: "m1", RemoveSource: tc.rm, Poll: time.Nanosecond,
				Timeouts: migrate.Timeouts{Connect: migrate.Duration(time.Second), NoProgress: migrate.Duration(5 * time.Second), Total: migrate.Duration(time.Hour)},
				Now:      func() time.Time { clock = clock.Add(time.Second); return clock }}
			s, err := Run(context.Background(), src, dst, o)
			checkRun(t, s, err, calls, tc.wantErr, tc.want, tc.never, tc.srcState, tc.dstState)
			if s.Mode != "stream" {
				t.Errorf("summary mode %q", s.Mode)
			}
		})
	}
}

var (
	serving  = Progress{Moved: 1}
	finished = Progress{Done: true, Moved: 2}
	broken   = Progress{Done: true, Code: 1, Moved: 2}
)

// TestRun walks the protocol through each failure point and checks the
// promise: before the destination ran, the source is rolled back and the
// destination removed; after, a broken stream leaves the destination
// killed and the source reported; only a full transfer commits.
func TestRun(t *testing.T) {
	for _, tc := range []struct {
		name             string
		srcFail, dstFail string
		srcProg, dstProg []Progress
		rm               bool
		wantErr          string
		want             []string // calls that must happen, in this order
		never            []string // calls that must not happen
		srcState         string
		dstState         string
	}{
		{name: "success", srcProg: []Progress{serving, serving, finished}, dstProg: []Progress{serving, finished},
			want:  []string{"src.Prepare", "dst.Prepare", "src.Checkpoint", "dst.Send", "dst.Restore", "src.Cleanup", "dst.Cleanup"},
			never: []string{"src.Rollback", "dst.Remove", "src.Remove"}, srcState: "stopped", dstState: "running, every page moved"},
		{name: "success --rm", rm: true, srcProg: []Progress{serving, finished}, dstProg: []Progress{finished},
			want: []string{"dst.Restore", "src.Remove"}, never: []string{"src.Rollback"}, srcState: "removed"},
		{name: "destination prepare fails", dstFail: "Prepare", wantErr: "dst Prepare broke",
			want: []string{"src.Abort", "dst.Abort"}, never: []string{"src.Checkpoint"}, srcState: "running"},
		{name: "checkpoint fails", srcFail: "Checkpoint", wantErr: "src Checkpoint broke",
			want: []string{"src.Abort", "dst.Abort"}, never: []string{"dst.Send", "src.Rollback"}},
		{name: "ssh drops during transfer", dstFail: "Send", srcProg: []Progress{serving}, wantErr: "dst Send broke",
			want: []string{"dst.Remove", "dst.Abort", "src.Rollback"}, never: []string{"dst.Restore"},
			srcState: "running (rolled back)", dstState: "removed"},
		{name: "page server died before restore", srcProg: []Progress{broken}, wantErr: "page server is gone",
			want: []string{"dst.Remove", "src.Rollback"}, never: []string{"dst.Restore"}, dstState: "removed"},
		{name: "destination restore fails", dstFail: "Restore", srcProg: []Progress{serving}, wantErr: "dst Restore broke",
			want: []string{"dst.Restore", "dst.Remove", "dst.Abort", "src.Rollback", "src.Cleanup"}, never: []string{"dst.Cleanup"},
			srcState: "running (rolled back)", dstState: "removed"},
		{name: "rollback fails", dstFail: "Restore", srcFail: "Rollback", srcProg: []Progress{serving}, wantErr: "src Rollback broke",
			want: []string{"src.Rollback"}, srcState: "LOST: rollback failed: src Rollback broke"},
		{name: "lazy-pages daemon dies after restore", srcProg: []Progress{serving}, dstProg: []Progress{serving, broken},
			wantErr: "page stream broke", want: []string{"dst.Restore", "dst.Kill", "src.Abort", "dst.Abort"}, never: []string{"src.Rollback", "src.Cleanup"},
			dstState: "killed: its lazy-pages daemon failed, no page was zero-filled"},
		{name: "page server dies after restore", srcProg: []Progress{serving, broken}, dstProg: []Progress{serving, serving, broken},
			wantErr: "page stream broke", never: []string{"src.Rollback"},
			srcState: "stopped; its page server exited 1, the pages it still held are lost"},
		{name: "no progress", srcProg: []Progress{serving}, dstProg: []Progress{serving},
			wantErr: "no page moved", want: []string{"dst.Abort", "dst.Remove", "src.Abort"}, never: []string{"src.Rollback"},
			dstState: "killed: no progress"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var calls []string
			if tc.srcProg == nil {
				tc.srcProg = []Progress{serving}
			}
			if tc.dstProg == nil {
				tc.dstProg = []Progress{serving}
			}
			src := &fake{calls: &calls, role: "src", failAt: tc.srcFail, progress: tc.srcProg}
			dst := &fake{calls: &calls, role: "dst", failAt: tc.dstFail, progress: tc.dstProg}
			clock := time.Unix(0, 0)
			o := Options{Container: "ctr", Port: 4321, MigrationID: "m1", RemoveSource: tc.rm, Poll: time.Nanosecond,
				Timeouts: migrate.Timeouts{Connect: migrate.Duration(time.Second), NoProgress: migrate.Duration(5 * time.Second), Total: migrate.Duration(time.Hour)},
				Now:      func() time.Time { clock = clock.Add(time.Second); return clock }}
			s, err := Run(context.Background(), src, dst, o)
			checkRun(t, s, err, calls, tc.wantErr, tc.want, tc.never, tc.srcState, tc.dstState)
		})
	}
}

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

// TestSummaryGolden pins `crhook migrate --format json`'s document: a
// committed migration and one rolled back, with a fixed clock.
func TestSummaryGolden(t *testing.T) {
	for _, tc := range []struct {
		name    string
		mode    migrate.Mode
		dstFail string
	}{
		{"summary-committed.json", "", ""}, {"summary-rolled-back.json", "", "Restore"},
		{"summary-stream-committed.json", migrate.ModeStream, ""}, {"summary-stream-rolled-back.json", migrate.ModeStream, "Restore"},
	} {
		var calls []string
		src := &fake{calls: &calls, role: "src", progress: []Progress{serving, finished}}
		dst := &fake{calls: &calls, role: "dst", failAt: tc.dstFail, progress: []Progress{finished}}
		if tc.mode == migrate.ModeStream {
			dst.progress = []Progress{received}
		}
		clock := time.Unix(0, 0)
		s, _ := Run(context.Background(), src, dst, Options{Container: "ctr", Mode: tc.mode, Port: 4321, MigrationID: "m1", Poll: time.Nanosecond,
			Timeouts: migrate.Timeouts{Connect: migrate.Duration(time.Second), NoProgress: migrate.Duration(time.Minute), Total: migrate.Duration(time.Hour)},
			Now:      func() time.Time { clock = clock.Add(250 * time.Millisecond); return clock }})
		got, err := json.MarshalIndent(s, "", "  ")
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, '\n')
		path := filepath.Join("testdata", tc.name)
		if *update {
			if err := os.WriteFile(path, got, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		want, err := os.ReadFile(path)
		if err != nil {
			t.Fatalf("%v (go test -update writes it)", err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s differs (go test -update rewrites it):\n%s", path, got)
		}
	}
}

// TestRunInterrupted: SIGINT or SIGTERM (the caller's context cancelled)
// never cuts a step in half: the step under way ends (its context is not
// the caller's), then, before the destination ran, Run rolls back or
// leaves the source untouched; after it ran, the migration finishes, as
// the destination is the container by then.
func TestRunInterrupted(t *testing.T) {
	for _, tc := range []struct {
		mode      migrate.Mode
		at        string // "src.M" or "dst.M"
		wantErr   string
		want      []string
		never     []string
		srcState  string
		committed bool
	}{
		{mode: migrate.ModeLazy, at: "dst.Prepare", wantErr: "interrupted", want: []string{"src.Abort", "dst.Abort"},
			never: []string{"src.Checkpoint"}, srcState: "running"},
		{mode: migrate.ModeLazy, at: "src.Checkpoint", wantErr: "interrupted", want: []string{"src.Checkpoint", "dst.Remove", "src.Rollback", "src.Cleanup"},
			never: []string{"dst.Restore"}, srcState: "running (rolled back)"},
		{mode: migrate.ModeLazy, at: "src.Progress", wantErr: "interrupted", want: []string{"src.Progress", "src.Rollback"},
			never: []string{"dst.Send", "dst.Restore"}, srcState: "running (rolled back)"},
		// The archive's copy and its restore are one step (Import): an
		// interrupt during the copy lets the restore run, and then the
		// destination is the container.
		{mode: migrate.ModeLazy, at: "dst.Send", want: []string{"dst.Send", "dst.Restore", "src.Cleanup"},
			never: []string{"src.Rollback"}, srcState: "stopped", committed: true},
		{mode: migrate.ModeLazy, at: "dst.Restore", want: []string{"dst.Restore", "src.Cleanup", "dst.Cleanup"},
			never: []string{"src.Rollback", "dst.Remove"}, srcState: "stopped", committed: true},
		{mode: migrate.ModeStream, at: "src.Prepare", wantErr: "interrupted", want: []string{"src.Abort", "dst.Abort"},
			never: []string{"src.Checkpoint"}, srcState: "running"},
		{mode: migrate.ModeStream, at: "src.Checkpoint", wantErr: "interrupted", want: []string{"src.Checkpoint", "src.Rollback"},
			never: []string{"dst.Restore"}, srcState: "running (rolled back)"},
		{mode: migrate.ModeStream, at: "dst.Restore", want: []string{"dst.Restore", "src.Abort"},
			never: []string{"src.Rollback", "dst.Remove"}, srcState: "stopped", committed: true},
	} {
		t.Run(string(tc.mode)+" at "+tc.at, func(t *testing.T) {
			var calls []string
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			role, method, _ := strings.Cut(tc.at, ".")
			src := &fake{calls: &calls, role: "src", progress: []Progress{serving, finished}}
			dst := &fake{calls: &calls, role: "dst", progress: []Progress{finished}}
			if tc.mode == migrate.ModeStream {
				src.progress, dst.progress = []Progress{serving}, []Progress{received}
			}
			map[string]*fake{"src": src, "dst": dst}[role].interruptAt = method
			src.interrupt, dst.interrupt = cancel, cancel
			s, err := Run(ctx, src, dst, Options{Container: "ctr", Mode: tc.mode, Port: 4321, MigrationID: "m1", Poll: time.Nanosecond,
				Timeouts: migrate.Timeouts{Connect: migrate.Duration(time.Second), NoProgress: migrate.Duration(time.Hour), Total: migrate.Duration(time.Hour)}})
			checkRun(t, s, err, calls, tc.wantErr, tc.want, tc.never, "", "")
			if s.SourceState != tc.srcState {
				t.Errorf("source state %q, want %q", s.SourceState, tc.srcState)
			}
			if tc.committed != (s.Phase == PhaseDone) {
				t.Errorf("phase %s, committed want %v", s.Phase, tc.committed)
			}
		})
	}
}

// checkRun checks what every table case of Run expects: no error when
// wantErr is "", else one that says wantErr and wraps ErrMigration; the
// calls of want in that order and none of never; the hosts' states where
// given.
func checkRun(t *testing.T, s *Summary, err error, calls []string, wantErr string, want, never []string, srcState, dstState string) {
	t.Helper()
	if wantErr == "" && err != nil || wantErr != "" && (err == nil || !strings.Contains(err.Error(), wantErr)) {
		t.Fatalf("Run error = %v, want %q\ncalls: %v", err, wantErr, calls)
	}
	if err != nil && !errors.Is(err, ErrMigration) {
		t.Errorf("error %v does not wrap ErrMigration", err)
	}
	at := 0
	for _, w := range want {
		i := slices.Index(calls[at:], w)
		if i < 0 {
			t.Fatalf("call %s missing or out of order in %v", w, calls)
		}
		at += i + 1
	}
	for _, n := range never {
		if slices.Contains(calls, n) {
			t.Errorf("call %s must not happen: %v", n, calls)
		}
	}
	if srcState != "" && s.SourceState != srcState {
		t.Errorf("source state %q, want %q", s.SourceState, srcState)
	}
	if dstState != "" && s.DestinationState != dstState {
		t.Errorf("destination state %q, want %q", s.DestinationState, dstState)
	}
}
