package engine

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// TestRestoreFailsClosed: when the bundle cannot be pointed at crhook's
// file, or the container's own file does not pass, the runtime never runs:
// it would hand CRIU the bundle's org.criu.config as it is.
func TestRestoreFailsClosed(t *testing.T) {
	tests := []struct {
		name  string
		root  bool
		setup func(f *fake, bundle, ctr string)
		want  string
	}{
		{
			name: "bundle cannot be rewritten",
			setup: func(_ *fake, _, _ string) {
				// A read-only bundle, ENOSPC or EDQUOT: the rewrite fails,
				// also as root.
				saved := atomicWrite
				t.Cleanup(func() { atomicWrite = saved })
				atomicWrite = func(path string, _ []byte, _ os.FileMode) error {
					return &os.PathError{Op: "write", Path: path, Err: unix.EROFS}
				}
			},
			want: "make the bundle writable",
		},
		{
			name: "container file writable by others",
			root: true,
			setup: func(_ *fake, _, ctr string) {
				if err := os.Chmod(ctr, 0o666); err != nil {
					t.Fatal(err)
				}
			},
			want: "writable by group or others",
		},
		{
			name: "container file does not parse",
			setup: func(f *fake, _, _ string) {
				f.write("ctr.conf", "action-script \"/x\n")
			},
			want: "ctr.conf:1:",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if tc.root && os.Geteuid() != 0 {
				t.Skip("ownership checks apply only when crhook runs as root")
			}
			f := newFake(t)
			ctr := f.write("ctr.conf", "action-script /bin/touch-marker\n")
			bundle := f.bundle(map[string]string{CRIUConfigAnnotation: ctr})
			tc.setup(f, bundle, ctr)
			code, stderr := f.shim("--root", f.runcRoot(), "restore", "--bundle", bundle, "--work-path", f.root, testID)
			if code != 1 {
				t.Fatalf("exit %d, want 1; stderr:\n%s", code, stderr)
			}
			if f.ran("restore") {
				t.Fatalf("the runtime ran restore; stderr:\n%s", stderr)
			}
			for _, w := range []string{"restore of container " + testID + " refused", tc.want, "nothing was restored"} {
				if !strings.Contains(stderr, w) {
					t.Errorf("stderr lacks %q:\n%s", w, stderr)
				}
			}
		})
	}
}

// TestRestoreUsesContainerFile: the container's org.criu.config is layer 4
// at restore, from an imported bundle (the annotation as its creator set
// it) or from the bundle crhook already pointed at its own file.
func TestRestoreUsesContainerFile(t *testing.T) {
	for _, pointed := range []bool{false, true} {
		t.Run("pointed="+strconv.FormatBool(pointed), func(t *testing.T) {
			f := newFake(t)
			f.write("etc/criu/runc.conf", "file-locks\n")
			ctr := f.write("ctr.conf", "log-file ctr.log\nimages-dir /elsewhere\ntcp-established\n")
			ann := map[string]string{CRIUConfigAnnotation: ctr}
			if pointed {
				ann = map[string]string{CRIUConfigAnnotation: f.generated(), OriginalCRIUConfigAnnotation: ctr}
			}
			bundle := f.bundle(ann)
			code, stderr := f.shim("--root", f.runcRoot(), "restore", "--bundle", bundle, "--work-path", f.root, testID)
			if code != 0 {
				t.Fatalf("exit %d; stderr:\n%s", code, stderr)
			}
			seen := f.seenAnnotations()
			if seen[CRIUConfigAnnotation] != f.generated() || seen[OriginalCRIUConfigAnnotation] != ctr {
				t.Errorf("the runtime saw %v, want %s=%s and %s=%s", seen, CRIUConfigAnnotation, f.generated(), OriginalCRIUConfigAnnotation, ctr)
			}
			conf := f.generatedText()
			for _, w := range []string{"\nfile-locks\n", "\nlog-file ctr.log\n", "\ntcp-established\n", ctr + " (read)"} {
				if !strings.Contains(conf, w) {
					t.Errorf("generated file lacks %q:\n%s", w, conf)
				}
			}
			if strings.Contains(conf, "\nimages-dir") {
				t.Errorf("generated file kept images-dir:\n%s", conf)
			}
			if w := ctr + ":2: images-dir ignored"; !strings.Contains(stderr, w) {
				t.Errorf("stderr lacks %q:\n%s", w, stderr)
			}
		})
	}
}

// TestCheckpoint covers what CRIU reads at checkpoint: the generated file
// with the remembered container file as layer 4 for a container crhook
// created, and, for any other, the file the runtime reads by itself, which
// must pass the same checks.
func TestCheckpoint(t *testing.T) {
	tests := []struct {
		name     string
		root     bool
		runcConf string
		ctr      string
		ann      func(f *fake, ctr string) map[string]string
		wantRun  bool
		want     string // in stderr
		wantConf string // in the generated file, when crhook wrote one
	}{
		{
			name:     "created by crhook: the remembered file is layer 4",
			runcConf: "file-locks\n",
			ctr:      "tcp-established\n",
			ann: func(f *fake, ctr string) map[string]string {
				return map[string]string{CRIUConfigAnnotation: f.generated(), OriginalCRIUConfigAnnotation: ctr}
			},
			wantRun:  true,
			wantConf: "\nfile-locks\n# from CTR:1\ntcp-established\n",
		},
		{
			name:    "foreign file that passes",
			ctr:     "tcp-established\nlog-file x.log\n",
			ann:     func(_ *fake, ctr string) map[string]string { return map[string]string{CRIUConfigAnnotation: ctr} },
			wantRun: true,
			want:    "created without crhook",
		},
		{
			name: "foreign file with an option crhook would drop",
			ctr:  "tcp-established\nimages-dir /elsewhere\n",
			ann:  func(_ *fake, ctr string) map[string]string { return map[string]string{CRIUConfigAnnotation: ctr} },
			want: "CTR:2: images-dir",
		},
		{
			name: "foreign file writable by others",
			root: true,
			ctr:  "tcp-established\n",
			ann:  func(_ *fake, ctr string) map[string]string { return map[string]string{CRIUConfigAnnotation: ctr} },
			want: "writable by group or others",
		},
		{
			name:     "no annotation: runc.conf as runc reads it",
			runcConf: "work-dir /elsewhere\n",
			ann:      func(*fake, string) map[string]string { return map[string]string{} },
			want:     "runc.conf:1: work-dir",
		},
		{
			name:     "empty annotation: runc reads no file",
			runcConf: "work-dir /elsewhere\n",
			ann:      func(*fake, string) map[string]string { return map[string]string{CRIUConfigAnnotation: ""} },
			wantRun:  true,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if tc.root && os.Geteuid() != 0 {
				t.Skip("ownership checks apply only when crhook runs as root")
			}
			f := newFake(t)
			if tc.runcConf != "" {
				f.write("etc/criu/runc.conf", tc.runcConf)
			}
			ctr := f.write("ctr.conf", tc.ctr)
			if tc.root {
				if err := os.Chmod(ctr, 0o666); err != nil {
					t.Fatal(err)
				}
			}
			f.stateAnnotations(tc.ann(f, ctr))
			code, stderr := f.shim("--root", f.runcRoot(), "checkpoint", "--image-path", filepath.Join(f.root, "img"), testID)
			if f.ran("checkpoint") != tc.wantRun || (code == 0) != tc.wantRun {
				t.Fatalf("exit %d, ran checkpoint %v, want %v; stderr:\n%s", code, f.ran("checkpoint"), tc.wantRun, stderr)
			}
			if want := strings.ReplaceAll(tc.want, "CTR", ctr); !strings.Contains(stderr, want) {
				t.Errorf("stderr lacks %q:\n%s", want, stderr)
			}
			if tc.wantConf != "" {
				if conf, want := f.generatedText(), strings.ReplaceAll(tc.wantConf, "CTR", ctr); !strings.Contains(conf, want) {
					t.Errorf("generated file lacks %q:\n%s", want, conf)
				}
			}
		})
	}
}

// TestFailedCheckpointResumes: a checkpoint that fails with the container
// frozen resumes it, and says how when it cannot.
func TestFailedCheckpointResumes(t *testing.T) {
	tests := []struct {
		name       string
		before     string // status before the checkpoint
		knobs      []string
		wantResume bool
		want       string
		wantStatus string
		// stateFailsAt: the Nth `state` call fails (1 reads the
		// annotations, 2 the status before the checkpoint).
		stateFailsAt string
	}{
		{name: "frozen by the failure: resumed", before: "running", knobs: []string{"checkpoint-freezes"},
			wantResume: true, want: "crhook resumed it (RT --root ROOT resume " + testID + ")", wantStatus: "running"},
		{name: "resume fails: the exact command", before: "running", knobs: []string{"checkpoint-freezes", "resume-fails"},
			wantResume: true, want: "RT --root ROOT resume " + testID + ": exit status 1: resume: cannot thaw; it stays frozen", wantStatus: "paused"},
		{name: "paused before: left paused", before: "paused", knobs: []string{"checkpoint-freezes"}, wantStatus: "paused"},
		{name: "state before unknown: paused now is reported with the command", before: "running", knobs: []string{"checkpoint-freezes"}, stateFailsAt: "2",
			want: "its state before could not be read (RT --root ROOT state " + testID + ": exit status 1: state: interrupted); if it was running, the checkpoint froze it: run: RT --root ROOT resume " + testID, wantStatus: "paused"},
		{name: "failed but not frozen: nothing to do", before: "running", knobs: []string{"checkpoint-fails"}, wantStatus: "running"},
		{name: "succeeded: nothing to do", before: "running", wantStatus: "running"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFake(t)
			f.knob("status", tc.before+"\n")
			for _, k := range tc.knobs {
				f.knob(k, "")
			}
			if tc.stateFailsAt != "" {
				f.knob("state-fails-at", tc.stateFailsAt)
			}
			f.stateAnnotations(map[string]string{CRIUConfigAnnotation: f.generated()})
			_, stderr := f.shim("--root", f.runcRoot(), "checkpoint", "--image-path", filepath.Join(f.root, "img"), testID)
			if f.ran("resume") != tc.wantResume {
				t.Errorf("resume called %v, want %v; stderr:\n%s", f.ran("resume"), tc.wantResume, stderr)
			}
			want := strings.NewReplacer("RT", f.bin, "ROOT", f.runcRoot()).Replace(tc.want)
			if !strings.Contains(stderr, want) {
				t.Errorf("stderr lacks %q:\n%s", want, stderr)
			}
			if n := strings.Count(stderr, " resume "+testID); n > 1 {
				t.Errorf("the resume command appears %d times:\n%s", n, stderr)
			}
			if status, _ := os.ReadFile(filepath.Join(f.dir, "status")); strings.TrimSpace(string(status)) != tc.wantStatus {
				t.Errorf("status %q, want %q", status, tc.wantStatus)
			}
		})
	}
}

// TestDiagnosisReadsMovedLog: a log-file kept from the container's file
// moves CRIU's log into the work dir; the diagnosis reads it there.
func TestDiagnosisReadsMovedLog(t *testing.T) {
	f := newFake(t)
	ctr := f.write("ctr.conf", "log-file custom.log\n")
	work := filepath.Join(f.root, "work")
	f.write("work/custom.log", "(00.010000) Error (criu/sk-unix.c:881): unix: Can't dump half of stream unix connection. name: (null); peer name: /tmp/x.sock\n")
	f.knob("checkpoint-fails", "")
	f.stateAnnotations(map[string]string{CRIUConfigAnnotation: f.generated(), OriginalCRIUConfigAnnotation: ctr})
	code, stderr := f.shim("--root", f.runcRoot(), "checkpoint", "--image-path", filepath.Join(f.root, "img"), "--work-path", work, testID)
	if code == 0 {
		t.Fatal("checkpoint succeeded")
	}
	if want := filepath.Join(work, "custom.log") + ":1"; !strings.Contains(stderr, want) {
		t.Errorf("diagnosis does not read %s:\n%s", want, stderr)
	}
}

// TestCreateAndRunPointTheBundle: create and run both point the bundle at
// the generated file and remember the container's own, then exec the
// runtime.
func TestCreateAndRunPointTheBundle(t *testing.T) {
	for _, sub := range []string{"create", "run"} {
		t.Run(sub, func(t *testing.T) {
			f := newFake(t)
			ctr := f.write("ctr.conf", "tcp-established\n")
			bundle := f.bundle(map[string]string{CRIUConfigAnnotation: ctr, "other": "x"})
			args := []string{"--root", f.runcRoot(), sub, "--bundle", bundle, testID}
			if code, stderr := f.shim(args...); code != 0 || f.execed == nil {
				t.Fatalf("%s: exit %d, exec %q\n%s", sub, code, f.execed, stderr)
			}
			seen := f.seenAnnotations()
			if seen[CRIUConfigAnnotation] != f.generated() || seen[OriginalCRIUConfigAnnotation] != ctr || seen["other"] != "x" {
				t.Errorf("%s: the runtime saw %v", sub, seen)
			}
		})
	}
}

// TestContainerdSeesTheFixFirst: containerd's runc shim shows the kubelet
// only the first line of the runtime's output, so for containerd the
// runtime's stderr is held back and crhook's one-line diagnosis, with the
// fix, comes first; every other caller gets the runtime's output as it
// comes, then the diagnosis.
func TestContainerdSeesTheFixFirst(t *testing.T) {
	log, err := os.ReadFile("diagnose/testdata/logs/tcp-established.dump.log")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name      string
		log       string // the runtime's --log, as its caller passes it
		wantFirst string
	}{
		{"containerd", "/run/containerd/io.containerd.runtime.v2.task/k8s.io/" + testID + "/log.json", "crhook: CRIU dump failed (tcp-established): "},
		{"runc by hand", "", "criu failed: type NOTIFY errno 0"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFake(t)
			work := filepath.Join(f.root, "work")
			f.write("work/dump.log", string(log))
			f.knob("checkpoint-fails", "")
			f.stateAnnotations(map[string]string{CRIUConfigAnnotation: f.generated()})
			args := []string{"--root", f.runcRoot()}
			if tc.log != "" {
				args = append(args, "--log", tc.log, "--log-format", "json")
			}
			args = append(args, "checkpoint", "--image-path", filepath.Join(f.root, "img"), "--work-path", work, testID)
			code, stderr := f.shim(args...)
			if code == 0 {
				t.Fatal("checkpoint succeeded")
			}
			first, _, _ := strings.Cut(stderr, "\n")
			if !strings.HasPrefix(first, tc.wantFirst) {
				t.Errorf("first line %q, want it to start with %q; stderr:\n%s", first, tc.wantFirst, stderr)
			}
			if tc.log != "" && !strings.Contains(first, "; fix: crhook config set tcp-established") {
				t.Errorf("first line %q lacks the node-wide fix", first)
			}
			if !strings.Contains(stderr, "criu failed: type NOTIFY errno 0") || !strings.Contains(stderr, "It means:") {
				t.Errorf("stderr lacks the runtime's own line or the full diagnosis:\n%s", stderr)
			}
		})
	}
}

// TestRuntimeNotStarted: when the runtime cannot even be started (EACCES
// on a noexec mount, ETXTBSY while it is replaced), nothing ran: the
// checkpoint says so, and neither diagnoses a CRIU log that cannot exist
// nor asks the runtime whether the container is frozen.
func TestRuntimeNotStarted(t *testing.T) {
	f := newFake(t)
	f.stateAnnotations(map[string]string{CRIUConfigAnnotation: f.generated()})
	f.knob("noexec-after-state", "")
	code, stderr := f.shim("--root", f.runcRoot(), "checkpoint", "--image-path", filepath.Join(f.root, "img"), testID)
	if code != 127 {
		t.Errorf("exit %d, want 127; stderr:\n%s", code, stderr)
	}
	for _, bad := range []string{"left no log", "cannot tell whether", "dump.log"} {
		if strings.Contains(stderr, bad) {
			t.Errorf("stderr diagnoses a CRIU run that never happened (%q):\n%s", bad, stderr)
		}
	}
	for _, want := range []string{"permission denied", "check that runtime.path (" + `"` + f.bin + `"`, "nothing was dumped; the container is still running"} {
		if !strings.Contains(stderr, want) {
			t.Errorf("stderr lacks %q:\n%s", want, stderr)
		}
	}
}

// TestOddIDRefused: a checkpoint or restore whose container ID crhook
// cannot keep state for (runc accepts "a,b" and ".x"; crun takes options
// after the ID, so the last argument is not it) is refused, not passed
// through to a runtime that would hand CRIU the container's own config
// unvetted. Other commands, and --help, still reach the runtime.
func TestOddIDRefused(t *testing.T) {
	tests := []struct {
		args    []string
		refused bool
	}{
		{[]string{"checkpoint", "--image-path", "IMG", "a,b"}, true},
		{[]string{"checkpoint", "--image-path", "IMG", ".x"}, true},
		{[]string{"checkpoint", testID, "--image-path", "IMG"}, true},
		{[]string{"restore", "--bundle", "BUNDLE", "--image-path", "IMG", "a,b"}, true},
		{[]string{"checkpoint", "--help"}, false},
		{[]string{"state", "a,b"}, false},
		{[]string{"create", "--bundle", "BUNDLE", "a,b"}, false},
	}
	for _, tc := range tests {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			f := newFake(t)
			r := strings.NewReplacer("IMG", filepath.Join(f.root, "img"), "BUNDLE", f.bundle(nil))
			args := []string{"--root", f.runcRoot()}
			for _, a := range tc.args {
				args = append(args, r.Replace(a))
			}
			code, stderr := f.shim(args...)
			if ran := f.ran(tc.args[0]); ran == tc.refused {
				t.Errorf("runtime got %s: %v, want %v; stderr:\n%s", tc.args[0], ran, !tc.refused, stderr)
			}
			if tc.args[0] == "create" && !strings.Contains(stderr, "will be refused") {
				t.Errorf("create of an odd ID does not warn; stderr:\n%s", stderr)
			}
			if tc.refused && (code == 0 || !strings.Contains(stderr, "refused: "+`"`) || !strings.Contains(stderr, "Nothing was run")) {
				t.Errorf("exit %d, stderr %q; want a refusal quoting the ID", code, stderr)
			}
		})
	}
}
