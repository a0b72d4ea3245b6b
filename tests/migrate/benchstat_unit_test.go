package migrate

import (
	"testing"
	"time"
)

// synth is a made-up workload timeline: a heartbeat every 10 ms and a
// sweep every 2 s taking sweep, from 0 to end, frozen from freeze for
// down; after the freeze the sweeps take slow until slowUntil.
func synth(end, freeze, down, sweep, slow, slowUntil time.Duration) timelineData {
	var tl timelineData
	for t := time.Duration(0); t < end; t += 10 * time.Millisecond {
		if t > freeze && t < freeze+down {
			continue
		}
		tl.Beats = append(tl.Beats, int64(t))
	}
	if sweep == 0 {
		return tl
	}
	for t := 2 * time.Second; t < end; t += 2 * time.Second {
		if t > freeze && t < freeze+down {
			t = freeze + down // the ticker fires once the process runs again
		}
		d := sweep
		if t >= freeze && t < slowUntil {
			d = slow
		}
		if t+d < end {
			tl.Sweeps = append(tl.Sweeps, [2]int64{int64(t), int64(t + d)})
		} else if t < end {
			tl.Sweeps = append(tl.Sweeps, [2]int64{int64(t), 0}) // still running
		}
		t += d - d%(2*time.Second)
	}
	return tl
}

func TestAnalyseMigrationTimeline(t *testing.T) {
	ms := time.Millisecond
	for _, c := range []struct {
		name                string
		tl                  timelineData
		start               time.Duration
		downtime, effective time.Duration
		steady              bool
	}{
		{
			name:  "stop-and-copy: the workload runs at full speed at once",
			tl:    synth(20*time.Second, 9000*ms, 2600*ms, 300*ms, 300*ms, 0),
			start: 8500 * ms, downtime: 2600 * ms, effective: 2600 * ms, steady: true,
		},
		{
			name: "post-copy: the first sweep after the restore faults every page in",
			tl:   synth(30*time.Second, 9000*ms, 900*ms, 300*ms, 5000*ms, 11*time.Second),
			// restored at 9.9 s; the sweep from 10 s to 15 s is slow
			start: 8500 * ms, downtime: 900 * ms, effective: 6000 * ms, steady: true,
		},
		{
			name:  "a sweep slowed by less than the factor is full speed",
			tl:    synth(30*time.Second, 9000*ms, 900*ms, 300*ms, 550*ms, 11*time.Second),
			start: 8500 * ms, downtime: 900 * ms, effective: 900 * ms, steady: true,
		},
		{
			name: "still slow when the timeline ends: not steady",
			tl:   synth(14*time.Second, 9000*ms, 900*ms, 300*ms, 4000*ms, 30*time.Second),
			// the sweep from 10 s still runs at 14 s, the last heartbeat 13.99 s
			start: 8500 * ms, downtime: 900 * ms, effective: 4990 * ms, steady: false,
		},
		{
			name:  "no sweeps: heartbeats alone",
			tl:    synth(12*time.Second, 5000*ms, 700*ms, 0, 0, 0),
			start: 4000 * ms, downtime: 700 * ms, effective: 700 * ms, steady: true,
		},
	} {
		t.Run(c.name, func(t *testing.T) {
			e, err := analyse(c.tl, int64(c.start))
			if err != nil {
				t.Fatal(err)
			}
			if e.Downtime != c.downtime || e.Effective != c.effective || e.Steady != c.steady {
				t.Errorf("analyse = downtime %v effective %v steady %v; want %v %v %v (baseline beat %v sweep %v)",
					e.Downtime, e.Effective, e.Steady, c.downtime, c.effective, c.steady, e.BaseBeat, e.BaseSweep)
			}
		})
	}
	// Too little before the migration is an error, not a number.
	if _, err := analyse(synth(time.Second, 2*time.Second, 0, 0, 0, 0), int64(50*ms)); err == nil {
		t.Error("a timeline without a baseline was measured")
	}
	if _, err := analyse(synth(3*time.Second, 5*time.Second, 0, 300*ms, 0, 0), int64(time.Second)); err == nil {
		t.Error("sweeps without one before the migration were measured")
	}
}
