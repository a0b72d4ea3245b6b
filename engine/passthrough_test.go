package engine

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// fakeRuntime is an OCI runtime below crhook: it logs each call to
// $FAKE_LOG and answers state with the container it knows.
const fakeRuntime = `#!/bin/sh
echo "$*" >>"$FAKE_LOG"
for a; do :; done
case " $* " in
*" state "*) printf '{"id":"%s","status":"running"}\n' "$a" ;;
esac
exit 0
`

// runtimeTree is a scratch root with a fake runtime and crhook-runtime
// (this test binary) linked in. settings maps files below root to content;
// "FAKE" in them stands for the fake runtime's path.
type runtimeTree struct {
	root, fake, bin, log string
}

func newRuntimeTree(t *testing.T, settings map[string]string) *runtimeTree {
	t.Helper()
	root := t.TempDir()
	rt := &runtimeTree{root: root, fake: filepath.Join(root, "fake-runc"), bin: filepath.Join(root, "crhook-runtime"),
		log: filepath.Join(root, "calls.log")}
	if err := os.WriteFile(rt.fake, []byte(fakeRuntime), 0o755); err != nil {
		t.Fatal(err)
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(self, rt.bin); err != nil {
		t.Fatal(err)
	}
	for rel, content := range settings {
		p := filepath.Join(root, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(strings.ReplaceAll(content, "FAKE", rt.fake)), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return rt
}

// call runs crhook-runtime with args; it returns the exit status, stderr
// and the calls the fake runtime received.
func (rt *runtimeTree) call(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	cmd := exec.Command(rt.bin, args...)
	cmd.Env = append(os.Environ(), "CRHOOK_TEST_ROOT="+rt.root, "FAKE_LOG="+rt.log, "CRHOOK_CONFIG=")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	err := cmd.Run()
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	calls, _ := os.ReadFile(rt.log)
	_ = os.Remove(rt.log)
	return code, stderr.String(), string(calls)
}

const testID = "c0ffee0123456789crhooktest"

// TestBrokenSettingsKeepRuntime: a mistake in an unrelated key of
// crhook.toml must not send state, kill or delete to another runtime
// (runc would answer "container does not exist" and podman would leak
// the container). The fake runtime must get every call.
func TestBrokenSettingsKeepRuntime(t *testing.T) {
	for name, settings := range map[string]map[string]string{
		"unknown option in the same file": {"etc/crhook/crhook.toml": "[runtime]\npath = \"FAKE\"\n[criu]\ndeny = [\"no-such-option\"]\n"},
		"broken drop-in, path in crhook.toml": {
			"etc/crhook/crhook.toml":           "[runtime]\npath = \"FAKE\"\n",
			"etc/crhook/crhook.d/50-typo.toml": "state_dir = \"run/relative\"\n",
		},
		"unknown key in a drop-in": {
			"etc/crhook/crhook.toml":           "[runtime]\npath = \"FAKE\"\n",
			"etc/crhook/crhook.d/50-typo.toml": "[annotations]\nalow = [\"shell-job\"]\n",
		},
	} {
		t.Run(name, func(t *testing.T) {
			rt := newRuntimeTree(t, settings)
			for _, args := range [][]string{
				{"--root", "/run/fake", "state", testID},
				{"--root", "/run/fake", "kill", testID, "KILL"},
				{"--root", "/run/fake", "delete", "--force", testID},
			} {
				code, stderr, calls := rt.call(t, args...)
				if code != 0 || strings.TrimSpace(calls) != strings.Join(args, " ") {
					t.Errorf("%s: exit %d, fake runtime got %q; want exit 0 and the call passed on\nstderr: %s", args[2], code, calls, stderr)
				}
				if !strings.Contains(stderr, "invalid crhook settings") {
					t.Errorf("%s: the broken setting is not reported: %q", args[2], stderr)
				}
			}
		})
	}
}

// TestUndeterminedRuntimeFails: when the file that might set runtime.path
// cannot be parsed, every call fails with 127 and names the file and line;
// no runtime is guessed.
func TestUndeterminedRuntimeFails(t *testing.T) {
	rt := newRuntimeTree(t, map[string]string{
		"etc/crhook/crhook.toml":          "[runtime]\npath = \"FAKE\"\n",
		"etc/crhook/crhook.d/90-bad.toml": "[runtime]\npath = \"FAKE\"\n[criu\n",
	})
	for _, cmd := range []string{"state", "kill", "delete"} {
		code, stderr, calls := rt.call(t, cmd, testID)
		want := filepath.Join(rt.root, "etc/crhook/crhook.d/90-bad.toml") + ":4"
		if code != 127 || calls != "" || !strings.Contains(stderr, want) || !strings.Contains(stderr, "runtime.path is undetermined") {
			t.Errorf("%s: exit %d, fake runtime got %q, stderr %q; want 127, no call, and the error at %s", cmd, code, calls, stderr, want)
		}
	}
}
