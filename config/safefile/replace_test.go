package safefile

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
)

func TestIsTemp(t *testing.T) {
	for name, want := range map[string]bool{
		".default.conf.crhook-1x3z": true, ".runc.conf.crhook-0": true,
		".default.conf.crhook-": false, "default.conf.crhook-12": false, ".crhook-12": false,
		".default.conf.crhook-AB": false, ".default.conf.crhook-1/2": false,
	} {
		if got := IsTemp(name); got != want {
			t.Errorf("IsTemp(%q) = %v, want %v", name, got, want)
		}
	}
}

// TestWriteFile: the replacement has the new content and mode, no
// temporary file stays, and a link planted at the name is replaced, not
// followed.
func TestWriteFile(t *testing.T) {
	dir := t.TempDir()
	target := filepath.Join(dir, "target")
	if err := os.WriteFile(target, []byte("keep"), 0o644); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "config.json")
	if err := os.Symlink(target, path); err != nil {
		t.Fatal(err)
	}
	if err := WriteFile(path, []byte("new"), 0o640); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Lstat(path)
	if err != nil || !fi.Mode().IsRegular() || fi.Mode().Perm() != 0o640 {
		t.Fatalf("after WriteFile: %v %v, want a regular file with mode 0640", fi, err)
	}
	if got, _ := os.ReadFile(path); !bytes.Equal(got, []byte("new")) {
		t.Errorf("content %q, want %q", got, "new")
	}
	if got, _ := os.ReadFile(target); string(got) != "keep" {
		t.Errorf("the link's target was written: %q", got)
	}
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if IsTemp(e.Name()) {
			t.Errorf("temporary file %s left behind", e.Name())
		}
	}
}

// TestReplaceFailsCleanly: a write that cannot finish leaves the old file
// and no temporary file.
func TestReplaceFailsCleanly(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "f")
	if err := os.WriteFile(path, []byte("old"), 0o600); err != nil {
		t.Fatal(err)
	}
	d, err := OpenDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = d.Close() }()
	// Renaming a file over a non-empty directory fails, also as root.
	if err := os.Mkdir(filepath.Join(dir, "sub"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "sub", "x"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := d.Replace("sub", []byte("new"), Replace{Perm: 0o600, UID: -1, GID: -1}); err == nil {
		t.Fatal("Replace over a non-empty directory succeeded")
	}
	names, err := d.Names()
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range names {
		if IsTemp(n) {
			t.Errorf("temporary file %s left behind", n)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "sub", "x")); errors.Is(err, fs.ErrNotExist) {
		t.Error("the directory in the way was changed")
	}
}
