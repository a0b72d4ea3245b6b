package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/crhook/crhook/engine/migrate"
	"github.com/crhook/crhook/engine/migrate/orchestrate"
)

// fakeWorkerMain is `crhook-fake-worker migrate-agent worker ID`: the
// real worker (runWorker: pipes, signals, summary file) around a fake
// migration, chosen by $CRHOOK_FAKE_WORKER:
//   - wait: phases prepare and checkpoint, then it waits for an interrupt
//     and "rolls back";
//   - die: phases prepare and checkpoint, then it exits 3 without a summary.
func fakeWorkerMain() {
	if len(os.Args) != 4 {
		fmt.Fprintln(os.Stderr, "usage: crhook-fake-worker migrate-agent worker ID")
		os.Exit(2)
	}
	err := runWorker(os.Args[3], os.NewFile(workerCtlFD, "control"), os.NewFile(workerEventsFD, "events"), fakeMigration)
	if err != nil {
		os.Exit(1)
	}
	os.Exit(0)
}

func fakeMigration(ctx context.Context, o workerOptions, em *emitter, log *slog.Logger) (*migrateSummary, error) {
	s := &orchestrate.Summary{Container: o.Container, MigrationID: o.MigrationID, Mode: string(o.Mode), SourceState: "running", DestinationState: "absent"}
	em.phase(orchestrate.PhasePrepare)
	em.phase(orchestrate.PhaseCheckpoint)
	em.send(event{Type: evPages, Moved: 4096})
	if os.Getenv("CRHOOK_FAKE_WORKER") == "die" {
		<-em.close()
		os.Exit(3)
	}
	select {
	case <-ctx.Done():
	case <-time.After(60 * time.Second):
		s.Phase = orchestrate.PhaseDone
		return &migrateSummary{Summary: s}, nil
	}
	s.Phase, s.SourceState = orchestrate.PhaseCheckpoint, "running (rolled back)"
	s.Error = fmt.Sprintf("migration failed in phase checkpoint: interrupted (%v) before the destination ran; the source runs again", ctx.Err())
	return &migrateSummary{Summary: s}, fmt.Errorf("%s\nsource: %s\ndestination: %s", s.Error, s.SourceState, s.DestinationState)
}

func fakeWorker(t *testing.T, mode string) (string, workerOptions) {
	t.Helper()
	t.Setenv("CRHOOK_FAKE_WORKER", mode)
	self, err := exec.LookPath("crhook-fake-worker")
	if err != nil {
		t.Fatal(err)
	}
	return self, workerOptions{Container: "c1", MigrationID: "0123456789abcdef", Mode: migrate.ModeStream,
		Dir: filepath.Join(t.TempDir(), "migrate-worker", "0123456789abcdef")}
}

// TestEvents: what the worker's emitter writes, readEvents reads back:
// phases in order, page counts coalesced but never reordered with a
// phase, warnings, the summary last.
func TestEvents(t *testing.T) {
	r, w := io.Pipe()
	em := newEmitter(w, func(err error) { t.Errorf("write failed: %v", err) })
	em.phase(orchestrate.PhasePrepare)
	em.send(event{Type: evWarning, Text: "no ssh master"})
	em.phase(orchestrate.PhasePages)
	for i := int64(1); i <= 1000; i++ {
		em.send(event{Type: evPages, Moved: i})
	}
	em.phase(orchestrate.PhaseDone)
	em.send(event{Type: evSummary, Summary: &migrateSummary{Summary: &orchestrate.Summary{Container: "c1", MigrationID: "m1", SourceState: "stopped"}}, Error: "boom"})
	go func() { <-em.close(); _ = w.Close() }()

	var phases []orchestrate.Phase
	var moved []int64
	var warns []string
	ev, last, err := readEvents(r, eventHandler{
		phase: func(p orchestrate.Phase) { phases = append(phases, p) },
		pages: func(n int64) {
			if phases[len(phases)-1] != orchestrate.PhasePages {
				t.Errorf("page count %d after phase %s", n, phases[len(phases)-1])
			}
			moved = append(moved, n)
		},
		warn: func(s string) { warns = append(warns, s) },
	})
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(phases) != "[prepare pages done]" || last != orchestrate.PhaseDone {
		t.Errorf("phases %v, last %s", phases, last)
	}
	if len(moved) == 0 || moved[len(moved)-1] != 1000 {
		t.Errorf("page counts %v, want the last to be 1000", moved)
	}
	if fmt.Sprint(warns) != "[no ssh master]" {
		t.Errorf("warnings %q", warns)
	}
	if ev.Error != "boom" || ev.Summary.Container != "c1" || ev.Summary.SourceState != "stopped" {
		t.Errorf("summary event %+v %+v", ev, ev.Summary)
	}
}

func TestReadEvents(t *testing.T) {
	summary := `{"type":"summary","summary":{"container":"c1","migration_id":"m1","source_state":"stopped"}}` + "\n"
	for _, tc := range []struct {
		name, in  string
		wantErr   bool
		wantLast  orchestrate.Phase
		wantWarns string
	}{
		{name: "summary", in: `{"type":"phase","phase":"prepare"}` + "\n" + summary, wantLast: "prepare"},
		{name: "unknown event skipped", in: `{"type":"phase","phase":"checkpoint"}` + "\n" + `{"type":"teleport"}` + "\n" + summary,
			wantLast: "checkpoint", wantWarns: `event of unknown type "teleport"`},
		{name: "unreadable line skipped", in: "{not json\n" + summary, wantWarns: "unreadable event"},
		{name: "EOF before the summary", in: `{"type":"phase","phase":"checkpoint"}` + "\n", wantErr: true, wantLast: "checkpoint"},
		{name: "summary cut short", in: `{"type":"phase","phase":"pages"}` + "\n" + summary[:30], wantErr: true, wantLast: "pages"},
		{name: "empty stream", in: "", wantErr: true},
		{name: "summary without one", in: `{"type":"summary"}` + "\n", wantErr: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var warns []string
			ev, last, err := readEvents(strings.NewReader(tc.in), eventHandler{warn: func(s string) { warns = append(warns, s) }})
			if tc.wantErr != (err != nil) {
				t.Fatalf("err = %v, want an error: %v", err, tc.wantErr)
			}
			if err != nil && !errors.Is(err, errNoSummary) {
				t.Errorf("err %v is not errNoSummary", err)
			}
			if err == nil && ev.Summary.Container != "c1" {
				t.Errorf("summary %+v", ev.Summary)
			}
			if last != tc.wantLast {
				t.Errorf("last phase %q, want %q", last, tc.wantLast)
			}
			if got := strings.Join(warns, "; "); tc.wantWarns == "" && got != "" || !strings.Contains(got, tc.wantWarns) {
				t.Errorf("warnings %q, want %q", got, tc.wantWarns)
			}
		})
	}
}

// blockedWriter never returns: a foreground that stopped reading.
type blockedWriter struct{ c chan struct{} }

func (b blockedWriter) Write(p []byte) (int, error) { <-b.c; return len(p), nil }

// TestEmitterNeverBlocks: a foreground that stops reading (Ctrl-Z) must
// not stall the worker's protocol loop, whose timeouts bound the freeze.
func TestEmitterNeverBlocks(t *testing.T) {
	b := blockedWriter{c: make(chan struct{})}
	defer close(b.c)
	em := newEmitter(b, func(error) {})
	done := make(chan struct{})
	go func() {
		for i := range 100000 {
			em.send(event{Type: evPages, Moved: int64(i)})
			if i%1000 == 0 {
				em.phase(orchestrate.PhasePages)
			}
		}
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("send blocked on a reader that does not read")
	}
}

// TestEmitterForegroundGone: a broken event pipe (EPIPE: the foreground
// died) is reported once, and what follows is dropped.
func TestEmitterForegroundGone(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	r.Close()
	gone := make(chan error, 10)
	em := newEmitter(w, func(err error) { gone <- err })
	em.phase(orchestrate.PhasePrepare)
	em.phase(orchestrate.PhaseCheckpoint)
	<-em.close()
	if len(gone) != 1 {
		t.Fatalf("gone called %d times, want 1", len(gone))
	}
	if err := <-gone; !errors.Is(err, syscall.EPIPE) {
		t.Errorf("gone(%v), want EPIPE", err)
	}
}

// TestWorkerSignalForwarded: SIGINT to the foreground reaches the worker
// (a process in its own session, which a terminal's SIGINT does not
// reach), which rolls back and says why; a SIGHUP to the worker (its
// terminal closed) does not kill it.
func TestWorkerSignalForwarded(t *testing.T) {
	self, o := fakeWorker(t, "wait")
	w, err := startWorker(self, o)
	if err != nil {
		t.Fatal(err)
	}
	type result struct {
		ev  *event
		err error
	}
	res := make(chan result, 1)
	phases := make(chan orchestrate.Phase, 10)
	go func() {
		ev, err := w.follow(eventHandler{phase: func(p orchestrate.Phase) { phases <- p }})
		res <- result{ev, err}
	}()
	for p := range phases {
		if p == orchestrate.PhaseCheckpoint {
			break
		}
	}
	if sid, _ := unix.Getsid(w.cmd.Process.Pid); sid != w.cmd.Process.Pid {
		t.Errorf("the worker's session is %d, want its own (%d)", sid, w.cmd.Process.Pid)
	}
	if err := syscall.Kill(w.cmd.Process.Pid, syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Kill(os.Getpid(), syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	var r result
	select {
	case r = <-res:
	case <-time.After(30 * time.Second):
		t.Fatal("no summary 30s after SIGINT: not forwarded")
	}
	if r.err != nil {
		t.Fatalf("follow: %v\nlog:\n%s", r.err, readLog(o.Dir))
	}
	if !strings.Contains(r.ev.Error, "interrupted") || !strings.Contains(r.ev.Error, "source: running (rolled back)") {
		t.Errorf("error %q", r.ev.Error)
	}
	if want := "SIGINT forwarded by crhook migrate, in phase checkpoint"; r.ev.Summary.Interrupted != want {
		t.Errorf("interrupted %q, want %q", r.ev.Summary.Interrupted, want)
	}
	if s, err := readWorkerSummary(o.Dir); err != nil || s.SourceState != "running (rolled back)" {
		t.Errorf("summary file: %v %+v", err, s)
	}
}

// TestWorkerForegroundKilled: the foreground dies (its pipe ends close,
// as the kernel closes them at SIGKILL) while the worker is in the
// checkpoint: the worker takes it as an interrupt, rolls back, leaves its
// summary in its directory and exits.
func TestWorkerForegroundKilled(t *testing.T) {
	self, o := fakeWorker(t, "wait")
	w, err := startWorker(self, o)
	if err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(w.events)
	for {
		line, err := br.ReadBytes('\n')
		if err != nil {
			t.Fatalf("no checkpoint phase: %v\nlog:\n%s", err, readLog(o.Dir))
		}
		var ev event
		if json.Unmarshal(line, &ev) == nil && ev.Phase == orchestrate.PhaseCheckpoint {
			break
		}
	}
	w.ctl.Close()
	w.events.Close()
	exited := make(chan error, 1)
	go func() { exited <- w.cmd.Wait() }()
	select {
	case err := <-exited:
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 1 {
			t.Errorf("the worker exited %v, want status 1 (the migration failed: rolled back)", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the worker still runs 30s after its foreground died")
	}
	s, err := readWorkerSummary(o.Dir)
	if err != nil {
		t.Fatalf("%v\nlog:\n%s", err, readLog(o.Dir))
	}
	if s.SourceState != "running (rolled back)" || !strings.Contains(s.Interrupted, "crhook migrate went away") ||
		!strings.HasSuffix(s.Interrupted, "in phase checkpoint") {
		t.Errorf("summary: source %q, interrupted %q", s.SourceState, s.Interrupted)
	}
	if log := readLog(o.Dir); !strings.Contains(log, "interrupted") {
		t.Errorf("the log does not say it was interrupted:\n%s", log)
	}
}

// TestWorkerDied: the worker dies without a summary; the foreground says
// the last phase, what it tells, and where the log and summary are.
func TestWorkerDied(t *testing.T) {
	self, o := fakeWorker(t, "die")
	w, err := startWorker(self, o)
	if err != nil {
		t.Fatal(err)
	}
	_, err = w.follow(eventHandler{})
	if err == nil {
		t.Fatal("follow succeeded without a summary")
	}
	for _, want := range []string{"ended without a summary", "exit status 3", "in phase checkpoint", "tasks kept frozen",
		filepath.Join(o.Dir, "worker.log"), filepath.Join(o.Dir, "summary.json")} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q: %v", want, err)
		}
	}
}

func readLog(dir string) string {
	data, _ := os.ReadFile(filepath.Join(dir, workerLogFile))
	return string(data)
}
