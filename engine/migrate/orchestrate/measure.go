package orchestrate

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/crhook/crhook/engine/migrate"
)

// What `crhook migrate --mode auto` measures before anything is frozen:
// the container's memory and working set from /proc on the source, and
// the bandwidth to the destination through the control channel. The
// arithmetic is in engine/migrate (measure.go, auto.go).

// InitPID is the container's first process, as podman knows it. Only
// meaningful on this host: its /proc is what MeasureMemory reads.
func (h *PodmanHost) InitPID(ctx context.Context, name string) (int, error) {
	out, err := h.R.Run(ctx, nil, "podman", "container", "inspect", "--format", "{{.State.Pid}}", name)
	if err != nil {
		return 0, fmt.Errorf("find the process of container %q on %s: %w", name, h.R.Where(), err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(out)))
	if err != nil || pid <= 1 {
		return 0, fmt.Errorf("podman inspect of %q on %s gave pid %q: is it running?", name, h.R.Where(), strings.TrimSpace(string(out)))
	}
	return pid, nil
}

// ProcessTree is pid and all its descendants, from proc/*/stat (proc is
// /proc, or a copy in tests): the tree CRIU dumps for a container whose
// init is pid. Zombies are left out: they have no memory.
func ProcessTree(proc string, pid int) ([]int, error) {
	stats, err := filepath.Glob(filepath.Join(proc, "[0-9]*", "stat"))
	if err != nil {
		return nil, err
	}
	children := map[int][]int{}
	found := false
	for _, p := range stats {
		data, err := os.ReadFile(p)
		if err != nil {
			continue // exited meanwhile
		}
		me, _ := strconv.Atoi(filepath.Base(filepath.Dir(p)))
		ppid, state, ok := parseStat(string(data))
		if !ok || state == "Z" || state == "X" {
			continue
		}
		if me == pid {
			found = true
		}
		children[ppid] = append(children[ppid], me)
	}
	if !found {
		return nil, fmt.Errorf("process %d is not running (no %s)", pid, filepath.Join(proc, strconv.Itoa(pid), "stat"))
	}
	tree := []int{pid}
	for i := 0; i < len(tree); i++ {
		tree = append(tree, children[tree[i]]...)
	}
	return tree, nil
}

// parseStat reads state and ppid from a stat line, "PID (COMM) S PPID …";
// COMM may hold spaces and parentheses, so the fields start after the last
// ')'.
func parseStat(s string) (ppid int, state string, ok bool) {
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, "", false
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 2 {
		return 0, "", false
	}
	ppid, err := strconv.Atoi(f[1])
	return ppid, f[0], err == nil
}

// ReadMemory sums smaps_rollup over pids. A process that exited
// meanwhile is skipped; any other failure to read is an error.
func ReadMemory(proc string, pids []int) (migrate.Memory, error) {
	var m migrate.Memory
	for _, pid := range pids {
		path := filepath.Join(proc, strconv.Itoa(pid), "smaps_rollup")
		data, err := os.ReadFile(path)
		if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ESRCH) {
			continue
		}
		if err != nil {
			return m, fmt.Errorf("read %s: %w", path, err)
		}
		s, err := migrate.ParseSmapsRollup(data)
		if err != nil {
			if len(data) == 0 {
				continue // a zombie's, or exited while read
			}
			return m, fmt.Errorf("%s: %w", path, err)
		}
		m.Add(s)
	}
	return m, nil
}

// ClearReferenced writes "1" to each process's clear_refs: the kernel
// clears the accessed (young) bit of every page of the process and
// PG_referenced (proc_pid_clear_refs(5)), so Referenced in smaps_rollup
// then counts what the process touched since. "1" is not "4": the
// soft-dirty bits, which pre-copy relies on where the kernel has them,
// are left alone.
func ClearReferenced(proc string, pids []int) error {
	for _, pid := range pids {
		path := filepath.Join(proc, strconv.Itoa(pid), "clear_refs")
		f, err := os.OpenFile(path, os.O_WRONLY, 0)
		if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ESRCH) {
			continue // exited meanwhile
		}
		if err != nil {
			return fmt.Errorf("clear the accessed bits of process %d: %w (needs root or the process's owner)", pid, err)
		}
		_, err = f.WriteString("1")
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return fmt.Errorf("clear the accessed bits of process %d: write %s: %w", pid, path, err)
		}
	}
	return nil
}

// DefaultWorkingSetWindow is how long MeasureMemory watches a container
// touch its memory. Two seconds, because the workloads migration is
// measured with (issue 13: a full sweep of the memory every 2 s) touch
// memory in bursts: a window shorter than a workload's period sees all of
// its working set or none depending on when it starts, one as long as
// the period always sees all of it. Longer costs every migration that
// much more before it starts (the container runs meanwhile), and the
// accessed bits of a container that touches its memory rarely would then
// count memory it does not need soon.
const DefaultWorkingSetWindow = 2 * time.Second

// MeasureMemory measures the container whose init is pid: the memory
// CRIU would dump, and the working set: what its processes touch within
// window (accessed bits cleared, then counted; no soft-dirty needed).
func MeasureMemory(ctx context.Context, proc string, pid int, window time.Duration) (migrate.Memory, error) {
	pids, err := ProcessTree(proc, pid)
	if err != nil {
		return migrate.Memory{}, err
	}
	if err := ClearReferenced(proc, pids); err != nil {
		return migrate.Memory{}, err
	}
	select {
	case <-ctx.Done():
		return migrate.Memory{}, ctx.Err()
	case <-time.After(window):
	}
	// Processes born during the window count too.
	if pids, err = ProcessTree(proc, pid); err != nil {
		return migrate.Memory{}, err
	}
	return ReadMemory(proc, pids)
}

// Bandwidth probe sizes. bandwidthWarmup is read before the clock starts:
// os/exec copies stdin through a pipe (64 KiB) and ssh reads ahead up to
// its channel window (2 MiB) before the far end has taken a byte, and it
// reads nothing before its connection is up; past 4 MiB, bytes go no
// faster than the far end takes them. Then the probe sends for
// bandwidthTime, or bandwidthBytes on a fast link, and the clock stops
// when ssh has taken the last byte, not when ssh has exited.
//
// Half a second, not 32 MiB: a transfer that short (about 70 ms here,
// ssh's exit timed with it) measured ssh's ramp-up and the bursts of the
// running container as much as the link: 264-657 MiB/s over the first
// 32 MiB of 19 probes on one link in `make bench`'s workloads, against
// 395-542 MiB/s (mean 454) over their whole half second.
const (
	bandwidthWarmup = 4 << 20
	bandwidthBytes  = 256 << 20
	bandwidthTime   = 500 * time.Millisecond
)

// MeasureBandwidth times a transfer to `cat >/dev/null` on the far end of
// r: the throughput of the control channel (ssh: its cipher and the
// link), which the checkpoint archive takes, and the best guide to the
// page stream's (CRIU's TLS over the same link) this side of a migration.
func MeasureBandwidth(ctx context.Context, r Runner) (migrate.Throughput, error) {
	src := &probeReader{warmup: bandwidthWarmup, limit: bandwidthWarmup + bandwidthBytes, maxTime: bandwidthTime,
		block: make([]byte, 1<<20), now: time.Now}
	// Random bytes, in case ssh compresses (Compression yes): a repeated
	// 1 MiB block is far beyond zlib's 32 KiB window.
	rng := rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64()))
	for i := range src.block {
		src.block[i] = byte(rng.Uint32())
	}
	if _, err := r.Run(ctx, src, "sh", "-c", "cat >/dev/null"); err != nil {
		return migrate.Throughput{}, fmt.Errorf("time a transfer to %s: %w", r.Where(), err)
	}
	if src.start.IsZero() || src.end.IsZero() {
		return migrate.Throughput{}, fmt.Errorf("time a transfer to %s: it took only %d bytes", r.Where(), src.sent)
	}
	return migrate.Throughput{Bytes: src.sent - src.warmup, Took: src.end.Sub(src.start)}, nil
}

// probeReader yields block again and again: warmup bytes untimed, then
// until limit bytes or maxTime after the clock started. end is when it
// was asked for more after the last byte: os/exec asks once the pipe to
// ssh has taken all it was given.
type probeReader struct {
	warmup, limit, sent int64
	maxTime             time.Duration
	block               []byte
	start, end          time.Time
	now                 func() time.Time
}

func (p *probeReader) Read(b []byte) (int, error) {
	if p.sent >= p.warmup {
		now := p.now()
		if p.start.IsZero() {
			p.start = now
		}
		if p.sent >= p.limit || now.Sub(p.start) > p.maxTime {
			if p.end.IsZero() {
				p.end = now
			}
			return 0, io.EOF
		}
	}
	off := int(p.sent % int64(len(p.block)))
	n := copy(b, p.block[off:])
	n = int(min(int64(n), p.limit-p.sent))
	if p.sent < p.warmup {
		n = int(min(int64(n), p.warmup-p.sent)) // the clock starts exactly at warmup
	}
	p.sent += int64(n)
	return n, nil
}
