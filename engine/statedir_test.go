package engine

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const stateID = "0123abcd"

// victim is a directory another user would like root to write into: the
// target of a planted link. Its mode and content must survive.
func victim(t *testing.T) string {
	t.Helper()
	v := filepath.Join(t.TempDir(), "victim")
	if err := os.MkdirAll(v, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(v, "criu.conf"), []byte("keep\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return v
}

func assertUntouched(t *testing.T, v string) {
	t.Helper()
	fi, err := os.Stat(v)
	if err != nil || fi.Mode().Perm() != 0o755 {
		t.Errorf("link target %s: mode %v, %v; want 0755 untouched", v, fi.Mode(), err)
	}
	if b, err := os.ReadFile(filepath.Join(v, "criu.conf")); err != nil || string(b) != "keep\n" {
		t.Errorf("link target's criu.conf = %q, %v; want it untouched", b, err)
	}
}

func mkdirs(t *testing.T, dirs ...string) {
	t.Helper()
	for _, d := range dirs {
		if err := os.MkdirAll(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
}

func symlink(t *testing.T, target, link string) {
	t.Helper()
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
}

// TestWriteConfRefusesLinkedStateDirs: containers/ID or containers/ as a
// symbolic link must be refused, naming the link, with the target left
// as it was (it used to be chmod'ed 0700 and its criu.conf replaced).
func TestWriteConfRefusesLinkedStateDirs(t *testing.T) {
	for _, tc := range []struct {
		name  string
		plant func(t *testing.T, state, target string) string // returns the link
	}{
		{"containers/ID", func(t *testing.T, state, target string) string {
			mkdirs(t, filepath.Join(state, "containers"))
			link := filepath.Join(state, "containers", stateID)
			symlink(t, target, link)
			return link
		}},
		{"containers", func(t *testing.T, state, target string) string {
			mkdirs(t, state)
			link := filepath.Join(state, "containers")
			symlink(t, filepath.Dir(target), link)
			return link
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			state := filepath.Join(t.TempDir(), "state")
			v := victim(t)
			if tc.name == "containers" {
				// The link names the victim's parent, so that
				// containers/ID would be the victim itself.
				v2 := filepath.Join(filepath.Dir(v), stateID)
				if err := os.Rename(v, v2); err != nil {
					t.Fatal(err)
				}
				v = v2
			}
			link := tc.plant(t, state, v)
			conf, _ := ConfPath(state, stateID)
			err := WriteConf(conf, []byte("action-script /tmp/evil\n"))
			if !errors.Is(err, ErrUnsafeStateDir) || !strings.Contains(err.Error(), link) || !strings.Contains(err.Error(), "symbolic link") {
				t.Errorf("WriteConf through %s = %v; want ErrUnsafeStateDir naming %s as a symbolic link", link, err, link)
			}
			assertUntouched(t, v)
		})
	}
}

// TestRemoveStateFollowsNoLink: delete removes a planted link, never what
// it points at; through a linked containers/ it removes nothing.
func TestRemoveStateFollowsNoLink(t *testing.T) {
	state := filepath.Join(t.TempDir(), "state")
	mkdirs(t, filepath.Join(state, "containers"))
	v := victim(t)
	link := filepath.Join(state, "containers", stateID)
	symlink(t, v, link)
	if err := RemoveState(state, stateID); err != nil {
		t.Fatalf("RemoveState: %v", err)
	}
	if _, err := os.Lstat(link); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("planted link %s still there: %v", link, err)
	}
	assertUntouched(t, v)

	state2 := filepath.Join(t.TempDir(), "state")
	mkdirs(t, state2)
	v2 := filepath.Join(filepath.Dir(victim(t)), stateID)
	if err := os.Rename(filepath.Join(filepath.Dir(v2), "victim"), v2); err != nil {
		t.Fatal(err)
	}
	symlink(t, filepath.Dir(v2), filepath.Join(state2, "containers"))
	if err := RemoveState(state2, stateID); !errors.Is(err, ErrUnsafeStateDir) {
		t.Errorf("RemoveState through a linked containers/ = %v, want ErrUnsafeStateDir", err)
	}
	assertUntouched(t, v2)
}

// TestWriteConfRefusesUnsafeStateDir: a state_dir another user could
// write to (group/world-writable, or not root's) is refused, with the fix.
func TestWriteConfRefusesUnsafeStateDir(t *testing.T) {
	t.Run("group-writable", func(t *testing.T) {
		state := filepath.Join(t.TempDir(), "state")
		mkdirs(t, state)
		if err := os.Chmod(state, 0o770); err != nil {
			t.Fatal(err)
		}
		conf, _ := ConfPath(state, stateID)
		err := WriteConf(conf, []byte("x\n"))
		if !errors.Is(err, ErrUnsafeStateDir) || !strings.Contains(err.Error(), "chmod go-w \""+state+"\"") {
			t.Fatalf("WriteConf in a group-writable state_dir = %v; want a refusal with the chmod fix", err)
		}
		if _, err := os.Stat(filepath.Join(state, "containers")); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("something was created in the refused state_dir: %v", err)
		}
	})
	t.Run("world-writable containers", func(t *testing.T) {
		state := filepath.Join(t.TempDir(), "state")
		mkdirs(t, filepath.Join(state, "containers"))
		if err := os.Chmod(filepath.Join(state, "containers"), 0o777); err != nil {
			t.Fatal(err)
		}
		conf, _ := ConfPath(state, stateID)
		if err := WriteConf(conf, []byte("x\n")); !errors.Is(err, ErrUnsafeStateDir) {
			t.Fatalf("WriteConf under a world-writable containers/ = %v; want ErrUnsafeStateDir", err)
		}
	})
	t.Run("not root-owned", func(t *testing.T) {
		if os.Geteuid() != 0 {
			t.Skip("needs root: only root can make a directory owned by another user")
		}
		state := filepath.Join(t.TempDir(), "state")
		mkdirs(t, state)
		if err := os.Chown(state, 65534, 65534); err != nil {
			t.Fatal(err)
		}
		conf, _ := ConfPath(state, stateID)
		err := WriteConf(conf, []byte("x\n"))
		if !errors.Is(err, ErrUnsafeStateDir) || !strings.Contains(err.Error(), "owned by uid 65534") || !strings.Contains(err.Error(), "chown root:root") {
			t.Fatalf("WriteConf in a state_dir owned by uid 65534 = %v; want a refusal with the chown fix", err)
		}
	})
}

// TestWriteConfLinkAboveStateDir: above state_dir a link in a trusted
// directory is followed (Debian's /var/run -> /run); one in a directory
// others can write is not.
func TestWriteConfLinkAboveStateDir(t *testing.T) {
	base := t.TempDir()
	mkdirs(t, filepath.Join(base, "real"))
	symlink(t, "real", filepath.Join(base, "run"))
	conf, _ := ConfPath(filepath.Join(base, "run", "crhook"), stateID)
	if err := WriteConf(conf, []byte("tcp-established\n")); err != nil {
		t.Fatalf("WriteConf below a trusted link: %v", err)
	}
	if b, err := os.ReadFile(filepath.Join(base, "real", "crhook", "containers", stateID, "criu.conf")); err != nil || string(b) != "tcp-established\n" {
		t.Fatalf("criu.conf = %q, %v", b, err)
	}

	open := filepath.Join(base, "open")
	mkdirs(t, open)
	if err := os.Chmod(open, 0o777); err != nil {
		t.Fatal(err)
	}
	symlink(t, filepath.Join(base, "real"), filepath.Join(open, "run"))
	conf, _ = ConfPath(filepath.Join(open, "run", "crhook"), stateID)
	if err := WriteConf(conf, []byte("x\n")); !errors.Is(err, ErrUnsafeStateDir) {
		t.Fatalf("WriteConf below a link in a world-writable directory = %v; want ErrUnsafeStateDir", err)
	}
}
