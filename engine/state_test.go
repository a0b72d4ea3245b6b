package engine

import (
	"maps"
	"os"
	"path/filepath"
	"testing"
)

func TestStoredAnnotations(t *testing.T) {
	const id = "abc123"
	// One root holding both runtimes' files for the same ID: the runtime
	// crhook wraps decides which one is the container's.
	root := t.TempDir()
	dir := filepath.Join(root, id)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	write := func(name, data string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("state.json", `{"config":{"labels":["bundle=/b","org.criu.config=/runc/says"]}}`)
	write("config.json", `{"ociVersion":"1.0.0","annotations":{"org.criu.config":"/crun/says","io.crhook.criu.tcp-established":"true"}}`)
	noAnn := t.TempDir()
	if err := os.MkdirAll(filepath.Join(noAnn, id), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(noAnn, id, "config.json"), []byte(`{"ociVersion":"1.0.0"}`), 0o600); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name, runtime, root string
		want                map[string]string
		ok                  bool
	}{
		{"runc reads state.json labels", "/usr/sbin/runc", root,
			map[string]string{"bundle": "/b", "org.criu.config": "/runc/says"}, true},
		{"crun reads its config.json, not runc's state.json", "/usr/local/libexec/crhook-test/crun", root,
			map[string]string{"org.criu.config": "/crun/says", "io.crhook.criu.tcp-established": "true"}, true},
		{"crun spec without annotations", "crun", noAnn, map[string]string{}, true},
		{"crun, no state there", "crun", t.TempDir(), nil, false},
		{"runc, crun's layout only", "runc", noAnn, nil, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := storedAnnotations(tc.runtime, tc.root, id)
			if ok != tc.ok || !maps.Equal(got, tc.want) {
				t.Errorf("storedAnnotations(%q) = %v, %v; want %v, %v", tc.runtime, got, ok, tc.want, tc.ok)
			}
		})
	}
}

func TestDefaultRoot(t *testing.T) {
	for runtime, want := range map[string]string{
		"runc": "/run/runc", "/usr/sbin/runc": "/run/runc",
		"crun": "/run/crun", "/usr/local/libexec/crhook-test/crun": "/run/crun",
	} {
		if got := defaultRoot(runtime); got != want {
			t.Errorf("defaultRoot(%q) = %q, want %q", runtime, got, want)
		}
	}
}
