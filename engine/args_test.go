package engine

import (
	"strings"
	"testing"
)

func TestParseArgs(t *testing.T) {
	tests := []struct {
		args         string
		cmd, id      string
		global       string
		bundle, work string
	}{
		{args: "state abc", cmd: "state", id: "abc"},
		{args: "--root /run/runc --log /x.log --log-format json --systemd-cgroup create --bundle /b --pid-file /p abc",
			cmd: "create", id: "abc", global: "--root /run/runc --log /x.log --log-format json --systemd-cgroup", bundle: "/b"},
		{args: "--debug --root=/run/runc checkpoint --image-path /i --work-path /w --leave-running abc",
			cmd: "checkpoint", id: "abc", global: "--debug --root=/run/runc", work: "/w"},
		{args: "--root /r restore -b /bb --detach --work-path=/ww abc", cmd: "restore", id: "abc", global: "--root /r", bundle: "/bb", work: "/ww"},
		{args: "--cgroup-manager systemd --log-level debug delete --force abc", cmd: "delete", id: "abc", global: "--cgroup-manager systemd --log-level debug"},
		{args: "--version", global: "--version"},
		{args: "", cmd: ""},
	}
	for _, tc := range tests {
		inv := parseArgs(strings.Fields(tc.args))
		if inv.cmd != tc.cmd || inv.containerID() != tc.id || strings.Join(inv.global, " ") != tc.global {
			t.Errorf("%q: cmd=%q id=%q global=%q", tc.args, inv.cmd, inv.containerID(), inv.global)
		}
		if got := inv.flag("--bundle", "-b"); got != tc.bundle {
			t.Errorf("%q: bundle=%q want %q", tc.args, got, tc.bundle)
		}
		if got := inv.flag("--work-path", ""); got != tc.work {
			t.Errorf("%q: work-path=%q want %q", tc.args, got, tc.work)
		}
	}
}

func TestWantsHelp(t *testing.T) {
	if !parseArgs([]string{"checkpoint", "--help"}).wantsHelp() {
		t.Error("checkpoint --help not seen: podman's capability probe would run a checkpoint")
	}
	if parseArgs([]string{"checkpoint", "abc"}).wantsHelp() {
		t.Error("help seen where there is none")
	}
}

func TestValidID(t *testing.T) {
	for id, want := range map[string]bool{
		"3f1c0e7a9b": true, "my_ctr.1+x-y": true,
		"": false, ".": false, "..": false, "../etc": false, "a/b": false, "-rf": false, "a b": false, "--help": false,
	} {
		if got := validID(id); got != want {
			t.Errorf("validID(%q) = %v, want %v", id, got, want)
		}
	}
}

func TestGlobalFlag(t *testing.T) {
	for args, want := range map[string]string{
		"--root /r state x": "/r", "--root=/q state x": "/q", "--debug state x": "/run/runc", "state --root /no x": "/run/runc",
	} {
		if got := parseArgs(strings.Fields(args)).globalFlag("--root", "/run/runc"); got != want {
			t.Errorf("%q: --root = %q, want %q", args, got, want)
		}
	}
}
