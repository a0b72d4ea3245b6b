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
		// stopping: fall back to the defaults, but refuse to checkpoint
		// with a config nobody asked for.
		fmt.Fprintf(stderr, "crhook: %v\n", serr)
		settings = config.Fallback()
	}
	runtime, err := lookRuntime(settings.Runtime.Path)
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
	case "create":
		r.annotate(r.bundle())
		return r.exec()
	case "checkpoint", "restore":
		if serr != nil {
			fmt.Fprintf(stderr, "crhook: %s of container %s refused: fix the settings file above; the container is unchanged\n",
				inv.cmd, inv.containerID())
			return 1
		}
		return r.checkpointRestore()
	case "delete":
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
	confPath string
}

func (r *runner) bundle() string {
	if b := r.inv.flag("--bundle", "-b"); b != "" {
		return b
	}
	wd, _ := os.Getwd() // runc's default bundle is the working directory
	return wd
}

// annotate points the runtime at the generated config. A failure is only
// reported: crhook never stops a container from starting.
func (r *runner) annotate(bundle string) {
	path, err := ConfPath(r.settings.StateDir, r.inv.containerID())
	if err == nil {
		err = annotateBundle(bundle, CRIUConfigAnnotation, path)
	}
	if err != nil {
		fmt.Fprintf(r.stderr, "crhook: warning: container %s will not use crhook's CRIU config: %v\n", r.inv.containerID(), err)
		return
	}
	r.confPath = path
}

func (r *runner) checkpointRestore() int {
	id := r.inv.containerID()
	var ann map[string]string
	var err error
	if r.inv.cmd == "restore" {
		bundle := r.bundle()
		r.annotate(bundle)
		ann, err = bundleAnnotations(bundle)
	} else {
		ann, err = r.checkpointAnnotations(id)
	}
	if err == nil && r.confPath != "" {
		err = r.writeConf(id, ann)
	}
	if err != nil {
		fmt.Fprintf(r.stderr, "crhook: %s of container %s refused: %v\n", r.inv.cmd, id, err)
		if r.inv.cmd == "checkpoint" {
			fmt.Fprintln(r.stderr, "crhook: nothing was dumped; the container is still running")
		}
		return 1
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
	}
	return code
}

// explain prints what went wrong and how to fix it, read from the CRIU log
// of this operation. It runs only on failure, so success costs nothing.
func (r *runner) explain(id, runtimeOutput string) {
	dir := r.inv.flag("--work-path", "")
	if dir == "" {
		dir = r.inv.flag("--image-path", "") // runc's default work dir
	}
	op, log := diagnose.OpDump, "dump.log"
	switch {
	case r.inv.cmd == "restore":
		op, log = diagnose.OpRestore, "restore.log"
	case r.inv.hasFlag("--pre-dump"):
		op = diagnose.OpPreDump // runc logs a pre-dump to dump.log too
	}
	d, _ := diagnose.Explain(filepath.Join(dir, log), diagnose.Context{
		Operation: op, ContainerName: ShortID(id), ConfigFile: r.confPath, RuntimeOutput: runtimeOutput,
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

// checkpointAnnotations finds the container's annotations, and whether it
// was created with crhook's org.criu.config.
func (r *runner) checkpointAnnotations(id string) (map[string]string, error) {
	ann, ok := storedAnnotations(r.runtime, r.inv.globalFlag("--root", ""), id)
	if !ok {
		var err error
		if ann, err = r.stateAnnotations(id); err != nil {
			return nil, err
		}
	}
	want, err := ConfPath(r.settings.StateDir, id)
	if err != nil {
		return nil, err
	}
	if got := ann[CRIUConfigAnnotation]; got != want {
		fmt.Fprintf(r.stderr, "crhook: warning: container %s was created without crhook (%s=%q), so the runtime ignores crhook's CRIU config; recreate it with --runtime crhook\n",
			id, CRIUConfigAnnotation, got)
		return ann, nil
	}
	r.confPath = want
	return ann, nil
}

// stateAnnotations asks the runtime itself (`runtime state ID`): the
// portable way, used when runc's state file is not where runc keeps it.
func (r *runner) stateAnnotations(id string) (map[string]string, error) {
	cmd := exec.Command(r.runtime, append(append([]string{}, r.inv.global...), "state", id)...)
	cmd.Stderr = r.stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("read state of container %s: %w", id, err)
	}
	var st struct {
		Annotations map[string]string `json:"annotations"`
	}
	if err := json.Unmarshal(out, &st); err != nil {
		return nil, fmt.Errorf("decode state of container %s: %w", id, err)
	}
	return st.Annotations, nil
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

func (r *runner) writeConf(id string, ann map[string]string) error {
	res, err := config.Resolve(r.paths, config.Input{Runtime: r.runtime, Annotations: ann, Settings: r.settings})
	if err != nil {
		return err
	}
	for _, d := range res.Dropped {
		fmt.Fprintf(r.stderr, "crhook: warning: %s: %s ignored: %s\n", d.Origin, d.Name(), d.Reason)
	}
	return WriteConf(r.confPath, Render(id, res))
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
// minimal PATH, so the usual sbin directories are tried too.
func lookRuntime(name string) (string, error) {
	self, _ := os.Executable()
	try := []string{name}
	if !filepath.IsAbs(name) {
		if p, err := exec.LookPath(name); err == nil {
			try = []string{p}
		} else {
			try = nil
			for _, d := range []string{"/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin"} {
				try = append(try, filepath.Join(d, name))
			}
		}
	}
	for _, p := range try {
		fi, err := os.Stat(p)
		if err != nil || fi.IsDir() || fi.Mode()&0o111 == 0 {
			continue
		}
		if real, _ := filepath.EvalSymlinks(p); self != "" && (real == self || p == self) {
			return "", fmt.Errorf("runtime.path %q is crhook itself; set it to runc or crun in /etc/crhook/crhook.toml", name)
		}
		return p, nil
	}
	return "", fmt.Errorf("runtime %q not found (runtime.path in crhook.toml); install runc or set the path", name)
}
