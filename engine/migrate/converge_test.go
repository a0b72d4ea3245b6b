package migrate

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// roundsFile is one migration's round statistics (testdata/rounds).
type roundsFile struct {
	About  string `json:"about"`
	Policy struct {
		MaxDowntime time.Duration `json:"max_downtime"`
		MinShrink   float64       `json:"min_shrink"`
		MaxRounds   int           `json:"max_rounds"`
	} `json:"policy"`
	Rounds []Round  `json:"rounds"`
	Want   []Action `json:"want"`
}

// TestPolicyRounds replays each migration's rounds one at a time, as the
// orchestrator will, and checks the action after each and that the rule
// stops at the first action that is not Continue.
func TestPolicyRounds(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("testdata", "rounds", "*.json"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no round statistics in testdata/rounds: %v", err)
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			data, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			var rf roundsFile
			dec := json.NewDecoder(strings.NewReader(string(data)))
			dec.DisallowUnknownFields()
			if err := dec.Decode(&rf); err != nil {
				t.Fatalf("%s: %v", f, err)
			}
			if len(rf.Want) != len(rf.Rounds) {
				t.Fatalf("%s: %d rounds but %d expected actions", f, len(rf.Rounds), len(rf.Want))
			}
			p := Policy{MaxDowntime: rf.Policy.MaxDowntime, MinShrink: rf.Policy.MinShrink, MaxRounds: rf.Policy.MaxRounds}
			for i := range rf.Rounds {
				d, err := p.Next(rf.Rounds[:i+1])
				if err != nil {
					t.Fatal(err)
				}
				if d.Action != rf.Want[i] {
					t.Fatalf("after round %d: %s (%s), want %s", i+1, d.Action, d.Reason, rf.Want[i])
				}
				if d.Reason == "" {
					t.Errorf("after round %d: no reason given", i+1)
				}
				if d.Action != Continue {
					if i != len(rf.Rounds)-1 {
						t.Fatalf("stopped after round %d of %d recorded", i+1, len(rf.Rounds))
					}
					t.Logf("%s: %s after %d rounds: %s", rf.About, d.Action, i+1, d.Reason)
				}
			}
		})
	}
}

func TestPolicyRules(t *testing.T) {
	ms := time.Millisecond
	p := Policy{MaxDowntime: 100 * ms, MinShrink: 0.2, MaxRounds: 3}
	tests := []struct {
		name     string
		rounds   []Round
		want     Action
		downtime time.Duration
	}{
		{"no rounds", nil, Continue, 0},
		// 100 MB in 1 s: 100 MB/s; the last round's 10 MB take 100 ms.
		{"exactly at budget", []Round{{90e6, 900 * ms}, {10e6, 100 * ms}}, Converged, 100 * ms},
		{"just over, shrinking", []Round{{90e6, 900 * ms}, {10_100_000, 100 * ms}}, Continue, 100_899_100},
		// Shrinks by exactly 20 %: still converging.
		{"shrinks exactly the minimum", []Round{{50e6, 500 * ms}, {40e6, 400 * ms}}, Continue, 400 * ms},
		{"shrinks a little less", []Round{{50e6, 500 * ms}, {40_000_001, 400 * ms}}, NotConverging, 400 * ms},
		{"grows", []Round{{50e6, 500 * ms}, {60e6, 600 * ms}}, NotConverging, 600 * ms},
		{"cap", []Round{{80e6, 800 * ms}, {40e6, 400 * ms}, {20e6, 200 * ms}}, RoundCap, 200 * ms},
		// Not converging wins over the cap: it is the more useful reason.
		{"cap and not shrinking", []Round{{80e6, 800 * ms}, {40e6, 400 * ms}, {39e6, 390 * ms}}, NotConverging, 390 * ms},
		{"nothing dirty", []Round{{0, ms}}, Converged, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, err := p.Next(tt.rounds)
			if err != nil {
				t.Fatal(err)
			}
			if d.Action != tt.want {
				t.Fatalf("action %s (%s), want %s", d.Action, d.Reason, tt.want)
			}
			if diff := d.PredictedDowntime - tt.downtime; diff > time.Microsecond || diff < -time.Microsecond {
				t.Fatalf("predicted downtime %v, want %v", d.PredictedDowntime, tt.downtime)
			}
		})
	}
}

func TestPolicyRejects(t *testing.T) {
	ok := []Round{{1 << 20, time.Second}}
	for _, tt := range []struct {
		name   string
		p      Policy
		rounds []Round
	}{
		{"zero downtime", Policy{MinShrink: 0.2, MaxRounds: 3}, ok},
		{"shrink 1", Policy{MaxDowntime: time.Second, MinShrink: 1, MaxRounds: 3}, ok},
		{"negative shrink", Policy{MaxDowntime: time.Second, MinShrink: -0.1, MaxRounds: 3}, ok},
		{"no rounds allowed", Policy{MaxDowntime: time.Second, MinShrink: 0.2}, ok},
		{"negative bytes", DefaultPolicy, []Round{{-1, time.Second}}},
		{"zero duration", DefaultPolicy, []Round{{1, 0}}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := tt.p.Next(tt.rounds); !errors.Is(err, ErrRounds) {
				t.Fatalf("error %v, want ErrRounds", err)
			}
		})
	}
}

func TestBytesString(t *testing.T) {
	for n, want := range map[int64]string{0: "0 B", 1023: "1023 B", 1024: "1.0 KiB", 3 << 20: "3.0 MiB", 1 << 30: "1.0 GiB", 1536 << 30: "1.5 TiB"} {
		if got := bytesString(n); got != want {
			t.Errorf("bytesString(%d) = %q, want %q", n, got, want)
		}
	}
}
