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
			c, err := Decide(tt.facts)
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
		if _, err := Decide(f); !errors.Is(err, ErrMode) {
			t.Errorf("Decide(%+v) error %v, want ErrMode", f, err)
		}
	}
}
