package migrate

import (
	"fmt"
	"time"
)

// Round is what one pre-copy round (runc checkpoint --pre-dump) moved.
type Round struct {
	// Bytes is what the round sent: all memory for the first round, the
	// pages dirtied since the previous round after that.
	Bytes int64 `json:"bytes"`
	// Duration is how long the round took, freeze and transfer included.
	Duration time.Duration `json:"duration"`
}

// Action is what to do after a round.
type Action string

const (
	// Continue: run another pre-copy round.
	Continue Action = "continue"
	// Converged: the final dump is predicted to fit in the downtime
	// budget; do it now.
	Converged Action = "converged"
	// NotConverging: the rounds stopped shrinking; more rounds only burn
	// bandwidth. Do the final dump now (or switch to lazy) and say so.
	NotConverging Action = "not-converging"
	// RoundCap: the hard round limit is reached.
	RoundCap Action = "round-cap"
)

// Policy is the pre-copy stop rule. LXD stopped at a fixed 70 % and 10
// rounds, p.haul at 8 rounds or 64 pages; neither looks at what the user
// cares about, the downtime. This rule does:
//
//   - Converged when the predicted downtime of the final dump, the bytes
//     the last round sent (what the workload dirties in one round) over
//     the measured bandwidth, is within MaxDowntime;
//   - NotConverging when a round sent more than (1-MinShrink) times what
//     the round before it sent;
//   - RoundCap after MaxRounds rounds;
//   - else Continue.
type Policy struct {
	MaxDowntime time.Duration
	// MinShrink is the fraction by which each round must send less than
	// the one before, e.g. 0.2: at least 20 % less.
	MinShrink float64
	// MaxRounds is the hard cap on pre-copy rounds.
	MaxRounds int
}

// DefaultPolicy is what `crhook migrate` uses unless told otherwise.
var DefaultPolicy = Policy{MaxDowntime: time.Second, MinShrink: 0.2, MaxRounds: 8}

// Decision is the rule's verdict after a round, with the numbers it used
// so `--dry-run` and the JSON summary can show them.
type Decision struct {
	Action Action `json:"action"`
	Reason string `json:"reason"`
	// Bandwidth is the measured rate over all rounds, bytes per second.
	Bandwidth float64 `json:"bandwidth"`
	// PredictedDowntime is what the final dump would take now.
	PredictedDowntime time.Duration `json:"predicted_downtime"`
}

// Next applies p to the rounds so far (oldest first).
func (p Policy) Next(rounds []Round) (Decision, error) {
	if p.MaxDowntime <= 0 || p.MinShrink < 0 || p.MinShrink >= 1 || p.MaxRounds < 1 {
		return Decision{}, fmt.Errorf("%w: policy %+v: want MaxDowntime > 0, 0 <= MinShrink < 1, MaxRounds >= 1", ErrRounds, p)
	}
	if len(rounds) == 0 {
		return Decision{Action: Continue, Reason: "no round yet"}, nil
	}
	var total int64
	var took time.Duration
	for i, r := range rounds {
		if r.Bytes < 0 || r.Duration <= 0 {
			return Decision{}, fmt.Errorf("%w: round %d sent %d bytes in %v", ErrRounds, i+1, r.Bytes, r.Duration)
		}
		total += r.Bytes
		took += r.Duration
	}
	d := Decision{Bandwidth: float64(total) / took.Seconds()}
	n := len(rounds)
	last := rounds[n-1]
	if d.Bandwidth > 0 {
		d.PredictedDowntime = time.Duration(float64(last.Bytes) / d.Bandwidth * float64(time.Second))
	} else {
		// Nothing moved at all: nothing is left to move either.
		d.PredictedDowntime = 0
	}
	switch {
	case d.PredictedDowntime <= p.MaxDowntime:
		d.Action = Converged
		d.Reason = fmt.Sprintf("round %d sent %s; at %s/s the final dump takes about %v, within the %v budget",
			n, bytesString(last.Bytes), bytesString(int64(d.Bandwidth)), d.PredictedDowntime.Round(time.Millisecond), p.MaxDowntime)
	case n >= 2 && float64(last.Bytes) > (1-p.MinShrink)*float64(rounds[n-2].Bytes):
		d.Action = NotConverging
		d.Reason = fmt.Sprintf("round %d sent %s, round %d %s: less than %.0f%% smaller, the workload dirties memory as fast as it moves; "+
			"final dump predicted at %v (budget %v)", n, bytesString(last.Bytes), n-1, bytesString(rounds[n-2].Bytes), p.MinShrink*100,
			d.PredictedDowntime.Round(time.Millisecond), p.MaxDowntime)
	case n >= p.MaxRounds:
		d.Action = RoundCap
		d.Reason = fmt.Sprintf("%d rounds, the limit; final dump predicted at %v (budget %v)",
			n, d.PredictedDowntime.Round(time.Millisecond), p.MaxDowntime)
	default:
		d.Action = Continue
		d.Reason = fmt.Sprintf("round %d sent %s; the final dump would take about %v, over the %v budget",
			n, bytesString(last.Bytes), d.PredictedDowntime.Round(time.Millisecond), p.MaxDowntime)
	}
	return d, nil
}

// bytesString prints a byte count in binary units, one decimal.
func bytesString(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
