package doctor

import (
	"fmt"
	"strings"
	"sync"
)

// minContainerSELinux allows container_domain to write
// sysctl_kernel_ns_last_pid_t, which CRIU's restorer needs on kernels
// without clone3 set_tid (container-selinux 2.96 changelog;
// containers/container-selinux#71).
var minContainerSELinux = sync.OnceValue(func() version { return mustVersion("2.96") })

type selinuxFacts struct {
	enabled   bool
	enforcing bool
	evidence  string
	// modules installed (semodule -l), nil when it could not be listed.
	modules    map[string]bool
	modulesErr string
}

// selinuxInfo reads selinuxfs, the kernel's own answer: SELinux is active
// exactly when /sys/fs/selinux/enforce exists.
func (p *probe) selinuxInfo() *selinuxFacts {
	if p.selOnce {
		return &p.sel
	}
	p.selOnce = true
	s := &p.sel
	data, err := p.h.readFile("/sys/fs/selinux/enforce")
	if err != nil {
		s.evidence = "no /sys/fs/selinux/enforce: SELinux is not active"
		if v, _ := p.kernelInfo().option("CONFIG_SECURITY_SELINUX"); v == "y" {
			s.evidence += " (the kernel has CONFIG_SECURITY_SELINUX=y, but no policy is loaded)"
		}
		return s
	}
	s.enabled = true
	s.enforcing = strings.TrimSpace(string(data)) == "1"
	mode := "permissive"
	if s.enforcing {
		mode = "enforcing"
	}
	s.evidence = fmt.Sprintf("/sys/fs/selinux/enforce = %s: SELinux is %s", strings.TrimSpace(string(data)), mode)
	out := p.run("semodule", "-l")
	if out.Err != nil || out.Code != 0 {
		s.modulesErr = "semodule -l: " + describe(out)
		return s
	}
	s.modules = map[string]bool{}
	for _, line := range strings.Split(out.Stdout, "\n") {
		if f := strings.Fields(line); len(f) > 0 {
			s.modules[f[0]] = true
		}
	}
	return s
}

func checkSELinuxStatus(p *probe) Result {
	s := p.selinuxInfo()
	if !s.enabled {
		return result(Skip, "", s.evidence)
	}
	return result(OK, "", s.evidence)
}

const containerSELinuxFix = "install container-selinux 2.96 or later (dnf install container-selinux)"

func checkContainerPolicy(p *probe) Result {
	s := p.selinuxInfo()
	switch {
	case !s.enabled:
		return result(Skip, "", "SELinux is not active")
	case s.modules == nil:
		return result(Warn, containerSELinuxFix, s.modulesErr)
	case !s.modules["container"]:
		return result(Fail, containerSELinuxFix, "semodule -l lists no container module: container_t and container_runtime_t are undefined")
	}
	ver, from := p.packageVersion("container-selinux")
	if ver == "" {
		return result(Warn, containerSELinuxFix, "container module installed; its package version is unknown: "+from)
	}
	v, ok := parseVersion(ver)
	switch {
	case !ok:
		return result(Warn, containerSELinuxFix, fmt.Sprintf("container-selinux %q (%s): not a version", ver, from))
	case v.less(minContainerSELinux()):
		return result(Fail, containerSELinuxFix, fmt.Sprintf("container-selinux %s (%s) < %s: restored tasks may not write /proc/sys/kernel/ns_last_pid", ver, from, minContainerSELinux()))
	}
	return result(OK, "", fmt.Sprintf("container-selinux %s (%s) >= %s: has the ns_last_pid rule", ver, from, minContainerSELinux()))
}

// packageVersion asks rpm, then dpkg, for an installed package's version.
func (p *probe) packageVersion(pkg string) (ver, from string) {
	var tried []string
	for _, q := range [][]string{
		{"rpm", "-q", "--qf", "%{VERSION}", pkg},
		{"dpkg-query", "-W", "-f", "${Version}", pkg},
	} {
		out := p.run(q[0], q[1:]...)
		if out.Err == nil && out.Code == 0 && strings.TrimSpace(out.Stdout) != "" {
			return strings.TrimSpace(out.Stdout), q[0]
		}
		tried = append(tried, q[0]+": "+describe(out))
	}
	return "", strings.Join(tried, "; ")
}

func checkCrhookModule(p *probe) Result {
	s := p.selinuxInfo()
	const fix = "install the crhook-selinux package, or: make -f selinuxpolicy/selinux.mk selinux && semodule -i selinuxpolicy/crhook.pp.bz2"
	switch {
	case !s.enabled:
		return result(Skip, "", "SELinux is not active")
	case s.modules == nil:
		return result(Warn, fix, s.modulesErr)
	case !s.modules["crhook"]:
		return result(Fail, fix, "semodule -l lists no crhook module: the runtime cannot read crhook's files under their labels")
	}
	return result(OK, "", "semodule -l lists crhook")
}
