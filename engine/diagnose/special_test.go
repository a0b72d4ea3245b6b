package diagnose

import (
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestExplainRefusesSpecialFiles: `crhook explain /dev/zero` used to read
// forever at 100% CPU and a FIFO blocked in open; both are refused at
// once with a printable diagnosis that says what the path is.
func TestExplainRefusesSpecialFiles(t *testing.T) {
	fifo := t.TempDir() + "/dump.log"
	if err := unix.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	for path, kind := range map[string]string{"/dev/zero": "a character device", fifo: "a FIFO", t.TempDir(): "a directory"} {
		if _, err := os.Stat(path); err != nil {
			t.Skipf("%s: %v", path, err)
		}
		type result struct {
			d   *Diagnosis
			err error
		}
		done := make(chan result, 1)
		go func() { d, err := Explain(path, Context{Operation: OpDump}); done <- result{d, err} }()
		var r result
		select {
		case r = <-done:
		case <-time.After(5 * time.Second):
			t.Fatalf("Explain(%s) still running after 5s", path)
		}
		if !errors.Is(r.err, ErrUnreadableLog) || !strings.Contains(r.err.Error(), kind) {
			t.Errorf("Explain(%s) err = %v; want ErrUnreadableLog saying it is %s", path, r.err, kind)
		}
		if r.d == nil || !strings.Contains(r.d.Text(), kind) {
			t.Errorf("Explain(%s) diagnosis does not say it is %s: %+v", path, kind, r.d)
		}
	}
}
