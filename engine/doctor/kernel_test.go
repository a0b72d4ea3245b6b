package doctor

import "testing"

const bootConfig = "/boot/config-6.18.44-fc-v669"

func TestKernelChecks(t *testing.T) {
	noConfig := func(f *fixture) { f.remove("/proc/config.gz") }
	runCases(t, []checkCase{
		{name: "config.gz has it", id: "kernel.checkpoint_restore", status: OK,
			want: []string{"CONFIG_CHECKPOINT_RESTORE=y (/proc/config.gz)"}},
		{name: "not set", id: "kernel.checkpoint_restore", status: Fail,
			setup: func(f *fixture) {
				f.write("/proc/config.gz", gz(t, "# CONFIG_CHECKPOINT_RESTORE is not set\nCONFIG_NAMESPACES=y\n"), 0o444)
			},
			want: []string{"# CONFIG_CHECKPOINT_RESTORE is not set", "CONFIG_CHECKPOINT_RESTORE=y"}},
		{name: "no config, ns_last_pid present", id: "kernel.checkpoint_restore", status: OK, setup: noConfig,
			want: []string{"no kernel config in /proc/config.gz or " + bootConfig, "ns_last_pid exists"}},
		{name: "no config, no ns_last_pid", id: "kernel.checkpoint_restore", status: Fail,
			setup: func(f *fixture) { noConfig(f); f.remove("/proc/sys/kernel/ns_last_pid") },
			want:  []string{"ns_last_pid is missing"}},
		{name: "namespaces", id: "kernel.namespaces", status: OK, want: []string{"CONFIG_PID_NS=y", "CONFIG_NET_NS=y"}},
		{name: "no net namespace", id: "kernel.namespaces", status: Fail,
			setup: func(f *fixture) {
				f.write("/proc/config.gz", gz(t, "CONFIG_NAMESPACES=y\nCONFIG_PID_NS=y\n# CONFIG_NET_NS is not set\n"), 0o444)
			},
			want: []string{"# CONFIG_NET_NS is not set"}},
		{name: "namespaces from /proc/self/ns", id: "kernel.namespaces", status: Fail,
			setup: func(f *fixture) { noConfig(f); f.remove("/proc/self/ns/net") },
			want:  []string{"/proc/self/ns lacks net"}},
		{name: "this machine: userfaultfd", id: "kernel.userfaultfd", status: OK, want: []string{"CONFIG_USERFAULTFD=y"}},
		{name: "this machine: no soft-dirty", id: "kernel.mem_soft_dirty", status: Warn,
			want: []string{"# CONFIG_MEM_SOFT_DIRTY is not set (/proc/config.gz)", "pre-dump", "CONFIG_MEM_SOFT_DIRTY=y"}},
		{name: "soft-dirty from /boot", id: "kernel.mem_soft_dirty", status: OK,
			setup: func(f *fixture) { noConfig(f); f.write(bootConfig, "CONFIG_MEM_SOFT_DIRTY=y\n", 0o644) },
			want:  []string{"CONFIG_MEM_SOFT_DIRTY=y (" + bootConfig + ")"}},
		{name: "soft-dirty from criu check", id: "kernel.mem_soft_dirty", status: Warn,
			setup: func(f *fixture) {
				noConfig(f)
				f.answer("criu check --feature mem_dirty_track", Output{Code: 1,
					Stderr: "Warn  (criu/cr-check.c:824): Dirty tracking is OFF. Memory snapshot will not work.\n"})
			},
			want: []string{"criu check --feature mem_dirty_track: exit 1: Warn  (criu/cr-check.c:824): Dirty tracking is OFF"}},
		{name: "uffd from criu check", id: "kernel.userfaultfd", status: OK,
			setup: func(f *fixture) {
				noConfig(f)
				f.answer("criu check --feature uffd", Output{Stdout: "uffd is supported\n"})
			},
			want: []string{"criu check --feature uffd: uffd is supported"}},
		{name: "no config, no criu", id: "kernel.userfaultfd", status: Skip,
			setup: func(f *fixture) { noConfig(f); delete(f.run.paths, "criu") },
			want:  []string{"criu not found in PATH=/usr/local/sbin:/usr/sbin:/usr/bin"}},
		{name: "no config, not root", id: "kernel.mem_soft_dirty", status: Skip,
			setup: func(f *fixture) { noConfig(f); f.host.Euid = 1000 },
			want:  []string{"needs root"}},
	})
}

func TestParseKernelConfigRelease(t *testing.T) {
	f := newFixture(t)
	f.remove("/proc/sys/kernel/osrelease")
	f.answer("uname -r", Output{Stdout: "6.1.0-28-amd64\n"})
	p := &probe{ctx: t.Context(), h: f.host}
	k := p.kernelInfo()
	if k.release != "6.1.0-28-amd64" || k.version.String() != "6.1.0" {
		t.Errorf("release %q version %s, want 6.1.0-28-amd64 from uname -r", k.release, k.version)
	}
}
