package engine

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	migrate "github.com/crhook/crhook/engine/migrate/plan"
)

// gone polls until process pid has exited (absent or a zombie), and
// fails the test at the deadline.
func gone(t *testing.T, pid int, d time.Duration) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
		if err != nil {
			return
		}
		if f := strings.Fields(string(stat[strings.LastIndexByte(string(stat), ')')+1:])); len(f) > 0 && f[0] == "Z" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("process %d still runs after %v", pid, d)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestRollbackRestore: a restore with a failed plan stops what is left
// of the page server, dumps the kept tasks again, fully, into a fresh
// image directory, and restores from it; with the tasks gone or no
// absolute image path it refuses, and never restores the lazy images
// (they lack the pages).
func TestRollbackRestore(t *testing.T) {
	for _, tc := range []struct {
		name  string
		setup func(f *fake)
		args  func(img string) []string
		want  string // "" for success
	}{
		{"rolls back", func(*fake) {}, nil, ""},
		{"tasks gone", func(f *fake) { f.knob("gone", "") }, nil, "the dumped tasks are gone, nothing to roll back to"},
		{"tasks stopped", func(f *fake) { f.knob("stopped", "") }, nil, `runtime state "stopped"`},
		{"state names no init", func(f *fake) { f.knob("state-pid", "0") }, nil, "names no process"},
		{"relative image path", func(*fake) {}, func(string) []string { return []string{"--image-path", "img"} }, "no absolute --image-path"},
		{"dump fails", func(f *fake) { f.knob("fail-checkpoint", "") }, nil, "criu failed: see dump.log"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := lazyPlan(migrate.StatusFailed)
			p.Error = "the destination did not answer"
			f := lazyFake(t, p)
			// The kept tasks' init: this test's process, whose parent
			// is no conmon, so none is killed.
			f.knob("state-pid", strconv.Itoa(os.Getpid()))
			tc.setup(f)
			// What is left of the page server: its process group.
			server := exec.Command("sleep", "60")
			server.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
			if err := server.Start(); err != nil {
				t.Fatal(err)
			}
			waited := make(chan struct{})
			go func() { _ = server.Wait(); close(waited) }()
			t.Cleanup(func() { _ = server.Process.Kill(); <-waited })
			dir := MigrationDir(f.stateDir(), "m1")
			f.write(strings.TrimPrefix(filepath.Join(dir, PGID), f.root+"/"), strconv.Itoa(server.Process.Pid)+"\n")
			img := filepath.Join(f.root, "img")
			f.write("img/inventory.img", "lazy")
			imgArgs := []string{"--image-path", img}
			if tc.args != nil {
				imgArgs = tc.args(img)
			}
			args := append(append([]string{"--root", f.runcRoot(), "restore", "--bundle", f.bundle(map[string]string{})}, imgArgs...), "--detach", testID)
			code, stderr := f.shim(args...)
			select {
			case <-waited:
			case <-time.After(5 * time.Second):
				t.Errorf("the page server's process group was not killed")
			}
			if tc.want != "" {
				if code == 0 || !strings.Contains(stderr, tc.want) {
					t.Fatalf("exit %d, want a refusal saying %q: %s", code, tc.want, stderr)
				}
				if f.ran("restore") {
					t.Errorf("runc restore ran without a full dump: %s", f.calls())
				}
				return
			}
			if code != 0 {
				t.Fatalf("exit %d: %s", code, stderr)
			}
			calls := f.calls()
			dump := strings.Index(calls, "checkpoint --image-path "+img+" --work-path "+img+" "+testID)
			if dump < 0 || strings.Contains(calls, "--lazy-pages") {
				t.Fatalf("want a full dump into %s; runc calls:\n%s", img, calls)
			}
			if restore := strings.Index(calls, "restore "); restore < dump {
				t.Errorf("want the dump, then the restore; runc calls:\n%s", calls)
			}
			if _, err := os.Stat(filepath.Join(img, "inventory.img")); err == nil {
				t.Error("the lazy dump's images are still where the restore reads")
			}
			if _, err := os.Stat(img + ".lazy-m1"); err == nil {
				t.Error("the lazy dump's images were not removed after the full dump")
			}
		})
	}
}

// fakeCriu writes a stand-in for `criu lazy-pages` next to the fake
// runtime: it records its arguments in "criu-args", creates the socket
// file in its -W directory unless "criu-fails" exists (then it exits 1),
// and writes its pid to "criu-pid" and stays when "criu-stays" exists.
func fakeCriu(f *fake) string {
	needUserfaultfd(f.t)
	exe, err := os.Executable()
	if err != nil {
		f.t.Fatal(err)
	}
	f.t.Cleanup(func() {
		// The daemon delivered every page: it and its holder end.
		f.knob("criu-done", "")
		if pid, err := strconv.Atoi(strings.TrimSpace(f.read("restored-pid"))); err == nil {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	})
	return f.write("rt/criu", `#!/bin/sh
dir=$(dirname "$0")
echo "$*" >"$dir/criu-args"
[ -f "$dir/criu-fails" ] && { echo "cannot connect to the page server" >&2; exit 1; }
prev=
for a in "$@"; do
	[ "$prev" = -W ] && : >"$a/lazy-pages.socket"
	prev=$a
done
[ -f "$dir/criu-stays" ] && { echo $$ >"$dir/criu-pid"; exec sleep 60; }
[ -f "$dir/criu-quits" ] && exit 0
# A daemon holding a userfaultfd, as the restored tasks' would be, until
# "criu-done" appears (then it exits 0: every page delivered).
exec '`+exe+`' __test-uffd-daemon "$dir/criu-done"
`)
}

// TestLazyRestore: the destination starts `criu lazy-pages` with the
// plan's page server and TLS, waits for its socket, restores with
// --lazy-pages and marks the plan restored; a daemon that never comes
// up, a restore that fails, or paths that are not absolute: nothing runs,
// and no daemon is left behind.
func TestLazyRestore(t *testing.T) {
	for _, tc := range []struct {
		name  string
		setup func(f *fake)
		work  string // "" for the bundle
		want  string // "" for success
	}{
		{"restores", func(*fake) {}, "", ""},
		{"daemon fails", func(f *fake) { f.knob("criu-fails", "") }, "", "did not come up"},
		{"restore fails", func(f *fake) { f.knob("criu-stays", ""); f.knob("fail-restore", "") }, "", "see restore.log"},
		{"relative work path", func(*fake) {}, "work", "no absolute --work-path"},
		// A CRIU that never ran the post-restore action script: the
		// container ran with nobody else holding its userfaultfds.
		{"no action script", func(f *fake) { f.knob("no-action-script", "") }, "", "without a holder of its userfaultfds"},
		// The holder finds fewer userfaultfds than restored tasks.
		{"holder fails", func(f *fake) { f.knob("criu-quits", "") }, "", "Aborting restore due to post-restore"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := lazyFake(t, lazyPlan(migrate.StatusPlanned))
			criu := fakeCriu(f)
			if err := os.Chmod(criu, 0o755); err != nil {
				t.Fatal(err)
			}
			tc.setup(f)
			bundle := f.bundle(map[string]string{})
			work := bundle
			if tc.work != "" {
				work = tc.work
			}
			img := filepath.Join(f.root, "img")
			if err := os.MkdirAll(img, 0o700); err != nil {
				t.Fatal(err)
			}
			code, stderr := f.shimWithin(5*time.Second, "--root", f.runcRoot(), "--criu", criu, "restore", "--bundle", bundle, "--image-path", img, "--work-path", work, "--detach", testID)
			if pid, err := strconv.Atoi(strings.TrimSpace(f.read("criu-pid"))); err == nil {
				if tc.want == "" {
					t.Fatalf("criu-stays in a successful case")
				}
				gone(t, pid, 5*time.Second) // the daemon of a failed restore is killed
			}
			if tc.want != "" {
				if code == 0 || !strings.Contains(stderr, tc.want) {
					t.Fatalf("exit %d, want a refusal saying %q: %s", code, tc.want, stderr)
				}
				// A daemon that died may have left the container
				// restored with pages it can no longer fetch: killed.
				if (tc.name == "daemon fails" || tc.name == "no action script") && !f.ran("kill") {
					t.Errorf("the daemon failed and the container was not killed: %s", f.read("calls"))
				}
				if tc.name != "restore fails" && tc.name != "no action script" && tc.name != "holder fails" && f.ran("restore") {
					t.Errorf("runc restore ran without its lazy-pages daemon: %s", f.calls())
				}
				if p, err := ReadPlan(f.stateDir(), testID); err != nil || p.Status == migrate.StatusRestored {
					t.Errorf("plan after a failed restore: %+v, %v", p, err)
				}
				return
			}
			if code != 0 {
				t.Fatalf("exit %d: %s", code, stderr)
			}
			wantDaemon := "lazy-pages --page-server --address 10.250.13.2 --port 4321 --tls --tls-cacert /t/ca.pem --tls-cert /t/server.pem --tls-key /t/server-key.pem -D " + img
			if args := f.read("criu-args"); !strings.Contains(args, wantDaemon) || !strings.Contains(args, "-W "+bundle) {
				t.Errorf("criu lazy-pages args %q, want %q and -W %s", args, wantDaemon, bundle)
			}
			if calls := f.calls(); !strings.Contains(calls, " restore ") || !strings.Contains(calls, " --lazy-pages "+testID) {
				t.Errorf("want runc restore --lazy-pages; runc calls:\n%s", calls)
			}
			if p, err := ReadPlan(f.stateDir(), testID); err != nil || p.Status != migrate.StatusRestored {
				t.Errorf("plan after the restore: %+v, %v", p, err)
			}
			// The holder holds the daemon's userfaultfd; once the daemon
			// delivered every page it lets go and ends.
			dir := MigrationDir(f.stateDir(), "m1")
			if ack, _ := os.ReadFile(filepath.Join(dir, uffdHoldAck)); string(ack) != "held 1\n" {
				t.Errorf("holder's answer %q, want held 1", ack)
			}
			f.knob("criu-done", "")
			eventually(t, 5*time.Second, "the holder lets go once the daemon delivered every page", func() bool {
				out, _ := os.ReadFile(filepath.Join(dir, uffdHoldOut))
				return strings.Contains(string(out), "let go of 1 userfaultfds")
			})
		})
	}
}
