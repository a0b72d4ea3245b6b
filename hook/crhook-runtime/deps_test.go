package main

import (
	"os/exec"
	"strings"
	"testing"
)

// forbidden are packages crhook-runtime must not link, with the reason.
// podman runs crhook-runtime for every container operation (create, start,
// state, kill, delete...), so what it links is paid on every call: package
// init work, binary size, page faults. The admin CLI's packages belong in
// hook/crhook.
var forbidden = map[string]string{
	"github.com/spf13/cobra":                 "the admin CLI's command framework (hook/crhook)",
	"github.com/spf13/pflag":                 "cobra's flag parser: the runtime's flags are the wrapped runtime's",
	"github.com/crhook/crhook/engine/doctor": "host checks run by `crhook doctor`, never on the container path",
	"github.com/crhook/crhook/config/edit":   "the editor behind `crhook config set` and `unset`",
	// The shim reads a migration's plan and passes TLS file names to
	// CRIU; making certificates and reaching hosts is the orchestrator's.
	"crypto/x509": "certificates are made by `crhook migrate` (engine/migrate/pki), never by the runtime",
	// The runtime opens no connection itself (CRIU and runc do), and it
	// parses no destination: net/url is engine/migrate's (dest.go), which is
	// why the shim imports only engine/migrate/plan. net/url's net/netip
	// makes `unique` handles at init, a cost paid on every call.
	"net": "the runtime opens no connection and parses no URL; `crhook migrate` does (engine/migrate)",
}

// forbiddenExact are forbidden by themselves, not with their subpackages.
var forbiddenExact = map[string]string{
	"unique": "interning with a runtime cleanup set up at init (net/netip's); nothing on the runtime's path needs it",
}

// allowedHeavy are packages that are large but needed on the failure path;
// listed so that the choice stays visible.
var allowedHeavy = map[string]string{
	// Compiled lazily (sync.Once) and read only after a checkpoint or
	// restore failed, to print the fix on podman's stderr.
	"github.com/crhook/crhook/engine/diagnose": "failure explanations, needed when CRIU fails",
}

// TestRuntimeDeps fails when crhook-runtime starts to depend on the admin
// CLI's packages. It asks the go command for the real import graph, test
// files excluded.
func TestRuntimeDeps(t *testing.T) {
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go command in PATH to list the import graph: ", err)
	}
	out, err := exec.Command(goBin, "list", "-deps", ".").Output()
	if err != nil {
		t.Fatalf("go list -deps .: %v", err)
	}
	deps := strings.Fields(string(out))
	for _, p := range deps {
		for bad, why := range forbidden {
			if p == bad || strings.HasPrefix(p, bad+"/") {
				t.Errorf("crhook-runtime links %s (%s); find who imports it with `go list -deps -f '{{.ImportPath}}: {{.Imports}}' ./hook/crhook-runtime`", p, why)
			}
		}
		if why, ok := forbiddenExact[p]; ok {
			t.Errorf("crhook-runtime links %s (%s)", p, why)
		}
		if why, ok := allowedHeavy[p]; ok {
			t.Logf("links %s: %s", p, why)
		}
	}
	t.Logf("crhook-runtime links %d packages (standard library included)", len(deps))
}
