package doctor

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"

	"github.com/crhook/crhook/config"
	"github.com/crhook/crhook/config/safefile"
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
	for _, c := range config.CheckLayers(p.layers()) {
		failed = failed || c.Err != nil
		ev = append(ev, c.String())
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
// (a root-owned directory, no link, not writable by group or other) to
// the state directory, and says which file breaks it.
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
		line, fix, ok := trustLine(f)
		if line == "" {
			continue
		}
		ev = append(ev, line)
		if !ok {
			bad = true
			if fix != "" {
				fixes = append(fixes, fix)
			}
		}
	}
	state := p.h.path(c.settings.StateDir)
	fi, err := os.Lstat(state)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		ev = append(ev, state+": absent (created root-owned 0700 at the first checkpoint)")
	case err != nil:
		ev, bad = append(ev, fmt.Sprintf("%s: %v", state, err)), true
	default:
		// The runtime's own rule (engine/statedir_linux.go): state_dir may
		// be shared, so 0755 is fine; what it refuses is a link, a
		// non-directory, another owner, or group/other write.
		uid, mode, _ := safefile.Stat(fi)
		line := fmt.Sprintf("%s: uid %d, mode %04o", state, uid, fi.Mode().Perm())
		why, fix := safefile.Problem(state, uid, mode, false)
		switch {
		case fi.Mode()&fs.ModeSymlink != 0:
			why, fix = "a symbolic link, which crhook-runtime does not follow", fmt.Sprintf("rm %q (crhook recreates it), or set state_dir to a real directory", state)
		case !fi.IsDir():
			why, fix = "not a directory", fmt.Sprintf("rm %q (crhook recreates it)", state)
		}
		if why != "" {
			line += ": " + why + "; crhook-runtime refuses every checkpoint and restore"
			bad = true
			fixes = append(fixes, fix)
		}
		ev = append(ev, line)
	}
	if bad {
		return result(Fail, "run: "+strings.Join(fixes, "; ")+" (running as root, crhook refuses files another user could write)", ev...)
	}
	return result(OK, "", ev...)
}

// trustLine applies the loader's own rule (safefile: a regular file,
// trusted owner and mode) to f, as the runtime would on reading it: a line
// of evidence, the command that fixes it and whether it passes. An absent
// file gives no line.
func trustLine(f string) (line, fix string, ok bool) {
	file, fi, err := safefile.OpenRegular(f)
	var nr *safefile.NotRegularError
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return "", "", true
	case errors.As(err, &nr):
		return fmt.Sprintf("%s: %s, not a regular file", f, safefile.Kind(nr.Mode)), "replace " + f + " with a regular file", false
	case err != nil:
		return fmt.Sprintf("%s: %v", f, err), "", false
	}
	file.Close()
	uid, mode, _ := safefile.Stat(fi)
	if why, fix := safefile.Problem(f, uid, mode, false); why != "" {
		return fmt.Sprintf("%s: uid %d: %s", f, uid, why), fix, false
	}
	return fmt.Sprintf("%s: uid %d, mode %04o", f, uid, mode), "", true
}

func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}
