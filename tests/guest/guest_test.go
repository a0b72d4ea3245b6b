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
	"io"
	"os"
	"os/exec"
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

// boot runs one scenario in a fresh guest, streaming its output to the
// test log line by line, and fails the test on a non-zero exit.
func boot(t *testing.T, scenario string, args ...string) {
	t.Helper()
	if r := skipReason(); r != "" {
		t.Skip(r)
	}
	cmd := exec.Command("bash", append([]string{"run.sh"}, append(args, scenario)...)...)
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
	pw.Close()
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
	boot(t, "scenarios/selinux.sh", "--selinux")
}
