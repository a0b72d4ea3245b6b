package criuopt

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestCatalogMatchesCRIU compares the catalog with CRIU so that a new CRIU
// release with a new option, a changed argument kind or a new feature name
// is noticed: against the source tree tests/setup-host.sh unpacks, and by
// probing the binary.
func TestCatalogMatchesCRIU(t *testing.T) {
	t.Run("source", testCatalogSource)
	t.Run("binary", testCatalogBinary)
}

// criuSource returns the unpacked CRIU 4.2.x source tree.
func criuSource(t *testing.T) string {
	// setup-host.sh builds in criu-selinux/criu-VERSION; older hosts have criu-VERSION.
	dirs, _ := filepath.Glob("/var/cache/crhook/criu-4.2*/criu/config.c")
	more, _ := filepath.Glob("/var/cache/crhook/criu-selinux/criu-4.2*/criu/config.c")
	dirs = append(dirs, more...)
	if len(dirs) == 0 {
		t.Skip("CRIU 4.2 source not found under /var/cache/crhook: run tests/setup-host.sh")
	}
	return filepath.Dir(filepath.Dir(dirs[len(dirs)-1]))
}

func readSource(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// block returns the text from the line containing start to the next "};".
func block(t *testing.T, src, start string) string {
	t.Helper()
	i := strings.Index(src, start)
	if i < 0 {
		t.Fatalf("%q not found in CRIU source", start)
	}
	j := strings.Index(src[i:], "};")
	return src[i : i+j]
}

var (
	defineRe  = regexp.MustCompile(`(?m)^#define\s+([A-Z_]+)\s+"([^"]*)"`)
	longOptRe = regexp.MustCompile(`BOOL_OPT\(\s*("[^"]*"|[A-Z_]+)\s*,|\{\s*("[^"]*"|[A-Z_]+)\s*,\s*(no|required|optional)_argument`)
	featureRe = regexp.MustCompile(`\{\s*"([^"]+)"\s*,`)
	shortRe   = regexp.MustCompile(`short_opts\[\]\s*=\s*"([^"]*)"`)
)

func testCatalogSource(t *testing.T) {
	root := criuSource(t)
	macros := map[string]string{}
	headers, _ := filepath.Glob(filepath.Join(root, "criu/include/*.h"))
	for _, h := range headers {
		for _, m := range defineRe.FindAllStringSubmatch(readSource(t, h), -1) {
			macros[m[1]] = m[2]
		}
	}
	name := func(tok string) string {
		if v, err := unquoteC(tok); err == nil {
			return v
		}
		v, ok := macros[tok]
		if !ok {
			t.Fatalf("macro %s not defined in criu/include", tok)
		}
		return v
	}
	config := readSource(t, filepath.Join(root, "criu/config.c"))
	var got []string
	for _, m := range longOptRe.FindAllStringSubmatch(block(t, config, "long_opts[] = {"), -1) {
		if m[1] != "" {
			got = append(got, fmt.Sprintf("%s bool", name(m[1])))
		} else {
			got = append(got, fmt.Sprintf("%s %s", name(m[2]), m[3]))
		}
	}
	var want []string
	kinds := [...]string{NoArg: "no", RequiredArg: "required", OptionalArg: "optional"}
	for _, o := range catalog {
		if o.Negatable {
			want = append(want, o.Name+" bool")
		} else {
			want = append(want, o.Name+" "+kinds[o.Arg])
		}
	}
	if d := diffLists(want, got); d != "" {
		t.Errorf("catalog differs from long_opts of %s/criu/config.c (order matters for abbreviations):\n%s", root, d)
	}
	if m := shortRe.FindStringSubmatch(config); m == nil || m[1] != criuShortOpts {
		t.Errorf("short_opts of CRIU = %q, criuShortOpts = %q", m, criuShortOpts)
	}

	var feats []string
	for _, m := range featureRe.FindAllStringSubmatch(block(t, readSource(t, filepath.Join(root, "criu/cr-check.c")), "feature_list[] = {"), -1) {
		feats = append(feats, m[1])
	}
	if d := diffLists(criuFeatures(), feats); d != "" {
		t.Errorf("criuFeatures differs from feature_list of criu/cr-check.c:\n%s", d)
	}
}

// unquoteC reads a C string literal without escapes.
func unquoteC(tok string) (string, error) {
	if len(tok) < 2 || tok[0] != '"' || tok[len(tok)-1] != '"' {
		return "", fmt.Errorf("not a literal: %s", tok)
	}
	return tok[1 : len(tok)-1], nil
}

// diffLists describes where two ordered lists differ, "" if they do not.
func diffLists(want, got []string) string {
	var b strings.Builder
	for i := 0; i < max(len(want), len(got)); i++ {
		w, g := "(none)", "(none)"
		if i < len(want) {
			w = want[i]
		}
		if i < len(got) {
			g = got[i]
		}
		if w != g {
			fmt.Fprintf(&b, "  #%d: catalog %q, CRIU %q\n", i, w, g)
		}
	}
	return b.String()
}

// testCatalogBinary asks the binary itself through glibc's getopt
// messages, which name the option getopt resolved (so an abbreviation is
// not mistaken for a name): "NAME" alone says "option '--NAME' requires an
// argument" for a required value, "NAME=x" says "option '--NAME' doesn't
// allow an argument" for a flag, "no-NAME=x" says it for "--no-NAME" when
// that exists. An unknown name is "unrecognized". Every option --help
// documents must be in the catalog.
func testCatalogBinary(t *testing.T) {
	criu := findCRIU(t)
	dir := t.TempDir()
	var lines []string
	for _, o := range catalog {
		lines = append(lines, o.Name, o.Name+"=x", "no-"+o.Name+"=x")
	}
	lines = append(lines, "crhook-no-such-option")
	var files []string
	for i, l := range lines {
		f := filepath.Join(dir, fmt.Sprintf("%d.conf", i))
		if err := os.WriteFile(f, []byte(l+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		files = append(files, f)
	}
	res := runCRIU(criu, files)
	has := func(i int, msg string) bool { return strings.Contains(res[i].stderr, msg) }

	for k, o := range catalog {
		bare, eq, no := 3*k, 3*k+1, 3*k+2
		if has(bare, "unrecognized option") {
			t.Errorf("%s: CRIU does not know it", o.Name)
			continue
		}
		kind := OptionalArg
		switch {
		case has(bare, "option '--"+o.Name+"' requires an argument"):
			kind = RequiredArg
		case has(eq, "option '--"+o.Name+"' doesn't allow an argument"):
			kind = NoArg
		}
		if kind != o.Arg {
			t.Errorf("%s: CRIU takes its argument as kind %d, catalog says %d (%q)", o.Name, kind, o.Arg, res[bare].stderr+res[eq].stderr)
		}
		negatable := has(no, "option '--no-"+o.Name+"' doesn't allow an argument")
		if negatable != o.Negatable {
			t.Errorf("%s: CRIU negatable=%v, catalog says %v (%q)", o.Name, negatable, o.Negatable, res[no].stderr)
		}
	}
	if last := len(lines) - 1; !has(last, "unrecognized option") {
		t.Errorf("the probe cannot tell unknown options: CRIU said %q", res[last].stderr)
	}

	out, _ := exec.Command(criu, "--help").CombinedOutput()
	for _, m := range regexp.MustCompile(`--([a-z][a-z0-9-]*)`).FindAllStringSubmatch(string(out), -1) {
		if _, _, ok := Lookup(m[1]); !ok && !strings.HasSuffix(m[1], "-") {
			t.Errorf("criu --help documents --%s, which the catalog lacks", m[1])
		}
	}
}
