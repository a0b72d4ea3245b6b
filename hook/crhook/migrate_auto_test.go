package main

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/crhook/crhook/engine/doctor"
	"github.com/crhook/crhook/engine/migrate"
	"github.com/crhook/crhook/engine/migrate/orchestrate"
)

// TestCheckModes: lazy and pre-copy are judged by doctor's migrate.*
// verdicts on both ends (one copy of each rule), and the reason a mode is
// out names the host, the fact and the fix.
func TestCheckModes(t *testing.T) {
	ok := func(id string, ev ...string) doctor.Result {
		return doctor.Result{ID: id, Status: doctor.OK, Evidence: ev}
	}
	warn := func(id, fix string, ev ...string) doctor.Result {
		return doctor.Result{ID: id, Status: doctor.Warn, Evidence: ev, Fix: fix}
	}
	here := []doctor.Result{
		ok("migrate.uffd", "criu check --feature uffd-noncoop: uffd-noncoop is supported"),
		ok("migrate.lazy_pipe", "fs.pipe-max-size = 4194304 >= 4194304"),
		warn("migrate.soft_dirty", "boot a kernel with CONFIG_MEM_SOFT_DIRTY=y", "criu check --feature mem_dirty_track: exit status 1: Dirty tracking is OFF"),
	}
	smallPipe := []doctor.Result{here[0], warn("migrate.lazy_pipe", "sysctl -w fs.pipe-max-size=4194304", "CapEff lacks CAP_SYS_RESOURCE", "fs.pipe-max-size = 1048576 < 4194304"), here[2]}
	softDirty := []doctor.Result{here[0], here[1], ok("migrate.soft_dirty", "criu check --feature mem_dirty_track: Dirty tracking is ON")}
	dest := &remoteDoctor{Schema: 1, Checks: []doctor.Result{ok("migrate.uffd", "uffd-noncoop is supported")}, Versions: &doctor.Versions{Runtime: "runc"}}
	destNoUffd := &remoteDoctor{Schema: 1, Checks: []doctor.Result{warn("migrate.uffd", "boot a kernel built with CONFIG_USERFAULTFD=y", "criu check --feature uffd: exit status 1")},
		Versions: &doctor.Versions{Runtime: "runc"}}
	destCrun := &remoteDoctor{Schema: 1, Checks: dest.Checks, Versions: &doctor.Versions{Runtime: "crun"}}
	tests := []struct {
		name            string
		local           []doctor.Result
		runtime         string
		remote          *remoteDoctor
		remoteErr       error
		lazy, softDirty bool
		noLazy          []string
		evidence        []string
	}{
		{"this host to itself", here, "runc", dest, nil, true, false, nil,
			[]string{"source: migrate.uffd ok: criu check", "destination: runtime runc", "source: migrate.soft_dirty warn: criu check --feature mem_dirty_track"}},
		{"small pipes on the source", smallPipe, "runc", dest, nil, false, false,
			[]string{"source: fs.pipe-max-size = 1048576 < 4194304 (fix: sysctl -w fs.pipe-max-size=4194304)"}, nil},
		{"soft-dirty on the source", softDirty, "runc", dest, nil, true, true, nil, nil},
		{"no userfaultfd on the destination", here, "runc", destNoUffd, nil, false, false,
			[]string{"destination: criu check --feature uffd: exit status 1 (fix: boot a kernel built with CONFIG_USERFAULTFD=y)"}, nil},
		{"crun on the source", here, "crun", dest, nil, false, false, []string{"source: the runtime is crun, which has no --lazy-pages"}, nil},
		{"crun on the destination", here, "runc", destCrun, nil, false, false, []string{"destination: the runtime is crun"}, nil},
		{"destination could not be checked", here, "runc", nil, errors.New("run crhook doctor on b: exit status 127: crhook: not found"), true, false, nil,
			[]string{"destination: not checked: run crhook doctor on b: exit status 127"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			mc := checkModes(tt.local, tt.runtime, tt.remote, tt.remoteErr)
			if mc.lazy != tt.lazy || mc.softDirty != tt.softDirty {
				t.Fatalf("lazy %v soft-dirty %v (%q), want %v %v", mc.lazy, mc.softDirty, mc.noLazy, tt.lazy, tt.softDirty)
			}
			for _, s := range tt.noLazy {
				if !strings.Contains(mc.noLazy, s) {
					t.Errorf("reason %q lacks %q", mc.noLazy, s)
				}
			}
			ev := strings.Join(mc.evidence, "\n")
			for _, s := range tt.evidence {
				if !strings.Contains(ev, s) {
					t.Errorf("evidence lacks %q:\n%s", s, ev)
				}
			}
		})
	}
}

// sampleDryRun is --dry-run of an auto migration on this test machine:
// small working set, lazy built, stream not.
func sampleDryRun(t *testing.T) dryRun {
	t.Helper()
	f := migrate.Facts{LazyPages: true, MemoryBytes: 67 << 20, WorkingSetBytes: 300 << 10, Bandwidth: 350 << 20, MaxDowntime: 2 * time.Second}
	c, err := migrate.Decide(f, builtModes)
	if err != nil {
		t.Fatal(err)
	}
	m := &measured{MemoryBytes: f.MemoryBytes, Processes: 1, WorkingSetBytes: f.WorkingSetBytes, WorkingSetWindowMS: 2000,
		BandwidthBytesPerSecond: int64(f.Bandwidth), Bandwidth: "ssh's throughput to ssh://hosta:2222 (a transfer to cat >/dev/null there): 32.0 MiB in 91ms: 350.0 MiB/s",
		LazyPages: true, Evidence: []string{"source: migrate.uffd ok: criu check --feature uffd-noncoop: uffd-noncoop is supported",
			"source: runtime runc", "destination: migrate.uffd ok: criu check --feature uffd-noncoop: uffd-noncoop is supported", "destination: runtime runc",
			"source: migrate.soft_dirty warn: criu check --feature mem_dirty_track: exit status 1: Dirty tracking is OFF"},
		MaxDowntimeMS: 2000, BuiltModes: builtModes}
	m.record(c)
	return dryRun{Container: "web", ID: "3c712a82ce7648d2b0f1a1d4e2c5b6a7980f1e2d3c4b5a69788796a5b4c3d2e1", Running: true,
		Destination: migrate.Destination{Host: "hosta", Port: 2222, From: "ssh://hosta:2222"}, Mode: string(c.Mode), Decision: c.Reason,
		PageServer: migrate.PageServer{Address: "10.254.0.6", Port: 40123},
		Timeouts:   migrate.Timeouts{Connect: migrate.Duration(30 * time.Second), NoProgress: migrate.Duration(time.Minute), Total: migrate.Duration(30 * time.Minute)},
		Facts:      map[string]string{"lazy_dump": "possible", "migrate.lazy_pipe": "ok: fs.pipe-max-size = 4194304 >= 4194304"},
		Measured:   m, Steps: []string{"make a CA", "copy FILE"}}
}

// TestDryRunGolden pins --dry-run's text and JSON for --mode auto: the
// facts measured, the decision and its reason (go test -update rewrites).
func TestDryRunGolden(t *testing.T) {
	for _, format := range []string{"text", "json"} {
		t.Run(format, func(t *testing.T) {
			var buf bytes.Buffer
			if err := writeDryRun(&buf, format, sampleDryRun(t)); err != nil {
				t.Fatal(err)
			}
			name := "migrate-dry-run.txt"
			if format == "json" {
				name = "migrate-dry-run.json"
			}
			golden(t, name, buf.Bytes())
		})
	}
}

// TestProgressLines pins the progress line through a migration (golden),
// and the ETA arithmetic: the rest of the measured memory at the rate
// seen so far in the pages phase.
func TestProgressLines(t *testing.T) {
	const MiB = 1 << 20
	states := []progressState{
		{Container: "web", Phase: orchestrate.PhasePrepare, Elapsed: 10 * time.Millisecond},
		{Container: "web", Phase: orchestrate.PhaseCheckpoint, Elapsed: 450 * time.Millisecond},
		{Container: "web", Phase: orchestrate.PhasePages, Elapsed: 2 * time.Second, Total: 64 * MiB},
		{Container: "web", Phase: orchestrate.PhasePages, Elapsed: 3 * time.Second, Total: 64 * MiB, Moved: 16 * MiB, PagesElapsed: time.Second},
		{Container: "web", Phase: orchestrate.PhasePages, Elapsed: 5 * time.Second, Total: 64 * MiB, Moved: 48 * MiB, PagesElapsed: 3 * time.Second},
		{Container: "web", Phase: orchestrate.PhasePages, Elapsed: 6 * time.Second, Total: 64 * MiB, Moved: 70 * MiB, PagesElapsed: 4 * time.Second},
		{Container: "web", Phase: orchestrate.PhasePages, Elapsed: 9 * time.Second, Total: 64 << 30, Moved: 1 << 30, PagesElapsed: 2 * time.Second},
		{Container: "web", Phase: orchestrate.PhasePages, Elapsed: 3 * time.Second, Moved: 8 * MiB, PagesElapsed: time.Second},
		{Container: "a-very-long-container-name-that-goes-on-and-on", Phase: orchestrate.PhasePages, Total: 1 << 40, Moved: 1 << 39, PagesElapsed: time.Second},
		{Container: "evil\x1b]0;pwned\x07\r\x1b[2J", Phase: orchestrate.PhaseDone, Elapsed: 7 * time.Second},
	}
	var buf bytes.Buffer
	for _, s := range states {
		l := s.line()
		if n := len([]rune(l)); n > progressWidth {
			t.Errorf("line of %d runes: %q", n, l)
		}
		if strings.ContainsAny(l, "\x1b\r\n\a") {
			t.Errorf("control bytes in %q", l)
		}
		buf.WriteString(l + "\n")
	}
	golden(t, "migrate-progress.txt", buf.Bytes())

	for _, tt := range []struct {
		s    progressState
		rate float64
		want string
	}{
		{progressState{Total: 64 * MiB, Moved: 16 * MiB}, 16 * MiB, "3.0s"},
		{progressState{Total: 64 * MiB, Moved: 64 * MiB}, 16 * MiB, "0.0s"},
		{progressState{Total: 64 * MiB, Moved: 80 * MiB}, 16 * MiB, "0.0s"},
		{progressState{Total: 1 << 30, Moved: 0}, MiB, "17m4s"},
		{progressState{Total: 0, Moved: MiB}, MiB, ""},
		{progressState{Total: MiB}, 0, ""},
	} {
		got, ok := tt.s.eta(tt.rate)
		if got != tt.want || ok != (tt.want != "") {
			t.Errorf("eta(%+v, %v) = %q %v, want %q", tt.s, tt.rate, got, ok, tt.want)
		}
	}
}

// TestProgressDraw: one line rewritten with a carriage return, blanks
// left by a longer line, a newline at the end, and no escape byte even
// from a hostile container name.
func TestProgressDraw(t *testing.T) {
	clock := time.Unix(0, 0)
	var buf bytes.Buffer
	p := newProgress(&buf, "x\x1b[31m", 64<<20, func() time.Time { return clock })
	p.phase(orchestrate.PhasePrepare)
	clock = clock.Add(time.Second)
	p.phase(orchestrate.PhasePages)
	clock = clock.Add(time.Second)
	p.pages(32 << 20) // CRIU I/O of both ends: 32 MiB of pages
	p.pages(16 << 20) // one end's CRIU exited: its I/O left the sum
	clock = clock.Add(time.Second)
	p.phase(orchestrate.PhaseDone)
	p.done()
	out := buf.String()
	if strings.ContainsRune(out, 0x1b) {
		t.Fatalf("escape byte written: %q", out)
	}
	pages := "migrate x?[31m: pages 32.0/64.0 MiB (50%), ETA 1.0s, 32.0 MiB/s, 8192 pages"
	done := "migrate x?[31m: done, 3.0s"
	want := "\rmigrate x?[31m: prepare, 0.0s" +
		"\rmigrate x?[31m: pages 0.0/64.0 MiB (0%), ETA -, 0.0 KiB/s, 0 pages" +
		"\r" + pages + "\r" + pages +
		"\r" + done + strings.Repeat(" ", len(pages)-len(done)) + "\n"
	if out != want {
		t.Errorf("drawn:\n%q\nwant\n%q", out, want)
	}
}
