//go:build e2e

package migrate

import (
	"os"
	"strconv"
	"syscall"
	"testing"
)

// TestMain marks every descriptor this binary inherited close-on-exec.
// The tests run under `flock /tmp/crhook-host.lock ...`, which hands its
// locked descriptor down to us; a process we start for CRIU to dump would
// inherit it too, and CRIU refuses to dump a task holding a file lock.
func TestMain(m *testing.M) {
	if fds, err := os.ReadDir("/proc/self/fd"); err == nil {
		for _, fd := range fds {
			if n, err := strconv.Atoi(fd.Name()); err == nil && n > 2 {
				syscall.CloseOnExec(n)
			}
		}
	}
	os.Exit(m.Run())
}
