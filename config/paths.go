package config

import (
	"os"
	"os/user"
	"path/filepath"
	"strconv"
)

// Paths holds every file and directory the loader reads, so tests can build
// a whole tree under t.TempDir() and production code uses DefaultPaths.
type Paths struct {
	// CRIUDir holds default.conf and the runtime's file (runc.conf, crun.conf).
	CRIUDir string
	// UserCRIU is ~/.criu/default.conf of the user crhook-runtime runs as;
	// empty when that user has no home.
	UserCRIU string
	// Settings files, lowest precedence first: the shipped defaults, the
	// admin's file, a drop-in directory (*.toml, lexical order) and the file
	// named by $CRHOOK_CONFIG, which must exist when set.
	SettingsDefault string
	SettingsSystem  string
	SettingsDropIn  string
	SettingsEnv     string
	// Cache is the directory where crhook-runtime keeps runtime.path as
	// decoded from the settings files, beside the bytes it was decoded
	// from, so that a pass-through call (state, kill...) decodes no TOML
	// while the files are unchanged; "" keeps no cache.
	Cache string

	// lookupUser: UserCRIU is still to be looked up (SystemPaths).
	lookupUser bool
}

// EnvConfig names the settings file that overrides all others.
const EnvConfig = "CRHOOK_CONFIG"

// DefaultPaths returns the system paths. The user layer comes from the
// password database, not $HOME: podman strips HOME from the runtime's
// environment, and CRIU itself would then skip ~/.criu/default.conf.
func DefaultPaths() Paths { return SystemPaths().WithUser() }

// SystemPaths is DefaultPaths before the user layer is looked up: that
// reads the password database, which a pass-through runtime call (every
// state, kill, exec...) never needs. WithUser adds it when a step does.
func SystemPaths() Paths {
	return Paths{
		CRIUDir:         "/etc/criu",
		SettingsDefault: "/usr/share/crhook/crhook.toml",
		SettingsSystem:  "/etc/crhook/crhook.toml",
		SettingsDropIn:  "/etc/crhook/crhook.d",
		SettingsEnv:     os.Getenv(EnvConfig),
		Cache:           "/run/crhook",
		lookupUser:      true,
	}
}

// WithUser fills UserCRIU from the password database for paths that came
// from SystemPaths; other paths (a test tree, Under) are returned as they
// are, so a tree without a user layer keeps none.
func (p Paths) WithUser() Paths {
	if !p.lookupUser {
		return p
	}
	p.lookupUser = false
	if u, err := user.LookupId(strconv.Itoa(os.Getuid())); err == nil && u.HomeDir != "" {
		p.UserCRIU = filepath.Join(u.HomeDir, ".criu", "default.conf")
	}
	return p
}

// SystemCRIU is /etc/criu/default.conf, where `crhook config set` writes.
func (p Paths) SystemCRIU() string { return filepath.Join(p.CRIUDir, "default.conf") }

// RuntimeCRIU lists the runtime's own CRIU files in the order they are
// tried; the first that exists is the layer. crun >= 1.26 reads crun.conf,
// and crhook falls back to runc.conf so existing setups keep working.
func (p Paths) RuntimeCRIU(runtime string) []string {
	runc := filepath.Join(p.CRIUDir, "runc.conf")
	if filepath.Base(runtime) == "crun" {
		return []string{filepath.Join(p.CRIUDir, "crun.conf"), runc}
	}
	return []string{runc}
}

func fileExists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

// Under returns the same layout below root: `crhook --root DIR` checks an
// installed tree (an RPM build root, a container image) without chroot,
// and tests point the CLI at a scratch tree.
func (p Paths) Under(root string) Paths {
	if root == "" || root == "/" {
		return p
	}
	join := func(s string) string {
		if s == "" {
			return ""
		}
		return filepath.Join(root, s)
	}
	return Paths{
		CRIUDir:         join(p.CRIUDir),
		UserCRIU:        join(p.UserCRIU),
		SettingsDefault: join(p.SettingsDefault),
		SettingsSystem:  join(p.SettingsSystem),
		SettingsDropIn:  join(p.SettingsDropIn),
		SettingsEnv:     p.SettingsEnv, // named by the user: taken as given
		Cache:           join(p.Cache),
	}
}
