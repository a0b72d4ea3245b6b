package safefile

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

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
