package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/crhook/crhook/engine/doctor"
	"github.com/crhook/crhook/engine/migrate"
)

// remoteTimeout bounds the whole far-end run: its criu probes take a
// second; a destination that hangs must not hang doctor.
const remoteTimeout = 2 * time.Minute

// newDoctorCmd is `crhook doctor`: one run says whether checkpoint/restore
// will work on this host and how to fix what will not. Its exit status is
// the verdict (docs/doctor.md), so scripts can gate on it.
func newDoctorCmd() *cobra.Command {
	var (
		format, destination string
		only                []string
	)
	c := &cobra.Command{
		Use:   "doctor",
		Short: "Check whether container checkpoint/restore will work on this host",
		Long: `Check the kernel, CRIU, the wrapped runtime, podman, crhook's config,
SELinux, rlimits and what live migration needs, and print each check's
status, evidence and fix. With --destination, also run the migration
checks on that host over ssh and compare its CRIU and runtime with these.
Exit status: 0 all ok, 1 at least one check failed, 2 warnings only.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := checkFormat(format); err != nil {
				return err
			}
			areas := doctor.Areas()
			for _, a := range only {
				if !slices.Contains(areas, a) {
					return fmt.Errorf("unknown --only area %q: use one of %s", a, strings.Join(areas, ", "))
				}
			}
			// The destination is read before any check runs: a typo
			// must not cost a full report first.
			var dest migrate.Destination
			if destination != "" {
				home, _ := os.UserHomeDir() // only a non-root user's connections need it
				d, err := migrate.ParseDestination(destination, migrate.PodmanConnectionSearch(os.Getenv, os.Geteuid(), home))
				if err != nil {
					return fmt.Errorf("crhook doctor --destination: %w", err)
				}
				dest = d
			}
			ctx := cmd.Context()
			if ctx == nil {
				ctx = context.Background()
			}
			rep := doctor.RunOnly(ctx, doctor.NewHost(paths()), only)
			if destination != "" {
				ssh := append(append([]string{"ssh"}, sshOptions...), dest.SSHArgs()...)
				rep.AddRemote(dest.String(), ssh, runRemoteDoctor(ctx, ssh))
			}
			write := rep.WriteText
			if format == "json" {
				write = rep.WriteJSON
			}
			if err := write(cmd.OutOrStdout()); err != nil {
				return err
			}
			if code := rep.ExitCode(); code != doctor.ExitOK {
				return exitCode(code)
			}
			return nil
		},
	}
	addFormatFlag(c, &format, "schema in crhook-doctor(1)")
	c.Flags().StringSliceVar(&only, "only", nil, "run only the checks of these areas ("+strings.Join(doctor.Areas(), ", ")+")")
	c.Flags().StringVar(&destination, "destination", "",
		"also check the far end of a migration: ssh://[user@]host[:port] or a podman system connection name")
	return c
}

// sshOptions keep doctor from waiting on a prompt or a dead host: no
// password or host-key question (BatchMode), and a bounded connect.
var sshOptions = []string{"-o", "BatchMode=yes", "-o", "ConnectTimeout=10"}

// runRemoteDoctor runs doctor.RemoteCommand on the far end through ssh
// (the ssh command line up to the host), as `crhook migrate` reaches it.
func runRemoteDoctor(ctx context.Context, ssh []string) doctor.Output {
	ctx, cancel := context.WithTimeout(ctx, remoteTimeout)
	defer cancel()
	args := append(slices.Clone(ssh[1:]), doctor.RemoteCommand...)
	cmd := exec.CommandContext(ctx, ssh[0], args...)
	cmd.Env = append(os.Environ(), "LC_ALL=C")
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	out := doctor.Output{Stdout: stdout.String(), Stderr: stderr.String()}
	var ee *exec.ExitError
	switch {
	case err == nil:
	case ctx.Err() != nil:
		out.Code, out.Err = -1, fmt.Errorf("no answer within %s: %w", remoteTimeout, ctx.Err())
	case errors.As(err, &ee):
		out.Code = ee.ExitCode()
	default:
		out.Code, out.Err = -1, fmt.Errorf("run ssh: %w", err)
	}
	return out
}
