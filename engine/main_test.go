package engine

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/crhook/crhook/config"
)

// TestMain makes the test binary multi-call like crhook itself: run as
// crhook-runtime, it is the runtime path, reading its files below
// $CRHOOK_TEST_ROOT. Pass-through ends in execve, so it can only be
// tested in a process of its own.
func TestMain(m *testing.M) {
	if filepath.Base(os.Args[0]) == "crhook-runtime" {
		os.Exit(Runtime(os.Args[1:], config.DefaultPaths().Under(os.Getenv("CRHOOK_TEST_ROOT")), os.Stderr))
	}
	os.Exit(m.Run())
}
