package diagnose

import (
	"regexp"
	"strconv"
)

// The catalog: every known CRIU failure, as data. To add one, append an
// entry and a test log under testdata/logs (see testdata/logs/README.md).
//
// An entry is tried on every CRIU error or warning line of a log (lines with
// "Error (" or "Warn  (", which is how CRIU's pr_err and pr_warn start in
// criu/include/log.h). The first line an entry matches is its candidate; of
// all candidates the highest priority wins, and on a tie the earliest line,
// because CRIU stops at the first real failure and later errors are its
// consequences. Priorities put causes in the environment (CRIU or kernel
// unfit, SELinux, full disk) above the per-process ones, since an unfit
// environment makes every later error meaningless.
//
// Text in meanings and commands may use {name} for a named group of the
// matched pattern or for: container, op (criu's verb), podman_op and
// runc_op (checkpoint or restore), log, logdir, criu_version, kernel.
// Fixes that set a CRIU option are data (option, value), written per
// engine by fix.go; fixTemplate commands name the engines they are for.
// The catalog is built on first use (loadTables), not at init:
// crhook-runtime links this package, and compiling its patterns at start-up
// cost every pass-through call podman makes about 0.3 ms.
func catalogEntries() []entry {
	return []entry{
		{
			id: "criu-too-old", priority: 100,
			// criu/vdso.c: CRIU before 4.x does not know the vDSO/vvar layout
			// of recent kernels and fails in kerndat, before doing anything.
			match:   res(`Unexpected rt vDSO area bounds`),
			meaning: "This CRIU ({criu_version}) does not understand the vDSO layout of this kernel ({kernel}): it is older than the kernel and cannot checkpoint anything on it.",
			fixes:   []fixTemplate{{Scope: ScopeHost, Command: upgradeCRIU}},
		},
		{
			id: "criu-too-old", priority: 100,
			// criu/sockets.c do_dump_opt: CRIU 4.1 and older read SO_PASSCRED
			// (level 1, option 16) from every socket; since Linux 6.16 only
			// unix, netlink and bluetooth sockets have it (EOPNOTSUPP).
			match:   res(`Can't get 1:16 opt: Operation not supported`),
			meaning: "This CRIU ({criu_version}) reads SO_PASSCRED from every socket, which Linux 6.16 and later allow only on unix sockets: the CRIU is older than the kernel ({kernel}).",
			fixes:   []fixTemplate{{Scope: ScopeHost, Command: upgradeCRIU}},
		},
		{
			id: "no-checkpoint-restore", priority: 95,
			// kcmp(2) exists only with CONFIG_CHECKPOINT_RESTORE (which selects
			// CONFIG_KCMP); CRIU needs it to tell shared resources apart.
			match: res(
				`System call kcmp is not supported`,
				`kcmp(-epoll)? failed: .*Function not implemented`,
				`ns_last_pid sysctl is inaccessible`,
				`PR_SET_MM_MAP_SIZE is not supported`,
			),
			meaning: "The kernel ({kernel}) lacks system calls CRIU needs (kcmp, PR_SET_MM_MAP): it was built without CONFIG_CHECKPOINT_RESTORE.",
			fixes: []fixTemplate{{Scope: ScopeHost,
				Command: "grep CONFIG_CHECKPOINT_RESTORE /boot/config-$(uname -r)   # must be =y: boot a kernel built with it"}},
		},
		{
			id: "selinux", priority: 90,
			// criu/pie/restorer.c lsm_set_label: writing /proc/self/attr/current
			// is a dyntransition; -13 is -EACCES.
			match:   res(`can't write lsm profile -13`, `failed openat -13`),
			meaning: "SELinux denied the restored process the switch back to its container label (dyntransition), so CRIU cannot put it back in its domain.",
			fixes:   selinuxFixes,
		},
		{
			id: "selinux", priority: 90,
			// criu/lsm.c and criu/net.c around setsockcreatecon(3).
			match: res(
				`Unable to set the .* socket SELinux context: Permission denied`,
				`Setting SELinux socket context for PID \d+ failed: Permission denied`,
				`Unable to reset socket SELinux context: Permission denied`,
				`Resetting SELinux socket context to .*: Permission denied`,
			),
			meaning: "SELinux denied CRIU labelling the sockets it creates with the container's label (setsockcreatecon).",
			fixes:   selinuxFixes,
		},
		{
			id: "selinux", priority: 90,
			// The parasite inside the container connects back to CRIU's socket
			// (compel infect.c, daemon_connected = -errno). EACCES there is an
			// SELinux connectto denial only on an SELinux host, which CRIU's
			// "PID has lsm profile user:role:type" line reveals.
			match: res(
				`Unable to connect a transport socket: Permission denied`,
				`Can't connect the control socket`,
				`Can't connect .* socket: Permission denied`,
			),
			also:    regexp.MustCompile(`lsm profile (\(\w+\) )?\S+:\S+:\S+`),
			meaning: "SELinux denied a socket connection CRIU needs between the container and CRIU itself, so it cannot reach the frozen process.",
			fixes:   selinuxFixes,
		},
		{
			id: "no-space", priority: 85,
			match:   res(`No space left on device`, `Disk quota exceeded`),
			meaning: "The filesystem CRIU writes to is full (or over quota), so the images could not be written.",
			fixes: []fixTemplate{{Scope: ScopeHost,
				Command: "df -h {logdir}   # free space there, or checkpoint to another filesystem"}},
		},
		{
			id: "no-dirty-tracking", priority: 80,
			// criu/mem.c task_reset_dirty_track: BUG_ON(!kdat.has_dirty_track)
			// aborts CRIU 4.2.1 when pre-dump meets a kernel without
			// soft-dirty, after kerndat logged the missing support.
			match:   res(`BUG at criu/mem\.c:\d+`),
			also:    regexp.MustCompile(`Dirty tracking support is OFF`),
			meaning: dirtyMeaning,
			fixes:   dirtyFixes,
		},
		{
			id: "no-dirty-tracking", priority: 80,
			match: res(
				`Dirty tracking is OFF\. Memory snapshot will not work`,
				`Can't reset \d+'s dirty memory tracker`,
				// runc's own feature check for --pre-dump: it fails before
				// CRIU logs anything (podman container checkpoint -P).
				`CRIU is missing features`,
			),
			ops:     []string{OpPreDump, ""},
			meaning: dirtyMeaning,
			fixes:   dirtyFixes,
		},
		{
			id: "tcp-established", priority: 50,
			match:   res(`Connected TCP socket, consider using --tcp-established option`),
			meaning: "A process has an established TCP connection, and CRIU checkpoints those only when asked to: it then restores them with TCP repair, so the peer must still be there.",
			option:  "tcp-established",
		},
		{
			id: "tcp-established", priority: 50,
			match:   res(`Connected TCP socket in image`),
			meaning: "The checkpoint holds an established TCP connection, and CRIU restores it only when asked to (with TCP repair; the peer must still be there).",
			option:  "tcp-established",
		},
		{
			id: "shell-job", priority: 50,
			match: res(
				`The root process \d+ is not a session leader`,
				`Found dangling tty with sid`,
				`Found slave peer index \d+ without correspond master peer`,
				`Task attached to shell terminal`,
				`Don't have tty to inherit session from`,
			),
			meaning: "The process belongs to a session or terminal outside the dumped tree (it was started from a shell), and CRIU handles that only with shell-job, which re-attaches it to the restoring terminal.",
			option:  "shell-job",
		},
		{
			id: "file-locks", priority: 50,
			match:   res(`Some file locks are hold by dumping tasks`),
			meaning: "A process holds file locks (flock, POSIX or OFD), and CRIU dumps them only when asked to; the locked files must be the same on restore.",
			option:  "file-locks",
		},
		{
			id: "ext-unix-sk", priority: 50,
			match:   res(`External socket is used`, `External socket found in image`),
			meaning: "A unix socket is connected to a process outside the checkpointed tree, and CRIU handles such sockets only when asked to (and only datagram ones; the outside peer is not part of the checkpoint).",
			option:  "ext-unix-sk",
		},
		{
			id: "ghost-limit", priority: 50,
			match:   res(`Can't dump ghost file (?P<path>.*) of (?P<size>\d+) size, increase limit`),
			meaning: "A process keeps a deleted file open ({path}, {size} bytes), and CRIU copies deleted files into the image only up to ghost-limit (1M by default).",
			option:  "ghost-limit", value: "{limit}",
			derive: func(v map[string]string) {
				// Round up to whole MiB and then to a power of two so the
				// suggestion survives the file growing a little.
				size, _ := strconv.ParseUint(v["size"], 10, 64)
				mib := uint64(1)
				for mib<<20 < size {
					mib <<= 1
				}
				v["limit"] = strconv.FormatUint(mib, 10) + "M"
			},
		},
		{
			id: "link-remap", priority: 50,
			match:   res(`Can't create link remap for (?P<path>.*)\. Use link-remap option`),
			meaning: "A process keeps open a file whose name was removed while another hard link keeps it alive ({path}), and CRIU re-links such files only with link-remap.",
			option:  "link-remap",
		},
		{
			id: "pid-in-use", priority: 50,
			match:   res(`Can't fork for (?P<pid>\d+): File exists`),
			meaning: "Restore must give the process PID {pid}, but a running process already has that PID (often the original, still running after a checkpoint with leave-running).",
			fixes: []fixTemplate{{Scope: ScopeHost,
				Command: "ps -o pid,user,args -p {pid}   # stop it, then restore again"}},
		},
	}
}

const (
	upgradeCRIU  = "criu check   # install CRIU 4.2.1 or newer first; it must say \"Looks good.\""
	dirtyMeaning = "Pre-dump (podman's --pre-checkpoint, runc's --pre-dump) needs the kernel's soft-dirty memory tracking, and this kernel ({kernel}) has none."
)

var (
	selinuxFixes = []fixTemplate{
		{Scope: ScopeHost, Command: "ausearch -m AVC,USER_AVC -ts recent   # shows the denial"},
		{Scope: ScopeHost, Command: "semodule -l | grep -w crhook   # if missing, install crhook-selinux"},
	}
	dirtyFixes = []fixTemplate{
		{Scope: ScopeThisTime, Command: "podman container checkpoint {container}   # without --pre-checkpoint", engines: []Engine{EnginePodman}},
		{Scope: ScopeThisTime, Command: "runc checkpoint {container}   # without --pre-dump", engines: []Engine{EngineRunc}},
		{Scope: ScopeThisTime, Command: "criu dump ...   # instead of pre-dump", engines: []Engine{EngineCRIU}},
		{Scope: ScopeHost, Command: "criu check --feature mem_dirty_track   # passes on a kernel with CONFIG_MEM_SOFT_DIRTY=y"},
	}
)

// Diagnoses that no catalog entry makes.
const (
	ruleGeneric = "generic"
	ruleNoError = "no-error"
	ruleEmpty   = "empty-log"
	ruleNoLog   = "no-log"

	meaningGeneric = "CRIU failed with an error crhook has no catalog entry for; the first error quoted is usually the cause and the later ones its consequences."
	meaningNoError = "The log shows no CRIU error: the failure happened outside CRIU (see the runtime's message above), or CRIU was killed before it could log one."
	meaningEmpty   = "CRIU wrote nothing to its log: it never ran, or the runtime refused the operation before starting it (see the runtime's message above)."
	meaningNoLog   = "There is no readable CRIU log: CRIU did not start, or it logged elsewhere."
)

func res(patterns ...string) []*regexp.Regexp {
	out := make([]*regexp.Regexp, len(patterns))
	for i, p := range patterns {
		out[i] = regexp.MustCompile(p)
	}
	return out
}
