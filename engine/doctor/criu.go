package doctor

import (
	"fmt"
	"strings"
)

type criuFacts struct {
	path       string
	lookErr    string
	versionRaw string
	version    version
	hasVersion bool
	runErr     string // criu --version did not work
}

// criuInfo finds criu the way runc does (the first in PATH) and asks its
// version once for every check that needs it.
func (p *probe) criuInfo() *criuFacts {
	if p.criuOnce {
		return &p.criu
	}
	p.criuOnce = true
	c := &p.criu
	path, err := p.h.Run.LookPath("criu")
	if err != nil {
		c.lookErr = fmt.Sprintf("criu not found in PATH=%s", p.h.Getenv("PATH"))
		return c
	}
	c.path = path
	out := p.run(path, "--version")
	if out.Err != nil || out.Code != 0 {
		c.runErr = fmt.Sprintf("%s --version: %s", path, describe(out))
		return c
	}
	c.versionRaw = firstLine(out.Stdout, "")
	c.version, c.hasVersion = parseVersion(c.versionRaw)
	return c
}

// describe summarises a failed command for the evidence column.
func describe(out Output) string {
	if out.Err != nil {
		return out.Err.Error()
	}
	msg := firstLine(out.Stderr, firstLine(out.Stdout, "no output"))
	return fmt.Sprintf("exit status %d: %s", out.Code, msg)
}

func checkCRIUBinary(p *probe) Result {
	c := p.criuInfo()
	k := p.kernelInfo()
	fix := criuFix(k.version, k.hasVersion, p.h.Arch)
	switch {
	case c.path == "":
		return result(Fail, fix, c.lookErr)
	case c.runErr != "":
		return result(Fail, fix, c.runErr)
	case !c.hasVersion:
		return result(Warn, "", c.path, fmt.Sprintf("cannot read a version in %q", c.versionRaw))
	}
	return result(OK, "", c.path+": "+c.versionRaw)
}

func checkCRIUCheck(p *probe) Result {
	c := p.criuInfo()
	if c.path == "" || c.runErr != "" {
		return result(Skip, "", "no working criu (see criu.binary)")
	}
	if p.h.Euid != 0 {
		return result(Skip, "run crhook doctor as root", "criu check needs root")
	}
	out := p.run(c.path, "check")
	if out.Err == nil && out.Code == 0 {
		ev := []string{c.path + " check: " + lastLine(out.Stdout, "exit status 0")}
		return result(OK, "", append(ev, prefixed(out.Stderr, "Warn", 3)...)...)
	}
	k := p.kernelInfo()
	head := fmt.Sprintf("%s check (CRIU %s, kernel %s): ", c.path, c.version, k.release)
	errs := prefixed(out.Stderr+out.Stdout, "Error", 4)
	if out.Err != nil || len(errs) == 0 {
		head += describe(out)
	} else {
		head += fmt.Sprintf("exit status %d", out.Code)
	}
	ev := append([]string{head}, errs...)
	return result(Fail, criuFix(k.version, k.hasVersion, p.h.Arch), ev...)
}

func checkKnownBad(p *probe) Result {
	c := p.criuInfo()
	k := p.kernelInfo()
	switch {
	case !c.hasVersion:
		return result(Skip, "", "no CRIU version to compare (see criu.binary)")
	case !k.hasVersion:
		return result(Skip, "", fmt.Sprintf("cannot read the kernel release %q", k.release))
	}
	rows := knownBadFor(c.version, k.version, p.h.Arch)
	if len(rows) == 0 {
		return result(OK, "", fmt.Sprintf("CRIU %s on kernel %s (%s): none of the %d known-bad combinations applies",
			c.version, k.release, p.h.Arch, len(knownBadTable)))
	}
	var ev []string
	for _, row := range rows {
		ev = append(ev, fmt.Sprintf("CRIU %s < %d.%d on kernel %s >= %s: %s [%s]", c.version,
			row.criuFixed.nums[0], row.criuFixed.nums[1], k.release, row.kernelFrom, row.symptom, row.evidence))
	}
	return result(Fail, criuFix(k.version, true, p.h.Arch), ev...)
}

// prefixed returns up to n lines of s that start with prefix (CRIU's
// "Error (file:line): ..." and "Warn  (...)" lines).
func prefixed(s, prefix string, n int) []string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if l = strings.TrimSpace(l); strings.HasPrefix(l, prefix) && len(out) < n {
			out = append(out, l)
		}
	}
	return out
}

func lastLine(s, def string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if l := strings.TrimSpace(lines[len(lines)-1]); l != "" {
		return l
	}
	return def
}
