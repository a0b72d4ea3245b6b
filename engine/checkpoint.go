package engine

import (
	"bytes"
	"fmt"
	"io"
	"strings"

	"github.com/crhook/crhook/config"
	"github.com/crhook/crhook/engine/diagnose"
)

// checkpointStep vets what CRIU will read, runs `checkpoint` as a child
// (keeping a copy of its stderr), and on failure explains it and resumes
// a container the failure left frozen.
func checkpointStep(r *runner) int {
	if r.settingsBroken() {
		return 1
	}
	id := r.inv.containerID()
	if err := r.prepareCheckpoint(id); err != nil {
		r.refuse(err, "nothing was dumped; the container is still running")
		return 1
	}
	if code, ok := r.migration(id); ok { // lazy.go: a migration's plan
		return code
	}
	// A checkpoint that fails after CRIU froze the container must not
	// leave it frozen; what it was before decides whether to resume it.
	before, berr := r.status(id)
	// runc's own stderr goes to the caller as always; a copy is kept
	// because some failures (pre-dump on this kernel) leave CRIU's log
	// empty. containerd's shim shows its user only the first line of the
	// runtime's output (criuError in its runc shim): there the runtime's
	// stderr is held back, so that crhook's one-line diagnosis comes first.
	var out bytes.Buffer
	first := DetectEngine(r.inv.args) == diagnose.EngineContainerd
	var stderr io.Writer = io.MultiWriter(r.stderr, &out)
	if first {
		stderr = &out
	}
	code, started := r.run(stderr)
	if !started {
		fmt.Fprintln(r.stderr, "crhook: nothing was dumped; the container is still running")
		return code
	}
	if code != 0 {
		d := r.diagnose(id, out.String())
		if first {
			fmt.Fprintln(r.stderr, d.Headline())
			_, _ = r.stderr.Write(out.Bytes())
		}
		fmt.Fprint(r.stderr, d.Text())
		r.unfreeze(id, before, berr)
	} else if first {
		_, _ = r.stderr.Write(out.Bytes())
	}
	return code
}

// refuse reports a step that refused to run the runtime, and what that
// left unchanged.
func (r *runner) refuse(err error, unchanged string) {
	fmt.Fprintf(r.stderr, "crhook: %s of container %s refused: %v\n", r.inv.cmd, r.inv.containerID(), err)
	fmt.Fprintf(r.stderr, "crhook: %s\n", unchanged)
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
		rt := r.paths.CRIUFiles(r.rt.Path())
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

// checkpointAnnotations finds the container's annotations as the runtime
// stored them at create: what it will read at checkpoint.
func (r *runner) checkpointAnnotations(id string) (map[string]string, error) {
	if ann, ok := storedAnnotations(r.rt.Path(), r.inv.globalFlag("--root", ""), id); ok {
		return ann, nil
	}
	st, err := queryState(r.rt, r.inv.global, id)
	if err != nil {
		return nil, err
	}
	return st.Annotations, nil
}

// unfreeze resumes a container that a failed checkpoint left paused: CRIU
// killed after it froze the cgroup leaves it FROZEN, and neither runc nor
// podman thaws it (podman shows it up, exec fails, unpause refuses).
func (r *runner) unfreeze(id, before string, beforeErr error) {
	if before != "running" && beforeErr == nil {
		return // paused by its owner: not crhook's to resume
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
	if beforeErr != nil {
		// Paused now, but crhook could not learn whether it was before:
		// resuming might undo its owner's pause, staying silent might
		// leave it frozen. Say so, with the command.
		fmt.Fprintf(r.stderr, "crhook: container %s is paused after the failed checkpoint, and its state before could not be read (%v); if it was running, the checkpoint froze it: run: %s\n",
			id, beforeErr, shellJoin(resume))
		return
	}
	if _, err := r.rt.Output(resume[1:]); err != nil {
		// err starts with the command line already: named once, to paste.
		fmt.Fprintf(r.stderr, "crhook: the failed checkpoint left container %s frozen, and resuming it failed: %v; it stays frozen until that command succeeds: fix what it says and run it again\n",
			id, err)
		return
	}
	fmt.Fprintf(r.stderr, "crhook: the failed checkpoint left container %s frozen; crhook resumed it (%s), it is running again\n",
		id, shellJoin(resume))
}

// runtimeCmd is the runtime's command line for a subcommand on a
// container, with the global flags (--root, ...) of this invocation.
func (r *runner) runtimeCmd(sub, id string) []string {
	return append(append(append([]string{r.rt.Path()}, r.inv.global...), sub), id)
}

// status is the container's status as the runtime reports it.
func (r *runner) status(id string) (string, error) {
	st, err := queryState(r.rt, r.inv.global, id)
	if err != nil {
		return "", err
	}
	return st.Status, nil
}
