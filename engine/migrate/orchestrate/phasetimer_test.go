package orchestrate

import (
	"maps"
	"testing"
	"time"
)

// TestPhaseTimer: each phase gets the time until the next one starts,
// the last one until Took; a phase entered twice adds up.
func TestPhaseTimer(t *testing.T) {
	clock := time.Unix(0, 0)
	steps := []time.Duration{0, 100, 250, 40, 40, 5000}
	i := 0
	pt := NewPhaseTimer(func() time.Time { clock = clock.Add(steps[i] * time.Millisecond); i++; return clock })
	for _, p := range []Phase{PhasePrepare, PhaseCheckpoint, PhaseTransfer, PhaseRestore, PhaseCheckpoint} {
		pt.Enter(p)
	}
	got := pt.Took()
	want := map[Phase]int64{PhasePrepare: 100, PhaseCheckpoint: 250 + 5000, PhaseTransfer: 40, PhaseRestore: 40}
	if !maps.Equal(got, want) {
		t.Errorf("Took() = %v, want %v", got, want)
	}
	if got := NewPhaseTimer(nil).Took(); len(got) != 0 {
		t.Errorf("a timer never entered took %v", got)
	}
}
