package doctor

import "testing"

func selinuxOn(f *fixture) {
	f.write("/sys/fs/selinux/enforce", "1", 0o644)
	f.answer("semodule -l", Output{Stdout: "abrt\ncontainer\ncrhook\n"})
	f.answer("rpm -q --qf %{VERSION} container-selinux", Output{Stdout: "2.230.0"})
}

func TestSELinuxChecks(t *testing.T) {
	runCases(t, []checkCase{
		{name: "this machine: off", id: "selinux.status", status: Skip,
			want: []string{"no /sys/fs/selinux/enforce: SELinux is not active", "CONFIG_SECURITY_SELINUX=y"}},
		{name: "off: policy not checked", id: "selinux.container_policy", status: Skip},
		{name: "off: module not checked", id: "selinux.crhook_module", status: Skip},
		{name: "enforcing", id: "selinux.status", status: OK, setup: selinuxOn, want: []string{"SELinux is enforcing"}},
		{name: "permissive", id: "selinux.status", status: OK,
			setup: func(f *fixture) { selinuxOn(f); f.write("/sys/fs/selinux/enforce", "0", 0o644) },
			want:  []string{"SELinux is permissive"}},
		{name: "container-selinux new enough", id: "selinux.container_policy", status: OK, setup: selinuxOn,
			want: []string{"container-selinux 2.230.0 (rpm) >= 2.96.0"}},
		{name: "container-selinux too old", id: "selinux.container_policy", status: Fail,
			setup: func(f *fixture) {
				selinuxOn(f)
				f.answer("rpm -q --qf %{VERSION} container-selinux", Output{Stdout: "2.90"})
			},
			want: []string{"< 2.96.0", "ns_last_pid"}},
		{name: "container-selinux from dpkg", id: "selinux.container_policy", status: OK,
			setup: func(f *fixture) {
				selinuxOn(f)
				delete(f.run.out, "rpm -q --qf %{VERSION} container-selinux")
				f.answer("dpkg-query -W -f ${Version} container-selinux", Output{Stdout: "2.211.1-1"})
			},
			want: []string{"(dpkg-query)"}},
		{name: "no container module", id: "selinux.container_policy", status: Fail,
			setup: func(f *fixture) { selinuxOn(f); f.answer("semodule -l", Output{Stdout: "abrt\n"}) }},
		{name: "crhook module", id: "selinux.crhook_module", status: OK, setup: selinuxOn},
		{name: "no crhook module", id: "selinux.crhook_module", status: Fail,
			setup: func(f *fixture) { selinuxOn(f); f.answer("semodule -l", Output{Stdout: "container\n"}) },
			want:  []string{"semodule -i"}},
	})
}
