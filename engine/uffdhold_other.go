//go:build !linux

package engine

import (
	"errors"
	"fmt"
	"io"
	"os"
	"time"
)

var errNoUffd = errors.New("lazy restore needs Linux (userfaultfd, pidfd_getfd)")

// UffdHoldMain is Linux-only (uffdhold_linux.go).
func UffdHoldMain(_ []string, log io.Writer) int {
	fmt.Fprintf(log, "crhook: %v\n", errNoUffd)
	return 1
}

func startUffdHolder(string, time.Duration, time.Duration) (*os.Process, string, error) {
	return nil, "", errNoUffd
}
