package engine

import (
	"io"
	"os"
	"os/signal"
	"syscall"
)

// Host is what the shim uses of the process it runs in: its stdio, its
// environment, execve and its signals. Runtime uses the real process
// (OSHost); tests hand in their own, so every step runs without root and
// without replacing the test binary.
type Host struct {
	// Stdin, Stdout and Stderr are the runtime child's stdio. Stderr is
	// also where crhook writes its own messages. *os.File values are
	// handed to the child as they are, pipes and all.
	Stdin          io.Reader
	Stdout, Stderr io.Writer
	// Environ is the environment the runtime gets (os.Environ).
	Environ func() []string
	// Exec replaces this process with path (syscall.Exec). It returns only
	// when that failed.
	Exec func(path string, argv, env []string) error
	// Notify relays every signal this process gets to c, until Stop(c)
	// (signal.Notify and signal.Stop).
	Notify func(c chan<- os.Signal)
	Stop   func(c chan<- os.Signal)
}

// OSHost is this process, with stderr for crhook's messages.
func OSHost(stderr io.Writer) *Host {
	return &Host{
		Stdin: os.Stdin, Stdout: os.Stdout, Stderr: stderr,
		Environ: os.Environ,
		Exec:    syscall.Exec,
		Notify:  func(c chan<- os.Signal) { signal.Notify(c) },
		Stop:    signal.Stop,
	}
}
