package doctor

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"

	"github.com/crhook/crhook/config"
)

type configFacts struct {
	// settings are crhook.toml as the runtime would load them, or the
	// built-in fallback when they do not load (settingsErr says why).
	settings    *config.Settings
	settingsErr error
}

func (p *probe) configInfo() *configFacts {
	if p.confOnce {
		return &p.conf
	}
	p.confOnce = true
	c := &p.conf
	c.settings, c.settingsErr = config.LoadSettings(p.h.Paths)
	if c.settingsErr != nil {
		c.settings = config.Fallback()
	}
	return c
}

func checkSettings(p *probe) Result {
	c := p.configInfo()
	if c.settingsErr != nil {
		return result(Fail, "fix the file and line named above; until then crhook-runtime refuses every checkpoint and restore",
			c.settingsErr.Error())
	}
	files := strings.Join(c.settings.Files, ", ")
	if files == "" {
		files = "no settings file; built-in defaults apply"
	}
	return result(OK, "", files, fmt.Sprintf("runtime.path = %q, state_dir = %q", c.settings.Runtime.Path, c.settings.StateDir))
}

// layers are the CRIU files for the wrapped runtime, lowest first.
func (p *probe) layers() []string {
	return p.h.Paths.CRIUFiles(p.configInfo().settings.Runtime.Path)
}

func checkLayers(p *probe) Result {
	var ev []string
	failed := false
	for _, f := range p.layers() {
		n, err := config.CheckFile(f)
		switch {
		case err != nil:
			failed = true
			ev = append(ev, err.Error())
		case n < 0:
			ev = append(ev, f+": absent")
		default:
			ev = append(ev, fmt.Sprintf("%s: ok, %s", f, plural(n, "option")))
		}
	}
	if failed {
		return result(Fail, "fix the lines named above (crhook config check FILE re-checks one file); a layer that does not parse fails every checkpoint", ev...)
	}
	return result(OK, "", ev...)
}

func checkDropped(p *probe) Result {
	c := p.configInfo()
	if c.settingsErr != nil {
		return result(Skip, "", "settings do not load (see config.settings)")
	}
	res, err := config.Resolve(p.h.Paths, config.Input{Runtime: c.settings.Runtime.Path, Settings: c.settings})
	if err != nil {
		return result(Skip, "", "layers do not resolve (see config.layers): "+err.Error())
	}
	if len(res.Dropped) == 0 {
		return result(OK, "", plural(len(res.Options), "option")+" reach CRIU, none dropped")
	}
	ev := []string{fmt.Sprintf("%s reach CRIU, %d dropped:", plural(len(res.Options), "option"), len(res.Dropped))}
	for _, d := range res.Dropped {
		ev = append(ev, fmt.Sprintf("%s (%s): %s", d.Text(), d.Origin, d.Reason))
	}
	return result(Warn, "remove these lines, or move them out of criu.deny: they have no effect on the podman path (crhook config show --origin)", ev...)
}

// checkPermissions applies the loader's rule (root-owned, not writable by
// group or other) to every file it would read, and the engine's rule
// (root-owned 0700) to the state directory, and says which file breaks it.
func checkPermissions(p *probe) Result {
	c := p.configInfo()
	files := append([]string{}, p.layers()...)
	if sf, err := p.h.Paths.SettingsFiles(); err == nil {
		files = append(files, sf...)
	}
	var ev, fixes []string
	bad := false
	for _, f := range files {
		if f == "" {
			continue
		}
		fi, err := os.Lstat(f)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			ev, bad = append(ev, fmt.Sprintf("%s: %v", f, err)), true
			continue
		}
		uid, _ := fileOwner(fi)
		line := fmt.Sprintf("%s: uid %d, mode %04o", f, uid, fi.Mode().Perm())
		switch {
		case !fi.Mode().IsRegular():
			line += ": not a regular file"
			bad = true
			fixes = append(fixes, "replace "+f+" with a regular file")
		case uid != 0:
			line += ": not owned by root"
			bad = true
			fixes = append(fixes, "chown root:root "+f)
		case fi.Mode().Perm()&0o022 != 0:
			line += ": writable by group or others"
			bad = true
			fixes = append(fixes, "chmod go-w "+f)
		}
		ev = append(ev, line)
	}
	state := p.h.path(c.settings.StateDir)
	fi, err := os.Lstat(state)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		ev = append(ev, state+": absent (created root-owned 0700 at the first checkpoint)")
	case err != nil:
		ev, bad = append(ev, fmt.Sprintf("%s: %v", state, err)), true
	default:
		uid, _ := fileOwner(fi)
		line := fmt.Sprintf("%s: uid %d, mode %04o", state, uid, fi.Mode().Perm())
		if !fi.IsDir() || uid != 0 || fi.Mode().Perm()&0o077 != 0 {
			line += ": want a root-owned directory with mode 0700"
			bad = true
			fixes = append(fixes, "chown root:root "+state+" && chmod 0700 "+state)
		}
		ev = append(ev, line)
	}
	if bad {
		return result(Fail, "run: "+strings.Join(fixes, "; ")+" (running as root, crhook refuses files another user could write)", ev...)
	}
	return result(OK, "", ev...)
}

func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}
