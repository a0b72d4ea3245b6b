package config

import (
	"errors"
	"os"
	"testing"
)

// FuzzSettings: any bytes decode to settings or to an ErrSettings error
// that names the file; never a panic or another kind of error.
func FuzzSettings(f *testing.F) {
	if data, err := os.ReadFile("../contrib/crhook.toml"); err == nil {
		f.Add(data)
	}
	for _, s := range []string{
		"", "state_dir = \"/run/x\"\n", "[runtime]\npath = \"crun\"\n", "[annotations]\nallow = [\"tcp-established\"]\n",
		"[criu]\ndeny = [\"x\"]\n", "bogus = 1\n", "[runtime\n", "a.b.c = 1\n", "[[runtime]]\n", "state_dir = '''\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		s := Fallback()
		_, err := decodeSettings("fuzz.toml", data, s)
		if err != nil && !errors.Is(err, ErrSettings) {
			t.Fatalf("error not wrapping ErrSettings: %v", err)
		}
	})
}
