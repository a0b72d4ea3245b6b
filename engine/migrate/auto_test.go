package migrate

import (
	"errors"
	"strings"
	"testing"
	"time"
)

// TestDecide covers issue 13's benchmark workloads (256 MiB and 1 GiB;
// small working set or a full sweep) on this machine (no soft-dirty,
// lazy pages work, about 0.5 GB/s) and on hosts with soft-dirty or
// without lazy pages (crun).
func TestDecide(t *testing.T) {
	const (
		MiB = 1 << 20
		GiB = 1 << 30
		bw  = 0.5e9
	)
	here := Facts{LazyPages: true, Bandwidth: bw, MaxDowntime: time.Second}
	softDirty := here
	softDirty.SoftDirty = true
	crun := Facts{NoLazyReason: "crun has no --lazy-pages", Bandwidth: bw, MaxDowntime: time.Second}
	with := func(f Facts, mem, ws int64) Facts { f.MemoryBytes, f.WorkingSetBytes = mem, ws; return f }
	// The bench's full sweeps measured auto's bandwidth (ssh's) at about
	// 430 MiB/s; at 1 GiB stream and lazy are within 10 % of each other.
	bench := here
	bench.Bandwidth = 430 * MiB
	softCrun := crun
	softCrun.SoftDirty = true
	tests := []struct {
		name   string
		facts  Facts
		want   Mode
		reason []string
	}{
		{"256M small working set", with(here, 256*MiB, 16*MiB), ModeLazy, []string{"lazy: effective downtime about 542ms", "stream about 1.421s", "precopy needs soft-dirty"}},
		{"256M full sweep: lazy (measured: settles in 0.55 s, stream 1.48 s)", with(here, 256*MiB, 256*MiB), ModeLazy, []string{"lazy: effective downtime about 1.171s", "stream about 1.421s"}},
		{"1G small working set", with(here, GiB, 40*MiB), ModeLazy, []string{"lazy: effective downtime about 605ms", "stream about 3.192s"}},
		{"1G full sweep: stream (measured: 3.44 s, lazy 3.77 s)", with(bench, GiB, GiB), ModeStream, []string{"stream: effective downtime about 3.45s", "lazy about 3.477s", "over the 1s budget, but no mode does better"}},
		{"1G small working set, soft-dirty: lazy's freeze is shorter", with(softDirty, GiB, 40*MiB), ModeLazy, []string{"precopy about 922ms"}},
		{"1G small working set, soft-dirty, crun", with(softCrun, GiB, 40*MiB), ModePrecopy, []string{"precopy: effective downtime about 922ms", "lazy: crun has no --lazy-pages"}},
		{"1G full sweep, soft-dirty, crun: tie goes to stream", with(softCrun, GiB, GiB), ModeStream, []string{"precopy about 3.192s"}},
		{"1G small working set, crun", with(crun, GiB, 40*MiB), ModeStream, []string{"lazy: crun has no --lazy-pages"}},
		{"working set larger than memory is memory", with(here, 64*MiB, GiB), ModeLazy, []string{"lazy: effective downtime about 668ms", "stream about 978ms"}},
		{"empty container", with(here, 0, 0), ModeLazy, []string{"lazy: effective downtime about 500ms", "stream about 830ms"}},
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
			[]string{"lazy: effective downtime about 503ms", "stream about 1.421s (not built)", "precopy needs soft-dirty"}, []string{"would do better"}},
		{"full sweep, lazy built: stream would be best, lazy runs", with(here, 2048*MiB, 2048*MiB), lazyOnly, ModeLazy, ModeStream,
			[]string{"lazy: effective downtime about 5.869s", "stream would do better (about 5.554s) but this crhook does not build it yet",
				"; over the 2s budget, but no mode does better"}, []string{"(not built)"}},
		{"full sweep, stream built: stream", with(here, 2048*MiB, 2048*MiB), withStream, ModeStream, ModeStream,
			[]string{"stream: effective downtime about 5.554s", "; lazy about 5.869s"}, []string{"not built", "would do better"}},
		{"small working set, stream built: still lazy", with(here, 256*MiB, 1*MiB), withStream, ModeLazy, ModeLazy,
			[]string{"lazy:", "; stream about 1.421s"}, []string{"not built"}},
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
