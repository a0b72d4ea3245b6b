package safefile

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
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
// (OpenRegular), trusted (Owner) and at most MaxSize bytes. A missing file
// is (nil, false, nil). Refusals are an *Error.
func ReadTrusted(path string) ([]byte, bool, error) {
	f, fi, err := OpenRegular(path)
	var nr *NotRegularError
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil, false, nil
	case errors.As(err, &nr):
		return nil, false, &Error{Path: path, Why: fmt.Sprintf("not a regular file (%s)", Kind(nr.Mode)),
			Hint: "a config file must be a regular file; remove it or replace it with one"}
	case err != nil:
		return nil, false, fmt.Errorf("open config %q: %w", path, err)
	}
	defer f.Close()
	if err := Owner(path, fi); err != nil {
		return nil, false, err
	}
	data, err := ReadBounded(f, MaxSize)
	if errors.Is(err, ErrTooLarge) {
		return nil, false, &Error{Path: path, Why: fmt.Sprintf("larger than %d bytes", MaxSize)}
	}
	if err != nil {
		return nil, false, fmt.Errorf("read config %q: %w", path, err)
	}
	return data, true, nil
}

// ReadDir is os.ReadDir, but a FIFO or device in the directory's place is
// refused instead of hanging the open (O_DIRECTORY|O_NONBLOCK). Entries
// come sorted by name.
func ReadDir(dir string) ([]fs.DirEntry, error) {
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: dir, Err: err}
	}
	f := os.NewFile(uintptr(fd), dir)
	defer f.Close()
	entries, err := f.ReadDir(-1)
	sort.Slice(entries, func(i, j int) bool { return entries[i].Name() < entries[j].Name() })
	return entries, err
}

// DropIns lists a drop-in directory the way containers/common does: one
// level deep, the names ending in suffix (".toml", ".conf") that are not
// directories, in lexical order. A missing directory is empty; one that
// cannot be read is an error (wrapped by the caller, who names it).
func DropIns(dir, suffix string) ([]string, error) {
	entries, err := ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var names []string
	for _, e := range entries {
		if !e.IsDir() && strings.HasSuffix(e.Name(), suffix) {
			names = append(names, e.Name())
		}
	}
	return names, nil
}
