package migrate

import (
	"errors"
	"strings"
	"testing"
	"time"
)

// TestDecideBench: the facts auto measured in the runs of `make bench`
// the model was fitted to (docs/migration.md, "How auto decides"; the
// reasons of the auto rows of /tmp/bench.log and /tmp/bench2.log of
// 2026-12-01: memory, working set and bandwidth as measured then, by the
// probe that timed its whole 32 MiB transfer and read 259-604 MiB/s on
// one link), and the mode that settled sooner in the same runs: lazy for
// a small working set and for the 256 MiB full sweep, stream for the
// 1 GiB full sweep. The models before missed some: the first streamed
// the 256 MiB full sweeps, the second chose lazy for the 1 GiB full sweep
// whose working set measured 860 MiB.
func TestDecideBench(t *testing.T) {
	const MiB = 1 << 20
	here := Facts{LazyPages: true, MaxDowntime: 2 * time.Second}
	tests := []struct {
		name    string
		mem, ws float64 // MiB
		bw      float64 // MiB/s
		want    Mode
	}{
		{"256M small ws", 259, 16.6, 508.6, ModeLazy},
		{"256M small ws", 259, 16.6, 465.6, ModeLazy},
		{"256M small ws", 259, 16.6, 484.2, ModeLazy},
		{"256M small ws", 259, 16.6, 604.3, ModeLazy},
		{"256M full sweep (first model: stream)", 259.0, 256.6, 430.6, ModeLazy},
		{"256M full sweep (first model: stream)", 259.3, 256.7, 442.2, ModeLazy},
		{"256M full sweep", 259.0, 256.8, 395.1, ModeLazy},
		{"256M full sweep", 259.0, 256.7, 478.1, ModeLazy},
		{"1G small ws", 1027.7, 16.6, 418.6, ModeLazy},
		{"1G small ws", 1027.7, 16.7, 285.8, ModeLazy},
		{"1G small ws", 1027.7, 16.6, 343.5, ModeLazy},
		{"1G small ws", 1027.7, 16.6, 259.0, ModeLazy},
		{"1G full sweep", 1027.7, 975.7, 416.7, ModeStream},
		{"1G full sweep", 1027.7, 924.3, 496.4, ModeStream},
		{"1G full sweep", 1027.7, 1007, 293.3, ModeStream},
		{"1G full sweep, 860 MiB of it measured (second model: lazy)", 1027.7, 859.8, 508.8, ModeStream},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := here
			f.MemoryBytes, f.WorkingSetBytes, f.Bandwidth = int64(tt.mem*MiB), int64(tt.ws*MiB), tt.bw*MiB
			c, err := Decide(f, modeOrder)
			if err != nil {
				t.Fatal(err)
			}
			if c.Mode != tt.want {
				t.Errorf("%.1f MiB, working set %.1f MiB at %.1f MiB/s: %s (%s), want %s", tt.mem, tt.ws, tt.bw, c.Mode, c.Reason, tt.want)
			}
		})
	}
}

// TestDecide covers the rule's parts on this machine's figures (no
// soft-dirty, lazy pages work, about 0.5 GB/s) and on hosts with
// soft-dirty or without lazy pages (crun).
func TestDecide(t *testing.T) {
	const (
		MiB = 1 << 20
		GiB = 1 << 30
		bw  = 500 * MiB
	)
	here := Facts{LazyPages: true, Bandwidth: bw, MaxDowntime: time.Second}
	softDirty := here
	softDirty.SoftDirty = true
	crun := Facts{NoLazyReason: "crun has no --lazy-pages", Bandwidth: bw, MaxDowntime: time.Second}
	with := func(f Facts, mem, ws int64) Facts { f.MemoryBytes, f.WorkingSetBytes = mem, ws; return f }
	softCrun := crun
	softCrun.SoftDirty = true
	tests := []struct {
		name   string
		facts  Facts
		want   Mode
		reason []string
	}{
		{"256M small working set", with(here, 256*MiB, 16*MiB), ModeLazy,
			[]string{"lazy: effective downtime about 500ms (500ms freeze; the 16.0 MiB working set is pushed in 51ms at 500.0 MiB/s x1.6, within the 1.5s grace)", "stream about 1.341s", "precopy needs soft-dirty"}},
		{"256M full sweep: pushed within the grace, lazy", with(here, 256*MiB, 256*MiB), ModeLazy,
			[]string{"lazy: effective downtime about 500ms", "pushed in 819ms", "stream about 1.341s"}},
		{"512M full sweep: over the grace, stream", with(here, 512*MiB, 512*MiB), ModeStream,
			[]string{"stream: effective downtime about 2.032s (650ms fixed, 512.0 MiB at 500.0 MiB/s x1.35)", "; lazy about 2.138s;"}},
		{"1G full sweep: stream", with(here, GiB, GiB), ModeStream,
			[]string{"stream: effective downtime about 3.415s", "lazy about 3.777s", "over the 1s budget, but no mode does better"}},
		{"1G, 860 MiB working set: lazy within the margin, stream", with(here, GiB, 860*MiB), ModeStream,
			[]string{"stream: effective downtime about 3.415s", "; lazy about 3.252s (+ 2.752s to push the 860.0 MiB working set at 500.0 MiB/s x1.6, over the 1.5s grace), within 15 %: stream preferred, after which the destination needs nothing more from the source"}},
		{"1G small working set, soft-dirty: lazy's freeze is shorter", with(softDirty, GiB, 40*MiB), ModeLazy, []string{"precopy about 758ms"}},
		{"1G small working set, soft-dirty, crun", with(softCrun, GiB, 40*MiB), ModePrecopy, []string{"precopy: effective downtime about 758ms", "lazy: crun has no --lazy-pages"}},
		{"1G full sweep, soft-dirty, crun: tie goes to stream", with(softCrun, GiB, GiB), ModeStream, []string{"precopy about 3.415s"}},
		{"1G small working set, crun", with(crun, GiB, 40*MiB), ModeStream, []string{"lazy: crun has no --lazy-pages"}},
		{"working set larger than memory is memory", with(here, 64*MiB, GiB), ModeLazy, []string{"the 64.0 MiB working set", "stream about 823ms"}},
		{"empty container", with(here, 0, 0), ModeLazy, []string{"lazy: effective downtime about 500ms", "stream about 650ms"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Decide(tt.facts, modeOrder)
			if err != nil {
				t.Fatal(err)
			}
			if c.Mode != tt.want {
				t.Fatalf("mode %s (%s), want %s", c.Mode, c.Reason, tt.want)
			}
			for _, r := range tt.reason {
				if !strings.Contains(c.Reason, r) {
					t.Errorf("reason %q lacks %q", c.Reason, r)
				}
			}
			if _, ok := c.Estimates[c.Mode]; !ok {
				t.Error("no estimate for the chosen mode")
			}
		})
	}
}

func TestDecideNeedsFacts(t *testing.T) {
	for _, f := range []Facts{
		{MemoryBytes: 1, MaxDowntime: time.Second},
		{Bandwidth: 1, MemoryBytes: -1, MaxDowntime: time.Second},
		{Bandwidth: 1, WorkingSetBytes: -1, MaxDowntime: time.Second},
		{Bandwidth: 1, MemoryBytes: 1},
	} {
		if _, err := Decide(f, modeOrder); !errors.Is(err, ErrMode) {
			t.Errorf("Decide(%+v) error %v, want ErrMode", f, err)
		}
	}
}

// TestDecideBuilt: auto chooses only among the modes this crhook runs
// (lazy today; the merge of stream adds it to builtModes in
// hook/crhook), says when the best mode for the facts is not built, and
// fails with the reason when no built mode can run here.
func TestDecideBuilt(t *testing.T) {
	const (
		MiB = 1 << 20
		bw  = 0.5e9
	)
	here := Facts{LazyPages: true, Bandwidth: bw, MaxDowntime: 2 * time.Second}
	noLazy := Facts{NoLazyReason: "fs.pipe-max-size = 1048576 < 4194304", Bandwidth: bw, MaxDowntime: 2 * time.Second}
	with := func(f Facts, mem, ws int64) Facts { f.MemoryBytes, f.WorkingSetBytes = mem, ws; return f }
	lazyOnly := []Mode{ModeLazy}
	withStream := []Mode{ModeLazy, ModeStream}
	tests := []struct {
		name       string
		facts      Facts
		built      []Mode
		want, best Mode
		reason     []string
		notReason  []string
	}{
		{"small working set, lazy built: lazy is best", with(here, 256*MiB, 1*MiB), lazyOnly, ModeLazy, ModeLazy,
			[]string{"lazy: effective downtime about 500ms", "stream about 1.375s (not built)", "precopy needs soft-dirty"}, []string{"would do better"}},
		{"full sweep, lazy built: stream would be best, lazy runs", with(here, 2048*MiB, 2048*MiB), lazyOnly, ModeLazy, ModeStream,
			[]string{"lazy: effective downtime about 7.372s", "stream would do better (about 6.448s) but this crhook does not build it yet",
				"; over the 2s budget, but no mode does better"}, []string{"(not built)"}},
		{"full sweep, stream built: stream", with(here, 2048*MiB, 2048*MiB), withStream, ModeStream, ModeStream,
			[]string{"stream: effective downtime about 6.448s", "; lazy about 7.372s"}, []string{"not built", "would do better"}},
		{"small working set, stream built: still lazy", with(here, 256*MiB, 1*MiB), withStream, ModeLazy, ModeLazy,
			[]string{"lazy:", "; stream about 1.375s"}, []string{"not built"}},
		{"no lazy pages, stream built", with(noLazy, 256*MiB, 1*MiB), withStream, ModeStream, ModeStream,
			[]string{"stream:", "lazy: fs.pipe-max-size = 1048576 < 4194304"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Decide(tt.facts, tt.built)
			if err != nil {
				t.Fatal(err)
			}
			if c.Mode != tt.want || c.Best != tt.best {
				t.Fatalf("mode %s, best %s (%s); want %s, best %s", c.Mode, c.Best, c.Reason, tt.want, tt.best)
			}
			for _, r := range tt.reason {
				if !strings.Contains(c.Reason, r) {
					t.Errorf("reason %q lacks %q", c.Reason, r)
				}
			}
			for _, r := range tt.notReason {
				if strings.Contains(c.Reason, r) {
					t.Errorf("reason %q has %q", c.Reason, r)
				}
			}
		})
	}

	// Lazy impossible and only lazy built: no mode, and the error says why.
	_, err := Decide(with(noLazy, 256*MiB, 1*MiB), lazyOnly)
	if !errors.Is(err, ErrMode) || !strings.Contains(err.Error(), "no mode this crhook runs (lazy) can move this container here: ") ||
		!strings.Contains(err.Error(), "fs.pipe-max-size = 1048576 < 4194304") {
		t.Errorf("Decide without a runnable built mode: %v", err)
	}
	if _, err := Decide(with(here, MiB, MiB), nil); !errors.Is(err, ErrMode) {
		t.Errorf("Decide with nothing built: %v, want ErrMode", err)
	}
}
