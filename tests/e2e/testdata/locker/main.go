// Command locker holds or probes a flock inside a test container: the test
// image's busybox has no flock applet.
//
//	locker hold FILE   take an exclusive lock and keep it until killed
//	locker try FILE    exit 0 if the lock is free, 1 if someone holds it
package main

import (
	"fmt"
	"os"
	"syscall"
	"time"
)

func main() {
	if len(os.Args) != 3 {
		fmt.Fprintln(os.Stderr, "usage: locker hold|try FILE")
		os.Exit(2)
	}
	f, err := os.OpenFile(os.Args[2], os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	switch os.Args[1] {
	case "hold":
		if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
		for {
			time.Sleep(time.Hour)
		}
	case "try":
		if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
			os.Exit(1)
		}
	default:
		os.Exit(2)
	}
}
