package engine

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/crhook/crhook/config"
	"github.com/crhook/crhook/engine/diagnose"
)

// Runtime is crhook-runtime: the OCI runtime podman calls. args are the
// arguments after argv[0]; the result is the process exit status.
//
// Only create, checkpoint, restore and delete are looked at. Everything
// else is replaced by the real runtime with a bare execve, so exit codes,
// signals, stdio, console sockets and preserved fds are the runtime's own.
func Runtime(args []string, paths config.Paths, stderr io.Writer) int {
	inv := parseArgs(args)
	settings, serr := config.LoadSettings(paths)
	if serr != nil {
		// A broken crhook.toml must not stop containers from starting or
		// stopping, nor send them to another runtime: keep runtime.path
		// when it can still be read, use the defaults for the rest, and
		// refuse to checkpoint with a config nobody asked for.
		path, at, err := config.LoadRuntimePath(paths)
		if err == nil || err.Error() != serr.Error() {
			fmt.Fprintf(stderr, "crhook: %v\n", serr)
		}
		if err != nil {
			fmt.Fprintf(stderr, "crhook: %s refused: runtime.path is undetermined, so crhook cannot tell which runtime to run: %v\n", config.Printable(inv.cmd), err)
			return 127
		}
		settings = config.Fallback()
		settings.SetRuntimePath(path, at)
		// create and delete keep the configured state directory when it
		// can be read (its files stay where checkpoint will look).
		if dir, _, err := config.LoadStateDir(paths); err == nil {
			settings.StateDir = dir
		}
	}
	runtime, err := lookRuntime(settings.Runtime.Path, func() config.Loc { return settings.Where("runtime.path") })
	if err != nil {
		fmt.Fprintf(stderr, "crhook: %v\n", err)
		return 127
	}
	r := &runner{inv: inv, runtime: runtime, settings: settings, paths: paths, stderr: stderr}
	if inv.wantsHelp() || !validID(inv.containerID()) {
		// podman probes "checkpoint --help" to learn whether the runtime
		// can checkpoint at all; that, and anything odd, is the runtime's.
		return r.exec()
	}
	switch inv.cmd {
	case "create", "run":
		// `runc run` is create and start in one: the same spec, the same
		// annotation, the same checkpoint later.
		r.prepareCreate()
		return r.exec()
	case "checkpoint", "restore":
		if serr != nil {
			fmt.Fprintf(stderr, "crhook: %s of container %s refused: fix the settings file above; the container is unchanged\n",
				inv.cmd, inv.containerID())
			return 1
		}
		return r.checkpointRestore()
	case "delete":
		if r.keepForMigration(inv.containerID()) { // lazy.go
			return 0
		}
		code := r.run(nil)
		if code == 0 {
			if err := RemoveState(settings.StateDir, inv.containerID()); err != nil {
				fmt.Fprintf(stderr, "crhook: %v\n", err)
			}
		}
		return code
	default:
		return r.exec()
	}
}

type runner struct {
	inv      invocation
	runtime  string
	settings *config.Settings
	paths    config.Paths
	stderr   io.Writer
	// confPath is crhook's generated file when the runtime reads it, and
	// criuFile the file CRIU gets as its RPC config (confPath, or a file
	// the runtime reads by itself); both name the config in diagnoses.
	confPath string
	criuFile string
	// ctrFile is the container's own CRIU file (layer 4), "" for none.
	ctrFile string
	// logFile is where CRIU logs when a kept log-file moved its log.
	logFile string
}

func (r *runner) bundle() string {
	if b := r.inv.flag("--bundle", "-b"); b != "" {
		return b
	}
	wd, _ := os.Getwd() // runc's default bundle is the working directory
	return wd
}

// prepareCreate points the runtime at the generated config and remembers
// the container's own org.criu.config as its layer 4. A failure is only
// reported: crhook never stops a container from starting, and a checkpoint
// of a container it could not prepare vets what the runtime would read.
func (r *runner) prepareCreate() {
	id, bundle := r.inv.containerID(), r.bundle()
	err := func() error {
		path, err := ConfPath(r.settings.StateDir, id)
		if err != nil {
			return err
		}
		ann, err := bundleAnnotations(bundle)
		if err != nil {
			return err
		}
		r.ctrFile = containerFile(ann, r.settings.StateDir)
		return pointBundle(bundle, path, r.ctrFile)
	}()
	if err != nil {
		fmt.Fprintf(r.stderr, "crhook: warning: container %s will not use crhook's CRIU config: %v\n", id, err)
		return
	}
	if r.ctrFile != "" {
		// Said now, when the user can still act; the checkpoint refuses.
		if _, err := config.CheckFile(r.ctrFile); err != nil {
			fmt.Fprintf(r.stderr, "crhook: warning: container %s names %s=%q, which checkpoint and restore will refuse: %v\n",
				id, CRIUConfigAnnotation, r.ctrFile, err)
		}
	}
}

// prepareRestore writes the generated config and points the bundle at it.
// It fails closed: the bundle comes from a checkpoint archive, and if its
// org.criu.config stayed, the runtime would hand CRIU that file unvetted
// (an action-script in it runs as root). So when the bundle cannot be
// rewritten (read-only, full, a stale temp file), nothing runs.
func (r *runner) prepareRestore(id string) error {
	bundle := r.bundle()
	ann, err := bundleAnnotations(bundle)
	if err != nil {
		return err
	}
	path, err := ConfPath(r.settings.StateDir, id)
	if err != nil {
		return err
	}
	r.ctrFile = containerFile(ann, r.settings.StateDir)
	if err := r.writeConf(path, id, ann); err != nil {
		return err
	}
	if err := pointBundle(bundle, path, r.ctrFile); err != nil {
		return fmt.Errorf("point %s in %q at crhook's CRIU config: %w; the runtime would otherwise hand CRIU the bundle's own %s=%q unvetted; make the bundle writable and retry",
			CRIUConfigAnnotation, filepath.Join(bundle, "config.json"), err, CRIUConfigAnnotation, ann[CRIUConfigAnnotation])
	}
	return nil
}

func (r *runner) checkpointRestore() int {
	id := r.inv.containerID()
	var err error
	if r.inv.cmd == "restore" {
		err = r.prepareRestore(id)
	} else {
		err = r.prepareCheckpoint(id)
	}
	if err != nil {
		fmt.Fprintf(r.stderr, "crhook: %s of container %s refused: %v\n", r.inv.cmd, id, err)
		if r.inv.cmd == "checkpoint" {
			fmt.Fprintln(r.stderr, "crhook: nothing was dumped; the container is still running")
		} else {
			fmt.Fprintln(r.stderr, "crhook: nothing was restored and no CRIU config was run")
		}
		return 1
	}
	if code, ok := r.migration(id); ok { // lazy.go: a migration's plan
		return code
	}
	// A checkpoint that fails after CRIU froze the container must not
	// leave it frozen; what it was before decides whether to resume it.
	var before string
	if r.inv.cmd == "checkpoint" {
		before, _ = r.status(id)
	}
	// runc's own stderr goes to podman as always; on checkpoint a copy is
	// kept because some failures (pre-dump on this kernel) leave CRIU's log
	// empty. Never on restore: the restored container would inherit the
	// pipe and keep it open, and crhook would wait for it forever.
	var out *bytes.Buffer
	if r.inv.cmd == "checkpoint" {
		out = &bytes.Buffer{}
	}
	code := r.run(out)
	if code != 0 {
		var kept string
		if out != nil {
			kept = out.String()
		}
		r.explain(id, kept)
		if r.inv.cmd == "checkpoint" {
			r.unfreeze(id, before)
		}
	}
	return code
}

// prepareCheckpoint decides what CRIU will read and vets it. A container
// crhook created reads the generated file, rewritten now from every layer;
// any other reads its own org.criu.config, or the runtime's file, directly,
// so that file must pass the same checks, and anything crhook would drop
// from it makes the checkpoint refuse: nobody can drop it on the way.
func (r *runner) prepareCheckpoint(id string) error {
	ann, err := r.checkpointAnnotations(id)
	if err != nil {
		return err
	}
	want, err := ConfPath(r.settings.StateDir, id)
	if err != nil {
		return err
	}
	got, named := ann[CRIUConfigAnnotation]
	if got == want {
		r.ctrFile = ann[OriginalCRIUConfigAnnotation]
		return r.writeConf(want, id, ann)
	}
	direct := got
	if !named {
		rt := r.paths.CRIUFiles(r.runtime)
		direct = rt[len(rt)-1] // runc's default: /etc/criu/runc.conf
	}
	fmt.Fprintf(r.stderr, "crhook: warning: container %s was created without crhook (%s=%q), so the runtime ignores crhook's CRIU config; recreate it with --runtime crhook\n",
		id, CRIUConfigAnnotation, got)
	if direct == "" {
		return nil // runc reads no file at all for an empty org.criu.config
	}
	res, err := config.ResolveRuntimeFile(direct, r.settings)
	if err != nil {
		return fmt.Errorf("the runtime would hand CRIU %q as it is: %w", direct, err)
	}
	if len(res.Dropped) > 0 {
		var lines []string
		for _, d := range res.Dropped {
			lines = append(lines, fmt.Sprintf("%s: %s (%s)", d.Origin, d.Name(), d.Reason))
		}
		return fmt.Errorf("the runtime would hand CRIU %q as it is, and crhook cannot drop from it: %s; remove those lines, or recreate the container with --runtime crhook",
			direct, strings.Join(lines, "; "))
	}
	if len(res.Layers) > 0 && res.Layers[0].Present {
		r.criuFile = direct
	}
	r.setLogFile(res)
	return nil
}

// unfreeze resumes a container that a failed checkpoint left paused: CRIU
// killed after it froze the cgroup leaves it FROZEN, and neither runc nor
// podman thaws it (podman shows it up, exec fails, unpause refuses).
func (r *runner) unfreeze(id, before string) {
	if before != "running" {
		return // paused by its owner, or unknown: not crhook's to resume
	}
	resume := r.runtimeCmd("resume", id)
	after, err := r.status(id)
	if err != nil {
		fmt.Fprintf(r.stderr, "crhook: cannot tell whether the failed checkpoint left container %s frozen: %v; if `%s` says paused, run: %s\n",
			id, err, shellJoin(r.runtimeCmd("state", id)), shellJoin(resume))
		return
	}
	if after != "paused" {
		return
	}
	cmd := exec.Command(resume[0], resume[1:]...)
	if out, err := cmd.CombinedOutput(); err != nil {
		fmt.Fprintf(r.stderr, "crhook: the failed checkpoint left container %s frozen, and resuming it failed: %v: %s; run: %s\n",
			id, err, strings.TrimSpace(string(out)), shellJoin(resume))
		return
	}
	fmt.Fprintf(r.stderr, "crhook: the failed checkpoint left container %s frozen; crhook resumed it (%s), it is running again\n",
		id, shellJoin(resume))
}

// runtimeCmd is the runtime's command line for a subcommand on a
// container, with the global flags (--root, ...) of this invocation.
func (r *runner) runtimeCmd(sub, id string) []string {
	return append(append(append([]string{r.runtime}, r.inv.global...), sub), id)
}

// status is the container's status as the runtime reports it.
func (r *runner) status(id string) (string, error) {
	st, err := r.runtimeState(id)
	if err != nil {
		return "", err
	}
	return st.Status, nil
}

// shellJoin quotes a command line for a user to paste into a shell.
func shellJoin(argv []string) string {
	q := make([]string, len(argv))
	for i, a := range argv {
		if a != "" && strings.Trim(a, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.,+-=/:@%") == "" {
			q[i] = a
		} else {
			q[i] = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
		}
	}
	return strings.Join(q, " ")
}

// workDir is where CRIU writes its logs: --work-path, which defaults to
// the images directory.
func (r *runner) workDir() string {
	if dir := r.inv.flag("--work-path", ""); dir != "" {
		return dir
	}
	return r.inv.flag("--image-path", "")
}

// setLogFile records where CRIU logs when the runtime's file or the
// container's (layers 3 and 4) kept a log-file: CRIU opens a relative
// name in its work directory, so crhook reads it there.
func (r *runner) setLogFile(res *config.Resolved) {
	s, ok := res.Get("log-file")
	if !ok || !s.HasValue || s.Value == "-" {
		r.logFile = ""
		return
	}
	r.logFile = s.Value
	if !filepath.IsAbs(s.Value) {
		r.logFile = filepath.Join(r.workDir(), s.Value)
	}
}

// explain prints what went wrong and how to fix it, read from the CRIU log
// of this operation. It runs only on failure, so success costs nothing.
func (r *runner) explain(id, runtimeOutput string) {
	dir := r.workDir()
	op, log := diagnose.OpDump, "dump.log"
	switch {
	case r.inv.cmd == "restore":
		op, log = diagnose.OpRestore, "restore.log"
	case r.inv.hasFlag("--pre-dump"):
		op = diagnose.OpPreDump // runc logs a pre-dump to dump.log too
	}
	path := filepath.Join(dir, log)
	if r.logFile != "" {
		path = r.logFile // a kept log-file moved CRIU's log
	}
	d, _ := diagnose.Explain(path, diagnose.Context{
		Operation: op, ContainerName: ShortID(id), ContainerID: id, ConfigFile: r.criuFile, RuntimeOutput: runtimeOutput,
		Engine: DetectEngine(r.inv.args), // fixes in the commands of whoever called us
	})
	if op == diagnose.OpRestore {
		onlyRootCause(d)
	}
	fmt.Fprint(r.stderr, d.Text())
}

// onlyRootCause drops the quoted context around the root-cause line. On
// restore podman gets our stderr through conmon, and when any line matches
// "no such file or directory" or "operation not permitted" it shows that
// line alone ("OCI runtime attempted to invoke a command that was not
// found"); CRIU's follow-up errors often do, and would hide the fix.
func onlyRootCause(d *diagnose.Diagnosis) {
	for i, n := range d.QuoteLines {
		if n == d.Line && i < len(d.Quote) {
			d.Quote, d.QuoteLines = d.Quote[i:i+1], d.QuoteLines[i:i+1]
			return
		}
	}
}

// ShortID is the 12-character form podman prints.
func ShortID(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}

// checkpointAnnotations finds the container's annotations as the runtime
// stored them at create: what it will read at checkpoint.
func (r *runner) checkpointAnnotations(id string) (map[string]string, error) {
	ann, ok := storedAnnotations(r.runtime, r.inv.globalFlag("--root", ""), id)
	if !ok {
		var err error
		if ann, err = r.stateAnnotations(id); err != nil {
			return nil, err
		}
	}
	return ann, nil
}

// stateAnnotations asks the runtime itself (`runtime state ID`): the
// portable way, used when runc's state file is not where runc keeps it.
func (r *runner) stateAnnotations(id string) (map[string]string, error) {
	st, err := r.runtimeState(id)
	if err != nil {
		return nil, err
	}
	return st.Annotations, nil
}

// runtimeState is the runtime's `state ID` answer.
type runtimeState struct {
	Status      string            `json:"status"`
	Annotations map[string]string `json:"annotations"`
}

func (r *runner) runtimeState(id string) (*runtimeState, error) {
	argv := r.runtimeCmd("state", id)
	cmd := exec.Command(argv[0], argv[1:]...)
	var errb bytes.Buffer
	cmd.Stderr = &errb
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("%s: %w: %s", shellJoin(argv), err, strings.TrimSpace(errb.String()))
	}
	var st runtimeState
	if err := json.Unmarshal(out, &st); err != nil {
		return nil, fmt.Errorf("decode the answer of %s: %w", shellJoin(argv), err)
	}
	return &st, nil
}

// runcStateAnnotations reads the annotations runc stored at create time
// (as "key=value" labels in ROOT/ID/state.json). It saves starting a
// second Go runtime for `runc state`, about 5 ms of every checkpoint.
func runcStateAnnotations(root, id string) (map[string]string, bool) {
	data, err := os.ReadFile(filepath.Join(root, id, "state.json"))
	if err != nil {
		return nil, false
	}
	var st struct {
		Config struct {
			Labels []string `json:"labels"`
		} `json:"config"`
	}
	if json.Unmarshal(data, &st) != nil || st.Config.Labels == nil {
		return nil, false
	}
	ann := make(map[string]string, len(st.Config.Labels))
	for _, l := range st.Config.Labels {
		if k, v, ok := strings.Cut(l, "="); ok {
			ann[k] = v
		}
	}
	return ann, true
}

// writeConf resolves every layer for the container, vetting each file,
// and writes the generated config the runtime will hand CRIU.
func (r *runner) writeConf(path, id string, ann map[string]string) error {
	res, err := config.Resolve(r.paths, config.Input{Runtime: r.runtime, ContainerFile: r.ctrFile, Annotations: ann, Settings: r.settings})
	if err != nil {
		return err
	}
	for _, d := range res.Dropped {
		fmt.Fprintf(r.stderr, "crhook: warning: %s: %s ignored: %s\n", d.Origin, d.Name(), d.Reason)
	}
	if err := WriteConf(path, Render(id, res)); err != nil {
		return err
	}
	r.confPath, r.criuFile = path, path
	r.setLogFile(res)
	return nil
}

// exec replaces crhook with the runtime: the pass-through path.
func (r *runner) exec() int {
	argv := append([]string{r.runtime}, r.inv.args...)
	err := syscall.Exec(r.runtime, argv, os.Environ())
	fmt.Fprintf(r.stderr, "crhook: exec %s: %v\n", r.runtime, err)
	return 127
}

// run starts the runtime as a child. It inherits every file descriptor
// crhook got (conmon passes console sockets and sync pipes without
// CLOEXEC), receives every signal crhook gets, and its exit status
// becomes crhook's.
func (r *runner) run(keepStderr *bytes.Buffer) int {
	cmd := exec.Command(r.runtime, r.inv.args...)
	cmd.Args[0] = r.runtime
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	if keepStderr != nil {
		cmd.Stderr = io.MultiWriter(os.Stderr, keepStderr)
	}
	sigs := make(chan os.Signal, 16)
	signal.Notify(sigs)
	defer signal.Stop(sigs)
	if err := cmd.Start(); err != nil {
		fmt.Fprintf(r.stderr, "crhook: start %s: %v\n", r.runtime, err)
		return 127
	}
	done := make(chan struct{})
	go func() {
		for {
			select {
			case s := <-sigs:
				// SIGCHLD is ours; SIGURG is the Go scheduler's preemption.
				if s != syscall.SIGCHLD && s != syscall.SIGURG {
					_ = cmd.Process.Signal(s)
				}
			case <-done:
				return
			}
		}
	}()
	err := cmd.Wait()
	close(done)
	var ee *exec.ExitError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &ee):
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return 128 + int(ws.Signal())
		}
		return ee.ExitCode()
	default:
		fmt.Fprintf(r.stderr, "crhook: %s: %v\n", r.runtime, err)
		return 1
	}
}

// lookRuntime resolves the wrapped runtime. podman may run us with a
// minimal PATH, so the usual sbin directories are tried too. at says where
// runtime.path was set, for the messages (asked only on failure): they say
// what is wrong with the file found there, and how to fix it, before any
// exec fails obscurely.
func lookRuntime(name string, at func() config.Loc) (string, error) {
	self, _ := os.Executable()
	try := []string{name}
	if !filepath.IsAbs(name) {
		if p, err := exec.LookPath(name); err == nil {
			try = []string{p}
		} else {
			try = nil
			dirs := append(filepath.SplitList(os.Getenv("PATH")), "/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin")
			for _, d := range dirs {
				if filepath.IsAbs(d) {
					try = append(try, filepath.Join(d, name))
				}
			}
		}
	}
	where := func() string { return fmt.Sprintf("runtime.path = %q, %s", name, at()) }
	var unusable error
	for _, p := range try {
		fi, err := os.Stat(p)
		switch {
		case err != nil:
			continue
		case fi.IsDir():
			unusable = fmt.Errorf("runtime %q is a directory (%s); set runtime.path to the runtime binary", p, where())
			continue
		case !fi.Mode().IsRegular():
			unusable = fmt.Errorf("runtime %q is not a regular file (%s); set runtime.path to the runtime binary", p, where())
			continue
		case fi.Mode()&0o111 == 0:
			unusable = fmt.Errorf("runtime %q is not executable (mode %04o, %s); run: chmod 0755 %q, or set runtime.path to another runtime",
				p, fi.Mode().Perm(), where(), p)
			continue
		}
		if real, _ := filepath.EvalSymlinks(p); self != "" && (real == self || p == self) {
			return "", fmt.Errorf("runtime.path %q is crhook itself (%s); set it to runc or crun", name, at())
		}
		if err := checkExecutable(p); err != nil {
			return "", fmt.Errorf("runtime %q cannot be run (%s): %w", p, where(), err)
		}
		return p, nil
	}
	if unusable != nil {
		return "", unusable
	}
	return "", fmt.Errorf("runtime %q not found (%s); install runc or crun, or set runtime.path to the runtime's full path", name, where())
}

// checkExecutable tells in advance what execve would fail on with ENOEXEC
// or ENOENT although the file is there: a script whose #! interpreter is
// missing, or a file that is neither ELF nor a script. Without this, a
// checkpoint would fail with a bare "exec format error" and a misleading
// diagnosis of a CRIU that never ran. It reads one small block.
func checkExecutable(path string) error {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil // execve will say; reading is only a courtesy
	}
	defer f.Close()
	var buf [256]byte // the kernel's BINPRM_BUF_SIZE
	n, _ := io.ReadFull(f, buf[:])
	head := buf[:n]
	switch {
	case bytes.HasPrefix(head, []byte("\x7fELF")):
		return nil
	case bytes.HasPrefix(head, []byte("#!")):
		line, _, _ := bytes.Cut(head[2:], []byte("\n"))
		fields := strings.Fields(string(line))
		if len(fields) == 0 {
			return fmt.Errorf("its #! line names no interpreter (exec format error); fix the first line of %q", path)
		}
		interp := fields[0]
		if !filepath.IsAbs(interp) {
			return nil
		}
		fi, err := os.Stat(interp)
		switch {
		case err != nil:
			return fmt.Errorf("bad interpreter: its #! line names %q, which does not exist; install it or fix the first line of %q", interp, path)
		case fi.IsDir() || fi.Mode()&0o111 == 0:
			return fmt.Errorf("bad interpreter: its #! line names %q, which is not executable; fix the first line of %q", interp, path)
		}
		return nil
	}
	// Neither ELF nor script: only a binfmt_misc handler could run it.
	if ents, err := os.ReadDir("/proc/sys/fs/binfmt_misc"); err == nil {
		for _, e := range ents {
			if e.Name() != "register" && e.Name() != "status" {
				return nil
			}
		}
	}
	return fmt.Errorf("it is neither a program (ELF) nor a script with a #! line (exec format error); set runtime.path to the runtime binary")
}
