package doctor

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	"strings"
)

type kernelFacts struct {
	release    string // uname -r
	version    version
	hasVersion bool
	// config maps CONFIG_X to y, m or n ("# CONFIG_X is not set"); nil
	// when no config file was found.
	config map[string]string
	source string // where config came from
	tried  []string
}

// kernelInfo reads the release and the build config: /proc/config.gz
// (CONFIG_IKCONFIG_PROC), else /boot/config-RELEASE as distributions ship.
func (p *probe) kernelInfo() *kernelFacts {
	if p.kernelOnce {
		return &p.kernel
	}
	p.kernelOnce = true
	k := &p.kernel
	if data, err := p.h.readFile("/proc/sys/kernel/osrelease"); err == nil {
		k.release = strings.TrimSpace(string(data))
	} else if out := p.run("uname", "-r"); out.Err == nil && out.Code == 0 {
		k.release = strings.TrimSpace(out.Stdout)
	}
	k.version, k.hasVersion = parseVersion(k.release)

	k.tried = append(k.tried, "/proc/config.gz")
	if data, err := p.h.readFile("/proc/config.gz"); err == nil {
		if cfg, err := parseKernelConfig(data, true); err == nil {
			k.config, k.source = cfg, "/proc/config.gz"
			return k
		}
	}
	if k.release != "" {
		boot := "/boot/config-" + k.release
		k.tried = append(k.tried, boot)
		if data, err := p.h.readFile(boot); err == nil {
			if cfg, err := parseKernelConfig(data, false); err == nil {
				k.config, k.source = cfg, boot
			}
		}
	}
	return k
}

func parseKernelConfig(data []byte, gz bool) (map[string]string, error) {
	var r io.Reader = bytes.NewReader(data)
	if gz {
		zr, err := gzip.NewReader(r)
		if err != nil {
			return nil, fmt.Errorf("decompress kernel config: %w", err)
		}
		defer zr.Close()
		r = zr
	}
	cfg := map[string]string{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64*1024), 1024*1024)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if name, ok := strings.CutPrefix(line, "# "); ok && strings.HasSuffix(name, " is not set") {
			cfg[strings.TrimSuffix(name, " is not set")] = "n"
			continue
		}
		if k, v, ok := strings.Cut(line, "="); ok && strings.HasPrefix(k, "CONFIG_") {
			cfg[k] = strings.Trim(v, `"`)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read kernel config: %w", err)
	}
	return cfg, nil
}

// option renders CONFIG_X as the config file states it.
func (k *kernelFacts) option(name string) (value string, line string) {
	v, ok := k.config[name]
	switch {
	case !ok:
		return "", fmt.Sprintf("%s absent from %s", name, k.source)
	case v == "n":
		return v, fmt.Sprintf("# %s is not set (%s)", name, k.source)
	}
	return v, fmt.Sprintf("%s=%s (%s)", name, v, k.source)
}

func (k *kernelFacts) noConfig() string {
	return "no kernel config in " + strings.Join(k.tried, " or ")
}

func checkCheckpointRestore(p *probe) Result {
	k := p.kernelInfo()
	const fix = "boot a kernel built with CONFIG_CHECKPOINT_RESTORE=y (every major distribution kernel has it)"
	if k.config != nil {
		v, line := k.option("CONFIG_CHECKPOINT_RESTORE")
		if v == "y" {
			return result(OK, "", line)
		}
		return result(Fail, fix, line, "CRIU cannot dump or restore anything without it")
	}
	// ns_last_pid exists only in kernels built with CHECKPOINT_RESTORE.
	if p.h.exists("/proc/sys/kernel/ns_last_pid") {
		return result(OK, "", k.noConfig(), "/proc/sys/kernel/ns_last_pid exists (only with CONFIG_CHECKPOINT_RESTORE)")
	}
	return result(Fail, fix, k.noConfig(), "/proc/sys/kernel/ns_last_pid is missing: the kernel lacks CONFIG_CHECKPOINT_RESTORE")
}

func checkNamespaces(p *probe) Result {
	k := p.kernelInfo()
	const fix = "boot a kernel built with CONFIG_NAMESPACES, CONFIG_PID_NS and CONFIG_NET_NS"
	if k.config != nil {
		var ev []string
		missing := false
		for _, name := range []string{"CONFIG_NAMESPACES", "CONFIG_PID_NS", "CONFIG_NET_NS"} {
			v, line := k.option(name)
			ev = append(ev, line)
			missing = missing || v != "y"
		}
		if missing {
			return result(Fail, fix, append(ev, "podman containers need PID and network namespaces")...)
		}
		return result(OK, "", ev...)
	}
	var missing []string
	for _, ns := range []string{"mnt", "pid", "net", "ipc", "uts"} {
		if !p.h.exists("/proc/self/ns/" + ns) {
			missing = append(missing, ns)
		}
	}
	if len(missing) > 0 {
		return result(Fail, fix, k.noConfig(), "/proc/self/ns lacks "+strings.Join(missing, ", "))
	}
	return result(OK, "", k.noConfig(), "/proc/self/ns has mnt, pid, net, ipc, uts")
}

func checkUserfaultfd(p *probe) Result {
	return p.optionalFeature("CONFIG_USERFAULTFD", "uffd",
		"lazy restore and post-copy migration (criu lazy-pages, restore --lazy-pages) will fail; plain restore works",
		"boot a kernel built with CONFIG_USERFAULTFD=y if you need lazy restore")
}

func checkSoftDirty(p *probe) Result {
	return p.optionalFeature("CONFIG_MEM_SOFT_DIRTY", "mem_dirty_track",
		"pre-copy will fail (criu pre-dump, podman container checkpoint --pre-checkpoint); full checkpoints work",
		"boot a kernel built with CONFIG_MEM_SOFT_DIRTY=y (x86_64, arm64, ppc64, s390) if you need pre-copy")
}

// optionalFeature checks a kernel feature that only some modes of
// checkpoint/restore need: missing is a warning, with what it costs.
// Without a config file, CRIU's own probe answers.
func (p *probe) optionalFeature(option, feature, cost, fix string) Result {
	k := p.kernelInfo()
	if k.config != nil {
		v, line := k.option(option)
		if v == "y" {
			return result(OK, "", line)
		}
		return result(Warn, fix, line, cost)
	}
	c := p.criuInfo()
	if c.path == "" {
		return result(Skip, "install CRIU so doctor can probe the kernel", k.noConfig(), "no criu to ask: "+c.lookErr)
	}
	if p.h.Euid != 0 {
		return result(Skip, "run crhook doctor as root", k.noConfig(), "criu check --feature needs root")
	}
	out := p.run(c.path, "check", "--feature", feature)
	cmd := "criu check --feature " + feature
	switch {
	case out.Err != nil:
		return result(Skip, "", k.noConfig(), fmt.Sprintf("%s: %v", cmd, out.Err))
	case out.Code == 0:
		return result(OK, "", k.noConfig(), cmd+": "+firstLine(out.Stdout, "supported"))
	}
	return result(Warn, fix, k.noConfig(), fmt.Sprintf("%s: exit %d: %s", cmd, out.Code, firstLine(out.Stderr+out.Stdout, "not supported")), cost)
}

// firstLine returns the first non-empty line of s, or def.
func firstLine(s, def string) string {
	for _, l := range strings.Split(s, "\n") {
		if l = strings.TrimSpace(l); l != "" {
			return l
		}
	}
	return def
}
