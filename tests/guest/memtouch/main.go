// Command memtouch is the guest scenarios' workload: a process whose every
// memory page can be verified after a restore, and which keeps dirtying a
// few pages so that pre-copy rounds have something to copy.
//
// It fills -mib MiB with pages whose content is a function of (page index,
// generation); a generation table says which generation each page holds.
// Every -interval it rewrites the next -dirty pages (round robin) with
// their next generation. On SIGUSR1 it stops dirtying, checks every page
// against the table and prints one line, "verify ok pages=N writes=W
// sum=S" or "verify FAILED page=I ...", then goes on. A page CRIU failed
// to copy (zero-filled, or left at an older pre-dump's content) fails the
// check. Output goes to stdout (podman logs) and, with -out, to a file.
//
// Built static (CGO_ENABLED=0) by tests/guest/run.sh for the guest.
package main

import (
	"bytes"
	"encoding/binary"
	"flag"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"
)

const pageSize = 4096

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "memtouch:", err)
		os.Exit(1)
	}
}

func run() error {
	mib := flag.Int("mib", 32, "MiB of memory to fill")
	dirty := flag.Int("dirty", 64, "pages rewritten every interval")
	interval := flag.Duration("interval", 100*time.Millisecond, "time between dirtying passes")
	out := flag.String("out", "", "also append verify lines to this file")
	flag.Parse()

	w := io.Writer(os.Stdout)
	if *out != "" {
		f, err := os.OpenFile(*out, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
		if err != nil {
			return fmt.Errorf("open -out %q: %w", *out, err)
		}
		defer f.Close()
		w = io.MultiWriter(os.Stdout, f)
	}

	m := newMemory(*mib * 1024 * 1024 / pageSize)
	fmt.Fprintf(w, "ready pages=%d\n", len(m.gen))

	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGUSR1)
	tick := time.NewTicker(*interval)
	defer tick.Stop()
	next := 0
	for {
		select {
		case <-sig:
			fmt.Fprintln(w, m.verify())
		case <-tick.C:
			for i := 0; i < *dirty; i++ {
				m.touch(next)
				next = (next + 1) % len(m.gen)
			}
		}
	}
}

type memory struct {
	data   []byte
	gen    []uint32
	writes uint64
}

func newMemory(pages int) *memory {
	m := &memory{data: make([]byte, pages*pageSize), gen: make([]uint32, pages)}
	for i := range m.gen {
		m.fill(i)
	}
	return m
}

// fill writes page i's content for its current generation.
func (m *memory) fill(i int) {
	pattern(m.data[i*pageSize:(i+1)*pageSize], i, m.gen[i])
}

// pattern is page i's content at generation gen: the index and generation
// in the first 8 bytes, then bytes of a simple LCG seeded by both, so no
// two (page, generation) pairs look alike and no page is all zeros.
func pattern(p []byte, i int, gen uint32) {
	binary.LittleEndian.PutUint32(p[0:], uint32(i))
	binary.LittleEndian.PutUint32(p[4:], gen)
	x := uint32(i)*2654435761 ^ gen*40503 ^ 0x9e3779b9
	for j := 8; j < pageSize; j += 4 {
		x = x*1664525 + 1013904223
		binary.LittleEndian.PutUint32(p[j:], x)
	}
}

func (m *memory) touch(i int) {
	m.gen[i]++
	m.writes++
	m.fill(i)
}

func (m *memory) verify() string {
	want := make([]byte, pageSize)
	var sum uint32
	var total uint64
	for i, gen := range m.gen {
		total += uint64(gen)
		got := m.data[i*pageSize : (i+1)*pageSize]
		pattern(want, i, gen)
		if !bytes.Equal(got, want) {
			return fmt.Sprintf("verify FAILED page=%d header=(%d,%d) want=(%d,%d)", i,
				binary.LittleEndian.Uint32(got[0:]), binary.LittleEndian.Uint32(got[4:]), i, gen)
		}
		sum = crc32.Update(sum, crc32.IEEETable, got)
	}
	if total != m.writes {
		return fmt.Sprintf("verify FAILED generations sum to %d, %d writes recorded", total, m.writes)
	}
	return fmt.Sprintf("verify ok pages=%d writes=%d sum=%08x", len(m.gen), m.writes, sum)
}
