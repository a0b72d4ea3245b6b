package engine

import (
	"bytes"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/crhook/crhook/engine/diagnose"
)

// DetectEngine tells which engine called crhook-runtime, so that a failure
// is explained with commands its users can run. args are crhook-runtime's
// arguments. It reads the parent process from /proc, and is meant for the
// failure path only.
//
// The signals, most specific first (each was checked against the engine's
// source, and podman's on this machine):
//
//   - containerd's runc shim runs every command through go-runc with
//     --log BUNDLE/log.json, the bundle being
//     /run/containerd/io.containerd.runtime.v2.task/NS/ID, and --root
//     /run/containerd/runc/NS; the shim's process is named
//     containerd-shim-runc-v2 ("containerd-shim" in /proc/PID/comm).
//   - podman runs checkpoint (and state, kill, delete) itself: the parent
//     is podman. CRI-O does the same: the parent is crio.
//   - create and restore run under conmon, for podman and CRI-O alike.
//     podman gives conmon (and so the runtime) _CONTAINERS_USERNS_CONFIGURED
//     in the environment, even when empty, and passes conmon --exit-command
//     /usr/bin/podman; CRI-O does neither. conmon-rs is CRI-O's only.
//   - anything else (a shell, a script, systemd) runs the runtime as one
//     runs runc.
func DetectEngine(args []string) diagnose.Engine {
	c := caller{args: args, env: os.Environ()}
	if ppid := os.Getppid(); ppid > 1 {
		proc := filepath.Join("/proc", strconv.Itoa(ppid))
		if comm, err := os.ReadFile(filepath.Join(proc, "comm")); err == nil {
			c.parent = strings.TrimSpace(string(comm))
		}
		if cmdline, err := os.ReadFile(filepath.Join(proc, "cmdline")); err == nil {
			c.parentArgs = strings.Split(string(bytes.TrimRight(cmdline, "\x00")), "\x00")
		}
	}
	return c.engine()
}

// caller is what crhook-runtime can see of whoever started it.
type caller struct {
	args       []string // crhook-runtime's arguments
	env        []string // its environment
	parent     string   // the parent's /proc/PID/comm (at most 15 bytes)
	parentArgs []string // the parent's command line
}

func (c caller) engine() diagnose.Engine {
	log, root := argValue(c.args, "--log"), argValue(c.args, "--root")
	switch {
	case strings.Contains(log, "/io.containerd.runtime.v2.task/") || strings.HasPrefix(root, "/run/containerd/") ||
		strings.HasPrefix(c.parent, "containerd-shim"):
		return diagnose.EngineContainerd
	case strings.HasPrefix(c.parent, "podman"):
		return diagnose.EnginePodman
	case c.parent == "crio" || c.parent == "conmonrs":
		return diagnose.EngineCRIO
	case c.parent == "conmon":
		if c.podmanConmon() {
			return diagnose.EnginePodman
		}
		return diagnose.EngineCRIO
	default:
		return diagnose.EngineRunc
	}
}

// podmanConmon reports the marks podman leaves on the conmon it starts.
func (c caller) podmanConmon() bool {
	for _, e := range c.env {
		if strings.HasPrefix(e, "_CONTAINERS_USERNS_CONFIGURED=") {
			return true
		}
	}
	exit := argValue(c.parentArgs, "--exit-command")
	return strings.HasPrefix(filepath.Base(exit), "podman")
}

// argValue returns the value of a flag given as "NAME V" or "NAME=V"
// anywhere in args, or "". The flags read here (--log, --root,
// --exit-command) are global ones that no subcommand reuses.
func argValue(args []string, name string) string {
	for i, a := range args {
		switch {
		case a == name && i+1 < len(args):
			return args[i+1]
		case strings.HasPrefix(a, name+"="):
			return a[len(name)+1:]
		}
	}
	return ""
}
