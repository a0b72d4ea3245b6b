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

func TestReadTrusted(t *testing.T) {
	dir := t.TempDir()
	if _, found, err := ReadTrusted(filepath.Join(dir, "missing")); found || err != nil {
		t.Errorf("missing file: found %v, err %v; want (false, nil)", found, err)
	}
	big := filepath.Join(dir, "big")
	if err := os.WriteFile(big, make([]byte, MaxSize+1), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, _, err := ReadTrusted(big); !errors.Is(err, ErrUnsafe) || !strings.Contains(err.Error(), "larger than") {
		t.Errorf("oversized file: %v, want ErrUnsafe saying it is too large", err)
	}
	ok := filepath.Join(dir, "ok")
	if err := os.WriteFile(ok, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	if data, found, err := ReadTrusted(ok); string(data) != "x" || !found || err != nil {
		t.Errorf("plain file: %q %v %v", data, found, err)
	}
	if os.Geteuid() != 0 {
		return // the ownership rule applies only to root
	}
	if err := os.Chmod(ok, 0o666); err != nil {
		t.Fatal(err)
	}
	if _, _, err := ReadTrusted(ok); !errors.Is(err, ErrUnsafe) || !strings.Contains(err.Error(), "chmod go-w") {
		t.Errorf("group-writable file read as root: %v, want ErrUnsafe naming chmod go-w", err)
	}
}

func TestProblem(t *testing.T) {
	me := uint32(os.Geteuid())
	other := me + 1
	if me == 0 {
		other = 1000
	}
	for _, tc := range []struct {
		uid, mode   uint32
		allowSticky bool
		want        string
	}{
		{0, 0o644, false, ""},
		{me, 0o600, false, ""},
		{other, 0o644, false, "owned by uid"},
		{0, 0o664, false, "writable by group or others (mode 0664)"},
		{0, 0o1777, true, ""},
		{0, 0o1777, false, "writable by group or others"},
		{0, 0o777, true, "writable by group or others"},
	} {
		why, fix := Problem("/x", tc.uid, tc.mode, tc.allowSticky)
		if (tc.want == "") != (why == "") || !strings.Contains(why, tc.want) || (why != "" && fix == "") {
			t.Errorf("Problem(uid %d, mode %04o, sticky %v) = %q, %q; want %q", tc.uid, tc.mode, tc.allowSticky, why, fix, tc.want)
		}
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
