// Command execfloor execs its arguments and does nothing else: the floor of
// any runtime wrapper written in Go, which the benchmark measures beside
// crhook-runtime so the table shows what is crhook's and what is Go's.
package main

import (
	"fmt"
	"os"
	"os/exec"
	"syscall"
)

func main() {
	path, err := exec.LookPath(os.Args[1])
	if err == nil {
		err = syscall.Exec(path, os.Args[1:], os.Environ())
	}
	fmt.Fprintln(os.Stderr, err)
	os.Exit(127)
}
