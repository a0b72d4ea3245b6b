package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/crhook/crhook/engine/diagnose"
)

func newExplainCmd() *cobra.Command {
	var format, engine string
	c := &cobra.Command{
		Use:   "explain LOGFILE",
		Short: "Explain why a CRIU dump or restore failed, and how to fix it",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkFormat(format); err != nil {
				return err
			}
			var ctx diagnose.Context
			if engine != "" {
				e, err := diagnose.ParseEngine(engine)
				if err != nil {
					return fmt.Errorf("--engine: %w", err)
				}
				ctx.Engine = e
			}
			// Explain returns a printable diagnosis even when the log is
			// missing or unreadable; the error then sets the exit status.
			d, derr := diagnose.Explain(args[0], ctx)
			if err := writeDiagnosis(cmd, d, format); err != nil {
				return err
			}
			if derr != nil {
				return exitCode(1)
			}
			return nil
		},
	}
	addFormatFlag(c, &format, "schema in crhook-explain(1)")
	c.Flags().StringVar(&engine, "engine", "", "write the fixes for this engine: podman, cri-o, containerd, runc or criu (default: podman for a container's log, else criu)")
	return c
}

func writeDiagnosis(cmd *cobra.Command, d *diagnose.Diagnosis, format string) error {
	if format == "json" {
		return writeJSON(cmd.OutOrStdout(), d)
	}
	_, err := fmt.Fprint(cmd.OutOrStdout(), d.Text())
	return err
}
