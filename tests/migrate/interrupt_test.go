//go:build e2e

package migrate

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestCrhookMigrateInterrupted: the user presses Ctrl-C (SIGINT to
// crhook migrate) once the source's plan is written, while the source is
// being dumped. The promise: the step under way is not cut in half (the
// podman checkpoint crhook started finishes), then, the destination not
// having run, the source runs again with every page and A has nothing;
// crhook exits non-zero and says it was interrupted.
func TestCrhookMigrateInterrupted(t *testing.T) {
	m := setupStream(t, "crhook-si", 15)
	id := strings.TrimSpace(m.h.mustSSH(t, "podman container inspect --format '{{.Id}}' "+m.name))
	plan := filepath.Join(m.bStateDir(t), "containers", id, "migration.json")

	args := []string{"migrate", m.name, m.dest, "--mode", "stream", "--ssh-config", m.sshConfig,
		"--format", "json", "--connect-timeout", "20s", "--no-progress-timeout", "30s", "--timeout", "5m"}
	cmd := m.h.cmd("crhook", args...)
	var out, errb strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := waitChan(cmd)
	// crhook runs under hostb.sh's exec: signal crhook itself, found by
	// its command line, the moment its plan exists on B.
	var pid int
	eventually(t, 60*time.Second, "crhook migrate wrote its plan on B", func() bool {
		if _, err := os.Stat(plan); err != nil {
			return false
		}
		o, _ := exec.Command("pgrep", "-f", "--", "migrate "+m.name+" "+m.dest).Output()
		for _, f := range strings.Fields(string(o)) {
			comm, _ := os.ReadFile("/proc/" + f + "/comm")
			if strings.TrimSpace(string(comm)) == "crhook" {
				pid, _ = strconv.Atoi(f)
				return pid > 0
			}
		}
		return false
	})
	if err := syscall.Kill(pid, syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	if err := waitWithin(t, done, 3*time.Minute, "crhook migrate after SIGINT"); err == nil {
		t.Fatalf("crhook migrate exited 0 after SIGINT before the destination ran:\n%s\n%s", out.String(), errb.String())
	}
	var s map[string]any
	if err := json.Unmarshal([]byte(out.String()), &s); err != nil {
		t.Fatalf("no JSON summary (%v): %s\n%s", err, out.String(), errb.String())
	}
	t.Logf("summary: %v", s)
	if e, _ := s["error"].(string); !strings.Contains(e, "interrupted") {
		t.Errorf("summary error %q does not say interrupted", e)
	}
	if src, _ := s["source_state"].(string); src != "running" && src != "running (rolled back)" {
		t.Errorf("summary's source_state %q, want running (untouched) or running (rolled back)", src)
	}
	m.sourceRunsAgain(t, result{out: out.String(), err: errb.String(), code: cmd.ProcessState.ExitCode()}, s)
	m.noMigrationLeft(t, s)
}
