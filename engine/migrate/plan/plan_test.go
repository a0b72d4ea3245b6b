package plan

import (
	"bytes"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite golden files")

func validPlan() *Plan {
	return &Plan{
		Version:     PlanVersion,
		Mode:        ModeLazy,
		MigrationID: "m-0123abcd",
		PageServer:  PageServer{Address: "10.250.13.2", Port: 27277},
		TLS: TLSPaths{
			CACert: "/run/crhook/migrations/m-0123abcd/ca.pem",
			Cert:   "/run/crhook/migrations/m-0123abcd/server.pem",
			Key:    "/run/crhook/migrations/m-0123abcd/server-key.pem",
		},
		Timeouts: Timeouts{Connect: Duration(30 * time.Second), NoProgress: Duration(10 * time.Second), Total: Duration(10 * time.Minute)},
		Status:   StatusPlanned,
	}
}

// TestPlanGolden pins the file format: the shim of another build reads
// what this one writes, so a change here is a format change (bump
// PlanVersion).
func TestPlanGolden(t *testing.T) {
	got, err := validPlan().Marshal()
	if err != nil {
		t.Fatal(err)
	}
	golden := filepath.Join("testdata", "plan-v1.json")
	if *update {
		if err := os.WriteFile(golden, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("plan encoding changed (a format change needs a new PlanVersion):\n%s\nwant:\n%s", got, want)
	}
	back, err := ParsePlan(want)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(back, validPlan()) {
		t.Fatalf("round trip: got %+v, want %+v", back, validPlan())
	}
}

func TestParsePlanRejects(t *testing.T) {
	good, err := validPlan().Marshal()
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		data    string
		wantErr error
		wantMsg string
	}{
		{"not json", "mode: lazy", ErrPlan, "invalid character"},
		{"no version", `{"mode":"lazy"}`, ErrPlan, `no "version" field`},
		{"future version", `{"version":2,"mode":"teleport","whatever":1}`, ErrPlanVersion, "version 2, this crhook reads version 1"},
		{"version zero", `{"version":0}`, ErrPlanVersion, "version 0"},
		{"version as string", `{"version":"1"}`, ErrPlan, "cannot unmarshal string"},
		{"unknown field", strings.Replace(string(good), `"mode"`, `"lazy_pages": true, "mode"`, 1), ErrPlan, `unknown field "lazy_pages"`},
		{"camel case field", strings.Replace(string(good), `"migration_id"`, `"migrationId"`, 1), ErrPlan, `unknown field "migrationId"`},
		{"trailing object", string(good) + "{}", ErrPlan, "after top-level value"},
		{"bare number duration", strings.Replace(string(good), `"connect": "30s"`, `"connect": 30`, 1), ErrPlan, "duration must be a string"},
		{"bad duration", strings.Replace(string(good), `"connect": "30s"`, `"connect": "soon"`, 1), ErrPlan, `duration "soon"`},
		{"zero duration", strings.Replace(string(good), `"connect": "30s"`, `"connect": "0s"`, 1), ErrPlan, "timeouts.connect must be positive"},
		{"auto mode", strings.Replace(string(good), `"mode": "lazy"`, `"mode": "auto"`, 1), ErrPlan, "mode auto must be resolved"},
		{"unknown mode", strings.Replace(string(good), `"mode": "lazy"`, `"mode": "teleport"`, 1), ErrPlan, `mode "teleport"`},
		{"port 0", strings.Replace(string(good), `"port": 27277`, `"port": 0`, 1), ErrPlan, "page_server.port 0"},
		{"port too big", strings.Replace(string(good), `"port": 27277`, `"port": 65536`, 1), ErrPlan, "page_server.port 65536"},
		{"option as address", strings.Replace(string(good), `"10.250.13.2"`, `"--lib=/tmp/x"`, 1), ErrPlan, "page_server.address"},
		{"no address", strings.Replace(string(good), `"10.250.13.2"`, `""`, 1), ErrPlan, "page_server.address"},
		{"relative tls", strings.Replace(string(good), `"/run/crhook/migrations/m-0123abcd/ca.pem"`, `"ca.pem"`, 1), ErrPlan, "tls.ca_cert"},
		{"unclean tls", strings.Replace(string(good), `"/run/crhook/migrations/m-0123abcd/ca.pem"`, `"/run/crhook/../etc/ca.pem"`, 1), ErrPlan, "tls.ca_cert"},
		{"missing tls key", strings.Replace(string(good), `"/run/crhook/migrations/m-0123abcd/server-key.pem"`, `""`, 1), ErrPlan, "tls.key"},
		{"slash in id", strings.Replace(string(good), `"m-0123abcd"`, `"../x"`, 1), ErrPlan, "migration_id"},
		{"unknown status", strings.Replace(string(good), `"planned"`, `"maybe"`, 1), ErrPlan, `status "maybe"`},
		{"failed without error", strings.Replace(string(good), `"planned"`, `"failed"`, 1), ErrPlan, "status failed needs an error"},
		{"final outside precopy", strings.Replace(string(good), `"timeouts"`, `"final": "lazy", "timeouts"`, 1), ErrPlan, "only precopy has a final dump"},
		{"unknown final", strings.Replace(strings.Replace(string(good), `"mode": "lazy"`, `"mode": "precopy"`, 1), `"timeouts"`, `"final": "precopy", "timeouts"`, 1), ErrPlan, `final "precopy" is not stream or lazy`},
		{"parent path outside precopy", strings.Replace(string(good), `"timeouts"`, `"parent_path": "/x", "timeouts"`, 1), ErrPlan, "only precopy"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParsePlan([]byte(tt.data))
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("ParsePlan error = %v, want %v", err, tt.wantErr)
			}
			if !strings.Contains(err.Error(), tt.wantMsg) {
				t.Fatalf("ParsePlan error = %q, want it to say %q", err, tt.wantMsg)
			}
		})
	}
}

func TestPlanStatuses(t *testing.T) {
	for _, s := range []Status{StatusPlanned, StatusServing, StatusRestored, StatusCommitted} {
		p := validPlan()
		p.Status = s
		if _, err := p.Marshal(); err != nil {
			t.Errorf("status %s: %v", s, err)
		}
	}
	p := validPlan()
	p.Status, p.Error = StatusFailed, "page server: no connection within 30s"
	data, err := p.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	back, err := ParsePlan(data)
	if err != nil || back.Error != p.Error {
		t.Fatalf("failed plan round trip: %v %+v", err, back)
	}
	p = validPlan()
	p.Mode, p.ParentPath, p.Round = ModePrecopy, "rounds/3", 4
	if _, err := p.Marshal(); err != nil {
		t.Errorf("precopy with parent path: %v", err)
	}
	p.ParentPath = "/var/lib/crhook/m/round-3"
	if _, err := p.Marshal(); !errors.Is(err, ErrPlan) || !strings.Contains(err.Error(), "relative to the migration directory") {
		t.Errorf("absolute parent path: %v", err)
	}
}

func TestParseMode(t *testing.T) {
	for _, s := range []string{"stream", "lazy", "precopy", "auto"} {
		if m, err := ParseMode(s); err != nil || string(m) != s {
			t.Errorf("ParseMode(%q) = %q, %v", s, m, err)
		}
	}
	for _, s := range []string{"", "Lazy", "postcopy", "stop-and-copy"} {
		if _, err := ParseMode(s); !errors.Is(err, ErrMode) {
			t.Errorf("ParseMode(%q) error = %v, want ErrMode", s, err)
		}
	}
}

func TestPageServerString(t *testing.T) {
	for _, tt := range []struct {
		ps   PageServer
		want string
	}{
		{PageServer{"10.250.13.1", 27277}, "10.250.13.1:27277"},
		{PageServer{"fe80::1", 1}, "[fe80::1]:1"},
	} {
		if got := tt.ps.String(); got != tt.want {
			t.Errorf("%+v.String() = %q, want %q", tt.ps, got, tt.want)
		}
	}
}

// FuzzParsePlan: no input panics, and whatever parses survives a round
// trip unchanged (the shim and the orchestrator agree on every plan).
func FuzzParsePlan(f *testing.F) {
	good, _ := validPlan().Marshal()
	f.Add(good)
	f.Add([]byte(`{"version":1}`))
	f.Add([]byte(`{"version":2}`))
	f.Add([]byte(`{"version":1,"mode":"lazy","timeouts":{"connect":"1ns"}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := ParsePlan(data)
		if err != nil {
			if !errors.Is(err, ErrPlan) && !errors.Is(err, ErrPlanVersion) {
				t.Fatalf("error without a sentinel: %v", err)
			}
			return
		}
		again, err := p.Marshal()
		if err != nil {
			t.Fatalf("parsed plan does not marshal: %v", err)
		}
		back, err := ParsePlan(again)
		if err != nil || !reflect.DeepEqual(back, p) {
			t.Fatalf("round trip changed the plan: %v\n%+v\n%+v", err, p, back)
		}
	})
}
