//go:build e2e

package e2e

import (
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"
)

// crunDir is where tests/setup-crun.sh installs crun 1.28 +CRIU and the
// podman runtimes over it.
const crunDir = "/usr/local/libexec/crhook-test"

// wrapped is one OCI runtime crhook wraps, as podman reaches it. Every
// checkpoint/restore scenario runs once per wrapped runtime and records
// what it observed; the two records must be the same.
type wrapped struct {
	name   string   // the wrapped runtime: runc or crun
	podman string   // podman runtime: crhook-runtime over it
	plain  string   // podman runtime: the same runtime without crhook
	env    []string // what the crhook CLI needs to see the same settings
	// missing says why this host cannot run it; "" when it can.
	missing func() string

	notes  []string // what the scenario observed, in order
	ran    bool
	failed bool
}

var wrappers = []wrapped{
	{name: "runc", podman: runtime, plain: "runc", missing: func() string { return "" }},
	{
		name: "crun", podman: "crhook-crun", plain: "crhook-test-crun",
		env: []string{"CRHOOK_CONFIG=" + crunDir + "/crhook-crun.toml"},
		missing: func() string {
			for _, f := range []string{crunDir + "/crun", crunDir + "/crhook-crun", crunDir + "/crhook-crun.toml",
				"/etc/containers/containers.conf.d/61-crhook-test-crun.conf"} {
				if _, err := os.Stat(f); err != nil {
					return "crun 1.28 +CRIU not set up (" + f + "): run tests/setup-crun.sh"
				}
			}
			return ""
		},
	},
}

// note records one observation of the scenario, for the comparison.
func (w *wrapped) note(format string, args ...any) {
	w.notes = append(w.notes, fmt.Sprintf(format, args...))
}

// crhook runs the crhook CLI with the settings this runtime's
// crhook-runtime reads.
func (w *wrapped) crhook(t *testing.T, args ...string) result {
	t.Helper()
	return runEnv(t, w.env, crhookBin, args...)
}

// forEachRuntime runs a scenario under crhook over runc and over crun,
// then fails if the two disagree: one passed and the other failed, or
// they observed different things on the way. A Fedora user who moves to
// crhook must get exactly what a runc user gets.
func forEachRuntime(t *testing.T, scenario func(t *testing.T, w *wrapped)) {
	t.Helper()
	need(t)
	var ran []*wrapped
	for i := range wrappers {
		w := wrappers[i] // a copy: notes are per scenario
		t.Run(w.name, func(t *testing.T) {
			if reason := w.missing(); reason != "" {
				t.Skip(reason)
			}
			w.ran = true
			defer func() { w.failed = t.Failed() }()
			scenario(t, &w)
		})
		if w.ran {
			ran = append(ran, &w)
		}
	}
	if len(ran) == 2 {
		if msg := disagreement(ran[0], ran[1]); msg != "" {
			t.Error(msg)
		}
	}
}

// disagreement describes how two runs of one scenario differ, or "".
func disagreement(a, b *wrapped) string {
	if a.failed == b.failed && slices.Equal(a.notes, b.notes) {
		return ""
	}
	outcome := func(w *wrapped) string {
		s := "passed"
		if w.failed {
			s = "FAILED"
		}
		return fmt.Sprintf("%s (%s):\n    %s", w.name, s, strings.Join(w.notes, "\n    "))
	}
	return "crhook over " + a.name + " and over " + b.name + " disagree on this scenario:\n  " +
		outcome(a) + "\n  " + outcome(b)
}

func TestDisagreementReport(t *testing.T) {
	same := func(failed bool, notes ...string) *wrapped { return &wrapped{name: "x", failed: failed, notes: notes} }
	tests := []struct {
		name   string
		a, b   *wrapped
		differ bool
	}{
		{"same notes, both pass", same(false, "checkpoint: fails"), same(false, "checkpoint: fails"), false},
		{"one failed", same(false, "checkpoint: fails"), same(true, "checkpoint: fails"), true},
		{"different observation", same(false, "checkpoint: fails"), same(false, "checkpoint: ok"), true},
		{"one stopped early", same(false, "a", "b"), same(false, "a"), true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := disagreement(tc.a, tc.b) != ""; got != tc.differ {
				t.Errorf("disagreement = %v, want %v", got, tc.differ)
			}
		})
	}
}
