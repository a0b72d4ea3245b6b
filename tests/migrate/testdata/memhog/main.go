// memhog is the workload the migration tests move: it fills N MiB with a
// pattern that no page of zeros or of another page can pass for, keeps a
// heartbeat every 10 ms, and answers commands on stdin, one per line:
//
//	check   verify every page; prints "check pages=N bad=B first_bad=I max_gap_us=G"
//	reset   forget the largest heartbeat gap seen so far; prints "reset"
//	sweep   rewrite every page with the same pattern (a full working set)
//	scan    (with -ctl) start reading every page over and over, in a
//	        scattered order; the first page that ever fails the pattern
//	        is written to DIR/zero-page at once ("page=I word=W"), before
//	        anything else can end the process; prints "scan"
//	timeline  write DIR/timeline.json (with -ctl): the time of each recent
//	        heartbeat and the start and end of each periodic sweep, in Unix
//	        nanoseconds; prints "timeline beats=N sweeps=M"
//
// With -period P it also rewrites its working set (the first -ws MiB,
// default all of it) every P: the benchmark's workloads (make bench).
//
// It prints "ready pages=N" once the memory is filled. The largest gap
// between two heartbeats is the downtime the process itself saw. With
// -sweep D it also rewrites every page every D (issue 13's "full sweep"
// workload: its working set is all of its memory); without, it touches
// only its heartbeat (the "small working set" workload).
package main

import (
	"bufio"
	"encoding/binary"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

const pageSize = 4096

// word is the pattern: a hash of (seed, page, offset) with its low bit
// set, so a zero-filled page or a page served for another one fails.
func word(seed, page, off uint64) uint64 {
	x := seed ^ (page << 20) ^ off
	x += 0x9e3779b97f4a7c15
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9
	x = (x ^ (x >> 27)) * 0x94d049bb133111eb
	return (x ^ (x >> 31)) | 1
}

func fill(mem []byte, seed uint64) {
	for p := 0; p < len(mem)/pageSize; p++ {
		page := mem[p*pageSize : (p+1)*pageSize]
		for o := 0; o < pageSize; o += 8 {
			binary.LittleEndian.PutUint64(page[o:], word(seed, uint64(p), uint64(o)))
		}
	}
}

func check(mem []byte, seed uint64) (bad, firstBad int) {
	firstBad = -1
	for p := 0; p < len(mem)/pageSize; p++ {
		page := mem[p*pageSize : (p+1)*pageSize]
		for o := 0; o < pageSize; o += 8 {
			if binary.LittleEndian.Uint64(page[o:]) != word(seed, uint64(p), uint64(o)) {
				bad++
				if firstBad < 0 {
					firstBad = p
				}
				break
			}
		}
	}
	return bad, firstBad
}

func main() {
	mib := flag.Int("mib", 64, "memory to fill, MiB")
	seed := flag.Uint64("seed", 1, "pattern seed")
	ctl := flag.String("ctl", "", "also take commands from DIR/cmd (\"SEQ COMMAND\"), answering in DIR/out (\"SEQ ANSWER\"): for containers whose stdin a test cannot reach; no file stays open, so the process dumps as it is")
	ws := flag.Int("ws", 0, "working set rewritten every -period, MiB (0: all)")
	period := flag.Duration("period", 0, "rewrite the working set this often (0: never)")
	sweepEvery := flag.Duration("sweep", 0, "rewrite every page every D: the same as -ws 0 -period D (the full-sweep workload)")
	flag.Parse()
	mem := make([]byte, *mib<<20)
	fill(mem, *seed)
	pages := len(mem) / pageSize
	if *sweepEvery > 0 && *period == 0 {
		*period = *sweepEvery
	}
	var tl timeline
	var scanOnce sync.Once
	var mu sync.Mutex // one command at a time, from stdin or the control directory

	var maxGap, last atomic.Int64
	last.Store(time.Now().UnixNano())
	go func() {
		for range time.Tick(10 * time.Millisecond) {
			// Wall clock: the process is frozen on one host and resumed on
			// another, both on this machine's clock.
			now := time.Now().UnixNano()
			tl.beat(now)
			if gap := now - last.Swap(now); gap > maxGap.Load() {
				maxGap.Store(gap)
			}
		}
	}()
	if *period > 0 {
		set := mem
		if *ws > 0 && *ws < *mib {
			set = mem[:*ws<<20]
		}
		go func() {
			for range time.Tick(*period) {
				i := tl.sweepStart(time.Now().UnixNano())
				fill(set, *seed) // the same pattern: check still holds
				tl.sweepEnd(i, time.Now().UnixNano())
			}
		}()
	}
	answer := func(cmd string) string {
		switch cmd {
		case "check":
			bad, first := check(mem, *seed)
			return fmt.Sprintf("check pages=%d bad=%d first_bad=%d max_gap_us=%d", pages, bad, first, maxGap.Load()/1000)
		case "reset":
			maxGap.Store(0)
			return "reset"
		case "sweep":
			fill(mem, *seed)
			return "sweep"
		case "scan":
			if *ctl == "" {
				return "scan needs -ctl"
			}
			scanOnce.Do(func() { go scan(mem, *seed, filepath.Join(*ctl, "zero-page")) })
			return "scan"
		case "timeline":
			if *ctl == "" {
				return "timeline needs -ctl"
			}
			b, s := tl.write(filepath.Join(*ctl, "timeline.json"))
			return fmt.Sprintf("timeline beats=%d sweeps=%d", b, s)
		}
		return fmt.Sprintf("unknown %q", cmd)
	}
	if *ctl != "" {
		go serveCtl(*ctl, func(cmd string) string { mu.Lock(); defer mu.Unlock(); return answer(cmd) })
		_ = os.WriteFile(filepath.Join(*ctl, "ready"), []byte(fmt.Sprintf("ready pages=%d\n", pages)), 0o644)
	}
	fmt.Printf("ready pages=%d\n", pages)
	in := bufio.NewScanner(os.Stdin)
	for in.Scan() {
		mu.Lock()
		fmt.Println(answer(in.Text()))
		mu.Unlock()
	}
	if *ctl != "" {
		select {} // stdin closed (podman -d): keep serving the control directory
	}
}

// scan reads the first word of every page, over and over, striding
// through memory so that after a lazy restore most reads land on pages
// not yet delivered (CRIU's background transfer goes in address order).
// The first page that fails the pattern (a zero page) is written to
// report with one write(2): the earliest trace the process can leave.
func scan(mem []byte, seed uint64, report string) {
	pages := len(mem) / pageSize
	stride := 7919 // odd: with pages a multiple of 256, every page is read
	for p, n := 0, 0; ; p, n = (p+stride)%pages, n+1 {
		if w := binary.LittleEndian.Uint64(mem[p*pageSize:]); w != word(seed, uint64(p), 0) {
			_ = os.WriteFile(report, []byte(fmt.Sprintf("page=%d word=%#x\n", p, w)), 0o644)
			return
		}
		if n%4096 == 0 {
			runtime.Gosched()
		}
	}
}

// serveCtl polls dir/cmd every 10 ms, runs the command it holds and
// writes "SEQ ANSWER" to dir/out through a rename.
func serveCtl(dir string, answer func(string) string) {
	for range time.Tick(10 * time.Millisecond) {
		data, err := os.ReadFile(filepath.Join(dir, "cmd"))
		if err != nil {
			continue
		}
		_ = os.Remove(filepath.Join(dir, "cmd"))
		seq, cmd, _ := strings.Cut(strings.TrimSpace(string(data)), " ")
		tmp := filepath.Join(dir, "out.tmp")
		if os.WriteFile(tmp, []byte(seq+" "+answer(cmd)+"\n"), 0o644) == nil {
			_ = os.Rename(tmp, filepath.Join(dir, "out"))
		}
	}
}

// timeline keeps the recent heartbeats and sweeps for the benchmark, in
// buffers allocated once (they are dumped and moved with the process).
type timeline struct {
	mu     sync.Mutex
	beats  [1 << 15]int64 // about 5 minutes of heartbeats, a ring
	nbeats int
	sweeps [1 << 10][2]int64
	nsweep int
}

func (t *timeline) beat(now int64) {
	t.mu.Lock()
	t.beats[t.nbeats%len(t.beats)] = now
	t.nbeats++
	t.mu.Unlock()
}

// sweepStart records a sweep as it starts (end 0: still running, so a
// timeline written meanwhile shows it) and returns its index.
func (t *timeline) sweepStart(start int64) int {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.sweeps[t.nsweep%len(t.sweeps)] = [2]int64{start, 0}
	t.nsweep++
	return t.nsweep - 1
}

func (t *timeline) sweepEnd(i int, end int64) {
	t.mu.Lock()
	t.sweeps[i%len(t.sweeps)][1] = end
	t.mu.Unlock()
}

// write saves the rings in time order, through a rename.
func (t *timeline) write(path string) (beats, sweeps int) {
	t.mu.Lock()
	var out struct {
		Beats  []int64    `json:"beats"`
		Sweeps [][2]int64 `json:"sweeps"`
	}
	for i := max(0, t.nbeats-len(t.beats)); i < t.nbeats; i++ {
		out.Beats = append(out.Beats, t.beats[i%len(t.beats)])
	}
	for i := max(0, t.nsweep-len(t.sweeps)); i < t.nsweep; i++ {
		out.Sweeps = append(out.Sweeps, t.sweeps[i%len(t.sweeps)])
	}
	t.mu.Unlock()
	data, _ := json.Marshal(out)
	if os.WriteFile(path+".tmp", data, 0o644) == nil {
		_ = os.Rename(path+".tmp", path)
	}
	return len(out.Beats), len(out.Sweeps)
}
