//go:build e2e

// Package e2e drives the real podman, runc and CRIU through crhook. It needs
// root, the host prepared by tests/setup-host.sh and crhook installed
// (`make install`); `make test` does all three. The tests rewrite the
// system CRIU layers, so TestMain saves and restores them.
package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/crhook/crhook/tests/hosttest"
)

const (
	image   = "localhost/crhook-test/busybox"
	runtime = "crhook"
	// The crhook binary the tests run: the installed one, which must be
	// the one `make build` just produced (checked in TestMain).
	crhookBin = "/usr/bin/crhook"
)

// skipReason is why the host cannot run these tests; need() skips on it.
var skipReason string

func need(t *testing.T) {
	t.Helper()
	if skipReason != "" {
		t.Skip(skipReason)
	}
}

func TestMain(m *testing.M) {
	skipReason = missing()
	if skipReason != "" {
		fmt.Fprintln(os.Stderr, "e2e: every test skips:", skipReason)
	}
	restore := hosttest.KeepFiles(hosttest.CRIULayers...)
	code := m.Run()
	restore()
	os.Exit(code)
}

// missing says why the end-to-end tests cannot run here, or "".
func missing() string {
	if os.Getuid() != 0 {
		return "needs root (podman, runc and CRIU checkpoint as root)"
	}
	for _, tool := range []string{"podman", "runc", "criu"} {
		if _, err := exec.LookPath(tool); err != nil {
			return tool + " not installed: run tests/setup-host.sh"
		}
	}
	if _, err := os.Stat("/usr/libexec/crhook/crhook-runtime"); err != nil {
		return "crhook not installed: run make install"
	}
	return ""
}

func TestInstalledIsBuilt(t *testing.T) {
	need(t)
	built, _ := filepath.Abs("../../bin/crhook")
	a, err := os.ReadFile(built)
	if err != nil {
		t.Skipf("no %s: run make build", built)
	}
	b, err := os.ReadFile(crhookBin)
	if err != nil {
		t.Fatal(err)
	}
	if string(a) != string(b) {
		t.Fatalf("%s differs from %s: run make install before the e2e tests", crhookBin, built)
	}
}
