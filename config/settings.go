package config

import (
	"bytes"
	"errors"
	"fmt"
	"path/filepath"
	"strings"

	"github.com/BurntSushi/toml"

	"github.com/crhook/crhook/config/criuopt"
	"github.com/crhook/crhook/config/safefile"
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

	// origin is where each key got its value: the last file that set it.
	// Lines are found only when asked for (Where, errors): crhook-runtime
	// loads settings on every call and rarely needs them.
	origin map[string]Loc
	// data holds each file's content, by path, for finding those lines.
	data map[string][]byte
}

// Loc is a place in a settings file; a zero Loc means the built-in default.
type Loc struct {
	File string
	Line int // 0 when the key's line could not be found
}

func (l Loc) String() string {
	switch {
	case l.File == "":
		return "built-in default"
	case l.Line == 0:
		return criuopt.Printable(l.File)
	}
	return fmt.Sprintf("%s:%d", criuopt.Printable(l.File), l.Line)
}

// settingKeys are the keys crhook.toml(5) documents, as TOML key paths.
var settingKeys = [][]string{{"state_dir"}, {"runtime", "path"}, {"criu", "deny"}, {"annotations", "allow"}}

// Where says which file and line set key ("runtime.path"), for messages.
func (s *Settings) Where(key string) Loc {
	l := s.origin[key]
	if l.File != "" && l.Line == 0 {
		l.Line = keyLine(s.data[l.File], toml.Key(strings.Split(key, ".")))
	}
	return l
}

// SetRuntimePath sets runtime.path as found at at (see LoadRuntimePath).
func (s *Settings) SetRuntimePath(path string, at Loc) {
	s.Runtime.Path = path
	if s.origin == nil {
		s.origin = map[string]Loc{}
	}
	s.origin["runtime.path"] = at
}

// errorAt is a validation error located at the file and line that set key.
func (s *Settings) errorAt(key string, err error, hint string) error {
	l := s.Where(key)
	if l.File == "" {
		return fmt.Errorf("%w (built-in default)", err)
	}
	return &criuopt.FileError{File: l.File, Line: l.Line, Err: err, Hint: hint}
}

// Fallback returns the built-in settings. They apply under every file, so
// a plain `go build` binary behaves like the packaged one, and
// crhook-runtime uses them when the files do not load.
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
		names, err := safefile.DropIns(p.SettingsDropIn, ".toml")
		if err != nil {
			return nil, fmt.Errorf("read drop-in directory %q: %w", p.SettingsDropIn, err)
		}
		for _, n := range names {
			files = append(files, filepath.Join(p.SettingsDropIn, n))
		}
	}
	if p.SettingsEnv != "" {
		files = append(files, p.SettingsEnv)
	}
	return files, nil
}

// SettingsFile is one settings file as read: its content, or not found.
type SettingsFile struct {
	Path  string
	Data  []byte
	Found bool
	// DropIn: listed from the drop-in directory (SettingsDropIn).
	DropIn bool
}

// ReadSettingsFiles reads every settings file in load order, trusted
// (readTrusted) but not decoded: what LoadSettings decodes, and what
// crhook-runtime compares with the files its cache was decoded from. On
// an error it returns the files read before it.
func (p Paths) ReadSettingsFiles() ([]SettingsFile, error) {
	names, err := p.SettingsFiles()
	if err != nil {
		return nil, err
	}
	files := make([]SettingsFile, 0, len(names))
	for i, f := range names {
		if f == "" {
			continue
		}
		// SettingsFiles: the two files, the drop-ins, then $CRHOOK_CONFIG.
		dropIn := i >= 2 && (p.SettingsEnv == "" || i < len(names)-1)
		data, found, err := readTrusted(f)
		if err != nil {
			return files, err
		}
		if !found && f == p.SettingsEnv {
			return files, &criuopt.FileError{File: f, Err: fmt.Errorf("%w: $%s names a file that does not exist", ErrSettings, EnvConfig),
				Hint: "create it or unset " + EnvConfig}
		}
		files = append(files, SettingsFile{Path: f, Data: data, Found: found, DropIn: dropIn})
	}
	return files, nil
}

// LoadSettings reads every settings file in order; later files win key by
// key (arrays are replaced, not merged, as in containers.conf).
func LoadSettings(p Paths) (*Settings, error) {
	return DecodeSettings(p.ReadSettingsFiles())
}

// DecodeSettings is LoadSettings on files already read (ReadSettingsFiles
// and its error): the files are decoded in order, so a mistake in one read
// before readErr is the error reported, as if each were read in turn.
func DecodeSettings(files []SettingsFile, readErr error) (*Settings, error) {
	s := Fallback()
	for _, f := range files {
		if !f.Found {
			continue
		}
		md, err := decodeSettings(f.Path, f.Data, s)
		if err != nil {
			return nil, err
		}
		s.Files = append(s.Files, f.Path)
		for _, key := range settingKeys {
			if md.IsDefined(key...) {
				if s.origin == nil {
					s.origin, s.data = map[string]Loc{}, map[string][]byte{}
				}
				s.origin[strings.Join(key[:], ".")] = Loc{File: f.Path}
				s.data[f.Path] = f.Data
			}
		}
	}
	if readErr != nil {
		return nil, readErr
	}
	if err := s.validate(); err != nil {
		return nil, err
	}
	return s, nil
}

func decodeSettings(file string, data []byte, s any) (toml.MetaData, error) {
	md, err := toml.NewDecoder(bytes.NewReader(data)).Decode(s)
	if err != nil {
		return md, tomlError(file, err)
	}
	if und := md.Undecoded(); len(und) > 0 {
		key := und[0]
		return md, &criuopt.FileError{File: file, Line: keyLine(data, key), Err: fmt.Errorf("%w: unknown key %q", ErrSettings, key.String()),
			Hint: "known keys: state_dir, runtime.path, criu.deny, annotations.allow"}
	}
	return md, nil
}

func tomlError(file string, err error) error {
	var pe toml.ParseError
	if errors.As(err, &pe) {
		return &criuopt.FileError{File: file, Line: pe.Position.Line, Col: pe.Position.Col,
			Err: fmt.Errorf("%w: %s", ErrSettings, pe.Message)}
	}
	// Type mismatches come without a position; the message has the line.
	return &criuopt.FileError{File: file, Err: fmt.Errorf("%w: %w", ErrSettings, err)}
}

// LoadRuntimePath finds runtime.path alone, for when LoadSettings fails:
// a mistake in an unrelated key must not change which runtime runs, or
// state, kill and delete would ask the wrong runtime about a container
// and, for delete, report success while it keeps running. Each file is
// decoded on its own, last first; the first that sets runtime.path wins.
// A file that cannot be read or parsed at all before that point might
// set it, so then runtime.path is undetermined and the error says where:
// crhook never guesses the runtime.
func LoadRuntimePath(p Paths) (string, Loc, error) {
	return lastSet(p, toml.Key{"runtime", "path"}, Fallback().Runtime.Path, func(v string) (string, string) {
		if v == "" {
			return "runtime.path is empty", "set it to runc, crun or a full path"
		}
		return "", ""
	})
}

// LoadStateDir finds state_dir alone, as LoadRuntimePath does runtime.path,
// so that create and delete keep using the configured state directory
// while an unrelated setting is broken.
func LoadStateDir(p Paths) (string, Loc, error) {
	return lastSet(p, toml.Key{"state_dir"}, Fallback().StateDir, func(v string) (string, string) {
		if !filepath.IsAbs(v) {
			return fmt.Sprintf("state_dir %q is not an absolute path", v), ""
		}
		return "", ""
	})
}

// lastSet is the value of one string key from the last settings file that
// sets it (def when none does), decoding each file on its own. check
// returns what is wrong with a value and the fix, or "".
func lastSet(p Paths, key toml.Key, def string, check func(string) (string, string)) (string, Loc, error) {
	files, err := p.SettingsFiles()
	if err != nil {
		return "", Loc{}, err
	}
	for i := len(files) - 1; i >= 0; i-- {
		f := files[i]
		if f == "" {
			continue
		}
		data, found, err := readTrusted(f)
		if err != nil {
			return "", Loc{}, err
		}
		if !found {
			if f == p.SettingsEnv {
				return "", Loc{}, &criuopt.FileError{File: f, Err: fmt.Errorf("%w: $%s names a file that does not exist", ErrSettings, EnvConfig),
					Hint: "create it or unset " + EnvConfig}
			}
			continue
		}
		var v map[string]any
		md, err := toml.NewDecoder(bytes.NewReader(data)).Decode(&v)
		if err != nil {
			return "", Loc{}, tomlError(f, err)
		}
		// Walk down the key: a table on the way set to something else
		// ("runtime = 'crun'") might have meant to set it.
		var val any = v
		for j, k := range key {
			m, ok := val.(map[string]any)
			if !ok {
				prefix := key[:j]
				return "", Loc{}, &criuopt.FileError{File: f, Line: keyLine(data, prefix),
					Err: fmt.Errorf("%w: %s must be a table ([%s]) holding %s", ErrSettings, prefix.String(), prefix.String(), key.String())}
			}
			if val, ok = m[k]; !ok {
				break
			}
		}
		if !md.IsDefined(key...) {
			continue
		}
		at := Loc{File: f, Line: keyLine(data, key)}
		str, ok := val.(string)
		if !ok {
			return "", at, &criuopt.FileError{File: f, Line: at.Line, Err: fmt.Errorf("%w: %s is not a string", ErrSettings, key.String())}
		}
		if why, fix := check(str); why != "" {
			return "", at, &criuopt.FileError{File: f, Line: at.Line, Err: fmt.Errorf("%w: %s", ErrSettings, why), Hint: fix}
		}
		return str, at, nil
	}
	return def, Loc{}, nil
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
		k, _, ok := strings.Cut(t, "=")
		k = strings.Trim(strings.TrimSpace(k), `"'`)
		if ok && (k == last && cur == table || k == strings.Join(key, ".") && cur == "") {
			return i + 1
		}
	}
	if len(key) > 1 {
		// An inline table ("runtime = { path = ... }"): its line.
		return keyLine(data, key[:len(key)-1])
	}
	return 0
}

// validate checks the merged values; each error names the one file and
// line that set the bad value, not every file that was read.
func (s *Settings) validate() error {
	if s.Runtime.Path == "" {
		return s.errorAt("runtime.path", fmt.Errorf("%w: runtime.path is empty", ErrSettings), "set it to runc, crun or a full path")
	}
	if !filepath.IsAbs(s.StateDir) {
		return s.errorAt("state_dir", fmt.Errorf("%w: state_dir %q is not an absolute path", ErrSettings, s.StateDir), "")
	}
	for _, l := range []struct {
		key  string
		list []string
	}{{"criu.deny", s.CRIU.Deny}, {"annotations.allow", s.Annotations.Allow}} {
		for _, name := range l.list {
			if _, _, ok := criuopt.Lookup(name); !ok {
				return s.errorAt(l.key, fmt.Errorf("%w: %s: %q is not a CRIU option%s", ErrSettings, l.key, name, criuopt.DidYouMean(name)), "")
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
