package criuopt

import (
	"testing"
)

func TestPrintable(t *testing.T) {
	for in, want := range map[string]string{
		"/etc/criu/default.conf": "/etc/criu/default.conf",
		"/tmp/a b.conf":          "/tmp/a b.conf",
		"/tmp/\x1b[2Jx.conf":     `"/tmp/\x1b[2Jx.conf"`,
		"evil\u202etxt.conf":     `"evil\u202etxt.conf"`,
		"bad\xffutf8":            `"bad\xffutf8"`,
		"line\nbreak":            `"line\nbreak"`,
	} {
		if got := Printable(in); got != want {
			t.Errorf("Printable(%q) = %s, want %s", in, got, want)
		}
	}
}
