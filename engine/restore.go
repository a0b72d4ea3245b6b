package engine

import (
	"fmt"
	"path/filepath"

	"github.com/crhook/crhook/config"
)

// restoreStep writes the generated config, points the bundle at it, and
// runs `restore` as a child; on failure it explains it.
func restoreStep(r *runner) int {
	if r.settingsBroken() {
		return 1
	}
	id := r.inv.containerID()
	if err := r.prepareRestore(id); err != nil {
		r.refuse(err, "nothing was restored and no CRIU config was run")
		return 1
	}
	if code, ok := r.migration(id); ok { // lazy.go: a migration's plan
		return code
	}
	// No copy of stderr: the restored container would inherit the pipe
	// and keep it open, and crhook would wait for it forever.
	code, started := r.run(nil)
	if !started {
		fmt.Fprintln(r.stderr, "crhook: nothing was restored")
		return code
	}
	if code != 0 {
		r.explain(id, "")
	}
	return code
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

// writeConf resolves every layer for the container, vetting each file,
// and writes the generated config the runtime will hand CRIU.
func (r *runner) writeConf(path, id string, ann map[string]string) error {
	res, err := config.Resolve(r.paths, config.Input{Runtime: r.rt.Path(), ContainerFile: r.ctrFile, Annotations: ann, Settings: r.settings})
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
