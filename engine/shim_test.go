package engine

import (
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/crhook/crhook/config"
)

// TestStepFor: each subcommand gets its step; checkpoint and restore of
// an ID crhook cannot use are refused; help, other odd IDs and every other
// subcommand pass through.
func TestStepFor(t *testing.T) {
	name := func(s step) string {
		if s == nil {
			return "pass"
		}
		for n, c := range map[string]step{"create": createStep, "checkpoint": checkpointStep, "restore": restoreStep, "delete": deleteStep, "refuse": oddIDStep, "warn": oddIDCreateStep} {
			if sameFunc(s, c) {
				return n
			}
		}
		return "?"
	}
	for args, want := range map[string]string{
		"create --bundle /b " + testID: "create", "run " + testID: "create",
		"--root /r checkpoint --image-path /i " + testID: "checkpoint", "restore " + testID: "restore",
		"delete --force " + testID: "delete", "state " + testID: "pass", "kill " + testID + " KILL": "pass",
		"checkpoint --help": "pass", "checkpoint -h " + testID: "pass", "delete ../etc": "pass", "--version": "pass", "": "pass",
		"checkpoint --image-path /i a,b": "refuse", "restore ../etc": "refuse", "run a,b": "warn", "create": "pass",
	} {
		if got := name(stepFor(parseArgs(strings.Fields(args)))); got != want {
			t.Errorf("%q: step %s, want %s", args, got, want)
		}
	}
}

func sameFunc(a, b step) bool {
	return reflect.ValueOf(a).Pointer() == reflect.ValueOf(b).Pointer()
}

// TestBrokenSettingsRefuseCheckpoint: with a broken crhook.toml,
// checkpoint and restore refuse before the runtime runs; their --help
// probe still passes through.
func TestBrokenSettingsRefuseCheckpoint(t *testing.T) {
	f := newFake(t, map[string]string{"etc/crhook/crhook.toml": "state_dir = \"ROOT/state\"\nbogus = 1\n[runtime]\npath = \"FAKE\"\n"})
	bundle := f.bundle(nil)
	for _, args := range [][]string{{"checkpoint", "--image-path", f.root, testID}, {"restore", "--bundle", bundle, testID}} {
		code, stderr := f.shim(args...)
		if code != 1 || f.calls() != "" || !strings.Contains(stderr, "fix the settings file above; the container is unchanged") {
			t.Errorf("%s: exit %d, stderr %q; want 1, refused, no runtime call", args[0], code, stderr)
		}
	}
	if code, _ := f.shim("checkpoint", "--help"); code != 0 || f.calls() != "checkpoint --help" {
		t.Errorf("checkpoint --help: exit %d; want it passed through", code)
	}
}

// TestInvocationAddFlags: typed options become runtime flags before the
// container ID, where runc reads them, and every reader sees them.
func TestInvocationAddFlags(t *testing.T) {
	tests := []struct {
		args, add, want string
	}{
		{"--root /r checkpoint --image-path /i " + testID, "--lazy-pages --status-fd 5", "--root /r checkpoint --image-path /i --lazy-pages --status-fd 5 " + testID},
		{"restore " + testID, "--parent-path ../pre", "restore --parent-path ../pre " + testID},
		{"checkpoint", "--pre-dump", "checkpoint --pre-dump"},
		{"--version", "--pre-dump", "--version"},
		{"state " + testID, "", "state " + testID},
	}
	for _, tc := range tests {
		orig := strings.Fields(tc.args)
		inv := parseArgs(slices.Clone(orig))
		inv.AddFlags(strings.Fields(tc.add)...)
		if got := strings.Join(inv.args, " "); got != tc.want {
			t.Errorf("%q + %q = %q, want %q", tc.args, tc.add, got, tc.want)
		}
		back := parseArgs(inv.args)
		if back.cmd != inv.cmd || !slices.Equal(back.global, inv.global) || !slices.Equal(back.rest, inv.rest) {
			t.Errorf("%q + %q: split %v/%q/%v, reparsed %v/%q/%v", tc.args, tc.add, inv.global, inv.cmd, inv.rest, back.global, back.cmd, back.rest)
		}
		inv.global = append(inv.global, "--extra") // must not overwrite the subcommand
		if inv.cmd != "" && inv.args[len(inv.global)-1] == "--extra" {
			t.Errorf("%q: global shares its tail with the subcommand", tc.args)
		}
	}
	inv := parseArgs([]string{"checkpoint", "--image-path", "/i", testID})
	inv.AddFlags("--page-server", "10.0.0.2:27", "--lazy-pages")
	if inv.flag("--page-server", "") != "10.0.0.2:27" || !inv.hasFlag("--lazy-pages") || inv.containerID() != testID {
		t.Errorf("added flags not read back: %v", inv.args)
	}
}

// TestAddedFlagsReachTheRuntime: flags added to the invocation are what
// the runtime gets.
func TestAddedFlagsReachTheRuntime(t *testing.T) {
	f := newFake(t)
	s, err := config.LoadSettings(f.paths)
	if err != nil {
		t.Fatal(err)
	}
	r := &runner{inv: parseArgs([]string{"checkpoint", "--image-path", "/i", testID}), rt: &binary{path: f.bin, host: f.host(&syncBuffer{})}, settings: s, stderr: &syncBuffer{}}
	r.inv.AddFlags("--lazy-pages")
	if code, _ := r.run(nil); code != 0 {
		t.Fatalf("exit %d", code)
	}
	if got := f.calls(); got != "checkpoint --image-path /i --lazy-pages "+testID {
		t.Errorf("runtime got %q", got)
	}
}

// TestRestoreDiagnosisShowsRootCause: on restore only the root-cause line
// is quoted (podman shows a single matching line of conmon's stderr).
func TestRestoreDiagnosisShowsRootCause(t *testing.T) {
	f := newFake(t)
	work := filepath.Join(f.root, "work")
	f.write("work/restore.log", "(00.000100) Warn  (criu/x.c:1): before the failure: No such file or directory\n"+
		"(00.000200) Error (criu/files-reg.c:1800): File usr/lib/x.so has bad size 10 (expect 20)\n"+
		"(00.000300) Error (criu/cr-restore.c:2400): Restoring FAILED: No such file or directory\n")
	f.knob("exit-restore", "1")
	code, stderr := f.shim("restore", "--bundle", f.bundle(nil), "--work-path", work, testID)
	if code != 1 {
		t.Fatalf("exit %d; stderr:\n%s", code, stderr)
	}
	if !strings.Contains(stderr, "bad size 10") || strings.Contains(stderr, "before the failure") || strings.Contains(stderr, "Restoring FAILED") {
		t.Errorf("the diagnosis quotes more than the root cause:\n%s", stderr)
	}
}

// TestCreateWarnings: create never fails for crhook's sake, but says when
// the container will not use crhook's config, or names a file checkpoint
// will refuse.
func TestCreateWarnings(t *testing.T) {
	f := newFake(t)
	code, stderr := f.shim("create", "--bundle", filepath.Join(f.root, "nobundle"), testID)
	if code != 0 || !f.ran("create") || !strings.Contains(stderr, "will not use crhook's CRIU config") {
		t.Errorf("create with no bundle: exit %d, stderr %q", code, stderr)
	}
	ctr := f.write("ctr.conf", "action-script \"/x\n")
	code, stderr = f.shim("create", "--bundle", f.bundle(map[string]string{CRIUConfigAnnotation: ctr}), testID)
	if code != 0 || !strings.Contains(stderr, "which checkpoint and restore will refuse") {
		t.Errorf("create with a bad container file: exit %d, stderr %q", code, stderr)
	}
	// No --bundle: runc's default, the working directory.
	t.Chdir(filepath.Dir(f.bundle(nil)))
	if code, stderr := f.shim("run", testID); code != 0 || f.seenAnnotations()[CRIUConfigAnnotation] != f.generated() {
		t.Errorf("run in the bundle: exit %d, stderr %q, saw %v", code, stderr, f.seenAnnotations())
	}
}

// TestDeleteReportsStateLeft: a state directory crhook cannot remove is
// reported; the runtime's status stands.
func TestDeleteReportsStateLeft(t *testing.T) {
	f := newFake(t)
	f.write("state/containers", "a file where a directory belongs")
	if code, stderr := f.shim("delete", testID); code != 0 || !strings.Contains(stderr, "remove crhook state of "+testID) {
		t.Errorf("exit %d, stderr %q", code, stderr)
	}
}

// TestCheckpointStateUnknown: when the runtime cannot say what state the
// container is in, checkpoint refuses (nothing to vet), and a failed
// checkpoint that leaves the state unknown says how to resume by hand.
func TestCheckpointStateUnknown(t *testing.T) {
	f := newFake(t)
	f.knob("state-fails", "")
	code, stderr := f.shim("--root", f.runcRoot(), "checkpoint", "--image-path", f.root, testID)
	if code != 1 || f.ran("checkpoint") || !strings.Contains(stderr, "container does not exist") {
		t.Errorf("exit %d, stderr %q", code, stderr)
	}

	f = newFake(t)
	f.knob("checkpoint-fails", "")
	f.stateAnnotations(map[string]string{CRIUConfigAnnotation: f.generated()})
	r := &runner{inv: parseArgs([]string{"--root", f.runcRoot(), "checkpoint", testID}), rt: &binary{path: f.bin, host: f.host(&syncBuffer{})}, stderr: &syncBuffer{}}
	f.knob("state-fails", "")
	r.unfreeze(testID, "running", nil)
	if want := "if `" + f.bin + " --root " + f.runcRoot() + " state " + testID + "` says paused, run: " + f.bin + " --root " + f.runcRoot() + " resume " + testID; !strings.Contains(r.stderr.(*syncBuffer).String(), want) {
		t.Errorf("stderr lacks %q: %s", want, r.stderr)
	}

	f.knob("annotations", "not json")
	_ = os.Remove(filepath.Join(f.dir, "state-fails"))
	if _, err := queryState(r.rt, nil, testID); err == nil || !strings.Contains(err.Error(), "decode the answer of "+f.bin+" state "+testID) {
		t.Errorf("a state answer that is not JSON: %v", err)
	}
}

func TestShortIDAndShellJoin(t *testing.T) {
	if ShortID("0123456789abcdef") != "0123456789ab" || ShortID("abc") != "abc" {
		t.Error("ShortID")
	}
	if got := shellJoin([]string{"/usr/sbin/runc", "--root", "/run/a b", "it's", ""}); got != `/usr/sbin/runc --root '/run/a b' 'it'\''s' ''` {
		t.Errorf("shellJoin = %s", got)
	}
}

// TestCriuOptsThroughAddFlags: a typed CriuOpts value reaches the runtime
// through the invocation, its flags before the container ID.
func TestCriuOptsThroughAddFlags(t *testing.T) {
	inv := parseArgs([]string{"--root", "/r", "checkpoint", "--image-path", "/i", testID})
	flags, err := CriuOpts{PreDump: true, ParentPath: "../pre"}.Flags(Runc, inv.cmd)
	if err != nil {
		t.Fatal(err)
	}
	inv.AddFlags(flags...)
	want, err := CriuOpts{PreDump: true, ParentPath: "../pre"}.Args(Runc, "checkpoint", []string{"--image-path", "/i", testID})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(inv.rest, want) || inv.containerID() != testID || inv.flag("--parent-path", "") != "../pre" {
		t.Errorf("invocation %q, want %q", inv.rest, want)
	}
}
