//go:build !linux

package edit

import (
	"errors"
	"fmt"
)

// The editor relies on Linux's openat/renameat/flock semantics for its
// atomic, locked replace; elsewhere it refuses rather than edit unsafely.

var errNoDir = errors.New("directory does not exist")

type lockedDir struct{}

func lockDir(dir string, create bool) (*lockedDir, error) {
	return nil, fmt.Errorf("edit files in %q: only supported on Linux", dir)
}

func (d *lockedDir) close() error { return nil }

func (d *lockedDir) read(name, path string) ([]byte, *fileMeta, error) {
	return nil, nil, errors.ErrUnsupported
}

func (d *lockedDir) replace(name, path string, data []byte, meta *fileMeta) error {
	return errors.ErrUnsupported
}

func (d *lockedDir) removeStaleTemps() {}
