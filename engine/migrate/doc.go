// Package migrate holds the pure parts of `crhook migrate`: the plan file
// the orchestrator writes for the runtime shim (in engine/migrate/plan,
// re-exported here), the per-migration TLS material for CRIU's page server, the pre-copy stop rule, the choice of
// mode from measured facts, and the parsing of a destination. Nothing in
// it runs a process or needs root; the orchestrator and the shim do, and
// this package is what they agree on.
package migrate
