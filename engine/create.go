package engine

import (
	"fmt"

	"github.com/crhook/crhook/config"
)

// createStep serves create and run (`runc run` is create and start in
// one: the same spec, the same annotation, the same checkpoint later): it
// points the bundle at the generated config, then execs the runtime.
func createStep(r *runner) int {
	r.prepareCreate()
	return r.exec()
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

// deleteStep runs `delete` as a child and, when the runtime deleted the
// container, removes crhook's state of it.
func deleteStep(r *runner) int {
	if r.keepForMigration(r.inv.containerID()) { // lazy.go
		return 0
	}
	code, _ := r.run(nil)
	if code == 0 {
		if err := RemoveState(r.settings.StateDir, r.inv.containerID()); err != nil {
			fmt.Fprintf(r.stderr, "crhook: %v\n", err)
		}
	}
	return code
}
