package engine

import (
	"fmt"
	"path/filepath"

	"github.com/crhook/crhook/config"
	"github.com/crhook/crhook/engine/diagnose"
)

// How a failed checkpoint or restore is explained: which CRIU log to read,
// and how the diagnosis is shown on the caller's stderr.

// workDir is where CRIU writes its logs: --work-path, which defaults to
// the images directory.
func (r *runner) workDir() string {
	if dir := r.inv.flag("--work-path", ""); dir != "" {
		return dir
	}
	return r.inv.flag("--image-path", "")
}

// setLogFile records where CRIU logs when the runtime's file or the
// container's (layers 3 and 4) kept a log-file: CRIU opens a relative
// name in its work directory, so crhook reads it there.
func (r *runner) setLogFile(res *config.Resolution) {
	s, ok := res.Get("log-file")
	if !ok || !s.HasValue || s.Value == "-" {
		r.logFile = ""
		return
	}
	r.logFile = s.Value
	if !filepath.IsAbs(s.Value) {
		r.logFile = filepath.Join(r.workDir(), s.Value)
	}
}

// explain prints what went wrong and how to fix it, read from the CRIU log
// of this operation. It runs only on failure, so success costs nothing.
func (r *runner) explain(id, runtimeOutput string) {
	fmt.Fprint(r.stderr, r.diagnose(id, runtimeOutput).Text())
}

// diagnose reads the CRIU log of this operation and explains it, with
// fixes in the commands of whoever called the shim.
func (r *runner) diagnose(id, runtimeOutput string) *diagnose.Diagnosis {
	dir := r.workDir()
	op, log := diagnose.OpDump, "dump.log"
	switch {
	case r.inv.cmd == "restore":
		op, log = diagnose.OpRestore, "restore.log"
	case r.inv.hasFlag("--pre-dump"):
		op = diagnose.OpPreDump // runc logs a pre-dump to dump.log too
	}
	path := filepath.Join(dir, log)
	if r.logFile != "" {
		path = r.logFile // a kept log-file moved CRIU's log
	}
	d, _ := diagnose.Explain(path, diagnose.Context{
		Operation: op, ContainerName: ShortID(id), ContainerID: id, ConfigFile: r.criuFile, RuntimeOutput: runtimeOutput,
		Engine: DetectEngine(r.inv.args), // fixes in the commands of whoever called us
	})
	if op == diagnose.OpRestore {
		onlyRootCause(d)
	}
	return d
}

// onlyRootCause drops the quoted context around the root-cause line. On
// restore podman gets our stderr through conmon, and when any line matches
// "no such file or directory" or "operation not permitted" it shows that
// line alone ("OCI runtime attempted to invoke a command that was not
// found"); CRIU's follow-up errors often do, and would hide the fix.
func onlyRootCause(d *diagnose.Diagnosis) {
	for i, n := range d.QuoteLines {
		if n == d.Line && i < len(d.Quote) {
			d.Quote, d.QuoteLines = d.Quote[i:i+1], d.QuoteLines[i:i+1]
			return
		}
	}
}

// ShortID is the 12-character form podman prints.
func ShortID(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}
