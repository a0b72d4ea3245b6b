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
	tests := []struct {
		name   string
		facts  Facts
		want   Mode
		reason []string
	}{
		{"256M small working set", with(here, 256*MiB, 16*MiB), ModeLazy, []string{"lazy: effective downtime about 84ms", "stream about 537ms", "precopy needs soft-dirty"}},
		{"256M full sweep", with(here, 256*MiB, 256*MiB), ModeStream, []string{"stream: effective downtime about 537ms", "lazy about 1.342s"}},
		{"1G small working set", with(here, GiB, 40*MiB), ModeLazy, []string{"lazy:", "stream about 2.147s"}},
		{"1G full sweep", with(here, GiB, GiB), ModeStream, []string{"stream: effective downtime about 2.147s", "over the 1s budget, but no mode does better"}},
		{"1G small working set, soft-dirty", with(softDirty, GiB, 40*MiB), ModePrecopy, []string{"precopy: effective downtime about 84ms", "lazy about 210ms"}},
		{"1G full sweep, soft-dirty: tie goes to stream", with(softDirty, GiB, GiB), ModeStream, []string{"precopy about 2.147s"}},
		{"1G small working set, crun", with(crun, GiB, 40*MiB), ModeStream, []string{"lazy: crun has no --lazy-pages"}},
		{"working set larger than memory is memory", with(here, 64*MiB, GiB), ModeStream, []string{"lazy about 336ms"}},
		{"empty container", with(here, 0, 0), ModeStream, []string{"stream: effective downtime about 0s"}},
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
			[]string{"lazy: effective downtime about 5ms", "stream about 537ms (not built)", "precopy needs soft-dirty"}, []string{"would do better"}},
		{"full sweep, lazy built: stream would be best, lazy runs", with(here, 256*MiB, 128*MiB), lazyOnly, ModeLazy, ModeStream,
			[]string{"lazy: effective downtime about 671ms", "stream would do better (about 537ms) but this crhook does not build it yet"}, []string{"(not built)"}},
		{"full sweep, stream built: stream", with(here, 256*MiB, 128*MiB), withStream, ModeStream, ModeStream,
			[]string{"stream: effective downtime about 537ms", "; lazy about 671ms"}, []string{"not built", "would do better"}},
		{"small working set, stream built: still lazy", with(here, 256*MiB, 1*MiB), withStream, ModeLazy, ModeLazy,
			[]string{"lazy:", "; stream about 537ms"}, []string{"not built"}},
		{"over budget, but the best mode is not built", with(here, 512*MiB, 512*MiB), lazyOnly, ModeLazy, ModeStream,
			[]string{"lazy: effective downtime about 2.684s", "stream would do better (about 1.074s)", "; over the 2s budget"}, []string{"no mode does better"}},
		{"over budget, no mode does better", with(here, 4096*MiB, 4096*MiB), lazyOnly, ModeLazy, ModeStream,
			[]string{"stream would do better (about 8.59s)", "; over the 2s budget, but no mode does better"}, nil},
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
