// Command unixpeer connects to a unix socket and holds the connection, so
// the container has a socket whose peer lives outside it: unixpeer PATH
package main

import (
	"fmt"
	"net"
	"os"
	"time"
)

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: unixpeer PATH")
		os.Exit(2)
	}
	c, err := net.Dial("unix", os.Args[1])
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Println("connected")
	for {
		time.Sleep(time.Hour)
		_, _ = c.Write([]byte{0})
	}
}
