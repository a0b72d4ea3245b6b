package main

import (
	"encoding/json"
	"fmt"
	"io"

	"github.com/spf13/cobra"
)

// addFormatFlag gives a command the --format text|json flag every report
// of crhook shares; json names the document that states its schema.
func addFormatFlag(c *cobra.Command, format *string, json string) {
	c.Flags().StringVar(format, "format", "text", "output format: text or json ("+json+")")
}

func checkFormat(format string) error {
	if format != "text" && format != "json" {
		return fmt.Errorf("unknown --format %q: use text or json", format)
	}
	return nil
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
