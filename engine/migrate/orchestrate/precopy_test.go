package orchestrate

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/crhook/crhook/engine"
	"github.com/crhook/crhook/engine/migrate"
	"github.com/crhook/crhook/engine/migrate/pki"
)

const mib = 1 << 20

// precopyFake adds pre-copy rounds to fake: each pre-dump takes and
// sends what the recorded round table says, on a clock only it moves.
type precopyFake struct {
	*fake
	clock     *time.Time
	table     []migrate.Round
	round     int
	failRound int      // PreDump fails in this round
	brokenAt  int      // round n's page server exits 1
	served    []string // "n last parent" of each ServeRound
	ports     []int    // the port each ServeRound was asked for
	plans     []migrate.Plan
}

// Prepare records the plan each Prepare installs.
func (f *precopyFake) Prepare(ctx context.Context, id string, p *migrate.Plan, r pki.Role, m *pki.TLSMaterial) error {
	f.plans = append(f.plans, *p)
	return f.fake.Prepare(ctx, id, p, r, m)
}

func (f *precopyFake) PreDump(context.Context, string) error {
	f.round++
	if f.round > len(f.table) {
		return fmt.Errorf("round %d: the table has %d", f.round, len(f.table))
	}
	*f.clock = f.clock.Add(f.table[f.round-1].Duration)
	if f.failRound == f.round {
		*f.calls = append(*f.calls, "src.PreDump")
		return errors.New("src PreDump broke")
	}
	return f.rec("PreDump")
}

func (f *precopyFake) Replan(_ context.Context, _ string, p *migrate.Plan) error {
	if p.Mode != migrate.ModePrecopy {
		return errors.New("replan for the wrong mode")
	}
	return f.rec("Replan")
}

func (f *precopyFake) ServeRound(_ context.Context, _ string, p *migrate.Plan, _ *pki.TLSMaterial, n, last int) (int, error) {
	if p.Mode != migrate.ModePrecopy || p.PageServer.Address != "10.0.0.1" {
		return 0, errors.New("round page server for the wrong mode or address")
	}
	f.served = append(f.served, fmt.Sprintf("%d %d %s", n, last, p.ParentPath))
	f.ports = append(f.ports, p.PageServer.Port)
	return 5000 + n, f.rec(fmt.Sprintf("ServeRound %d", n))
}

func (f *precopyFake) RoundProgress(_ context.Context, _ string, n int) (Progress, error) {
	err := f.rec(fmt.Sprintf("RoundProgress %d", n))
	if n == f.brokenAt {
		return broken, err
	}
	return Progress{Done: true, Moved: 1, PageBytes: f.table[n-1].Bytes}, err
}

// Rounds recorded in the guest (tests/guest, TCG, memtouch 64 MiB
// dirtying 32 pages every 50 ms): round 1 all of it, later rounds what
// it dirtied meanwhile.
var (
	converging = []migrate.Round{{Bytes: 64 * mib, Duration: 1300 * time.Millisecond}, {Bytes: 8 * mib, Duration: 350 * time.Millisecond},
		{Bytes: 3 * mib, Duration: 150 * time.Millisecond}}
	flat     = []migrate.Round{{Bytes: 64 * mib, Duration: 1300 * time.Millisecond}, {Bytes: 60 * mib, Duration: 1250 * time.Millisecond}}
	shrinks  = []migrate.Round{{Bytes: 64 * mib, Duration: 1300 * time.Millisecond}, {Bytes: 48 * mib, Duration: 1000 * time.Millisecond}, {Bytes: 36 * mib, Duration: 800 * time.Millisecond}}
	budget   = migrate.Policy{MaxDowntime: 500 * time.Millisecond, MinShrink: 0.2, MaxRounds: 8}
	tightCap = migrate.Policy{MaxDowntime: 100 * time.Millisecond, MinShrink: 0.2, MaxRounds: 3}
)

// TestRunPrecopy walks pre-copy rounds over recorded round tables and
// each failure point. The promises: the stop rule decides after every
// round and its verdicts land in the summary; each round's page server
// has the round before as parent and the final dump the last round;
// during the rounds a failure removes both ends' files and leaves the
// source running (never a rollback: nothing stopped it); from the final
// dump on, the stream's protocol holds (rolled back before the
// destination runs, one copy after).
func TestRunPrecopy(t *testing.T) {
	for _, tc := range []struct {
		name             string
		table            []migrate.Round
		policy           migrate.Policy
		srcFail, dstFail string
		failRound        int
		brokenAt         int
		dstProg          []Progress
		wantErr          string
		wantRounds       []migrate.Action
		wantServed       []string
		want, never      []string
		srcState         string
	}{
		{name: "converges after round 2", table: converging, policy: budget, dstProg: []Progress{received},
			wantRounds: []migrate.Action{migrate.Continue, migrate.Converged},
			wantServed: []string{"1 0 ", "2 1 rounds/1", "0 2 rounds/2"},
			want: []string{"dst.ServeRound 1", "src.Prepare", "src.PreDump", "dst.RoundProgress 1", "dst.ServeRound 2", "src.Replan", "src.PreDump",
				"dst.RoundProgress 2", "dst.ServeRound 0", "src.Replan", "src.Checkpoint", "dst.Progress", "dst.Send", "dst.Restore", "src.Abort", "dst.Cleanup"},
			never: []string{"src.Rollback", "dst.Remove", "dst.Abort"}, srcState: "stopped"},
		{name: "not converging", table: flat, policy: budget, dstProg: []Progress{received},
			wantRounds: []migrate.Action{migrate.Continue, migrate.NotConverging},
			wantServed: []string{"1 0 ", "2 1 rounds/1", "0 2 rounds/2"},
			want:       []string{"dst.ServeRound 0", "src.Checkpoint", "dst.Restore"}, srcState: "stopped"},
		{name: "round cap", table: shrinks, policy: tightCap, dstProg: []Progress{received},
			wantRounds: []migrate.Action{migrate.Continue, migrate.Continue, migrate.RoundCap},
			wantServed: []string{"1 0 ", "2 1 rounds/1", "3 2 rounds/2", "0 3 rounds/3"},
			want:       []string{"dst.ServeRound 3", "dst.ServeRound 0", "src.Checkpoint"}, srcState: "stopped"},
		{name: "round page server does not start", table: converging, policy: budget, dstFail: "ServeRound 1", wantErr: "dst ServeRound 1 broke",
			want: []string{"src.Abort", "dst.Abort"}, never: []string{"src.PreDump", "src.Checkpoint"}, srcState: "running (pre-copy rounds never stop it)"},
		{name: "pre-dump fails in round 2", table: converging, policy: budget, failRound: 2, wantErr: "round 2: src PreDump broke",
			wantRounds: []migrate.Action{migrate.Continue},
			want:       []string{"dst.RoundProgress 1", "dst.ServeRound 2", "src.PreDump", "src.Abort", "dst.Abort"},
			never:      []string{"dst.RoundProgress 2", "src.Checkpoint", "src.Rollback", "dst.Remove"}, srcState: "running (pre-copy rounds never stop it)"},
		{name: "round page server dies", table: converging, policy: budget, brokenAt: 1, wantErr: "round 1: the destination's page server exited 1",
			want: []string{"src.PreDump", "dst.RoundProgress 1", "src.Abort", "dst.Abort"}, never: []string{"dst.ServeRound 2", "src.Checkpoint", "src.Rollback"},
			srcState: "running (pre-copy rounds never stop it)"},
		{name: "ssh drops during the rounds", table: converging, policy: budget, dstFail: "RoundProgress 1", wantErr: "cannot tell",
			want: []string{"src.Abort", "dst.Abort"}, never: []string{"src.Checkpoint"}, srcState: "running (pre-copy rounds never stop it)"},
		{name: "final page server killed mid-dump", table: converging, policy: budget, dstProg: []Progress{broken}, wantErr: "page server exited 1",
			wantRounds: []migrate.Action{migrate.Continue, migrate.Converged},
			want:       []string{"dst.ServeRound 0", "src.Checkpoint", "dst.Progress", "dst.Remove", "dst.Abort", "src.Rollback", "src.Cleanup"},
			never:      []string{"dst.Send", "dst.Restore"}, srcState: "running (rolled back)"},
		{name: "final restore fails", table: converging, policy: budget, dstFail: "Restore", dstProg: []Progress{received}, wantErr: "dst Restore broke",
			wantRounds: []migrate.Action{migrate.Continue, migrate.Converged},
			want:       []string{"dst.Restore", "dst.Remove", "src.Rollback"}, never: []string{"src.Abort"}, srcState: "running (rolled back)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var calls []string
			clock := time.Unix(0, 0)
			if tc.dstProg == nil {
				tc.dstProg = []Progress{serving}
			}
			src := &precopyFake{fake: &fake{calls: &calls, role: "src", failAt: tc.srcFail, progress: []Progress{serving}}, clock: &clock,
				table: tc.table, failRound: tc.failRound}
			dst := &precopyFake{fake: &fake{calls: &calls, role: "dst", failAt: tc.dstFail, progress: tc.dstProg}, clock: &clock,
				table: tc.table, brokenAt: tc.brokenAt}
			o := Options{Container: "ctr", Mode: migrate.ModePrecopy, MigrationID: "m1", Poll: time.Nanosecond, Policy: tc.policy,
				Timeouts: migrate.Timeouts{Connect: migrate.Duration(time.Second), NoProgress: migrate.Duration(5 * time.Second), Total: migrate.Duration(time.Hour)},
				Now:      func() time.Time { return clock }}
			s, err := Run(context.Background(), src, dst, o)
			checkRun(t, s, err, calls, tc.wantErr, tc.want, tc.never, "", "")
			// Round 1 installs the source's TLS files; later rounds only
			// update its plan (a second Prepare is refused on a real host).
			if n := strings.Count(strings.Join(calls, " "), "src.Prepare"); n > 1 {
				t.Errorf("src.Prepare %d times: %v", n, calls)
			}
			var got []migrate.Action
			for i, r := range s.Rounds {
				got = append(got, r.Decision)
				if r.Round != i+1 || r.Bytes != tc.table[i].Bytes || r.MS != tc.table[i].Duration.Milliseconds() || r.Reason == "" {
					t.Errorf("round %d in the summary: %+v, want bytes %d ms %d and a reason", i+1, r, tc.table[i].Bytes, tc.table[i].Duration.Milliseconds())
				}
			}
			if !slices.Equal(got, tc.wantRounds) {
				t.Errorf("verdicts %v, want %v", got, tc.wantRounds)
			}
			if tc.wantServed != nil && !slices.Equal(dst.served, tc.wantServed) {
				t.Errorf("page servers served (round last parent) %q, want %q", dst.served, tc.wantServed)
			}
			if s.SourceState != tc.srcState {
				t.Errorf("source state %q, want %q", s.SourceState, tc.srcState)
			}
			if s.Mode != "precopy" {
				t.Errorf("summary mode %q", s.Mode)
			}
			if ran := slices.Contains(calls, "src.Checkpoint"); ran != (s.FinalDump == migrate.ModeStream) {
				t.Errorf("final dump ran %v, summary's final_dump %q", ran, s.FinalDump)
			}
		})
	}
}

// TestAgentReplan: each round after the first, and the final dump,
// updates the plan of the same pre-copy migration while the TLS files
// round 1 wrote stay: writing them again is refused (pki makes them
// fresh per migration), which failed round 2 in the guest before
// replan. A plan of another migration, or none, is not updated.
func TestAgentReplan(t *testing.T) {
	dir := t.TempDir()
	const id = "0123456789abcdef"
	d := migrate.Duration(time.Minute)
	p := &migrate.Plan{Version: migrate.PlanVersion, Mode: migrate.ModePrecopy, MigrationID: "m1", Round: 1,
		PageServer: migrate.PageServer{Address: "10.0.0.1", Port: 4001}, Status: migrate.StatusPlanned,
		Timeouts: migrate.Timeouts{Connect: d, NoProgress: d, Total: d}}
	m, err := pki.NewTLSMaterial([]string{"10.0.0.1"}, time.Hour, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	req := func(p *migrate.Plan) *strings.Reader {
		data, err := json.Marshal(agentRequest{Plan: p, Role: "client", Material: &pki.TLSMaterial{CACert: m.CACert, ClientCert: m.ClientCert, ClientKey: m.ClientKey}})
		if err != nil {
			t.Fatal(err)
		}
		return strings.NewReader(string(data))
	}
	plan := func(p *migrate.Plan) *strings.Reader {
		data, err := json.Marshal(p)
		if err != nil {
			t.Fatal(err)
		}
		return strings.NewReader(string(data))
	}
	if err := AgentReplan(dir, id, plan(p)); err == nil || !strings.Contains(err.Error(), "round 1 installs it") {
		t.Fatalf("replan without a plan: %v", err)
	}
	if err := AgentPrepare(dir, id, req(p)); err != nil {
		t.Fatal(err)
	}
	first, err := engine.ReadPlan(dir, id)
	if err != nil || first.TLS.Cert == "" {
		t.Fatalf("round 1's plan: %+v, %v", first, err)
	}
	if err := AgentPrepare(dir, id, req(p)); err == nil || !strings.Contains(err.Error(), "already exists") {
		t.Fatalf("a second prepare of the same migration: %v, want the TLS files refused", err)
	}
	r2 := *p
	r2.Round, r2.ParentPath, r2.PageServer.Port = 2, "rounds/1", 4002
	if err := AgentReplan(dir, id, plan(&r2)); err != nil {
		t.Fatal(err)
	}
	got, err := engine.ReadPlan(dir, id)
	if err != nil || got.Round != 2 || got.ParentPath != "rounds/1" || got.PageServer.Port != 4002 || got.TLS != first.TLS {
		t.Fatalf("round 2's plan: %+v, %v; want round 2 on round 1, port 4002, TLS %+v", got, err, first.TLS)
	}
	other := r2
	other.MigrationID = "m2"
	if err := AgentReplan(dir, id, plan(&other)); err == nil {
		t.Fatal("a plan of another migration replaced this one's")
	}
}

// TestRunPrecopyLazyFinal: after the rounds, a lazy final dump (pre-copy
// and post-copy combined) runs lazy mode's protocol with the pre-copy's
// plans: on both ends mode precopy, final lazy, the last round as
// parent, the page server on the source (o.Port there; the rounds' page
// servers took ephemeral ports on the destination), no final page server
// on the destination. Its failure points keep lazy mode's promises:
// before the destination runs, the source is rolled back and the
// destination's half (its rounds with it) removed; after, a broken page
// stream leaves the destination killed (never a zero-filled page) and
// the failure reported with the source's state; only a full transfer
// commits. The summary names the final dump that ran.
func TestRunPrecopyLazyFinal(t *testing.T) {
	for _, tc := range []struct {
		name             string
		final            migrate.Mode
		srcFail, dstFail string
		srcProg, dstProg []Progress
		failRound        int
		wantErr          string
		want, never      []string
		srcState         string
		dstState         string
		finalDump        migrate.Mode
	}{
		{name: "success", srcProg: []Progress{serving, serving, finished}, dstProg: []Progress{serving, finished},
			want: []string{"dst.ServeRound 1", "src.Prepare", "src.PreDump", "dst.ServeRound 2", "src.Replan", "src.PreDump", "dst.RoundProgress 2",
				"src.Prepare", "dst.Prepare", "src.Checkpoint", "src.Progress", "dst.Send", "dst.Restore", "dst.Progress", "src.Cleanup", "dst.Cleanup"},
			never:    []string{"dst.ServeRound 0", "src.Rollback", "dst.Remove", "dst.Kill", "src.Abort", "dst.Abort"},
			srcState: "stopped", dstState: "running, every page moved", finalDump: migrate.ModeLazy},
		{name: "destination prepare fails", dstFail: "Prepare", wantErr: "dst Prepare broke",
			want: []string{"src.PreDump", "dst.RoundProgress 2", "src.Prepare", "dst.Prepare", "src.Abort", "dst.Abort"}, never: []string{"src.Checkpoint"},
			srcState: "running", finalDump: migrate.ModeLazy},
		{name: "dump fails, container resumed", srcFail: "Checkpoint", wantErr: "src Checkpoint broke",
			want: []string{"src.Checkpoint", "src.Abort", "dst.Abort"}, never: []string{"dst.Send", "src.Rollback"}, srcState: "running", finalDump: migrate.ModeLazy},
		{name: "page server dies before the destination ran", srcProg: []Progress{broken}, wantErr: "page server is gone",
			want: []string{"src.Checkpoint", "src.Progress", "dst.Remove", "dst.Abort", "src.Rollback", "src.Cleanup"}, never: []string{"dst.Restore"},
			srcState: "running (rolled back)", dstState: "removed", finalDump: migrate.ModeLazy},
		{name: "destination restore fails", dstFail: "Restore", wantErr: "dst Restore broke",
			want: []string{"dst.Restore", "dst.Remove", "dst.Abort", "src.Rollback", "src.Cleanup"}, never: []string{"dst.Cleanup"},
			srcState: "running (rolled back)", dstState: "removed", finalDump: migrate.ModeLazy},
		{name: "lazy-pages daemon dies after the destination ran", dstProg: []Progress{serving, broken}, wantErr: "page stream broke",
			want: []string{"dst.Restore", "dst.Kill", "src.Abort", "dst.Abort"}, never: []string{"src.Rollback", "src.Cleanup"},
			dstState: "killed: its lazy-pages daemon failed, no page was zero-filled", finalDump: migrate.ModeLazy},
		{name: "page server dies after the destination ran", srcProg: []Progress{serving, broken}, dstProg: []Progress{serving, serving, broken},
			wantErr: "page stream broke", want: []string{"dst.Restore", "dst.Kill"}, never: []string{"src.Rollback"},
			srcState: "stopped; its page server exited 1, the pages it still held are lost", finalDump: migrate.ModeLazy},
		{name: "pre-dump fails: no final dump", failRound: 2, wantErr: "round 2: src PreDump broke",
			want: []string{"src.Abort", "dst.Abort"}, never: []string{"src.Checkpoint", "dst.Prepare"}, srcState: "running (pre-copy rounds never stop it)"},
		{name: "unknown final", final: "teleport", wantErr: `not "teleport"`, never: []string{"dst.ServeRound 1", "src.Prepare"}, srcState: "running"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var calls []string
			clock := time.Unix(0, 0)
			if tc.srcProg == nil {
				tc.srcProg = []Progress{serving}
			}
			if tc.dstProg == nil {
				tc.dstProg = []Progress{serving}
			}
			if tc.final == "" {
				tc.final = migrate.ModeLazy
			}
			src := &precopyFake{fake: &fake{calls: &calls, role: "src", failAt: tc.srcFail, progress: tc.srcProg}, clock: &clock,
				table: converging, failRound: tc.failRound}
			dst := &precopyFake{fake: &fake{calls: &calls, role: "dst", failAt: tc.dstFail, progress: tc.dstProg}, clock: &clock, table: converging}
			o := Options{Container: "ctr", Mode: migrate.ModePrecopy, Final: tc.final, Port: 4321, MigrationID: "m1", Poll: time.Nanosecond, Policy: budget,
				Timeouts: migrate.Timeouts{Connect: migrate.Duration(time.Second), NoProgress: migrate.Duration(5 * time.Second), Total: migrate.Duration(time.Hour)},
				Now:      func() time.Time { clock = clock.Add(time.Millisecond); return clock }}
			s, err := Run(context.Background(), src, dst, o)
			checkRun(t, s, err, calls, tc.wantErr, tc.want, tc.never, tc.srcState, tc.dstState)
			if s.Mode != "precopy" || s.FinalDump != tc.finalDump {
				t.Errorf("summary mode %q, final dump %q; want precopy, %q", s.Mode, s.FinalDump, tc.finalDump)
			}
			for _, port := range dst.ports {
				if port != 0 {
					t.Errorf("a round's page server was asked for port %d: --port is the source's lazy page server's", port)
				}
			}
			if len(src.plans) < 2 {
				return
			}
			// The final plans: round 1's Prepare on the source was the
			// rounds'; the next one, and the destination's, the final's.
			want := migrate.PageServer{Address: "10.0.0.2", Port: 4321}
			for _, p := range []migrate.Plan{src.plans[1], dst.plans[0]} {
				if p.Mode != migrate.ModePrecopy || p.Final != migrate.ModeLazy || p.ParentPath != "rounds/2" || p.Round != 0 || p.PageServer != want {
					t.Errorf("final plan %+v: want precopy, final lazy, parent rounds/2, round 0, page server %v", p, want)
				}
			}
		})
	}
}
