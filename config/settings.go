package config

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/BurntSushi/toml"
)

// Settings are crhook's own settings (crhook.toml(5)).
type Settings struct {
	StateDir string `toml:"state_dir"`
	Runtime  struct {
		Path string `toml:"path"`
	} `toml:"runtime"`
	CRIU struct {
		Deny []string `toml:"deny"`
	} `toml:"criu"`
	Annotations struct {
		Allow []string `toml:"allow"`
	} `toml:"annotations"`

	// Files lists the settings files that were read, in order.
	Files []string `toml:"-"`
}

// Fallback returns the built-in settings. They apply under every file, so
// a plain `go build` binary behaves like the packaged one, and the runtime
// path uses them when the files do not load.
func Fallback() *Settings {
	s := &Settings{}
	s.StateDir = "/run/crhook"
	s.Runtime.Path = "runc"
	s.Annotations.Allow = []string{"tcp-established", "tcp-close", "skip-in-flight", "shell-job",
		"file-locks", "ext-unix-sk", "link-remap", "ghost-limit", "manage-cgroups"}
	return s
}

// SettingsFiles returns the settings files in load order, lowest precedence
// first. It is the one place that owns the order; crhook.toml(5) states it.
func (p Paths) SettingsFiles() ([]string, error) {
	files := []string{p.SettingsDefault, p.SettingsSystem}
	if p.SettingsDropIn != "" {
		entries, err := os.ReadDir(p.SettingsDropIn)
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("read drop-in directory %q: %w", p.SettingsDropIn, err)
		}
		var names []string
		for _, e := range entries {
			if !e.IsDir() && strings.HasSuffix(e.Name(), ".toml") {
				names = append(names, e.Name())
			}
		}
		sort.Strings(names)
		for _, n := range names {
			files = append(files, filepath.Join(p.SettingsDropIn, n))
		}
	}
	if p.SettingsEnv != "" {
		files = append(files, p.SettingsEnv)
	}
	return files, nil
}

// LoadSettings reads every settings file in order; later files win key by
// key (arrays are replaced, not merged, as in containers.conf).
func LoadSettings(p Paths) (*Settings, error) {
	s := Fallback()
	files, err := p.SettingsFiles()
	if err != nil {
		return nil, err
	}
	for _, f := range files {
		if f == "" {
			continue
		}
		data, found, err := readTrusted(f)
		if err != nil {
			return nil, err
		}
		if !found {
			if f == p.SettingsEnv {
				return nil, &FileError{File: f, Err: fmt.Errorf("%w: $%s names a file that does not exist", ErrSettings, EnvConfig),
					Hint: "create it or unset " + EnvConfig}
			}
			continue
		}
		if err := decodeSettings(f, data, s); err != nil {
			return nil, err
		}
		s.Files = append(s.Files, f)
	}
	if err := s.validate(); err != nil {
		return nil, err
	}
	return s, nil
}

func decodeSettings(file string, data []byte, s *Settings) error {
	md, err := toml.NewDecoder(bytes.NewReader(data)).Decode(s)
	if err != nil {
		var pe toml.ParseError
		if errors.As(err, &pe) {
			return &FileError{File: file, Line: pe.Position.Line, Col: pe.Position.Col,
				Err: fmt.Errorf("%w: %s", ErrSettings, pe.Message)}
		}
		return &FileError{File: file, Err: fmt.Errorf("%w: %w", ErrSettings, err)}
	}
	if und := md.Undecoded(); len(und) > 0 {
		key := und[0]
		return &FileError{File: file, Line: keyLine(data, key), Err: fmt.Errorf("%w: unknown key %q", ErrSettings, key.String()),
			Hint: "known keys: state_dir, runtime.path, criu.deny, annotations.allow"}
	}
	return nil
}

// keyLine finds the line that defines key: BurntSushi/toml reports unknown
// keys without positions. It returns 0 when the key cannot be located.
func keyLine(data []byte, key toml.Key) int {
	table := strings.Join(key[:len(key)-1], ".")
	last := key[len(key)-1]
	cur := ""
	for i, line := range strings.Split(string(data), "\n") {
		t := strings.TrimSpace(line)
		if strings.HasPrefix(t, "[") {
			cur = strings.Trim(t, "[] ")
			if cur == strings.Join(key, ".") {
				return i + 1
			}
			continue
		}
		if k, _, ok := strings.Cut(t, "="); ok && strings.Trim(strings.TrimSpace(k), `"'`) == last && cur == table {
			return i + 1
		}
	}
	return 0
}

func (s *Settings) validate() error {
	where := strings.Join(s.Files, ", ")
	if where == "" {
		where = "built-in defaults"
	}
	if s.Runtime.Path == "" {
		return fmt.Errorf("%w: runtime.path is empty in %s", ErrSettings, where)
	}
	if !filepath.IsAbs(s.StateDir) {
		return fmt.Errorf("%w: state_dir %q is not an absolute path (%s)", ErrSettings, s.StateDir, where)
	}
	for _, list := range [][]string{s.CRIU.Deny, s.Annotations.Allow} {
		for _, name := range list {
			if _, _, ok := Lookup(name); !ok {
				return fmt.Errorf("%w: %q in %s is not a CRIU option%s", ErrSettings, name, where, didYouMean(name))
			}
		}
	}
	return nil
}

// AllowsAnnotation reports whether containers may set name themselves.
func (s *Settings) AllowsAnnotation(name string) bool {
	for _, a := range s.Annotations.Allow {
		if a == name {
			return true
		}
	}
	return false
}

// Denies reports whether no layer may set name.
func (s *Settings) Denies(name string) bool {
	for _, d := range s.CRIU.Deny {
		if d == name {
			return true
		}
	}
	return false
}

func didYouMean(name string) string {
	if s := Suggest(name); s != "" {
		return "; did you mean " + s + "?"
	}
	return ""
}
