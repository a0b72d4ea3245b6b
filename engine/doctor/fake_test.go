package doctor

import (
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/crhook/crhook/config"
)

// fakeRunner answers commands from a table keyed by "base-name args...".
type fakeRunner struct {
	paths map[string]string
	out   map[string]Output
}

func (f *fakeRunner) LookPath(name string) (string, error) {
	if p, ok := f.paths[name]; ok {
		return p, nil
	}
	return "", fmt.Errorf("exec: %q: executable file not found in $PATH", name)
}

func (f *fakeRunner) Run(_ context.Context, name string, args ...string) Output {
	key := strings.Join(append([]string{filepath.Base(name)}, args...), " ")
	if o, ok := f.out[key]; ok {
		return o
	}
	return Output{Code: -1, Err: fmt.Errorf("fake runner: no answer for %q", key)}
}

// fixture is a fake host: a root directory and canned command output,
// starting as this project's test machine (kernel 6.18, CRIU 4.2.1, runc
// 1.1.5, podman 4.3.1 defaulting to crun, no CAP_SYS_RESOURCE).
type fixture struct {
	t    *testing.T
	root string
	run  *fakeRunner
	host *Host
	libs []string
	// libcriu is the libcriu.so.2 crun would load; "" when none is found.
	libcriu     string
	libcriuSyms map[string]bool
}

func readTestdata(t *testing.T, name string) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", "host", name))
	if err != nil {
		t.Fatalf("fixture: %v", err)
	}
	return string(data)
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	f := &fixture{t: t, root: t.TempDir()}
	f.write("/proc/config.gz", gz(t, readTestdata(t, "kernel-config")), 0o444)
	f.write("/proc/sys/kernel/osrelease", "6.18.44-fc-v669\n", 0o444)
	f.write("/proc/sys/kernel/ns_last_pid", "1\n", 0o644)
	f.write("/proc/self/status", readTestdata(t, "proc-status"), 0o444)
	f.write("/proc/self/limits", readTestdata(t, "proc-limits"), 0o444)
	f.write("/proc/sys/fs/pipe-max-size", "1048576\n", 0o644)
	f.write("/proc/sys/vm/unprivileged_userfaultfd", "0\n", 0o644)
	for _, ns := range []string{"mnt", "pid", "net", "ipc", "uts"} {
		f.write("/proc/self/ns/"+ns, "", 0o444)
	}
	f.write("/etc/containers/containers.conf.d/50-crhook.conf", readTestdata(t, "50-crhook.conf"), 0o644)
	f.write("/usr/libexec/crhook/crhook-runtime", "#!/bin/sh\n", 0o755)
	f.write("/etc/criu/default.conf", "tcp-established\n", 0o644)
	if err := os.MkdirAll(f.path("/run/crhook"), 0o700); err != nil {
		t.Fatal(err)
	}
	f.libcriu = "/usr/lib/x86_64-linux-gnu/libcriu.so.2"
	f.libcriuSyms = map[string]bool{"criu_dump": true, "criu_set_config_file": true}
	f.libs = []string{"libbsd.so.0", "libgnutls.so.30", "libnftables.so.1", "libprotobuf-c.so.1", "libnl-3.so.200", "libnet.so.1", "libuuid.so.1", "libc.so.6"}
	f.run = &fakeRunner{
		paths: map[string]string{
			"criu": "/usr/local/sbin/criu", "runc": "/usr/sbin/runc", "crun": "/usr/bin/crun", "podman": "/usr/bin/podman",
		},
		out: map[string]Output{
			"criu --version":                       {Stdout: "Version: 4.2.1\n"},
			"criu check":                           {Stdout: readTestdata(t, "criu-4.2.1-check.stdout")},
			"runc --version":                       {Stdout: "runc version 1.1.5+ds1\ncommit: 1.1.5+ds1-1+deb12u1\nspec: 1.0.2-dev\ngo: go1.19.8\nlibseccomp: 2.5.4\n"},
			"crun --version":                       {Stdout: "crun version 1.8.1\ncommit: f8a096be060b22ccd3d5f3ebe44108517fbf6c30\nrundir: /run/crun\nspec: 1.0.0\n+SYSTEMD +SELINUX +APPARMOR +CAP +SECCOMP +EBPF +YAJL\n"},
			"podman info --format json":            {Stdout: readTestdata(t, "podman-info.json")},
			"podman ps -a --format json":           {Stdout: "[]\n"},
			"criu check --feature uffd":            {Stdout: "uffd is supported\n"},
			"criu check --feature uffd-noncoop":    {Stdout: "uffd-noncoop is supported\n"},
			"criu check --feature mem_dirty_track": {Code: 1, Stderr: "Warn  (criu/cr-check.c:824): Dirty tracking is OFF. Memory snapshot will not work.\n"},
		},
	}
	f.host = &Host{
		Root: f.root,
		Paths: config.Paths{
			CRIUDir:         f.path("/etc/criu"),
			SettingsDefault: f.path("/usr/share/crhook/crhook.toml"),
			SettingsSystem:  f.path("/etc/crhook/crhook.toml"),
			SettingsDropIn:  f.path("/etc/crhook/crhook.d"),
		},
		Run:    f.run,
		Getenv: func(k string) string { return map[string]string{"PATH": "/usr/local/sbin:/usr/sbin:/usr/bin"}[k] },
		Libs:   func(string) ([]string, error) { return f.libs, nil },
		LibFor: func(_, soname string) (string, map[string]bool, error) {
			if f.libcriu == "" {
				return "", nil, fmt.Errorf("%s not found in /lib/x86_64-linux-gnu", soname)
			}
			return f.libcriu, f.libcriuSyms, nil
		},
		Euid: 0,
		Arch: "amd64",
	}
	return f
}

func (f *fixture) path(p string) string { return filepath.Join(f.root, p) }

func (f *fixture) write(p, content string, mode os.FileMode) {
	f.t.Helper()
	full := f.path(p)
	if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
		f.t.Fatal(err)
	}
	_ = os.Remove(full) // a read-only fixture file is replaced, not edited
	if err := os.WriteFile(full, []byte(content), mode); err != nil {
		f.t.Fatal(err)
	}
	if err := os.Chmod(full, mode); err != nil { // umask must not change the mode under test
		f.t.Fatal(err)
	}
}

func (f *fixture) remove(p string) {
	f.t.Helper()
	if err := os.RemoveAll(f.path(p)); err != nil {
		f.t.Fatal(err)
	}
}

// answer sets what a command prints.
func (f *fixture) answer(cmd string, o Output) { f.run.out[cmd] = o }

// check runs one check of the catalogue on a fresh probe.
func (f *fixture) check(id string) Result {
	f.t.Helper()
	return runCheck(f.t, f.host, id)
}

func runCheck(t *testing.T, h *Host, id string) Result {
	t.Helper()
	p := &probe{ctx: context.Background(), h: h}
	for _, c := range checks {
		if c.id == id {
			res := c.run(p)
			res.ID, res.Title = c.id, c.title
			return res
		}
	}
	t.Fatalf("no check %q", id)
	return Result{}
}

func gz(t *testing.T, s string) string {
	t.Helper()
	var b bytes.Buffer
	w := gzip.NewWriter(&b)
	if _, err := w.Write([]byte(s)); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// checkCase is one row of the table-driven check tests.
type checkCase struct {
	name   string
	setup  func(f *fixture)
	id     string
	status Status
	// want are substrings of the evidence (joined by newlines) or the fix.
	want []string
	// rootOwned: the check judges file owners and wants the fixture's
	// files owned by uid 0, which only a process running as root creates.
	rootOwned bool
}

func runCases(t *testing.T, cases []checkCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if tc.rootOwned && os.Geteuid() != 0 {
				t.Skipf("needs euid 0: %s judges owners and the fixture must be root-owned (running as uid %d)", tc.id, os.Geteuid())
			}
			f := newFixture(t)
			if tc.setup != nil {
				tc.setup(f)
			}
			res := f.check(tc.id)
			text := strings.Join(res.Evidence, "\n") + "\nfix: " + res.Fix
			if res.Status != tc.status {
				t.Errorf("%s: status %s, want %s\n%s", tc.id, res.Status, tc.status, text)
			}
			for _, w := range tc.want {
				if !strings.Contains(text, w) {
					t.Errorf("%s: missing %q in\n%s", tc.id, w, text)
				}
			}
			if (res.Status == Fail || res.Status == Warn) && res.Fix == "" {
				t.Errorf("%s: %s without a fix", tc.id, res.Status)
			}
		})
	}
}

func readDoc(t *testing.T) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("..", "..", "docs", "doctor.md"))
	if err != nil {
		t.Fatalf("read docs/doctor.md: %v", err)
	}
	return string(data)
}
