//go:build e2e

package e2e

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/crhook/crhook/tests/hosttest"
)

// result is one finished command.
type result struct {
	out, err string
	code     int
}

func (r result) String() string {
	return "exit " + strconv.Itoa(r.code) + "\nstdout: " + r.out + "\nstderr: " + r.err
}

func run(t *testing.T, name string, args ...string) result {
	t.Helper()
	return runEnv(t, nil, name, args...)
}

// runEnv runs a command with env added to the test's environment.
func runEnv(t *testing.T, env []string, name string, args ...string) result {
	t.Helper()
	cmd := exec.Command(name, args...)
	if env != nil {
		cmd.Env = append(os.Environ(), env...)
	}
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err := cmd.Run()
	r := result{out: o.String(), err: e.String()}
	r.code = hosttest.ExitCode(t, err, fmt.Sprintf("%s %v", name, args))
	return r
}

func podman(t *testing.T, args ...string) result {
	t.Helper()
	return run(t, "podman", args...)
}

// mustPodman fails the test unless podman exits 0.
func mustPodman(t *testing.T, args ...string) string {
	t.Helper()
	r := podman(t, args...)
	if r.code != 0 {
		t.Fatalf("podman %s: %s%s", strings.Join(args, " "), r, hosttest.CRIUErrors(r.err))
	}
	return r.out
}

func crhook(t *testing.T, args ...string) result {
	t.Helper()
	return run(t, crhookBin, args...)
}

// limits work around this host's missing CAP_SYS_RESOURCE: podman's
// default nofile of 1048576 makes runc fail to set the rlimit.
var limits = []string{"--ulimit", "nofile=1024:1024", "--ulimit", "nproc=4096:4096"}

// startCtr runs a detached container of the test image under runtime rt
// and removes it when the test ends. extra goes before the image.
func startCtr(t *testing.T, rt string, extra []string, script string) string {
	t.Helper()
	name := "crhook-e2e-" + randHex(4)
	args := append([]string{"--runtime", rt, "run", "-d", "--name", name}, limits...)
	args = append(args, extra...)
	args = append(args, image, "sh", "-c", script)
	mustPodman(t, args...)
	t.Cleanup(func() { podman(t, "rm", "-f", "-t", "0", name) })
	return name
}

func running(t *testing.T, name string) bool {
	t.Helper()
	r := podman(t, "inspect", "--format", "{{.State.Running}}", name)
	return r.code == 0 && strings.TrimSpace(r.out) == "true"
}

// eventually polls cond until it holds or the deadline passes.
func eventually(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	hosttest.Eventually(t, within, what, cond)
}

// layers replaces the system CRIU layers for one test (hosttest.SetLayers).
func layers(t *testing.T, files map[string]string) {
	t.Helper()
	hosttest.SetLayers(t, files)
}

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
