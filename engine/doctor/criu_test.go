package doctor

import "testing"

func criu317(t *testing.T) func(f *fixture) {
	return func(f *fixture) {
		f.answer("criu --version", Output{Stdout: "Version: 3.17.1\n"})
		f.answer("criu check", Output{Code: 1, Stderr: readTestdata(t, "criu-3.17-check.stderr")})
	}
}

func TestCRIUChecks(t *testing.T) {
	runCases(t, []checkCase{
		{name: "4.2.1 found", id: "criu.binary", status: OK, want: []string{"/usr/local/sbin/criu: Version: 4.2.1"}},
		{name: "not found", id: "criu.binary", status: Fail,
			setup: func(f *fixture) { delete(f.run.paths, "criu") },
			want:  []string{"criu not found in PATH", "CRIU 4.2 or later (kernel 6.18.44 needs it)"}},
		{name: "does not run", id: "criu.binary", status: Fail,
			setup: func(f *fixture) {
				f.answer("criu --version", Output{Code: 127, Stderr: "criu: error while loading shared libraries: libnet.so.1\n"})
			},
			want: []string{"exit status 127: criu: error while loading shared libraries: libnet.so.1"}},
		{name: "4.2.1 check passes", id: "criu.check", status: OK, want: []string{"check: Looks good."}},
		{name: "3.17 check fails on 6.18", id: "criu.check", status: Fail, setup: criu317(t),
			want: []string{"CRIU 3.17.1, kernel 6.18.44-fc-v669", "Unexpected rt vDSO area bounds", "install CRIU 4.2 or later"}},
		{name: "check needs root", id: "criu.check", status: Skip, setup: func(f *fixture) { f.host.Euid = 1000 }},
		{name: "4.2.1 on 6.18", id: "criu.known_bad", status: OK, want: []string{"none of the 2 known-bad combinations"}},
		{name: "3.17 on 6.18: both rows", id: "criu.known_bad", status: Fail, setup: criu317(t),
			want: []string{"Unexpected rt vDSO area bounds", "checkpoint-restore/criu#2532", "Can't get 1:16 opt", "install CRIU 4.2 or later"}},
		{name: "4.1.1 on 6.18: TCP only", id: "criu.known_bad", status: Fail,
			setup: func(f *fixture) { f.answer("criu --version", Output{Stdout: "Version: 4.1.1\n"}) },
			want:  []string{"CRIU 4.1.1 < 4.2 on kernel 6.18.44-fc-v669 >= 6.16.0", "Can't get 1:16 opt"}},
		{name: "3.17 on 6.1", id: "criu.known_bad", status: OK,
			setup: func(f *fixture) {
				criu317(t)(f)
				f.write("/proc/sys/kernel/osrelease", "6.1.0-28-amd64\n", 0o444)
			}},
		{name: "vDSO row is x86 only", id: "criu.known_bad", status: OK,
			setup: func(f *fixture) {
				f.answer("criu --version", Output{Stdout: "Version: 4.0\n"})
				f.write("/proc/sys/kernel/osrelease", "6.14.0\n", 0o444)
				f.host.Arch = "arm64"
			}},
	})
}

func TestMinCRIU(t *testing.T) {
	for _, tc := range []struct {
		kernel, arch string
		want         string
	}{
		{"6.18.44", "amd64", "4.2.0"},
		{"6.14", "amd64", "4.1.0"},
		{"6.14", "arm64", ""},
		{"6.12", "amd64", ""},
	} {
		v, ok := minCRIU(mustVersion(tc.kernel), tc.arch)
		got := ""
		if ok {
			got = v.String()
		}
		if got != tc.want {
			t.Errorf("minCRIU(%s, %s) = %q, want %q", tc.kernel, tc.arch, got, tc.want)
		}
	}
}
