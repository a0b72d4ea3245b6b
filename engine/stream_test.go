package engine

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	migrate "github.com/crhook/crhook/engine/migrate/plan"
)

func streamPlan(status migrate.Status) *migrate.Plan {
	p := lazyPlan(status)
	p.Mode = migrate.ModeStream
	p.TLS = migrate.TLSPaths{CACert: "/t/ca.pem", Cert: "/t/client.pem", Key: "/t/client-key.pem"}
	return p
}

// TestStreamCheckpoint: with a stream plan, checkpoint pauses the
// container, dumps it with --leave-running into the destination's page
// server (TLS in the generated file), never resumes it, marks the plan
// serving and records how to delete the frozen tasks; podman's delete is
// then held.
func TestStreamCheckpoint(t *testing.T) {
	f := lazyFake(t, streamPlan(migrate.StatusPlanned))
	img := filepath.Join(f.root, "img")
	if code, stderr := f.shim("--root", f.runcRoot(), "checkpoint", "--image-path", img, testID); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	calls := f.calls()
	pause := strings.Index(calls, "pause "+testID)
	dump := strings.Index(calls, "checkpoint --image-path "+img+" --leave-running --page-server 10.250.13.2:4321 "+testID)
	if pause < 0 || dump < pause {
		t.Errorf("want pause, then the streamed dump; runc calls:\n%s", calls)
	}
	if strings.Contains(calls, "resume") {
		t.Errorf("the dumped tasks were resumed: a second running copy\n%s", calls)
	}
	if conf := f.generatedText(); !strings.Contains(conf, "\ntls\ntls-cacert /t/ca.pem\ntls-cert /t/client.pem\ntls-key /t/client-key.pem\n") {
		t.Errorf("generated criu.conf lacks the TLS lines:\n%s", conf)
	}
	if p, err := ReadPlan(f.stateDir(), testID); err != nil || p.Status != migrate.StatusServing {
		t.Errorf("plan after the dump: %+v, %v; want serving", p, err)
	}
	dir := MigrationDir(f.stateDir(), "m1")
	if del, err := os.ReadFile(filepath.Join(dir, DeleteArgv)); err != nil || !strings.Contains(string(del), `"delete","--force","`+testID+`"`) {
		t.Errorf("%s = %s (%v), want runc delete --force", DeleteArgv, del, err)
	}
	if _, err := os.Stat(filepath.Join(dir, PGID)); err == nil {
		t.Errorf("the finished dump's process group id stays in %s: a later kill could hit a reused id", dir)
	}
	if code, stderr := f.shim("--root", f.runcRoot(), "delete", "--force", testID); code != 0 || f.ran("delete") {
		t.Errorf("delete is not held after the streamed dump (exit %d): %s", code, stderr)
	}
}

// TestStreamCheckpointFails: a dump that fails or hangs, and a container
// that is not running: the checkpoint fails, the container crhook paused
// is resumed (never left frozen), the plan is not serving, and podman's
// delete is not held.
func TestStreamCheckpointFails(t *testing.T) {
	for _, tc := range []struct {
		name       string
		knob       string
		wantResume bool
		want       string
	}{
		{"runc fails", "fail-checkpoint", true, "exited 1"},
		{"runc hangs", "hang-checkpoint", true, "no progress for 1s"},
		{"paused by its owner", "paused", false, "it is paused, not running"},
		{"leave running", "leave-running", false, "two copies"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := streamPlan(migrate.StatusPlanned)
			p.Timeouts.NoProgress = migrate.Duration(time.Second)
			f := lazyFake(t, p)
			f.knob(tc.knob, "")
			args := []string{"--root", f.runcRoot(), "checkpoint", "--image-path", filepath.Join(f.root, "img"), testID}
			if tc.knob == "leave-running" {
				args = append(args[:3], append([]string{"--leave-running"}, args[3:]...)...)
			}
			code, stderr := f.shimWithin(20*time.Second, args...)
			if code == 0 {
				t.Fatalf("checkpoint succeeded: %s", stderr)
			}
			if !strings.Contains(stderr, tc.want) {
				t.Errorf("stderr lacks %q:\n%s", tc.want, stderr)
			}
			calls := f.calls()
			if got := strings.Contains(calls, "resume "+testID); got != tc.wantResume {
				t.Errorf("resumed: %v, want %v\n%s", got, tc.wantResume, calls)
			}
			if tc.wantResume && f.read("paused") != "" || tc.wantResume && fileExists(filepath.Join(f.dir, "paused")) {
				t.Errorf("the container stays frozen after the failed dump")
			}
			if !tc.wantResume && strings.Contains(calls, " checkpoint ") && tc.knob != "leave-running" {
				t.Errorf("a container it did not pause was dumped:\n%s", calls)
			}
			if p, err := ReadPlan(f.stateDir(), testID); err != nil || p.Status == migrate.StatusServing {
				t.Errorf("plan after the failed dump: %+v, %v", p, err)
			}
		})
	}
}

func fileExists(path string) bool {
	_, err := os.Lstat(path)
	return err == nil
}

// TestStreamRestore: the destination restores only after its page
// server exited 0, with the pages it received moved into podman's image
// directory; otherwise nothing runs.
func TestStreamRestore(t *testing.T) {
	for _, tc := range []struct {
		name  string
		rc    string // page-server.rc; "-" for none
		pages map[string]string
		inTar string // a file the archive already holds
		want  string // "" for success
	}{
		{"every page arrived", "0", map[string]string{"pagemap-1.img": "m", "pages-1.img": "p"}, "", ""},
		{"page server still running", "-", map[string]string{"pagemap-1.img": "m"}, "", "has not finished"},
		{"page server failed", "1", map[string]string{"pagemap-1.img": "m"}, "", "page server exited 1"},
		{"no pagemap", "0", map[string]string{}, "", "no page arrived"},
		{"archive brings its own pages", "0", map[string]string{"pagemap-1.img": "m", "pages-1.img": "p"}, "pages-1.img", "refusing to mix"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := lazyFake(t, streamPlan(migrate.StatusPlanned))
			dir := MigrationDir(f.stateDir(), "m1")
			for name, content := range tc.pages {
				f.write(strings.TrimPrefix(filepath.Join(dir, StreamPages, name), f.root+"/"), content)
			}
			if err := os.MkdirAll(filepath.Join(dir, StreamPages), 0o700); err != nil {
				t.Fatal(err)
			}
			if tc.rc != "-" {
				f.write(strings.TrimPrefix(filepath.Join(dir, PageServerRC), f.root+"/"), tc.rc+"\n")
			}
			bundle := f.bundle(map[string]string{})
			img := filepath.Join(f.root, "img")
			if err := os.MkdirAll(img, 0o700); err != nil {
				t.Fatal(err)
			}
			if tc.inTar != "" {
				f.write("img/"+tc.inTar, "from the archive")
			}
			code, stderr := f.shim("--root", f.runcRoot(), "restore", "--bundle", bundle, "--image-path", img, "--work-path", bundle, "--detach", testID)
			if tc.want != "" {
				if code == 0 || !strings.Contains(stderr, tc.want) {
					t.Fatalf("exit %d, want a refusal saying %q: %s", code, tc.want, stderr)
				}
				if f.ran("restore") {
					t.Errorf("runc restore ran without every page: %s", f.calls())
				}
				return
			}
			if code != 0 {
				t.Fatalf("exit %d: %s", code, stderr)
			}
			if !f.ran("restore") {
				t.Fatalf("runc restore did not run: %s", f.calls())
			}
			for name, content := range tc.pages {
				if data, err := os.ReadFile(filepath.Join(img, name)); err != nil || string(data) != content {
					t.Errorf("%s in the image directory: %q, %v", name, data, err)
				}
			}
			if p, err := ReadPlan(f.stateDir(), testID); err != nil || p.Status != migrate.StatusRestored {
				t.Errorf("plan after the restore: %+v, %v", p, err)
			}
		})
	}
}

// TestCopyFile: the fallback of movePages when the state directory and
// podman's storage are on different file systems.
func TestCopyFile(t *testing.T) {
	dir := t.TempDir()
	src, dst := filepath.Join(dir, "pages-1.img"), filepath.Join(dir, "out", "pages-1.img")
	if err := os.WriteFile(src, []byte("pages"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Dir(dst), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(dir, "elsewhere"), dst+".link"); err != nil {
		t.Fatal(err)
	}
	if err := copyFile(src, dst+".link"); err == nil {
		t.Error("copyFile wrote through a symlink")
	}
	if err := copyFile(src, dst); err != nil {
		t.Fatal(err)
	}
	if data, err := os.ReadFile(dst); err != nil || string(data) != "pages" || fileExists(src) {
		t.Errorf("copied %q (%v); source left: %v", data, err, fileExists(src))
	}
}

// TestStartPageServer: the destination's page server gets the typed
// command line and returns once CRIU's status byte says it listens; with
// no byte it is killed within the connect timeout.
func TestStartPageServer(t *testing.T) {
	for _, tc := range []struct {
		name, script, want string
	}{
		{"listens", "echo \"$*\" >\"$0.args\"; printf '\\0' >&3; exec 3>&-; sleep 0.2", ""},
		{"never listens", "exec 3>&-; sleep 30", "did not come up within 1s"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := t.TempDir()
			criu := filepath.Join(root, "criu")
			if err := os.WriteFile(criu, []byte("#!/bin/sh\n"+tc.script+"\n"), 0o755); err != nil {
				t.Fatal(err)
			}
			p := streamPlan(migrate.StatusPlanned)
			p.Timeouts.Connect = migrate.Duration(time.Second)
			start := time.Now()
			err := StartPageServer(root, p, criu)
			if tc.want != "" {
				if err == nil || !strings.Contains(err.Error(), tc.want) {
					t.Fatalf("err %v, want %q", err, tc.want)
				}
				if took := time.Since(start); took > 5*time.Second {
					t.Errorf("took %v", took)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			args, _ := os.ReadFile(criu + ".args")
			dir := MigrationDir(root, "m1")
			want := "page-server --images-dir " + filepath.Join(dir, StreamPages) + " --address 10.250.13.2 --port 4321 --tls --tls-cacert /t/ca.pem"
			if !strings.HasPrefix(string(args), want) {
				t.Errorf("criu %s\nwant %s...", args, want)
			}
			deadline := time.Now().Add(10 * time.Second)
			for !fileExists(filepath.Join(dir, PageServerRC)) {
				if time.Now().After(deadline) {
					t.Fatal("no exit status from the supervisor")
				}
				time.Sleep(10 * time.Millisecond)
			}
		})
	}
}

// TestStreamCheckpointCrun: crun 1.28 has no --page-server flag, so a
// streamed checkpoint with crun as the wrapped runtime passes the page
// server in the generated CRIU config (page-server, address, port after
// the TLS lines) and no such flag on crun's command line; the pause, the
// --leave-running dump and the held delete are runc's. Pre-copy with
// crun is refused before anything is paused.
func TestStreamCheckpointCrun(t *testing.T) {
	for _, tc := range []struct {
		mode   migrate.Mode
		refuse string
	}{
		{migrate.ModeStream, ""},
		{migrate.ModePrecopy, "pre-copy rounds are verified with runc only"},
	} {
		t.Run(string(tc.mode), func(t *testing.T) {
			p := streamPlan(migrate.StatusPlanned)
			p.Mode = tc.mode
			f := lazyFake(t, p)
			script, err := os.ReadFile("testdata/fakeruntime-lazy")
			if err != nil {
				t.Fatal(err)
			}
			crun := f.write("rt/crun", string(script))
			if err := os.Chmod(crun, 0o755); err != nil {
				t.Fatal(err)
			}
			f.write("etc/crhook/crhook.toml", "state_dir = \""+f.stateDir()+"\"\n[runtime]\npath = \""+crun+"\"\n")
			img := filepath.Join(f.root, "img")
			code, stderr := f.shim("--root", f.runcRoot(), "checkpoint", "--image-path", img, testID)
			calls := f.calls()
			if tc.refuse != "" {
				if code == 0 || !strings.Contains(stderr, tc.refuse) {
					t.Fatalf("exit %d, want the refusal %q: %s", code, tc.refuse, stderr)
				}
				if strings.Contains(calls, "pause") || strings.Contains(calls, "checkpoint") {
					t.Errorf("crun was paused or dumped:\n%s", calls)
				}
				return
			}
			if code != 0 {
				t.Fatalf("exit %d: %s", code, stderr)
			}
			pause := strings.Index(calls, "pause "+testID)
			dump := strings.Index(calls, "checkpoint --image-path "+img+" --leave-running "+testID)
			if pause < 0 || dump < pause || strings.Contains(calls, "--page-server") {
				t.Errorf("want pause, then a --leave-running dump without --page-server (crun has none); crun calls:\n%s", calls)
			}
			if strings.Contains(calls, "resume") {
				t.Errorf("the dumped tasks were resumed: a second running copy\n%s", calls)
			}
			if conf := f.generatedText(); !strings.Contains(conf, "\ntls\ntls-cacert /t/ca.pem\ntls-cert /t/client.pem\ntls-key /t/client-key.pem\npage-server\naddress 10.250.13.2\nport 4321\n") {
				t.Errorf("generated criu.conf lacks the TLS and page-server lines:\n%s", conf)
			}
			if code, stderr := f.shim("--root", f.runcRoot(), "delete", "--force", testID); code != 0 || f.ran("delete") {
				t.Errorf("delete is not held after the streamed dump (exit %d): %s", code, stderr)
			}
		})
	}
}
