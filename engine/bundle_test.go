package engine

import "testing"

func TestContainerFile(t *testing.T) {
	const gen = "/run/crhook/containers/abc/criu.conf"
	tests := []struct {
		name string
		ann  map[string]string
		want string
	}{
		{"none", map[string]string{"x": "y"}, ""},
		{"named by its creator", map[string]string{CRIUConfigAnnotation: "/etc/criu/my.conf"}, "/etc/criu/my.conf"},
		{"pointed by crhook, remembered", map[string]string{CRIUConfigAnnotation: gen, OriginalCRIUConfigAnnotation: "/etc/criu/my.conf"}, "/etc/criu/my.conf"},
		{"pointed by crhook, none named", map[string]string{CRIUConfigAnnotation: gen}, ""},
		{"creator's annotation wins over a remembered one", map[string]string{CRIUConfigAnnotation: "/a.conf", OriginalCRIUConfigAnnotation: "/b.conf"}, "/a.conf"},
		{"another container's generated file is no layer", map[string]string{CRIUConfigAnnotation: "/run/crhook/containers/other/criu.conf"}, ""},
		{"a look-alike outside the state dir is a layer", map[string]string{CRIUConfigAnnotation: "/tmp/containers/abc/criu.conf"}, "/tmp/containers/abc/criu.conf"},
	}
	for _, tc := range tests {
		if got := containerFile(tc.ann, "/run/crhook"); got != tc.want {
			t.Errorf("%s: containerFile = %q, want %q", tc.name, got, tc.want)
		}
	}
	if !generatedFor(gen, "abc") || generatedFor(gen, "abd") || generatedFor("/etc/criu/abc/criu.conf", "abc") {
		t.Error("generatedFor misjudges the generated file's path")
	}
}
