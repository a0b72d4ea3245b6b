package config

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/crhook/crhook/config/criuopt"
)

func TestSettingsLoadOrder(t *testing.T) {
	p := tree(t, map[string]string{
		"usr/share/crhook/crhook.toml":    "state_dir = \"/run/a\"\n[runtime]\npath = \"runc\"\n",
		"etc/crhook/crhook.toml":          "[runtime]\npath = \"crun\"\n",
		"etc/crhook/crhook.d/20-b.toml":   "state_dir = \"/run/b\"\n",
		"etc/crhook/crhook.d/10-a.toml":   "state_dir = \"/run/ignored-by-20\"\n[annotations]\nallow = [\"shell-job\"]\n",
		"etc/crhook/crhook.d/notes.txt":   "not toml, not read\n",
		"etc/crhook/crhook.d/sub/x.toml":  "bogus = 1\n",
		"etc/crhook/override/crhook.toml": "[criu]\ndeny = [\"auto-dedup\"]\n",
	})
	p.SettingsEnv = filepath.Join(filepath.Dir(p.SettingsSystem), "override", "crhook.toml")
	s, err := LoadSettings(p)
	if err != nil {
		t.Fatal(err)
	}
	if s.StateDir != "/run/b" || s.Runtime.Path != "crun" || !s.AllowsAnnotation("shell-job") ||
		s.AllowsAnnotation("tcp-established") || !s.Denies("auto-dedup") {
		t.Errorf("merged settings wrong: %+v", s)
	}
	etc := filepath.Dir(p.SettingsSystem)
	want := []string{p.SettingsDefault, p.SettingsSystem, filepath.Join(etc, "crhook.d/10-a.toml"),
		filepath.Join(etc, "crhook.d/20-b.toml"), p.SettingsEnv}
	if got := strings.Join(s.Files, "\n"); got != strings.Join(want, "\n") {
		t.Errorf("files read:\n%s\nwant:\n%s", got, strings.Join(want, "\n"))
	}
}

func TestSettingsErrors(t *testing.T) {
	tests := []struct {
		name, content string
		want          string
	}{
		{"unknown top-level key", "state_dir = \"/run/x\"\nbogus = true\n", "crhook.toml:2: invalid crhook settings: unknown key \"bogus\""},
		{"unknown key in a table", "[runtime]\npath = \"runc\"\nflavour = \"x\"\n", "crhook.toml:3: invalid crhook settings: unknown key \"runtime.flavour\""},
		{"syntax error", "state_dir = \"/run/x\"\n[runtime]\npath = = 1\n", "crhook.toml:3:"},
		{"wrong type", "[runtime]\npath = 1\n", "crhook.toml"},
		{"unknown option in allow list", "[annotations]\nallow = [\"tcp-establish\"]\n", "did you mean"},
		{"relative state dir", "state_dir = \"run\"\n", "not an absolute path"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := tree(t, map[string]string{"etc/crhook/crhook.toml": tc.content})
			_, err := LoadSettings(p)
			if !errors.Is(err, ErrSettings) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want ErrSettings containing %q", err, tc.want)
			}
		})
	}
}

func TestSettingsEnvMustExist(t *testing.T) {
	p := tree(t, nil)
	p.SettingsEnv = filepath.Join(t.TempDir(), "missing.toml")
	if _, err := LoadSettings(p); !errors.Is(err, ErrSettings) || !strings.Contains(err.Error(), EnvConfig) {
		t.Fatalf("err = %v, want an error naming %s", err, EnvConfig)
	}
}

func TestShippedSettingsDecode(t *testing.T) {
	data, err := os.ReadFile("../contrib/crhook.toml")
	if err != nil {
		t.Fatal(err)
	}
	p := tree(t, map[string]string{"usr/share/crhook/crhook.toml": string(data)})
	s, err := LoadSettings(p)
	if err != nil {
		t.Fatalf("shipped crhook.toml: %v", err)
	}
	for _, name := range s.Annotations.Allow {
		opt, _, _ := criuopt.Lookup(name)
		if opt.Unsafe || opt.Owned {
			t.Errorf("shipped allow-list has %s, which containers may never set", name)
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
}
