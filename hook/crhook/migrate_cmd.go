package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/crhook/crhook/config"
	"github.com/crhook/crhook/engine/doctor"
	"github.com/crhook/crhook/engine/migrate"
	"github.com/crhook/crhook/engine/migrate/orchestrate"
	"github.com/crhook/crhook/engine/migrate/pki"
)

type migrateFlags struct {
	mode, format, sshConfig    string
	dryRun, rm                 bool
	connect, noProgress, total time.Duration
	maxDowntime                time.Duration
	port                       int
	final                      string // precopy's final dump (migrate_precopy.go)
}

// newMigrateCmd is `crhook migrate CONTAINER DESTINATION`.
func newMigrateCmd() *cobra.Command {
	var f migrateFlags
	c := &cobra.Command{
		Use:   "migrate CONTAINER DESTINATION",
		Short: "Move a running container to another host (auto; lazy: post-copy; stream; precopy)",
		Long: `Move a running podman container to DESTINATION (ssh://[user@]host[:port] or a
podman system connection name), where it runs under the same name. With
--mode auto (the default) crhook first measures, while the container runs,
its memory, its working set, the bandwidth to DESTINATION and what both
hosts support, and picks the mode built here with the lowest predicted
downtime; --dry-run shows the facts and the reason. In lazy mode the
container is dumped without its memory; the destination runs it at once and
faults every page in from the source's CRIU page server, over TLS with
certificates made for this migration. With --mode stream the container is
paused and dumped straight into a CRIU page server on the destination (TLS
too); the destination restores once every page arrived. With --mode precopy
(where CRIU can track dirty pages) the container keeps running through
pre-dump rounds into page servers on the destination, each sending what
changed since the round before, until the predicted final downtime fits in
--max-downtime or the rounds stop shrinking; then a streamed final dump
sends the rest (with --final lazy a lazy one: the destination runs at once
and faults in what changed since the last round). crhook must be
installed on both hosts and be podman's runtime there; ssh carries the
control channel.

Until the destination runs, any failure restores the container on the source
and removes the destination's copy. After that, a broken page stream kills
the destination rather than let it read a missing page as zeros, and the
message says what the source holds. On success the source container is left
stopped (removed with --rm). See docs/migration.md.`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runMigrate(cmd, args[0], args[1], f)
		},
	}
	fl := c.Flags()
	fl.StringVar(&f.mode, "mode", "auto", "how memory moves: auto (chosen from facts measured first), lazy (post-copy), stream (the dump goes into a page server on the destination) or precopy (pre-dump rounds while it runs, then a streamed dump)")
	fl.DurationVar(&f.maxDowntime, "max-downtime", defaultMaxDowntime, "the downtime budget: auto weighs its choice against it, precopy's rounds stop once the final dump is predicted within it")
	fl.BoolVar(&f.dryRun, "dry-run", false, "say what would happen and the facts it was decided on; change nothing")
	fl.BoolVar(&f.rm, "rm", false, "remove the source container once the migration committed")
	fl.StringVar(&f.sshConfig, "ssh-config", "", "ssh client config file for the control channel (ssh -F)")
	fl.DurationVar(&f.connect, "connect-timeout", 30*time.Second, "how long ssh and the destination's lazy-pages daemon may take to connect")
	fl.DurationVar(&f.noProgress, "no-progress-timeout", 60*time.Second, "how long the page stream may stall before the migration fails")
	fl.DurationVar(&f.total, "timeout", 30*time.Minute, "the whole migration; the page server is killed after it")
	fl.IntVar(&f.port, "port", 0, "the page server's TCP port: on this host for lazy and precopy --final lazy, on the destination for stream and precopy (0: an ephemeral one)")
	fl.StringVar(&f.final, "final", "stream", "precopy's final dump after the rounds: stream (into a page server on the destination) or lazy (post-copy: the destination runs at once and faults in what changed since the last round)")
	addFormatFlag(c, &f.format, "docs/migration.md")
	return c
}

// dryRun is what --dry-run prints: the decision and its facts.
type dryRun struct {
	Container   string              `json:"container"`
	ID          string              `json:"id"`
	Running     bool                `json:"running"`
	Destination migrate.Destination `json:"destination"`
	Mode        string              `json:"mode"`
	Decision    string              `json:"decision"`
	PageServer  migrate.PageServer  `json:"page_server"`
	Timeouts    migrate.Timeouts    `json:"timeouts"`
	Facts       map[string]string   `json:"facts"`
	// Measured is what --mode auto measured and decided on.
	Measured *measured `json:"measured,omitempty"`
	Steps    []string  `json:"steps"`
}

func runMigrate(cmd *cobra.Command, name, destArg string, f migrateFlags) error {
	if err := checkFormat(f.format); err != nil {
		return err
	}
	mode, err := migrate.ParseMode(f.mode)
	if err != nil {
		return err
	}
	final, err := parseFinal(f.final, mode)
	if err != nil {
		return err
	}
	if f.connect <= 0 || f.noProgress <= 0 || f.total <= 0 || f.maxDowntime <= 0 {
		return errors.New("--connect-timeout, --no-progress-timeout, --timeout and --max-downtime must be positive")
	}
	if mode == migrate.ModePrecopy {
		if err := precopyPrecondition(context.Background()); err != nil {
			return err
		}
	}
	home, _ := os.UserHomeDir()
	dest, err := migrate.ParseDestination(destArg, migrate.PodmanConnectionSearch(os.Getenv, os.Getuid(), home))
	if err != nil {
		return err
	}
	settings, err := config.LoadSettings(paths())
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	// An interrupt is honoured between steps, never inside one (the
	// orchestrator's commands run in their own process groups): before
	// the destination runs it rolls back, after it the migration ends.
	// Once the worker runs the migration, the signal is forwarded to it
	// (workerProc.follow); this notice is printed either way.
	finished := make(chan struct{})
	defer close(finished)
	go func() {
		select {
		case <-ctx.Done():
			fmt.Fprintln(os.Stderr, "\ncrhook migrate: interrupted: the step under way finishes; then, if the destination has not run yet, the container is rolled back to this host, otherwise the migration completes")
		case <-finished:
		}
	}()

	var sshOpts []string
	if f.sshConfig != "" {
		sshOpts = []string{"-F", f.sshConfig}
	}
	self, err := os.Executable()
	if err != nil {
		return fmt.Errorf("find crhook's own binary: %w", err)
	}
	migID := newMigrationID()
	// The foreground measures (auto) and inspects, nothing more: the
	// worker (migrate_worker.go) builds its own hosts for the migration.
	tmp := filepath.Join("/var/tmp", "crhook-migrate-"+migID)
	src := &orchestrate.PodmanHost{R: orchestrate.Local{}, Crhook: self, TmpDir: tmp}
	remote := orchestrate.SSH{Dest: dest, Options: sshOpts, ConnectTimeout: f.connect}
	dst := &orchestrate.PodmanHost{R: remote, Crhook: "crhook", TmpDir: tmp + "-in"}
	port := f.port
	timeouts := migrate.Timeouts{Connect: migrate.Duration(f.connect), NoProgress: migrate.Duration(f.noProgress), Total: migrate.Duration(f.total)}
	out := cmd.OutOrStdout()

	if f.dryRun {
		return printDryRun(ctx, out, f, mode, name, dest, src, dst, port, timeouts)
	}
	decision, auto, err := resolveMode(ctx, &mode, src, dst, name, f)
	if err != nil {
		return err
	}
	if err := precopyLazyFinal(ctx, mode, final, src, dst, name, &port); err != nil {
		return err
	}
	if mode == migrate.ModeLazy {
		if err := lazyPrecondition(); err != nil {
			return err
		}
		if port == 0 { // stream: the destination's agent picks one
			if port, err = ephemeralPort(); err != nil {
				return err
			}
		}
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("interrupted (%w) before the migration started; nothing was touched", err)
	}
	onPhase, onPages, stopProgress := terminalProgress(ctx, src, name, auto)
	defer stopProgress()
	o := workerOptions{Container: name, Destination: dest, SSHOptions: sshOpts, Mode: mode, Decision: decision, Port: port,
		MigrationID: migID, Timeouts: timeouts, RemoveSource: f.rm, MaxDowntime: f.maxDowntime, Final: final, Measured: auto,
		Dir: workerDir(settings.StateDir, migID)}
	w, err := startWorker(self, o)
	if err != nil {
		return err
	}
	if !isTerminal(os.Stderr) {
		// Where to look should this process be killed: the worker goes on.
		fmt.Fprintf(os.Stderr, "crhook migrate: migration %s: worker pid %d, log %s, summary %s\n", migID, w.cmd.Process.Pid,
			filepath.Join(o.Dir, workerLogFile), filepath.Join(o.Dir, workerSummaryFile))
	}
	ev, err := w.follow(eventHandler{phase: onPhase, pages: onPages, warn: func(text string) {
		stopProgress()
		fmt.Fprintf(os.Stderr, "crhook migrate: warning: %s\n", text)
	}})
	stopProgress()
	if err != nil {
		if f.format == "json" {
			s := &orchestrate.Summary{Container: name, MigrationID: migID, Mode: string(mode), Decision: decision,
				SourceState: "unknown", DestinationState: "unknown", Error: err.Error()}
			if jerr := writeJSON(out, migrateSummary{Summary: s, Measured: auto}); jerr != nil {
				return errors.Join(err, jerr)
			}
		}
		return err
	}
	s := ev.Summary
	if f.format == "json" {
		if jerr := writeJSON(out, s); jerr != nil {
			return errors.Join(errorText(ev.Error), jerr)
		}
	} else if ev.Error == "" {
		if auto != nil {
			fmt.Fprintf(out, "auto chose %s\n", decision)
		}
		for _, r := range s.Rounds {
			fmt.Fprintf(out, "pre-copy round %d: %d bytes in %d ms; %s: %s\n", r.Round, r.Bytes, r.MS, r.Decision, r.Reason)
		}
		pages := ""
		if mode != migrate.ModeLazy && s.FinalDump != migrate.ModeLazy {
			pages = fmt.Sprintf(", %d bytes of pages streamed", s.PageBytes)
		}
		fmt.Fprintf(out, "container %s moved to %s (%s): downtime under %d ms, %d bytes of image%s; source %s\n",
			name, dest, mode, s.DowntimeMS, s.ImageBytes, pages, s.SourceState)
	}
	return errorText(ev.Error)
}

// errorText is the worker's error, "" none.
func errorText(text string) error {
	if text == "" {
		return nil
	}
	return errors.New(text)
}

// rolesFor says which end runs the page server, and so holds the TLS
// server's key: the source for lazy and a pre-copy's lazy final dump (the
// destination's lazy-pages daemon fetches from it), the destination for
// stream and a pre-copy's streamed final (the dump goes into it).
func rolesFor(mode, final migrate.Mode) (src, dst pki.Role) {
	if mode == migrate.ModeStream || mode == migrate.ModePrecopy && final != migrate.ModeLazy {
		return pki.RoleClient, pki.RoleServer
	}
	return pki.RoleServer, pki.RoleClient
}

// lazyPrecondition refuses a lazy dump that would fail on its first
// page request (DESIGN.md facts), with the fix: doctor's migrate.lazy_pipe
// rule, the one copy of it.
func lazyPrecondition() error {
	res, ok := findResult(localMigrateChecks(context.Background()).Results, "migrate.lazy_pipe")
	if !ok || (res.Status != doctor.Warn && res.Status != doctor.Fail) {
		return nil // ok, or it could not tell: CRIU will say
	}
	return fmt.Errorf("a lazy dump would fail on this host: %s; run: %s", strings.Join(res.Evidence, "; "), res.Fix)
}

func printDryRun(ctx context.Context, w io.Writer, f migrateFlags, mode migrate.Mode, name string, dest migrate.Destination,
	src, dst *orchestrate.PodmanHost, port int, t migrate.Timeouts,
) error {
	d := dryRun{Container: name, Destination: dest, Timeouts: t, Facts: map[string]string{}}
	c, err := src.Inspect(ctx, name)
	if err != nil {
		return err
	}
	d.ID, d.Running = c.ID, c.Running
	addrs, err := dst.Addresses(ctx)
	if err != nil {
		return err
	}
	if res, ok := findResult(localMigrateChecks(ctx).Results, "migrate.lazy_pipe"); ok {
		d.Facts["migrate.lazy_pipe"] = string(res.Status) + ": " + strings.Join(res.Evidence, "; ")
	}
	if err := lazyPrecondition(); err != nil {
		d.Facts["lazy_dump"] = "would fail: " + err.Error()
	} else {
		d.Facts["lazy_dump"] = "possible"
	}
	decision, auto, err := resolveMode(ctx, &mode, src, dst, name, f)
	if err != nil && auto == nil {
		return err
	}
	d.Mode, d.Decision, d.Measured = string(mode), decision, auto
	d.PageServer = migrate.PageServer{Address: addrs.Source, Port: port}
	if mode == migrate.ModeStream || mode == migrate.ModePrecopy {
		d.PageServer.Address = addrs.Destination
	}
	if err != nil {
		// Measured, but no mode can run: show the facts, then fail.
		d.Mode, d.Decision = "none", err.Error()
		return errors.Join(writeDryRun(w, f.format, d), err)
	}
	d.Steps = dryRunSteps(mode, name, dest, c.ID, d.PageServer, f.rm)
	if mode == migrate.ModePrecopy {
		d.Steps = precopyDryRunSteps(name, dest, c.ID, d.PageServer, precopyPolicy(f.maxDowntime), f.rm, precopyFinalFact(ctx, f, addrs, src, dst, name, d.Facts))
	}
	return writeDryRun(w, f.format, d)
}

func newMigrationID() string {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// ephemeralPort asks the kernel for a free port; the page server takes
// it a moment later.
func ephemeralPort() (int, error) {
	l, err := net.Listen("tcp", ":0")
	if err != nil {
		return 0, fmt.Errorf("pick a port for the page server: %w", err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	return port, l.Close()
}

func isTerminal(f *os.File) bool {
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// newMigrateAgentCmd is the far end of the control channel; hidden, run
// by `crhook migrate` over ssh (and locally).
func newMigrateAgentCmd() *cobra.Command {
	c := &cobra.Command{Use: "migrate-agent", Hidden: true, Short: "crhook migrate's helper on each host"}
	stateDir := func() (string, error) {
		s, err := config.LoadSettings(paths())
		if err != nil {
			return "", err
		}
		return s.StateDir, nil
	}
	c.AddCommand(&cobra.Command{Use: "prepare ID", Args: cobra.ExactArgs(1), RunE: func(cmd *cobra.Command, a []string) error {
		d, err := stateDir()
		if err != nil {
			return err
		}
		return orchestrate.AgentPrepare(d, a[0], cmd.InOrStdin())
	}}, &cobra.Command{Use: "fail ID REASON", Args: cobra.ExactArgs(2), RunE: func(_ *cobra.Command, a []string) error {
		d, err := stateDir()
		if err != nil {
			return err
		}
		return orchestrate.AgentFail(d, a[0], a[1])
	}}, &cobra.Command{Use: "serve ID", Args: cobra.ExactArgs(1), RunE: func(cmd *cobra.Command, a []string) error {
		d, err := stateDir()
		if err != nil {
			return err
		}
		port, err := orchestrate.AgentServe(d, a[0], cmd.InOrStdin())
		if err != nil {
			return err
		}
		return writeJSON(cmd.OutOrStdout(), map[string]int{"port": port})
	}}, &cobra.Command{Use: "progress ROLE MIGRATION", Args: cobra.ExactArgs(2), RunE: func(cmd *cobra.Command, a []string) error {
		d, err := stateDir()
		if err != nil {
			return err
		}
		p, err := orchestrate.AgentProgress(d, a[0], a[1])
		if err != nil {
			return err
		}
		return writeJSON(cmd.OutOrStdout(), p)
	}}, &cobra.Command{Use: "abort ID MIGRATION", Args: cobra.ExactArgs(2), RunE: func(_ *cobra.Command, a []string) error {
		d, err := stateDir()
		if err != nil {
			return err
		}
		return orchestrate.AgentAbort(d, a[0], a[1])
	}}, &cobra.Command{Use: "cleanup ID MIGRATION", Args: cobra.ExactArgs(2), RunE: func(_ *cobra.Command, a []string) error {
		d, err := stateDir()
		if err != nil {
			return err
		}
		return orchestrate.AgentCleanup(d, a[0], a[1])
	}})
	c.AddCommand(precopyAgentCmds(stateDir)...)
	c.AddCommand(newWorkerCmd())
	return c
}
