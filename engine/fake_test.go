package engine

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/crhook/crhook/config"
)

// fake is a scratch host for the shim, the one way the engine's tests
// drive it: a settings tree below root, and testdata/fakeruntime as the
// wrapped runtime (named runc, so runc.conf is its layer), which records
// every call it gets and has knobs for each way a runtime can end. The
// shim runs in this process on a test Host: its execve runs the runtime
// as a child instead and unwinds the shim (execve never returns), and the
// test holds the shim's signal relay. exec_test.go runs the real binary
// for what only a process of its own can show.
type fake struct {
	t     *testing.T
	root  string
	dir   string // the fake runtime and its state files
	bin   string
	paths config.Paths
	// notified gets the shim's signal relay channel when it listens.
	notified chan chan<- os.Signal
	stopped  bool
	// execed is the argv of the last execve, nil for none.
	execed []string
	stdout syncBuffer
}

const testID = "0123456789abcdef"

// newFake writes crhook.toml with state_dir below root and runtime.path
// the fake runtime. settings, when given, replace it: files below root
// with content, "FAKE" standing for the fake runtime's path, "ROOT" for
// root.
func newFake(t *testing.T, settings ...map[string]string) *fake {
	t.Helper()
	root := t.TempDir()
	f := &fake{t: t, root: root, dir: filepath.Join(root, "rt"), notified: make(chan chan<- os.Signal, 1)}
	f.bin = filepath.Join(f.dir, "runc")
	script, err := os.ReadFile("testdata/fakeruntime")
	if err != nil {
		t.Fatal(err)
	}
	f.write("rt/runc", string(script))
	if err := os.Chmod(f.bin, 0o755); err != nil {
		t.Fatal(err)
	}
	f.paths = config.DefaultPaths().Under(root)
	f.paths.SettingsEnv = ""
	if len(settings) == 0 {
		settings = []map[string]string{{"etc/crhook/crhook.toml": "state_dir = \"ROOT/state\"\n[runtime]\npath = \"FAKE\"\n"}}
	}
	for rel, content := range settings[0] {
		f.write(rel, strings.NewReplacer("FAKE", f.bin, "ROOT", root).Replace(content))
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

// knob sets a knob of the fake runtime (see testdata/fakeruntime).
func (f *fake) knob(name, value string) { f.write("rt/"+name, value) }

// read returns a state file of the fake runtime, "" when absent.
func (f *fake) read(name string) string {
	data, _ := os.ReadFile(filepath.Join(f.dir, name))
	return string(data)
}

// execResult is how a test host's execve ends the shim: by panicking with
// the runtime's exit status, as execve never returns.
type execResult struct{ code int }

// host is the test Host: stderr goes to stderr, stdout to f.stdout.
func (f *fake) host(stderr *syncBuffer) *Host {
	return &Host{
		Stdout: &f.stdout, Stderr: stderr,
		Environ: os.Environ,
		Exec: func(path string, argv, env []string) error {
			if len(argv) == 0 || argv[0] != path {
				f.t.Errorf("execve(%q, %q): argv[0] is not the path", path, argv)
			}
			f.execed = argv
			cmd := exec.Command(path, argv[1:]...)
			cmd.Env, cmd.Stdout, cmd.Stderr = env, &f.stdout, stderr
			code, err := exitStatus(path, cmd.Run())
			if err != nil {
				return err // the execve itself failed
			}
			panic(execResult{code})
		},
		Notify: func(c chan<- os.Signal) { f.notified <- c },
		Stop:   func(chan<- os.Signal) { f.stopped = true },
	}
}

// shim runs the shim on args; it returns the exit status and stderr.
func (f *fake) shim(args ...string) (code int, stderr string) {
	f.t.Helper()
	var buf syncBuffer
	defer func() {
		if r := recover(); r != nil {
			e, ok := r.(execResult)
			if !ok {
				panic(r)
			}
			code, stderr = e.code, buf.String()
		}
	}()
	return Shim(args, f.paths, f.host(&buf)), buf.String()
}

// shimWithin is shim with a deadline: a hung shim fails the test.
func (f *fake) shimWithin(d time.Duration, args ...string) (int, string) {
	f.t.Helper()
	type res struct {
		code   int
		stderr string
	}
	done := make(chan res, 1)
	go func() {
		code, stderr := f.shim(args...)
		done <- res{code, stderr}
	}()
	select {
	case r := <-done:
		return r.code, r.stderr
	case <-time.After(d):
		f.t.Fatalf("shim %v still running after %v", args, d)
	}
	return 0, ""
}

// calls returns the command lines the fake runtime got, and forgets them.
func (f *fake) calls() string {
	data, _ := os.ReadFile(filepath.Join(f.dir, "calls"))
	_ = os.Remove(filepath.Join(f.dir, "calls"))
	return strings.TrimSpace(string(data))
}

// ran reports whether the fake got the subcommand.
func (f *fake) ran(sub string) bool {
	for _, l := range strings.Split(f.read("calls"), "\n") {
		if strings.Contains(" "+l+" ", " "+sub+" ") {
			return true
		}
	}
	return false
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
	f.knob("annotations", string(data))
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

func (f *fake) runcRoot() string { return filepath.Join(f.root, "runcroot") }

func (f *fake) generated() string {
	return filepath.Join(f.root, "state", "containers", testID, "criu.conf")
}

func (f *fake) generatedText() string {
	f.t.Helper()
	data, err := os.ReadFile(f.generated())
	if err != nil {
		f.t.Fatal(err)
	}
	return string(data)
}

// waitFor polls for the fake's state file name until the deadline.
func (f *fake) waitFor(name string, d time.Duration) {
	f.t.Helper()
	deadline := time.Now().Add(d)
	for f.read(name) == "" {
		if time.Now().After(deadline) {
			f.t.Fatalf("the fake runtime wrote no %s within %v", name, d)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// syncBuffer is a bytes.Buffer a child's output copier and the shim can
// share.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
