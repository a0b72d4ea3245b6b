// Command crhook is the admin CLI: crhook config, crhook explain and
// crhook doctor. The OCI runtime podman calls is a separate binary,
// crhook-runtime (hook/crhook-runtime), which links none of this.
package main

import (
	"errors"
	"fmt"
	"os"
)

// version is set by the Makefile with -ldflags "-X main.version=...".
var version = "dev"

func main() {
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
