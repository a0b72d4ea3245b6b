// Package plan is the migration plan file that `crhook migrate` writes and
// the runtime shim reads (STATE_DIR/containers/ID/migration.json).
//
// It is its own package so that crhook-runtime, which podman runs for
// every container operation, links the plan and nothing else of
// engine/migrate: destinations (dest.go) need net/url, whose net/netip
// init work would run on every `state`, `kill` and `start`.
// engine/migrate re-exports every name here, so the orchestrator and the
// CLI keep writing migrate.Plan.
package plan
