package config

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"syscall"
)

// maxFileSize bounds what the loader reads; option files are a few lines.
const maxFileSize = 1 << 20

// readTrusted reads a config file. A missing file is (nil, false, nil).
// When crhook runs as root it refuses files that another user could have
// written, like sshd's StrictModes: these files steer a root process.
func readTrusted(path string) ([]byte, bool, error) {
	return readRegular(path, true)
}

// readRegular reads a config file that must be a regular file. It opens
// with O_NONBLOCK, so a FIFO or a device planted under a config name
// cannot hang the caller (every runtime call reads the settings), checks
// the type on the open descriptor before reading a byte, and reads at
// most maxFileSize. checkTrust adds the ownership rule.
func readRegular(path string, checkTrust bool) ([]byte, bool, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK|syscall.O_CLOEXEC, 0)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("open config %q: %w", path, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, false, fmt.Errorf("stat config %q: %w", path, err)
	}
	if !fi.Mode().IsRegular() {
		return nil, false, &FileError{File: path, Err: fmt.Errorf("%w: not a regular file (%s)", ErrUnsafeFile, fileKind(fi.Mode())),
			Hint: "a config file must be a regular file; remove it or replace it with one"}
	}
	if checkTrust {
		if err := checkOwner(path, fi); err != nil {
			return nil, false, err
		}
	}
	data, err := io.ReadAll(io.LimitReader(f, maxFileSize+1))
	if err != nil {
		return nil, false, fmt.Errorf("read config %q: %w", path, err)
	}
	if len(data) > maxFileSize {
		return nil, false, &FileError{File: path, Err: fmt.Errorf("%w: larger than %d bytes", ErrUnsafeFile, maxFileSize)}
	}
	return data, true, nil
}

// fileKind names a non-regular file type for messages.
func fileKind(m fs.FileMode) string {
	switch {
	case m.IsDir():
		return "a directory"
	case m&fs.ModeNamedPipe != 0:
		return "a FIFO"
	case m&fs.ModeCharDevice != 0:
		return "a character device"
	case m&fs.ModeDevice != 0:
		return "a block device"
	case m&fs.ModeSocket != 0:
		return "a socket"
	}
	return "not a plain file"
}

func checkOwner(path string, fi fs.FileInfo) error {
	if os.Geteuid() != 0 {
		return nil
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return nil
	}
	return Untrusted(path, st.Uid, uint32(st.Mode)&0o7777, false)
}

// Untrusted is the one trust rule for what steers crhook as root, like
// sshd's StrictModes: a file or directory must belong to root (or, when
// crhook does not run as root, to its own user) and must not be writable
// by group or others. It returns nil for a trusted one, else a *FileError
// wrapping ErrUnsafeFile that says how to fix it. mode holds the
// permission, setuid/setgid and sticky bits. allowSticky lets a
// root-owned sticky directory (the system's temporary directory) pass as
// a parent: others may add entries there but not replace ours, and every
// entry below is checked on its own.
func Untrusted(path string, uid, mode uint32, allowSticky bool) error {
	why, fix := TrustProblem(path, uid, mode, allowSticky)
	if why == "" {
		return nil
	}
	return &FileError{File: path, Err: fmt.Errorf("%w: %s", ErrUnsafeFile, why), Hint: "run: " + fix}
}

// TrustProblem is Untrusted's rule as words: why path is not to be
// trusted and the command that fixes it, or two empty strings.
func TrustProblem(path string, uid, mode uint32, allowSticky bool) (why, fix string) {
	switch {
	case uid != 0 && uid != uint32(os.Geteuid()):
		return fmt.Sprintf("owned by uid %d, not root", uid), fmt.Sprintf("chown root:root %q", path)
	case mode&0o022 != 0 && !(allowSticky && uid == 0 && mode&syscall.S_ISVTX != 0):
		return fmt.Sprintf("writable by group or others (mode %04o)", mode), fmt.Sprintf("chmod go-w %q", path)
	}
	return "", ""
}
