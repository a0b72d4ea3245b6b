package main

import (
	"context"

	"github.com/spf13/cobra"

	"github.com/crhook/crhook/engine/doctor"
)

// newDoctorCmd is `crhook doctor`: one run says whether checkpoint/restore
// will work on this host and how to fix what will not. Its exit status is
// the verdict (docs/doctor.md), so scripts can gate on it.
func newDoctorCmd() *cobra.Command {
	var format string
	c := &cobra.Command{
		Use:   "doctor",
		Short: "Check whether container checkpoint/restore will work on this host",
		Long: `Check the kernel, CRIU, the wrapped runtime, podman, crhook's config,
SELinux and rlimits, and print each check's status, evidence and fix.
Exit status: 0 all ok, 1 at least one check failed, 2 warnings only.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := checkFormat(format); err != nil {
				return err
			}
			ctx := cmd.Context()
			if ctx == nil {
				ctx = context.Background()
			}
			rep := doctor.Run(ctx, doctor.NewHost(paths()))
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
	return c
}
