package doctor

import "testing"

func useCrun(f *fixture) {
	f.write("/etc/crhook/crhook.toml", "[runtime]\npath = \"crun\"\n", 0o644)
}

func TestRuntimeCheck(t *testing.T) {
	crun126 := Output{Stdout: "crun version 1.26\ncommit: 0\nrundir: /run/crun\nspec: 1.0.0\n+SYSTEMD +SELINUX +CAP +SECCOMP +EBPF +CRIU +YAJL\n"}
	runCases(t, []checkCase{
		{name: "runc 1.1.5", id: "runtime.criu_config", status: OK,
			want: []string{"/usr/sbin/runc is runc 1.1.5: passes org.criu.config"}},
		{name: "runc rc6", id: "runtime.criu_config", status: Fail,
			setup: func(f *fixture) { f.answer("runc --version", Output{Stdout: "runc version 1.0.0-rc6\n"}) },
			want:  []string{"ignores org.criu.config", "install runc 1.0.0 or later"}},
		{name: "runc rc92", id: "runtime.criu_config", status: OK,
			setup: func(f *fixture) { f.answer("runc --version", Output{Stdout: "runc version 1.0.0-rc92\n"}) }},
		{name: "runc missing", id: "runtime.criu_config", status: Fail,
			setup: func(f *fixture) { delete(f.run.paths, "runc") },
			want:  []string{`runtime.path in crhook.toml is "runc", not found`}},
		{name: "Debian crun 1.8.1", id: "runtime.criu_config", status: Fail, setup: useCrun,
			want: []string{"crun 1.8.1", "no +CRIU", "crun < 1.26.0", `set runtime.path = "runc"`,
				"a crun built with CRIU support (+CRIU), crun 1.26.0 or later"}},
		{name: "crun 1.26 +CRIU, CRIU 4.2.1", id: "runtime.criu_config", status: OK,
			setup: func(f *fixture) { useCrun(f); f.answer("crun --version", crun126) },
			want: []string{"+CRIU", "crun loads /usr/lib/x86_64-linux-gnu/libcriu.so.2, which has criu_set_config_file",
				"passes the CRIU config file", "/etc/criu/crun.conf, else /etc/criu/runc.conf"}},
		{name: "crun 1.26 +CRIU, no libcriu", id: "runtime.criu_config", status: Fail,
			setup: func(f *fixture) { useCrun(f); f.answer("crun --version", crun126); f.libcriu = "" },
			want:  []string{"libcriu.so.2 not found", "could not load `libcriu.so.2`", "install libcriu2 from CRIU 4.2 or later"}},
		{name: "crun 1.26 +CRIU, libcriu of CRIU 4.1", id: "runtime.criu_config", status: Fail,
			setup: func(f *fixture) {
				useCrun(f)
				f.answer("crun --version", crun126)
				f.libcriuSyms = map[string]bool{"criu_dump": true}
			},
			want: []string{"lacks criu_set_config_file", "refuses org.criu.config"}},
		{name: "crun 1.26 +CRIU, CRIU 4.1", id: "runtime.criu_config", status: Fail,
			setup: func(f *fixture) {
				useCrun(f)
				f.answer("crun --version", crun126)
				f.answer("criu --version", Output{Stdout: "Version: 4.1\n"})
			},
			want: []string{"libcriu (CRIU 4.1.0) < 4.2.0"}},
	})
}
