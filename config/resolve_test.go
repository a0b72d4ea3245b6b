package config

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/crhook/crhook/config/criuopt"
)

// tree builds a whole config tree under a temp dir and returns its Paths.
func tree(t testing.TB, files map[string]string) Paths {
	t.Helper()
	root := t.TempDir()
	p := Paths{
		CRIUDir:         filepath.Join(root, "etc/criu"),
		UserCRIU:        filepath.Join(root, "home/.criu/default.conf"),
		SettingsDefault: filepath.Join(root, "usr/share/crhook/crhook.toml"),
		SettingsSystem:  filepath.Join(root, "etc/crhook/crhook.toml"),
		SettingsDropIn:  filepath.Join(root, "etc/crhook/crhook.d"),
	}
	for rel, content := range files {
		path := filepath.Join(root, rel)
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return p
}

// summary renders resolved options as "line@origin-basename:line", short
// enough to compare in a table.
func summary(r *Resolution) []string {
	var out []string
	for _, s := range r.Options {
		o := s.Origin.Annotation
		if o == "" {
			o = filepath.Base(s.Origin.File) + ":" + strconv.Itoa(s.Origin.Line)
		}
		out = append(out, s.Text()+"@"+o)
	}
	return out
}

func TestResolve(t *testing.T) {
	tests := []struct {
		name        string
		files       map[string]string
		runtime     string
		ann         map[string]string
		want        []string
		wantDropped []string
		wantErr     error
		wantMsg     string // the error contains it
		denyMsg     string // the error must not contain it
	}{
		{
			name:  "layers merge, each option keeps its origin",
			files: map[string]string{"etc/criu/default.conf": "tcp-established\n", "home/.criu/default.conf": "shell-job\n", "etc/criu/runc.conf": "ghost-limit 1M\n"},
			want:  []string{"tcp-established@default.conf:1", "shell-job@default.conf:1", "ghost-limit 1M@runc.conf:1"},
		},
		{
			name:  "no- form in a later layer switches an option off",
			files: map[string]string{"etc/criu/default.conf": "tcp-established\nfile-locks\n", "etc/criu/runc.conf": "no-tcp-established\n"},
			want:  []string{"file-locks@default.conf:2"},
		},
		{
			name:  "later layer wins for single-valued options",
			files: map[string]string{"etc/criu/default.conf": "ghost-limit 1M\n", "home/.criu/default.conf": "ghost-limit 2M\n"},
			want:  []string{"ghost-limit 2M@default.conf:1"},
		},
		{
			name:  "repeatable options accumulate across layers",
			files: map[string]string{"etc/criu/default.conf": "enable-fs a\n", "etc/criu/runc.conf": "enable-fs b\n"},
			want:  []string{"enable-fs a@default.conf:1", "enable-fs b@runc.conf:1"},
		},
		{
			name:        "options the runtime owns are dropped",
			files:       map[string]string{"etc/criu/default.conf": "log-file /tmp/x.log\ntcp-established\n"},
			want:        []string{"tcp-established@default.conf:2"},
			wantDropped: []string{"log-file /tmp/x.log"},
		},
		{
			name:        "deny list drops",
			files:       map[string]string{"etc/criu/default.conf": "auto-dedup\n", "etc/crhook/crhook.toml": "[criu]\ndeny = [\"auto-dedup\"]\n"},
			wantDropped: []string{"auto-dedup"},
		},
		{
			name:  "annotation beats every file",
			files: map[string]string{"etc/criu/default.conf": "ghost-limit 1M\n", "etc/criu/runc.conf": "no-tcp-established\n"},
			ann:   map[string]string{"io.crhook.criu.tcp-established": "true", "io.crhook.criu.ghost-limit": "5M", "other": "x"},
			want:  []string{"ghost-limit 5M@io.crhook.criu.ghost-limit", "tcp-established@io.crhook.criu.tcp-established"},
		},
		{
			name:  "annotation false switches a file's option off",
			files: map[string]string{"etc/criu/default.conf": "tcp-established\n"},
			ann:   map[string]string{"io.crhook.criu.tcp-established": "false"},
		},
		{
			name:    "unsafe annotation is refused",
			ann:     map[string]string{"io.crhook.criu.action-script": "/tmp/x"},
			wantErr: ErrDenied,
		},
		{
			name:    "annotation off the allow-list is refused",
			ann:     map[string]string{"io.crhook.criu.auto-dedup": "true"},
			files:   map[string]string{"etc/crhook/crhook.toml": "[annotations]\nallow = [\"tcp-established\"]\n"},
			wantErr: ErrDenied,
		},
		{
			name:    "unknown annotation option",
			ann:     map[string]string{"io.crhook.criu.tcp-establish": "true"},
			wantErr: criuopt.ErrUnknownOption,
		},
		{
			name:    "bad boolean annotation",
			ann:     map[string]string{"io.crhook.criu.tcp-established": "yes"},
			wantErr: criuopt.ErrInvalidValue,
		},
		{
			name:    "a key with escape bytes is quoted, never echoed raw",
			ann:     map[string]string{"io.crhook.criu.tcp\x1b[2J": "true"},
			wantErr: criuopt.ErrUnknownOption,
			wantMsg: `"io.crhook.criu.tcp\x1b[2J"`,
			denyMsg: "\x1b[2J",
		},
		{
			name:    "a no- annotation is told to use =false, not its own name",
			ann:     map[string]string{"io.crhook.criu.no-tcp-established": "true"},
			wantErr: criuopt.ErrUnknownOption,
			wantMsg: "io.crhook.criu.tcp-established=false",
			denyMsg: "did you mean no-tcp-established",
		},
		{
			name:    "a denied annotation's advice works for a checkpointed container too",
			ann:     map[string]string{"io.crhook.criu.auto-dedup": "true"},
			files:   map[string]string{"etc/crhook/crhook.toml": "[annotations]\nallow = [\"tcp-established\"]\n"},
			wantErr: ErrDenied,
			wantMsg: "add \"auto-dedup\" to annotations.allow",
		},
		{
			name:    "crun prefers crun.conf",
			runtime: "/usr/bin/crun",
			files:   map[string]string{"etc/criu/crun.conf": "shell-job\n", "etc/criu/runc.conf": "file-locks\n"},
			want:    []string{"shell-job@crun.conf:1"},
		},
		{
			name:    "crun falls back to runc.conf",
			runtime: "crun",
			files:   map[string]string{"etc/criu/runc.conf": "file-locks\n"},
			want:    []string{"file-locks@runc.conf:1"},
		},
		{
			name:    "a layer that does not parse fails with its name",
			files:   map[string]string{"etc/criu/runc.conf": "tcp-established \"open\n"},
			wantErr: criuopt.ErrSyntax,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := tree(t, tc.files)
			s, err := LoadSettings(p)
			if err != nil {
				t.Fatal(err)
			}
			rt := tc.runtime
			if rt == "" {
				rt = "runc"
			}
			r, err := Resolve(p, Input{Runtime: rt, Annotations: tc.ann, Settings: s})
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("err = %v, want %v", err, tc.wantErr)
				}
				if !strings.Contains(err.Error(), tc.wantMsg) {
					t.Errorf("err = %q, want it to contain %q", err, tc.wantMsg)
				}
				if tc.denyMsg != "" && strings.Contains(err.Error(), tc.denyMsg) {
					t.Errorf("err = %q, must not contain %q", err, tc.denyMsg)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			assertResolution(t, r, tc.want, tc.wantDropped)
		})
	}
}

func TestResolveErrorNamesFileAndLine(t *testing.T) {
	p := tree(t, map[string]string{"etc/criu/default.conf": "# fine\nshell-job\ntcp-established \"open\n"})
	_, err := Resolve(p, Input{Runtime: "runc", Settings: Fallback()})
	if err == nil || !strings.Contains(err.Error(), filepath.Join(p.CRIUDir, "default.conf")+":3:") {
		t.Fatalf("error %q does not name default.conf:3:COL", err)
	}
}

func TestResolveRefusesWritableLayerAsRoot(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("ownership checks apply only when crhook runs as root")
	}
	p := tree(t, map[string]string{"etc/criu/default.conf": "tcp-established\n"})
	if err := os.Chmod(p.SystemCRIU(), 0o666); err != nil {
		t.Fatal(err)
	}
	_, err := Resolve(p, Input{Runtime: "runc", Settings: Fallback()})
	if !errors.Is(err, ErrUnsafeFile) || !strings.Contains(err.Error(), "chmod go-w") {
		t.Fatalf("err = %v, want ErrUnsafeFile with a chmod hint", err)
	}
}

// TestContainerFileLayer: the file a container names with org.criu.config
// is layer 4, above runc.conf and below the annotations, and like runc.conf
// (runc's RPC config file) it may set log-file, which default.conf may not.
func TestContainerFileLayer(t *testing.T) {
	tests := []struct {
		name        string
		files       map[string]string
		ann         map[string]string
		want        []string
		wantDropped []string
		wantLayer   bool
	}{
		{
			name:      "above runc.conf, below annotations",
			files:     map[string]string{"etc/criu/runc.conf": "ghost-limit 1M\nfile-locks\n", "ctr.conf": "ghost-limit 2M\nno-file-locks\ntcp-established\n"},
			ann:       map[string]string{"io.crhook.criu.tcp-established": "false"},
			want:      []string{"ghost-limit 2M@ctr.conf:1"},
			wantLayer: true,
		},
		{
			name:        "log-file kept from runc.conf and the container file, dropped from default.conf",
			files:       map[string]string{"etc/criu/default.conf": "log-file a.log\n", "etc/criu/runc.conf": "log-file b.log\n", "ctr.conf": "log-file c.log\n"},
			want:        []string{"log-file c.log@ctr.conf:1"},
			wantDropped: []string{"log-file a.log"},
			wantLayer:   true,
		},
		{
			name:        "options that break the runtime's contract are dropped from it",
			files:       map[string]string{"ctr.conf": "images-dir /x\nwork-dir /y\npidfile /z\nroot /r\ntree 1\nshell-job\n"},
			want:        []string{"shell-job@ctr.conf:6"},
			wantDropped: []string{"images-dir /x", "work-dir /y", "pidfile /z", "root /r", "tree 1"},
			wantLayer:   true,
		},
		{
			name:      "a named file that does not exist is no layer, as in CRIU",
			files:     map[string]string{"etc/criu/runc.conf": "file-locks\n"},
			want:      []string{"file-locks@runc.conf:1"},
			wantLayer: false,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := tree(t, tc.files)
			ctr := filepath.Join(filepath.Dir(filepath.Dir(p.CRIUDir)), "ctr.conf")
			r, err := Resolve(p, Input{Runtime: "runc", ContainerFile: ctr, Annotations: tc.ann, Settings: Fallback()})
			if err != nil {
				t.Fatal(err)
			}
			assertResolution(t, r, tc.want, tc.wantDropped)
			last := r.Layers[len(r.Layers)-1]
			if last.Path != ctr || last.NamedBy != ContainerFileAnnotation || last.Present != tc.wantLayer {
				t.Errorf("last layer = %+v, want %s named by %s, present %v", last, ctr, ContainerFileAnnotation, tc.wantLayer)
			}
		})
	}
}

func TestContainerFileTrust(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("ownership checks apply only when crhook runs as root")
	}
	p := tree(t, map[string]string{"ctr.conf": "action-script /tmp/x\n"})
	ctr := filepath.Join(filepath.Dir(filepath.Dir(p.CRIUDir)), "ctr.conf")
	for _, mode := range []os.FileMode{0o666, 0o620} {
		if err := os.Chmod(ctr, mode); err != nil {
			t.Fatal(err)
		}
		if _, err := Resolve(p, Input{Runtime: "runc", ContainerFile: ctr, Settings: Fallback()}); !errors.Is(err, ErrUnsafeFile) {
			t.Errorf("mode %04o: Resolve err = %v, want ErrUnsafeFile", mode, err)
		}
		if _, err := ResolveRuntimeFile(ctr, Fallback()); !errors.Is(err, ErrUnsafeFile) {
			t.Errorf("mode %04o: ResolveRuntimeFile err = %v, want ErrUnsafeFile", mode, err)
		}
	}
	if err := os.Chmod(ctr, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(ctr, 65534, 65534); err != nil {
		t.Fatal(err)
	}
	if _, err := Resolve(p, Input{Runtime: "runc", ContainerFile: ctr, Settings: Fallback()}); !errors.Is(err, ErrUnsafeFile) {
		t.Errorf("owned by nobody: err = %v, want ErrUnsafeFile", err)
	}
}

func TestResolveRuntimeFile(t *testing.T) {
	p := tree(t, map[string]string{"f.conf": "log-file x.log\nimages-dir /x\ntcp-established\n", "etc/crhook/crhook.toml": "[criu]\ndeny = [\"tcp-established\"]\n"})
	s, err := LoadSettings(p)
	if err != nil {
		t.Fatal(err)
	}
	r, err := ResolveRuntimeFile(filepath.Join(filepath.Dir(filepath.Dir(p.CRIUDir)), "f.conf"), s)
	if err != nil {
		t.Fatal(err)
	}
	var dropped []string
	for _, d := range r.Dropped {
		dropped = append(dropped, d.Text())
	}
	if got, want := strings.Join(summary(r), "|"), "log-file x.log@f.conf:1"; got != want {
		t.Errorf("options %q, want %q", got, want)
	}
	if got, want := strings.Join(dropped, "|"), "images-dir /x|tcp-established"; got != want {
		t.Errorf("dropped %q, want %q", got, want)
	}
}

// assertResolution compares the options a resolution kept, as
// "TEXT@ORIGIN", and the ones it dropped, as their text.
func assertResolution(t *testing.T, r *Resolution, want, wantDropped []string) {
	t.Helper()
	if got := strings.Join(summary(r), "|"); got != strings.Join(want, "|") {
		t.Errorf("options:\n got %s\nwant %s", got, strings.Join(want, "|"))
	}
	var dropped []string
	for _, d := range r.Dropped {
		dropped = append(dropped, d.Text())
	}
	if got := strings.Join(dropped, "|"); got != strings.Join(wantDropped, "|") {
		t.Errorf("dropped: got %q want %q", got, strings.Join(wantDropped, "|"))
	}
}
