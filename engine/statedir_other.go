//go:build !linux

package engine

import (
	"errors"
	"fmt"
)

// The state directory is walked with Linux's openat semantics
// (statedir_linux.go); elsewhere crhook refuses rather than write unsafely.

// ErrUnsafeStateDir is wrapped by every refusal of the state directory.
var ErrUnsafeStateDir = errors.New("unsafe crhook state directory")

type dirFD struct{}

func (d dirFD) close() {}

func openStateDir(stateDir string, _ bool, _ ...string) (dirFD, error) {
	return dirFD{}, fmt.Errorf("%w: %q: only supported on Linux", ErrUnsafeStateDir, stateDir)
}

func writeFileAt(dirFD, string, []byte, uint32) error { return errors.ErrUnsupported }

func removeAt(dirFD, string) error { return errors.ErrUnsupported }
