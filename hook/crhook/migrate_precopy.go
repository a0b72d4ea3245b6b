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

// precopyDryRunSteps are the steps --dry-run lists for precopy.
func precopyDryRunSteps(name string, dest migrate.Destination, id string, ps migrate.PageServer, p migrate.Policy, rm bool) []string {
	removed := map[bool]string{true: " and remove it", false: ""}[rm]
	return []string{
		"make a CA and page-server/client certificates for this migration; send the page server's to the destination over ssh",
		fmt.Sprintf("round N = 1, 2, ...: start criu page-server (TLS) on %s for round N (parent: round N-1), write the plan for %s on both hosts; "+
			"podman container checkpoint --pre-checkpoint %s: crhook-runtime runs runc checkpoint --pre-dump --page-server --parent-path (round N-1): "+
			"the pages dirtied since round N-1 go to the destination, the container keeps running", ps.Address, id, name),
		fmt.Sprintf("after each round the stop rule decides: stop when the last round's bytes at the measured rate fit in %v, "+
			"when a round is less than %.0f%% smaller than the one before, or after %d rounds", p.MaxDowntime, p.MinShrink*100, p.MaxRounds),
		fmt.Sprintf("podman container checkpoint --keep --compress none --export FILE %s: crhook-runtime pauses it and runs runc checkpoint --leave-running --page-server --parent-path (last round): what changed since goes to the destination, the dumped tasks stay frozen here", name),
		"wait until the destination's page server exited 0 (every page arrived)",
		"copy FILE (no pages in it) to " + dest.String(),
		"podman container restore --import FILE there: crhook-runtime adds the final pages, links the last round as their parent and restores",
		"delete the frozen tasks here, leave the source stopped" + removed,
	}
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
