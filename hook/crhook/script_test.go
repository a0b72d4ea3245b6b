package main

import (
	"os"
	"testing"

	"github.com/rogpeppe/go-internal/testscript"
)

func TestMain(m *testing.M) {
	testscript.Main(m, map[string]func(){
		"crhook": func() { os.Exit(run(os.Args[1:])) },
		// The migration worker with a fake migration (migrate_worker_test.go).
		"crhook-fake-worker": fakeWorkerMain,
	})
}

// TestScripts runs the CLI end to end on scratch trees (--root $WORK/root);
// outputs are compared with golden files inside each script.
func TestScripts(t *testing.T) {
	testscript.Run(t, testscript.Params{Dir: "testdata/script"})
}
