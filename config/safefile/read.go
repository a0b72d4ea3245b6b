package safefile

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"slices"
	"sort"
	"strings"

	"golang.org/x/sys/unix"
)

// MaxSize bounds what ReadTrusted reads; config files are a few lines.
const MaxSize = 1 << 20

// ErrUnsafe is wrapped by every refusal of a file as untrusted.
var ErrUnsafe = errors.New("unsafe config file")

// Error is a file refused by one of the rules: what is wrong with it and
// what to do. It wraps ErrUnsafe; callers rephrase it in their own terms.
type Error struct {
	Path string
	Why  string // "owned by uid 1000, not root"
	Hint string // "run: chown root:root ..."; may be empty
}

func (e *Error) Error() string {
	msg := fmt.Sprintf("%q: %s", e.Path, e.Why)
	if e.Hint != "" {
		msg += " (" + e.Hint + ")"
	}
	return msg
}

func (e *Error) Unwrap() error { return ErrUnsafe }

// NotRegularError is OpenRegular's refusal of a FIFO, device, directory
// or socket.
type NotRegularError struct {
	Path string
	Mode fs.FileMode
}

func (e *NotRegularError) Error() string {
	return fmt.Sprintf("%q is %s, not a regular file", e.Path, Kind(e.Mode))
}

// Kind names a non-regular file type for messages.
func Kind(m fs.FileMode) string {
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

// OpenRegular opens path for reading, and only if it is a regular file.
// It opens with O_NONBLOCK, so a FIFO or a device planted under the name
// cannot hang the caller, and checks the type on the open descriptor
// before a byte is read: a *NotRegularError otherwise. Open errors are
// returned as they are (*fs.PathError; errors.Is(err, fs.ErrNotExist)
// for a missing file).
func OpenRegular(path string) (*os.File, fs.FileInfo, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, nil, err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, nil, err
	}
	if !fi.Mode().IsRegular() {
		f.Close()
		return nil, fi, &NotRegularError{Path: path, Mode: fi.Mode()}
	}
	return f, fi, nil
}

// ErrTooLarge is ReadBounded's refusal of more than max bytes.
var ErrTooLarge = errors.New("file too large")

// ReadBounded reads r to its end, but no more than max bytes.
func ReadBounded(r io.Reader, max int) ([]byte, error) {
	data, err := io.ReadAll(io.LimitReader(r, int64(max)+1))
	if err != nil {
		return nil, err
	}
	if len(data) > max {
		return nil, fmt.Errorf("%w: larger than %d bytes", ErrTooLarge, max)
	}
	return data, nil
}

// ReadTrusted reads a config file that steers crhook: a regular file
// (as OpenRegular), trusted (Owner) and at most MaxSize bytes. A missing
// file is (nil, false, nil). Refusals are an *Error.
//
// crhook-runtime reads its settings this way on every call podman makes,
// so it works on the bare descriptor (open, fstat, read, close): an
// *os.File would set up Go's network poller for a file that never blocks.
func ReadTrusted(path string) ([]byte, bool, error) {
	return readTrusted(path, func() (int, error) { return openNonblock(unix.AT_FDCWD, path, 0) })
}

// readTrusted is ReadTrusted on the descriptor open returns.
func readTrusted(path string, open func() (int, error)) ([]byte, bool, error) {
	fd, err := open()
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil, false, nil
	case err != nil:
		return nil, false, fmt.Errorf("open config %q: %w", path, &fs.PathError{Op: "open", Path: path, Err: err})
	}
	defer func() { _ = unix.Close(fd) }()
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return nil, false, fmt.Errorf("open config %q: %w", path, &fs.PathError{Op: "stat", Path: path, Err: err})
	}
	if uint32(st.Mode)&unix.S_IFMT != unix.S_IFREG {
		return nil, false, &Error{Path: path, Why: fmt.Sprintf("not a regular file (%s)", Kind(fileMode(uint32(st.Mode)))),
			Hint: "a config file must be a regular file; remove it or replace it with one"}
	}
	if os.Geteuid() == 0 {
		if err := Untrusted(path, st.Uid, uint32(st.Mode)&0o7777, false); err != nil {
			return nil, false, err
		}
	}
	// Up to MaxSize+1 bytes: the size fstat gave and one more read to
	// see the end (or that the file grew), more only while it grows.
	const limit = MaxSize + 1
	buf := make([]byte, 0, min(max(int(st.Size), 0), MaxSize)+1)
	for len(buf) < limit {
		if len(buf) == cap(buf) {
			buf = slices.Grow(buf, min(cap(buf), limit-len(buf)))
		}
		n, err := unix.Read(fd, buf[len(buf):min(cap(buf), limit)])
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return nil, false, fmt.Errorf("read config %q: %w", path, &fs.PathError{Op: "read", Path: path, Err: err})
		}
		if n == 0 {
			break
		}
		buf = buf[:len(buf)+n]
	}
	if len(buf) > MaxSize {
		return nil, false, &Error{Path: path, Why: fmt.Sprintf("larger than %d bytes", MaxSize)}
	}
	return buf, true, nil
}

// openNonblock opens path (relative to dirfd) read-only with O_NONBLOCK,
// so that a FIFO or a device planted under the name cannot hang the
// caller; flags are added.
func openNonblock(dirfd int, path string, flags int) (int, error) {
	for {
		fd, err := unix.Openat(dirfd, path, unix.O_RDONLY|unix.O_NONBLOCK|unix.O_CLOEXEC|flags, 0)
		if !errors.Is(err, unix.EINTR) {
			return fd, err
		}
	}
}

// fileMode is the type bits of a stat mode as an fs.FileMode, for Kind.
func fileMode(mode uint32) fs.FileMode {
	switch mode & unix.S_IFMT {
	case unix.S_IFDIR:
		return fs.ModeDir
	case unix.S_IFIFO:
		return fs.ModeNamedPipe
	case unix.S_IFCHR:
		return fs.ModeDevice | fs.ModeCharDevice
	case unix.S_IFBLK:
		return fs.ModeDevice
	case unix.S_IFSOCK:
		return fs.ModeSocket
	case unix.S_IFLNK:
		return fs.ModeSymlink
	}
	return 0
}

// DropIns lists a drop-in directory the way containers/common does: one
// level deep, the names ending in suffix (".toml", ".conf") that are not
// directories, in lexical order. A missing directory is empty; one that
// cannot be read is an error (wrapped by the caller, who names it).
// Like ReadTrusted it reads the bare descriptor: it runs on every
// runtime call.
func DropIns(dir, suffix string) ([]string, error) {
	fd, err := openNonblock(unix.AT_FDCWD, dir, unix.O_DIRECTORY)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: dir, Err: err}
	}
	defer func() { _ = unix.Close(fd) }()
	var names []string
	buf := make([]byte, 8192)
	for {
		n, err := unix.ReadDirent(fd, buf)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return nil, &fs.PathError{Op: "readdirent", Path: dir, Err: err}
		}
		if n <= 0 {
			break
		}
		var all []string
		_, _, all = unix.ParseDirent(buf[:n], -1, all)
		for _, name := range all {
			if !strings.HasSuffix(name, suffix) {
				continue
			}
			// The entry itself, not what a link names: a link to a
			// directory is listed, and refused when read.
			var st unix.Stat_t
			if err := unix.Fstatat(fd, name, &st, unix.AT_SYMLINK_NOFOLLOW); err == nil && uint32(st.Mode)&unix.S_IFMT == unix.S_IFDIR {
				continue
			}
			names = append(names, name)
		}
	}
	sort.Strings(names)
	return names, nil
}
