package doctor

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

// remoteJSON is what the far end's `crhook doctor --format json --only
// migrate` prints, written by this package's own WriteJSON.
func remoteJSON(t *testing.T, v *Versions, results ...Result) string {
	t.Helper()
	var buf bytes.Buffer
	if err := (&Report{Results: results, Versions: v}).WriteJSON(&buf); err != nil {
		t.Fatal(err)
	}
	return buf.String()
}

var thisHost = Versions{CRIU: "4.2.1", Runtime: "runc", RuntimeVersion: "1.1.5"}

func TestAddRemote(t *testing.T) {
	const dest = "ssh://root@10.203.0.2:22"
	ssh := []string{"ssh", "-p", "22", "-l", "root", "--", "10.203.0.2"}
	uffdOK := Result{ID: "migrate.uffd", Title: "userfaultfd", Status: OK, Evidence: []string{"criu check --feature uffd: uffd is supported"}}
	pipeWarn := Result{ID: "migrate.lazy_pipe", Title: "pipes", Status: Warn, Evidence: []string{"fs.pipe-max-size = 1048576 < 4194304"}, Fix: "sysctl -w fs.pipe-max-size=4194304"}
	with := func(mod func(v *Versions)) *Versions {
		v := thisHost
		mod(&v)
		return &v
	}
	for _, tc := range []struct {
		name string
		out  Output
		// want maps check IDs to their status; absent IDs must not appear.
		want map[string]Status
		// text are substrings of the added results' evidence and fixes.
		text []string
	}{
		{name: "same releases", out: Output{Code: 2, Stdout: remoteJSON(t, &thisHost, uffdOK, pipeWarn)},
			want: map[string]Status{idReachable: OK, "remote.migrate.uffd": OK, "remote.migrate.lazy_pipe": Warn, idCRIUVersion: OK, idRuntimeVersion: OK},
			text: []string{"ssh -p 22 -l root -- 10.203.0.2 crhook doctor --format json --only migrate: exit status 2, 2 checks", "here: CRIU 4.2.1; " + dest + ": CRIU 4.2.1",
				"fs.pipe-max-size = 1048576 < 4194304", "pipes (" + dest + ")"}},
		{name: "patch release differs", out: Output{Stdout: remoteJSON(t, with(func(v *Versions) { v.CRIU = "4.2.3" }))},
			want: map[string]Status{idReachable: OK, idCRIUVersion: OK, idRuntimeVersion: OK},
			text: []string{"patch releases differ"}},
		{name: "older CRIU on the far end", out: Output{Stdout: remoteJSON(t, with(func(v *Versions) { v.CRIU = "4.1.1" }))},
			want: map[string]Status{idReachable: OK, idCRIUVersion: Fail, idRuntimeVersion: OK},
			text: []string{"CRIU 4.1.1", "an older CRIU cannot restore a newer one's images", "install the same CRIU release (4.2) on both ends"}},
		{name: "other major", out: Output{Stdout: remoteJSON(t, with(func(v *Versions) { v.CRIU = "3.2.1" }))},
			want: map[string]Status{idReachable: OK, idCRIUVersion: Fail, idRuntimeVersion: OK}},
		{name: "unknown CRIU on the far end", out: Output{Code: 1, Stdout: remoteJSON(t, with(func(v *Versions) { v.CRIU = "" }))},
			want: map[string]Status{idReachable: OK, idCRIUVersion: Warn, idRuntimeVersion: OK},
			text: []string{"CRIU unknown", "cannot compare"}},
		{name: "crun on the far end", out: Output{Stdout: remoteJSON(t, with(func(v *Versions) { v.Runtime, v.RuntimeVersion = "crun", "1.8.1" }))},
			want: map[string]Status{idReachable: OK, idCRIUVersion: OK, idRuntimeVersion: Warn},
			text: []string{"here: runc 1.1.5; " + dest + ": crun 1.8.1", "set the same runtime.path"}},
		{name: "other runc minor", out: Output{Stdout: remoteJSON(t, with(func(v *Versions) { v.RuntimeVersion = "1.2.0" }))},
			want: map[string]Status{idReachable: OK, idCRIUVersion: OK, idRuntimeVersion: Warn},
			text: []string{"install the same runc release on both ends"}},
		{name: "older crhook without versions", out: Output{Stdout: remoteJSON(t, nil, uffdOK)},
			want: map[string]Status{idReachable: OK, "remote.migrate.uffd": OK, idCRIUVersion: Warn, idRuntimeVersion: Warn},
			text: []string{"reports no versions", "install the same crhook release on both ends"}},
		{name: "ssh fails", out: Output{Code: 255, Stderr: "ssh: connect to host 10.203.0.2 port 22: Connection refused\n"},
			want: map[string]Status{idReachable: Fail, idCRIUVersion: Skip, idRuntimeVersion: Skip},
			text: []string{"ssh failed (exit status 255): ssh: connect to host 10.203.0.2 port 22: Connection refused",
				"make `ssh -p 22 -l root -- 10.203.0.2 true` work without a prompt"}},
		{name: "no crhook on the far end", out: Output{Code: 127, Stderr: "bash: line 1: crhook: command not found\n"},
			want: map[string]Status{idReachable: Fail, idCRIUVersion: Skip, idRuntimeVersion: Skip},
			text: []string{"exit status 127, no JSON report: bash: line 1: crhook: command not found"}},
		{name: "old crhook without --only", out: Output{Code: 1, Stderr: "Error: unknown flag: --only\n"},
			want: map[string]Status{idReachable: Fail, idCRIUVersion: Skip, idRuntimeVersion: Skip},
			text: []string{"unknown flag: --only"}},
		{name: "ssh not installed", out: Output{Code: -1, Err: errors.New(`exec: "ssh": executable file not found in $PATH`)},
			want: map[string]Status{idReachable: Fail, idCRIUVersion: Skip, idRuntimeVersion: Skip},
			text: []string{`exec: "ssh": executable file not found`}},
		{name: "other schema", out: Output{Stdout: `{"schema": 2, "checks": []}`},
			want: map[string]Status{idReachable: Fail, idCRIUVersion: Skip, idRuntimeVersion: Skip},
			text: []string{"writes doctor schema 2, this one reads 1"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			local := Result{ID: "migrate.uffd", Status: OK, Evidence: []string{}}
			r := &Report{Results: []Result{local}, Versions: &thisHost}
			r.AddRemote(dest, ssh, tc.out)
			if r.Results[0].ID != "migrate.uffd" {
				t.Errorf("the local check moved: %+v", r.Results[0])
			}
			added := r.Results[1:]
			got := map[string]Status{}
			var text []string
			for _, res := range added {
				got[res.ID] = res.Status
				text = append(text, res.Evidence...)
				text = append(text, res.Title, "fix: "+res.Fix)
				if res.Evidence == nil {
					t.Errorf("%s: nil evidence (JSON null)", res.ID)
				}
				if (res.Status == Fail || res.Status == Warn) && res.Fix == "" {
					t.Errorf("%s: %s without a fix", res.ID, res.Status)
				}
			}
			for id, st := range tc.want {
				if got[id] != st {
					t.Errorf("%s: status %q, want %q", id, got[id], st)
				}
			}
			for id := range got {
				if _, ok := tc.want[id]; !ok {
					t.Errorf("unexpected check %s", id)
				}
			}
			joined := strings.Join(text, "\n")
			for _, w := range tc.text {
				if !strings.Contains(joined, w) {
					t.Errorf("missing %q in\n%s", w, joined)
				}
			}
		})
	}
}

// TestVersionsInReport: the far end's versions travel in the JSON report
// that RunOnly writes, and --only keeps one area.
func TestVersionsInReport(t *testing.T) {
	f := newFixture(t)
	rep := RunOnly(t.Context(), f.host, []string{"migrate"})
	var ids []string
	for _, r := range rep.Results {
		ids = append(ids, r.ID)
	}
	if want := "migrate.uffd migrate.lazy_pipe migrate.soft_dirty migrate.tls"; strings.Join(ids, " ") != want {
		t.Errorf("--only migrate ran %v, want %s", ids, want)
	}
	var buf bytes.Buffer
	if err := rep.WriteJSON(&buf); err != nil {
		t.Fatal(err)
	}
	var got remoteReport
	if err := json.Unmarshal(buf.Bytes(), &got); err != nil {
		t.Fatal(err)
	}
	if got.Versions == nil || *got.Versions != thisHost {
		t.Errorf("versions %+v, want %+v\n%s", got.Versions, thisHost, buf.String())
	}
	if !strings.Contains(strings.Join(Areas(), " "), "kernel criu runtime podman config selinux limits migrate") {
		t.Errorf("areas %v", Areas())
	}
}
