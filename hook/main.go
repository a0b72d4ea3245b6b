// Command crhook makes CRIU checkpoint/restore of Podman containers follow
// CRIU's layered config files. Invoked as crhook-runtime it is the OCI
// runtime podman calls; invoked as crhook it is the admin CLI.
package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/crhook/crhook/config"
	"github.com/crhook/crhook/engine"
)

// version is set by the Makefile with -ldflags "-X main.version=...".
var version = "dev"

func main() {
	// The runtime path comes first and touches nothing of the CLI: podman
	// calls it for every container operation.
	if filepath.Base(os.Args[0]) == "crhook-runtime" {
		os.Exit(engine.Runtime(os.Args[1:], config.DefaultPaths(), os.Stderr))
	}
	os.Exit(run(os.Args[1:]))
}

func run(args []string) int {
	cmd := newRootCmd()
	cmd.SetArgs(args)
	if err := cmd.Execute(); err != nil {
		var code exitCode
		if errors.As(err, &code) {
			return int(code)
		}
		fmt.Fprintf(os.Stderr, "crhook: %v\n", err)
		return 1
	}
	return 0
}

// exitCode ends a command with a status after it printed its own report.
type exitCode int

func (e exitCode) Error() string { return fmt.Sprintf("exit status %d", int(e)) }
