package engine

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"github.com/crhook/crhook/config"
	"github.com/crhook/crhook/config/criuopt"
)

func TestConfPathRejectsEscapes(t *testing.T) {
	if _, err := ConfPath("/run/crhook", "../../etc"); !errors.Is(err, ErrBadID) {
		t.Fatalf("err = %v, want ErrBadID", err)
	}
	p, err := ConfPath("/run/crhook", "abc")
	if err != nil || p != "/run/crhook/containers/abc/criu.conf" {
		t.Fatalf("ConfPath = %q, %v", p, err)
	}
}

func TestWriteConfModes(t *testing.T) {
	path := filepath.Join(t.TempDir(), "containers", "abc", "criu.conf")
	for i := 0; i < 2; i++ { // the second write replaces the first
		if err := WriteConf(path, []byte("tcp-established\n")); err != nil {
			t.Fatal(err)
		}
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("file mode %v, %v; want 0600", fi.Mode(), err)
	}
	di, _ := os.Stat(filepath.Dir(path))
	if di.Mode().Perm() != 0o700 {
		t.Fatalf("dir mode %v, want 0700", di.Mode())
	}
	entries, _ := os.ReadDir(filepath.Dir(path))
	if len(entries) != 1 {
		t.Fatalf("temp files left behind: %v", entries)
	}
}

func TestWriteConfRefusesSymlinkedTemp(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "containers", "c")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	victim := filepath.Join(t.TempDir(), "victim")
	_ = os.WriteFile(victim, []byte("keep"), 0o644)
	// A planted link at the temp name must not be followed.
	tmp := filepath.Join(dir, ".criu.conf.tmp"+strconv.Itoa(os.Getpid()))
	if err := os.Symlink(victim, tmp); err != nil {
		t.Fatal(err)
	}
	_ = WriteConf(filepath.Join(dir, "criu.conf"), []byte("x\n"))
	if b, _ := os.ReadFile(victim); string(b) != "keep" {
		t.Fatalf("write followed a symlink: victim now %q", b)
	}
}

func TestRenderExplainsOrigins(t *testing.T) {
	opt, _, _ := criuopt.Lookup("tcp-established")
	own, _, _ := criuopt.Lookup("log-file")
	r := &config.Resolution{
		Layers:  []config.Layer{{Path: "/etc/criu/default.conf", Present: true}, {Path: "/etc/criu/runc.conf"}},
		Options: []config.Option{{Statement: criuopt.Statement{Option: opt}, Origin: config.Origin{File: "/etc/criu/default.conf", Line: 3}}},
		Dropped: []config.Dropped{{Option: config.Option{Statement: criuopt.Statement{Option: own, Value: "/x", HasValue: true},
			Origin: config.Origin{File: "/etc/criu/default.conf", Line: 4}}, Reason: "owned"}},
	}
	got := string(Render("abc", r))
	for _, want := range []string{"container abc", "/etc/criu/default.conf (read)", "/etc/criu/runc.conf (absent)",
		"# dropped log-file from /etc/criu/default.conf:4: owned", "# from /etc/criu/default.conf:3\ntcp-established\n"} {
		if !strings.Contains(got, want) {
			t.Errorf("rendered file lacks %q:\n%s", want, got)
		}
	}
	// What crhook writes, CRIU's parser must take back unchanged.
	stmts, err := criuopt.Parse("criu.conf", []byte(got))
	if err != nil || len(stmts) != 1 || stmts[0].Name() != "tcp-established" {
		t.Fatalf("reparse of rendered file: %v %v", stmts, err)
	}
}

func TestAnnotateBundleKeepsSpec(t *testing.T) {
	dir := t.TempDir()
	orig := `{"ociVersion":"1.0.2","process":{"args":["sh","-c","echo \u003chi\u003e"],"env":["A=1"]},` +
		`"annotations":{"io.podman.x":"y"},"linux":{"resources":{"memory":{"limit":1048576}}},"x-unknown":[1,2.5,null]}`
	path := filepath.Join(dir, "config.json")
	if err := os.WriteFile(path, []byte(orig), 0o640); err != nil {
		t.Fatal(err)
	}
	if err := annotateBundle(dir, map[string]string{CRIUConfigAnnotation: "/run/crhook/containers/abc/criu.conf"}); err != nil {
		t.Fatal(err)
	}
	var before, after map[string]any
	_ = json.Unmarshal([]byte(orig), &before)
	data, _ := os.ReadFile(path)
	if err := json.Unmarshal(data, &after); err != nil {
		t.Fatal(err)
	}
	ann := after["annotations"].(map[string]any)
	if ann[CRIUConfigAnnotation] != "/run/crhook/containers/abc/criu.conf" || ann["io.podman.x"] != "y" {
		t.Fatalf("annotations: %v", ann)
	}
	delete(ann, CRIUConfigAnnotation)
	if !reflect.DeepEqual(before, after) {
		t.Fatalf("spec changed beyond the annotation:\nbefore %v\nafter  %v", before, after)
	}
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o640 {
		t.Fatalf("mode changed to %v", fi.Mode())
	}
}

func TestRuncStateAnnotations(t *testing.T) {
	root := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "abc"), 0o700); err != nil {
		t.Fatal(err)
	}
	state := `{"id":"abc","config":{"labels":["org.criu.config=/run/crhook/containers/abc/criu.conf",` +
		`"io.crhook.criu.ghost-limit=1M=x","bundle=/b"]},"cgroup_paths":{}}`
	if err := os.WriteFile(filepath.Join(root, "abc", "state.json"), []byte(state), 0o600); err != nil {
		t.Fatal(err)
	}
	ann, ok := runcStateAnnotations(root, "abc")
	if !ok || ann[CRIUConfigAnnotation] != "/run/crhook/containers/abc/criu.conf" || ann["io.crhook.criu.ghost-limit"] != "1M=x" {
		t.Fatalf("annotations = %v, %v", ann, ok)
	}
	if _, ok := runcStateAnnotations(root, "missing"); ok {
		t.Fatal("a missing state file must fall back to `runtime state`")
	}
}
