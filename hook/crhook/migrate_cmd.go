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
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/crhook/crhook/config"
	"github.com/crhook/crhook/engine/migrate"
	"github.com/crhook/crhook/engine/migrate/orchestrate"
	"github.com/crhook/crhook/engine/migrate/pki"
)

// lazyPipeMaxSize is what a lazy dump needs without CAP_SYS_RESOURCE
// (DESIGN.md, facts): CRIU grows its page pipes to 4 MiB.
const lazyPipeMaxSize = 4 << 20

type migrateFlags struct {
	mode, format, sshConfig    string
	dryRun, rm                 bool
	connect, noProgress, total time.Duration
	port                       int
}

// newMigrateCmd is `crhook migrate CONTAINER DESTINATION`.
func newMigrateCmd() *cobra.Command {
	var f migrateFlags
	c := &cobra.Command{
		Use:   "migrate CONTAINER DESTINATION",
		Short: "Move a running container to another host (lazy: post-copy)",
		Long: `Move a running podman container to DESTINATION (ssh://[user@]host[:port] or a
podman system connection name), where it runs under the same name. The
container is dumped without its memory; the destination runs it at once and
faults every page in from the source's CRIU page server, over TLS with
certificates made for this migration. crhook must be installed on both hosts
and be podman's runtime there; ssh carries the control channel.

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
	fl.StringVar(&f.mode, "mode", "lazy", "how memory moves: lazy (stream, precopy and auto are not built yet)")
	fl.BoolVar(&f.dryRun, "dry-run", false, "say what would happen and the facts it was decided on; change nothing")
	fl.BoolVar(&f.rm, "rm", false, "remove the source container once the migration committed")
	fl.StringVar(&f.sshConfig, "ssh-config", "", "ssh client config file for the control channel (ssh -F)")
	fl.DurationVar(&f.connect, "connect-timeout", 30*time.Second, "how long ssh and the destination's lazy-pages daemon may take to connect")
	fl.DurationVar(&f.noProgress, "no-progress-timeout", 60*time.Second, "how long the page stream may stall before the migration fails")
	fl.DurationVar(&f.total, "timeout", 30*time.Minute, "the whole migration; the page server is killed after it")
	fl.IntVar(&f.port, "port", 0, "the page server's TCP port on this host (0: an ephemeral one)")
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
	Steps       []string            `json:"steps"`
}

func runMigrate(cmd *cobra.Command, name, destArg string, f migrateFlags) error {
	if err := checkFormat(f.format); err != nil {
		return err
	}
	mode, err := migrate.ParseMode(f.mode)
	if err != nil {
		return err
	}
	if mode != migrate.ModeLazy {
		return fmt.Errorf("--mode %s is not built yet; use --mode lazy (docs/migration.md says what is missing)", mode)
	}
	if f.connect <= 0 || f.noProgress <= 0 || f.total <= 0 {
		return errors.New("--connect-timeout, --no-progress-timeout and --timeout must be positive")
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

	var sshOpts []string
	if f.sshConfig != "" {
		sshOpts = []string{"-F", f.sshConfig}
	}
	self, err := os.Executable()
	if err != nil {
		return fmt.Errorf("find crhook's own binary: %w", err)
	}
	migID := newMigrationID()
	tmp := filepath.Join("/var/tmp", "crhook-migrate-"+migID)
	src := &orchestrate.PodmanHost{R: orchestrate.Local{}, Crhook: self, TmpDir: tmp, Role: pki.RoleServer}
	remote := orchestrate.SSH{Dest: dest, Options: sshOpts, ConnectTimeout: f.connect}
	// Not the source's directory: where both hosts share /var/tmp (two
	// podman stores on one machine, the test bed) the copy would
	// truncate the archive it reads.
	dstTmp := tmp + "-in"
	dst := &orchestrate.PodmanHost{R: remote, Crhook: "crhook", TmpDir: dstTmp, Role: pki.RoleClient}
	port := f.port
	if port == 0 {
		if port, err = ephemeralPort(); err != nil {
			return err
		}
	}
	timeouts := migrate.Timeouts{Connect: migrate.Duration(f.connect), NoProgress: migrate.Duration(f.noProgress), Total: migrate.Duration(f.total)}
	out := cmd.OutOrStdout()

	if f.dryRun {
		return printDryRun(ctx, out, f, name, dest, src, dst, port, timeouts)
	}
	if err := lazyPrecondition(); err != nil {
		return err
	}
	if err := os.MkdirAll(tmp, 0o700); err != nil {
		return fmt.Errorf("create %q: %w", tmp, err)
	}
	// One ssh connection for the whole migration (its socket in the
	// private tmp): no key exchange inside the frozen window. Without it
	// every command connects on its own, as before.
	if mux, closeMux, err := remote.Multiplex(ctx, tmp); err == nil {
		defer closeMux()
		remote = mux
		dst.R = remote
	} else {
		fmt.Fprintf(os.Stderr, "crhook migrate: warning: %v; each command connects on its own\n", err)
	}
	defer func() {
		_, _ = remote.Run(context.Background(), nil, "rm", "-rf", "--", dstTmp)
		_ = os.RemoveAll(tmp)
	}()
	_ = settings // the agent on each host reads its own state_dir
	// Progress on a terminal only: phases as they start, then the bytes
	// the CRIU processes moved and the rate, on one rewritten line.
	var onPhase func(orchestrate.Phase)
	var onPages func(int64)
	if isTerminal(os.Stderr) {
		start := time.Now()
		var pagesStart time.Time
		onPhase = func(p orchestrate.Phase) {
			if p == orchestrate.PhasePages {
				pagesStart = time.Now()
			}
			fmt.Fprintf(os.Stderr, "\ncrhook migrate: %-10s at %5.1fs", p, time.Since(start).Seconds())
		}
		onPages = func(moved int64) {
			secs := time.Since(pagesStart).Seconds()
			rate := 0.0
			if secs > 0 {
				rate = float64(moved) / secs / (1 << 20)
			}
			fmt.Fprintf(os.Stderr, "\rcrhook migrate: pages      %8.1f MiB of CRIU I/O, %6.1f MiB/s", float64(moved)/(1<<20), rate)
		}
		defer fmt.Fprintln(os.Stderr)
	}
	timer := orchestrate.NewPhaseTimer(nil)
	s, err := orchestrate.Run(ctx, src, dst, orchestrate.Options{Container: name, Port: port, MigrationID: migID,
		Timeouts: timeouts, RemoveSource: f.rm, OnPhase: func(p orchestrate.Phase) {
			timer.Enter(p)
			if onPhase != nil {
				onPhase(p)
			}
		}, OnPages: onPages})
	s.PhasesMS = timer.Took()
	if f.format == "json" {
		if jerr := writeJSON(out, s); jerr != nil {
			return errors.Join(err, jerr)
		}
	} else if err == nil {
		fmt.Fprintf(out, "container %s moved to %s lazily: downtime under %d ms, %d bytes of image; source %s\n",
			name, dest, s.DowntimeMS, s.ImageBytes, s.SourceState)
	}
	if err != nil {
		return fmt.Errorf("%w\nsource: %s\ndestination: %s", err, s.SourceState, s.DestinationState)
	}
	return nil
}

// lazyPrecondition refuses a lazy dump that would fail on its first
// page request (DESIGN.md facts), with the fix.
func lazyPrecondition() error {
	data, err := os.ReadFile("/proc/sys/fs/pipe-max-size")
	if err != nil {
		return nil // not Linux's procfs: CRIU will say
	}
	n, _ := strconv.Atoi(strings.TrimSpace(string(data)))
	if n >= lazyPipeMaxSize || hasCapSysResource() {
		return nil
	}
	return fmt.Errorf("a lazy dump needs fs.pipe-max-size >= %d without CAP_SYS_RESOURCE (it is %d): CRIU would fail on the first page request; run: sysctl -w fs.pipe-max-size=%d",
		lazyPipeMaxSize, n, lazyPipeMaxSize)
}

func hasCapSysResource() bool {
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return false
	}
	for _, l := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(l, "CapEff:"); ok {
			c, err := strconv.ParseUint(strings.TrimSpace(v), 16, 64)
			return err == nil && c&(1<<24) != 0 // CAP_SYS_RESOURCE
		}
	}
	return false
}

func printDryRun(ctx context.Context, w io.Writer, f migrateFlags, name string, dest migrate.Destination,
	src, dst *orchestrate.PodmanHost, port int, t migrate.Timeouts,
) error {
	d := dryRun{Container: name, Destination: dest, Mode: "lazy", Decision: "lazy: asked for with --mode lazy",
		Timeouts: t, Facts: map[string]string{}}
	c, err := src.Inspect(ctx, name)
	if err != nil {
		return err
	}
	d.ID, d.Running = c.ID, c.Running
	addr, err := dst.PageServerAddress(ctx)
	if err != nil {
		return err
	}
	d.PageServer = migrate.PageServer{Address: addr, Port: port}
	if data, err := os.ReadFile("/proc/sys/fs/pipe-max-size"); err == nil {
		d.Facts["fs.pipe-max-size"] = strings.TrimSpace(string(data))
	}
	d.Facts["cap_sys_resource"] = strconv.FormatBool(hasCapSysResource())
	if err := lazyPrecondition(); err != nil {
		d.Facts["lazy_dump"] = "would fail: " + err.Error()
	} else {
		d.Facts["lazy_dump"] = "possible"
	}
	d.Steps = []string{
		"make a CA and page-server/client certificates for this migration; send the client's to the destination over ssh",
		fmt.Sprintf("write the migration plan for %s on both hosts", c.ID),
		fmt.Sprintf("podman container checkpoint --keep --compress none --export FILE %s: crhook-runtime dumps lazily and leaves a page server on %s", name, d.PageServer),
		"copy FILE (no pages in it) to " + dest.String(),
		"podman container restore --import FILE there: crhook-runtime starts criu lazy-pages and runc restore --lazy-pages",
		"wait until every page moved, then leave the source stopped" + map[bool]string{true: " and remove it", false: ""}[f.rm],
	}
	if f.format == "json" {
		return writeJSON(w, d)
	}
	fmt.Fprintf(w, "would migrate %s (%s, running: %v) to %s, mode %s (%s)\n", name, c.ID, c.Running, dest, d.Mode, d.Decision)
	fmt.Fprintf(w, "page server: %s; timeouts: connect %s, no progress %s, total %s\n", d.PageServer,
		time.Duration(t.Connect), time.Duration(t.NoProgress), time.Duration(t.Total))
	for _, k := range []string{"fs.pipe-max-size", "cap_sys_resource", "lazy_dump"} {
		fmt.Fprintf(w, "fact: %s = %s\n", k, d.Facts[k])
	}
	for i, s := range d.Steps {
		fmt.Fprintf(w, "%d. %s\n", i+1, s)
	}
	return nil
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
	return c
}
