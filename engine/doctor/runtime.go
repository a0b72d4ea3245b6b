package doctor

import (
	"fmt"
	"path/filepath"
	"strings"
)

// Minimum versions for a runtime to hand CRIU a config file.
var (
	// runc reads the org.criu.config annotation since 1.0.0-rc7.
	minRunc = mustVersion("1.0.0-rc7")
	// crun passes a CRIU config file since 1.26, through libcriu 4.2.
	minCrun    = mustVersion("1.26")
	minLibcriu = mustVersion("4.2")
)

const runtimeFix = `set runtime.path = "runc" in /etc/crhook/crhook.toml (or a file in /etc/crhook/crhook.d/) and install runc 1.0.0 or later`

// checkRuntime looks at the runtime crhook wraps (runtime.path of
// crhook.toml), not podman's default: that one is podman.default_runtime.
func checkRuntime(p *probe) Result {
	s := p.configInfo().settings
	name := s.Runtime.Path
	where := "runtime.path in crhook.toml"
	path, err := p.h.Run.LookPath(name)
	if err != nil {
		return result(Fail, runtimeFix, fmt.Sprintf("%s is %q, not found: %v", where, name, err))
	}
	out := p.run(path, "--version")
	if out.Err != nil || out.Code != 0 {
		return result(Fail, runtimeFix, fmt.Sprintf("%s --version: %s", path, describe(out)))
	}
	first := firstLine(out.Stdout, "")
	v, ok := parseVersion(first)
	if !ok {
		return result(Warn, "", fmt.Sprintf("%s --version: no version in %q", path, first))
	}
	switch filepath.Base(path) {
	case "runc":
		return runcResult(path, v)
	case "crun":
		return p.crunResult(path, v, out.Stdout)
	}
	return result(Warn, runtimeFix, fmt.Sprintf("%s %s: not runc or crun; doctor cannot tell whether it passes org.criu.config to CRIU", path, v))
}

func runcResult(path string, v version) Result {
	if v.less(minRunc) {
		return result(Fail, "install runc 1.0.0 or later",
			fmt.Sprintf("%s is runc %s: it ignores org.criu.config (read since %s)", path, v, minRunc))
	}
	return result(OK, "", fmt.Sprintf("%s is runc %s: passes org.criu.config to CRIU (since %s)", path, v, minRunc),
		"runc runs the criu binary over RPC (criu swrk), so its CRIU support is the installed criu's")
}

// crunResult: crun needs CRIU support compiled in (+CRIU in --version),
// 1.26 or later, and a libcriu.so.2 it can dlopen() that has
// criu_set_config_file (CRIU 4.2): without it crun refuses org.criu.config
// ("libcriu RPC config files supported in CRIU >= 4.2"), and with no
// libcriu at all every checkpoint fails ("could not load libcriu.so.2").
func (p *probe) crunResult(path string, v version, versionOut string) Result {
	features := lastLine(versionOut, "")
	ev := []string{fmt.Sprintf("%s is crun %s; features: %s", path, v, features)}
	var fixes []string
	if !strings.Contains(" "+features+" ", " +CRIU ") {
		ev = append(ev, "built without CRIU support (no +CRIU): it cannot checkpoint at all")
		fixes = append(fixes, "a crun built with CRIU support (+CRIU)")
	} else if lib, syms, err := p.h.LibFor(path, "libcriu.so.2"); err != nil {
		ev = append(ev, fmt.Sprintf("crun loads libcriu.so.2 at checkpoint time and would find none: %v; every checkpoint fails with \"could not load `libcriu.so.2`\"", err))
		fixes = append(fixes, "libcriu2 from CRIU 4.2 or later")
	} else if !syms["criu_set_config_file"] {
		ev = append(ev, fmt.Sprintf("crun loads %s, which lacks criu_set_config_file (CRIU < 4.2): crun refuses org.criu.config", lib))
		fixes = append(fixes, "libcriu2 from CRIU 4.2 or later")
	} else {
		ev = append(ev, fmt.Sprintf("crun loads %s, which has criu_set_config_file (CRIU >= 4.2)", lib))
	}
	if v.less(minCrun) {
		ev = append(ev, fmt.Sprintf("crun < %s does not pass a CRIU config file", minCrun))
		fixes = append(fixes, fmt.Sprintf("crun %s or later", minCrun))
	}
	if c := p.criuInfo(); c.hasVersion && c.version.less(minLibcriu) {
		ev = append(ev, fmt.Sprintf("libcriu (CRIU %s) < %s", c.version, minLibcriu))
		fixes = append(fixes, "CRIU 4.2 or later")
	}
	if len(fixes) > 0 {
		return result(Fail, runtimeFix+", or install "+strings.Join(fixes, ", "), ev...)
	}
	return result(OK, "", append(ev, "passes the CRIU config file through libcriu: org.criu.config, else /etc/criu/crun.conf, else /etc/criu/runc.conf")...)
}
