package doctor

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
)

// SchemaVersion is bumped only when a field changes meaning or goes away;
// new fields may appear without a bump (docs/doctor.md).
const SchemaVersion = 1

// Exit statuses of `crhook doctor` (docs/doctor.md).
const (
	ExitOK       = 0 // every check ok or skipped
	ExitFail     = 1 // at least one check failed
	ExitWarnings = 2 // warnings, no failure
)

// Report is the outcome of one run.
type Report struct {
	Results []Result
	// Versions are this host's CRIU and runtime releases, what
	// --destination compares; nil in a report built by hand.
	Versions *Versions
}

// Worst is fail if any check failed, else warn if any warned, else ok.
func (r *Report) Worst() Status {
	worst := OK
	for _, res := range r.Results {
		switch {
		case res.Status == Fail:
			return Fail
		case res.Status == Warn:
			worst = Warn
		}
	}
	return worst
}

// ExitCode maps the worst status to doctor's exit status.
func (r *Report) ExitCode() int {
	switch r.Worst() {
	case Fail:
		return ExitFail
	case Warn:
		return ExitWarnings
	}
	return ExitOK
}

func (r *Report) counts() map[Status]int {
	n := map[Status]int{}
	for _, res := range r.Results {
		n[res.Status]++
	}
	return n
}

// WriteJSON writes the stable schema documented in crhook-doctor(1)
// (docs/crhook-doctor.1.md, JSON OUTPUT).
func (r *Report) WriteJSON(w io.Writer) error {
	n := r.counts()
	out := struct {
		Schema   int            `json:"schema"`
		Status   Status         `json:"status"`
		ExitCode int            `json:"exit_code"`
		Summary  map[Status]int `json:"summary"`
		Checks   []Result       `json:"checks"`
		Versions *Versions      `json:"versions,omitempty"`
	}{SchemaVersion, r.Worst(), r.ExitCode(),
		map[Status]int{OK: n[OK], Warn: n[Warn], Fail: n[Fail], Skip: n[Skip]}, r.Results, r.Versions}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if err := enc.Encode(out); err != nil {
		return fmt.Errorf("write doctor report as JSON: %w", err)
	}
	return nil
}

// WriteText writes the human table: one row per check, evidence lines
// under each other, the fix on its own line so it is easy to copy.
func (r *Report) WriteText(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "STATUS\tCHECK\tEVIDENCE")
	for _, res := range r.Results {
		ev := res.Evidence
		if len(ev) == 0 {
			ev = []string{""}
		}
		for i, line := range ev {
			if i == 0 {
				fmt.Fprintf(tw, "%s\t%s\t%s\n", strings.ToUpper(string(res.Status)), res.ID, line)
			} else {
				fmt.Fprintf(tw, "\t\t%s\n", line)
			}
		}
		if res.Fix != "" {
			fmt.Fprintf(tw, "\t\tfix: %s\n", res.Fix)
		}
	}
	if err := tw.Flush(); err != nil {
		return fmt.Errorf("write doctor report: %w", err)
	}
	n := r.counts()
	verdict := map[Status]string{
		OK:   "checkpoint/restore should work on this host",
		Warn: "checkpoint/restore works, with the limits warned about above",
		Fail: "checkpoint/restore will fail until the fixes above are applied",
	}[r.Worst()]
	_, err := fmt.Fprintf(w, "\n%d ok, %d warn, %d fail, %d skip: %s\n", n[OK], n[Warn], n[Fail], n[Skip], verdict)
	if err != nil {
		return fmt.Errorf("write doctor report: %w", err)
	}
	return nil
}
