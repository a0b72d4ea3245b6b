package engine

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	migrate "github.com/crhook/crhook/engine/migrate/plan"
)

// precopyPlan is round n's plan on the source (n 0: the final dump's),
// the round before as parent.
func precopyPlan(n int, parent string) *migrate.Plan {
	p := streamPlan(migrate.StatusPlanned)
	p.Mode, p.Round, p.ParentPath = migrate.ModePrecopy, n, parent
	return p
}

// roundImages makes round n's local images on the source (what a
// pre-dump leaves: inventory.img, no pages).
func roundImages(t *testing.T, f *fake, n int) string {
	t.Helper()
	dir := RoundDir(MigrationDir(f.stateDir(), "m1"), n)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "inventory.img"), []byte("i"), 0o600); err != nil {
		t.Fatal(err)
	}
	return dir
}

// TestPrecopyPreDump: podman's `checkpoint --pre-checkpoint` (its
// --pre-dump into its own pre-checkpoint directory) becomes the round's
// pre-dump: into the round's directory of the migration, the round
// before as parent (relative, as runc wants it), pages to the
// destination's page server with TLS from the generated file. The
// container is never paused, and the plan stays planned: a pre-dump
// keeps nothing frozen.
func TestPrecopyPreDump(t *testing.T) {
	for _, tc := range []struct {
		name   string
		round  int
		parent string
		images bool // round 1's images exist
		want   string
		refuse string
	}{
		{name: "round 1", round: 1, want: "--pre-dump --page-server 10.250.13.2:4321 "},
		{name: "round 2 on round 1", round: 2, parent: "rounds/1", images: true, want: "--pre-dump --parent-path ../1 --page-server 10.250.13.2:4321 "},
		{name: "round 2 without round 1's images", round: 2, parent: "rounds/1", refuse: "last pre-dump's images are missing"},
		{name: "parent outside the rounds", round: 2, parent: "../../etc", images: true, refuse: "not a round of the migration"},
		{name: "no round in the plan", round: 0, refuse: "names no pre-copy round"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := lazyFake(t, precopyPlan(tc.round, tc.parent))
			if tc.images {
				roundImages(t, f, 1)
			}
			ud := filepath.Join(f.root, "userdata")
			code, stderr := f.shim("--root", f.runcRoot(), "checkpoint", "--image-path", filepath.Join(ud, "pre-checkpoint"), "--work-path", ud, "--pre-dump", testID)
			if tc.refuse != "" {
				if code == 0 || !strings.Contains(stderr, tc.refuse) {
					t.Fatalf("exit %d, want a refusal saying %q: %s", code, tc.refuse, stderr)
				}
				if f.ran("checkpoint") {
					t.Errorf("runc checkpoint ran: %s", f.calls())
				}
				return
			}
			if code != 0 {
				t.Fatalf("exit %d: %s", code, stderr)
			}
			round := RoundDir(MigrationDir(f.stateDir(), "m1"), tc.round)
			want := "checkpoint --image-path " + round + " --work-path " + round + " " + tc.want + testID
			if calls := f.calls(); !strings.Contains(calls, want) {
				t.Errorf("want runc %q; runc calls:\n%s", want, calls)
			}
			if strings.Contains(f.calls(), "pause") || strings.Contains(f.calls(), "pre-checkpoint") {
				t.Errorf("paused, or dumped into podman's directory:\n%s", f.calls())
			}
			if conf := f.generatedText(); !strings.Contains(conf, "\ntls\ntls-cacert /t/ca.pem\ntls-cert /t/client.pem\ntls-key /t/client-key.pem\n") {
				t.Errorf("generated criu.conf lacks the TLS lines:\n%s", conf)
			}
			if p, err := ReadPlan(f.stateDir(), testID); err != nil || p.Status != migrate.StatusPlanned {
				t.Errorf("plan after a pre-dump: %+v, %v; want planned", p, err)
			}
		})
	}
}

// TestPrecopyCheckpoint: the final dump is a stream's (paused,
// --leave-running, tasks kept) on top of the last round, named relative
// to podman's image directory; without a last round it is refused (it
// would freeze the container for all of its memory).
func TestPrecopyCheckpoint(t *testing.T) {
	f := lazyFake(t, precopyPlan(0, "rounds/3"))
	last := roundImages(t, f, 3)
	img := filepath.Join(f.root, "userdata", "checkpoint")
	if err := os.MkdirAll(img, 0o700); err != nil {
		t.Fatal(err)
	}
	// CRIU's link to the parent, as the dump leaves it.
	rel, err := filepath.Rel(img, last)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(rel, filepath.Join(img, "parent")); err != nil {
		t.Fatal(err)
	}
	if code, stderr := f.shim("--root", f.runcRoot(), "checkpoint", "--image-path", img, testID); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	if _, err := os.Lstat(filepath.Join(img, "parent")); err == nil {
		t.Errorf("the parent link stays in podman's image directory: podman's import refuses the archive (invalid symlink)")
	}
	calls := f.calls()
	pause := strings.Index(calls, "pause "+testID)
	dump := strings.Index(calls, "checkpoint --image-path "+img+" --parent-path "+rel+" --leave-running --page-server 10.250.13.2:4321 "+testID)
	if pause < 0 || dump < pause || strings.Contains(calls, "resume") {
		t.Errorf("want pause, then the final dump on round 3, never resume; runc calls:\n%s", calls)
	}
	if p, err := ReadPlan(f.stateDir(), testID); err != nil || p.Status != migrate.StatusServing {
		t.Errorf("plan after the dump: %+v, %v; want serving", p, err)
	}

	f = lazyFake(t, precopyPlan(0, ""))
	if code, stderr := f.shim("--root", f.runcRoot(), "checkpoint", "--image-path", img, testID); code == 0 || !strings.Contains(stderr, "names no last pre-copy round") {
		t.Errorf("final dump without a round: exit %d: %s", code, stderr)
	}
	if f.ran("checkpoint") || f.ran("pause") {
		t.Errorf("runc ran: %s", f.calls())
	}
}

// TestPrecopyRestore: the final pages join podman's image directory, the
// rounds move into it, and its parent link (the source's, from the
// archive, is replaced) names the last round inside it: CRIU follows the
// links from the restored task, inside the container's root, where a
// path leaving the image directory names nothing ("Can't open parent
// path" in the guest). Nothing runs unless the page server exited 0.
func TestPrecopyRestore(t *testing.T) {
	for _, rc := range []string{"0", "1"} {
		t.Run("page server exit "+rc, func(t *testing.T) {
			p := precopyPlan(0, "rounds/2")
			p.TLS = migrate.TLSPaths{CACert: "/t/ca.pem", Cert: "/t/server.pem", Key: "/t/server-key.pem"}
			f := lazyFake(t, p)
			dir := MigrationDir(f.stateDir(), "m1")
			for _, n := range []int{1, 2} {
				f.write(strings.TrimPrefix(filepath.Join(RoundDir(dir, n), "pagemap-1.img"), f.root+"/"), "round")
			}
			if err := os.Symlink("../1", filepath.Join(RoundDir(dir, 2), "parent")); err != nil {
				t.Fatal(err)
			}
			f.write(strings.TrimPrefix(filepath.Join(dir, StreamPages, "pagemap-1.img"), f.root+"/"), "m")
			f.write(strings.TrimPrefix(filepath.Join(dir, StreamPages, "pages-1.img"), f.root+"/"), "p")
			if err := os.Symlink("../rounds/2", filepath.Join(dir, StreamPages, "parent")); err != nil {
				t.Fatal(err)
			}
			f.write(strings.TrimPrefix(filepath.Join(dir, PageServerRC), f.root+"/"), rc+"\n")
			img := filepath.Join(f.root, "img")
			if err := os.MkdirAll(img, 0o700); err != nil {
				t.Fatal(err)
			}
			// A link from the archive, as an older source left it.
			if err := os.Symlink("../../../run/crhook/migrations/m1/rounds/2", filepath.Join(img, "parent")); err != nil {
				t.Fatal(err)
			}
			bundle := f.bundle(map[string]string{})
			code, stderr := f.shim("--root", f.runcRoot(), "restore", "--bundle", bundle, "--image-path", img, "--work-path", bundle, "--detach", testID)
			if rc != "0" {
				if code == 0 || !strings.Contains(stderr, "page server exited 1") || f.ran("restore") {
					t.Fatalf("exit %d, runc restore ran %v: %s", code, f.ran("restore"), stderr)
				}
				return
			}
			if code != 0 || !f.ran("restore") {
				t.Fatalf("exit %d, runc restore ran %v: %s", code, f.ran("restore"), stderr)
			}
			if target, err := os.Readlink(filepath.Join(img, "parent")); err != nil || target != "precopy-rounds/2" {
				t.Errorf("parent link -> %q (%v), want precopy-rounds/2, inside the image directory", target, err)
			}
			// The chain resolves within the image directory.
			for _, name := range []string{"parent/pagemap-1.img", "parent/parent/pagemap-1.img", "pagemap-1.img", "pages-1.img"} {
				if _, err := os.Stat(filepath.Join(img, name)); err != nil {
					t.Errorf("%s: %v", name, err)
				}
			}
		})
	}
}

// TestMoveTree: the rounds move with their relative parent links, also
// across file systems (the state directory on tmpfs, podman's storage on
// disk), where it is a copy.
func TestMoveTree(t *testing.T) {
	for _, toBase := range []string{t.TempDir(), "/dev/shm"} {
		if fi, err := os.Stat(toBase); err != nil || !fi.IsDir() {
			continue
		}
		from := filepath.Join(t.TempDir(), "rounds")
		for _, n := range []string{"1", "2"} {
			if err := os.MkdirAll(filepath.Join(from, n), 0o700); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(from, n, "pages-1.img"), []byte("pages "+n), 0o600); err != nil {
				t.Fatal(err)
			}
		}
		if err := os.Symlink("../1", filepath.Join(from, "2", "parent")); err != nil {
			t.Fatal(err)
		}
		to, err := os.MkdirTemp(toBase, "crhook-movetree-")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = os.RemoveAll(to) })
		to = filepath.Join(to, "precopy-rounds")
		if err := moveTree(from, to); err != nil {
			t.Fatalf("to %s: %v", toBase, err)
		}
		if data, err := os.ReadFile(filepath.Join(to, "2", "parent", "pages-1.img")); err != nil || string(data) != "pages 1" {
			t.Errorf("to %s: round 2's parent reads %q, %v", toBase, data, err)
		}
		if _, err := os.Stat(from); err == nil {
			t.Errorf("to %s: %s is still there", toBase, from)
		}
	}
}

// TestWithoutFlags: podman's image and work paths and --pre-dump go,
// in both spellings; the container ID stays even when it looks like a
// dropped flag's value.
func TestWithoutFlags(t *testing.T) {
	got := strings.Join(withoutFlags([]string{"--image-path", "/a", "--work-path=/b", "--pre-dump", "--tcp-established", "id"},
		map[string]bool{"--pre-dump": false, "--image-path": true, "--work-path": true}), " ")
	if got != "--tcp-established id" {
		t.Errorf("got %q", got)
	}
	if got := withoutFlags([]string{"--image-path", "id"}, map[string]bool{"--image-path": true}); len(got) != 1 || got[0] != "id" {
		t.Errorf("got %q", got)
	}
}

// TestStartRoundPageServer: round 1's page server writes rounds/1 with
// no parent; round N's rounds/N with --prev-images-dir ../N-1, refused
// when round N-1 is not there; the final's pages with ../rounds/LAST.
func TestStartRoundPageServer(t *testing.T) {
	root := t.TempDir()
	criu := filepath.Join(root, "criu")
	if err := os.WriteFile(criu, []byte("#!/bin/sh\necho \"$*\" >\"$0.args\"; printf '\\0' >&3; exec 3>&-\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	p := precopyPlan(0, "")
	p.Timeouts.Connect = migrate.Duration(5 * time.Second)
	dir := MigrationDir(root, "m1")
	for _, tc := range []struct {
		n, last    int
		images     string
		prev, fail string
	}{
		{n: 2, last: 1, fail: "previous round's images are missing"},
		{n: 1, images: RoundDir(dir, 1)},
		{n: 2, last: 1, images: RoundDir(dir, 2), prev: "../1"},
		{n: 0, last: 2, images: filepath.Join(dir, StreamPages), prev: "../rounds/2"},
		{n: 0, last: 0, fail: "want round >= 1"},
	} {
		_ = os.Remove(criu + ".args")
		err := StartRoundPageServer(root, p, criu, tc.n, tc.last)
		if tc.fail != "" {
			if err == nil || !strings.Contains(err.Error(), tc.fail) {
				t.Errorf("round %d after %d: %v, want %q", tc.n, tc.last, err, tc.fail)
			}
			continue
		}
		if err != nil {
			t.Fatalf("round %d after %d: %v", tc.n, tc.last, err)
		}
		// The supervisor writes the exit status last: wait for it, the
		// next round's start removes it.
		deadline := time.Now().Add(10 * time.Second)
		for !fileExists(filepath.Join(dir, PageServerRC)) {
			if time.Now().After(deadline) {
				t.Fatal("no exit status from the supervisor")
			}
			time.Sleep(10 * time.Millisecond)
		}
		args, _ := os.ReadFile(criu + ".args")
		if !strings.HasPrefix(string(args), "page-server --images-dir "+tc.images+" ") {
			t.Errorf("round %d: criu %s", tc.n, args)
		}
		hasPrev := strings.Contains(string(args), "--prev-images-dir")
		if tc.prev == "" && hasPrev || tc.prev != "" && !strings.Contains(string(args), "--prev-images-dir "+tc.prev+"\n") {
			t.Errorf("round %d: criu %s, want prev %q", tc.n, args, tc.prev)
		}
	}
}

// lazyFinalPlan is a pre-copy's final plan with a lazy final dump: the
// source's page server (10.250.13.2) serves what changed since the last
// round, on top of it.
func lazyFinalPlan(parent string) *migrate.Plan {
	p := precopyPlan(0, parent)
	p.Final = migrate.ModeLazy
	return p
}

// TestPrecopyLazyCheckpoint: with final lazy, the final dump is a lazy
// one's (paused, --lazy-pages --page-server --status-fd, returning at
// the status byte, plan serving so podman's delete keeps the tasks) on
// top of the last round, and the parent link leaves podman's image
// directory as with a streamed final. Its failure points fail closed:
// no status byte resumes the container and leaves it running here; no
// last round refuses before anything is paused.
func TestPrecopyLazyCheckpoint(t *testing.T) {
	for _, tc := range []struct {
		name   string
		parent string
		knob   string
		refuse string
	}{
		{name: "lazy on round 3", parent: "rounds/3"},
		{name: "page server never comes up", parent: "rounds/3", knob: "no-status-byte", refuse: "gave no status byte"},
		{name: "runc fails", parent: "rounds/3", knob: "fail-checkpoint", refuse: "gave no status byte"},
		{name: "no last round", parent: "", refuse: "names no last pre-copy round"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := lazyFake(t, lazyFinalPlan(tc.parent))
			last := roundImages(t, f, 3)
			if tc.knob != "" {
				f.knob(tc.knob, "")
			}
			img := filepath.Join(f.root, "userdata", "checkpoint")
			if err := os.MkdirAll(img, 0o700); err != nil {
				t.Fatal(err)
			}
			rel, err := filepath.Rel(img, last)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.Symlink(rel, filepath.Join(img, "parent")); err != nil {
				t.Fatal(err)
			}
			code, stderr := f.shim("--root", f.runcRoot(), "checkpoint", "--image-path", img, testID)
			calls := f.calls()
			if tc.refuse != "" {
				if code == 0 || !strings.Contains(stderr, tc.refuse) {
					t.Fatalf("exit %d, want a refusal saying %q: %s", code, tc.refuse, stderr)
				}
				if strings.Contains(calls, "pause") && !strings.Contains(calls, "resume") {
					t.Errorf("paused and never resumed: the container stays frozen\n%s", calls)
				}
				if p, err := ReadPlan(f.stateDir(), testID); err != nil || p.Status == migrate.StatusServing {
					t.Errorf("plan after a failed dump: %+v, %v; podman's delete would keep tasks nobody needs", p, err)
				}
				return
			}
			if code != 0 {
				t.Fatalf("exit %d: %s", code, stderr)
			}
			pause := strings.Index(calls, "pause "+testID)
			dump := strings.Index(calls, "checkpoint --image-path "+img+" --parent-path "+rel+" --lazy-pages --page-server 10.250.13.2:4321 --status-fd 3 "+testID)
			if pause < 0 || dump < pause || strings.Contains(calls, "resume") || strings.Contains(calls, "--leave-running") {
				t.Errorf("want pause, then the lazy dump on round 3, never resume nor --leave-running; runc calls:\n%s", calls)
			}
			if _, err := os.Lstat(filepath.Join(img, "parent")); err == nil {
				t.Errorf("the parent link stays in podman's image directory: podman's import refuses the archive (invalid symlink)")
			}
			if p, err := ReadPlan(f.stateDir(), testID); err != nil || p.Status != migrate.StatusServing {
				t.Errorf("plan after the status byte: %+v, %v; want serving", p, err)
			}
			if code, _ := f.shim("--root", f.runcRoot(), "delete", "--force", testID); code != 0 || f.ran("delete") {
				t.Errorf("podman's delete is not held while the lazy page server serves: the rollback's tasks would go")
			}
		})
	}
}

// TestPrecopyLazyRestore: with final lazy, the destination has no final
// page server: the rounds move into the imported image directory, its
// parent link names the last one, and the restore is lazy mode's (the
// daemon fetching from the source's page server, runc restore
// --lazy-pages). A daemon that does not come up, or a missing last
// round, restores nothing.
func TestPrecopyLazyRestore(t *testing.T) {
	for _, tc := range []struct {
		name   string
		knob   string
		rounds []int
		want   string
	}{
		{name: "restores", rounds: []int{1, 2}},
		{name: "daemon fails", knob: "criu-fails", rounds: []int{1, 2}, want: "did not come up"},
		{name: "last round missing", rounds: []int{1}, want: "last round's pages are missing"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := lazyFinalPlan("rounds/2")
			p.TLS = migrate.TLSPaths{CACert: "/t/ca.pem", Cert: "/t/client.pem", Key: "/t/client-key.pem"}
			f := lazyFake(t, p)
			criu := fakeCriu(f)
			if err := os.Chmod(criu, 0o755); err != nil {
				t.Fatal(err)
			}
			if tc.knob != "" {
				f.knob(tc.knob, "")
			}
			dir := MigrationDir(f.stateDir(), "m1")
			for _, n := range tc.rounds {
				f.write(strings.TrimPrefix(filepath.Join(RoundDir(dir, n), "pagemap-1.img"), f.root+"/"), "round")
			}
			img := filepath.Join(f.root, "img")
			f.write(strings.TrimPrefix(filepath.Join(img, "pagemap-1.img"), f.root+"/"), "final, from the archive")
			bundle := f.bundle(map[string]string{})
			code, stderr := f.shimWithin(5*time.Second, "--root", f.runcRoot(), "--criu", criu, "restore", "--bundle", bundle, "--image-path", img, "--work-path", bundle, "--detach", testID)
			if tc.want != "" {
				if code == 0 || !strings.Contains(stderr, tc.want) || f.ran("restore") {
					t.Fatalf("exit %d, runc restore ran %v; want a refusal saying %q: %s", code, f.ran("restore"), tc.want, stderr)
				}
				return
			}
			if code != 0 {
				t.Fatalf("exit %d: %s", code, stderr)
			}
			if target, err := os.Readlink(filepath.Join(img, "parent")); err != nil || target != "precopy-rounds/2" {
				t.Errorf("parent link -> %q (%v), want precopy-rounds/2", target, err)
			}
			wantDaemon := "lazy-pages --page-server --address 10.250.13.2 --port 4321 --tls --tls-cacert /t/ca.pem --tls-cert /t/client.pem --tls-key /t/client-key.pem -D " + img
			if args := f.read("criu-args"); !strings.Contains(args, wantDaemon) {
				t.Errorf("criu lazy-pages args %q, want %q", args, wantDaemon)
			}
			if calls := f.calls(); !strings.Contains(calls, " --lazy-pages "+testID) {
				t.Errorf("want runc restore --lazy-pages; runc calls:\n%s", calls)
			}
			if p, err := ReadPlan(f.stateDir(), testID); err != nil || p.Status != migrate.StatusRestored {
				t.Errorf("plan after the restore: %+v, %v", p, err)
			}
		})
	}
}
