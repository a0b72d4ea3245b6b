package migrate

import "github.com/crhook/crhook/engine/migrate/plan"

// The plan file lives in engine/migrate/plan so that crhook-runtime links
// it without this package's net/url (see that package's doc). These names
// keep `migrate.Plan` and the rest valid for the orchestrator and the CLI.

// PlanVersion is the plan format this crhook writes and the only one it reads.
const PlanVersion = plan.PlanVersion

// PlanFile is the plan's name inside the container's state directory.
const PlanFile = plan.PlanFile

type (
	// Mode is how memory moves.
	Mode = plan.Mode
	// Status is where the migration stands.
	Status = plan.Status
	// Plan tells the runtime shim how to checkpoint or restore one
	// container as part of a migration.
	Plan = plan.Plan
	// PageServer is where the source's page server listens.
	PageServer = plan.PageServer
	// TLSPaths are the TLS files CRIU's page server uses.
	TLSPaths = plan.TLSPaths
	// Timeouts bound the shim's waits.
	Timeouts = plan.Timeouts
	// Duration is a time.Duration written as a Go duration string.
	Duration = plan.Duration
)

// The modes of `crhook migrate --mode`.
const (
	ModeStream  = plan.ModeStream
	ModeLazy    = plan.ModeLazy
	ModePrecopy = plan.ModePrecopy
	ModeAuto    = plan.ModeAuto
)

// Statuses, in the order a migration goes through them.
const (
	StatusPlanned   = plan.StatusPlanned
	StatusServing   = plan.StatusServing
	StatusRestored  = plan.StatusRestored
	StatusCommitted = plan.StatusCommitted
	StatusFailed    = plan.StatusFailed
)

// PlanPath is the plan's path in a container's state directory.
func PlanPath(containerStateDir string) string { return plan.PlanPath(containerStateDir) }

// ParseMode accepts the names `--mode` takes.
func ParseMode(s string) (Mode, error) { return plan.ParseMode(s) }

// ParsePlan decodes and validates a plan.
func ParsePlan(data []byte) (*Plan, error) { return plan.ParsePlan(data) }
