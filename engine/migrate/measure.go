package migrate

import (
	"bufio"
	"bytes"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// The pure half of the facts `--mode auto` measures (Facts): what
// /proc/PID/smaps_rollup says, and what a timed transfer says. The /proc
// and ssh work is in engine/migrate/orchestrate (measure.go).

// Smaps is one process's /proc/PID/smaps_rollup, in bytes.
type Smaps struct {
	Rss       int64
	Anonymous int64
	Swap      int64
	// PssShmem is this process's proportional share of shared memory
	// (MAP_SHARED|MAP_ANONYMOUS, SysV, tmpfs mappings): summed over the
	// processes that share it, each segment counts once.
	PssShmem int64
	// Referenced is the memory whose accessed bit is set: after a write
	// of "1" to /proc/PID/clear_refs, what the process touched since.
	Referenced int64
}

// ParseSmapsRollup reads smaps_rollup's "Key:   N kB" lines. Keys it does
// not use are skipped; Rss and Referenced must be there (every kernel
// since 4.14, which added the file, prints them).
func ParseSmapsRollup(data []byte) (Smaps, error) {
	var s Smaps
	fields := map[string]*int64{"Rss": &s.Rss, "Anonymous": &s.Anonymous, "Swap": &s.Swap,
		"Pss_Shmem": &s.PssShmem, "Referenced": &s.Referenced}
	seen := map[string]bool{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		dst, want := fields[k]
		if !ok || !want {
			continue // the header line, or a key not used here
		}
		f := strings.Fields(v)
		if len(f) != 2 || f[1] != "kB" {
			return Smaps{}, fmt.Errorf("smaps_rollup: %q: want \"%s: N kB\"", sc.Text(), k)
		}
		n, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil || n < 0 {
			return Smaps{}, fmt.Errorf("smaps_rollup: %q: %q is not a size in kB", sc.Text(), f[0])
		}
		*dst, seen[k] = n<<10, true
	}
	if !seen["Rss"] || !seen["Referenced"] {
		return Smaps{}, fmt.Errorf("smaps_rollup has no Rss or Referenced line: %q", firstLines(data, 3))
	}
	return s, nil
}

// Dumped is the memory CRIU dumps for this process, and so what must
// move to the destination. CRIU dumps a page that is present or swapped
// out and is not the zero page, except a page of a private file mapping
// that was never written (criu/mem.c should_dump_page: it is read back
// from the file); shared memory is dumped once per segment. In
// smaps_rollup terms: Anonymous (private anonymous memory, and the
// written, copied-on-write pages of private file mappings) + Swap +
// Pss_Shmem. Clean pages of files (the binary, libraries) and shared
// file mappings stay behind: the destination maps the same files.
func (s Smaps) Dumped() int64 { return s.Anonymous + s.Swap + s.PssShmem }

// Memory sums what the processes of a container would dump, and what
// they touched since their accessed bits were cleared.
type Memory struct {
	// Processes counted (the container's init and its descendants: the
	// tree CRIU dumps).
	Processes int `json:"processes"`
	// DumpedBytes is Σ Smaps.Dumped.
	DumpedBytes int64 `json:"dumped_bytes"`
	// ReferencedBytes is Σ Referenced. It includes the file pages the
	// processes touched (their code), which a lazy restore maps from the
	// files rather than fetching: a slight overestimate of what moves.
	ReferencedBytes int64 `json:"referenced_bytes"`
}

// Add counts one process.
func (m *Memory) Add(s Smaps) {
	m.Processes++
	m.DumpedBytes += s.Dumped()
	m.ReferencedBytes += s.Referenced
}

// Throughput is a timed transfer: n bytes in took.
type Throughput struct {
	Bytes int64
	Took  time.Duration
}

// BytesPerSecond is the rate; 0 when nothing was timed.
func (t Throughput) BytesPerSecond() float64 {
	if t.Took <= 0 || t.Bytes <= 0 {
		return 0
	}
	return float64(t.Bytes) / t.Took.Seconds()
}

func (t Throughput) String() string {
	return fmt.Sprintf("%s in %v: %s/s", bytesString(t.Bytes), t.Took.Round(time.Millisecond), bytesString(int64(t.BytesPerSecond())))
}

func firstLines(data []byte, n int) string {
	lines := strings.SplitN(string(data), "\n", n+1)
	if len(lines) > n {
		lines = lines[:n]
	}
	return strings.Join(lines, "\n")
}
