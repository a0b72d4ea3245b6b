package migrate

import "errors"

// Sentinel errors; detail is added with fmt.Errorf("%w: ...", ErrX, ...)
// so callers test them with errors.Is.
var (
	// ErrPlan: a plan file that does not decode or fails validation.
	ErrPlan = errors.New("invalid migration plan")
	// ErrPlanVersion: a plan written by another version of crhook; the
	// shim must refuse it rather than guess what its fields mean.
	ErrPlanVersion = errors.New("unsupported migration plan version")
	// ErrMode: a migration mode crhook does not know.
	ErrMode = errors.New("unknown migration mode")
	// ErrDestination: a destination that is neither ssh://… nor a known
	// podman system connection over ssh.
	ErrDestination = errors.New("invalid migration destination")
	// ErrRounds: pre-copy round statistics that cannot be real.
	ErrRounds = errors.New("invalid pre-copy round statistics")
)
