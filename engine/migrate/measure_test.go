package migrate

import (
	"os"
	"strings"
	"testing"
	"time"
)

// TestParseSmapsRollup: a real smaps_rollup (memhog, 64 MiB filled,
// measured on this project's test machine one second after a write of
// "1" to clear_refs), and the ways a file can be wrong.
func TestParseSmapsRollup(t *testing.T) {
	real, err := os.ReadFile("testdata/smaps/memhog-64m.rollup")
	if err != nil {
		t.Fatal(err)
	}
	const kB = 1024
	tests := []struct {
		name   string
		data   string
		want   Smaps
		dumped int64
		err    string
	}{
		{"memhog 64 MiB", string(real), Smaps{Rss: 68292 * kB, Anonymous: 66536 * kB, Referenced: 296 * kB}, 66536 * kB, ""},
		{"swap and shared memory are dumped too", "Rss: 10 kB\nReferenced: 1 kB\nAnonymous: 4 kB\nSwap: 2 kB\nPss_Shmem: 3 kB\n",
			Smaps{Rss: 10 * kB, Referenced: kB, Anonymous: 4 * kB, Swap: 2 * kB, PssShmem: 3 * kB}, 9 * kB, ""},
		{"zombie: empty file", "", Smaps{}, 0, "no Rss or Referenced line"},
		{"no Referenced", "Rss: 10 kB\n", Smaps{}, 0, "no Rss or Referenced line"},
		{"other unit", "Rss: 10 MB\nReferenced: 1 kB\n", Smaps{}, 0, `want "Rss: N kB"`},
		{"not a number", "Rss: ten kB\nReferenced: 1 kB\n", Smaps{}, 0, `"ten" is not a size in kB`},
		{"negative", "Rss: -1 kB\nReferenced: 1 kB\n", Smaps{}, 0, "is not a size"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := ParseSmapsRollup([]byte(tt.data))
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("error %v, want one with %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if s != tt.want || s.Dumped() != tt.dumped {
				t.Errorf("got %+v (dumped %d), want %+v (dumped %d)", s, s.Dumped(), tt.want, tt.dumped)
			}
		})
	}
}

func TestMemoryAndThroughput(t *testing.T) {
	var m Memory
	m.Add(Smaps{Anonymous: 3 << 20, Referenced: 1 << 20})
	m.Add(Smaps{Anonymous: 1 << 20, Swap: 1 << 20, Referenced: 2 << 20})
	if m != (Memory{Processes: 2, DumpedBytes: 5 << 20, ReferencedBytes: 3 << 20}) {
		t.Errorf("memory %+v", m)
	}
	tp := Throughput{Bytes: 32 << 20, Took: 100 * time.Millisecond}
	if got := tp.BytesPerSecond(); got != 320<<20 {
		t.Errorf("rate %v", got)
	}
	if got := tp.String(); got != "32.0 MiB in 100ms: 320.0 MiB/s" {
		t.Errorf("String %q", got)
	}
	if (Throughput{Bytes: 1}).BytesPerSecond() != 0 || (Throughput{Took: time.Second}).BytesPerSecond() != 0 {
		t.Error("an untimed transfer has a rate")
	}
}
