package engine

import (
	"os/exec"
	"strings"
	"testing"
)

// importRules is docs/packages.md's map as a test: for each package (and
// new packages below it), exactly the crhook packages it may import. The
// longest matching prefix applies; packages not listed (tests, hook/crhook)
// may import anything.
var importRules = map[string][]string{
	"config/criuopt":      nil, // pure: the CRIU option language, no I/O
	"config/safefile":     nil, // the single copies of the file rules
	"config":              {"config/criuopt", "config/safefile"},
	"config/edit":         {"config/criuopt", "config/safefile"},
	"engine/diagnose":     {"config/safefile"},     // a CRIU log in, a diagnosis out
	"engine/migrate":      {"engine/migrate/plan"}, // the orchestrator's pure rules; re-exports the plan
	"engine/migrate/plan": nil,                     // the plan the shim reads: light, crhook-runtime links it
	"engine/migrate/pki":  {"engine/migrate"},
	// The orchestrator drives podman and the shim over ssh: it writes the
	// shim's plan (engine) and each host's TLS material (pki).
	"engine/migrate/orchestrate": {"engine", "engine/migrate", "engine/migrate/pki", "config"},
	"engine/doctor":              {"config", "config/criuopt", "config/safefile"},
	"engine":                     {"config", "config/criuopt", "config/safefile", "engine/diagnose", "engine/migrate/plan"},
	"hook/crhook-runtime":        {"config", "engine"},
}

const module = "github.com/crhook/crhook/"

// rule is the longest importRules key that is p or a parent of p.
func rule(p string) (string, bool) {
	best, ok := "", false
	for k := range importRules {
		if (p == k || strings.HasPrefix(p, k+"/")) && len(k) > len(best) {
			best, ok = k, true
		}
	}
	return best, ok
}

// TestPackageImports fails when a package imports a crhook package the
// map does not allow it: e.g. engine importing doctor or the admin CLI, or
// config importing engine. It asks the go command for the real imports.
func TestPackageImports(t *testing.T) {
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go command in PATH to list imports: ", err)
	}
	out, err := exec.Command(goBin, "list", "-f", `{{.ImportPath}}{{range .Imports}} {{.}}{{end}}`, module+"...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	checked := 0
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		fields := strings.Fields(line)
		pkg := strings.TrimPrefix(fields[0], module)
		r, ok := rule(pkg)
		if !ok {
			continue
		}
		checked++
		for _, imp := range fields[1:] {
			if !strings.HasPrefix(imp, module) {
				continue
			}
			imp = strings.TrimPrefix(imp, module)
			allowed := false
			for _, a := range importRules[r] {
				if imp == a {
					allowed = true
				}
			}
			if !allowed {
				t.Errorf("%s imports %s; docs/packages.md allows it only %q", pkg, imp, importRules[r])
			}
		}
	}
	if checked < len(importRules) {
		t.Errorf("checked %d packages, want at least %d: did the module move?", checked, len(importRules))
	}
}
