package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/crhook/crhook/config"
	"github.com/crhook/crhook/engine"
	"github.com/crhook/crhook/engine/doctor"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/golden")

// jsonDoc is one --format json output: how to produce it, its golden file,
// the man page that documents its keys, and the paths whose values are
// maps with keys chosen by the data (annotation names), not by crhook.
type jsonDoc struct {
	name, page string
	dataKeys   []string
	write      func(t *testing.T) []byte
}

var jsonDocs = []jsonDoc{
	{name: "config-show", page: "crhook-config.1.md", dataKeys: []string{"container.annotations"}, write: configShowJSON},
	{name: "explain", page: "crhook-explain.1.md", write: explainJSON},
	{name: "doctor", page: "crhook-doctor.1.md", write: doctorJSON},
}

// TestJSONGolden pins every key of the three JSON outputs: a renamed,
// added or removed key changes the golden file (go test -update rewrites
// it; say so in the commit, tools read these keys).
func TestJSONGolden(t *testing.T) {
	for _, d := range jsonDocs {
		t.Run(d.name, func(t *testing.T) {
			golden(t, d.name+".json", d.write(t))
		})
	}
}

// TestJSONKeysDocumented: every key the output has is snake_case and is
// documented in the JSON OUTPUT section of its man page, and the page
// documents no key the output lacks.
func TestJSONKeysDocumented(t *testing.T) {
	snake := regexp.MustCompile(`^[a-z][a-z0-9_]*$`)
	for _, d := range jsonDocs {
		t.Run(d.name, func(t *testing.T) {
			var v any
			if err := json.Unmarshal(d.write(t), &v); err != nil {
				t.Fatal(err)
			}
			got := map[string]bool{}
			jsonPaths(v, "", d.dataKeys, func(path, key string) {
				if !got[path] && !snake.MatchString(key) {
					t.Errorf("key %q (%s) is not snake_case: a Go field name leaking?", key, path)
				}
				got[path] = true
			})
			documented := pageJSONKeys(t, d.page)
			for _, p := range sortedKeys(got) {
				if !documented[p] {
					t.Errorf("%s: the output has %q, the JSON OUTPUT section does not document it", d.page, p)
				}
			}
			for _, p := range sortedKeys(documented) {
				if !got[p] {
					t.Errorf("%s documents %q, which the output does not have", d.page, p)
				}
			}
		})
	}
}

// jsonPaths calls fn for every object key below v, as a path a.b[].c.
func jsonPaths(v any, prefix string, dataKeys []string, fn func(path, key string)) {
	switch x := v.(type) {
	case map[string]any:
		for k, child := range x {
			path := k
			if prefix != "" {
				path = prefix + "." + k
			}
			fn(path, k)
			if !slices.Contains(dataKeys, path) {
				jsonPaths(child, path, dataKeys, fn)
			}
		}
	case []any:
		for _, child := range x {
			jsonPaths(child, prefix+"[]", dataKeys, fn)
		}
	}
}

// jsonKeyTerm is how a man page documents a key in its JSON OUTPUT
// section: a definition term such as **checks[].id** (string); one term
// line may name several keys.
var jsonKeyTerm = regexp.MustCompile(`\*\*([a-z_\[\]\.]+)\*\* \(`)

func pageJSONKeys(t *testing.T, page string) map[string]bool {
	t.Helper()
	text := readPage(t, page)
	start := strings.Index(text, "\n# JSON OUTPUT\n")
	if start < 0 {
		t.Fatalf("%s has no JSON OUTPUT section", page)
	}
	section := text[start+1:]
	if end := strings.Index(section[1:], "\n# "); end >= 0 {
		section = section[:end+1]
	}
	keys := map[string]bool{}
	for _, line := range strings.Split(section, "\n") {
		if !strings.HasPrefix(line, "**") {
			continue // definitions and prose may name keys too
		}
		for _, m := range jsonKeyTerm.FindAllStringSubmatch(line, -1) {
			keys[m[1]] = true
		}
	}
	if len(keys) == 0 {
		t.Fatalf("%s: JSON OUTPUT documents no key as **key** (type)", page)
	}
	return keys
}

func sortedKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata/golden", name)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (go test -update writes it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs (go test -update rewrites it):\n--- got\n%s--- want\n%s", path, got, want)
	}
}

// configShowJSON is `crhook config show --format json` for a container
// (every optional key present): a layer option, an annotation and a
// dropped option.
func configShowJSON(t *testing.T) []byte {
	root := t.TempDir()
	files := map[string]string{
		"etc/criu/default.conf":  "tcp-established\nlog-file /tmp/x.log\nghost-limit 4M\n",
		"etc/crhook/crhook.toml": "[annotations]\nallow = [\"file-locks\"]\n",
	}
	for name, content := range files {
		p := filepath.Join(root, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	p := config.DefaultPaths().Under(root)
	p.UserCRIU, p.SettingsEnv = "", ""
	settings, err := config.LoadSettings(p)
	if err != nil {
		t.Fatal(err)
	}
	ann := map[string]string{"io.crhook.criu.file-locks": "true", engine.CRIUConfigAnnotation: "/run/crhook/containers/3c712a82ce76/criu.conf"}
	res, err := config.Resolve(p, config.Input{Runtime: "runc", Annotations: ann, Settings: settings})
	if err != nil {
		t.Fatal(err)
	}
	v := &view{Runtime: "runc", Resolution: res, Container: &engine.Container{
		ID: "3c712a82ce7648d2b0f1a1d4e2c5b6a7980f1e2d3c4b5a69788796a5b4c3d2e1", Name: "web", Runtime: "crhook",
		Annotations: ann, CRIUConfig: ann[engine.CRIUConfigAnnotation],
		ProcessLabel: "system_u:system_r:container_t:s0:c1,c2", MountLabel: "system_u:object_r:container_file_t:s0:c1,c2",
	}}
	var buf bytes.Buffer
	if err := v.writeJSON(&buf); err != nil {
		t.Fatal(err)
	}
	return bytes.ReplaceAll(buf.Bytes(), []byte(root), []byte("/ROOT"))
}

// explainJSON is `crhook explain --format json` on podman's TCP failure
// (every optional key present).
func explainJSON(t *testing.T) []byte {
	var buf bytes.Buffer
	cmd := newRootCmd()
	cmd.SetOut(&buf)
	cmd.SetArgs([]string{"explain", "--format", "json", "../../engine/diagnose/testdata/logs/podman-tcp-established.dump.log"})
	if err := cmd.Execute(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// doctorJSON is `crhook doctor --format json` for a report with one
// check of each status.
func doctorJSON(t *testing.T) []byte {
	rep := &doctor.Report{Results: []doctor.Result{
		{ID: "kernel.checkpoint_restore", Title: "kernel built with CONFIG_CHECKPOINT_RESTORE", Status: doctor.OK,
			Evidence: []string{"CONFIG_CHECKPOINT_RESTORE=y (/proc/config.gz)"}},
		{ID: "kernel.mem_soft_dirty", Title: "soft-dirty tracking for pre-copy (pre-dump)", Status: doctor.Warn,
			Evidence: []string{"# CONFIG_MEM_SOFT_DIRTY is not set (/proc/config.gz)"}, Fix: "boot a kernel built with CONFIG_MEM_SOFT_DIRTY=y"},
		{ID: "limits.nofile", Title: "podman's default nofile within the hard limit", Status: doctor.Fail,
			Evidence: []string{"default_ulimits nofile=1048576 > hard limit 524288"}, Fix: "set default_ulimits in containers.conf"},
		{ID: "selinux.policy", Title: "crhook SELinux module", Status: doctor.Skip, Evidence: []string{}},
	}, Versions: &doctor.Versions{CRIU: "4.2.1", Runtime: "runc", RuntimeVersion: "1.1.5"}}
	var buf bytes.Buffer
	if err := rep.WriteJSON(&buf); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}
