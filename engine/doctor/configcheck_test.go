package doctor

import (
	"os"
	"testing"
)

func TestConfigChecks(t *testing.T) {
	runCases(t, []checkCase{
		{name: "defaults", id: "config.settings", status: OK, want: []string{"built-in defaults", `runtime.path = "runc"`}},
		{name: "unknown key", id: "config.settings", status: Fail,
			setup: func(f *fixture) { f.write("/etc/crhook/crhook.toml", "\nruntme = 1\n", 0o644) },
			want:  []string{"/etc/crhook/crhook.toml:2", `unknown key "runtme"`, "refuses every checkpoint"}},
		{name: "layers parse", id: "config.layers", status: OK,
			want: []string{"/etc/criu/default.conf: ok, 1 option", "/etc/criu/runc.conf: absent"}},
		{name: "layer does not parse", id: "config.layers", status: Fail,
			setup: func(f *fixture) { f.write("/etc/criu/runc.conf", "tcp-established\n--shell-job\n", 0o644) },
			want:  []string{"/etc/criu/runc.conf:2"}},
		{name: "crun layer falls back to runc.conf", id: "config.layers", status: OK,
			setup: func(f *fixture) { useCrun(f); f.write("/etc/criu/runc.conf", "shell-job\n", 0o644) },
			want:  []string{"/etc/criu/runc.conf: ok, 1 option"}},
		{name: "nothing dropped", id: "config.dropped", status: OK, want: []string{"1 option reach CRIU, none dropped"}},
		{name: "runtime-owned option", id: "config.dropped", status: Warn,
			setup: func(f *fixture) { f.write("/etc/criu/default.conf", "tcp-established\nlog-file /tmp/x.log\n", 0o644) },
			want:  []string{"log-file", "default.conf:2", "set by the runtime"}},
		{name: "denied option", id: "config.dropped", status: Warn,
			setup: func(f *fixture) { f.write("/etc/crhook/crhook.toml", "[criu]\ndeny = [\"tcp-established\"]\n", 0o644) },
			want:  []string{"tcp-established", "denied by criu.deny"}},
		{name: "modes ok", id: "config.permissions", rootOwned: true, status: OK,
			want: []string{"default.conf: uid 0, mode 0644", "/run/crhook: uid 0, mode 0700"}},
		{name: "group-writable layer", id: "config.permissions", rootOwned: true, status: Fail,
			setup: func(f *fixture) { f.write("/etc/criu/default.conf", "tcp-established\n", 0o664) },
			want:  []string{"default.conf: uid 0: writable by group or others (mode 0664)", `chmod go-w "/`}},
		// The runtime's rule, not a stricter one: a fail here means the
		// checkpoint fails, and crhook-runtime accepts a 0755 state_dir.
		{name: "readable state dir", id: "config.permissions", rootOwned: true, status: OK,
			setup: func(f *fixture) {
				if err := os.Chmod(f.path("/run/crhook"), 0o755); err != nil {
					t.Fatal(err)
				}
			},
			want: []string{"/run/crhook: uid 0, mode 0755"}},
		{name: "group-writable state dir", id: "config.permissions", rootOwned: true, status: Fail,
			setup: func(f *fixture) {
				if err := os.Chmod(f.path("/run/crhook"), 0o775); err != nil {
					t.Fatal(err)
				}
			},
			want: []string{"mode 0775: writable by group or others", "refuses every checkpoint", "chmod go-w"}},
		{name: "state dir is a link", id: "config.permissions", rootOwned: true, status: Fail,
			setup: func(f *fixture) {
				f.remove("/run/crhook")
				if err := os.Symlink(f.path("/tmp"), f.path("/run/crhook")); err != nil {
					t.Fatal(err)
				}
			},
			want: []string{"a symbolic link", "rm "}},
		{name: "no state dir yet", id: "config.permissions", rootOwned: true, status: OK,
			setup: func(f *fixture) { f.remove("/run/crhook") },
			want:  []string{"absent (created root-owned 0700"}},
	})
}

func TestConfigOwnerNotRoot(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to chown a fixture to another uid")
	}
	f := newFixture(t)
	if err := os.Chown(f.path("/etc/criu/default.conf"), 1000, 1000); err != nil {
		t.Fatal(err)
	}
	res := f.check("config.permissions")
	if res.Status != Fail || res.Fix == "" {
		t.Errorf("permissions: %s %v, want fail naming chown", res.Status, res.Evidence)
	}
}
