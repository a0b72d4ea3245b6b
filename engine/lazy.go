package engine

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	migrate "github.com/crhook/crhook/engine/migrate/plan" // the plan only: engine/migrate links net/url
)

// Files of one migration's run directory (MigrationDir), where the shim
// leaves the detached CRIU processes' traces for the orchestrator: it
// outlives podman's `runtime delete`, which removes the container's state.
const (
	// PageServerRC (source) holds runc checkpoint's exit status once the
	// lazy page server has finished; absent while it serves.
	PageServerRC = "page-server.rc"
	// PageServerOut is runc checkpoint's output.
	PageServerOut = "page-server.out"
	// LazyPagesRC (destination) holds `criu lazy-pages`' exit status.
	LazyPagesRC = "lazy-pages.rc"
	// LazyPagesOut is its output; LazyPagesLog is CRIU's log.
	LazyPagesOut = "lazy-pages.out"
	LazyPagesLog = "lazy-pages.log"
	// DeleteArgv (source) is the runtime command line, as JSON, that
	// deletes the dumped tasks kept for the migration (keepForMigration)
	// once it failed after the destination ran.
	DeleteArgv = "delete.json"
	// PGID holds the process group of the detached supervisor: killing
	// that group stops the page server or the lazy-pages daemon.
	PGID = "pgid"
)

// MigrationDir is the run directory of migration migID on a host whose
// crhook state directory is stateDir. The plan's MigrationID is a
// validated file name.
func MigrationDir(stateDir, migID string) string {
	return filepath.Join(stateDir, "migrations", migID)
}

// migration runs the checkpoint or restore of a container that has a
// migration plan. ok is false when it has none (an ordinary checkpoint
// or restore). A plan that cannot be read or trusted fails the command:
// never an ordinary checkpoint in a migration's place.
func (r *runner) migration(id string) (code int, ok bool) {
	p, err := ReadPlan(r.settings.StateDir, id)
	if err == nil && p == nil {
		return 0, false
	}
	if err == nil {
		err = migrationRuntime(p.Mode, r.rt.Path())
	}
	if err != nil {
		fmt.Fprintf(r.stderr, "crhook: %s of container %s refused: %v\n", r.inv.cmd, id, err)
		return 1, true
	}
	switch {
	case p.Status == migrate.StatusFailed && r.inv.cmd == "restore":
		return r.rollbackRestore(id, p), true
	case p.Mode == migrate.ModePrecopy && r.inv.cmd == "checkpoint" && r.inv.hasFlag("--pre-dump"):
		return r.precopyPreDump(id, p), true
	case p.Mode == migrate.ModePrecopy && r.inv.cmd == "checkpoint":
		return r.precopyCheckpoint(id, p), true
	case p.Mode == migrate.ModePrecopy:
		return r.precopyRestore(id, p), true
	case p.Mode == migrate.ModeStream && r.inv.cmd == "checkpoint":
		return r.streamCheckpoint(id, p), true
	case p.Mode == migrate.ModeStream:
		return r.streamRestore(id, p), true
	case r.inv.cmd == "checkpoint":
		return r.lazyCheckpoint(id, p), true
	}
	return r.lazyRestore(id, p), true
}

// migrationRuntime refuses a plan the shim cannot carry out with the
// wrapped runtime.
func migrationRuntime(mode migrate.Mode, runtimePath string) error {
	switch {
	case mode != migrate.ModeLazy && mode != migrate.ModeStream && mode != migrate.ModePrecopy:
		return fmt.Errorf("migration mode %s is not built into crhook-runtime; lazy, stream and precopy are", mode)
	case mode == migrate.ModeLazy && KindOf(runtimePath) != Runc:
		return fmt.Errorf("%s has no lazy pages: set runtime.path to runc for `crhook migrate --mode lazy`", runtimePath)
	case mode == migrate.ModePrecopy && KindOf(runtimePath) != Runc:
		// Pre-dump rounds need soft-dirty tracking, which only the guest
		// lane has, and it runs runc: crun's pre-dumps into a page server
		// are not verified, so they are refused.
		return fmt.Errorf("%s: pre-copy rounds are verified with runc only; set runtime.path to runc for `crhook migrate --mode precopy`, or use --mode stream", runtimePath)
	}
	return nil
}

// keepForMigration is asked at `delete`: podman deletes the container
// right after its checkpoint, but the dumped tasks (frozen) are the only
// copy of the container that a failure before the destination runs can
// bring back: a lazy page server holds the pages only in pipes, gone
// when it dies, and a streamed dump left them on the destination. They
// stay until the migration ends; runc destroys them itself once a lazy
// page server served every page, the orchestrator deletes them when a
// stream commits (DeleteArgv), and a rollback dumps them anew. Anything unreadable, or a
// plan older than the migration's total timeout, lets the delete go on:
// crhook never blocks stopping a container for good.
func (r *runner) keepForMigration(id string) bool {
	p, err := ReadPlan(r.settings.StateDir, id)
	if err != nil || p == nil || p.Status != migrate.StatusServing {
		return false
	}
	// Held no longer than the migration may last: an orchestrator that
	// died must not make the container undeletable.
	path, _ := PlanPath(r.settings.StateDir, id)
	if fi, err := os.Stat(path); err != nil || time.Since(fi.ModTime()) > time.Duration(p.Timeouts.Total) {
		return false
	}
	fmt.Fprintf(r.stderr, "crhook: container %s is dumped for migration %s (mode %s); its frozen tasks stay until the migration commits or rolls back\n",
		ShortID(id), p.MigrationID, p.Mode)
	return true
}

// rollbackRestore brings a container back on the source after a
// migration failed before the destination ran. Its dumped tasks are still
// there, frozen (keepForMigration): stop what is left of the page server,
// dump them again, fully, into a fresh image directory, and restore from
// it as an ordinary restore.
func (r *runner) rollbackRestore(id string, p *migrate.Plan) int {
	fail := func(err error) int {
		fmt.Fprintf(r.stderr, "crhook: rollback of container %s after migration %s failed: %v\n", id, p.MigrationID, err)
		return 1
	}
	dir := MigrationDir(r.settings.StateDir, p.MigrationID)
	if data, err := os.ReadFile(filepath.Join(dir, PGID)); err == nil {
		if pgid, err := strconv.Atoi(strings.TrimSpace(string(data))); err == nil && pgid > 1 {
			_ = syscall.Kill(-pgid, syscall.SIGKILL)
		}
	}
	st, err := r.status(id)
	if err != nil {
		return fail(fmt.Errorf("the dumped tasks are gone, nothing to roll back to: %w", err))
	}
	if st != "paused" && st != "running" {
		return fail(fmt.Errorf("the dumped tasks are gone (runtime state %q): nothing to roll back to", st))
	}
	images := r.inv.flag("--image-path", "")
	if !filepath.IsAbs(images) {
		return fail(fmt.Errorf("restore has no absolute --image-path (%q)", images))
	}
	// The dumped tasks' old conmon still waits for them: when the dump
	// below ends them it would write their exit status where podman
	// looks for the restored container's, and podman would kill that.
	if err := r.killOldConmon(id); err != nil {
		return fail(err)
	}
	lazyImages := images + ".lazy-" + p.MigrationID
	if err := os.Rename(images, lazyImages); err != nil {
		return fail(err)
	}
	if err := os.Mkdir(images, 0o700); err != nil {
		return fail(err)
	}
	dump := append(append(append([]string{}, r.inv.global...), "checkpoint", "--image-path", images, "--work-path", images), id)
	cmd := exec.Command(r.rt.Path(), dump...)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fail(fmt.Errorf("%s: %w: %s", shellJoin(append([]string{r.rt.Path()}, dump...)), err, strings.TrimSpace(string(out))))
	}
	_ = os.RemoveAll(lazyImages)
	if code, started := r.run(nil); code != 0 {
		if started { // a runtime that never started left no CRIU log to read
			r.explain(id, "")
		}
		return code
	}
	return 0
}

// errNoTLSConf: runc passes CRIU no TLS options; only the criu.conf
// crhook generated at create can carry them.
var errNoTLSConf = errors.New("the container was created without crhook, so its CRIU cannot be given the migration's TLS material; nothing was dumped")

// finalDumpRefusal is why a migration's final dump (lazy, stream, a
// pre-copy's last) must not run at all, or nil.
func (r *runner) finalDumpRefusal() error {
	if r.inv.hasFlag("--leave-running") {
		// The destination will run it: two copies.
		return errors.New("--leave-running would leave the container running here while it runs on the destination (two copies); nothing was dumped")
	}
	if r.confPath == "" {
		return errNoTLSConf
	}
	return nil
}

// lazyCheckpoint starts `runc checkpoint --lazy-pages --page-server
// --status-fd` detached and returns once runc's status byte says the page
// server is up: podman then tars an image directory without pages. The
// page server runs on, in its own process group, until the destination
// has fetched every page or the plan's total timeout kills it.
func (r *runner) lazyCheckpoint(id string, p *migrate.Plan) int {
	fail := func(err error) int {
		fmt.Fprintf(r.stderr, "crhook: lazy checkpoint of container %s for migration %s failed: %v\n", id, p.MigrationID, err)
		return 1
	}
	if err := r.finalDumpRefusal(); err != nil {
		return fail(err)
	}
	opts, err := CriuOptsFromPlan(p, "checkpoint", 3)
	if err != nil {
		return fail(err)
	}
	args, err := opts.Args(Runc, "checkpoint", r.inv.rest)
	if err != nil {
		return fail(err)
	}
	if err := r.addMigrationConf(p, opts); err != nil {
		return fail(err)
	}
	dir := MigrationDir(r.settings.StateDir, p.MigrationID)
	before, berr := r.status(id)
	if before == "running" && berr == nil {
		// Frozen by runc, not by CRIU's 100 ms freezer poll; CRIU finds
		// it frozen. A container its owner paused stays as it is.
		if err := r.pauseForDump(id); err != nil {
			return fail(err)
		}
	}
	statusR, statusW, err := os.Pipe()
	if err != nil {
		r.unfreeze(id, before, berr)
		return fail(err)
	}
	defer statusR.Close()
	argv := append(append(append([]string{r.rt.Path()}, r.inv.global...), "checkpoint"), args...)
	pgid, err := startSupervised(dir, PageServerOut, PageServerRC, time.Duration(p.Timeouts.Total), argv, "", []*os.File{statusW})
	statusW.Close()
	if err != nil {
		r.unfreeze(id, before, berr)
		return fail(err)
	}
	b := make([]byte, 1)
	_ = statusR.SetReadDeadline(time.Now().Add(time.Duration(p.Timeouts.Total)))
	if _, err := io.ReadFull(statusR, b); err != nil {
		// No status byte: runc failed (or hung) before the page server
		// came up. Stop it, and never leave the container frozen.
		_ = syscall.Kill(-pgid, syscall.SIGKILL)
		out, _ := os.ReadFile(filepath.Join(dir, PageServerOut))
		r.explain(id, string(out))
		r.unfreeze(id, before, berr)
		return fail(fmt.Errorf("runc checkpoint --lazy-pages gave no status byte (%w): %s", err, strings.TrimSpace(string(out))))
	}
	del := r.runtimeCmd("delete", id)
	del = append(del[:len(del)-1], "--force", id)
	if data, err := json.Marshal(del); err == nil {
		_ = os.WriteFile(filepath.Join(dir, DeleteArgv), data, 0o600)
	}
	p.Status = migrate.StatusServing
	if err := WritePlan(r.settings.StateDir, id, p); err != nil {
		// Without "serving" in the plan, podman's delete would kill the
		// tasks a rollback needs; the page server still works.
		fmt.Fprintf(r.stderr, "crhook: warning: a failure before the destination runs cannot be rolled back: %v\n", err)
	}
	fmt.Fprintf(r.stderr, "crhook: container %s dumped lazily; its page server for migration %s waits at %s (process group %d)\n",
		ShortID(id), p.MigrationID, p.PageServer, pgid)
	return 0
}

// addMigrationConf adds opts' TLS lines (and crun's page server) to the
// generated criu.conf: the runtime passes no TLS options, CRIU reads them
// from the file.
func (r *runner) addMigrationConf(p *migrate.Plan, opts CriuOpts) error {
	tlsLines, err := opts.ConfLinesFor(KindOf(r.rt.Path()))
	if err != nil {
		return err
	}
	return r.addConfLines(p, tlsLines)
}

// addConfLines appends lines of migration p to the generated criu.conf.
func (r *runner) addConfLines(p *migrate.Plan, lines []string) error {
	if r.confPath == "" {
		return errNoTLSConf
	}
	conf, err := os.ReadFile(r.confPath)
	if err != nil {
		return fmt.Errorf("read the generated CRIU config: %w", err)
	}
	conf = append(conf, []byte("# for migration "+p.MigrationID+"\n"+strings.Join(lines, "\n")+"\n")...)
	return WriteConf(r.confPath, conf)
}

// lazyRestore starts `criu lazy-pages` (TLS, fetching from the source's
// page server) detached, waits for its socket, then runs `runc restore
// --lazy-pages`. If the daemon ever exits with an error, its supervisor
// kills the container at once: a page it can no longer fetch would
// otherwise be read as zeros. Until then a fault on such a page blocks:
// the userfaultfd holder (uffdhold.go), asked by CRIU's post-restore
// action script, keeps the restored tasks' userfaultfds open after the
// daemon is gone; a restore without it is killed.
func (r *runner) lazyRestore(id string, p *migrate.Plan) int {
	fail := func(err error) int {
		fmt.Fprintf(r.stderr, "crhook: lazy restore of container %s for migration %s failed: %v; nothing runs\n", id, p.MigrationID, err)
		return 1
	}
	images := r.inv.flag("--image-path", "")
	if !filepath.IsAbs(images) {
		return fail(fmt.Errorf("restore has no absolute --image-path (%q)", images))
	}
	// runc's CRIU looks for the daemon's socket in its work directory
	// (podman passes the bundle), not in the images directory.
	work := r.workDir()
	if !filepath.IsAbs(work) {
		return fail(fmt.Errorf("restore has no absolute --work-path (%q)", work))
	}
	dir := MigrationDir(r.settings.StateDir, p.MigrationID)
	daemonArgs, err := LazyPagesDaemonArgs(p.PageServer, p.TLS, images, filepath.Join(dir, LazyPagesLog))
	if err != nil {
		return fail(err)
	}
	daemonArgs = append(daemonArgs, "-W", work)
	criu := CriuBinary(r.inv.globalFlag("--criu", "criu"))
	kill := r.runtimeCmd("kill", id)
	kill = append(kill[:len(kill)-1], id, "KILL")
	pgid, err := startSupervised(dir, LazyPagesOut, LazyPagesRC, time.Duration(p.Timeouts.Total),
		append([]string{criu}, daemonArgs...), shellJoin(kill), nil)
	if err != nil {
		return fail(err)
	}
	sock := filepath.Join(work, "lazy-pages.socket")
	deadline := time.Now().Add(time.Duration(p.Timeouts.Connect))
	for {
		if _, err := os.Stat(sock); err == nil {
			break
		}
		if _, err := os.Stat(filepath.Join(dir, LazyPagesRC)); err == nil || time.Now().After(deadline) {
			_ = syscall.Kill(-pgid, syscall.SIGKILL)
			out, _ := os.ReadFile(filepath.Join(dir, LazyPagesOut))
			return fail(fmt.Errorf("criu lazy-pages did not come up within %v (log %s): %s",
				time.Duration(p.Timeouts.Connect), filepath.Join(dir, LazyPagesLog), strings.TrimSpace(string(out))))
		}
		// The container is frozen on the source while this waits: a
		// stat every 2 ms costs nothing next to the 20 ms a coarser
		// poll could add to the downtime.
		time.Sleep(2 * time.Millisecond)
	}
	// The holder keeps the userfaultfds alive if the daemon dies: a
	// fault then blocks until the container is killed, never reads a
	// zero page (uffdhold.go).
	holder, script, err := startUffdHolder(dir, time.Duration(p.Timeouts.Connect), time.Duration(p.Timeouts.Total))
	stop := func() {
		_ = syscall.Kill(-pgid, syscall.SIGKILL)
		if holder != nil {
			_ = holder.Kill()
			_, _ = holder.Wait()
		}
	}
	if err == nil {
		err = r.addConfLines(p, []string{"action-script " + script})
	}
	if err != nil {
		stop()
		return fail(err)
	}
	opts, err := CriuOptsFromPlan(p, "restore", 0)
	if err == nil {
		var args []string
		if args, err = opts.Args(Runc, "restore", r.inv.rest); err == nil {
			r.inv = parseArgs(append(append(append([]string{}, r.inv.global...), "restore"), args...))
		}
	}
	if err != nil {
		stop()
		return fail(err)
	}
	if code, started := r.run(nil); code != 0 {
		stop()
		if started {
			r.explain(id, "")
		}
		return code
	}
	if ack, err := os.ReadFile(filepath.Join(dir, uffdHoldAck)); err != nil || !strings.HasPrefix(string(ack), "held ") {
		// CRIU never ran the action script (or the holder failed and
		// CRIU went on): the container runs with no second holder of
		// its userfaultfds. Fail closed: a daemon's death would let it
		// read zeros.
		kill := r.runtimeCmd("kill", id)
		kill = append(kill[:len(kill)-1], id, "KILL")
		out, kerr := exec.Command(kill[0], kill[1:]...).CombinedOutput()
		stop()
		if kerr != nil {
			return fail(fmt.Errorf("the restored container ran without a holder of its userfaultfds (CRIU did not run the post-restore action script %s, or it failed: %q); killing it failed: %s: %w: %s",
				script, strings.TrimSpace(string(ack)), shellJoin(kill), kerr, strings.TrimSpace(string(out))))
		}
		return fail(fmt.Errorf("the restored container ran without a holder of its userfaultfds (CRIU did not run the post-restore action script %s, or it failed: %q); it was killed (%s)",
			script, strings.TrimSpace(string(ack)), shellJoin(kill)))
	}
	_ = holder.Release()
	p.Status = migrate.StatusRestored
	if err := WritePlan(r.settings.StateDir, id, p); err != nil {
		fmt.Fprintf(r.stderr, "crhook: warning: %v\n", err)
	}
	return 0
}

// CriuBinary is the criu the runtime would run for name (its --criu
// flag, "criu" by default): looked up in PATH, else the place
// tests/setup-host.sh installs CRIU 4.2.1 (podman strips PATH down).
func CriuBinary(name string) string {
	if path, err := exec.LookPath(name); err == nil {
		return path
	} else if _, err := os.Stat("/usr/local/sbin/criu"); err == nil && name == "criu" {
		return "/usr/local/sbin/criu"
	}
	return name
}

// supervisorScript runs "$@" in the background of a shell that leads its
// own process group (the command's pid in $2.pid: the userfaultfd holder
// finds the lazy-pages daemon there; its exit status is also appended to
// $2.status when that exists: the holder keeps that file open, so it
// reads the status even once the orchestrator removed the directory), kills the whole group after $1 seconds, writes the
// command's exit status to $2 (through a rename: present means final)
// and, when it is not 0, runs $3 (the destination's kill of a container
// whose pages can no longer come). Only the command keeps fd 3 (runc's
// status pipe): when it dies before writing, the shim reads EOF at once.
const supervisorScript = `t=$1 rc=$2 onfail=$3; shift 3
( exec 3>&-; sleep "$t"; kill -KILL 0 ) </dev/null >/dev/null 2>&1 &
w=$!
"$@" &
c=$!
echo "$c" >"$rc.pid"
exec 3>&-
wait $c
s=$?
[ ! -e "$rc.status" ] || echo "$s" >>"$rc.status"
[ "$s" = 0 ] || { [ -z "$onfail" ] || eval "$onfail"; }
echo "$s" >"$rc.tmp" && mv "$rc.tmp" "$rc"
kill "$w" 2>/dev/null
exit 0
`

// startSupervised starts argv detached from the caller (its own session
// and process group, stdin /dev/null, output to dir/out) under
// supervisorScript, and returns the group's id, also written to dir/pgid.
// Only extra, as fds 3..., is inherited: conmon hands the runtime pipes
// without close-on-exec, and a daemon holding them would keep podman
// waiting for the restore to end.
func startSupervised(dir, out, rc string, total time.Duration, argv []string, onFail string, extra []*os.File) (int, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return 0, fmt.Errorf("create migration directory %q: %w", dir, err)
	}
	for _, f := range []string{rc, rc + ".pid", PGID} {
		if err := os.Remove(filepath.Join(dir, f)); err != nil && !errors.Is(err, os.ErrNotExist) {
			return 0, fmt.Errorf("remove stale %q: %w", filepath.Join(dir, f), err)
		}
	}
	logf, err := os.OpenFile(filepath.Join(dir, out), os.O_WRONLY|os.O_CREATE|os.O_TRUNC|syscall.O_NOFOLLOW, 0o600)
	if err != nil {
		return 0, fmt.Errorf("open %q: %w", filepath.Join(dir, out), err)
	}
	defer logf.Close()
	secs := strconv.Itoa(int(total.Seconds() + 1))
	cmd := exec.Command("/bin/sh", append([]string{"-c", supervisorScript, "crhook-supervisor", secs, filepath.Join(dir, rc), onFail}, argv...)...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.ExtraFiles = extra
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	restore := cloexecInherited()
	err = cmd.Start()
	restore()
	if err != nil {
		return 0, fmt.Errorf("start %s: %w", shellJoin(argv), err)
	}
	pgid := cmd.Process.Pid
	_ = cmd.Process.Release()
	if err := os.WriteFile(filepath.Join(dir, PGID), []byte(strconv.Itoa(pgid)+"\n"), 0o600); err != nil {
		return pgid, fmt.Errorf("record the supervisor's process group: %w", err)
	}
	return pgid, nil
}

// cloexecInherited marks every descriptor above 2 close-on-exec and
// returns the function that puts their flags back.
func cloexecInherited() (restore func()) {
	ents, _ := os.ReadDir("/proc/self/fd")
	var undo []int
	for _, e := range ents {
		fd, err := strconv.Atoi(e.Name())
		if err != nil || fd < 3 {
			continue
		}
		flags, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0)
		if err != nil || flags&unix.FD_CLOEXEC != 0 {
			continue
		}
		if _, err := unix.FcntlInt(uintptr(fd), unix.F_SETFD, flags|unix.FD_CLOEXEC); err == nil {
			undo = append(undo, fd)
		}
	}
	return func() {
		for _, fd := range undo {
			if flags, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0); err == nil {
				_, _ = unix.FcntlInt(uintptr(fd), unix.F_SETFD, flags&^unix.FD_CLOEXEC)
			}
		}
	}
}

// killOldConmon kills the conmon that is the parent of container id's
// init process, if any: only a process named conmon.
func (r *runner) killOldConmon(id string) error {
	argv := r.runtimeCmd("state", id)
	out, err := exec.Command(argv[0], argv[1:]...).Output()
	if err != nil {
		return fmt.Errorf("%s: %w", shellJoin(argv), err)
	}
	var st struct {
		Pid int `json:"pid"`
	}
	if err := json.Unmarshal(out, &st); err != nil {
		return fmt.Errorf("decode the answer of %s: %w: %q", shellJoin(argv), err, out)
	}
	if st.Pid <= 1 {
		return fmt.Errorf("%s names no process: %q", shellJoin(argv), out)
	}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", st.Pid))
	if err != nil {
		return nil // gone: nothing waits for it
	}
	f := strings.Fields(string(stat[strings.LastIndexByte(string(stat), ')')+1:]))
	if len(f) < 2 {
		return nil
	}
	ppid, _ := strconv.Atoi(f[1])
	if comm, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", ppid)); err != nil || strings.TrimSpace(string(comm)) != "conmon" || ppid <= 1 {
		return nil
	}
	if err := syscall.Kill(ppid, syscall.SIGKILL); err != nil {
		return fmt.Errorf("kill the old conmon %d of container %s: %w", ppid, ShortID(id), err)
	}
	return nil
}
