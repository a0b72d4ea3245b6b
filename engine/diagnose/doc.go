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
// "crhook explain --format json" prints a Diagnosis as one JSON object. The
// fields are stable: new fields may be added, none are renamed or removed.
//
//	rule         string   catalog entry: criu-too-old, no-checkpoint-restore,
//	                      selinux, no-space, no-dirty-tracking,
//	                      tcp-established, shell-job, file-locks, ext-unix-sk,
//	                      ghost-limit, link-remap, pid-in-use; or, when no
//	                      entry matched: generic, no-error, empty-log, no-log
//	operation    string   dump, pre-dump or restore; absent when unknown
//	log          string   the log that was read ("runtime stderr" when the
//	                      cause came from the runtime's own message)
//	line         int      1-based line of the root cause; absent when none
//	quote        []string the quoted lines, control characters escaped
//	quote_lines  []int    their line numbers, same length as quote
//	meaning      string   one sentence
//	engine       string   what the fixes are written for: podman, cri-o,
//	                      containerd, runc or criu
//	fixes        []object {"scope": ..., "command": ...}, most general
//	                      first; scope is "all containers" (a CRIU config
//	                      layer: every checkpoint on the host or node, plain
//	                      criu included), "one container" (an
//	                      io.crhook.criu.* annotation given when the
//	                      container or pod is created), "this time" (a
//	                      flag of this checkpoint or restore) or "host"
//	config       string   the CRIU config file in effect; absent when unknown
//	generic      bool     true when no catalog entry matched
package diagnose
