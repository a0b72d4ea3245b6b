package config

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/crhook/crhook/config/criuopt"
)

// TestLoadRuntimePath: runtime.path is found whenever the files that could
// set it can be read, and otherwise the error names the file that stops it.
func TestLoadRuntimePath(t *testing.T) {
	const sys, dropA, dropZ = "etc/crhook/crhook.toml", "etc/crhook/crhook.d/10-a.toml", "etc/crhook/crhook.d/90-z.toml"
	tests := []struct {
		name     string
		files    map[string]string
		want     string
		wantAt   string // "file-basename:line" of the winning line
		wantErr  string // substring of the error; "" means no error
		errorsIs error
	}{
		{name: "nothing set", want: "runc", wantAt: "built-in default"},
		{name: "unknown key next to it", files: map[string]string{sys: "[runtime]\npath = \"/opt/rt\"\nflavour = 1\n"},
			want: "/opt/rt", wantAt: "crhook.toml:2"},
		{name: "bad deny list next to it", files: map[string]string{sys: "[criu]\ndeny = [\"nope\"]\n[runtime]\npath = \"/opt/rt\"\n"},
			want: "/opt/rt", wantAt: "crhook.toml:4"},
		{name: "later file wins over a broken earlier one", files: map[string]string{sys: "[runtime\npath = \"x\"\n", dropA: "runtime.path = \"/opt/rt\"\n"},
			want: "/opt/rt", wantAt: "10-a.toml:1"},
		{name: "later file without it is skipped", files: map[string]string{sys: "[runtime]\npath = \"crun\"\n", dropZ: "state_dir = \"relative\"\nbogus = 2\n"},
			want: "crun", wantAt: "crhook.toml:2"},
		{name: "later file cannot be parsed", files: map[string]string{sys: "[runtime]\npath = \"crun\"\n", dropZ: "[criu]\ndeny = [\"a\",\n\n= x\n"},
			wantErr: "90-z.toml:4", errorsIs: ErrSettings},
		{name: "empty", files: map[string]string{dropA: "[runtime]\n\npath = \"\"\n"}, wantErr: "10-a.toml:3: invalid crhook settings: runtime.path is empty", errorsIs: ErrSettings},
		{name: "wrong type", files: map[string]string{dropA: "[runtime]\npath = 7\n"}, wantErr: "10-a.toml:2: invalid crhook settings: runtime.path is not a string", errorsIs: ErrSettings},
		{name: "runtime is not a table", files: map[string]string{dropA: "# x\nruntime = \"crun\"\n"},
			wantErr: "10-a.toml:2: invalid crhook settings: runtime must be a table ([runtime]) holding runtime.path", errorsIs: ErrSettings},
		{name: "inline table", files: map[string]string{dropA: "runtime = { path = \"/opt/rt\" }\n"}, want: "/opt/rt", wantAt: "10-a.toml:1"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := tree(t, tc.files)
			got, at, err := LoadRuntimePath(p)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) || !errors.Is(err, tc.errorsIs) {
					t.Fatalf("LoadRuntimePath = %q, %v; want error containing %q", got, err, tc.wantErr)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("LoadRuntimePath = %q, %v; want %q", got, err, tc.want)
			}
			where := at.String()
			if at.File != "" {
				where = filepath.Base(at.File) + strings.TrimPrefix(at.String(), at.File)
			}
			if where != tc.wantAt {
				t.Errorf("set at %s, want %s", where, tc.wantAt)
			}
		})
	}
}

func TestLoadRuntimePathEnvMustExist(t *testing.T) {
	p := tree(t, map[string]string{"etc/crhook/crhook.toml": "[runtime]\npath = \"crun\"\n"})
	p.SettingsEnv = filepath.Join(t.TempDir(), "missing.toml")
	if _, _, err := LoadRuntimePath(p); err == nil || !strings.Contains(err.Error(), EnvConfig) {
		t.Fatalf("err = %v, want an error naming $%s: it might have set runtime.path", err, EnvConfig)
	}
}

// TestSettingsErrorNamesOneFile: a bad value is reported at the one file
// and line that set it, not with the list of every file read.
func TestSettingsErrorNamesOneFile(t *testing.T) {
	p := tree(t, map[string]string{
		"usr/share/crhook/crhook.toml":  "state_dir = \"/run/crhook\"\n",
		"etc/crhook/crhook.toml":        "[runtime]\npath = \"runc\"\n",
		"etc/crhook/crhook.d/10-a.toml": "# allow more\n[annotations]\nallow = [\"tcp-established\", \"tcp-establish\"]\n",
		"etc/crhook/crhook.d/20-b.toml": "[criu]\ndeny = [\"auto-dedup\"]\n",
	})
	_, err := LoadSettings(p)
	want := filepath.Join(p.SettingsDropIn, "10-a.toml") + `:3: invalid crhook settings: annotations.allow: "tcp-establish" is not a CRIU option; did you mean tcp-established?`
	if err == nil || err.Error() != want {
		t.Fatalf("err = %v\nwant %s", err, want)
	}
	var fe *criuopt.FileError
	if !errors.As(err, &fe) || !errors.Is(err, ErrSettings) {
		t.Fatalf("err %v: want a *FileError wrapping ErrSettings", err)
	}
}

func TestLoadStateDir(t *testing.T) {
	p := tree(t, map[string]string{
		"etc/crhook/crhook.toml":        "state_dir = \"/run/elsewhere\"\nbogus = 1\n",
		"etc/crhook/crhook.d/10-a.toml": "[runtime]\npath = \"crun\"\n",
	})
	if dir, at, err := LoadStateDir(p); err != nil || dir != "/run/elsewhere" || at.Line != 1 {
		t.Fatalf("LoadStateDir = %q, %v, %v; want /run/elsewhere from crhook.toml:1", dir, at, err)
	}
	p = tree(t, map[string]string{"etc/crhook/crhook.toml": "state_dir = \"run/relative\"\n"})
	if _, _, err := LoadStateDir(p); err == nil || !strings.Contains(err.Error(), "crhook.toml:1: invalid crhook settings: state_dir \"run/relative\" is not an absolute path") {
		t.Fatalf("LoadStateDir of a relative state_dir: %v", err)
	}
}
