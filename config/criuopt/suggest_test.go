package criuopt

import "testing"

func TestSuggest(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"tcp-establised", "tcp-established"},
		{"shelljob", "shell-job"},
		{"no-tcp-establshed", "no-tcp-established"},
		{"manage-cgroup", "manage-cgroups"},
		{"xyzzy", ""},
		{"images-directory", "images-dir"},
		{"frobnicate-widgets", ""},
	} {
		if got := Suggest(c.in); got != c.want {
			t.Errorf("Suggest(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}
