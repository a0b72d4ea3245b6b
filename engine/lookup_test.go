package engine

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/crhook/crhook/config"
)

// TestLookRuntime: runtime.path is found on PATH or in the sbin
// directories podman's minimal PATH lacks, and anything execve would fail
// on is named with the fix (lookRuntime when a stat shows it, vetRuntime
// when the file's head does).
func TestLookRuntime(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string, mode os.FileMode) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
		return p
	}
	script := write("rt", "#!/bin/sh\nexit 0\n", 0o755)
	write("noexec", "#!/bin/sh\n", 0o644)
	write("emptybang", "#!\n", 0o755)
	write("relinterp", "#!sh\n", 0o755)
	write("dirinterp", "#!"+dir+"\n", 0o755)
	if err := os.Mkdir(filepath.Join(dir, "adir"), 0o755); err != nil {
		t.Fatal(err)
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(self, filepath.Join(dir, "me")); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", dir+":relative/dir")
	at := func() config.Loc { return config.Loc{File: "/etc/crhook/crhook.toml", Line: 3} }

	tests := []struct {
		name, want string // want: the path found, or an error substring
		ok         bool
	}{
		{"rt", script, true},
		{script, script, true},
		{"relinterp", filepath.Join(dir, "relinterp"), true}, // the kernel resolves it relative to the cwd: not ours to judge
		{"sh", "", true},                                     // found in /bin or /usr/bin, whatever PATH says
		{"adir", "is a directory", false},
		{"/dev/null", "is not a regular file", false},
		{"noexec", "chmod 0755", false}, // PATH lookup skips it; the fallback names it
		{filepath.Join(dir, "noexec"), "chmod 0755", false},
		{filepath.Join(dir, "emptybang"), "names no interpreter", false},
		{filepath.Join(dir, "dirinterp"), "which is not executable", false},
		{filepath.Join(dir, "me"), "is crhook itself", false},
		{"crhook-no-such-runtime", "not found", false},
	}
	for _, tc := range tests {
		got, err := lookRuntime(tc.name, at)
		if err == nil {
			err = vetRuntime(got, tc.name, at)
		}
		switch {
		case tc.ok && err != nil:
			t.Errorf("%s: %v", tc.name, err)
		case tc.ok && tc.want != "" && got != tc.want:
			t.Errorf("%s: found %q, want %q", tc.name, got, tc.want)
		case !tc.ok && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%s: %q, %v; want an error with %q", tc.name, got, err, tc.want)
		case !tc.ok && tc.want != "is crhook itself" && !strings.Contains(err.Error(), "crhook.toml:3"):
			t.Errorf("%s: the error does not say where runtime.path was set: %v", tc.name, err)
		}
	}
}

// TestInspectContainer reads podman's answer through a fake podman on
// PATH: the container's generated file and its own, or why crhook's
// config does not reach it.
func TestInspectContainer(t *testing.T) {
	dir := t.TempDir()
	bundle := filepath.Join(dir, "userdata")
	if err := os.MkdirAll(bundle, 0o755); err != nil {
		t.Fatal(err)
	}
	// The fake podman answers with the file named after the container.
	podman := "#!/bin/sh\nfor a; do :; done\n[ -f \"" + dir + "/$a.json\" ] || { echo \"Error: no such container $a\" >&2; exit 125; }\n/bin/cat \"" + dir + "/$a.json\"\n"
	if err := os.WriteFile(filepath.Join(dir, "podman"), []byte(podman), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", dir)
	answer := func(name, id, crioConfig string) {
		t.Helper()
		inspect := `[{"Id":"` + id + `","Name":"` + name + `","OCIRuntime":"crhook","OCIConfigPath":"` + bundle + `/config.json",` +
			`"ProcessLabel":"p","MountLabel":"m","Config":{"Annotations":{"a":"b"}}}]`
		if err := os.WriteFile(filepath.Join(dir, name+".json"), []byte(inspect), 0o644); err != nil {
			t.Fatal(err)
		}
		spec := `{"annotations":{}}`
		if crioConfig != "" {
			spec = `{"annotations":{"org.criu.config":"` + crioConfig + `","` + OriginalCRIUConfigAnnotation + `":"/own.conf"}}`
		}
		if err := os.WriteFile(filepath.Join(bundle, "config.json"), []byte(spec), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	gen := "/run/crhook/containers/" + testID + "/criu.conf"

	answer("web", testID, gen)
	c, err := InspectContainer("web")
	if err != nil || c.CRIUConfig != gen || c.CRIUFile != "/own.conf" || c.Bypass != "" || c.Name != "web" || c.Annotations["a"] != "b" || c.ProcessLabel != "p" {
		t.Errorf("created through crhook: %+v, %v", c, err)
	}
	answer("foreign", testID, "/etc/own.conf")
	if c, err = InspectContainer("foreign"); err != nil || c.CRIUConfig != "" || c.CRIUFile != "/etc/own.conf" || !strings.Contains(c.Bypass, `hand CRIU org.criu.config="/etc/own.conf" as it is`) {
		t.Errorf("its own file: %+v, %v", c, err)
	}
	answer("plain", testID, "")
	if c, err = InspectContainer("plain"); err != nil || !strings.Contains(c.Bypass, "read /etc/criu/runc.conf only") {
		t.Errorf("no file: %+v, %v", c, err)
	}
	if _, err = InspectContainer("missing"); err == nil || !strings.Contains(err.Error(), "no such container missing") {
		t.Errorf("missing container: %v", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "bad.json"), []byte("[{},{}]"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err = InspectContainer("bad"); err == nil || !strings.Contains(err.Error(), "returned 2 containers") {
		t.Errorf("two answers: %v", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "junk.json"), []byte("junk"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err = InspectContainer("junk"); err == nil || !strings.Contains(err.Error(), "decode podman container inspect junk") {
		t.Errorf("not JSON: %v", err)
	}
	t.Setenv("PATH", t.TempDir())
	if _, err = InspectContainer("web"); err == nil {
		t.Error("no podman: no error")
	}
}
