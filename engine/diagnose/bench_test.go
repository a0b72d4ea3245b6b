package diagnose

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

// bigLog writes a CRIU-like log of about size bytes whose only real error
// is near the end, after the harmless rlimit one at the top: the worst case,
// every line must be read.
func bigLog(tb testing.TB, size int) string {
	tb.Helper()
	path := filepath.Join(tb.TempDir(), "dump.log")
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		tb.Fatal(err)
	}
	w := bufio.NewWriter(f)
	fmt.Fprintln(w, "(00.000084) Version: 4.2.1 (gitid 0)")
	fmt.Fprintln(w, "(00.029439) Error (criu/util.c:1534): rlimit: Can't setup RLIMIT_NOFILE for self: Operation not permitted")
	n := 0
	for i := 0; n < size; i++ {
		k, _ := fmt.Fprintf(w, "(00.%06d) 	Dumping path for %d fd via self %d [/usr/lib/x86_64-linux-gnu/libc.so.6]\n", i%1000000, i, i+3)
		n += k
	}
	fmt.Fprintln(w, "(09.032833) Error (criu/sk-inet.c:200): inet: Connected TCP socket, consider using --tcp-established option.")
	fmt.Fprintln(w, "(09.033097) Error (criu/cr-dump.c:1975): Dumping FAILED.")
	if err := w.Flush(); err != nil {
		tb.Fatal(err)
	}
	if err := f.Close(); err != nil {
		tb.Fatal(err)
	}
	return path
}

// BenchmarkExplain100MB: go test -run '^$' -bench 100MB -benchmem
func BenchmarkExplain100MB(b *testing.B) {
	path := bigLog(b, 100<<20)
	b.SetBytes(100 << 20)
	b.ReportAllocs()
	for b.Loop() {
		d, err := Explain(path, Context{})
		if err != nil || d.Rule != "tcp-established" {
			b.Fatalf("%v %+v", err, d)
		}
	}
}
