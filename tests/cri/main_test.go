//go:build e2e

// Package cri drives containerd 2.1 through the CRI gRPC API, as the
// kubelet does, with crhook-runtime as the runc shim's BinaryName. It is
// its own Go module so that the CRI client, gRPC and the in-process
// registry stay out of crhook's binary and go.mod.
//
// It needs root, the host prepared by tests/setup-host.sh (which unpacks
// sid's containerd into /var/cache/crhook/containerd) and crhook
// installed (`make install`). Each test starts its own containerd with
// its own root, state, socket and CNI config, and removes all of it.
package cri

import (
	"fmt"
	"os"
	"os/exec"
	"testing"

	"github.com/crhook/crhook/tests/hosttest"
)

const (
	containerdDir = "/var/cache/crhook/containerd/usr/bin"
	crhookRuntime = "/usr/libexec/crhook/crhook-runtime"
	crhookBin     = "/usr/bin/crhook"
	cniBinDir     = "/usr/lib/cni"
)

var skipReason string

func need(t *testing.T) {
	t.Helper()
	if skipReason != "" {
		t.Skip(skipReason)
	}
}

func missing() string {
	if os.Getuid() != 0 {
		return "needs root (containerd, runc and CRIU checkpoint as root)"
	}
	for _, f := range []string{containerdDir + "/containerd", containerdDir + "/containerd-shim-runc-v2", cniBinDir + "/bridge", "/bin/busybox"} {
		if _, err := os.Stat(f); err != nil {
			return f + " missing: run tests/setup-host.sh"
		}
	}
	for _, tool := range []string{"runc", "criu"} {
		if _, err := exec.LookPath(tool); err != nil {
			return tool + " not installed: run tests/setup-host.sh"
		}
	}
	if _, err := os.Stat(crhookRuntime); err != nil {
		return "crhook not installed: run make install"
	}
	return ""
}

func TestMain(m *testing.M) {
	skipReason = missing()
	if skipReason != "" {
		fmt.Fprintln(os.Stderr, "cri: every test skips:", skipReason)
	}
	restore := hosttest.KeepFiles(hosttest.CRIULayers...)
	code := m.Run()
	restore()
	os.Exit(code)
}
