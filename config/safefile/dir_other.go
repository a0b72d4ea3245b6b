//go:build !linux

package safefile

import (
	"errors"
	"fmt"
)

// The directory rules rely on Linux's openat, renameat and O_NOFOLLOW
// semantics; elsewhere they refuse rather than act unsafely.

// Dir is an open directory (Linux only).
type Dir struct {
	FD   int
	Path string
}

// Replace says how Dir.Replace makes the new file.
type Replace struct {
	Perm     uint32
	UID, GID int
	Create   func(create func() error) error
	Created  func()
}

// OwnerError is Replace failing to give the new file the old one's owner.
type OwnerError struct {
	Path     string
	UID, GID int
	Err      error
}

func (e *OwnerError) Error() string { return fmt.Sprintf("keep owner of %q: %v", e.Path, e.Err) }
func (e *OwnerError) Unwrap() error { return e.Err }

func OpenDir(path string) (Dir, error) {
	return Dir{}, fmt.Errorf("open directory %q: %w", path, errors.ErrUnsupported)
}
func (d Dir) Close() error                                  { return nil }
func (d Dir) Replace(string, []byte, Replace) error         { return errors.ErrUnsupported }
func (d Dir) RemoveAll(string) error                        { return errors.ErrUnsupported }
func (d Dir) RemoveTemps()                                  {}
func (d Dir) ReadTrusted(string) ([]byte, bool, error)      { return nil, false, errors.ErrUnsupported }
func WriteFile(path string, data []byte, perm uint32) error { return errors.ErrUnsupported }
func IsTemp(name string) bool                               { return false }
