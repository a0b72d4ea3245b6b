package doctor

import "testing"

func TestCRIUSELinux(t *testing.T) {
	selinuxOn := func(mode string) func(f *fixture) {
		return func(f *fixture) { f.write("/sys/fs/selinux/enforce", mode, 0o644) }
	}
	runCases(t, []checkCase{
		{name: "no libselinux, SELinux off", id: "criu.selinux", status: OK,
			want: []string{"does not link libselinux; that matters only with SELinux enabled"}},
		{name: "libselinux, SELinux off", id: "criu.selinux", status: OK,
			setup: func(f *fixture) { f.libs = append(f.libs, "libselinux.so.1") },
			want:  []string{"/usr/local/sbin/criu needs libselinux.so.1"}},
		{name: "libselinux, enforcing", id: "criu.selinux", status: OK,
			setup: func(f *fixture) {
				selinuxOn("1")(f)
				f.libs = append(f.libs, "libselinux.so.1")
			},
			want: []string{"needs libselinux.so.1"}},
		{name: "no libselinux, enforcing", id: "criu.selinux", status: Fail, setup: selinuxOn("1"),
			want: []string{
				"does not link libselinux (DT_NEEDED: libbsd.so.0",
				"SELinux is enforcing",
				"restored containers lose their label: they come back as",
				"not as their container_t:s0:cX,cY",
				"fix: install a CRIU linked with libselinux",
				"libselinux1-dev (Debian)",
			}},
		{name: "no libselinux, permissive", id: "criu.selinux", status: Fail, setup: selinuxOn("0"),
			want: []string{"SELinux is permissive", "restored containers lose their label"}},
		{name: "static CRIU, enforcing", id: "criu.selinux", status: Warn,
			setup: func(f *fixture) {
				selinuxOn("1")(f)
				f.libs = nil
			},
			want: []string{"needs no shared library (static?)", "fix: install a CRIU linked with libselinux"}},
		{name: "no criu", id: "criu.selinux", status: Skip,
			setup: func(f *fixture) { delete(f.run.paths, "criu") }},
	})
}
