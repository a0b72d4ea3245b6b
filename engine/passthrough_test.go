package engine

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
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
// "FAKE" in them stands for the fake runtime's path, "ROOT" for root.
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
		content = strings.ReplaceAll(strings.ReplaceAll(content, "FAKE", rt.fake), "ROOT", root)
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
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

const passID = "c0ffee0123456789crhooktest"

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
				{"--root", "/run/fake", "state", passID},
				{"--root", "/run/fake", "kill", passID, "KILL"},
				{"--root", "/run/fake", "delete", "--force", passID},
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

// TestBrokenSettingsKeepStateDir: delete still removes the container's
// state from the configured state_dir while another setting is broken.
func TestBrokenSettingsKeepStateDir(t *testing.T) {
	rt := newRuntimeTree(t, map[string]string{"etc/crhook/crhook.toml": "state_dir = \"ROOT/state\"\nbogus = 1\n[runtime]\npath = \"FAKE\"\n"})
	conf, _ := ConfPath(filepath.Join(rt.root, "state"), passID)
	if err := WriteConf(conf, []byte("x\n")); err != nil {
		t.Fatal(err)
	}
	code, stderr, calls := rt.call(t, "delete", passID)
	if code != 0 || strings.TrimSpace(calls) != "delete "+passID {
		t.Fatalf("delete: exit %d, calls %q, stderr %s", code, calls, stderr)
	}
	if _, err := os.Stat(filepath.Dir(conf)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("state of the deleted container left in the configured state_dir: %v", err)
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
		code, stderr, calls := rt.call(t, cmd, passID)
		want := filepath.Join(rt.root, "etc/crhook/crhook.d/90-bad.toml") + ":4"
		if code != 127 || calls != "" || !strings.Contains(stderr, want) || !strings.Contains(stderr, "runtime.path is undetermined") {
			t.Errorf("%s: exit %d, fake runtime got %q, stderr %q; want 127, no call, and the error at %s", cmd, code, calls, stderr, want)
		}
	}
}

// TestFIFOSettingsDoNotHang: a FIFO planted as crhook.toml used to block
// every runtime call in open(2), pass-through state included. Now the
// call either reaches the runtime a later file names, or fails at once.
func TestFIFOSettingsDoNotHang(t *testing.T) {
	rt := newRuntimeTree(t, map[string]string{"etc/crhook/crhook.d/50-rt.toml": "[runtime]\npath = \"FAKE\"\n"})
	fifo := filepath.Join(rt.root, "etc/crhook/crhook.toml")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Fatal(err)
	}
	code, stderr, calls := rt.callWithin(t, 10*time.Second, "state", passID)
	if code != 0 || strings.TrimSpace(calls) != "state "+passID || !strings.Contains(stderr, "a FIFO") {
		t.Errorf("state with a FIFO crhook.toml before the drop-in: exit %d, calls %q, stderr %q; want the fake runtime reached and the FIFO reported", code, calls, stderr)
	}
	last := filepath.Join(rt.root, "etc/crhook/crhook.d/90-fifo.toml")
	if err := syscall.Mkfifo(last, 0o644); err != nil {
		t.Fatal(err)
	}
	code, stderr, calls = rt.callWithin(t, 10*time.Second, "state", passID)
	if code != 127 || calls != "" || !strings.Contains(stderr, last) || !strings.Contains(stderr, "a FIFO") {
		t.Errorf("state with a FIFO as the last drop-in: exit %d, calls %q, stderr %q; want 127 naming it", code, calls, stderr)
	}
}

// TestRuntimeThatCannotRun: runtime.path naming a file execve would refuse
// is reported for what it is, with the fix, and a checkpoint does not go
// on to diagnose a CRIU that never ran.
func TestRuntimeThatCannotRun(t *testing.T) {
	for _, tc := range []struct {
		name    string
		content string
		mode    os.FileMode
		want    []string
	}{
		{"not executable", fakeRuntime, 0o644, []string{"is not executable (mode 0644", "chmod 0755"}},
		{"bad interpreter", "#!/nonexistent/crhook-test-sh\nexit 0\n", 0o755, []string{"bad interpreter", `"/nonexistent/crhook-test-sh"`}},
		{"no #! line", "echo hi\n", 0o755, []string{"neither a program (ELF) nor a script"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.name == "no #! line" && hasBinfmtHandlers() {
				t.Skip("a binfmt_misc handler is registered: the kernel might run a file without #!")
			}
			rt := newRuntimeTree(t, map[string]string{"etc/crhook/crhook.toml": "state_dir = \"ROOT/state\"\n[runtime]\npath = \"FAKE\"\n",
				"bundle/config.json": `{"ociVersion":"1.0.2"}`})
			if err := os.WriteFile(rt.fake, []byte(tc.content), tc.mode); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(rt.fake, tc.mode); err != nil {
				t.Fatal(err)
			}
			// restore reaches the runtime (and, on failure, the CRIU log
			// diagnosis) without a real container.
			img := t.TempDir()
			for _, args := range [][]string{{"state", passID},
				{"restore", "--bundle", filepath.Join(rt.root, "bundle"), "--image-path", img, "--work-path", img, passID}} {
				code, stderr, _ := rt.call(t, args...)
				if code != 127 {
					t.Errorf("%s: exit %d, want 127; stderr %q", args[0], code, stderr)
				}
				for _, w := range append([]string{"crhook.toml:3"}, tc.want...) {
					if !strings.Contains(stderr, w) {
						t.Errorf("%s: stderr lacks %q: %s", args[0], w, stderr)
					}
				}
				if strings.Contains(stderr, "CRIU") || strings.Contains(stderr, "not found") {
					t.Errorf("%s: stderr blames CRIU or a missing file: %s", args[0], stderr)
				}
			}
		})
	}
}

func hasBinfmtHandlers() bool {
	ents, _ := os.ReadDir("/proc/sys/fs/binfmt_misc")
	for _, e := range ents {
		if e.Name() != "register" && e.Name() != "status" {
			return true
		}
	}
	return false
}

// callWithin is call with a deadline: a hung crhook fails the test.
func (rt *runtimeTree) callWithin(t *testing.T, d time.Duration, args ...string) (int, string, string) {
	t.Helper()
	type res struct {
		code           int
		stderr, called string
	}
	done := make(chan res, 1)
	var cmd *exec.Cmd
	started := make(chan struct{})
	go func() {
		cmd = exec.Command(rt.bin, args...)
		cmd.Env = append(os.Environ(), "CRHOOK_TEST_ROOT="+rt.root, "FAKE_LOG="+rt.log, "CRHOOK_CONFIG=")
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		if err := cmd.Start(); err != nil {
			close(started)
			done <- res{code: -1, stderr: err.Error()}
			return
		}
		close(started)
		err := cmd.Wait()
		code := 0
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			code = ee.ExitCode()
		}
		calls, _ := os.ReadFile(rt.log)
		_ = os.Remove(rt.log)
		done <- res{code, stderr.String(), string(calls)}
	}()
	<-started
	select {
	case r := <-done:
		return r.code, r.stderr, r.called
	case <-time.After(d):
		_ = cmd.Process.Kill()
		t.Fatalf("crhook-runtime %v still running after %v", args, d)
	}
	return 0, "", ""
}
