package main

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/crhook/crhook/engine/doctor"
	"github.com/crhook/crhook/engine/migrate"
	"github.com/crhook/crhook/engine/migrate/orchestrate"
)

// precopyPrecondition refuses pre-copy where CRIU cannot track dirty
// pages (doctor's migrate.soft_dirty, `criu check --feature
// mem_dirty_track`): every pre-dump would fail. A check that could not
// run blocks nothing: podman and CRIU will say.
func precopyPrecondition(ctx context.Context) error {
	res, ok := findResult(localMigrateChecks(ctx).Results, "migrate.soft_dirty")
	if !ok || (res.Status != doctor.Warn && res.Status != doctor.Fail) {
		return nil
	}
	return fmt.Errorf("--mode precopy needs CRIU's dirty-page tracking on this host, and it has none: %s; use --mode stream or lazy (or auto)",
		strings.Join(res.Evidence, "; "))
}

// precopyPolicy is the stop rule `crhook migrate --mode precopy` runs:
// the default one with --max-downtime as its budget.
func precopyPolicy(maxDowntime time.Duration) migrate.Policy {
	p := migrate.DefaultPolicy
	p.MaxDowntime = maxDowntime
	return p
}

// parseFinal reads --final: stream (the default) or lazy, and lazy only
// with --mode precopy, the one mode with a final dump after rounds.
func parseFinal(s string, mode migrate.Mode) (migrate.Mode, error) {
	switch final := migrate.Mode(s); {
	case final != migrate.ModeStream && final != migrate.ModeLazy:
		return "", fmt.Errorf("--final %q: want stream or lazy", s)
	case final == migrate.ModeLazy && mode != migrate.ModePrecopy:
		return "", fmt.Errorf("--final lazy is precopy's final dump after its rounds: use it with --mode precopy, not %s (--mode lazy is post-copy alone)", mode)
	default:
		return final, nil
	}
}

// precopyLazyFinal readies a pre-copy whose final dump is lazy: refused
// where post-copy cannot run (finalLazyRefusal); like --mode lazy, the
// source's page server port is picked here when --port is 0. (The source
// then holds the TLS server's key: rolesFor.)
func precopyLazyFinal(ctx context.Context, mode, final migrate.Mode, src, dst *orchestrate.PodmanHost, name string, port *int) error {
	if mode != migrate.ModePrecopy || final != migrate.ModeLazy {
		return nil
	}
	local := localMigrateChecks(ctx)
	rt, _ := sourceRuntime(ctx, src, name, local)
	remote, remoteErr := runRemoteChecks(ctx, dst)
	if err := finalLazyRefusal(local, rt, remote, remoteErr); err != nil {
		return err
	}
	if *port == 0 {
		p, err := ephemeralPort()
		if err != nil {
			return err
		}
		*port = p
	}
	return nil
}

// finalLazyRefusal is why a lazy final dump cannot run between these
// hosts, or nil: doctor's checks on both read as for --mode lazy and
// auto (checkModes, the one copy of the rule: userfaultfd on both ends,
// pipes CRIU can grow for the source's page server, runc and not crun).
// Checks that could not run block nothing: CRIU will say. srcRuntime is
// the container's runtime here (sourceRuntime).
func finalLazyRefusal(local *doctor.Report, srcRuntime string, remote *remoteDoctor, remoteErr error) error {
	if mc := checkModes(local.Results, srcRuntime, remote, remoteErr); !mc.lazy {
		return fmt.Errorf("--final lazy needs post-copy on both hosts, and it cannot run: %s; use --final stream", mc.noLazy)
	}
	return nil
}

// precopyFinal is the final dump --dry-run describes: its mode and, when
// lazy, the source's page server.
type precopyFinal struct {
	mode migrate.Mode
	ps   migrate.PageServer
}

// precopyFinalFact is the final dump --dry-run describes; it adds to facts
// whether a lazy one could run (final_dump).
func precopyFinalFact(ctx context.Context, f migrateFlags, addrs orchestrate.Addresses, src, dst *orchestrate.PodmanHost, name string, facts map[string]string) precopyFinal {
	fin := precopyFinal{mode: migrate.Mode(f.final), ps: migrate.PageServer{Address: addrs.Source, Port: f.port}}
	if fin.mode != migrate.ModeLazy {
		facts["final_dump"] = "stream"
		return fin
	}
	local := localMigrateChecks(ctx)
	rt, _ := sourceRuntime(ctx, src, name, local)
	remote, remoteErr := runRemoteChecks(ctx, dst)
	if err := finalLazyRefusal(local, rt, remote, remoteErr); err != nil {
		facts["final_dump"] = "lazy: refused: " + err.Error()
	} else {
		facts["final_dump"] = "lazy: possible"
	}
	return fin
}

// precopyDryRunSteps are the steps --dry-run lists for precopy.
func precopyDryRunSteps(name string, dest migrate.Destination, id string, ps migrate.PageServer, p migrate.Policy, rm bool, fin precopyFinal) []string {
	removed := map[bool]string{true: " and remove it", false: ""}[rm]
	steps := []string{
		"make a CA and page-server/client certificates for this migration; send the page server's to the destination over ssh",
		fmt.Sprintf("round N = 1, 2, ...: start criu page-server (TLS) on %s for round N (parent: round N-1), write the plan for %s on both hosts; "+
			"podman container checkpoint --pre-checkpoint %s: crhook-runtime runs runc checkpoint --pre-dump --page-server --parent-path (round N-1): "+
			"the pages dirtied since round N-1 go to the destination, the container keeps running", ps.Address, id, name),
		fmt.Sprintf("after each round the stop rule decides: stop when the last round's bytes at the measured rate fit in %v, "+
			"when a round is less than %.0f%% smaller than the one before, or after %d rounds", p.MaxDowntime, p.MinShrink*100, p.MaxRounds),
	}
	if fin.mode == migrate.ModeLazy {
		port := "an ephemeral port"
		if fin.ps.Port != 0 {
			port = "port " + strconv.Itoa(fin.ps.Port)
		}
		return append(steps,
			"final dump lazy (--final lazy): make a second CA and certificates, the source's page server's this time; send the lazy-pages daemon's to the destination over ssh; write the final plan (the last round as parent) on both hosts",
			fmt.Sprintf("podman container checkpoint --keep --compress none --export FILE %s: crhook-runtime pauses it and runs runc checkpoint --lazy-pages --page-server %s (%s) --parent-path (last round): "+
				"it returns once that page server (TLS) is up, holding what changed since the last round; the dumped tasks stay frozen here", name, fin.ps.Address, port),
			"copy FILE (no pages in it) to "+dest.String(),
			"podman container restore --import FILE there: crhook-runtime links the last round as the parent, starts criu lazy-pages (TLS, fetching from this host) and runc restore --lazy-pages: the container runs at once",
			"wait until every page moved (a broken page stream kills the destination: no page is read as zeros), then leave the source stopped"+removed,
		)
	}
	return append(steps,
		fmt.Sprintf("podman container checkpoint --keep --compress none --export FILE %s: crhook-runtime pauses it and runs runc checkpoint --leave-running --page-server --parent-path (last round): what changed since goes to the destination, the dumped tasks stay frozen here", name),
		"wait until the destination's page server exited 0 (every page arrived)",
		"copy FILE (no pages in it) to "+dest.String(),
		"podman container restore --import FILE there: crhook-runtime adds the final pages, links the last round as their parent and restores",
		"delete the frozen tasks here, leave the source stopped"+removed,
	)
}

// precopyAgentCmds are migrate-agent's pre-copy subcommands.
func precopyAgentCmds(stateDir func() (string, error)) []*cobra.Command {
	return []*cobra.Command{{Use: "serve-round ID ROUND LAST", Args: cobra.ExactArgs(3), RunE: func(cmd *cobra.Command, a []string) error {
		d, err := stateDir()
		if err != nil {
			return err
		}
		n, err1 := strconv.Atoi(a[1])
		last, err2 := strconv.Atoi(a[2])
		if err1 != nil || err2 != nil {
			return fmt.Errorf("serve-round: round %q and last %q must be numbers", a[1], a[2])
		}
		port, err := orchestrate.AgentServeRound(d, a[0], n, last, cmd.InOrStdin())
		if err != nil {
			return err
		}
		return writeJSON(cmd.OutOrStdout(), map[string]int{"port": port})
	}}, {Use: "replan ID", Args: cobra.ExactArgs(1), RunE: func(cmd *cobra.Command, a []string) error {
		d, err := stateDir()
		if err != nil {
			return err
		}
		return orchestrate.AgentReplan(d, a[0], cmd.InOrStdin())
	}}, {Use: "round-progress MIGRATION ROUND", Args: cobra.ExactArgs(2), RunE: func(cmd *cobra.Command, a []string) error {
		d, err := stateDir()
		if err != nil {
			return err
		}
		n, err := strconv.Atoi(a[1])
		if err != nil || n < 1 {
			return fmt.Errorf("round-progress: round %q is not a round number", a[1])
		}
		p, err := orchestrate.AgentRoundProgress(d, a[0], n)
		if err != nil {
			return err
		}
		return writeJSON(cmd.OutOrStdout(), p)
	}}}
}
