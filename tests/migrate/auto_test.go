//go:build e2e

package migrate

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// autoFacts is the "measured" object of `crhook migrate --format json`
// (dry run and summary) with --mode auto.
type autoFacts struct {
	MemoryBytes     int64            `json:"memory_bytes"`
	Processes       int              `json:"processes"`
	WorkingSetBytes int64            `json:"working_set_bytes"`
	Bandwidth       float64          `json:"bandwidth_bytes_per_second"`
	BandwidthHow    string           `json:"bandwidth"`
	SoftDirty       bool             `json:"soft_dirty"`
	LazyPages       bool             `json:"lazy_pages"`
	Evidence        []string         `json:"evidence"`
	BuiltModes      []string         `json:"built_modes"`
	BestMode        string           `json:"best_mode"`
	EstimatesMS     map[string]int64 `json:"estimates_ms"`
}

// another starts a second memhog container on B in m's bed, with memhog
// flags extra (-sweep 2s: the full-sweep workload).
func (m *podmanMigration) another(t *testing.T, extra ...string) *podmanMigration {
	t.Helper()
	o := &podmanMigration{h: m.h, name: m.name + "-2", ctl: m.ctl + "-2", mib: m.mib, sshConfig: m.sshConfig, dest: m.dest, cutSSH: m.cutSSH}
	must(t, os.MkdirAll(o.ctl, 0o777))
	t.Cleanup(func() {
		_ = exec.Command("podman", "rm", "-f", "-t", "0", o.name).Run()
		_ = o.h.cmd("podman", "rm", "-f", "-t", "0", o.name).Run()
	})
	seed := strconv.FormatUint(rand.Uint64()>>1, 10)
	m.h.mustSSH(t, fmt.Sprintf("podman run -d --name %s --runtime crhook --network none --ulimit nofile=1024:1024 --ulimit nproc=4096:4096 -v %s:/ctl %s /memhog -mib %d -seed %s -ctl /ctl %s",
		o.name, o.ctl, memhogImage, o.mib, seed, strings.Join(extra, " ")))
	eventually(t, 60*time.Second, "memhog "+o.name+" ready on B", func() bool {
		_, err := os.Stat(filepath.Join(o.ctl, "ready"))
		return err == nil
	})
	o.ask(t, "reset", 10*time.Second)
	return o
}

// dryRunAuto runs `crhook migrate --dry-run --format json` with the
// default mode on B and returns the mode, the decision and the facts.
func (m *podmanMigration) dryRunAuto(t *testing.T) (string, string, autoFacts) {
	t.Helper()
	r := runCmd(t, m.h.cmd("crhook", "migrate", m.name, m.dest, "--ssh-config", m.sshConfig, "--dry-run", "--format", "json"))
	var d struct {
		Mode     string     `json:"mode"`
		Decision string     `json:"decision"`
		Measured *autoFacts `json:"measured"`
	}
	if err := json.Unmarshal([]byte(r.out), &d); err != nil || r.code != 0 {
		t.Fatalf("crhook migrate --dry-run of %s: %v: %s", m.name, err, r)
	}
	if d.Measured == nil {
		t.Fatalf("crhook migrate --dry-run of %s (default mode) shows no measured facts: %s", m.name, r.out)
	}
	return d.Mode, d.Decision, *d.Measured
}

// TestCrhookMigrateAuto: `--mode auto` (the default) measures before it
// freezes anything. Two memhog containers of the same size on B, one
// touching almost nothing (small working set), one rewriting all its
// memory every 2 s (full sweep): the dry run must show the same memory to
// move for both, and working sets far apart, measured without soft-dirty
// (this host has none); the decision and its reason follow. Then both
// are really migrated with the default mode, every page verified on A.
func TestCrhookMigrateAuto(t *testing.T) {
	small := setupPodmanMigration(t, "crhook-ta", 20)
	sweep := small.another(t, "-sweep", "2s")
	mem := int64(small.mib) << 20

	smallMode, smallWhy, sf := small.dryRunAuto(t)
	sweepMode, sweepWhy, wf := sweep.dryRunAuto(t)
	t.Logf("small working set: mode %s: %s\nfacts %+v", smallMode, smallWhy, sf)
	t.Logf("full sweep: mode %s: %s\nfacts %+v", sweepMode, sweepWhy, wf)
	for _, f := range []autoFacts{sf, wf} {
		// Memory to move: memhog's buffer plus a little Go runtime.
		if f.MemoryBytes < mem || f.MemoryBytes > mem+mem/2 || f.Processes != 1 {
			t.Errorf("memory to move %d bytes in %d processes, want about %d in 1", f.MemoryBytes, f.Processes, mem)
		}
		if f.Bandwidth <= 0 || !strings.Contains(f.BandwidthHow, "ssh") {
			t.Errorf("bandwidth %v (%q): want ssh's measured throughput", f.Bandwidth, f.BandwidthHow)
		}
		if !f.LazyPages || f.SoftDirty || len(f.BuiltModes) == 0 {
			t.Errorf("facts %+v: want lazy pages, no soft-dirty (this host), the built modes", f)
		}
	}
	if sf.WorkingSetBytes > mem/8 {
		t.Errorf("small working set measured at %d bytes of %d", sf.WorkingSetBytes, mem)
	}
	if wf.WorkingSetBytes < mem*3/4 {
		t.Errorf("full sweep's working set measured at %d bytes of %d", wf.WorkingSetBytes, mem)
	}
	// At 64 MiB both go lazily: its freeze is shorter than a stream's,
	// and the lazy-pages daemon pushes even the full sweep's 64 MiB
	// within the grace, so both lazy estimates are the freeze alone
	// (streaming a full sweep wins past about 425 MiB here,
	// docs/migration.md).
	if smallMode != "lazy" || !strings.HasPrefix(smallWhy, "lazy: effective downtime") || strings.Contains(smallWhy, "would do better") ||
		sf.BestMode != "lazy" {
		t.Errorf("small working set: mode %s, best %s: %s", smallMode, sf.BestMode, smallWhy)
	}
	if sweepMode != "lazy" || !strings.HasPrefix(sweepWhy, "lazy: effective downtime") || wf.BestMode != "lazy" {
		t.Errorf("full sweep: mode %s, best %s: %s", sweepMode, wf.BestMode, sweepWhy)
	}
	if wf.EstimatesMS["lazy"] != sf.EstimatesMS["lazy"] || !strings.Contains(sweepWhy, "within the") {
		t.Errorf("lazy estimates: full sweep %d ms (%s), small working set %d ms", wf.EstimatesMS["lazy"], sweepWhy, sf.EstimatesMS["lazy"])
	}
	for _, m := range []*podmanMigration{small, sweep} {
		if got := m.state(t, true); got != "" {
			t.Fatalf("--dry-run left %s on A: %s", m.name, got)
		}
		if got := m.state(t, false); got != "running" {
			t.Fatalf("--dry-run touched %s on B: %s", m.name, got)
		}
	}

	// The real thing, with the default mode, for both workloads; the
	// second on a terminal, where progress is drawn.
	for _, m := range []*podmanMigration{sweep, small} {
		start := time.Now()
		var (
			r        result
			s        map[string]any
			progress string
		)
		if m == small {
			r, s, progress = m.migrateOnTTY(t, "--mode", "auto")
		} else {
			r, s = m.migrate(t, "--mode", "auto")
		}
		took := time.Since(start)
		if r.code != 0 {
			t.Fatalf("crhook migrate --mode auto %s: %s", m.name, r)
		}
		if got := m.state(t, true); got != "running" {
			t.Fatalf("%s on A after the migration: %q, want running", m.name, got)
		}
		if got := m.state(t, false); got == "running" || got == "" {
			t.Fatalf("%s on B after the migration: %q, want stopped", m.name, got)
		}
		line := m.ask(t, "check", 120*time.Second)
		got := fields(line)
		if got["bad"] != "0" || got["pages"] != strconv.Itoa(m.mib<<8) {
			t.Fatalf("memory of %s on A after the migration: %s (want %d pages, 0 bad)", m.name, line, m.mib<<8)
		}
		m.noTasksOnB(t, s)
		measured, _ := s["measured"].(map[string]any)
		decision, _ := s["decision"].(string)
		want := "lazy" // as the dry runs decided
		if s["mode"] != want || !strings.HasPrefix(decision, want+": effective downtime") || measured == nil || measured["memory_bytes"] == nil {
			t.Errorf("summary of %s: mode %v, decision %q, measured %v", m.name, s["mode"], decision, measured)
		}
		if m == small {
			checkProgress(t, m.name, progress)
		}
		gap, _ := strconv.Atoi(got["max_gap_us"])
		t.Logf("%s: crhook migrate --mode auto in %v, heartbeat gap %v, downtime estimate %v ms, decision %q",
			m.name, took.Round(time.Millisecond), (time.Duration(gap) * time.Microsecond).Round(time.Millisecond), s["downtime_estimate_ms"], decision)
	}
}

// migrateOnTTY is migrate with stderr on a terminal (script(1) gives it
// one): it returns what was drawn before the JSON summary too.
func (m *podmanMigration) migrateOnTTY(t *testing.T, extra ...string) (result, map[string]any, string) {
	t.Helper()
	args := append([]string{"crhook", "migrate", m.name, m.dest, "--mode", "lazy", "--ssh-config", m.sshConfig,
		"--format", "json", "--connect-timeout", "20s", "--no-progress-timeout", "30s", "--timeout", "5m"}, extra...)
	for i, a := range args {
		args[i] = "'" + a + "'"
	}
	r := runCmd(t, m.h.cmd("script", "-qefc", strings.Join(args, " "), "/dev/null"))
	i := strings.Index(r.out, "\n{")
	if i < 0 {
		t.Fatalf("crhook migrate on a terminal printed no JSON summary: %q", r.out)
	}
	var s map[string]any
	if err := json.Unmarshal([]byte(r.out[i+1:]), &s); err != nil {
		t.Fatalf("summary: %v: %q", err, r.out[i+1:])
	}
	return r, s, r.out[:i]
}

// checkProgress: on a terminal, one line rewritten with carriage
// returns through every phase, the pages phase with the memory measured
// before as its total and an ETA, and no escape sequence.
func checkProgress(t *testing.T, name, out string) {
	t.Helper()
	var pages string
	for _, l := range strings.Split(out, "\r") {
		if strings.Contains(l, ": pages ") {
			pages = l
		}
	}
	t.Logf("progress: %d redraws, last pages line %q", strings.Count(out, "\r"), pages)
	for _, want := range []string{"\rmigrate " + name + ": prepare", "\rmigrate " + name + ": checkpoint", "\rmigrate " + name + ": done"} {
		if !strings.Contains(out, want) {
			t.Errorf("progress lacks %q: %q", want, out)
		}
	}
	if pages == "" || !strings.Contains(pages, " MiB (") || !strings.Contains(pages, "ETA ") {
		t.Errorf("no pages line with a total and an ETA: %q", out)
	}
	// The bytes counted reach the memory measured before (most of it by
	// the last poll): the I/O-to-page conversion is right.
	if m := regexp.MustCompile(`\((\d+)%\)`).FindStringSubmatch(pages); m == nil {
		t.Errorf("no percentage in %q", pages)
	} else if pct, _ := strconv.Atoi(m[1]); pct < 50 {
		t.Errorf("the pages phase ended at %d%% of the memory measured: %q", pct, pages)
	}
	if strings.ContainsRune(out, 0x1b) {
		t.Errorf("escape sequence in the progress: %q", out)
	}
}
