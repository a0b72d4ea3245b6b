package migrate

import (
	"errors"

	"github.com/crhook/crhook/engine/migrate/plan"
)

// Sentinel errors; detail is added with fmt.Errorf("%w: ...", ErrX, ...)
// so callers test them with errors.Is.
var (
	// ErrPlan: a plan file that does not decode or fails validation.
	ErrPlan = plan.ErrPlan
	// ErrPlanVersion: a plan written by another version of crhook; the
	// shim must refuse it rather than guess what its fields mean.
	ErrPlanVersion = plan.ErrPlanVersion
	// ErrMode: a migration mode crhook does not know.
	ErrMode = plan.ErrMode
	// ErrDestination: a destination that is neither ssh://… nor a known
	// podman system connection over ssh.
	ErrDestination = errors.New("invalid migration destination")
	// ErrRounds: pre-copy round statistics that cannot be real.
	ErrRounds = errors.New("invalid pre-copy round statistics")
)
