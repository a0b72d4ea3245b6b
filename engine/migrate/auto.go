package migrate

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

// Facts are what `--mode auto` decides on, all measured before anything
// is frozen (and shown by --dry-run).
type Facts struct {
	// SoftDirty: `criu check --feature mem_dirty_track` passes, so
	// pre-copy rounds can find what changed.
	SoftDirty bool
	// LazyPages: post-copy can run: userfaultfd usable, the wrapped
	// runtime supports --lazy-pages (runc; crun does not), and lazy dumps
	// can serve pages (CAP_SYS_RESOURCE or fs.pipe-max-size >= 4 MiB).
	LazyPages bool
	// NoLazyReason says why LazyPages is false, for the reason text.
	NoLazyReason string
	// MemoryBytes is the container's memory that must move.
	MemoryBytes int64
	// WorkingSetBytes is the memory the container touches within about a
	// second: what pre-copy leaves dirty each round, and what a lazily
	// restored container faults in before it runs at full speed.
	WorkingSetBytes int64
	// Bandwidth to the destination, bytes per second.
	Bandwidth float64
	// MaxDowntime is the user's budget (--max-downtime).
	MaxDowntime time.Duration
}

// The cost model: each mode's effective downtime (from the freeze until
// the container runs at full speed on the destination), with the
// bandwidth as auto measures it (orchestrate.MeasureBandwidth: ssh's
// throughput over half a second; 395-542 MiB/s, mean 454, in the bench's
// workloads here). Fitted to `make bench` on the 2-core test machine,
// host B to A over a veth pair (docs/migration.md, "Auto: facts, rule,
// example"): full sweeps of 256, 512 and 768 MiB and 1 GiB, small working
// sets (16 MiB) of 256 MiB and 1 GiB, 2-4 runs of each mode each.
// Medians, effective downtime:
//
//	                  256 MiB  512 MiB  768 MiB  1 GiB
//	stream (either)    1.36 s   1.89 s   3.67 s  3.65 s
//	lazy, full sweep   0.49 s   2.23 s   4.32 s  3.98 s
//	lazy, small ws     0.50 s                    0.53 s
//
// stream: streamFixed + memory x streamByteCost / bandwidth, the
// least-squares line through the 20 streamed runs (0.65 s + 2.97 ms per
// MiB): pause, podman's export and import and the restore cost 0.65 s
// whatever the size, and CRIU's TLS page stream moves a byte 1.35 times
// as slowly as the probe (2.97 ms per MiB at 454 MiB/s).
//
// lazy: lazyFixed, its freeze (0.47-0.53 s whatever the size when the
// working set is small), plus, when the lazy-pages daemon cannot push the
// working set within lazyGrace of the restore, all of that push: working
// set x lazyPushCost / bandwidth. The daemon pushes every page while the
// container runs, at about 1.6x ssh's time per byte (3.3 ms per MiB: its
// pages phase took 1.55 s for 256 MiB, 3.8-4.5 s for 1 GiB). The
// container comes back to its working set some time after the restore:
// what arrived by then costs nothing, and a container that comes back
// before the push ended waits for the rest, faulting. The full sweeps
// show both sides: 256 MiB (0.9 s of push) settled at once, 512 MiB
// (1.8 s) waited about all of its push, as did 768 MiB and 1 GiB. A step,
// not a ramp: no straight line through those four points puts 256 MiB
// near 0 and 512 MiB near 1.7 s. lazyGrace sits between the two pushes,
// nearer the larger: a busy machine only lowers the measured bandwidth
// (the probe read 285-320 MiB/s while other tests loaded this one,
// 395-542 quiet), and at 1.5 s a 256 MiB full sweep stays within the
// grace down to 274 MiB/s while 512 MiB leaves it up to 546 MiB/s. A full
// sweep's crossover with stream is then at about 425 MiB at 454 MiB/s:
// between 256 MiB (lazy 2.8x quicker) and 512 MiB (stream 1.2x quicker).
//
// lazyMargin: the fits are good to about 15 % (stream's line is 15 % off
// at 512 MiB and 20 % at 768 MiB, lazy's 26 % at 768 MiB, under 5 %
// elsewhere), so lazy is chosen only when predicted more than 15 %
// quicker: after a stream (or pre-copy) the destination needs nothing
// more from the source, after a lazy migration it does until the last
// page arrived. It also keeps a full sweep streamed whose working set
// was measured short (860 MiB of 1 GiB, once in the bench: lazy 5 %
// quicker by the model, 1.2x slower in fact).
//
// The first two models had no step: working set x 2.5 / bandwidth
// against memory / bandwidth streamed the 256 MiB full sweep (2.4x
// slower to settle than lazy); 0.5 s + working set x 1.25 / bandwidth
// against 0.83 s + memory x 1.1 / bandwidth put the crossover at 1 GiB,
// where a working set measured short or a bandwidth measured low picked
// either mode (lazy settled 1.16x later there).
const (
	streamFixed    = 650 * time.Millisecond
	streamByteCost = 1.35
	lazyFixed      = 500 * time.Millisecond
	lazyPushCost   = 1.6
	lazyGrace      = 1500 * time.Millisecond
	lazyMargin     = 0.15
)

// Choice is the mode auto picked, why, and the effective downtime it
// predicted for every mode it considered.
type Choice struct {
	Mode Mode `json:"mode"`
	// Best is the mode with the lowest estimate among every mode the
	// facts allow, built here or not: Mode unless this crhook lacks it.
	Best      Mode                   `json:"best"`
	Reason    string                 `json:"reason"`
	Estimates map[Mode]time.Duration `json:"estimates"`
}

// modeOrder is the order Decide considers modes in, and breaks ties by:
// after a streamed or pre-copied dump the destination needs nothing more
// from the source, after a lazy one it does until the last page arrived.
var modeOrder = []Mode{ModeStream, ModePrecopy, ModeLazy}

// Decide picks, among the modes built (those this crhook can run), the
// one with the lowest predicted effective downtime (until the container
// runs at full speed again on the destination):
//
//	stream:  streamFixed + all memory x streamByteCost / bandwidth
//	precopy: streamFixed + working set x streamByteCost / bandwidth (the
//	         final round is a stream of what is still dirty), needs soft-dirty
//	lazy:    lazyFixed, plus push = working set x lazyPushCost / bandwidth
//	         when push > lazyGrace; needs lazy pages
//
// Lazy wins only when predicted more than lazyMargin quicker than the
// best of the others; ties go to stream, then precopy (modeOrder). When
// the best mode for these facts is not built, the best built one is
// chosen and the reason says so; when no built mode can run here, Decide
// fails with why.
func Decide(f Facts, built []Mode) (Choice, error) {
	if f.Bandwidth <= 0 || f.MemoryBytes < 0 || f.WorkingSetBytes < 0 || f.MaxDowntime <= 0 {
		return Choice{}, fmt.Errorf("%w: auto needs measured facts: bandwidth %.0f B/s, memory %d B, working set %d B, max downtime %v",
			ErrMode, f.Bandwidth, f.MemoryBytes, f.WorkingSetBytes, f.MaxDowntime)
	}
	ws := min(f.WorkingSetBytes, f.MemoryBytes)
	seconds := func(bytes float64) time.Duration { return time.Duration(bytes / f.Bandwidth * float64(time.Second)) }
	c := Choice{Estimates: map[Mode]time.Duration{ModeStream: streamFixed + seconds(float64(f.MemoryBytes)*streamByteCost)}}
	var skipped []string
	if f.SoftDirty {
		c.Estimates[ModePrecopy] = streamFixed + seconds(float64(ws)*streamByteCost)
	} else {
		skipped = append(skipped, "precopy needs soft-dirty tracking, which this kernel lacks")
	}
	push := seconds(float64(ws) * lazyPushCost)
	if f.LazyPages {
		c.Estimates[ModeLazy] = lazyFixed
		if push > lazyGrace {
			c.Estimates[ModeLazy] += push
		}
	} else {
		why := f.NoLazyReason
		if why == "" {
			why = "not available here"
		}
		skipped = append(skipped, "lazy: "+why)
	}
	// score is what is compared: lazy's estimate counts lazyMargin more.
	score := func(m Mode) float64 {
		if m == ModeLazy {
			return float64(c.Estimates[m]) / (1 - lazyMargin)
		}
		return float64(c.Estimates[m])
	}
	isBuilt := func(m Mode) bool { return slices.Contains(built, m) }
	for _, m := range modeOrder {
		if _, ok := c.Estimates[m]; !ok {
			continue
		}
		if c.Best == "" || score(m) < score(c.Best) {
			c.Best = m
		}
		if isBuilt(m) && (c.Mode == "" || score(m) < score(c.Mode)) {
			c.Mode = m
		}
	}
	if c.Mode == "" {
		return c, fmt.Errorf("%w: no mode this crhook runs (%s) can move this container here: %s",
			ErrMode, modeList(built), strings.Join(skipped, "; "))
	}

	var b strings.Builder
	ms := func(d time.Duration) time.Duration { return d.Round(time.Millisecond) }
	fmt.Fprintf(&b, "%s: effective downtime about %v", c.Mode, ms(c.Estimates[c.Mode]))
	switch c.Mode {
	case ModeStream:
		fmt.Fprintf(&b, " (%v fixed, %s at %s/s x%.3g)", streamFixed, bytesString(f.MemoryBytes), bytesString(int64(f.Bandwidth)), streamByteCost)
	case ModePrecopy:
		fmt.Fprintf(&b, " (%v fixed, final round: %s working set at %s/s x%.3g)", streamFixed, bytesString(ws), bytesString(int64(f.Bandwidth)), streamByteCost)
	case ModeLazy:
		fmt.Fprintf(&b, " (%v freeze; %s)", lazyFixed, lazyPush(ws, f.Bandwidth, push))
	}
	if c.Best != c.Mode {
		fmt.Fprintf(&b, "; %s would do better (about %v) but this crhook does not build it yet, so the best built mode runs",
			c.Best, ms(c.Estimates[c.Best]))
	}
	for _, m := range modeOrder {
		est, ok := c.Estimates[m]
		if !ok || m == c.Mode || m == c.Best {
			continue
		}
		fmt.Fprintf(&b, "; %s about %v", m, ms(est))
		switch {
		case !isBuilt(m):
			b.WriteString(" (not built)")
		case m == ModeLazy && est < c.Estimates[c.Mode]:
			fmt.Fprintf(&b, " (%s), within %.0f %%: %s preferred, after which the destination needs nothing more from the source",
				lazyPush(ws, f.Bandwidth, push), 100*lazyMargin, c.Mode)
		}
	}
	for _, s := range skipped {
		fmt.Fprintf(&b, "; %s", s)
	}
	if c.Estimates[c.Mode] > f.MaxDowntime {
		if c.Estimates[c.Best] > f.MaxDowntime {
			fmt.Fprintf(&b, "; over the %v budget, but no mode does better", f.MaxDowntime)
		} else {
			fmt.Fprintf(&b, "; over the %v budget", f.MaxDowntime)
		}
	}
	c.Reason = b.String()
	return c, nil
}

// lazyPush says how lazy's estimate came about: whether the lazy-pages
// daemon pushes the working set within lazyGrace of the restore.
func lazyPush(ws int64, bw float64, push time.Duration) string {
	if push > lazyGrace {
		return fmt.Sprintf("+ %v to push the %s working set at %s/s x%.3g, over the %v grace",
			push.Round(time.Millisecond), bytesString(ws), bytesString(int64(bw)), lazyPushCost, lazyGrace)
	}
	return fmt.Sprintf("the %s working set is pushed in %v at %s/s x%.3g, within the %v grace",
		bytesString(ws), push.Round(time.Millisecond), bytesString(int64(bw)), lazyPushCost, lazyGrace)
}

func modeList(ms []Mode) string {
	s := make([]string, len(ms))
	for i, m := range ms {
		s[i] = string(m)
	}
	if len(s) == 0 {
		return "none"
	}
	return strings.Join(s, ", ")
}
