// Package hosttest holds what the host-level test suites (tests/e2e,
// tests/migrate, tests/cri) share: polling with a deadline instead of
// sleeping, and putting back the host files a suite writes.
package hosttest

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// CRIULayers are the system CRIU files the suites write; KeepFiles puts
// them back.
var CRIULayers = []string{"/etc/criu/default.conf", "/etc/criu/runc.conf", "/etc/criu/crun.conf", "/root/.criu/default.conf"}

// Eventually polls cond until it holds, and fails the test naming what
// did not happen when within passes first.
func Eventually(t testing.TB, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not within %v: %s", within, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// KeepFiles saves files and returns what puts them back as they were:
// rewritten when they existed, removed when they did not.
func KeepFiles(files ...string) (restore func()) {
	saved := map[string][]byte{}
	for _, f := range files {
		if data, err := os.ReadFile(f); err == nil {
			saved[f] = data
		}
	}
	return func() {
		for _, f := range files {
			if data, ok := saved[f]; ok {
				_ = os.WriteFile(f, data, 0o644)
			} else {
				_ = os.Remove(f)
			}
		}
	}
}

// criuLog finds the CRIU log a failure names: runc's "log file: X",
// containerd's "path= X".
var criuLog = regexp.MustCompile(`(?:log file:|path=) (/\S+\.log)`)

// CRIUErrors quotes the error lines of the CRIU log msg names, so a
// failing test says why before anyone digs for the file (or the suite
// removes it); "" when msg names no readable log.
func CRIUErrors(msg string) string {
	m := criuLog.FindStringSubmatch(msg)
	if m == nil {
		return ""
	}
	data, err := os.ReadFile(m[1])
	if err != nil {
		return ""
	}
	var errs []string
	for _, l := range strings.Split(string(data), "\n") {
		if strings.Contains(l, "Error") && !strings.Contains(l, "RLIMIT_NOFILE") {
			errs = append(errs, l)
		}
	}
	return "\nCRIU errors in " + m[1] + ":\n" + strings.Join(errs, "\n")
}

// ExitCode is the exit status of a command that ran and ended with err;
// a command that could not run at all fails the test, naming what.
func ExitCode(t testing.TB, err error, what string) int {
	t.Helper()
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		return ee.ExitCode()
	case err != nil:
		t.Fatalf("%s: %v", what, err)
	}
	return 0
}

// SetLayers replaces the system CRIU layers for one test: the files named
// get their content, the others are removed. The suite's TestMain puts
// the originals back (KeepFiles).
func SetLayers(t testing.TB, files map[string]string) {
	t.Helper()
	for _, f := range CRIULayers {
		content, ok := files[f]
		if !ok {
			_ = os.Remove(f)
			continue
		}
		if err := os.MkdirAll(filepath.Dir(f), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(f, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}
