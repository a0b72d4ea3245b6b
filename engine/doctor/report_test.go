package doctor

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
)

func TestExitCode(t *testing.T) {
	for _, tc := range []struct {
		statuses []Status
		want     int
	}{
		{[]Status{OK, Skip}, ExitOK},
		{[]Status{OK, Warn, Skip}, ExitWarnings},
		{[]Status{Warn, Fail, OK}, ExitFail},
		{nil, ExitOK},
	} {
		r := &Report{}
		for _, s := range tc.statuses {
			r.Results = append(r.Results, Result{Status: s})
		}
		if got := r.ExitCode(); got != tc.want {
			t.Errorf("%v: exit %d, want %d", tc.statuses, got, tc.want)
		}
	}
}

// TestRunFixtureHost runs the whole catalogue on the fake copy of this
// project's test machine and holds the JSON schema of docs/doctor.md.
func TestRunFixtureHost(t *testing.T) {
	f := newFixture(t)
	rep := Run(t.Context(), f.host)
	if len(rep.Results) != len(checks) {
		t.Fatalf("%d results for %d checks", len(rep.Results), len(checks))
	}
	if rep.ExitCode() != ExitFail {
		t.Errorf("exit %d, want %d: the fixture host has podman's default nofile above its hard limit", rep.ExitCode(), ExitFail)
	}

	var buf bytes.Buffer
	if err := rep.WriteJSON(&buf); err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Schema   *int           `json:"schema"`
		Status   string         `json:"status"`
		ExitCode *int           `json:"exit_code"`
		Summary  map[string]int `json:"summary"`
		Checks   []map[string]any
	}
	dec := json.NewDecoder(bytes.NewReader(buf.Bytes()))
	if err := dec.Decode(&doc); err != nil {
		t.Fatalf("decode report: %v\n%s", err, buf.String())
	}
	if doc.Schema == nil || *doc.Schema != 1 || doc.Status != "fail" || doc.ExitCode == nil || *doc.ExitCode != 1 {
		t.Errorf("header: schema %v status %q exit_code %v", doc.Schema, doc.Status, doc.ExitCode)
	}
	for _, k := range []string{"ok", "warn", "fail", "skip"} {
		if _, ok := doc.Summary[k]; !ok {
			t.Errorf("summary lacks %q", k)
		}
	}
	seen := map[string]bool{}
	for _, c := range doc.Checks {
		for _, k := range []string{"id", "title", "status", "evidence", "fix"} {
			if _, ok := c[k]; !ok {
				t.Errorf("check %v lacks %q", c["id"], k)
			}
		}
		if _, ok := c["evidence"].([]any); !ok {
			t.Errorf("check %v: evidence is %T, want an array", c["id"], c["evidence"])
		}
		id, _ := c["id"].(string)
		if seen[id] {
			t.Errorf("duplicate id %q", id)
		}
		seen[id] = true
	}

	buf.Reset()
	if err := rep.WriteText(&buf); err != nil {
		t.Fatal(err)
	}
	text := buf.String()
	for _, want := range []string{"STATUS  CHECK", "FAIL    limits.rlimits", "fix: every container started without --ulimit",
		"WARN    kernel.mem_soft_dirty", "checkpoint/restore will fail until the fixes above are applied"} {
		if !strings.Contains(text, want) {
			t.Errorf("text report lacks %q:\n%s", want, text)
		}
	}
}

// TestDocListsEveryCheck keeps docs/doctor.md in step with the catalogue.
func TestDocListsEveryCheck(t *testing.T) {
	doc := readDoc(t)
	for _, c := range checks {
		if !strings.Contains(doc, "`"+c.id+"`") {
			t.Errorf("docs/doctor.md does not list check `%s`", c.id)
		}
	}
}
