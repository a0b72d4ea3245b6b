//go:build e2e

package migrate

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/crhook/crhook/engine"
	"github.com/crhook/crhook/engine/migrate"
	"github.com/crhook/crhook/engine/migrate/pki"
)

// pipeMaxSize is what CRIU's lazy dump needs without CAP_SYS_RESOURCE:
// it grows its page pipes up to 4 MiB and ignores a failed resize, and
// then fails on the first page request ("page-pipe: splice: -1: Bad
// file descriptor"). See DESIGN.md, facts.
const pipeMaxSize = 4 << 20

// TestLazyMigrationRunc moves a running container from host B to host A
// by post-copy, with the real runc and CRIU and nothing of crhook: the
// engine `crhook migrate --mode lazy` will drive. The source dumps with
// `runc checkpoint --lazy-pages --page-server --status-fd` and serves the
// pages; the small image dir travels over ssh; the destination starts
// `criu lazy-pages` and `runc restore --lazy-pages`, the pages over CRIU's
// TLS with engine/migrate's per-migration certificates, the runtime flags
// from engine.CriuOpts. Every page of the
// workload's memory pattern is verified on the destination, the source
// must be gone, and the downtime the process saw is measured.
//
// The source is B, not A, on purpose: CRIU's lazy page server ignores the
// address it is given and listens on all addresses; in B that is only the
// veth pair, in A it would include every interface of this machine.
func TestLazyMigrationRunc(t *testing.T) {
	ls := startLazySource(t, "crhook-tl", 3)
	h, scratch, runcRoot, mib, pageServer, dstTLS := ls.h, ls.scratch, ls.runcRoot, ls.mib, ls.pageServer, ls.dstTLS
	dstBundle, dstID, src, srcPid, img, work := ls.dstBundle, ls.dstID, ls.src, ls.srcPid, ls.img, ls.work
	dumpOut, dumpDone, start, ready := ls.dumpOut, ls.dumpDone, ls.start, ls.ready

	// The image dir, without the pages, travels over the control channel.
	dstImg := filepath.Join(scratch, "img")
	imgBytes := copyDirOverSSH(t, h, img, dstImg)

	// Destination: the lazy-pages daemon fetches from the source's page
	// server; runc restore starts the process at once on top of it.
	lazyArgs, err := engine.LazyPagesDaemonArgs(pageServer, dstTLS, dstImg, "lazy-pages.log")
	if err != nil {
		t.Fatal(err)
	}
	lazy := exec.Command("criu", append(lazyArgs, "-v4")...)
	var lazyOut strings.Builder
	lazy.Stdout, lazy.Stderr = &lazyOut, &lazyOut
	if err := lazy.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = lazy.Process.Kill() })
	lazyDone := waitChan(lazy)
	eventually(t, 20*time.Second, "criu lazy-pages listening on "+dstImg+"/lazy-pages.socket", func() bool {
		_, err := os.Stat(filepath.Join(dstImg, "lazy-pages.socket"))
		return err == nil
	})
	restoreArgs, err := engine.CriuOpts{LazyPages: true}.Args(engine.Runc, "restore",
		[]string{"-d", "--image-path", dstImg, "--work-path", dstImg, "--bundle", dstBundle, dstID})
	if err != nil {
		t.Fatal(err)
	}
	restore := exec.Command("runc", append([]string{"--root", runcRoot, "restore"}, restoreArgs...)...)
	dst := startContainer(t, restore)
	restored := time.Since(start)

	// Every page, faulted in from the source over the veth pair.
	dst.send(t, "check")
	line := dst.expect(t, "check ", 120*time.Second)
	checked := time.Since(start)
	got := fields(line)
	if got["bad"] != "0" || got["pages"] != strconv.Itoa(mib<<8) {
		t.Fatalf("destination memory after lazy migration: %s (want %d pages, 0 bad)\n%s", line, mib<<8, logErrors(dstImg, "lazy-pages.log"))
	}

	// Both CRIU ends finish once every page has moved; the source is gone.
	if r := waitWithin(t, dumpDone, 60*time.Second, "runc checkpoint on B"); r != nil {
		t.Fatalf("runc checkpoint --lazy-pages: %v: %s\n%s", r, dumpOut.String(), logErrors(work, "dump.log"))
	}
	if r := waitWithin(t, lazyDone, 60*time.Second, "criu lazy-pages on A"); r != nil {
		t.Fatalf("criu lazy-pages: %v: %s\n%s", r, lazyOut.String(), logErrors(dstImg, "lazy-pages.log"))
	}
	// The dumped task is killed once served; a zombie is dead enough.
	eventually(t, 10*time.Second, fmt.Sprintf("source process %d gone after the migration (else: two copies)", srcPid), func() bool {
		return !alive(srcPid)
	})
	if !src.closed(10 * time.Second) {
		t.Fatal("source container's stdout is still open after the migration")
	}
	dst.send(t, "check")
	line = dst.expect(t, "check ", 60*time.Second)
	if got := fields(line); got["bad"] != "0" {
		t.Fatalf("destination memory once every page arrived: %s", line)
	}
	// The pages came over TLS, checked both ways.
	if lazyLog, _ := os.ReadFile(filepath.Join(dstImg, "lazy-pages.log")); !strings.Contains(string(lazyLog), "TLS handshake completed") {
		t.Fatalf("criu lazy-pages did not fetch over TLS:\n%s", logErrors(dstImg, "lazy-pages.log"))
	}
	gap, _ := strconv.Atoi(got["max_gap_us"])
	downtime := time.Duration(gap) * time.Microsecond
	t.Logf("lazy migration of %d MiB B→A: page server ready after %v, restored after %v, all %d pages checked after %v; "+
		"downtime seen by the process %v; image dir %d bytes", mib, ready.Round(time.Millisecond), restored.Round(time.Millisecond),
		mib<<8, checked.Round(time.Millisecond), downtime.Round(time.Millisecond), imgBytes)
	if imgBytes > int64(mib)<<20/4 {
		t.Errorf("the image dir holds %d bytes for %d MiB of memory: pages travelled with it, not lazily", imgBytes, mib)
	}
}

// lazySource is a container dumping lazily on B: its page server is up
// (runc's status byte has arrived) and waits for a lazy-pages daemon.
type lazySource struct {
	h                 *hostB
	scratch, runcRoot string
	mib               int
	pageServer        migrate.PageServer
	dstTLS            migrate.TLSPaths
	material          *pki.TLSMaterial
	dstBundle, dstID  string
	src               *ctr
	srcPid            int
	img, work         string
	dumpOut           *strings.Builder
	dumpDone          <-chan error
	start             time.Time
	ready             time.Duration
}

// startLazySource builds host B (name, index), starts the memhog
// workload there under runc and dumps it with runc checkpoint
// --lazy-pages over CRIU TLS, up to the status byte.
func startLazySource(t *testing.T, name string, index int) *lazySource {
	t.Helper()
	needRoot(t, "runc", "criu")
	if r := run(t, "criu", "check", "--feature", "uffd-noncoop"); r.code != 0 {
		t.Skipf("CRIU says lazy pages cannot work here (criu check --feature uffd-noncoop): %s", r.err+r.out)
	}
	mib := 256
	if v := os.Getenv("CRHOOK_MIGRATE_MIB"); v != "" {
		mib, _ = strconv.Atoi(v)
	}
	raisePipeMaxSize(t)
	h := upHostB(t, name, index)
	scratch := scratchDir(t)
	runcRoot := filepath.Join(scratch, "runc")

	memhog := buildMemhog(t, scratch)
	seed := strconv.FormatUint(rand.Uint64()>>1, 10)
	args := []string{"/memhog", "-mib", strconv.Itoa(mib), "-seed", seed}
	srcBundle := filepath.Join(h.state, "lazy-src")
	dstBundle := filepath.Join(scratch, "lazy-dst")
	// Per-migration TLS: the page server runs on B, so both certificates
	// name B's address. runc has no TLS flags; the source's CRIU reads
	// them from the config file the bundle names (org.criu.config, as
	// crhook's generated criu.conf), the destination's daemon from its
	// command line.
	material, err := pki.NewTLSMaterial([]string{h.addr}, time.Hour, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	srcTLS, err := material.WriteFiles(filepath.Join(h.state, "lazy-tls"), pki.RoleServer)
	if err != nil {
		t.Fatal(err)
	}
	dstTLS, err := material.WriteFiles(filepath.Join(scratch, "tls"), pki.RoleClient)
	if err != nil {
		t.Fatal(err)
	}
	port := 20000 + rand.IntN(30000)
	pageServer := migrate.PageServer{Address: h.addr, Port: port}
	confLines, err := engine.CriuOpts{TLS: &srcTLS}.ConfLines()
	if err != nil {
		t.Fatal(err)
	}
	srcConf := filepath.Join(h.state, "lazy-criu.conf")
	if err := os.WriteFile(srcConf, []byte(strings.Join(confLines, "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	makeBundle(t, srcBundle, memhog, args, map[string]string{"org.criu.config": srcConf})
	makeBundle(t, dstBundle, memhog, args, nil)
	id := "crhook-lazy-" + strconv.Itoa(rand.IntN(1e6))
	dstID := id + "-dst"

	// Source: the workload on B, stdio on pipes as podman's conmon gives.
	src := startContainer(t, h.cmd("runc", "run", "-d", "--bundle", srcBundle, id))
	t.Cleanup(func() { _ = h.cmd("runc", "delete", "-f", id).Run() })
	src.expect(t, "ready pages=", 60*time.Second)
	srcPid := runcPid(t, h.cmd("runc", "state", id))
	src.send(t, "reset")
	src.expect(t, "reset", 10*time.Second)

	// Dump lazily; runc writes one byte to --status-fd when the page
	// server is ready, and returns only once every page was served.
	img := filepath.Join(h.state, "lazy-img")
	work := filepath.Join(h.state, "lazy-work")
	for _, d := range []string{img, work} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	statusR, statusW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	// The flags come from the typed options the runtime shim will use.
	dumpArgs, err := engine.CriuOpts{LazyPages: true, PageServer: &pageServer, StatusFd: 3, TLS: &srcTLS}.
		Args(engine.Runc, "checkpoint", []string{"--image-path", img, "--work-path", work, id})
	if err != nil {
		t.Fatal(err)
	}
	dump := h.cmd("runc", append([]string{"checkpoint"}, dumpArgs...)...)
	dump.ExtraFiles = []*os.File{statusW}
	dumpOut := &strings.Builder{}
	dump.Stdout, dump.Stderr = dumpOut, dumpOut
	start := time.Now()
	if err := dump.Start(); err != nil {
		t.Fatal(err)
	}
	statusW.Close()
	dumpDone := waitChan(dump)
	t.Cleanup(func() { _ = dump.Process.Kill() })
	status := make([]byte, 1)
	if _, err := readWithin(statusR, status, 60*time.Second); err != nil || status[0] != 0 {
		t.Fatalf("no status byte from runc checkpoint --lazy-pages (%v, %q): %s\n%s", err, status, dumpOut.String(), logErrors(work, "dump.log"))
	}
	ready := time.Since(start)
	// Why the source is B: CRIU ignores the address for a lazy page server.
	if tcp, err := h.cmd("cat", "/proc/net/tcp").Output(); err == nil {
		t.Logf("CRIU's lazy page server, asked for %s, listens on %s", pageServer, listenAddr(string(tcp), port))
	}

	return &lazySource{h: h, scratch: scratch, runcRoot: runcRoot, mib: mib, pageServer: pageServer, dstTLS: dstTLS, material: material,
		dstBundle: dstBundle, dstID: dstID, src: src, srcPid: srcPid, img: img, work: work, dumpOut: dumpOut,
		dumpDone: dumpDone, start: start, ready: ready}
}

// raisePipeMaxSize raises fs.pipe-max-size to 4 MiB for this test when it
// is lower, and puts it back when the test ends, or, through a guard
// process, when this test binary is killed.
func raisePipeMaxSize(t *testing.T) {
	t.Helper()
	const knob = "/proc/sys/fs/pipe-max-size"
	old, err := os.ReadFile(knob)
	if err != nil {
		t.Skipf("read %s: %v", knob, err)
	}
	cur, _ := strconv.Atoi(strings.TrimSpace(string(old)))
	if cur >= pipeMaxSize {
		return
	}
	restore := fmt.Sprintf("echo %d > %s", cur, knob)
	stop := guardOnExit(t, restore)
	t.Cleanup(func() {
		stop()
		if err := os.WriteFile(knob, []byte(strconv.Itoa(cur)), 0o644); err != nil {
			t.Errorf("restore %s to %d: %v", knob, cur, err)
		}
	})
	if err := os.WriteFile(knob, []byte(strconv.Itoa(pipeMaxSize)), 0o644); err != nil {
		t.Skipf("cannot raise %s to %d (needed by lazy dumps without CAP_SYS_RESOURCE): %v", knob, pipeMaxSize, err)
	}
}

// guardOnExit runs shell command undo once this process has died, unless
// stop is called first: the way to undo a host edit after SIGKILL or a go
// test timeout, which run no t.Cleanup.
func guardOnExit(t *testing.T, undo string) (stop func()) {
	t.Helper()
	script := fmt.Sprintf("while kill -0 %d 2>/dev/null; do sleep 1; done; %s", os.Getpid(), undo)
	g := exec.Command("sh", "-c", script)
	g.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := g.Start(); err != nil {
		t.Fatalf("start guard %q: %v", undo, err)
	}
	go func() { _ = g.Wait() }()
	return func() { _ = g.Process.Kill() }
}

func buildMemhog(t *testing.T, dir string) string {
	t.Helper()
	out := filepath.Join(dir, "memhog")
	cmd := exec.Command("go", "build", "-o", out, "./testdata/memhog")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build memhog: %v\n%s", err, b)
	}
	return out
}

// makeBundle writes an OCI bundle whose rootfs holds only the static
// memhog binary, from runc's own default spec.
func makeBundle(t *testing.T, dir, memhog string, args []string, annotations map[string]string) {
	t.Helper()
	rootfs := filepath.Join(dir, "rootfs")
	if err := os.MkdirAll(rootfs, 0o755); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(memhog)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(rootfs, "memhog"), data, 0o755); err != nil {
		t.Fatal(err)
	}
	mustRun(t, "runc", "spec", "--bundle", dir)
	raw, err := os.ReadFile(filepath.Join(dir, "config.json"))
	if err != nil {
		t.Fatal(err)
	}
	var spec map[string]any
	if err := json.Unmarshal(raw, &spec); err != nil {
		t.Fatal(err)
	}
	proc := spec["process"].(map[string]any)
	proc["terminal"] = false
	proc["args"] = args
	// This host lacks CAP_SYS_RESOURCE: keep rlimits at what it can grant.
	proc["rlimits"] = []map[string]any{{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}}
	// CRIU's lazy restore needs a writable root (criu issue 575, as in
	// runc's own checkpoint.bats).
	spec["root"].(map[string]any)["readonly"] = false
	if annotations != nil {
		spec["annotations"] = annotations
	}
	raw, err = json.MarshalIndent(spec, "", "\t")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "config.json"), raw, 0o644); err != nil {
		t.Fatal(err)
	}
}

// ctr is a detached container's stdio: commands in, lines out.
type ctr struct {
	in    *os.File
	lines chan string
	eof   chan struct{}
}

// scratchDir makes the directory everything of host A's side lives in:
// bundle, images, TLS files, runc's state (runc/). It goes away when the
// test ends or, through a guard, when this binary dies; see scratchUndo.
func scratchDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "crhook-migrate-")
	if err != nil {
		t.Fatal(err)
	}
	undo := scratchUndo(dir)
	stop := guardOnExit(t, undo)
	t.Cleanup(func() {
		stop()
		if out, err := exec.Command("sh", "-c", undo).CombinedOutput(); err != nil {
			t.Errorf("remove %s: %v\n%s", dir, err, out)
		}
	})
	return dir
}

// scratchUndo is the shell command that removes scratch directory dir:
// it kills what still names dir (a stuck runc or CRIU restore), deletes
// runc's containers under dir/runc, unmounts what is mounted below dir,
// and only then removes it, never crossing into another file system. A
// killed CRIU restore leaves its cgroup yard, every cgroup hierarchy,
// mounted in its work dir: a plain recursive remove would walk into it
// and delete other people's empty cgroups.
func scratchUndo(dir string) string {
	return fmt.Sprintf(`d=%[1]q
for p in /proc/[0-9]*; do [ "$p" = /proc/$$ ] && continue; grep -qsF "$d/" "$p/cmdline" && kill -9 "${p#/proc/}"; done
if [ -d "$d/runc" ]; then for id in $(runc --root "$d/runc" list -q 2>/dev/null); do runc --root "$d/runc" delete -f "$id"; done; fi
findmnt -rn -o TARGET | grep -F "$d/" | sort -r | while read -r m; do umount -l "$m"; done
rm -rf --one-file-system "$d"`, dir)
}

// startContainer runs a `runc run -d` or `runc restore -d` command with
// the container's stdio on pipes and returns once runc has returned; a
// runc still running after two minutes is killed with its process group.
func startContainer(t *testing.T, cmd *exec.Cmd) *ctr {
	t.Helper()
	inR, inW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	outR, outW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdin, cmd.Stdout, cmd.Stderr = inR, outW, outW
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	select {
	case err = <-waitChan(cmd):
	case <-time.After(2 * time.Minute):
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		err = fmt.Errorf("still running after 2m: killed")
	}
	inR.Close()
	outW.Close()
	c := &ctr{in: inW, lines: make(chan string, 100), eof: make(chan struct{})}
	t.Cleanup(func() { inW.Close(); outR.Close() })
	go func() {
		s := bufio.NewScanner(outR)
		for s.Scan() {
			c.lines <- s.Text()
		}
		close(c.eof)
	}()
	if err != nil {
		var out []string
		for len(c.lines) > 0 {
			out = append(out, <-c.lines)
		}
		t.Fatalf("%s: %v\n%s", cmd, err, strings.Join(out, "\n"))
	}
	return c
}

func (c *ctr) send(t *testing.T, line string) {
	t.Helper()
	if _, err := io.WriteString(c.in, line+"\n"); err != nil {
		t.Fatalf("send %q to the container: %v", line, err)
	}
}

// expect returns the first line starting with prefix; other lines are
// logged.
func (c *ctr) expect(t *testing.T, prefix string, within time.Duration) string {
	t.Helper()
	deadline := time.After(within)
	for {
		select {
		case l := <-c.lines:
			if strings.HasPrefix(l, prefix) {
				return l
			}
			t.Logf("container: %s", l)
		case <-c.eof:
			t.Fatalf("container output closed before a line starting %q", prefix)
		case <-deadline:
			t.Fatalf("no line starting %q from the container within %v", prefix, within)
		}
	}
}

// closed reports whether the container's output reached EOF in time:
// every process holding it has exited.
func (c *ctr) closed(within time.Duration) bool {
	select {
	case <-c.eof:
		return true
	case <-time.After(within):
		return false
	}
}

// listenAddr finds the listening socket on port in /proc/net/tcp text
// and returns its local address as ADDR:PORT, or "nothing".
func listenAddr(tcp string, port int) string {
	for _, line := range strings.Split(tcp, "\n") {
		f := strings.Fields(line)
		if len(f) < 4 || f[3] != "0A" || !strings.HasSuffix(f[1], fmt.Sprintf(":%04X", port)) {
			continue
		}
		hexIP := strings.TrimSuffix(f[1], fmt.Sprintf(":%04X", port))
		var b [4]byte
		if _, err := fmt.Sscanf(hexIP, "%02X%02X%02X%02X", &b[3], &b[2], &b[1], &b[0]); err != nil {
			return f[1]
		}
		return fmt.Sprintf("%d.%d.%d.%d:%d", b[0], b[1], b[2], b[3], port)
	}
	return "nothing"
}

// alive reports whether pid runs (exists and is no zombie).
func alive(pid int) bool {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	// The state follows the command name in parentheses, which may itself
	// hold spaces or parentheses.
	rest := string(stat[strings.LastIndexByte(string(stat), ')')+1:])
	return !strings.HasPrefix(strings.TrimSpace(rest), "Z")
}

func fields(line string) map[string]string {
	m := map[string]string{}
	for _, f := range strings.Fields(line) {
		if k, v, ok := strings.Cut(f, "="); ok {
			m[k] = v
		}
	}
	return m
}

func runcPid(t *testing.T, cmd *exec.Cmd) int {
	t.Helper()
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s: %v", cmd, err)
	}
	var st struct {
		Pid int `json:"pid"`
	}
	if err := json.Unmarshal(out, &st); err != nil || st.Pid == 0 {
		t.Fatalf("runc state: %v: %s", err, out)
	}
	return st.Pid
}

func waitChan(cmd *exec.Cmd) <-chan error {
	ch := make(chan error, 1)
	go func() { ch <- cmd.Wait() }()
	return ch
}

func waitWithin(t *testing.T, ch <-chan error, within time.Duration, what string) error {
	t.Helper()
	select {
	case err := <-ch:
		return err
	case <-time.After(within):
		t.Fatalf("%s did not finish within %v", what, within)
		return nil
	}
}

func readWithin(f *os.File, buf []byte, within time.Duration) (int, error) {
	if err := f.SetReadDeadline(time.Now().Add(within)); err != nil {
		return 0, err
	}
	return io.ReadFull(f, buf)
}

// copyDirOverSSH copies B's directory src into A's dst through ssh and
// tar, as the control channel will, and returns the bytes moved.
func copyDirOverSSH(t *testing.T, h *hostB, src, dst string) int64 {
	t.Helper()
	if err := os.MkdirAll(dst, 0o700); err != nil {
		t.Fatal(err)
	}
	send := exec.Command("ssh", "-F", h.sshConfig, h.name, "tar", "-C", src, "-cf", "-", ".")
	recv := exec.Command("tar", "-C", dst, "-xf", "-")
	pipe, err := send.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	counter := &countingReader{r: pipe}
	recv.Stdin = counter
	if err := send.Start(); err != nil {
		t.Fatal(err)
	}
	out, err := recv.CombinedOutput()
	if werr := send.Wait(); err != nil || werr != nil {
		t.Fatalf("copy %s from B: %v %v %s", src, err, werr, out)
	}
	return counter.n
}

type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// logErrors quotes the Error lines of a CRIU log, for failure messages.
func logErrors(dir, name string) string {
	data, err := os.ReadFile(filepath.Join(dir, name))
	if err != nil {
		return ""
	}
	var errs []string
	for _, l := range strings.Split(string(data), "\n") {
		if strings.Contains(l, "Error") || strings.Contains(l, "FAIL") {
			errs = append(errs, l)
		}
	}
	return name + ":\n" + strings.Join(errs, "\n")
}

// TestLazyPageServerRefusesStranger: the source's lazy page server, which
// listens on every address of B, gives a client without this migration's
// certificate nothing. It also records what bare CRIU then does to the
// migration (the orchestrator must turn that into "source resumed").
func TestLazyPageServerRefusesStranger(t *testing.T) {
	ls := startLazySource(t, "crhook-ts", 4)
	for _, stranger := range []struct {
		name  string
		certs []tls.Certificate
	}{
		{"no certificate", nil},
	} {
		conn, err := net.DialTimeout("tcp", ls.pageServer.String(), 5*time.Second)
		if err != nil {
			t.Fatalf("dial the lazy page server: %v", err)
		}
		// The stranger trusts anyone, but notes who answered: the page
		// server must be speaking TLS with this migration's certificate,
		// or a refusal would prove nothing.
		serverDER, _ := pem.Decode(ls.material.ServerCert)
		sawServerCert := false
		c := tls.Client(conn, &tls.Config{InsecureSkipVerify: true, Certificates: stranger.certs, //nolint:gosec // see above
			VerifyPeerCertificate: func(raw [][]byte, _ [][]*x509.Certificate) error {
				sawServerCert = len(raw) > 0 && bytes.Equal(raw[0], serverDER.Bytes)
				return nil
			}})
		_ = c.SetDeadline(time.Now().Add(10 * time.Second))
		herr := c.Handshake()
		n := 0
		if herr == nil {
			// A page request header: what a lazy-pages daemon sends first.
			_, _ = c.Write(make([]byte, 32))
			n, herr = c.Read(make([]byte, 4096))
		}
		_ = c.Close()
		if !sawServerCert {
			t.Fatalf("the lazy page server did not present this migration's certificate (%v): is it running without TLS?", herr)
		}
		if n > 0 || herr == nil {
			t.Fatalf("the lazy page server sent %d bytes to a client with %s (%v)", n, stranger.name, herr)
		}
		t.Logf("client with %s refused: %v", stranger.name, herr)
	}
	// What bare CRIU does next: the page server served one connection and
	// failed it. Record the source's fate; the orchestrator's commit
	// protocol must resume it (issue 13).
	err := waitWithin(t, ls.dumpDone, 60*time.Second, "runc checkpoint --lazy-pages after the refusal")
	alive := alive(ls.srcPid)
	t.Logf("after the refusal: runc checkpoint returned %v; source process %d alive: %v; dump.log: %s",
		err, ls.srcPid, alive, logErrors(ls.work, "dump.log"))
	if alive {
		ls.src.send(t, "check")
		if got := fields(ls.src.expect(t, "check ", 60*time.Second)); got["bad"] != "0" {
			t.Fatalf("the source resumed with damaged memory: %v", got)
		}
	}
}
