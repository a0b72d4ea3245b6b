package engine

import (
	"testing"

	"github.com/crhook/crhook/config"
)

var stateArgs = []string{"--root", "/run/runc", "--log", "/x/log.json", "--log-format", "json", "state",
	"0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"}

// BenchmarkParseArgs: finding the subcommand must not allocate; it runs
// on every runtime call podman makes.
func BenchmarkParseArgs(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		inv := parseArgs(stateArgs)
		if inv.cmd != "state" || !validID(inv.containerID()) || inv.wantsHelp() {
			b.Fatal("bad parse")
		}
	}
}

// BenchmarkPassThroughPrep is everything the pass-through path does before
// execve: parse argv, load crhook.toml for runtime.path, find the runtime.
func BenchmarkPassThroughPrep(b *testing.B) {
	paths := config.DefaultPaths()
	b.ReportAllocs()
	for b.Loop() {
		_ = parseArgs(stateArgs)
		s, err := config.LoadSettings(paths)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := lookRuntime(s.Runtime.Path, func() config.Loc { return s.Where("runtime.path") }); err != nil {
			b.Skip("no runc here: ", err)
		}
	}
}

// BenchmarkPassThroughCached is the same with the settings cache valid
// (settingscache.go): stat the settings files, read the cache, find the
// runtime. On this host only (config.DefaultPaths, /run/crhook).
func BenchmarkPassThroughCached(b *testing.B) {
	paths := config.DefaultPaths()
	if _, _, ok := cachedRuntimePath(paths); !ok {
		b.Skip("no valid settings cache in ", paths.Cache, ": run crhook-runtime once (as root)")
	}
	b.ReportAllocs()
	for b.Loop() {
		_ = parseArgs(stateArgs)
		name, _, ok := cachedRuntimePath(paths)
		if !ok {
			b.Fatal("cache miss")
		}
		if _, err := lookRuntime(name, func() config.Loc { return config.Loc{} }); err != nil {
			b.Skip("no runc here: ", err)
		}
	}
}
