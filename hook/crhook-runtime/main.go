// Command crhook-runtime is the OCI runtime podman (or CRI-O, or
// containerd's runc shim) calls for every container operation. It is kept
// apart from the admin CLI so that its import graph stays small: see
// deps_test.go.
package main

import (
	"os"

	"github.com/crhook/crhook/config"
	"github.com/crhook/crhook/engine"
)

func main() {
	// The lazy restore's userfaultfd holder and its action script's
	// request (engine/uffdhold.go): crhook-runtime run by itself and by
	// CRIU, never by podman.
	if len(os.Args) > 1 {
		switch os.Args[1] {
		case engine.UffdHoldArg:
			os.Exit(engine.UffdHoldMain(os.Args[2:], os.Stderr))
		case engine.UffdHoldRequestArg:
			os.Exit(engine.UffdHoldRequest(os.Args[2:], os.Stderr))
		}
	}
	os.Exit(engine.Runtime(os.Args[1:], config.SystemPaths(), os.Stderr))
}
