package doctor

import (
	"fmt"
	"path/filepath"
	"strings"
)

// criuSELinuxFix says how to get a CRIU that can restore process labels.
// CRIU's Makefile links libselinux whenever its headers are installed
// (CONFIG_HAS_SELINUX); distribution packages built without them, and
// source builds on a host without them, silently lack it.
const criuSELinuxFix = "install a CRIU linked with libselinux (Fedora's and CentOS's criu packages are); " +
	"building CRIU from source, install libselinux-devel (Fedora) or libselinux1-dev (Debian) first, " +
	"rebuild (make criu) and check with: ldd $(command -v criu) | grep libselinux"

// checkCRIUSELinux matters only where SELinux is on. CRIU restores a
// task's label (and with it the container's MCS categories) by writing
// /proc/PID/attr/current through libselinux; without it the restored
// container keeps the label of whatever ran CRIU. Measured in the guest
// of tests/guest: the restored busybox came back as the runtime's domain,
// not container_t:s0:cX,cY.
func checkCRIUSELinux(p *probe) Result {
	c, skip := p.criuLinks("libselinux.so")
	if skip != nil {
		return *skip
	}
	libs, linked := c.libs, c.linked
	sel := p.selinuxInfo()
	switch {
	case linked != "":
		return result(OK, "", fmt.Sprintf("%s needs %s", c.path, linked))
	case len(libs) == 0 && sel.enabled:
		// A static CRIU has no DT_NEEDED to read; it may or may not
		// carry libselinux.
		return result(Warn, criuSELinuxFix,
			fmt.Sprintf("%s needs no shared library (static?): cannot tell whether it has libselinux", c.path),
			sel.evidence)
	case sel.enabled:
		return result(Fail, criuSELinuxFix,
			fmt.Sprintf("%s does not link libselinux (DT_NEEDED: %s)", c.path, strings.Join(libs, " ")),
			sel.evidence,
			"restored containers lose their label: they come back as the domain of the runtime that "+
				"restored them (container_runtime_t, or unconfined_t), not as their container_t:s0:cX,cY")
	}
	return result(OK, "", fmt.Sprintf("%s does not link libselinux; that matters only with SELinux enabled, and it is not", c.path))
}

// criuNeeds is what the criu doctor checks reads in its ELF DT_NEEDED:
// the only reliable answer to which optional library it was built with.
type criuNeeds struct {
	path   string
	libs   []string // every DT_NEEDED entry; none for a static criu
	linked string   // the entry criuLinks looked for, "" when absent
}

// criuLinks reads the DT_NEEDED of the criu runc would run and finds the
// library whose name starts with prefix ("libselinux.so"). skip is the
// check's result when there is nothing to read (no criu, not an ELF).
func (p *probe) criuLinks(prefix string) (criuNeeds, *Result) {
	c := criuNeeds{path: p.criuInfo().path}
	if c.path == "" {
		r := result(Skip, "", "no criu (see criu.binary)")
		return c, &r
	}
	libs, err := p.h.Libs(c.path)
	if err != nil {
		r := result(Skip, "", err.Error())
		return c, &r
	}
	c.libs = libs
	for _, l := range libs {
		if strings.HasPrefix(filepath.Base(l), prefix) {
			c.linked = l
		}
	}
	return c, nil
}
