//go:build e2e

package migrate

import (
	"os/exec"
	"strings"
	"testing"
)

// TestCrhookMigratePrecopyRefused: where CRIU cannot track dirty pages
// (this host's kernel has no soft-dirty), `crhook migrate --mode
// precopy` is refused up front with CRIU's own reason, before it
// touches either host. The migration itself runs in the guest lane
// (tests/guest, TestTwoGuestMigrate), whose kernel tracks them.
func TestCrhookMigratePrecopyRefused(t *testing.T) {
	if _, err := exec.LookPath("crhook"); err != nil {
		t.Skip("crhook not installed: run make install")
	}
	criu, err := exec.LookPath("criu")
	if err != nil {
		criu = "/usr/local/sbin/criu"
	}
	if out, err := exec.Command(criu, "check", "--feature", "mem_dirty_track").CombinedOutput(); err == nil {
		t.Skipf("CRIU tracks dirty pages here (%s): nothing to refuse; tests/guest migrates with --mode precopy", strings.TrimSpace(string(out)))
	}
	// No such host: a refusal that came after any ssh would say so.
	r := run(t, "crhook", "migrate", "no-such-container", "ssh://root@192.0.2.1", "--mode", "precopy", "--connect-timeout", "1s")
	if r.code == 0 {
		t.Fatalf("crhook migrate --mode precopy succeeded without dirty-page tracking: %s", r)
	}
	for _, want := range []string{"--mode precopy needs CRIU's dirty-page tracking", "Dirty tracking is OFF", "use --mode stream or lazy"} {
		if !strings.Contains(r.err, want) {
			t.Errorf("refusal lacks %q: %s", want, r)
		}
	}
	if strings.Contains(r.err, "192.0.2.1") || strings.Contains(r.err, "no-such-container") {
		t.Errorf("the refusal came after crhook looked for the container or the host: %s", r)
	}
}
