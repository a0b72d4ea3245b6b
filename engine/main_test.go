package engine

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/crhook/crhook/config"
)

// TestMain makes the test binary multi-call like the real runtime: run as
// crhook-runtime (exec_test.go links it so), it is the shim on the real
// process, reading its files below $CRHOOK_TEST_ROOT. Pass-through ends
// in execve and signals go to the whole process, so those can only be
// shown in a process of its own; every other test runs the shim in
// process on a test Host (fake_test.go), over the same fake runtime.
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == UffdHoldArg { // the shim's holder, started from os.Executable()
		os.Exit(UffdHoldMain(os.Args[2:], os.Stderr))
	}
	if len(os.Args) > 1 && os.Args[1] == UffdHoldRequestArg {
		os.Exit(UffdHoldRequest(os.Args[2:], os.Stderr))
	}
	if len(os.Args) > 1 && os.Args[1] == "__test-uffd-victim" {
		os.Exit(testUffdVictim())
	}
	if len(os.Args) > 1 && os.Args[1] == "__test-uffd-daemon" {
		os.Exit(testUffdDaemon(os.Args[2:]))
	}
	if filepath.Base(os.Args[0]) == "crhook-runtime" {
		os.Exit(Runtime(os.Args[1:], config.DefaultPaths().Under(os.Getenv("CRHOOK_TEST_ROOT")), os.Stderr))
	}
	os.Exit(m.Run())
}
