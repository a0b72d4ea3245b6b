// Command memhog touches N MiB of anonymous memory and then sleeps, so a
// checkpoint has that much to dump: memhog 512
package main

import (
	"fmt"
	"os"
	"strconv"
	"time"
)

func main() {
	mib, err := strconv.Atoi(os.Args[len(os.Args)-1])
	if err != nil || len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: memhog MIB")
		os.Exit(2)
	}
	buf := make([]byte, mib<<20)
	for i := 0; i < len(buf); i += 4096 {
		buf[i] = byte(i >> 12) // distinct pages: nothing dedups or stays zero
	}
	fmt.Println("touched", mib, "MiB")
	for {
		time.Sleep(time.Hour)
		buf[0]++
	}
}
