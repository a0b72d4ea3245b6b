// Command mempattern fills N MiB of anonymous memory with a pattern that no
// page shares with another (each 8-byte word holds its own offset, mixed),
// then waits. On SIGUSR1 it checks every word and writes the verdict to
// /tmp/verify (atomically, "ok ROUND MIB" or "bad ROUND OFFSET"), so a test
// can tell from outside that a frozen, killed or restored process still
// holds exactly its memory: mempattern 512
package main

import (
	"encoding/binary"
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"syscall"
)

func word(off int) uint64 { return uint64(off)*0x9E3779B97F4A7C15 ^ 0xC0FFEE }

func main() {
	mib, err := strconv.Atoi(os.Args[len(os.Args)-1])
	if err != nil || len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: mempattern MIB")
		os.Exit(2)
	}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGUSR1)
	buf := make([]byte, mib<<20)
	for off := 0; off < len(buf); off += 8 {
		binary.LittleEndian.PutUint64(buf[off:], word(off))
	}
	fmt.Println("filled", mib, "MiB")
	for round := 1; ; round++ {
		<-sig
		verdict := fmt.Sprintf("ok %d %d\n", round, mib)
		for off := 0; off < len(buf); off += 8 {
			if binary.LittleEndian.Uint64(buf[off:]) != word(off) {
				verdict = fmt.Sprintf("bad %d %d\n", round, off)
				break
			}
		}
		if err := os.WriteFile("/tmp/verify.tmp", []byte(verdict), 0o644); err == nil {
			_ = os.Rename("/tmp/verify.tmp", "/tmp/verify")
		}
	}
}
