package engine

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/crhook/crhook/config"
)

// fake is a scratch host for the runtime wrapper: a config tree, a state
// dir and testdata/fakeruntime as the wrapped runtime (named runc, so
// runc.conf is its layer). It records every call it gets.
type fake struct {
	t        *testing.T
	root     string
	dir      string // the fake runtime and its state files
	bin      string
	paths    config.Paths
	settings *config.Settings
}

const testID = "0123456789abcdef"

func newFake(t *testing.T) *fake {
	t.Helper()
	root := t.TempDir()
	f := &fake{t: t, root: root, dir: filepath.Join(root, "rt")}
	f.bin = filepath.Join(f.dir, "runc")
	script, err := os.ReadFile("testdata/fakeruntime")
	if err != nil {
		t.Fatal(err)
	}
	f.write("rt/runc", string(script))
	if err := os.Chmod(f.bin, 0o755); err != nil {
		t.Fatal(err)
	}
	f.paths = config.Paths{CRIUDir: filepath.Join(root, "etc/criu"), SettingsSystem: filepath.Join(root, "crhook.toml")}
	f.write("crhook.toml", "state_dir = "+strconv.Quote(filepath.Join(root, "state"))+"\n[runtime]\npath = "+strconv.Quote(f.bin)+"\n")
	if f.settings, err = config.LoadSettings(f.paths); err != nil {
		t.Fatal(err)
	}
	return f
}

// write creates root/rel with content, mode 0644, and returns its path.
func (f *fake) write(rel, content string) string {
	f.t.Helper()
	path := filepath.Join(f.root, rel)
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		f.t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		f.t.Fatal(err)
	}
	return path
}

// bundle writes an OCI bundle whose config.json carries ann.
func (f *fake) bundle(ann map[string]string) string {
	f.t.Helper()
	data, err := json.Marshal(map[string]any{"ociVersion": "1.0.2", "annotations": ann})
	if err != nil {
		f.t.Fatal(err)
	}
	return filepath.Dir(f.write("bundle/config.json", string(data)))
}

// stateAnnotations sets what the fake's `state` reports.
func (f *fake) stateAnnotations(ann map[string]string) {
	f.t.Helper()
	data, err := json.Marshal(ann)
	if err != nil {
		f.t.Fatal(err)
	}
	f.write("rt/annotations", string(data))
}

func (f *fake) runner(args ...string) (*runner, *bytes.Buffer) {
	var stderr bytes.Buffer
	args = append([]string{"--root", filepath.Join(f.root, "runcroot")}, args...)
	return &runner{inv: parseArgs(args), runtime: f.bin, settings: f.settings, paths: f.paths, stderr: &stderr}, &stderr
}

// ran reports whether the fake got the subcommand.
func (f *fake) ran(sub string) bool {
	data, _ := os.ReadFile(filepath.Join(f.dir, "calls"))
	for _, l := range strings.Split(string(data), "\n") {
		if strings.Contains(" "+l+" ", " "+sub+" ") {
			return true
		}
	}
	return false
}

// seenAnnotations are the bundle annotations the fake's create, run or
// restore saw.
func (f *fake) seenAnnotations() map[string]string {
	f.t.Helper()
	data, err := os.ReadFile(filepath.Join(f.dir, "seen-config.json"))
	if err != nil {
		f.t.Fatalf("the runtime never read the bundle: %v", err)
	}
	var spec struct {
		Annotations map[string]string `json:"annotations"`
	}
	if err := json.Unmarshal(data, &spec); err != nil {
		f.t.Fatal(err)
	}
	return spec.Annotations
}

func (f *fake) generated() string {
	return filepath.Join(f.settings.StateDir, "containers", testID, "criu.conf")
}

func (f *fake) generatedText() string {
	f.t.Helper()
	data, err := os.ReadFile(f.generated())
	if err != nil {
		f.t.Fatal(err)
	}
	return string(data)
}

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
			r, stderr := f.runner("restore", "--bundle", bundle, "--work-path", f.root, testID)
			if code := r.checkpointRestore(); code != 1 {
				t.Fatalf("exit %d, want 1; stderr:\n%s", code, stderr)
			}
			if f.ran("restore") {
				t.Fatalf("the runtime ran restore; stderr:\n%s", stderr)
			}
			for _, w := range []string{"restore of container " + testID + " refused", tc.want, "nothing was restored"} {
				if !strings.Contains(stderr.String(), w) {
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
			r, stderr := f.runner("restore", "--bundle", bundle, "--work-path", f.root, testID)
			if code := r.checkpointRestore(); code != 0 {
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
			if w := ctr + ":2: images-dir ignored"; !strings.Contains(stderr.String(), w) {
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
			r, stderr := f.runner("checkpoint", "--image-path", filepath.Join(f.root, "img"), testID)
			code := r.checkpointRestore()
			if f.ran("checkpoint") != tc.wantRun || (code == 0) != tc.wantRun {
				t.Fatalf("exit %d, ran checkpoint %v, want %v; stderr:\n%s", code, f.ran("checkpoint"), tc.wantRun, stderr)
			}
			if want := strings.ReplaceAll(tc.want, "CTR", ctr); !strings.Contains(stderr.String(), want) {
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
	}{
		{name: "frozen by the failure: resumed", before: "running", knobs: []string{"checkpoint-freezes"},
			wantResume: true, want: "crhook resumed it (RT --root ROOT resume " + testID + ")", wantStatus: "running"},
		{name: "resume fails: the exact command", before: "running", knobs: []string{"checkpoint-freezes", "resume-fails"},
			wantResume: true, want: "cannot thaw; run: RT --root ROOT resume " + testID, wantStatus: "paused"},
		{name: "paused before: left paused", before: "paused", knobs: []string{"checkpoint-freezes"}, wantStatus: "paused"},
		{name: "failed but not frozen: nothing to do", before: "running", knobs: []string{"checkpoint-fails"}, wantStatus: "running"},
		{name: "succeeded: nothing to do", before: "running", wantStatus: "running"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFake(t)
			f.write("rt/status", tc.before+"\n")
			for _, k := range tc.knobs {
				f.write("rt/"+k, "")
			}
			f.stateAnnotations(map[string]string{CRIUConfigAnnotation: f.generated()})
			r, stderr := f.runner("checkpoint", "--image-path", filepath.Join(f.root, "img"), testID)
			r.checkpointRestore()
			if f.ran("resume") != tc.wantResume {
				t.Errorf("resume called %v, want %v; stderr:\n%s", f.ran("resume"), tc.wantResume, stderr)
			}
			want := strings.NewReplacer("RT", f.bin, "ROOT", filepath.Join(f.root, "runcroot")).Replace(tc.want)
			if !strings.Contains(stderr.String(), want) {
				t.Errorf("stderr lacks %q:\n%s", want, stderr)
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
	f.write("rt/checkpoint-fails", "")
	f.stateAnnotations(map[string]string{CRIUConfigAnnotation: f.generated(), OriginalCRIUConfigAnnotation: ctr})
	r, stderr := f.runner("checkpoint", "--image-path", filepath.Join(f.root, "img"), "--work-path", work, testID)
	if code := r.checkpointRestore(); code == 0 {
		t.Fatal("checkpoint succeeded")
	}
	if want := filepath.Join(work, "custom.log") + ":1"; !strings.Contains(stderr.String(), want) {
		t.Errorf("diagnosis does not read %s:\n%s", want, stderr)
	}
}

// TestCreateAndRunPointTheBundle runs the whole wrapper in a child process
// (it ends in execve of the runtime): create and run both point the bundle
// at the generated file and remember the container's own.
func TestCreateAndRunPointTheBundle(t *testing.T) {
	for _, sub := range []string{"create", "run"} {
		t.Run(sub, func(t *testing.T) {
			f := newFake(t)
			ctr := f.write("ctr.conf", "tcp-established\n")
			bundle := f.bundle(map[string]string{CRIUConfigAnnotation: ctr, "other": "x"})
			args := []string{"--root", filepath.Join(f.root, "runcroot"), sub, "--bundle", bundle, testID}
			out, err := helperRuntime(t, f.paths, args)
			if err != nil {
				t.Fatalf("%s: %v\n%s", sub, err, out)
			}
			seen := f.seenAnnotations()
			if seen[CRIUConfigAnnotation] != f.generated() || seen[OriginalCRIUConfigAnnotation] != ctr || seen["other"] != "x" {
				t.Errorf("%s: the runtime saw %v", sub, seen)
			}
		})
	}
}

func helperRuntime(t *testing.T, paths config.Paths, args []string) ([]byte, error) {
	t.Helper()
	p, _ := json.Marshal(paths)
	a, _ := json.Marshal(args)
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperRuntime$")
	cmd.Env = append(os.Environ(), "CRHOOK_TEST_HELPER_PATHS="+string(p), "CRHOOK_TEST_HELPER_ARGS="+string(a))
	return cmd.CombinedOutput()
}

// TestHelperRuntime is the child of helperRuntime, not a test by itself.
func TestHelperRuntime(t *testing.T) {
	p, a := os.Getenv("CRHOOK_TEST_HELPER_PATHS"), os.Getenv("CRHOOK_TEST_HELPER_ARGS")
	if p == "" {
		t.Skip("child process of TestCreateAndRunPointTheBundle")
	}
	var paths config.Paths
	var args []string
	if json.Unmarshal([]byte(p), &paths) != nil || json.Unmarshal([]byte(a), &args) != nil {
		os.Exit(3)
	}
	os.Exit(Runtime(args, paths, os.Stderr))
}
