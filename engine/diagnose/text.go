package diagnose

import (
	"fmt"
	"strings"
)

// Headline is the diagnosis on one line, for callers that show their user
// only the first line of the runtime's output (containerd's runc shim):
// what failed, what it means, and the first fix.
func (d *Diagnosis) Headline() string {
	what := "CRIU"
	if d.Operation != "" {
		what += " " + d.Operation
	}
	line := fmt.Sprintf("crhook: %s failed (%s): %s", what, d.Rule, strings.TrimSuffix(d.Meaning, "."))
	if len(d.Fixes) > 0 {
		line += fmt.Sprintf("; fix: %s (%s)", d.Fixes[0].Command, d.Fixes[0].Scope)
	}
	return strings.ReplaceAll(line, "\n", " ")
}

// Text is the diagnosis as crhook prints it on stderr, where podman shows
// it: what CRIU said (log path:line and the quoted lines, the root cause
// marked with >), what it means, the fixes and the config in effect.
func (d *Diagnosis) Text() string {
	var b strings.Builder
	what := "CRIU"
	if d.Operation != "" {
		what += " " + d.Operation
	}
	switch d.Rule {
	case ruleNoLog:
		fmt.Fprintf(&b, "crhook: %s failed and left no log at %s.\n", what, d.LogPath)
	case ruleEmpty:
		fmt.Fprintf(&b, "crhook: %s failed and its log %s is empty.\n", what, d.LogPath)
	case ruleNoError:
		fmt.Fprintf(&b, "crhook: %s failed but its log %s has no error; it ends with:\n", what, d.LogPath)
	default:
		fmt.Fprintf(&b, "crhook: %s failed (%s). CRIU said, in %s:%d:\n", what, d.Rule, d.LogPath, d.Line)
	}
	width := 0
	for _, n := range d.QuoteLines {
		width = max(width, len(fmt.Sprint(n)))
	}
	for i, q := range d.Quote {
		mark := " "
		if i < len(d.QuoteLines) && d.QuoteLines[i] == d.Line && d.Line > 0 {
			mark = ">"
		}
		n := 0
		if i < len(d.QuoteLines) {
			n = d.QuoteLines[i]
		}
		fmt.Fprintf(&b, "  %s %*d | %s\n", mark, width, n, q)
	}
	fmt.Fprintf(&b, "It means: %s\n", d.Meaning)
	if len(d.Fixes) > 0 {
		b.WriteString("Fix:\n")
		cw := 0
		for _, f := range d.Fixes {
			cw = max(cw, len(f.Command))
		}
		for _, f := range d.Fixes {
			fmt.Fprintf(&b, "    %-*s   (%s)\n", cw, f.Command, f.Scope)
		}
	} else if d.Rule == ruleGeneric || d.Rule == ruleNoError {
		fmt.Fprintf(&b, "No fix known to crhook; the whole log is %s.\n", d.LogPath)
	}
	if d.Config != "" {
		fmt.Fprintf(&b, "Config in effect: %s\n", d.Config)
	}
	return b.String()
}
