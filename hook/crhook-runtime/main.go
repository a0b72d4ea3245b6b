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
	os.Exit(engine.Runtime(os.Args[1:], config.SystemPaths(), os.Stderr))
}
