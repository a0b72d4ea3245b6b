package engine

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"syscall"
	"testing"
	"time"

	migrate "github.com/crhook/crhook/engine/migrate/plan"
)

func testPlan() *migrate.Plan {
	return &migrate.Plan{Version: migrate.PlanVersion, Mode: migrate.ModeLazy, MigrationID: "m1",
		PageServer: migrate.PageServer{Address: "10.250.13.1", Port: 4000}, TLS: *testTLS, Status: migrate.StatusPlanned,
		Timeouts: migrate.Timeouts{Connect: migrate.Duration(time.Second), NoProgress: migrate.Duration(time.Second), Total: migrate.Duration(time.Minute)}}
}

func TestPlanRoundTrip(t *testing.T) {
	state := t.TempDir()
	if p, err := ReadPlan(state, "abc123"); p != nil || err != nil {
		t.Fatalf("no plan yet: %v %v", p, err)
	}
	if err := WritePlan(state, "abc123", testPlan()); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(state, "containers", "abc123", migrate.PlanFile)
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("plan mode %v %v, want 0600", fi.Mode(), err)
	}
	if di, _ := os.Stat(filepath.Dir(path)); di.Mode().Perm() != 0o700 {
		t.Fatalf("state dir mode %v, want 0700", di.Mode())
	}
	got, err := ReadPlan(state, "abc123")
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, testPlan()) {
		t.Fatalf("read %+v, want %+v", got, testPlan())
	}
	bad := testPlan()
	bad.Mode = migrate.ModeAuto
	if err := WritePlan(state, "abc123", bad); !errors.Is(err, migrate.ErrPlan) {
		t.Fatalf("an invalid plan was written: %v", err)
	}
	if err := WritePlan(state, "../x", testPlan()); !errors.Is(err, ErrBadID) {
		t.Fatalf("escaping ID: %v", err)
	}
}

func TestReadPlanRefuses(t *testing.T) {
	good, err := testPlan().Marshal()
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name  string
		setup func(t *testing.T, path string)
		want  error
		msg   string
	}{
		{"symlink", func(t *testing.T, path string) {
			target := filepath.Join(t.TempDir(), "plan.json")
			must(t, os.WriteFile(target, good, 0o600))
			must(t, os.Symlink(target, path))
		}, ErrUntrustedPlan, "symlink"},
		{"group writable", func(t *testing.T, path string) {
			must(t, os.WriteFile(path, good, 0o600))
			must(t, os.Chmod(path, 0o620))
		}, ErrUntrustedPlan, "others may write it"},
		{"world readable", func(t *testing.T, path string) {
			must(t, os.WriteFile(path, good, 0o600))
			must(t, os.Chmod(path, 0o604))
		}, ErrUntrustedPlan, "mode"},
		{"fifo", func(t *testing.T, path string) {
			must(t, syscall.Mkfifo(path, 0o600))
		}, ErrUntrustedPlan, "not a regular file"},
		{"directory", func(t *testing.T, path string) {
			must(t, os.Mkdir(path, 0o700))
		}, ErrUntrustedPlan, "not a regular file"},
		{"other version", func(t *testing.T, path string) {
			must(t, os.WriteFile(path, []byte(strings.Replace(string(good), `"version": 1`, `"version": 2`, 1)), 0o600))
		}, migrate.ErrPlanVersion, "version 2"},
		{"huge", func(t *testing.T, path string) {
			must(t, os.WriteFile(path, []byte(strings.Repeat(" ", maxPlanSize+1)), 0o600))
		}, migrate.ErrPlan, "larger than"},
	}
	if os.Geteuid() == 0 {
		tests = append(tests, struct {
			name  string
			setup func(t *testing.T, path string)
			want  error
			msg   string
		}{"owned by another user", func(t *testing.T, path string) {
			must(t, os.WriteFile(path, good, 0o600))
			must(t, os.Chown(path, 65534, 65534))
		}, ErrUntrustedPlan, "owned by uid 65534"})
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			state := t.TempDir()
			path, err := PlanPath(state, "abc123")
			if err != nil {
				t.Fatal(err)
			}
			must(t, os.MkdirAll(filepath.Dir(path), 0o700))
			tt.setup(t, path)
			p, err := ReadPlan(state, "abc123")
			if p != nil || !errors.Is(err, tt.want) || !strings.Contains(err.Error(), tt.msg) {
				t.Fatalf("ReadPlan = %v, %v; want %v saying %q", p, err, tt.want, tt.msg)
			}
			if !strings.Contains(err.Error(), path) {
				t.Errorf("error does not name the file: %v", err)
			}
		})
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
