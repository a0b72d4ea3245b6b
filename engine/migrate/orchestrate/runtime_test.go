package orchestrate

import "testing"

func TestConmonRuntime(t *testing.T) {
	for _, tc := range []struct{ name, in, want string }{
		{"podman 4.3", "/usr/bin/conmon\x00--api-version\x001\x00-c\x00f427\x00-u\x00f427\x00-r\x00/usr/local/libexec/crhook-test/crhook-crun\x00-b\x00/var/lib/x\x00", "/usr/local/libexec/crhook-test/crhook-crun"},
		{"long flag", "conmon\x00--runtime\x00/usr/bin/crhook-runtime\x00", "/usr/bin/crhook-runtime"},
		{"long flag with =", "conmon\x00--runtime=/usr/bin/runc\x00", "/usr/bin/runc"},
		{"-r last, no value", "conmon\x00-r\x00", ""},
		{"none", "conmon\x00-c\x00id\x00", ""},
		{"empty", "", ""},
	} {
		if got := ConmonRuntime([]byte(tc.in)); got != tc.want {
			t.Errorf("%s: ConmonRuntime = %q, want %q", tc.name, got, tc.want)
		}
	}
}
