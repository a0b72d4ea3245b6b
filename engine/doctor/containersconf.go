package doctor

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/BurntSushi/toml"

	"github.com/crhook/crhook/config/safefile"
)

// containersConf is what doctor needs of podman's containers.conf files,
// merged the way podman merges them: a later file wins key by key.
type containersConf struct {
	files []string // read, in order
	errs  []string // files that did not decode

	runtime      string // engine.runtime
	runtimeFrom  string
	runtimes     map[string][]string // engine.runtimes
	runtimesFrom map[string]string
	ulimits      []string // containers.default_ulimits
	ulimitsFrom  string
	ulimitsSet   bool
}

type containersConfFile struct {
	Containers struct {
		DefaultUlimits []string `toml:"default_ulimits"`
	} `toml:"containers"`
	Engine struct {
		Runtime  string              `toml:"runtime"`
		Runtimes map[string][]string `toml:"runtimes"`
	} `toml:"engine"`
}

// containersConfFiles lists podman 4's system files in load order:
// $CONTAINERS_CONF alone when set, else the vendor file, the admin's file
// and the admin's drop-ins (*.conf, lexical order).
func (h *Host) containersConfFiles() ([]string, error) {
	if env := h.Getenv("CONTAINERS_CONF"); env != "" {
		return []string{env}, nil
	}
	files := []string{"/usr/share/containers/containers.conf", "/etc/containers/containers.conf"}
	dir := "/etc/containers/containers.conf.d"
	names, err := safefile.DropIns(h.path(dir), ".conf")
	if err != nil {
		return files, fmt.Errorf("read podman drop-in directory %s: %w", dir, err)
	}
	for _, n := range names {
		files = append(files, filepath.Join(dir, n))
	}
	return files, nil
}

func (h *Host) loadContainersConf() *containersConf {
	c := &containersConf{runtimes: map[string][]string{}, runtimesFrom: map[string]string{}}
	files, err := h.containersConfFiles()
	if err != nil {
		c.errs = append(c.errs, err.Error())
	}
	for _, f := range files {
		read := f
		if f != h.Getenv("CONTAINERS_CONF") {
			read = h.path(f)
		}
		data, err := os.ReadFile(read)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			c.errs = append(c.errs, fmt.Sprintf("read %s: %v", f, err))
			continue
		}
		var one containersConfFile
		md, err := toml.Decode(string(data), &one)
		if err != nil {
			c.errs = append(c.errs, fmt.Sprintf("%s: %v", f, err))
			continue
		}
		c.files = append(c.files, f)
		if md.IsDefined("engine", "runtime") {
			c.runtime, c.runtimeFrom = one.Engine.Runtime, f
		}
		for name, paths := range one.Engine.Runtimes {
			c.runtimes[name], c.runtimesFrom[name] = paths, f
		}
		if md.IsDefined("containers", "default_ulimits") {
			c.ulimits, c.ulimitsFrom, c.ulimitsSet = one.Containers.DefaultUlimits, f, true
		}
	}
	return c
}
