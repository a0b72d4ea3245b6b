// Package diagnose explains a failed CRIU dump or restore from its log: the
// root-cause line (not merely the first "Error": CRIU logs a harmless rlimit
// error first when it lacks CAP_SYS_RESOURCE), what it means in one
// sentence, and the exact fixes written for the engine the user drives
// (podman, CRI-O or containerd under Kubernetes, runc by hand, or the
// plain criu command line; see fix.go). crhook-runtime prints Diagnosis.Text on stderr when a
// checkpoint or restore fails, and "crhook explain LOGFILE" prints it for
// any CRIU log.
//
// The known failures are data, in catalog.go; anything else gets a generic
// diagnosis quoting the first and the last CRIU errors with the log path,
// and a missing, empty or error-free log is said to be so: never silence.
//
// The log is streamed line by line with a small ring of recent lines, so a
// 100 MB log costs about a tenth of a second and constant memory. It is read
// only after a failure.
//
// # JSON schema
//
// "crhook explain --format json" prints a Diagnosis as one JSON object. Its
// keys are snake_case and stable (new keys may be added, none renamed or
// removed); they are documented in the JSON OUTPUT section of
// crhook-explain(1), docs/crhook-explain.1.md, which
// hook/crhook/json_test.go holds to the output.
package diagnose
