package migrate

// What the migration benchmark (bench_test.go, `make bench`) reads from a
// workload's timeline. No build tag: the definitions are unit-tested in
// `make test` on made-up timelines; only the measuring needs the host.

import (
	"errors"
	"fmt"
	"sort"
	"time"
)

// timelineData is memhog's timeline.json: the time of each heartbeat and
// the start and end of each sweep of its working set, Unix nanoseconds.
type timelineData struct {
	Beats  []int64    `json:"beats"`
	Sweeps [][2]int64 `json:"sweeps"`
}

// The factors that make an interval or a sweep "slow" (docs/migration.md,
// "Performance"): wide enough that a busy two-core machine does not trip
// them before a migration, narrow enough that a workload faulting its
// pages in over the network does.
const (
	slowBeatFactor  = 5                     // × the median heartbeat interval before the migration
	slowBeatFloor   = 50 * time.Millisecond // and never under 50 ms
	slowSweepFactor = 2                     // × the median sweep duration before the migration
	slowSweepSlack  = 20 * time.Millisecond // plus this, for working sets that sweep in a few ms
)

// effect is what a migration did to the workload.
type effect struct {
	// Downtime is the largest heartbeat gap that ends after the migration
	// started: from the last heartbeat before the freeze to the first after.
	Downtime time.Duration
	// Effective runs from the same last heartbeat to the end of the last
	// slow heartbeat interval or slow sweep: from then on the workload
	// runs at its pre-migration speed.
	Effective time.Duration
	// Steady: a whole sweep (or, without sweeps, 50 heartbeats) ran at
	// full speed after Effective ended, so the end was seen, not cut off
	// by the end of the timeline.
	Steady bool
	// BaseBeat and BaseSweep are the medians before the migration.
	BaseBeat, BaseSweep time.Duration
}

// analyse measures a migration that started at start (Unix ns) in tl.
func analyse(tl timelineData, start int64) (effect, error) {
	var e effect
	var beats, sweeps []time.Duration
	for i := 1; i < len(tl.Beats) && tl.Beats[i] < start; i++ {
		beats = append(beats, time.Duration(tl.Beats[i]-tl.Beats[i-1]))
	}
	if len(beats) < 10 {
		return e, fmt.Errorf("only %d heartbeats before the migration: too few for a baseline", len(beats)+1)
	}
	for _, s := range tl.Sweeps {
		if s[1] != 0 && s[1] < start {
			sweeps = append(sweeps, time.Duration(s[1]-s[0]))
		}
	}
	e.BaseBeat = medianDur(beats)
	if len(sweeps) > 0 {
		e.BaseSweep = medianDur(sweeps)
	} else if len(tl.Sweeps) > 0 {
		return e, errors.New("no sweep completed before the migration: no baseline for the sweeps")
	}
	// The freeze: the largest gap that ends after the migration started.
	freeze := -1
	for i := 0; i+1 < len(tl.Beats); i++ {
		if tl.Beats[i+1] <= start {
			continue
		}
		if freeze < 0 || tl.Beats[i+1]-tl.Beats[i] > tl.Beats[freeze+1]-tl.Beats[freeze] {
			freeze = i
		}
	}
	if freeze < 0 {
		return e, errors.New("no heartbeat after the migration started")
	}
	t0 := tl.Beats[freeze]
	e.Downtime = time.Duration(tl.Beats[freeze+1] - t0)
	steady := tl.Beats[freeze+1]
	slowBeat := max(slowBeatFactor*e.BaseBeat, slowBeatFloor)
	for i := freeze + 1; i+1 < len(tl.Beats); i++ {
		if time.Duration(tl.Beats[i+1]-tl.Beats[i]) > slowBeat {
			steady = max(steady, tl.Beats[i+1])
		}
	}
	slowSweep := slowSweepFactor*e.BaseSweep + slowSweepSlack
	last := tl.Beats[len(tl.Beats)-1]
	unfinished := false
	for _, s := range tl.Sweeps {
		switch {
		case s[1] == 0 && last-s[0] > int64(slowSweep):
			// Still running, and already slow: slow at least until now.
			steady, unfinished = max(steady, last), true
		case s[1] > t0 && time.Duration(s[1]-s[0]) > slowSweep:
			// A sweep the freeze interrupted counts: the freeze slowed it.
			steady = max(steady, s[1])
		}
	}
	e.Effective = time.Duration(steady - t0)
	if len(tl.Sweeps) > 0 {
		for _, s := range tl.Sweeps {
			e.Steady = e.Steady || (s[0] >= steady && s[1] != 0)
		}
		e.Steady = e.Steady && !unfinished
	} else {
		n := 0
		for _, b := range tl.Beats {
			if b > steady {
				n++
			}
		}
		e.Steady = n >= 50
	}
	return e, nil
}

func medianDur(d []time.Duration) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := append([]time.Duration(nil), d...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}
