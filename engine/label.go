package engine

import (
	"runtime"

	"github.com/opencontainers/selinux/go-selinux"
)

// stateLabel is the type selinuxpolicy/crhook.te gives /run/crhook: the
// runtime domain (and CRIU, which runs in it) can read it, no container
// domain can.
const stateLabel = "system_u:object_r:crhook_var_run_t:s0"

// withStateLabel runs create with new files labelled stateLabel. The
// policy's file contexts and type transition label them the same way;
// this covers a /run/crhook made before the module was loaded. Without
// SELinux, or without the module (the label is then unknown to the
// kernel), files inherit their directory's label as they would anyway.
func withStateLabel(create func() error) error {
	if !selinux.GetEnabled() {
		return create()
	}
	// The fscreate attribute is per thread.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	if err := selinux.SetFSCreateLabel(stateLabel); err != nil {
		return create()
	}
	defer func() { _ = selinux.SetFSCreateLabel("") }()
	return create()
}
