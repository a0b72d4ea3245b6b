package diagnose

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"
)

// TestFixesPerEngine pins how each engine's users are told the fix
// (testdata/golden/fixes-per-engine.txt), and that nobody is told to run
// another engine's command.
func TestFixesPerEngine(t *testing.T) {
	const id = "3c712a82ce7648d2b0f1a1d4e2c5b6a7980f1e2d3c4b5a69788796a5b4c3d2e1"
	failures := []struct {
		log string
		op  string
	}{
		{"podman-tcp-established.dump.log", OpDump},
		{"tcp-established.restore.log", OpRestore},
		{"file-locks.dump.log", OpDump},
		{"ext-unix-sk.dump.log", OpDump},
		{"shell-job-tty.dump.log", OpDump},
		{"ghost-limit.dump.log", OpDump},
		{"dirty-tracking.predump.log", OpPreDump},
		{"pid-in-use.restore.log", OpRestore},
	}
	// Words that belong to one engine only.
	foreign := map[Engine][]string{
		EnginePodman:     {"runc ", "criu dump", "criu restore", "metadata.annotations", "config.json"},
		EngineCRIO:       {"podman", "runc ", "criu dump", "criu restore", "config.json", "containerd"},
		EngineContainerd: {"podman", "runc ", "criu dump", "criu restore", "config.json", "CRI-O"},
		EngineRunc:       {"podman", "criu dump", "criu restore", "metadata.annotations"},
		EngineCRIU:       {"podman", "runc ", "metadata.annotations", "config.json"},
	}
	var b strings.Builder
	for _, engine := range Engines {
		for _, f := range failures {
			ctx := Context{Operation: f.op, ContainerName: id[:12], ContainerID: id, Engine: engine}
			if engine == EngineCRIU {
				ctx.ContainerName, ctx.ContainerID = "", ""
			}
			d, err := Explain(filepath.Join("testdata/logs", f.log), ctx)
			if err != nil {
				t.Fatal(err)
			}
			if d.Engine != engine {
				t.Errorf("%s %s: engine %q", engine, f.log, d.Engine)
			}
			fmt.Fprintf(&b, "== %s: %s (%s, %s)\n", engine, f.log, d.Rule, f.op)
			for _, fix := range d.Fixes {
				fmt.Fprintf(&b, "  %-14s %s\n", fix.Scope, fix.Command)
				for _, w := range foreign[engine] {
					if strings.Contains(fix.Command, w) {
						t.Errorf("%s user told %q (%s): %q is another engine's", engine, fix.Command, f.log, w)
					}
				}
				if engine.kubernetes() && fix.Scope == ScopeThisTime {
					t.Errorf("%s: the kubelet's checkpoint takes no CRIU options, yet %q", engine, fix.Command)
				}
			}
			if engine == EngineRunc && strings.Contains(d.Text(), "runc checkpoint --") && !strings.Contains(d.Text(), id) {
				t.Errorf("runc fix without the full container ID:\n%s", d.Text())
			}
		}
	}
	golden(t, "fixes-per-engine.txt", b.String())
}

func TestParseEngine(t *testing.T) {
	for _, e := range Engines {
		if got, err := ParseEngine(string(e)); err != nil || got != e {
			t.Errorf("ParseEngine(%q) = %q, %v", e, got, err)
		}
	}
	if _, err := ParseEngine("docker"); err == nil || !strings.Contains(err.Error(), "podman, cri-o, containerd, runc, criu") {
		t.Errorf("ParseEngine(docker): %v", err)
	}
}

// TestDefaultEngine: without an engine from the caller, a container name
// or a runtime's RPC log means podman (crhook's first engine), else criu.
func TestDefaultEngine(t *testing.T) {
	for _, c := range []struct {
		log  string
		ctx  Context
		want Engine
	}{
		{"tcp-established.dump.log", Context{}, EngineCRIU},
		{"tcp-established.dump.log", Context{ContainerName: "web"}, EnginePodman},
		{"podman-tcp-established.dump.log", Context{}, EnginePodman},
		{"podman-tcp-established.dump.log", Context{Engine: EngineRunc}, EngineRunc},
	} {
		d, _ := Explain(filepath.Join("testdata/logs", c.log), c.ctx)
		if d.Engine != c.want {
			t.Errorf("%s %+v: engine %q, want %q", c.log, c.ctx, d.Engine, c.want)
		}
	}
}
