package plan

import "errors"

// Sentinel errors; engine/migrate re-exports them (the same values), so
// errors.Is works with either name.
var (
	// ErrPlan: a plan file that does not decode or fails validation.
	ErrPlan = errors.New("invalid migration plan")
	// ErrPlanVersion: a plan written by another version of crhook; the
	// shim must refuse it rather than guess what its fields mean.
	ErrPlanVersion = errors.New("unsupported migration plan version")
	// ErrMode: a migration mode crhook does not know.
	ErrMode = errors.New("unknown migration mode")
)
