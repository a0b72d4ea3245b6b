//go:build e2e

package migrate

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// doctorCheck is one check of `crhook doctor --format json`.
type doctorCheck struct {
	ID       string   `json:"id"`
	Status   string   `json:"status"`
	Evidence []string `json:"evidence"`
	Fix      string   `json:"fix"`
}

// TestDoctorDestination runs the installed `crhook doctor --destination`
// against host B: B answers over ssh with its own migration checks, and
// its CRIU and runc (the same binaries as A's) match; a destination that
// does not answer fails with ssh's error. crhook runs the ssh it finds in
// PATH, so a wrapper first in PATH hands it the bed's key and known
// hosts, as a user's ~/.ssh/config would.
func TestDoctorDestination(t *testing.T) {
	needRoot(t, "crhook", "criu", "runc")
	h := upHostB(t, "crhook-doc", 13)

	bin := t.TempDir()
	wrapper := "#!/bin/sh\nexec /usr/bin/ssh -F " + h.sshConfig + " \"$@\"\n"
	if err := os.WriteFile(filepath.Join(bin, "ssh"), []byte(wrapper), 0o755); err != nil {
		t.Fatal(err)
	}
	doctor := func(t *testing.T, dest string) (int, map[string]doctorCheck) {
		t.Helper()
		cmd := exec.Command("crhook", "doctor", "--format", "json", "--only", "migrate", "--destination", dest)
		cmd.Env = append(os.Environ(), "PATH="+bin+":"+os.Getenv("PATH"))
		r := runCmd(t, cmd)
		var rep struct {
			Checks []doctorCheck `json:"checks"`
		}
		if err := json.Unmarshal([]byte(r.out), &rep); err != nil {
			t.Fatalf("crhook doctor --destination %s: no JSON report: %v\n%s", dest, err, r)
		}
		checks := map[string]doctorCheck{}
		for _, c := range rep.Checks {
			checks[c.ID] = c
		}
		return r.code, checks
	}
	want := func(t *testing.T, checks map[string]doctorCheck, id, status string, evidence ...string) {
		t.Helper()
		c, ok := checks[id]
		if !ok {
			t.Errorf("no check %s in %v", id, checks)
			return
		}
		text := strings.Join(c.Evidence, "\n")
		if c.Status != status {
			t.Errorf("%s: %s, want %s\n%s\nfix: %s", id, c.Status, status, text, c.Fix)
		}
		for _, e := range evidence {
			if !strings.Contains(text, e) {
				t.Errorf("%s: evidence lacks %q:\n%s", id, e, text)
			}
		}
	}

	t.Run("reachable", func(t *testing.T) {
		code, checks := doctor(t, h.sshURL)
		if code == 1 {
			t.Errorf("exit status 1 (a failure) against a matching host B: %v", checks)
		}
		want(t, checks, "destination.reachable", "ok", "-- "+h.addr+" crhook doctor --format json --only migrate: exit status")
		want(t, checks, "remote.migrate.uffd", "ok", "criu check --feature uffd-noncoop: uffd-noncoop is supported")
		want(t, checks, "remote.migrate.tls", "ok", "libgnutls")
		for _, id := range []string{"remote.migrate.lazy_pipe", "remote.migrate.soft_dirty"} {
			if _, ok := checks[id]; !ok {
				t.Errorf("B did not report %s", id)
			}
		}
		want(t, checks, "destination.criu_version", "ok", "here: CRIU ")
		want(t, checks, "destination.runtime_version", "ok", "here: runc ")
		// A's own checks are there too, without the prefix.
		want(t, checks, "migrate.uffd", "ok")
	})

	t.Run("unreachable", func(t *testing.T) {
		// Port 2 of B: nothing listens, B answers with a reset.
		code, checks := doctor(t, "ssh://root@"+h.addr+":2")
		if code != 1 {
			t.Errorf("exit status %d, want 1", code)
		}
		want(t, checks, "destination.reachable", "fail", "ssh failed (exit status 255)", "port 2: Connection refused")
		want(t, checks, "destination.criu_version", "skip")
		if c := checks["destination.reachable"]; !strings.Contains(c.Fix, "-p 2 -l root -- "+h.addr+" true") {
			t.Errorf("fix does not give the ssh command to try: %q", c.Fix)
		}
	})

}
