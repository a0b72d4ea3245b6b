package engine

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

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
			f := newFake(t, settings)
			for _, args := range [][]string{
				{"--root", "/run/fake", "state", passID},
				{"--root", "/run/fake", "kill", passID, "KILL"},
				{"--root", "/run/fake", "delete", "--force", passID},
			} {
				code, stderr := f.shim(args...)
				if calls := f.calls(); code != 0 || calls != strings.Join(args, " ") {
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
	f := newFake(t, map[string]string{"etc/crhook/crhook.toml": "state_dir = \"ROOT/state\"\nbogus = 1\n[runtime]\npath = \"FAKE\"\n"})
	conf, _ := ConfPath(filepath.Join(f.root, "state"), passID)
	if err := WriteConf(conf, []byte("x\n")); err != nil {
		t.Fatal(err)
	}
	code, stderr := f.shim("delete", passID)
	if calls := f.calls(); code != 0 || calls != "delete "+passID {
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
	f := newFake(t, map[string]string{
		"etc/crhook/crhook.toml":          "[runtime]\npath = \"FAKE\"\n",
		"etc/crhook/crhook.d/90-bad.toml": "[runtime]\npath = \"FAKE\"\n[criu\n",
	})
	for _, cmd := range []string{"state", "kill", "delete"} {
		code, stderr := f.shim(cmd, passID)
		calls := f.calls()
		want := filepath.Join(f.root, "etc/crhook/crhook.d/90-bad.toml") + ":4"
		if code != 127 || calls != "" || !strings.Contains(stderr, want) || !strings.Contains(stderr, "runtime.path is undetermined") {
			t.Errorf("%s: exit %d, fake runtime got %q, stderr %q; want 127, no call, and the error at %s", cmd, code, calls, stderr, want)
		}
	}
}

// TestFIFOSettingsDoNotHang: a FIFO planted as crhook.toml used to block
// every runtime call in open(2), pass-through state included. Now the
// call either reaches the runtime a later file names, or fails at once.
func TestFIFOSettingsDoNotHang(t *testing.T) {
	f := newFake(t, map[string]string{"etc/crhook/crhook.d/50-rt.toml": "[runtime]\npath = \"FAKE\"\n"})
	fifo := filepath.Join(f.root, "etc/crhook/crhook.toml")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Fatal(err)
	}
	code, stderr := f.shimWithin(10*time.Second, "state", passID)
	if calls := f.calls(); code != 0 || calls != "state "+passID || !strings.Contains(stderr, "a FIFO") {
		t.Errorf("state with a FIFO crhook.toml before the drop-in: exit %d, calls %q, stderr %q; want the fake runtime reached and the FIFO reported", code, calls, stderr)
	}
	last := filepath.Join(f.root, "etc/crhook/crhook.d/90-fifo.toml")
	if err := syscall.Mkfifo(last, 0o644); err != nil {
		t.Fatal(err)
	}
	code, stderr = f.shimWithin(10*time.Second, "state", passID)
	if calls := f.calls(); code != 127 || calls != "" || !strings.Contains(stderr, last) || !strings.Contains(stderr, "a FIFO") {
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
		{"not executable", "#!/bin/sh\nexit 0\n", 0o644, []string{"is not executable (mode 0644", "chmod 0755"}},
		{"bad interpreter", "#!/nonexistent/crhook-test-sh\nexit 0\n", 0o755, []string{"bad interpreter", `"/nonexistent/crhook-test-sh"`}},
		{"no #! line", "echo hi\n", 0o755, []string{"neither a program (ELF) nor a script"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.name == "no #! line" && hasBinfmtHandlers() {
				t.Skip("a binfmt_misc handler is registered: the kernel might run a file without #!")
			}
			f := newFake(t, map[string]string{"etc/crhook/crhook.toml": "state_dir = \"ROOT/state\"\n[runtime]\npath = \"FAKE\"\n",
				"bundle/config.json": `{"ociVersion":"1.0.2"}`})
			if err := os.WriteFile(f.bin, []byte(tc.content), tc.mode); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(f.bin, tc.mode); err != nil {
				t.Fatal(err)
			}
			// restore reaches the runtime (and, on failure, the CRIU log
			// diagnosis) without a real container.
			img := t.TempDir()
			for _, args := range [][]string{{"state", passID},
				{"restore", "--bundle", filepath.Join(f.root, "bundle"), "--image-path", img, "--work-path", img, passID}} {
				code, stderr := f.shim(args...)
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
