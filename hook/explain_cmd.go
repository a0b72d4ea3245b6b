package main

import (
	"encoding/json"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/crhook/crhook/engine/diagnose"
)

func newExplainCmd() *cobra.Command {
	var format string
	c := &cobra.Command{
		Use:   "explain LOGFILE",
		Short: "Explain why a CRIU dump or restore failed, and how to fix it",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			// Explain returns a printable diagnosis even when the log is
			// missing or unreadable; the error then sets the exit status.
			d, derr := diagnose.Explain(args[0], diagnose.Context{})
			if err := writeDiagnosis(cmd, d, format); err != nil {
				return err
			}
			if derr != nil {
				return exitCode(1)
			}
			return nil
		},
	}
	c.Flags().StringVar(&format, "format", "text", "output format: text or json")
	return c
}

func writeDiagnosis(cmd *cobra.Command, d *diagnose.Diagnosis, format string) error {
	switch format {
	case "json":
		enc := json.NewEncoder(cmd.OutOrStdout())
		enc.SetIndent("", "  ")
		return enc.Encode(d)
	case "text":
		fmt.Fprint(cmd.OutOrStdout(), d.Text())
		return nil
	default:
		return fmt.Errorf("unknown --format %q: use text or json", format)
	}
}
