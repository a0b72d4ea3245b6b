package doctor

import "testing"

func TestRlimits(t *testing.T) {
	runCases(t, []checkCase{
		{name: "this machine: podman's default nofile", id: "limits.rlimits", status: Fail,
			want: []string{"lacks CAP_SYS_RESOURCE", "nofile=1048576:1048576 (podman's default) exceeds the hard limit 20000",
				"nproc=1048576:1048576 (podman's default) exceeds the hard limit 96365",
				`default_ulimits = ["nofile=20000:20000", "nproc=96365:96365"]`}},
		{name: "default_ulimits within the host", id: "limits.rlimits", status: OK,
			setup: func(f *fixture) {
				f.write("/etc/containers/containers.conf.d/60-ulimits.conf",
					"[containers]\ndefault_ulimits = [\"nofile=1024:1024\", \"nproc=4096:4096\"]\n", 0o644)
			},
			want: []string{"nofile=1024:1024 (default_ulimits in /etc/containers/containers.conf.d/60-ulimits.conf) within the hard limit 20000"}},
		{name: "nofile set, nproc left to podman", id: "limits.rlimits", status: Fail,
			setup: func(f *fixture) {
				f.write("/etc/containers/containers.conf.d/60-ulimits.conf", "[containers]\ndefault_ulimits = [\"nofile=1024\"]\n", 0o644)
			},
			want: []string{"nofile=1024:1024", "nproc=1048576:1048576 (podman's default) exceeds"}},
		{name: "unlimited", id: "limits.rlimits", status: Fail,
			setup: func(f *fixture) {
				f.write("/etc/containers/containers.conf.d/60-ulimits.conf",
					"[containers]\ndefault_ulimits = [\"nofile=1024\", \"nproc=4096\", \"core=-1\"]\n", 0o644)
			},
			want: []string{"core=", "exceeds the hard limit"}},
		{name: "CAP_SYS_RESOURCE", id: "limits.rlimits", status: OK,
			setup: func(f *fixture) { f.write("/proc/self/status", "CapEff:\t000001ffffffffff\n", 0o444) },
			want:  []string{"has CAP_SYS_RESOURCE"}},
	})
}

func TestParseUlimit(t *testing.T) {
	for _, tc := range []struct {
		in         string
		soft, hard uint64
		bad        bool
	}{
		{in: "nofile=1024:2048", soft: 1024, hard: 2048},
		{in: "nproc=4096", soft: 4096, hard: 4096},
		{in: "nofile", bad: true},
		{in: "nofile=x", bad: true},
	} {
		u, err := parseUlimit(tc.in)
		if (err != nil) != tc.bad || (!tc.bad && (u.soft != tc.soft || u.hard != tc.hard)) {
			t.Errorf("parseUlimit(%q) = %+v, %v", tc.in, u, err)
		}
	}
}
