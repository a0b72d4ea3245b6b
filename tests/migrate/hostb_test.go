//go:build e2e

// Package migrate holds the end-to-end tests of live migration between two
// hosts on one machine: this one (host A, the default namespaces) and host
// B, which tests/hosts/hostb.sh builds from a network namespace, a veth
// pair, its own sshd and its own podman store. The tests edit the host
// (namespaces, a sysctl) and restore it when they end, also when killed:
// run them under the host lock (flock /tmp/crhook-host.lock).
package migrate

import (
	"bufio"
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/crhook/crhook/tests/hosttest"
)

// hostbScript is the test bed script, relative to this package.
const hostbScript = "../hosts/hostb.sh"

// testImage is the busybox image tests/setup-host.sh builds on host A.
const testImage = "localhost/crhook-test/busybox"

// result is one finished command.
type result struct {
	out, err string
	code     int
}

func (r result) String() string {
	return "exit " + strconv.Itoa(r.code) + "\nstdout: " + r.out + "\nstderr: " + r.err
}

// runCmd runs cmd and returns what it printed; only a failure to start
// it at all fails the test.
func runCmd(t *testing.T, cmd *exec.Cmd) result {
	t.Helper()
	var o, e bytes.Buffer
	if cmd.Stdout == nil {
		cmd.Stdout = &o
	}
	cmd.Stderr = &e
	err := cmd.Run()
	r := result{out: o.String(), err: e.String()}
	r.code = hosttest.ExitCode(t, err, cmd.String())
	return r
}

func run(t *testing.T, name string, args ...string) result {
	t.Helper()
	return runCmd(t, exec.Command(name, args...))
}

func mustRun(t *testing.T, name string, args ...string) string {
	t.Helper()
	r := run(t, name, args...)
	if r.code != 0 {
		t.Fatalf("%s %s: %s", name, strings.Join(args, " "), r)
	}
	return r.out
}

// needRoot skips unless this process can build host B: root, and the
// tools the bed uses. The bed itself reports anything else it lacks.
func needRoot(t *testing.T, tools ...string) {
	t.Helper()
	if os.Getuid() != 0 {
		t.Skip("needs root: builds network namespaces, runs sshd and podman")
	}
	for _, tool := range append([]string{"ip", "nsenter", "unshare", "ssh", "ssh-keygen", "/usr/sbin/sshd", "jq", "podman"}, tools...) {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s not installed: run tests/setup-host.sh", tool)
		}
	}
}

// hostB is a running host B.
type hostB struct {
	name, addr, aAddr, state, sshConfig, sshURL string
	script                                      string
	env                                         []string
}

// bedEnv names a bed instance: each test uses its own name and /30 so a
// leftover of one never meets another.
func bedEnv(name string, index int) []string {
	return append(os.Environ(), "HOSTB_NAME="+name, "HOSTB_INDEX="+strconv.Itoa(index))
}

// upHostB builds host B and tears it down when the test ends; a guard
// process tears it down too if this test binary dies without cleanup.
func upHostB(t *testing.T, name string, index int) *hostB {
	t.Helper()
	script, err := filepath.Abs(hostbScript)
	if err != nil {
		t.Fatal(err)
	}
	h := &hostB{script: script, env: bedEnv(name, index)}
	cmd := exec.Command(script, "up", "--guard", strconv.Itoa(os.Getpid()))
	cmd.Env = h.env
	r := runCmd(t, cmd)
	t.Cleanup(func() { h.down(t) })
	if r.code != 0 {
		t.Fatalf("hostb.sh up: %s", r)
	}
	vars := readEnvFile(t, strings.TrimSpace(r.out))
	h.name, h.addr, h.aAddr = vars["HOSTB_NAME"], vars["HOSTB_ADDR"], vars["HOSTA_ADDR"]
	h.state, h.sshConfig, h.sshURL = vars["HOSTB_STATE"], vars["HOSTB_SSH_CONFIG"], vars["HOSTB_SSH_URL"]
	if h.addr == "" || h.sshConfig == "" || h.state == "" {
		t.Fatalf("hostb.sh up wrote an incomplete env file: %v", vars)
	}
	return h
}

func (h *hostB) down(t *testing.T) {
	t.Helper()
	cmd := exec.Command(h.script, "down")
	cmd.Env = h.env
	if r := runCmd(t, cmd); r.code != 0 {
		t.Errorf("hostb.sh down: %s", r)
	}
}

func readEnvFile(t *testing.T, path string) map[string]string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatalf("read host B's env file: %v", err)
	}
	defer f.Close()
	vars := map[string]string{}
	s := bufio.NewScanner(f)
	for s.Scan() {
		if k, v, ok := strings.Cut(s.Text(), "="); ok {
			vars[k] = v
		}
	}
	return vars
}

// ssh runs a shell command line on B, as a remote user of B would.
func (h *hostB) ssh(t *testing.T, cmdline string) result {
	t.Helper()
	return run(t, "ssh", "-F", h.sshConfig, h.name, cmdline)
}

func (h *hostB) mustSSH(t *testing.T, cmdline string) string {
	t.Helper()
	r := h.ssh(t, cmdline)
	if r.code != 0 {
		t.Fatalf("ssh %s %q: %s", h.name, cmdline, r)
	}
	return r.out
}

// cmd returns a command that runs in B's network and mount namespaces
// directly (no ssh): for processes the test must own, such as CRIU.
func (h *hostB) cmd(name string, args ...string) *exec.Cmd {
	cmd := exec.Command(h.script, append([]string{"exec", name}, args...)...)
	cmd.Env = h.env
	return cmd
}

// loadImage copies the test image from A's store into B's over ssh, as a
// user moving an image between hosts would.
func (h *hostB) loadImage(t *testing.T) {
	t.Helper()
	if run(t, "podman", "image", "exists", testImage).code != 0 {
		t.Skipf("no %s on host A: run tests/setup-host.sh", testImage)
	}
	save := exec.Command("podman", "save", testImage)
	load := exec.Command("ssh", "-F", h.sshConfig, h.name, "podman", "load", "-q")
	pipe, err := save.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	load.Stdin = pipe
	if err := save.Start(); err != nil {
		t.Fatal(err)
	}
	r := runCmd(t, load)
	if err := save.Wait(); err != nil || r.code != 0 {
		t.Fatalf("podman save | ssh %s podman load: %v %s", h.name, err, r)
	}
}

// eventually polls cond until it holds or the deadline passes.
func eventually(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	hosttest.Eventually(t, within, what, cond)
}
