package orchestrate

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"testing"
	"time"
)

// writeProc makes a fake /proc: pid → (ppid, state, comm), each with a
// smaps_rollup of anon kB and referenced kB, and an empty clear_refs.
func writeProc(t *testing.T, procs map[int][4]string) string {
	t.Helper()
	dir := t.TempDir()
	for pid, p := range procs {
		d := filepath.Join(dir, strconv.Itoa(pid))
		must(t, os.MkdirAll(d, 0o755))
		must(t, os.WriteFile(filepath.Join(d, "stat"), []byte(fmt.Sprintf("%d (%s) %s %s 1 1 0 -1\n", pid, p[2], p[1], p[0])), 0o644))
		rollup := ""
		if p[1] != "Z" {
			rollup = fmt.Sprintf("00400000-7ffc3f008000 ---p 00000000 00:00 0 [rollup]\nRss: %s kB\nReferenced: %s kB\nAnonymous: %s kB\n", p[3], p[3], p[3])
		}
		must(t, os.WriteFile(filepath.Join(d, "smaps_rollup"), []byte(rollup), 0o644))
		must(t, os.WriteFile(filepath.Join(d, "clear_refs"), nil, 0o644))
	}
	return dir
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// TestMeasureMemoryFakeProc: the tree under the container's init (CRIU
// dumps that tree, nothing else), zombies skipped, every process's
// accessed bits cleared with "1" (not "4", soft-dirty).
func TestMeasureMemoryFakeProc(t *testing.T) {
	proc := writeProc(t, map[int][4]string{
		1:   {"0", "S", "systemd", "9999"},
		100: {"1", "S", "conmon", "500"},
		101: {"100", "S", "memhog (x) y", "4096"}, // the container's init; comm with ") "
		102: {"101", "R", "worker", "1024"},
		103: {"102", "S", "grandchild", "8"},
		104: {"101", "Z", "dead", "0"},
		200: {"1", "S", "unrelated", "7777"},
	})
	tree, err := ProcessTree(proc, 101)
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(tree)
	if !slices.Equal(tree, []int{101, 102, 103}) {
		t.Fatalf("tree %v, want [101 102 103]", tree)
	}
	m, err := MeasureMemory(context.Background(), proc, 101, time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	if m.Processes != 3 || m.DumpedBytes != (4096+1024+8)<<10 || m.ReferencedBytes != m.DumpedBytes {
		t.Errorf("memory %+v", m)
	}
	for pid, want := range map[int]string{101: "1", 102: "1", 103: "1", 100: "", 200: ""} {
		got, _ := os.ReadFile(filepath.Join(proc, strconv.Itoa(pid), "clear_refs"))
		if string(got) != want {
			t.Errorf("clear_refs of %d: %q, want %q", pid, got, want)
		}
	}
	if _, err := ProcessTree(proc, 104); err == nil {
		t.Error("a zombie init is a running container")
	}
	if _, err := MeasureMemory(context.Background(), proc, 555, time.Millisecond); err == nil {
		t.Error("no error for a process that does not exist")
	}
}

// helperEnv makes the test binary a workload (TestMain is not needed:
// the helper runs before any test when the variable is set).
const helperEnv = "CRHOOK_MEASURE_HELPER"

func init() {
	mode := os.Getenv(helperEnv)
	if mode == "" {
		return
	}
	mem := make([]byte, 32<<20)
	for i := 0; i < len(mem); i += 4096 {
		mem[i] = 1
	}
	fmt.Println("ready")
	for {
		if mode == "sweep" {
			for i := 0; i < len(mem); i += 4096 {
				mem[i]++
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestMeasureMemoryReal measures two real processes through this
// host's /proc: one that filled 32 MiB and sleeps, one that rewrites it
// all the time. Both must move about 32 MiB; their working sets must be
// far apart. No soft-dirty needed (this test machine has none).
func TestMeasureMemoryReal(t *testing.T) {
	if _, err := os.Stat("/proc/self/smaps_rollup"); err != nil {
		t.Skipf("no smaps_rollup here (Linux 4.14 or later): %v", err)
	}
	measure := func(mode string) (dumped, ws int64) {
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), helperEnv+"="+mode)
		out, err := cmd.StdoutPipe()
		must(t, err)
		must(t, cmd.Start())
		defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
		buf := make([]byte, 6)
		if _, err := io.ReadFull(out, buf); err != nil || string(buf) != "ready\n" {
			t.Fatalf("helper %s: %q %v", mode, buf, err)
		}
		m, err := MeasureMemory(context.Background(), "/proc", cmd.Process.Pid, 500*time.Millisecond)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("%s: %+v", mode, m)
		return m.DumpedBytes, m.ReferencedBytes
	}
	idleMem, idleWS := measure("idle")
	sweepMem, sweepWS := measure("sweep")
	for _, m := range []int64{idleMem, sweepMem} {
		if m < 32<<20 || m > 64<<20 {
			t.Errorf("memory to move %d bytes, want about 32 MiB", m)
		}
	}
	if idleWS > 8<<20 {
		t.Errorf("idle working set %d bytes, want far below its 32 MiB", idleWS)
	}
	if sweepWS < 30<<20 {
		t.Errorf("sweeping working set %d bytes, want all of its 32 MiB", sweepWS)
	}
}

// TestMeasureBandwidthLocal runs the real probe through Local: a
// transfer to `cat >/dev/null` here.
func TestMeasureBandwidthLocal(t *testing.T) {
	tp, err := MeasureBandwidth(context.Background(), Local{})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("local: %v", tp)
	if tp.Bytes <= 0 || tp.Bytes > bandwidthBytes || tp.BytesPerSecond() <= 0 {
		t.Errorf("probe %+v", tp)
	}
	if _, err := MeasureBandwidth(context.Background(), failRunner{}); err == nil {
		t.Error("a failed transfer has a bandwidth")
	}
}

type failRunner struct{}

func (failRunner) Run(context.Context, io.Reader, ...string) ([]byte, error) {
	return nil, fmt.Errorf("ssh: connect to host b: Connection refused")
}
func (failRunner) Where() string { return "b" }

// TestProbeReader: warm-up untimed, then the byte limit, or the time
// limit on a slow link.
func TestProbeReader(t *testing.T) {
	clock := time.Unix(0, 0)
	now := func() time.Time { return clock }
	p := &probeReader{warmup: 10, limit: 30, maxTime: time.Second, block: []byte("0123456789abcdef"), now: now}
	b := make([]byte, 8)
	var got []byte
	for {
		n, err := p.Read(b)
		got = append(got, b[:n]...)
		if errors.Is(err, io.EOF) {
			break
		}
		clock = clock.Add(10 * time.Millisecond)
	}
	if len(got) != 30 || string(got[:16]) != "0123456789abcdef" || p.start != time.Unix(0, 20e6) || p.end != time.Unix(0, 50e6) {
		t.Errorf("read %q, clock started at %v, stopped at %v; want 20ms, 50ms", got, p.start, p.end)
	}
	clock = time.Unix(0, 0)
	slow := &probeReader{warmup: 10, limit: 1 << 30, maxTime: time.Second, block: []byte("0123456789abcdef"), now: now}
	var n int64
	for {
		k, err := slow.Read(b)
		n += int64(k)
		if errors.Is(err, io.EOF) {
			break
		}
		clock = clock.Add(100 * time.Millisecond)
	}
	if slow.sent != n || n > 200 || slow.end != time.Unix(1, 300e6) {
		t.Errorf("slow link: %d bytes sent, clock stopped at %v (want 1.3s)", n, slow.end)
	}
}

// slowExitRunner takes its stdin at once, then takes exit seconds to
// exit, as ssh does after the far end's command ended.
type slowExitRunner struct{ exit time.Duration }

func (r slowExitRunner) Run(_ context.Context, stdin io.Reader, _ ...string) ([]byte, error) {
	_, err := io.Copy(io.Discard, stdin)
	time.Sleep(r.exit)
	return nil, err
}
func (slowExitRunner) Where() string { return "b" }

// TestMeasureBandwidthExitUntimed: the clock stops when the last byte was
// taken; the time the transport takes to exit afterwards (ssh's session
// teardown, 2-11 ms here against the 70 ms the probe used to time) is no
// part of the bandwidth.
func TestMeasureBandwidthExitUntimed(t *testing.T) {
	tp, err := MeasureBandwidth(context.Background(), slowExitRunner{exit: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if tp.Took >= 300*time.Millisecond || tp.Bytes <= 0 {
		t.Errorf("probe %v timed the transport's exit", tp)
	}
}
