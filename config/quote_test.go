package config

import (
	"strings"
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

// TestMessagesQuoteControlBytes: a file name with an escape sequence is
// never echoed raw, whichever message names it.
func TestMessagesQuoteControlBytes(t *testing.T) {
	const evil = "crhook.d/50-\x1b]0;pwned\x07.toml"
	p := tree(t, map[string]string{"etc/crhook/" + evil: "bogus = 1\n"})
	_, err := LoadSettings(p)
	if err == nil || strings.ContainsAny(err.Error(), "\x1b\x07") || !strings.Contains(err.Error(), `\x1b]0;pwned\a`) {
		t.Errorf("LoadSettings error shows raw control bytes or hides the name: %q", err)
	}
	_, _, err = LoadRuntimePath(p)
	if err != nil {
		t.Fatalf("LoadRuntimePath: %v", err)
	}
	dir := t.TempDir() + "/\x1b[31mred"
	_, err = Set(dir+"/default.conf", "tcp-established", "yes")
	if err == nil || strings.Contains(err.Error(), "\x1b") {
		t.Errorf("Set error shows raw control bytes: %q", err)
	}
}
