package engine

import (
	"runtime"

	"github.com/opencontainers/selinux/go-selinux"
)

// stateLabel is the type selinuxpolicy/crhook.te gives /run/crhook: the
// runtime domain (and CRIU, which runs in it) can read it, no container
// domain can. crhook gives it to everything it creates from state_dir
// down, whatever state_dir is configured, so a state_dir outside /run
// (which the policy's file contexts do not name) is labelled the same;
// directories it has to create above state_dir keep the default label.
const stateLabel = "system_u:object_r:crhook_var_run_t:s0"

// setFSCreate sets the label of the files this thread creates next; ""
// restores the default. A variable so that tests can see the calls.
var setFSCreate = func(label string) error {
	if !selinux.GetEnabled() {
		return nil
	}
	return selinux.SetFSCreateLabel(label)
}

// withCreateLabel runs create with new files labelled label ("" for the
// default). The policy's file contexts and type transition label
// /run/crhook the same way; this also covers a /run/crhook made before the
// module was loaded. Without SELinux, or without the module (the label is
// then unknown to the kernel), files inherit their directory's label as
// they would anyway.
func withCreateLabel(label string, create func() error) error {
	if label == "" {
		return create()
	}
	// The fscreate attribute is per thread.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	if err := setFSCreate(label); err != nil {
		return create()
	}
	defer func() { _ = setFSCreate("") }()
	return create()
}
