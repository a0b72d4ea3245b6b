package diagnose

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unicode"
)

// FuzzExplainReader: any input gives a printable diagnosis and no panic.
func FuzzExplainReader(f *testing.F) {
	logs, err := filepath.Glob("testdata/logs/*")
	if err != nil {
		f.Fatal(err)
	}
	for _, p := range logs {
		data, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data, "")
	}
	f.Add([]byte("Error (\n"), "CRIU is missing features")
	f.Add([]byte("{x}{container}\x00\xff Error ( Can't fork for 1: File exists"), "Connected TCP socket in image")
	f.Fuzz(func(t *testing.T, data []byte, runtime string) {
		d, err := ExplainReader("dump.log", bytes.NewReader(data), Context{RuntimeOutput: runtime})
		if err != nil {
			t.Fatal(err)
		}
		if d == nil || d.Rule == "" || d.Meaning == "" {
			t.Fatalf("empty diagnosis %+v", d)
		}
		if len(d.Quote) != len(d.QuoteLines) {
			t.Fatalf("%d quotes, %d line numbers", len(d.Quote), len(d.QuoteLines))
		}
		for _, q := range d.Quote {
			if len(q) > 4*maxLine {
				t.Fatalf("quote of %d bytes", len(q))
			}
			if strings.IndexFunc(q, unicode.IsControl) >= 0 {
				t.Fatalf("control character in quote %q", q)
			}
		}
		if d.Text() == "" {
			t.Fatal("empty text")
		}
	})
}
