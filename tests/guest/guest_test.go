//go:build guest

// Package guest runs crhook's scenarios that this host's kernel cannot:
// pre-copy needs soft-dirty tracking, the SELinux checks an enforcing
// policy. Each test boots the QEMU guest that build-image.sh builds (a
// Debian bookworm kernel under TCG) once and runs one scenario script in
// it with many assertions; run.sh does the booting and streams the
// scenario's output here. `make guest-test` builds the image first.
package guest

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// skipReason is why QEMU cannot run here at all; "" when it can.
func skipReason() string {
	if os.Geteuid() != 0 {
		return "needs root: the guest image is built with mmdebstrap and chroot"
	}
	if _, err := exec.LookPath("qemu-system-x86_64"); err != nil {
		return "qemu-system-x86_64 not installed (package qemu-system-x86; tests/setup-host.sh installs it)"
	}
	if _, err := os.Stat("/usr/share/qemu/qboot.rom"); err != nil {
		return "/usr/share/qemu/qboot.rom missing (package qemu-system-data)"
	}
	return ""
}

// boot runs one scenario in a fresh guest (run.sh with runArgs: options,
// the scenario, its arguments), streaming its output to the test log line
// by line, and fails the test on a non-zero exit.
func boot(t *testing.T, runArgs ...string) {
	t.Helper()
	if r := skipReason(); r != "" {
		t.Skip(r)
	}
	scenario := strings.Join(runArgs, " ")
	cmd := exec.Command("bash", append([]string{"run.sh"}, runArgs...)...)
	pr, pw := io.Pipe()
	cmd.Stdout, cmd.Stderr = pw, pw
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		sc := bufio.NewScanner(pr)
		sc.Buffer(make([]byte, 64*1024), 1024*1024)
		for sc.Scan() {
			t.Log(strings.TrimRight(sc.Text(), "\r"))
		}
	}()
	start := time.Now()
	err := cmd.Run()
	_ = pw.Close() // a pipe's Close never fails; it ends the reader
	wg.Wait()
	var exit *exec.ExitError
	switch {
	case err == nil:
		t.Logf("%s passed in %s", scenario, time.Since(start).Round(time.Second))
	case errors.As(err, &exit) && exit.ExitCode() == 125:
		t.Fatalf("%s: the guest reported no exit code (crash, hang or timeout; console tail above)", scenario)
	default:
		t.Fatalf("%s: %v (assertions marked FAIL above)", scenario, err)
	}
}

func TestPrecopy(t *testing.T) {
	boot(t, "scenarios/precopy.sh")
}

func TestSELinux(t *testing.T) {
	boot(t, "--selinux", "scenarios/selinux.sh")
}

// TestTwoGuestMigrate moves podman containers from guest a to guest b
// with `crhook migrate`, once per mode (scenarios/migrate.sh), over their link: ssh keys made for
// this run reach both guests through their shares. It is also the link's
// test (ping, ssh, the page stream checked page by page); scenarios/link.sh
// (ping and a 4 MiB TCP transfer) is kept for checking a link by hand with
// two run.sh (tests/guest/README.md), not run here: one two-guest boot
// pair per run.
func TestTwoGuestMigrate(t *testing.T) {
	if r := skipReason(); r != "" {
		t.Skip(r)
	}
	share := t.TempDir()
	keys := filepath.Join(share, "ssh")
	if err := os.Mkdir(keys, 0o700); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"id", "host_key"} {
		if out, err := exec.Command("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "crhook-guest-test",
			"-f", filepath.Join(keys, k)).CombinedOutput(); err != nil {
			t.Fatalf("ssh-keygen %s (package openssh-client): %v: %s", k, err, out)
		}
	}
	// TCG: podman steps take seconds each, pages cross the link at 5-9 MiB/s.
	twoGuests(t, "scenarios/migrate.sh", 1500, "--share", share)
}

// twoGuests boots guests a (10.77.0.1) and b (10.77.0.2) on one link and
// runs scenario in both with arguments ROLE MY_ADDR PEER_ADDR. The two run
// at the same time by necessity.
func twoGuests(t *testing.T, scenario string, timeout int, runArgs ...string) {
	t.Helper()
	if r := skipReason(); r != "" {
		t.Skip(r)
	}
	port := freePort(t)
	// Build (or find) the image once, before two boots race to do it.
	out, err := exec.Command("bash", "build-image.sh").Output()
	if err != nil {
		t.Fatalf("build-image.sh: %v", err)
	}
	t.Setenv("CRHOOK_GUEST_DISK", strings.TrimSpace(string(out)))
	var wg sync.WaitGroup
	for _, g := range []struct{ name, link, mac, me, peer string }{
		{"a", "listen", "52:54:00:77:00:01", "10.77.0.1", "10.77.0.2"},
		{"b", "connect", "52:54:00:77:00:02", "10.77.0.2", "10.77.0.1"},
	} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			t.Run(g.name, func(t *testing.T) {
				args := append([]string{"--link", fmt.Sprintf("%s:%d", g.link, port), "--ip", g.me + "/24", "--mac", g.mac,
					"--timeout", strconv.Itoa(timeout)}, runArgs...)
				boot(t, append(args, scenario, g.name, g.me, g.peer)...)
			})
		}()
		if g.link == "listen" {
			// QEMU's connect side needs the listener up.
			waitListening(t, port)
		}
	}
	wg.Wait()
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	return port
}

// waitListening polls /proc/net/tcp for a listener on port. It must not
// connect: QEMU's -netdev socket,listen takes the first connection as its
// peer.
func waitListening(t *testing.T, port int) {
	t.Helper()
	want := fmt.Sprintf(":%04X ", port)
	deadline := time.Now().Add(120 * time.Second)
	for time.Now().Before(deadline) {
		data, err := os.ReadFile("/proc/net/tcp")
		if err != nil {
			t.Fatalf("read /proc/net/tcp: %v", err)
		}
		for _, line := range strings.Split(string(data), "\n") {
			// local_address is field 2, st (0A = LISTEN) field 4.
			if f := strings.Fields(line); len(f) > 3 && strings.HasSuffix(f[1]+" ", want) && f[3] == "0A" {
				return
			}
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("guest a's QEMU is not listening on 127.0.0.1:%d after 120 s", port)
}
