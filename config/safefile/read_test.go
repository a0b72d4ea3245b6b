package safefile

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestSpecialFilesRefusedAtOnce: a FIFO, a device or a directory in the
// place of a file, and a FIFO in the place of a directory, are refused
// naming what they are, and nothing blocks (a FIFO opened for reading
// without O_NONBLOCK waits for a writer that never comes; /dev/zero read
// to its end never ends).
func TestSpecialFilesRefusedAtOnce(t *testing.T) {
	dir := t.TempDir()
	fifo := filepath.Join(dir, "fifo")
	if err := unix.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, path, want string
		call             func(string) error
	}{
		{"FIFO opened", fifo, "a FIFO", func(p string) error { _, _, err := OpenRegular(p); return err }},
		{"device opened", "/dev/zero", "a character device", func(p string) error { _, _, err := OpenRegular(p); return err }},
		{"directory opened", dir, "a directory", func(p string) error { _, _, err := OpenRegular(p); return err }},
		{"FIFO read as trusted", fifo, "a FIFO", func(p string) error { _, _, err := ReadTrusted(p); return err }},
		{"device read as trusted", "/dev/zero", "a character device", func(p string) error { _, _, err := ReadTrusted(p); return err }},
		{"FIFO listed", fifo, "not a directory", func(p string) error { _, err := DropIns(p, ".toml"); return err }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := os.Stat(tc.path); err != nil {
				t.Skipf("%s: %v", tc.path, err)
			}
			done := make(chan error, 1)
			go func() { done <- tc.call(tc.path) }()
			select {
			case err := <-done:
				if err == nil || !strings.Contains(err.Error(), tc.path) || !strings.Contains(err.Error(), tc.want) {
					t.Errorf("err = %v; want a refusal naming %s as %s", err, tc.path, tc.want)
				}
			case <-time.After(5 * time.Second):
				t.Fatalf("%s still blocked after 5s", tc.name)
			}
		})
	}
}

func TestDropIns(t *testing.T) {
	dir := t.TempDir()
	for _, n := range []string{"b.toml", "a.toml", "c.conf", ".x.toml.crhook-1"} {
		if err := os.WriteFile(filepath.Join(dir, n), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Mkdir(filepath.Join(dir, "d.toml"), 0o755); err != nil {
		t.Fatal(err)
	}
	got, err := DropIns(dir, ".toml")
	if err != nil || strings.Join(got, " ") != "a.toml b.toml" {
		t.Errorf("DropIns = %q, %v; want a.toml b.toml", got, err)
	}
	if got, err := DropIns(filepath.Join(dir, "missing"), ".toml"); got != nil || err != nil {
		t.Errorf("missing directory: %q, %v; want empty", got, err)
	}
	if _, err := DropIns(filepath.Join(dir, "a.toml"), ".toml"); !errors.Is(err, unix.ENOTDIR) || errors.Is(err, fs.ErrNotExist) {
		t.Errorf("a file as the directory: %v, want ENOTDIR", err)
	}
}

// TestReadTrustedWhole: ReadTrusted reads on the bare descriptor, sized by
// fstat; every size up to MaxSize comes back whole, and a symbolic link
// is read through (the link's target is the file).
func TestReadTrustedWhole(t *testing.T) {
	dir := t.TempDir()
	for _, size := range []int{0, 1, 511, 4096, 8193, MaxSize} {
		data := make([]byte, size)
		for i := range data {
			data[i] = byte('a' + i%26)
		}
		path := filepath.Join(dir, "f")
		if err := os.WriteFile(path, data, 0o644); err != nil {
			t.Fatal(err)
		}
		link := filepath.Join(dir, "link")
		_ = os.Remove(link)
		if err := os.Symlink(path, link); err != nil {
			t.Fatal(err)
		}
		for _, p := range []string{path, link} {
			got, found, err := ReadTrusted(p)
			if err != nil || !found || string(got) != string(data) {
				t.Errorf("size %d via %s: %d bytes, found %v, %v; want the %d bytes", size, filepath.Base(p), len(got), found, err, size)
			}
		}
	}
	if got, found, err := ReadTrusted(filepath.Join(dir, "missing")); got != nil || found || err != nil {
		t.Errorf("missing file: %q, %v, %v; want not found, no error", got, found, err)
	}
}
