package engine

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	migrate "github.com/crhook/crhook/engine/migrate/plan"
)

// lazyFake is the engine fake with fakeruntime-lazy as runc and a
// container crhook created, whose plan is p (none when nil).
func lazyFake(t *testing.T, p *migrate.Plan) *fake {
	t.Helper()
	f := newFake(t)
	script, err := os.ReadFile("testdata/fakeruntime-lazy")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(f.bin, script, 0o755); err != nil {
		t.Fatal(err)
	}
	f.stateAnnotations(map[string]string{CRIUConfigAnnotation: f.generated()})
	if p != nil {
		if err := WritePlan(f.stateDir(), testID, p); err != nil {
			t.Fatal(err)
		}
	}
	return f
}

func lazyPlan(status migrate.Status) *migrate.Plan {
	d := migrate.Duration(10 * time.Second)
	return &migrate.Plan{Version: migrate.PlanVersion, Mode: migrate.ModeLazy, MigrationID: "m1",
		PageServer: migrate.PageServer{Address: "10.250.13.2", Port: 4321},
		TLS:        migrate.TLSPaths{CACert: "/t/ca.pem", Cert: "/t/server.pem", Key: "/t/server-key.pem"},
		Timeouts:   migrate.Timeouts{Connect: d, NoProgress: d, Total: d}, Status: status}
}

// stateDir is the fake's state_dir (newFake's crhook.toml).
func (f *fake) stateDir() string { return filepath.Join(f.root, "state") }

// TestLazyCheckpoint: with a lazy plan, checkpoint starts runc with the
// typed options' flags, TLS in the generated file, returns at the status
// byte, marks the plan serving and leaves the page server's exit status
// where the orchestrator looks.
func TestLazyCheckpoint(t *testing.T) {
	f := lazyFake(t, lazyPlan(migrate.StatusPlanned))
	if code, stderr := f.shim("--root", f.runcRoot(), "checkpoint", "--image-path", filepath.Join(f.root, "img"), testID); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	want := "checkpoint --image-path " + filepath.Join(f.root, "img") + " --lazy-pages --page-server 10.250.13.2:4321 --status-fd 3 " + testID
	calls := f.calls()
	if !strings.Contains(calls, want) {
		t.Errorf("runc calls lack %q:\n%s", want, calls)
	}
	// Paused by runc first: CRIU's own freeze polls every 100 ms.
	if pause := strings.Index(calls, "pause "+testID); pause < 0 || pause > strings.Index(calls, want) {
		t.Errorf("want pause, then the lazy dump; runc calls:\n%s", calls)
	}
	if strings.Contains(calls, "resume") {
		t.Errorf("the dumped tasks were resumed: a second running copy\n%s", calls)
	}
	if conf := f.generatedText(); !strings.Contains(conf, "\ntls\ntls-cacert /t/ca.pem\ntls-cert /t/server.pem\ntls-key /t/server-key.pem\n") {
		t.Errorf("generated criu.conf lacks the TLS lines:\n%s", conf)
	}
	p, err := ReadPlan(f.stateDir(), testID)
	if err != nil || p.Status != migrate.StatusServing {
		t.Errorf("plan after the status byte: %+v, %v; want serving", p, err)
	}
	rc := filepath.Join(MigrationDir(f.stateDir(), "m1"), PageServerRC)
	deadline := time.Now().Add(10 * time.Second)
	for {
		if data, err := os.ReadFile(rc); err == nil {
			if strings.TrimSpace(string(data)) != "0" {
				t.Errorf("%s = %q, want 0", rc, data)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no %s from the supervisor", rc)
		}
		time.Sleep(10 * time.Millisecond)
	}
	// While serving, podman's delete is held: the tasks are the rollback.
	if code, stderr := f.shim("--root", f.runcRoot(), "delete", "--force", testID); code != 0 || f.ran("delete") {
		t.Errorf("delete is not held while the page server serves (exit %d, runtime delete ran: %v): %s", code, f.ran("delete"), stderr)
	}
	// Past the total timeout the orchestrator is gone: delete goes on.
	path, _ := PlanPath(f.stateDir(), testID)
	old := time.Now().Add(-11 * time.Second)
	if err := os.Chtimes(path, old, old); err != nil {
		t.Fatal(err)
	}
	if f.shim("--root", f.runcRoot(), "delete", "--force", testID); !f.ran("delete") {
		t.Error("delete is held by a plan older than the migration's total timeout")
	}
}

// TestLazyCheckpointFailsClosed: no status byte, an untrusted plan, a
// mode the shim does not build: the checkpoint fails, and never runs as
// an ordinary checkpoint.
func TestLazyCheckpointFailsClosed(t *testing.T) {
	for _, tc := range []struct {
		name  string
		setup func(f *fake)
		want  string
	}{
		{"no status byte", func(f *fake) { f.write("rt/no-status-byte", "") }, "gave no status byte"},
		{"runc fails", func(f *fake) { f.write("rt/fail-checkpoint", "") }, "gave no status byte"},
		{"leave running", func(f *fake) { f.write("rt/leave-running", "") }, "two copies"},
		{"plan others may write", func(f *fake) {
			path, _ := PlanPath(f.stateDir(), testID)
			if err := os.Chmod(path, 0o666); err != nil {
				t.Fatal(err)
			}
		}, "others may write it"},
		{"precopy plan", func(f *fake) {
			p := lazyPlan(migrate.StatusPlanned)
			p.Mode = migrate.ModePrecopy
			if err := WritePlan(f.stateDir(), testID, p); err != nil {
				t.Fatal(err)
			}
		}, "names no last pre-copy round"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := lazyFake(t, lazyPlan(migrate.StatusPlanned))
			tc.setup(f)
			args := []string{"--root", f.runcRoot(), "checkpoint", "--image-path", filepath.Join(f.root, "img"), testID}
			if _, err := os.Stat(filepath.Join(f.dir, "leave-running")); err == nil {
				args = []string{"--root", f.runcRoot(), "checkpoint", "--leave-running", "--image-path", filepath.Join(f.root, "img"), testID}
			}
			start := time.Now()
			code, stderr := f.shim(args...)
			if code == 0 {
				t.Fatalf("checkpoint succeeded: %s", stderr)
			}
			// runc died: the shim must see it at once, not after the
			// plan's total timeout (10s here, 30m by default).
			if took := time.Since(start); took > 5*time.Second {
				t.Errorf("the failed checkpoint took %v: the shim waited for the timeout", took)
			}
			if !strings.Contains(stderr, tc.want) {
				t.Errorf("stderr lacks %q:\n%s", tc.want, stderr)
			}
			for _, l := range strings.Split(f.calls(), "\n") {
				if strings.Contains(l, " checkpoint ") && !strings.Contains(l, "--lazy-pages") {
					t.Errorf("an ordinary checkpoint ran in the migration's place: %s", l)
				}
			}
			// crhook paused it for the dump: never left frozen.
			if fileExists(filepath.Join(f.dir, "paused")) {
				t.Errorf("the container stays frozen after the failed checkpoint; runc calls:\n%s", f.calls())
			}
		})
	}
}

// TestLazyCheckpointOwnersPause: a container its owner paused is dumped
// as it is, and left paused when the dump fails: crhook resumes only
// what it paused.
func TestLazyCheckpointOwnersPause(t *testing.T) {
	for _, fails := range []bool{false, true} {
		f := lazyFake(t, lazyPlan(migrate.StatusPlanned))
		f.write("rt/paused", "")
		if fails {
			f.write("rt/no-status-byte", "")
		}
		code, stderr := f.shim("--root", f.runcRoot(), "checkpoint", "--image-path", filepath.Join(f.root, "img"), testID)
		if (code != 0) != fails {
			t.Errorf("dump fails: %v, exit %d: %s", fails, code, stderr)
		}
		calls := f.calls()
		if strings.Contains(calls, "pause "+testID) || strings.Contains(calls, "resume "+testID) {
			t.Errorf("crhook paused or resumed a container its owner paused:\n%s", calls)
		}
		if !fileExists(filepath.Join(f.dir, "paused")) {
			t.Error("the owner's pause was undone")
		}
	}
}

// TestDeleteNotHeldWithoutServing: only a serving plan holds a delete.
func TestDeleteNotHeldWithoutServing(t *testing.T) {
	for _, p := range []*migrate.Plan{nil, lazyPlan(migrate.StatusPlanned), lazyPlan(migrate.StatusRestored)} {
		f := lazyFake(t, p)
		if f.shim("--root", f.runcRoot(), "delete", "--force", testID); !f.ran("delete") {
			t.Errorf("delete held for plan %+v", p)
		}
	}
}
