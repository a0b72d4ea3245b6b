package doctor

import (
	"fmt"
	"strconv"
	"strings"
)

// The migrate.* checks answer whether `crhook migrate` can use each of its
// modes here. None of them is a failure: a host where they warn still
// checkpoints and restores, and still migrates by stop-and-copy or
// stream; the warning names the mode that is lost. doctor's Fail means
// "checkpoint/restore will fail" (report.go), which is not the case.

// lazyPipeSize is the pipe size a lazy dump's page server needs: CRIU
// moves up to 4 MiB per page request through one pipe (uffd.c
// MAX_XFER_LEN "matches the maximal chunk size we can have in a pipe in
// the page-server"), grows the pipe with F_SETPIPE_SZ and ignores the
// failure (page-xfer.c); without CAP_SYS_RESOURCE the kernel caps that
// at fs.pipe-max-size (1 MiB by default), and the first request fails
// with "page-pipe: splice: -1: Bad file descriptor" / "Lazy pages
// transfer FAILED". Measured on this project's test machine.
const lazyPipeSize = 4 << 20

// lazyPipeDropIn is the sysctl.d file the fix writes, so the setting
// survives a reboot.
const lazyPipeDropIn = "/etc/sysctl.d/60-crhook-migrate.conf"

// criuFeature runs `criu check --feature name`, CRIU's own probe for what
// a dump or restore mode needs (cr-check.c). skip is non-nil when the probe
// could not run; otherwise ok tells whether CRIU answered exit 0, and line
// is what it said, for the evidence.
func (p *probe) criuFeature(name string) (ok bool, line string, skip *Result) {
	c := p.criuInfo()
	if c.path == "" || c.runErr != "" {
		r := result(Skip, "", "no working criu (see criu.binary)")
		return false, "", &r
	}
	if p.h.Euid != 0 {
		r := result(Skip, "run crhook doctor as root", "criu check --feature needs root")
		return false, "", &r
	}
	cmd := "criu check --feature " + name
	out := p.run(c.path, "check", "--feature", name)
	switch {
	case out.Err != nil:
		r := result(Skip, "", fmt.Sprintf("%s: %v", cmd, out.Err))
		return false, "", &r
	case out.Code == 0:
		return true, cmd + ": " + firstLine(out.Stdout, "exit status 0"), nil
	}
	return false, fmt.Sprintf("%s: exit status %d: %s", cmd, out.Code, firstLine(out.Stderr+out.Stdout, "no output")), nil
}

// checkMigrateUffd: lazy (post-copy) restore needs userfaultfd with the
// non-cooperative events, because CRIU's lazy-pages daemon opens it
// asking for fork, mremap, munmap and madvise(REMOVE) events
// (uffd.c NEED_UFFD_API_FEATURES) to follow a container that keeps
// running while its pages arrive. vm.unprivileged_userfaultfd is shown
// but not judged: it restricts only callers without CAP_SYS_PTRACE, and
// CRIU runs as root.
func checkMigrateUffd(p *probe) Result {
	const cost = "crhook migrate --mode lazy (post-copy) will not work here; stream and stop-and-copy migration still work"
	const fix = "boot a kernel built with CONFIG_USERFAULTFD=y (4.11 or later for the non-cooperative events); " +
		"if it has it, look for a seccomp profile or LSM denying userfaultfd(2) to the runtime"
	ok, line, skip := p.criuFeature("uffd")
	if skip != nil {
		return *skip
	}
	ev := []string{line}
	if !ok {
		return result(Warn, fix, append(ev, cost)...)
	}
	ok, line, skip = p.criuFeature("uffd-noncoop")
	if skip != nil {
		return *skip
	}
	ev = append(ev, line)
	if !ok {
		return result(Warn, fix, append(ev, "CRIU's lazy-pages daemon needs the fork/remap/unmap/remove events (uffd.c NEED_UFFD_API_FEATURES)", cost)...)
	}
	if data, err := p.h.readFile("/proc/sys/vm/unprivileged_userfaultfd"); err == nil {
		ev = append(ev, fmt.Sprintf("vm.unprivileged_userfaultfd = %s (not needed: it limits only unprivileged callers, CRIU runs as root)", strings.TrimSpace(string(data))))
	}
	return result(OK, "", ev...)
}

// checkMigrateLazyPipe: the source's page server of a lazy dump needs
// 4 MiB pipes (lazyPipeSize). Doctor's own CapEff stands for the
// runtime's, as in limits.rlimits: podman starts the runtime with the
// capabilities of the session doctor runs in.
func checkMigrateLazyPipe(p *probe) Result {
	capEff, err := p.capEff()
	if err != nil {
		return result(Skip, "", err.Error())
	}
	if capEff&(1<<capSysResource) != 0 {
		return result(OK, "", fmt.Sprintf("CapEff %016x has CAP_SYS_RESOURCE: CRIU may grow its page pipes past fs.pipe-max-size", capEff))
	}
	ev := []string{fmt.Sprintf("CapEff %016x lacks CAP_SYS_RESOURCE (bit %d): CRIU's pipes are capped at fs.pipe-max-size", capEff, capSysResource)}
	fix := fmt.Sprintf("sysctl -w fs.pipe-max-size=%d, and keep it across reboots: echo 'fs.pipe-max-size = %d' > %s",
		lazyPipeSize, lazyPipeSize, lazyPipeDropIn)
	data, err := p.h.readFile("/proc/sys/fs/pipe-max-size")
	if err != nil {
		return result(Skip, "", append(ev, fmt.Sprintf("read fs.pipe-max-size: %v", err))...)
	}
	raw := strings.TrimSpace(string(data))
	n, err := strconv.ParseUint(raw, 10, 64)
	if err != nil {
		return result(Skip, "", append(ev, fmt.Sprintf("/proc/sys/fs/pipe-max-size is %q, not a number", raw))...)
	}
	if n >= lazyPipeSize {
		return result(OK, "", append(ev, fmt.Sprintf("fs.pipe-max-size = %d >= %d: lazy dumps can fill their 4 MiB page pipes", n, lazyPipeSize))...)
	}
	return result(Warn, fix, append(ev,
		fmt.Sprintf("fs.pipe-max-size = %d < %d", n, lazyPipeSize),
		`a lazy dump (crhook migrate --mode lazy, runc checkpoint --lazy-pages) fails at the first page request: "page-pipe: splice: -1: Bad file descriptor", "Lazy pages transfer FAILED" (CRIU ignores the failed pipe resize, page-xfer.c)`)...)
}

// checkMigrateSoftDirty asks CRIU, not the kernel config (that is
// kernel.mem_soft_dirty): CRIU's probe also sees a kernel that has the
// option but a hypervisor or arch that does not track.
func checkMigrateSoftDirty(p *probe) Result {
	ok, line, skip := p.criuFeature("mem_dirty_track")
	if skip != nil {
		return *skip
	}
	if ok {
		return result(OK, "", line, "pre-copy (crhook migrate --mode precopy, criu pre-dump) can track dirty pages")
	}
	return result(Warn, "boot a kernel built with CONFIG_MEM_SOFT_DIRTY=y on hardware that tracks dirty pages (x86_64, arm64, ppc64le, s390x) if you need pre-copy",
		line, "pre-copy (crhook migrate --mode precopy, criu pre-dump) is unavailable; lazy and stream migration still work, and --mode auto will not pick pre-copy")
}

// criuTLSFix says how to get a CRIU with TLS. CRIU's Makefile builds
// with gnutls (CONFIG_GNUTLS) whenever its headers are installed; without
// it `criu --tls` stops with "CRIU was built without TLS support".
const criuTLSFix = "install a CRIU built with gnutls (Debian's, Fedora's and Ubuntu's criu packages are); " +
	"building CRIU from source, install libgnutls28-dev (Debian) or gnutls-devel (Fedora) first, " +
	"rebuild (make criu) and check with: ldd $(command -v criu) | grep libgnutls"

// checkMigrateTLS reads CRIU's DT_NEEDED, as criu.selinux does: the only
// answer CRIU gives at run time is an error message of `criu --tls`, and
// its --help lists the --tls options whether or not they work.
func checkMigrateTLS(p *probe) Result {
	c, skip := p.criuLinks("libgnutls.so")
	if skip != nil {
		return *skip
	}
	libs := c.libs
	if c.linked != "" {
		return result(OK, "", fmt.Sprintf("%s needs %s: --tls, --tls-cacert, --tls-cert and --tls-key work", c.path, c.linked))
	}
	const cost = "crhook migrate encrypts and authenticates page-server traffic with CRIU's --tls and will not run a page server without it: stream, lazy and pre-copy migration will not work here"
	if len(libs) == 0 {
		return result(Warn, criuTLSFix,
			fmt.Sprintf("%s needs no shared library (static?): cannot tell whether it has gnutls", c.path), cost)
	}
	return result(Warn, criuTLSFix,
		fmt.Sprintf("%s does not link libgnutls (DT_NEEDED: %s)", c.path, strings.Join(libs, " ")), cost)
}
