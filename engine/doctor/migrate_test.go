package doctor

import "testing"

// The fixture is this project's test machine: userfaultfd works, no
// CAP_SYS_RESOURCE, fs.pipe-max-size 1 MiB, no soft-dirty, CRIU linked
// with gnutls.

func withCapSysResource(f *fixture) {
	f.write("/proc/self/status", "Name:\tcrhook\nCapEff:\t000001ffffffffff\n", 0o444)
}

func TestMigrateUffd(t *testing.T) {
	runCases(t, []checkCase{
		{name: "this host", id: "migrate.uffd", status: OK,
			want: []string{
				"criu check --feature uffd: uffd is supported",
				"criu check --feature uffd-noncoop: uffd-noncoop is supported",
				"vm.unprivileged_userfaultfd = 0 (not needed",
			}},
		{name: "no userfaultfd", id: "migrate.uffd", status: Warn,
			setup: func(f *fixture) {
				f.answer("criu check --feature uffd", Output{Code: 1, Stderr: "Error (criu/kerndat.c:1012): Lazy pages are not available\n"})
			},
			want: []string{"criu check --feature uffd: exit status 1: Error (criu/kerndat.c:1012)", "--mode lazy (post-copy) will not work here", "fix: boot a kernel built with CONFIG_USERFAULTFD=y"}},
		{name: "no non-cooperative events", id: "migrate.uffd", status: Warn,
			setup: func(f *fixture) {
				f.answer("criu check --feature uffd-noncoop", Output{Code: 1, Stderr: "Error (criu/cr-check.c:1171): Non-cooperative UFFD is not supported\n"})
			},
			want: []string{"uffd-noncoop: exit status 1", "NEED_UFFD_API_FEATURES"}},
		{name: "not root", id: "migrate.uffd", status: Skip,
			setup: func(f *fixture) { f.host.Euid = 1000 },
			want:  []string{"criu check --feature needs root"}},
		{name: "no criu", id: "migrate.uffd", status: Skip,
			setup: func(f *fixture) { delete(f.run.paths, "criu") }},
	})
}

func TestMigrateLazyPipe(t *testing.T) {
	runCases(t, []checkCase{
		{name: "this host: no CAP_SYS_RESOURCE, 1 MiB pipes", id: "migrate.lazy_pipe", status: Warn,
			want: []string{
				"lacks CAP_SYS_RESOURCE (bit 24)",
				"fs.pipe-max-size = 1048576 < 4194304",
				"page-pipe: splice: -1: Bad file descriptor",
				"fix: sysctl -w fs.pipe-max-size=4194304",
				"'fs.pipe-max-size = 4194304' > /etc/sysctl.d/60-crhook-migrate.conf",
			}},
		{name: "sysctl raised", id: "migrate.lazy_pipe", status: OK,
			setup: func(f *fixture) { f.write("/proc/sys/fs/pipe-max-size", "4194304\n", 0o644) },
			want:  []string{"fs.pipe-max-size = 4194304 >= 4194304"}},
		{name: "one byte short", id: "migrate.lazy_pipe", status: Warn,
			setup: func(f *fixture) { f.write("/proc/sys/fs/pipe-max-size", "4194303\n", 0o644) }},
		{name: "CAP_SYS_RESOURCE", id: "migrate.lazy_pipe", status: OK, setup: withCapSysResource,
			want: []string{"has CAP_SYS_RESOURCE"}},
		{name: "unreadable sysctl", id: "migrate.lazy_pipe", status: Skip,
			setup: func(f *fixture) { f.remove("/proc/sys/fs/pipe-max-size") },
			want:  []string{"read fs.pipe-max-size"}},
		{name: "garbage sysctl", id: "migrate.lazy_pipe", status: Skip,
			setup: func(f *fixture) { f.write("/proc/sys/fs/pipe-max-size", "lots\n", 0o644) },
			want:  []string{`is "lots", not a number`}},
	})
}

func TestMigrateSoftDirty(t *testing.T) {
	runCases(t, []checkCase{
		{name: "this host: dirty tracking off", id: "migrate.soft_dirty", status: Warn,
			want: []string{
				"criu check --feature mem_dirty_track: exit status 1: Warn  (criu/cr-check.c:824): Dirty tracking is OFF",
				"pre-copy (crhook migrate --mode precopy, criu pre-dump) is unavailable; lazy and stream migration still work",
				"fix: boot a kernel built with CONFIG_MEM_SOFT_DIRTY=y",
			}},
		{name: "tracking", id: "migrate.soft_dirty", status: OK,
			setup: func(f *fixture) {
				f.answer("criu check --feature mem_dirty_track", Output{Stdout: "mem_dirty_track is supported\n"})
			},
			want: []string{"mem_dirty_track: mem_dirty_track is supported"}},
		{name: "criu times out", id: "migrate.soft_dirty", status: Skip,
			setup: func(f *fixture) { delete(f.run.out, "criu check --feature mem_dirty_track") }},
	})
}

func TestMigrateTLS(t *testing.T) {
	runCases(t, []checkCase{
		{name: "this host: gnutls", id: "migrate.tls", status: OK,
			want: []string{"/usr/local/sbin/criu needs libgnutls.so.30"}},
		{name: "no gnutls", id: "migrate.tls", status: Warn,
			setup: func(f *fixture) { f.libs = []string{"libbsd.so.0", "libc.so.6"} },
			want: []string{
				"does not link libgnutls (DT_NEEDED: libbsd.so.0 libc.so.6)",
				"will not run a page server without it",
				"fix: install a CRIU built with gnutls",
				"libgnutls28-dev (Debian)",
			}},
		{name: "static", id: "migrate.tls", status: Warn,
			setup: func(f *fixture) { f.libs = nil },
			want:  []string{"needs no shared library (static?)"}},
		{name: "no criu", id: "migrate.tls", status: Skip,
			setup: func(f *fixture) { delete(f.run.paths, "criu") }},
	})
}
