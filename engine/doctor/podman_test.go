package doctor

import "testing"

const twoContainers = `[{"Name":"web","OCIRuntime":"crhook"},{"Name":"db","OCIRuntime":"crun"}]`

func TestPodmanChecks(t *testing.T) {
	withContainers := func(f *fixture) {
		f.answer("podman ps -a --format json", Output{Stdout: `[{"Id":"aaa","Names":["web"]},{"Id":"bbb","Names":["db"]}]`})
		f.answer("podman container inspect --format json aaa bbb", Output{Stdout: twoContainers})
	}
	runCases(t, []checkCase{
		{name: "4.3.1", id: "podman.version", status: OK, want: []string{"podman 4.3.1, default runtime crun (/usr/bin/crun)"}},
		{name: "missing", id: "podman.version", status: Fail,
			setup: func(f *fixture) { delete(f.run.paths, "podman") }, want: []string{"podman not found"}},
		{name: "info fails", id: "podman.version", status: Fail,
			setup: func(f *fixture) {
				f.answer("podman info --format json", Output{Code: 125, Stderr: "Error: database is locked\n"})
			},
			want: []string{"podman info: exit status 125: Error: database is locked"}},
		{name: "registered by drop-in", id: "podman.registered", status: OK,
			want: []string{"/etc/containers/containers.conf.d/50-crhook.conf: crhook = [", "podman runs /usr/libexec/crhook/crhook-runtime"}},
		{name: "not registered", id: "podman.registered", status: Fail,
			setup: func(f *fixture) { f.remove("/etc/containers/containers.conf.d") },
			want:  []string{"no crhook in [engine.runtimes]", "50-crhook.conf"}},
		{name: "registered, binary missing", id: "podman.registered", status: Fail,
			setup: func(f *fixture) { f.remove("/usr/libexec/crhook") },
			want:  []string{"none of these paths is an executable file"}},
		{name: "broken containers.conf", id: "podman.registered", status: Fail,
			setup: func(f *fixture) { f.write("/etc/containers/containers.conf", "[engine\n", 0o644) },
			want:  []string{"cannot read: /etc/containers/containers.conf"}},
		{name: "CONTAINERS_CONF replaces the files", id: "podman.registered", status: Fail,
			setup: func(f *fixture) {
				f.write("/only.conf", "[engine]\n", 0o644)
				f.host.Getenv = func(k string) string { return map[string]string{"CONTAINERS_CONF": f.path("/only.conf")}[k] }
			},
			want: []string{"no crhook in [engine.runtimes] of " + "/"}},
		{name: "default is crun", id: "podman.default_runtime", status: Warn,
			want: []string{"default runtime is crun (podman info)", "99-crhook-default.conf"}},
		{name: "default is crhook", id: "podman.default_runtime", status: OK,
			setup: func(f *fixture) {
				f.answer("podman info --format json", Output{Stdout: `{"host":{"ociRuntime":{"name":"crhook","path":"/usr/libexec/crhook/crhook-runtime"}},"version":{"Version":"4.3.1"}}`})
			}},
		{name: "default from containers.conf when podman fails", id: "podman.default_runtime", status: OK,
			setup: func(f *fixture) {
				delete(f.run.paths, "podman")
				f.write("/etc/containers/containers.conf.d/99-crhook-default.conf", "[engine]\nruntime = \"crhook\"\n", 0o644)
			},
			want: []string{"99-crhook-default.conf"}},
		{name: "no containers", id: "podman.containers", status: OK, want: []string{"no containers yet"}},
		{name: "one bypasses", id: "podman.containers", status: Warn, setup: withContainers,
			want: []string{"1 of 2 containers bypass crhook", "db (runtime crun)", "--runtime crhook"}},
		{name: "one removed meanwhile", id: "podman.containers", status: OK,
			setup: func(f *fixture) {
				withContainers(f)
				f.answer("podman container inspect --format json aaa bbb", Output{Code: 125,
					Stderr: "Error: error inspecting object: no such container bbb\n"})
				f.answer("podman container inspect --format json aaa", Output{Stdout: `[{"Name":"web","OCIRuntime":"crhook"}]`})
				f.answer("podman container inspect --format json bbb", Output{Code: 125,
					Stderr: "Error: error inspecting object: no such container bbb\n"})
			},
			want: []string{"1 container, all created with runtime crhook"}},
	})
}
