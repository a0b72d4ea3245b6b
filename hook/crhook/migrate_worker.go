package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/crhook/crhook/engine/migrate"
	"github.com/crhook/crhook/engine/migrate/orchestrate"
)

// A migration runs in a worker, `crhook migrate-agent worker ID`, in its
// own session, that the foreground `crhook migrate` starts once it has
// decided what to do. The foreground only draws the worker's events and
// forwards SIGINT and SIGTERM. Whatever ends the foreground (SIGKILL, the
// OOM killer, a closed terminal, its process group killed) the worker
// sees it (its control pipe reads EOF, its event pipe EPIPE) and takes it
// as an interrupt: it rolls back if the destination has not run, else it
// completes; nothing is left frozen for lack of an orchestrator. It logs
// to, and leaves its summary in, workerDir.

// The worker's pipes: ExtraFiles 0 and 1 of the foreground's exec.Cmd.
const (
	workerCtlFD    = 3 // foreground → worker: the options (one JSON line), then "interrupt SIGNAL" lines
	workerEventsFD = 4 // worker → foreground: the events (migrate_events.go)
)

// Files of workerDir.
const (
	workerLogFile     = "worker.log"
	workerSummaryFile = "summary.json"
)

// workerDir is where the worker of migration migID logs and leaves its
// summary: in the source's state directory, beside (not in) the
// migrations directory the agents remove when a migration ends.
func workerDir(stateDir, migID string) string {
	return filepath.Join(stateDir, "migrate-worker", migID)
}

// errForegroundGone: the worker's control or event pipe broke.
var errForegroundGone = errors.New("crhook migrate went away (its control pipe closed or its event pipe broke)")

// workerOptions are what the foreground decided and hands the worker.
type workerOptions struct {
	Container    string              `json:"container"`
	Destination  migrate.Destination `json:"destination"`
	SSHOptions   []string            `json:"ssh_options,omitempty"`
	Mode         migrate.Mode        `json:"mode"`
	Decision     string              `json:"decision"`
	Port         int                 `json:"port"`
	MigrationID  string              `json:"migration_id"`
	Timeouts     migrate.Timeouts    `json:"timeouts"`
	RemoveSource bool                `json:"rm"`
	MaxDowntime  time.Duration       `json:"max_downtime"`
	// Final is a pre-copy's final dump (--final): stream or lazy.
	Final    migrate.Mode `json:"final,omitempty"`
	Measured *measured    `json:"measured,omitempty"`
	// Dir is workerDir: the worker's log and summary.
	Dir string `json:"dir"`
}

// workerProc is the worker as the foreground sees it.
type workerProc struct {
	cmd    *exec.Cmd
	ctl    *os.File // write end of the control pipe
	events *os.File // read end of the event pipe
	dir    string
}

// startWorker starts `self migrate-agent worker ID` in a session of its
// own (no terminal: a closed one cannot SIGHUP it, nor its commands),
// stdin /dev/null, stdout and stderr its log, and hands it o.
func startWorker(self string, o workerOptions) (*workerProc, error) {
	if err := os.MkdirAll(o.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("create the migration worker's directory %q: %w", o.Dir, err)
	}
	logPath := filepath.Join(o.Dir, workerLogFile)
	logf, err := os.OpenFile(logPath, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open the migration worker's log: %w", err)
	}
	defer logf.Close()
	ctlR, ctlW, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("make the migration worker's control pipe: %w", err)
	}
	defer ctlR.Close()
	evR, evW, err := os.Pipe()
	if err != nil {
		ctlW.Close()
		return nil, fmt.Errorf("make the migration worker's event pipe: %w", err)
	}
	defer evW.Close()
	cmd := exec.Command(self, "migrate-agent", "worker", o.MigrationID)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.ExtraFiles = []*os.File{ctlR, evW}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		ctlW.Close()
		evR.Close()
		return nil, fmt.Errorf("start the migration worker %s: %w", self, err)
	}
	w := &workerProc{cmd: cmd, ctl: ctlW, events: evR, dir: o.Dir}
	b, err := json.Marshal(o)
	if err == nil {
		_, err = ctlW.Write(append(b, '\n'))
	}
	if err != nil {
		// It gets EOF and ends without doing anything.
		ctlW.Close()
		evR.Close()
		_ = cmd.Wait()
		return nil, fmt.Errorf("hand the migration worker its options: %w", err)
	}
	return w, nil
}

// follow draws the worker's events until its summary, forwarding SIGINT
// and SIGTERM to it meanwhile, and waits for it to exit. Without a
// summary (the worker died) it reads the one the worker may have left
// in its directory, else it says what the last phase tells.
func (w *workerProc) follow(h eventHandler) (*event, error) {
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(sigs)
	done := make(chan struct{})
	var fwd sync.WaitGroup
	fwd.Add(1)
	go func() {
		defer fwd.Done()
		for {
			select {
			case s := <-sigs:
				// An error means the worker is gone; readEvents says so.
				_, _ = fmt.Fprintf(w.ctl, "interrupt %s\n", signalName(s))
			case <-done:
				return
			}
		}
	}()
	ev, last, rerr := readEvents(w.events, h)
	close(done)
	fwd.Wait()
	w.events.Close()
	w.ctl.Close() // the worker is past its migration, or gone
	exited := make(chan error, 1)
	go func() { exited <- w.cmd.Wait() }()
	var werr error
	select {
	case werr = <-exited:
	case <-time.After(10 * time.Second):
		werr = fmt.Errorf("still running after 10s")
	}
	if rerr == nil {
		return ev, nil
	}
	if s, err := readWorkerSummary(w.dir); err == nil {
		// It finished, and only the stream broke.
		ev := &event{Type: evSummary, Summary: s}
		if s.Phase != orchestrate.PhaseDone && s.Error != "" {
			ev.Error = fmt.Sprintf("%s\nsource: %s\ndestination: %s", s.Error, s.SourceState, s.DestinationState)
		}
		return ev, nil
	}
	return nil, w.lost(last, rerr, werr)
}

// lost is the error of a worker that ended without a summary: what its
// last phase tells about both hosts, and where to look.
func (w *workerProc) lost(last orchestrate.Phase, rerr, werr error) error {
	if last == "" {
		last = "(none yet)"
	}
	status := "exit status unknown"
	if werr != nil {
		status = werr.Error()
	} else if w.cmd.ProcessState != nil {
		status = w.cmd.ProcessState.String()
	}
	pid := 0
	if w.cmd.Process != nil {
		pid = w.cmd.Process.Pid
	}
	return fmt.Errorf("the migration worker (crhook migrate-agent worker, pid %d) ended without a summary (%v; %s) in phase %s: %s; "+
		"what it did is in %s, its summary would be %s",
		pid, rerr, status, last, knownAfter(last), filepath.Join(w.dir, workerLogFile), filepath.Join(w.dir, workerSummaryFile))
}

// knownAfter says what a phase reached tells of both hosts.
func knownAfter(p orchestrate.Phase) string {
	switch p {
	case orchestrate.PhasePrepare, orchestrate.PhasePrecopy:
		return "the source was not dumped yet (it runs); plans and TLS files may remain on both hosts"
	case orchestrate.PhaseCheckpoint, orchestrate.PhaseTransfer, orchestrate.PhaseRestore:
		return "the source may be dumped with its tasks kept frozen: nothing resumes them before podman's held delete ends at --timeout " +
			"(then `podman rm` deletes them); check `podman ps -a` on both hosts"
	case orchestrate.PhasePages, orchestrate.PhaseCommit:
		return "the destination runs; its lazy-pages supervisor kills it if the page stream breaks, and ends the page server at --timeout"
	case orchestrate.PhaseDone:
		return "the migration completed; only tidying may be missing"
	}
	return "nothing was touched yet"
}

func signalName(s os.Signal) string {
	if s == os.Interrupt {
		return "SIGINT"
	}
	if s == syscall.SIGTERM {
		return "SIGTERM"
	}
	return s.String()
}

// readWorkerSummary reads the summary a worker left in dir.
func readWorkerSummary(dir string) (*migrateSummary, error) {
	data, err := os.ReadFile(filepath.Join(dir, workerSummaryFile))
	if err != nil {
		return nil, err
	}
	var s migrateSummary
	if err := json.Unmarshal(data, &s); err != nil || s.Summary == nil {
		return nil, fmt.Errorf("read %s: %w", filepath.Join(dir, workerSummaryFile), errors.Join(err, errNoSummary))
	}
	return &s, nil
}

// migrateFunc runs the migration o in the worker, under ctx (cancelled
// by an interrupt), telling em what happens; runWorker hands it the real
// orchestrator, tests a fake.
type migrateFunc func(ctx context.Context, o workerOptions, em *emitter, log *slog.Logger) (*migrateSummary, error)

// newWorkerCmd is `crhook migrate-agent worker ID`: hidden, started by
// crhook migrate alone, with its pipes as fds 3 and 4.
func newWorkerCmd() *cobra.Command {
	return &cobra.Command{Use: "worker MIGRATION", Args: cobra.ExactArgs(1), RunE: func(_ *cobra.Command, a []string) error {
		return runWorker(a[0], os.NewFile(workerCtlFD, "control"), os.NewFile(workerEventsFD, "events"), migrateInWorker)
	}}
}

// runWorker is the worker: it reads its options from ctl, runs migrate
// and leaves its summary in o.Dir; its stderr is its log.
func runWorker(migID string, ctl, events *os.File, run migrateFunc) error {
	if ctl == nil || events == nil {
		return errors.New("migrate-agent worker: started without its pipes (fds 3 and 4); only crhook migrate starts it")
	}
	// A closed terminal, or a reader gone, must not kill it: SIGHUP and
	// SIGPIPE are ignored (its stdout and stderr are its log anyway).
	signal.Ignore(syscall.SIGHUP, syscall.SIGPIPE)
	log := slog.New(slog.NewTextHandler(os.Stderr, nil)).With("migration", migID, "pid", os.Getpid())
	br := bufio.NewReader(ctl)
	line, err := br.ReadBytes('\n')
	var o workerOptions
	if err == nil {
		err = json.Unmarshal(line, &o)
	}
	if err != nil || o.MigrationID != migID {
		err = fmt.Errorf("migrate-agent worker %s: read its options: %w", migID, errors.Join(err, errNoSummary))
		log.Error("no options", "err", err)
		return err
	}
	log.Info("start", "container", o.Container, "destination", o.Destination.String(), "mode", o.Mode)

	ctx, cancel := context.WithCancelCause(context.Background())
	defer cancel(nil)
	var (
		mu          sync.Mutex
		phase       orchestrate.Phase
		interrupted string
	)
	interrupt := func(cause error) {
		mu.Lock()
		defer mu.Unlock()
		if interrupted != "" {
			return
		}
		interrupted = fmt.Sprintf("%v, in phase %s", cause, orUnknown(string(phase)))
		log.Warn("interrupted: the step under way finishes; then, if the destination has not run yet, the container is rolled back, otherwise the migration completes",
			"cause", cause.Error(), "phase", phase)
		cancel(cause)
	}
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(sigs)
	go func() {
		for s := range sigs {
			interrupt(fmt.Errorf("%s received", signalName(s)))
		}
	}()
	go watchControl(br, interrupt, log)
	em := newEmitter(events, func(err error) { interrupt(fmt.Errorf("%w: %w", errForegroundGone, err)) })
	em.onPhase = func(p orchestrate.Phase) {
		mu.Lock()
		phase = p
		mu.Unlock()
		log.Info("phase", "phase", p)
	}

	s, err := run(ctx, o, em, log)
	if s == nil {
		s = &migrateSummary{Summary: &orchestrate.Summary{Container: o.Container, MigrationID: o.MigrationID, Mode: string(o.Mode),
			Decision: o.Decision, SourceState: "unknown", DestinationState: "unknown"}}
	}
	mu.Lock()
	s.Interrupted = interrupted
	mu.Unlock()
	errText := ""
	if err != nil {
		errText = err.Error()
		log.Error("migration failed", "err", errText)
	} else {
		log.Info("migration done", "source", s.SourceState, "destination", s.DestinationState, "downtime_ms", s.DowntimeMS)
	}
	if werr := writeWorkerSummary(o.Dir, s); werr != nil {
		log.Error("write the summary", "err", werr)
	}
	em.send(event{Type: evSummary, Summary: s, Error: errText})
	select {
	case <-em.close():
	case <-time.After(30 * time.Second):
		log.Warn("crhook migrate did not read the summary within 30s; it is in " + filepath.Join(o.Dir, workerSummaryFile))
	}
	if err != nil {
		return exitCode(1) // said in the log and the summary
	}
	return nil
}

// watchControl reads the foreground's control lines: "interrupt SIGNAL"
// is a forwarded signal; EOF or an error means the foreground is gone,
// an interrupt too.
func watchControl(br *bufio.Reader, interrupt func(error), log *slog.Logger) {
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			interrupt(fmt.Errorf("%w: %w", errForegroundGone, err))
			return
		}
		cmd := strings.Fields(line)
		if len(cmd) == 2 && cmd[0] == "interrupt" {
			interrupt(fmt.Errorf("%s forwarded by crhook migrate", cmd[1]))
			continue
		}
		log.Warn("unknown control line ignored", "line", strings.TrimSpace(line))
	}
}

// writeWorkerSummary writes s as dir/summary.json, whole or not at all.
func writeWorkerSummary(dir string, s *migrateSummary) error {
	data, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return fmt.Errorf("encode the summary: %w", err)
	}
	tmp := filepath.Join(dir, workerSummaryFile+".tmp")
	if err := os.WriteFile(tmp, append(data, '\n'), 0o600); err != nil {
		return fmt.Errorf("write %s: %w", tmp, err)
	}
	if err := os.Rename(tmp, filepath.Join(dir, workerSummaryFile)); err != nil {
		return fmt.Errorf("rename %s: %w", tmp, err)
	}
	return nil
}

// migrateInWorker is the migration itself, as crhook migrate ran it
// before it had a worker: the ssh master, the private tmp directories,
// the protocol (orchestrate.Run) and the phase times.
func migrateInWorker(ctx context.Context, o workerOptions, em *emitter, log *slog.Logger) (*migrateSummary, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("find crhook's own binary: %w", err)
	}
	tmp := filepath.Join("/var/tmp", "crhook-migrate-"+o.MigrationID)
	src := &orchestrate.PodmanHost{R: orchestrate.Local{}, Crhook: self, TmpDir: tmp}
	remote := orchestrate.SSH{Dest: o.Destination, Options: o.SSHOptions, ConnectTimeout: time.Duration(o.Timeouts.Connect)}
	// Not the source's directory: where both hosts share /var/tmp (two
	// podman stores on one machine, the test bed) the copy would
	// truncate the archive it reads.
	dstTmp := tmp + "-in"
	dst := &orchestrate.PodmanHost{R: remote, Crhook: "crhook", TmpDir: dstTmp}
	src.Role, dst.Role = rolesFor(o.Mode, o.Final)
	summary := func(s *orchestrate.Summary) *migrateSummary {
		return &migrateSummary{Summary: s, Measured: o.Measured}
	}
	if err := os.MkdirAll(tmp, 0o700); err != nil {
		return nil, fmt.Errorf("create %q: %w", tmp, err)
	}
	// One ssh connection for the whole migration (its socket in the
	// private tmp): no key exchange inside the frozen window. Without it
	// every command connects on its own, as before.
	if mux, closeMux, err := remote.Multiplex(ctx, tmp); err == nil {
		defer closeMux()
		remote = mux
		dst.R = remote
	} else {
		w := fmt.Sprintf("%v; each command connects on its own", err)
		log.Warn(w)
		em.send(event{Type: evWarning, Text: w})
	}
	defer func() {
		_, _ = remote.Run(context.Background(), nil, "rm", "-rf", "--", dstTmp)
		if err := os.RemoveAll(tmp); err != nil && !errors.Is(err, fs.ErrNotExist) {
			log.Warn("remove the migration's tmp directory", "dir", tmp, "err", err)
		}
	}()
	timer := orchestrate.NewPhaseTimer(nil)
	s, err := orchestrate.Run(ctx, src, dst, orchestrate.Options{Container: o.Container, Mode: o.Mode, Port: o.Port, MigrationID: o.MigrationID,
		Timeouts: o.Timeouts, RemoveSource: o.RemoveSource, OnPhase: func(p orchestrate.Phase) {
			timer.Enter(p)
			em.phase(p)
		}, OnPages: func(moved int64) { em.send(event{Type: evPages, Moved: moved}) },
		Policy: precopyPolicy(o.MaxDowntime), Final: o.Final})
	s.Mode, s.Decision = string(o.Mode), o.Decision
	s.PhasesMS = timer.Took()
	if err != nil {
		return summary(s), fmt.Errorf("%w\nsource: %s\ndestination: %s", err, s.SourceState, s.DestinationState)
	}
	return summary(s), nil
}
