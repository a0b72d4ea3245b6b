// Package criuopt is the CRIU option language of CRIU 4.2.1, pure: it
// reads and writes bytes, never files. Parse splits a config file into
// Statements exactly as CRIU does (getopt included); the catalog (Lookup,
// Options) describes every long option; Check is the one place that
// decides whether an option takes a value and whether a value is valid;
// Lint, Suggest and Format help people write files. Reading files is
// config's job (through config/safefile), writing them config/edit's.
package criuopt
