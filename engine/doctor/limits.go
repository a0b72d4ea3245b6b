package doctor

import (
	"bufio"
	"fmt"
	"strconv"
	"strings"
)

// capSysResource is CAP_SYS_RESOURCE's bit in CapEff: without it no
// process may raise a hard rlimit, and runc fails to apply a container's
// rlimits above the host's ("error setting rlimit type 7").
const capSysResource = 24

// podmanDefaultRlimit is what podman 4 (run as root) puts in the spec for
// nofile and nproc when neither --ulimit nor default_ulimits sets them
// (define.RLimitDefaultValue).
const podmanDefaultRlimit = 1048576

// rlimitRow names /proc/self/limits rows by podman's ulimit names.
var rlimitRow = map[string]string{
	"nofile":     "Max open files",
	"nproc":      "Max processes",
	"core":       "Max core file size",
	"memlock":    "Max locked memory",
	"stack":      "Max stack size",
	"nice":       "Max nice priority",
	"rtprio":     "Max realtime priority",
	"sigpending": "Max pending signals",
	"msgqueue":   "Max msgqueue size",
	"fsize":      "Max file size",
	"cpu":        "Max cpu time",
	"as":         "Max address space",
	"data":       "Max data size",
	"rss":        "Max resident set",
	"locks":      "Max file locks",
}

type ulimit struct {
	name       string
	soft, hard uint64
	unlimited  bool
	from       string
}

func checkRlimits(p *probe) Result {
	capEff, err := p.capEff()
	if err != nil {
		return result(Skip, "", err.Error())
	}
	if capEff&(1<<capSysResource) != 0 {
		return result(OK, "", fmt.Sprintf("CapEff %016x has CAP_SYS_RESOURCE: the runtime may raise any rlimit", capEff))
	}
	hard, err := p.hardLimits()
	if err != nil {
		return result(Skip, "", err.Error())
	}
	ev := []string{fmt.Sprintf("CapEff %016x lacks CAP_SYS_RESOURCE (bit %d): no rlimit can exceed the hard limits of /proc/self/limits", capEff, capSysResource)}
	var over, drop []string
	for _, u := range p.defaultUlimits(&ev) {
		max, ok := hard[u.name]
		if !ok {
			continue
		}
		if u.unlimited || u.hard > max || u.soft > max {
			ev = append(ev, fmt.Sprintf("%s=%d:%d (%s) exceeds the hard limit %d", u.name, u.soft, u.hard, u.from, max))
			over = append(over, u.name)
			drop = append(drop, fmt.Sprintf(`"%s=%d:%d"`, u.name, max, max))
		} else {
			ev = append(ev, fmt.Sprintf("%s=%d:%d (%s) within the hard limit %d", u.name, u.soft, u.hard, u.from, max))
		}
	}
	if len(over) == 0 {
		return result(OK, "", ev...)
	}
	fix := fmt.Sprintf(`every container started without --ulimit fails with "error setting rlimit": printf '[containers]\ndefault_ulimits = [%s]\n' > /etc/containers/containers.conf.d/60-ulimits.conf, or pass --ulimit %s=N:N to podman run`,
		strings.Join(drop, ", "), over[0])
	return result(Fail, fix, ev...)
}

// defaultUlimits are the rlimits a container gets without --ulimit:
// containers.conf default_ulimits, and podman's own nofile and nproc.
func (p *probe) defaultUlimits(ev *[]string) []ulimit {
	conf := p.containersConf()
	*ev = append(*ev, confErrors(conf)...)
	var out []ulimit
	seen := map[string]bool{}
	for _, s := range conf.ulimits {
		u, err := parseUlimit(s)
		if err != nil {
			*ev = append(*ev, fmt.Sprintf("%s: %v", conf.ulimitsFrom, err))
			continue
		}
		u.from = "default_ulimits in " + conf.ulimitsFrom
		out = append(out, u)
		seen[u.name] = true
	}
	for _, name := range []string{"nofile", "nproc"} {
		if !seen[name] {
			out = append(out, ulimit{name: name, soft: podmanDefaultRlimit, hard: podmanDefaultRlimit, from: "podman's default"})
		}
	}
	return out
}

// parseUlimit reads podman's "name=soft[:hard]" syntax; -1 is unlimited.
func parseUlimit(s string) (ulimit, error) {
	name, val, ok := strings.Cut(s, "=")
	if !ok {
		return ulimit{}, fmt.Errorf("ulimit %q: want name=soft[:hard]", s)
	}
	u := ulimit{name: strings.TrimSpace(name)}
	softS, hardS, hasHard := strings.Cut(val, ":")
	if !hasHard {
		hardS = softS
	}
	for _, f := range []struct {
		s   string
		dst *uint64
	}{{softS, &u.soft}, {hardS, &u.hard}} {
		if strings.TrimSpace(f.s) == "-1" {
			u.unlimited = true
			*f.dst = ^uint64(0)
			continue
		}
		n, err := strconv.ParseUint(strings.TrimSpace(f.s), 10, 64)
		if err != nil {
			return ulimit{}, fmt.Errorf("ulimit %q: %w", s, err)
		}
		*f.dst = n
	}
	return u, nil
}

func (p *probe) capEff() (uint64, error) {
	data, err := p.h.readFile("/proc/self/status")
	if err != nil {
		return 0, fmt.Errorf("read capabilities: %w", err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, "CapEff:"); ok {
			n, err := strconv.ParseUint(strings.TrimSpace(v), 16, 64)
			if err != nil {
				return 0, fmt.Errorf("parse CapEff in /proc/self/status: %w", err)
			}
			return n, nil
		}
	}
	return 0, fmt.Errorf("no CapEff line in /proc/self/status")
}

// hardLimits reads the hard column of /proc/self/limits, keyed by podman's
// ulimit names. The runtime inherits podman's limits, which are the
// session's: the ones doctor runs with when started from the same shell.
func (p *probe) hardLimits() (map[string]uint64, error) {
	data, err := p.h.readFile("/proc/self/limits")
	if err != nil {
		return nil, fmt.Errorf("read rlimits: %w", err)
	}
	byRow := map[string]string{}
	for name, row := range rlimitRow {
		byRow[row] = name
	}
	out := map[string]uint64{}
	sc := bufio.NewScanner(strings.NewReader(string(data)))
	for sc.Scan() {
		line := sc.Text()
		for row, name := range byRow {
			rest, ok := strings.CutPrefix(line, row)
			if !ok {
				continue
			}
			f := strings.Fields(rest)
			if len(f) < 2 {
				continue
			}
			if f[1] == "unlimited" {
				out[name] = ^uint64(0)
			} else if n, err := strconv.ParseUint(f[1], 10, 64); err == nil {
				out[name] = n
			}
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no limits found in /proc/self/limits")
	}
	return out, nil
}
