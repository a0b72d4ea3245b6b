package safefile

import (
	"fmt"
	"io/fs"
	"os"
	"syscall"

	"golang.org/x/sys/unix"
)

// Problem is the one trust rule for what steers crhook as root, like
// sshd's StrictModes: a file or directory must belong to root (or, when
// crhook does not run as root, to its own user) and must not be writable
// by group or others. It returns why path is not to be trusted and the
// command that fixes it, or two empty strings. mode holds the permission,
// setuid/setgid and sticky bits. allowSticky lets a root-owned sticky
// directory (the system's temporary directory) pass as a parent: others
// may add entries there but not replace ours, and every entry below is
// checked on its own.
func Problem(path string, uid, mode uint32, allowSticky bool) (why, fix string) {
	switch {
	case uid != 0 && uid != uint32(os.Geteuid()):
		return fmt.Sprintf("owned by uid %d, not root", uid), fmt.Sprintf("chown root:root %q", path)
	case mode&0o022 != 0 && !(allowSticky && uid == 0 && mode&unix.S_ISVTX != 0):
		return fmt.Sprintf("writable by group or others (mode %04o)", mode), fmt.Sprintf("chmod go-w %q", path)
	}
	return "", ""
}

// Untrusted is Problem as an *Error, nil for a trusted file.
func Untrusted(path string, uid, mode uint32, allowSticky bool) error {
	why, fix := Problem(path, uid, mode, allowSticky)
	if why == "" {
		return nil
	}
	return &Error{Path: path, Why: why, Hint: "run: " + fix}
}

// Owner applies the rule to a file crhook has opened, and only when it
// runs as root: an unprivileged crhook steers nothing but itself.
func Owner(path string, fi fs.FileInfo) error {
	if os.Geteuid() != 0 {
		return nil
	}
	uid, mode, ok := Stat(fi)
	if !ok {
		return nil
	}
	return Untrusted(path, uid, mode, false)
}

// Stat returns fi's owner and its mode bits as Problem takes them.
func Stat(fi fs.FileInfo) (uid, mode uint32, ok bool) {
	// os.File.Stat fills the frozen package's type, not unix.Stat_t.
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return 0, 0, false
	}
	return st.Uid, uint32(st.Mode) & 0o7777, true
}
