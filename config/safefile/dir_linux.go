package safefile

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// Dir is an open directory. Everything done through it (openat, renameat,
// unlinkat) happens in that directory even if a component of Path is
// swapped meanwhile; Path is for messages.
type Dir struct {
	FD   int
	Path string
}

// OpenDir opens the directory at path, following links as named.
func OpenDir(path string) (Dir, error) {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return Dir{}, &fs.PathError{Op: "open directory", Path: path, Err: err}
	}
	return Dir{FD: fd, Path: path}, nil
}

// Close closes the directory (and so drops a flock held on it).
func (d Dir) Close() error { return unix.Close(d.FD) }

// OpenNoFollow opens the directory name in d without following a link: a
// link is unix.ELOOP, something else than a directory unix.ENOTDIR, a
// missing one fs.ErrNotExist, each returned bare for the caller to act on.
// It also returns the directory's owner and mode (Problem's inputs).
func (d Dir) OpenNoFollow(name string) (Dir, unix.Stat_t, error) {
	path := filepath.Join(d.Path, name)
	fd, err := unix.Openat(d.FD, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		if errors.Is(err, unix.ELOOP) || errors.Is(err, unix.ENOTDIR) || errors.Is(err, fs.ErrNotExist) {
			return Dir{}, unix.Stat_t{}, err
		}
		return Dir{}, unix.Stat_t{}, fmt.Errorf("open directory %q: %w", path, err)
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		_ = unix.Close(fd)
		return Dir{}, unix.Stat_t{}, fmt.Errorf("stat directory %q: %w", path, err)
	}
	return Dir{FD: fd, Path: path}, st, nil
}

// ReadTrusted is ReadTrusted on name in d, not following a link there
// (a link is an error wrapping unix.ELOOP).
func (d Dir) ReadTrusted(name string) ([]byte, bool, error) {
	return readTrusted(filepath.Join(d.Path, name), func() (int, error) { return openNonblock(d.FD, name, unix.O_NOFOLLOW) })
}

// ReadLink reads the link name in d.
func (d Dir) ReadLink(name string) (string, error) {
	buf := make([]byte, 4096)
	n, err := unix.Readlinkat(d.FD, name, buf)
	if err != nil {
		return "", err
	}
	return string(buf[:n]), nil
}

// Names lists the directory's entries (unsorted), through a duplicate of
// its descriptor so d stays usable.
func (d Dir) Names() ([]string, error) {
	fd, err := unix.Dup(d.FD)
	if err != nil {
		return nil, fmt.Errorf("list %q: %w", d.Path, err)
	}
	f := os.NewFile(uintptr(fd), d.Path)
	defer f.Close()
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return nil, fmt.Errorf("list %q: %w", d.Path, err)
	}
	names, err := f.Readdirnames(-1)
	if err != nil {
		return nil, fmt.Errorf("list %q: %w", d.Path, err)
	}
	return names, nil
}

// RemoveAll removes name from d and, if it is a directory, everything in
// it, without following any link: a link is removed, never its target.
// A missing name is not an error.
func (d Dir) RemoveAll(name string) error {
	path := filepath.Join(d.Path, name)
	err := unix.Unlinkat(d.FD, name, 0)
	if err == nil || errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if !errors.Is(err, unix.EISDIR) && !errors.Is(err, unix.EPERM) {
		return fmt.Errorf("remove %q: %w", path, err)
	}
	fd, err := unix.Openat(d.FD, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("open %q: %w", path, err)
	}
	sub := Dir{FD: fd, Path: path}
	names, err := sub.Names()
	if err != nil {
		_ = sub.Close()
		return err
	}
	var errs []error
	for _, n := range names {
		errs = append(errs, sub.RemoveAll(n))
	}
	_ = sub.Close()
	if err := unix.Unlinkat(d.FD, name, unix.AT_REMOVEDIR); err != nil && !errors.Is(err, fs.ErrNotExist) {
		errs = append(errs, fmt.Errorf("remove %q: %w", path, err))
	}
	return errors.Join(errs...)
}
