package config

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/crhook/crhook/config/criuopt"
)

// within runs f and fails the test if it has not returned by the deadline:
// a FIFO opened for reading blocks until a writer comes, which is never.
func within(t *testing.T, d time.Duration, what string, f func()) {
	t.Helper()
	done := make(chan struct{})
	go func() { defer close(done); f() }()
	select {
	case <-done:
	case <-time.After(d):
		t.Fatalf("%s still blocked after %v", what, d)
	}
}

func mkfifo(t *testing.T, path string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	_ = os.Remove(path)
	if err := unix.Mkfifo(path, 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestSpecialFilesRefusedWithoutHanging: a FIFO or a device in the place
// of a settings file, a drop-in, the drop-in directory or a CRIU layer is
// refused, naming it, and nothing blocks.
func TestSpecialFilesRefusedWithoutHanging(t *testing.T) {
	for _, tc := range []struct {
		name  string
		plant func(t *testing.T, p Paths) string // returns the planted path
		load  func(p Paths) error
		want  string
	}{
		{"FIFO as crhook.toml", func(t *testing.T, p Paths) string { mkfifo(t, p.SettingsSystem); return p.SettingsSystem },
			func(p Paths) error { _, err := LoadSettings(p); return err }, "a FIFO"},
		{"FIFO as a drop-in", func(t *testing.T, p Paths) string {
			f := filepath.Join(p.SettingsDropIn, "50-x.toml")
			mkfifo(t, f)
			return f
		}, func(p Paths) error { _, _, err := LoadRuntimePath(p); return err }, "a FIFO"},
		{"FIFO as the drop-in directory", func(t *testing.T, p Paths) string { mkfifo(t, p.SettingsDropIn); return p.SettingsDropIn },
			func(p Paths) error { _, err := LoadSettings(p); return err }, "not a directory"},
		{"device as crhook.toml", func(t *testing.T, p Paths) string {
			if err := os.MkdirAll(filepath.Dir(p.SettingsSystem), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.Symlink("/dev/zero", p.SettingsSystem); err != nil {
				t.Fatal(err)
			}
			return p.SettingsSystem
		}, func(p Paths) error { _, err := LoadSettings(p); return err }, "a character device"},
		{"FIFO as default.conf", func(t *testing.T, p Paths) string { mkfifo(t, p.SystemCRIU()); return p.SystemCRIU() },
			func(p Paths) error { _, err := Resolve(p, Input{Runtime: "runc", Settings: Fallback()}); return err }, "a FIFO"},
		{"FIFO checked by config check", func(t *testing.T, p Paths) string { mkfifo(t, p.SystemCRIU()); return p.SystemCRIU() },
			func(p Paths) error { _, err := CheckFile(p.SystemCRIU()); return err }, "a FIFO"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := tree(t, nil)
			planted := tc.plant(t, p)
			var err error
			within(t, 5*time.Second, tc.name, func() { err = tc.load(p) })
			if err == nil || !strings.Contains(err.Error(), planted) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v; want a refusal naming %s as %s", err, planted, tc.want)
			}
			var fe *criuopt.FileError
			if tc.want != "not a directory" && (!errors.As(err, &fe) || !errors.Is(err, ErrUnsafeFile)) {
				t.Errorf("err %v: want a *FileError wrapping ErrUnsafeFile", err)
			}
		})
	}
}
