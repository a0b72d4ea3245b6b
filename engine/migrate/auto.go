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

// The cost model, fitted to `make bench` on the 2-core test machine
// (docs/migration.md, Performance: 256 MiB and 1 GiB, small working set
// and full sweep, bandwidth as auto measures it, ssh's, ~430 MiB/s):
//
//   - streamFixed: a streamed dump's cost whatever the memory (pause,
//     podman's export and import, the restore): 0.83 s at 256 MiB and 1 GiB
//     alike once the per-byte part is taken out;
//   - streamByteCost: CRIU's TLS page server moves a byte about 1.1x as
//     slowly as ssh does (3.44 s for 1 GiB, 1.48 s for 256 MiB);
//   - lazyFixed: a lazy migration's freeze (0.5-0.6 s for 64 MiB to 1 GiB);
//   - lazyFaultCost: what faulting the working set in costs after that,
//     per byte, against ssh's rate: 1 GiB rewritten every 2 s settled
//     3.8 s after the freeze, 256 MiB at once; 1.25 puts the crossover
//     with stream (0.5 + 1.25x = 0.83 + 1.1x) at a working set of about
//     2 s of bandwidth, between the two measured full sweeps.
//
// The first model (working set x 2.5 / bandwidth against memory /
// bandwidth, no fixed costs) streamed a 256 MiB full sweep, 2.4x slower
// to settle than the lazy migration it passed over.
const (
	streamFixed    = 830 * time.Millisecond
	streamByteCost = 1.1
	lazyFixed      = 500 * time.Millisecond
	lazyFaultCost  = 1.25
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
//	lazy:    lazyFixed + working set x lazyFaultCost / bandwidth, needs
//	         lazy pages
//
// Ties go to stream, then precopy, then lazy (modeOrder). When the best
// mode for these facts is not built, the best built one is chosen and the
// reason says so; when no built mode can run here, Decide fails with why.
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
	if f.LazyPages {
		c.Estimates[ModeLazy] = lazyFixed + seconds(float64(ws)*lazyFaultCost)
	} else {
		why := f.NoLazyReason
		if why == "" {
			why = "not available here"
		}
		skipped = append(skipped, "lazy: "+why)
	}
	isBuilt := func(m Mode) bool { return slices.Contains(built, m) }
	for _, m := range modeOrder {
		est, ok := c.Estimates[m]
		if !ok {
			continue
		}
		if c.Best == "" || est < c.Estimates[c.Best] {
			c.Best = m
		}
		if isBuilt(m) && (c.Mode == "" || est < c.Estimates[c.Mode]) {
			c.Mode = m
		}
	}
	if c.Mode == "" {
		return c, fmt.Errorf("%w: no mode this crhook runs (%s) can move this container here: %s",
			ErrMode, modeList(built), strings.Join(skipped, "; "))
	}

	var b strings.Builder
	fmt.Fprintf(&b, "%s: effective downtime about %v", c.Mode, c.Estimates[c.Mode].Round(time.Millisecond))
	switch c.Mode {
	case ModeStream:
		fmt.Fprintf(&b, " (%v fixed, %s at %s/s x%.2g)", streamFixed, bytesString(f.MemoryBytes), bytesString(int64(f.Bandwidth)), streamByteCost)
	case ModePrecopy:
		fmt.Fprintf(&b, " (%v fixed, final round: %s working set at %s/s x%.2g)", streamFixed, bytesString(ws), bytesString(int64(f.Bandwidth)), streamByteCost)
	case ModeLazy:
		fmt.Fprintf(&b, " (%v freeze, %s working set faulted in at %s/s x%.3g)", lazyFixed, bytesString(ws), bytesString(int64(f.Bandwidth)), lazyFaultCost)
	}
	if c.Best != c.Mode {
		fmt.Fprintf(&b, "; %s would do better (about %v) but this crhook does not build it yet, so the best built mode runs",
			c.Best, c.Estimates[c.Best].Round(time.Millisecond))
	}
	for _, m := range modeOrder {
		if est, ok := c.Estimates[m]; ok && m != c.Mode && m != c.Best {
			fmt.Fprintf(&b, "; %s about %v", m, est.Round(time.Millisecond))
			if !isBuilt(m) {
				b.WriteString(" (not built)")
			}
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
