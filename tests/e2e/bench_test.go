//go:build e2e

package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"
)

// pairs is how many A/B pairs each row measures; `make bench` may raise it.
func pairs() int {
	n := 10
	if v := os.Getenv("CRHOOK_BENCH_PAIRS"); v != "" {
		_, _ = fmt.Sscan(v, &n)
	}
	return n
}

type row struct {
	name          string
	a, b          []time.Duration // crhook, plain runtime
	target        string
	ratioMax      float64
	addedMaxMilli float64 // 0: no absolute target
}

func median(d []time.Duration) time.Duration {
	s := append([]time.Duration(nil), d...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func (r row) String() string {
	ratios := make([]float64, len(r.a))
	added := make([]time.Duration, len(r.a))
	for i := range r.a {
		ratios[i] = float64(r.a[i]) / float64(r.b[i])
		added[i] = r.a[i] - r.b[i]
	}
	sort.Float64s(ratios)
	ratio := float64(median(r.a)) / float64(median(r.b))
	verdict := "ok"
	if ratio > r.ratioMax || (r.addedMaxMilli > 0 && float64(median(added))/1e6 > r.addedMaxMilli) {
		verdict = "MISSED"
	}
	return fmt.Sprintf("%-34s %7.3f  %6.3f..%-6.3f %10s %10s %10s  %-22s %s", r.name, ratio, ratios[0], ratios[len(ratios)-1],
		median(r.a).Round(10*time.Microsecond), median(r.b).Round(10*time.Microsecond),
		median(added).Round(10*time.Microsecond), r.target, verdict)
}

// measure runs a and b interleaved, alternating which goes first, so drift
// on the machine hits both sides alike.
func measure(t *testing.T, n int, a, b func() time.Duration) (as, bs []time.Duration) {
	t.Helper()
	a()
	b() // warm caches
	for i := 0; i < n; i++ {
		if i%2 == 0 {
			as, bs = append(as, a()), append(bs, b())
		} else {
			bs, as = append(bs, b()), append(as, a())
		}
	}
	return as, bs
}

func timed(t *testing.T, name string, args ...string) time.Duration {
	t.Helper()
	start := time.Now()
	out, err := exec.Command(name, args...).CombinedOutput()
	d := time.Since(start)
	if err != nil {
		t.Fatalf("%s %v: %v\n%s", name, args, err, out)
	}
	return d
}

// TestBenchmarkTable prints crhook's cost against the plain runtime. It is
// `make bench`, not part of `make test`: timings belong in a table a
// person reads, never in a pass/fail unit test.
func TestBenchmarkTable(t *testing.T) {
	need(t)
	if os.Getenv("CRHOOK_BENCH") == "" {
		t.Skip("benchmarks run with `make bench` (CRHOOK_BENCH=1)")
	}
	if os.Getenv("CRHOOK_BENCH_ONLY") == "migration" {
		t.Skip("CRHOOK_BENCH_ONLY=migration: the migration table is tests/migrate's")
	}
	n := pairs()
	var rows []row

	// 1. pass-through on a running container.
	layers(t, nil)
	ctr := startCtr(t, runtime, nil, "exec sleep 1000000")
	id := strings.TrimSpace(mustPodman(t, "inspect", "--format", "{{.Id}}", ctr))
	a, b := measure(t, 3*n, func() time.Duration {
		return timed(t, "/usr/libexec/crhook/crhook-runtime", "--root", "/run/runc", "state", id)
	}, func() time.Duration { return timed(t, "runc", "--root", "/run/runc", "state", id) })
	rows = append(rows, row{name: "runtime state (pass-through)", a: a, b: b, target: "<=1.2, +<=1ms", ratioMax: 1.2, addedMaxMilli: 1})
	floor := buildHelper(t, "execfloor")
	a, b = measure(t, 3*n, func() time.Duration {
		return timed(t, floor, "runc", "--root", "/run/runc", "state", id)
	}, func() time.Duration { return timed(t, "runc", "--root", "/run/runc", "state", id) })
	rows = append(rows, row{name: "floor: a Go binary that only execs", a: a, b: b, target: "(reference)", ratioMax: 99})
	// What crhook adds over any Go wrapper (issue 12: within 0.3 ms).
	a, b = measure(t, 3*n, func() time.Duration {
		return timed(t, "/usr/libexec/crhook/crhook-runtime", "--root", "/run/runc", "state", id)
	}, func() time.Duration { return timed(t, floor, "runc", "--root", "/run/runc", "state", id) })
	rows = append(rows, row{name: "pass-through vs the Go exec floor", a: a, b: b, target: "+<=0.3ms", ratioMax: 99, addedMaxMilli: 0.3})
	if os.Getenv("CRHOOK_BENCH_ONLY") == "passthrough" {
		printTable(n, rows)
		return
	}

	// 2. podman run -d + rm -f.
	runRm := func(rt string) func() time.Duration {
		return func() time.Duration {
			name := "crhook-bench-" + randHex(4)
			start := time.Now()
			mustPodman(t, append(append([]string{"--runtime", rt, "run", "-d", "--name", name}, limits...), image, "sleep", "1000")...)
			mustPodman(t, "rm", "-f", "-t", "0", name)
			return time.Since(start)
		}
	}
	a, b = measure(t, n, runRm(runtime), runRm("runc"))
	rows = append(rows, row{name: "podman run -d + rm -f", a: a, b: b, target: "<=1.03", ratioMax: 1.03})

	// 3 and 4. checkpoint + restore, crhook (default.conf) against runc
	// with the same option in /etc/criu/runc.conf.
	hog := buildHelper(t, "memhog")
	for _, c := range []struct {
		name, target string
		max          float64
		extra        []string
		cmd          string
	}{
		{"checkpoint+restore idle", "<=1.05", 1.05, nil, "exec sleep 1000000"},
		{"checkpoint+restore 512 MiB", "<=1.02", 1.02, []string{"-v", hog + ":/memhog:ro"}, "exec /memhog 512"},
	} {
		layers(t, map[string]string{"/etc/criu/default.conf": "tcp-established\n"})
		withHook := startCtr(t, runtime, c.extra, c.cmd)
		plain := startCtr(t, "runc", c.extra, c.cmd)
		if strings.Contains(c.cmd, "memhog") {
			for _, x := range []string{withHook, plain} {
				x := x
				eventually(t, 60*time.Second, "memory touched", func() bool { return strings.Contains(mustPodman(t, "logs", x), "touched") })
			}
		}
		cr := func(name string, conf map[string]string) func() time.Duration {
			return func() time.Duration {
				layers(t, conf)
				start := time.Now()
				mustPodman(t, "container", "checkpoint", name)
				mustPodman(t, "container", "restore", name)
				return time.Since(start)
			}
		}
		a, b = measure(t, n, cr(withHook, map[string]string{"/etc/criu/default.conf": "tcp-established\n"}),
			cr(plain, map[string]string{"/etc/criu/runc.conf": "tcp-established\n"}))
		rows = append(rows, row{name: c.name, a: a, b: b, target: c.target, ratioMax: c.max})
		podman(t, "rm", "-f", "-t", "0", withHook, plain)
	}

	printTable(n, rows)
	self, _ := os.Stat(crhookBin)
	runcPath, _ := exec.LookPath("runc")
	runcInfo, _ := os.Stat(runcPath)
	fmt.Printf("binary size: crhook %.1f MiB, runc %.1f MiB\n", float64(self.Size())/(1<<20), float64(runcInfo.Size())/(1<<20))
	fmt.Printf("peak RSS of one `state` call: crhook-runtime %d KiB, runc %d KiB\n",
		maxRSS(t, "/usr/libexec/crhook/crhook-runtime", "--root", "/run/runc", "state", id),
		maxRSS(t, "runc", "--root", "/run/runc", "state", id))
}

// printTable prints the rows measured; "plain" is runc, or the Go exec
// floor in the row that says so.
func printTable(n int, rows []row) {
	fmt.Printf("BENCH crhook vs plain runtime: %d pairs per row (pass-through %d), interleaved; kernel %s\n", n, 3*n, uname())
	fmt.Printf("%-34s %7s  %-14s %10s %10s %10s  %-22s %s\n", "measure", "ratio", "pair min..max", "crhook", "plain", "added", "target", "verdict")
	for _, r := range rows {
		fmt.Println(r)
	}
}

// maxRSS is the child's peak resident set; the pass-through execs runc in
// the same process, so this covers crhook and runc together.
func maxRSS(t *testing.T, name string, args ...string) int64 {
	t.Helper()
	cmd := exec.Command(name, args...)
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return cmd.ProcessState.SysUsage().(*syscall.Rusage).Maxrss
}

func uname() string {
	var u syscall.Utsname
	_ = syscall.Uname(&u)
	var b strings.Builder
	for _, c := range u.Release {
		if c == 0 {
			break
		}
		b.WriteByte(byte(c))
	}
	return b.String()
}

// buildHelper builds a static test helper from testdata/NAME, then copies
// it into place as `make install` copies crhook-runtime: the Go linker
// writes its output through a memory mapping, and the page cache keeps
// such a file in small pieces that cost more page faults at every exec
// than the same bytes copied (about +0.08 ms per run of the floor on the
// project VM). Measured against crhook-runtime, the floor must start the
// way an installed binary does.
func buildHelper(t *testing.T, name string) string {
	t.Helper()
	dir := t.TempDir()
	built := filepath.Join(dir, name+".built")
	cmd := exec.Command("go", "build", "-o", built, "./testdata/"+name)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build %s: %v\n%s", name, err, b)
	}
	data, err := os.ReadFile(built)
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, name)
	f, err := os.OpenFile(out, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o755)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write(data); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	return out
}
