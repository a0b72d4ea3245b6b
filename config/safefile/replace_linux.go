package safefile

import (
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// Replace says how Dir.Replace makes the new file.
type Replace struct {
	// Perm is the new file's mode, setuid/setgid and sticky bits included.
	Perm uint32
	// UID and GID own the new file; -1 leaves the creating process's.
	UID, GID int
	// Create, when set, wraps the creation of the temporary file (the
	// engine sets an SELinux create label around it).
	Create func(create func() error) error
	// Created, when set (by tests only), runs right after the temporary
	// file exists: the point where a killed writer leaves one behind.
	Created func()
}

// Replace atomically replaces name in d with data. It is the one atomic
// writer: a new temporary file in the same directory (O_EXCL|O_NOFOLLOW,
// so nothing planted under its name is followed or reused) is written,
// given its owner and mode, fsynced and renamed over name, then the
// directory is fsynced so the rename survives a crash. The file at name
// is never opened for writing: readers (CRIU, runc, a concurrent
// checkpoint) see either the old or the new file, whole. On failure the
// temporary file is removed.
func (d Dir) Replace(name string, data []byte, r Replace) (err error) {
	tmp, f, err := d.createTemp(name, r.Create)
	if err != nil {
		return err
	}
	if r.Created != nil {
		r.Created()
	}
	tmpPath := filepath.Join(d.Path, tmp)
	defer func() {
		if err != nil {
			f.Close() // may already be closed; the write error is the one to report
			if uerr := unix.Unlinkat(d.FD, tmp, 0); uerr != nil && !errors.Is(uerr, fs.ErrNotExist) {
				err = errors.Join(err, fmt.Errorf("remove temporary file %q: %w", tmpPath, uerr))
			}
		}
	}()
	if _, err := f.Write(data); err != nil {
		return fmt.Errorf("write temporary file %q: %w", tmpPath, err)
	}
	fd := int(f.Fd())
	if r.UID >= 0 {
		// chown before chmod: chown clears setuid/setgid bits.
		var st unix.Stat_t
		if err := unix.Fstat(fd, &st); err != nil {
			return fmt.Errorf("stat temporary file %q: %w", tmpPath, err)
		}
		if int(st.Uid) != r.UID || int(st.Gid) != r.GID {
			if err := unix.Fchown(fd, r.UID, r.GID); err != nil {
				return &OwnerError{Path: filepath.Join(d.Path, name), UID: r.UID, GID: r.GID, Err: err}
			}
		}
	}
	if err := unix.Fchmod(fd, r.Perm); err != nil {
		return fmt.Errorf("keep mode %04o of %q: %w", r.Perm, filepath.Join(d.Path, name), err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("sync temporary file %q: %w", tmpPath, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("close temporary file %q: %w", tmpPath, err)
	}
	if err := unix.Renameat(d.FD, tmp, d.FD, name); err != nil {
		return fmt.Errorf("replace %q: %w", filepath.Join(d.Path, name), err)
	}
	if err := unix.Fsync(d.FD); err != nil {
		// The new file is in place; only its durability across a crash
		// is in doubt, which the caller should still hear about.
		return fmt.Errorf("sync directory %q: %w", d.Path, err)
	}
	return nil
}

// OwnerError is Replace failing to give the new file the old one's owner.
type OwnerError struct {
	Path     string
	UID, GID int
	Err      error
}

func (e *OwnerError) Error() string {
	return fmt.Sprintf("keep owner %d:%d of %q: %v", e.UID, e.GID, e.Path, e.Err)
}

func (e *OwnerError) Unwrap() error { return e.Err }

// WriteFile replaces path with data (Replace) in path's directory, which
// is opened as it is named.
func WriteFile(path string, data []byte, perm uint32) error {
	d, err := OpenDir(filepath.Dir(path))
	if err != nil {
		return err
	}
	defer func() { _ = d.Close() }()
	return d.Replace(filepath.Base(path), data, Replace{Perm: perm, UID: -1, GID: -1})
}

// tempInfix marks the temporary files: ".NAME.crhook-RANDOM".
const tempInfix = ".crhook-"

// IsTemp reports whether name is one of Replace's temporary files.
func IsTemp(name string) bool {
	i := strings.LastIndex(name, tempInfix)
	if !strings.HasPrefix(name, ".") || i <= 1 {
		return false
	}
	suffix := name[i+len(tempInfix):]
	return suffix != "" && strings.Trim(suffix, "0123456789abcdefghijklmnopqrstuvwxyz") == ""
}

// createTemp makes a new file ".NAME.crhook-RANDOM" in the directory. The
// leading dot and the suffix keep CRIU and drop-in loaders from ever
// reading a half-written file as configuration.
func (d Dir) createTemp(name string, wrap func(func() error) error) (string, *os.File, error) {
	if wrap == nil {
		wrap = func(f func() error) error { return f() }
	}
	for range 100 {
		tmp := "." + name + tempInfix + strconv.FormatUint(rand.Uint64(), 36)
		var fd int
		err := wrap(func() (err error) {
			fd, err = unix.Openat(d.FD, tmp, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
			return err
		})
		if errors.Is(err, fs.ErrExist) {
			continue
		}
		if err != nil {
			return "", nil, fmt.Errorf("create temporary file in %q: %w", d.Path, err)
		}
		return tmp, os.NewFile(uintptr(fd), filepath.Join(d.Path, tmp)), nil
	}
	return "", nil, fmt.Errorf("create temporary file in %q: 100 names taken", d.Path)
}

// RemoveTemps deletes the temporary files that writers killed mid-write
// left behind. Only the caller knows when no writer is at work (the
// editor holds the directory's lock). Only regular files are removed;
// errors are ignored: a leftover costs nothing but disk.
func (d Dir) RemoveTemps() {
	names, err := d.Names()
	if err != nil {
		return
	}
	for _, n := range names {
		if !IsTemp(n) {
			continue
		}
		var st unix.Stat_t
		if unix.Fstatat(d.FD, n, &st, unix.AT_SYMLINK_NOFOLLOW) == nil && st.Mode&unix.S_IFMT == unix.S_IFREG {
			_ = unix.Unlinkat(d.FD, n, 0)
		}
	}
}
