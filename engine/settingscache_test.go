package engine

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/crhook/crhook/config"
)

// counts is how often the shim read and decoded the settings files, and
// how often the cache check read a file's bytes, for the rest of the test.
type counts struct{ reads, decodes int }

func countDecodes(t *testing.T) *counts {
	t.Helper()
	n := new(counts)
	origRead, origDecode := readSettings, decodeSettings
	readSettings = func(p config.Paths) ([]config.SettingsFile, error) {
		n.reads++
		return origRead(p)
	}
	decodeSettings = func(files []config.SettingsFile, readErr error) (*config.Settings, error) {
		n.decodes++
		return origDecode(files, readErr)
	}
	t.Cleanup(func() { readSettings, decodeSettings = origRead, origDecode })
	return n
}

// later moves the settings cache's clock by d for the rest of the test.
func later(t *testing.T, d time.Duration) {
	t.Helper()
	orig := cacheNow
	cacheNow = func() time.Time { return orig().Add(d) }
	t.Cleanup(func() { cacheNow = orig })
}

// altRuntime installs a second fake runtime whose path is as long as the
// first's (ROOT/rs/runc beside ROOT/rt/runc), so that pointing
// runtime.path at it changes no file's size.
func (f *fake) altRuntime() string {
	f.t.Helper()
	script, err := os.ReadFile("testdata/fakeruntime")
	if err != nil {
		f.t.Fatal(err)
	}
	alt := f.write("rs/runc", string(script))
	if err := os.Chmod(alt, 0o755); err != nil {
		f.t.Fatal(err)
	}
	if len(alt) != len(f.bin) {
		f.t.Fatalf("alternative runtime %q is not as long as %q", alt, f.bin)
	}
	return alt
}

// execedPath is the program the shim's last execve ran.
func (f *fake) execedPath() string {
	if len(f.execed) == 0 {
		return ""
	}
	return f.execed[0]
}

// TestPassThroughCacheDecodesNoTOML: the first pass-through call reads
// and decodes the settings and writes the cache; the next ones, with the
// files unchanged, run the same runtime without decoding TOML. Files
// changed within racyWindow of the cache are checked by their bytes; once
// the window has passed the cache is rewritten and a call only stats.
func TestPassThroughCacheDecodesNoTOML(t *testing.T) {
	f := newFake(t)
	n := countDecodes(t)
	call := func(i int, cmd string) {
		t.Helper()
		code, stderr := f.shim(cmd, passID)
		if code != 0 || f.execedPath() != f.bin || f.calls() != cmd+" "+passID || stderr != "" {
			t.Fatalf("call %d (%s): exit %d, execed %q, stderr %q; want the fake runtime to get it", i, cmd, code, f.execed, stderr)
		}
		if n.reads != 1 || n.decodes != 1 {
			t.Fatalf("after call %d (%s): settings read %d and decoded %d times; want once, by the first call", i, cmd, n.reads, n.decodes)
		}
	}
	for i, cmd := range []string{"state", "kill", "state"} {
		call(i, cmd)
	}
	cache := SettingsCachePath(f.paths) // the file crhook-runtime(8) names
	if SettingsCachePath(config.Paths{}) != "" {
		t.Errorf("SettingsCachePath names a file for paths that keep no cache")
	}
	fresh, err := os.ReadFile(cache)
	if err != nil {
		t.Fatalf("no settings cache: %v", err)
	}

	// The files were written just now: the cache is not rewritten until
	// the window has passed, then once, no longer racy.
	later(t, time.Hour)
	call(3, "start")
	settled, _ := os.ReadFile(cache)
	if string(settled) == string(fresh) {
		t.Fatal("cache not rewritten once its entries settled")
	}
	c, ok := parseSettingsCache(settled)
	if !ok {
		t.Fatalf("rewritten cache does not parse:\n%s", settled)
	}
	for _, e := range c.entries {
		if !e.absent && e.st.racy(c.at) {
			t.Errorf("rewritten cache: %s still racy", e.path)
		}
	}
	call(4, "state")
	if again, _ := os.ReadFile(cache); string(again) != string(settled) {
		t.Error("settled cache rewritten again")
	}

	// Without a cache directory every call reads and decodes.
	f.paths.Cache = ""
	f.shim("state", passID)
	if n.decodes != 2 {
		t.Errorf("no cache directory: %d decodings; want a second one", n.decodes)
	}
}

// TestSettingsCacheMisses: whatever changes in the settings files after
// the cache was written (same size in the same second, a drop-in added or
// removed, $CRHOOK_CONFIG, a broken file), the next call sees it, as it
// did before there was a cache: both while the files are racy (checked
// by their bytes) and once the cache has settled (checked by stat).
func TestSettingsCacheMisses(t *testing.T) {
	for _, tc := range []struct {
		name   string
		change func(f *fake, alt string)
		// want is the runtime that must get the call after the change:
		// "alt" or "fake".
		want   string
		stderr string
		// racyOnly: a change whose stat can equal the recorded one (same
		// size, same clock tick); the settled case moves only the cache's
		// clock, so such a change could not have happened within it.
		racyOnly bool
	}{
		{"runtime.path edited in place, same size", func(f *fake, alt string) {
			data, _ := os.ReadFile(filepath.Join(f.root, "etc/crhook/crhook.toml"))
			f.write("etc/crhook/crhook.toml", strings.Replace(string(data), f.bin, alt, 1))
		}, "alt", "", true},
		{"runtime.path edited, file grew", func(f *fake, alt string) {
			data, _ := os.ReadFile(filepath.Join(f.root, "etc/crhook/crhook.toml"))
			f.write("etc/crhook/crhook.toml", "# edited\n"+strings.Replace(string(data), f.bin, alt, 1))
		}, "alt", "", false},
		{"drop-in added", func(f *fake, alt string) {
			f.write("etc/crhook/crhook.d/50-alt.toml", "[runtime]\npath = \""+alt+"\"\n")
		}, "alt", "", false},
		{"shipped defaults set it", func(f *fake, alt string) {
			data, _ := os.ReadFile(filepath.Join(f.root, "etc/crhook/crhook.toml"))
			f.write("etc/crhook/crhook.toml", strings.Replace(string(data), "[runtime]\npath = \""+f.bin+"\"\n", "", 1))
			f.write("usr/share/crhook/crhook.toml", "[runtime]\npath = \""+alt+"\"\n")
		}, "alt", "", false},
		{"$CRHOOK_CONFIG", func(f *fake, alt string) {
			f.paths.SettingsEnv = f.write("env.toml", "[runtime]\npath = \""+alt+"\"\n")
		}, "alt", "", false},
		{"unrelated key broken", func(f *fake, alt string) {
			f.write("etc/crhook/crhook.d/50-typo.toml", "[criu]\ndeny = [\"no-such-option\"]\n")
		}, "fake", "invalid crhook settings", false},
		{"made writable by others", func(f *fake, alt string) {
			if err := os.Chmod(filepath.Join(f.root, "etc/crhook/crhook.toml"), 0o666); err != nil {
				f.t.Fatal(err)
			}
		}, "", "writable by group or others", false},
		{"a drop-in that set it removed", nil, "fake", "", false},
	} {
		for _, settled := range []bool{false, true} {
			name := tc.name + map[bool]string{false: ", racy", true: ", settled"}[settled]
			t.Run(name, func(t *testing.T) {
				if settled && tc.racyOnly {
					t.Skip("only a change within the clock's tick keeps the stat; the racy case covers it")
				}
				if tc.want == "" && os.Geteuid() != 0 {
					t.Skip("the owner and mode rule applies when crhook runs as root")
				}
				f := newFake(t)
				alt := f.altRuntime()
				change, want := tc.change, tc.want
				if change == nil {
					// The cache is written with the drop-in; removing it
					// must bring back crhook.toml's runtime.
					f.write("etc/crhook/crhook.d/50-alt.toml", "[runtime]\npath = \""+alt+"\"\n")
					change = func(f *fake, _ string) {
						if err := os.Remove(filepath.Join(f.root, "etc/crhook/crhook.d/50-alt.toml")); err != nil {
							t.Fatal(err)
						}
					}
				}
				n := countDecodes(t)
				f.shim("state", passID)
				if settled {
					later(t, time.Hour)
				}
				f.shim("state", passID) // a hit; settled: rewrites the cache
				f.shim("state", passID)
				if n.decodes != 1 {
					t.Fatalf("%d decodings before the change; want 1 (the cache serves the later calls)", n.decodes)
				}
				f.calls() // forget them
				change(f, alt)
				code, stderr := f.shim("state", passID)
				switch want {
				case "":
					if calls := f.calls(); code != 127 || calls != "" {
						t.Errorf("after the change: exit %d, calls %q; want 127 and no runtime run\nstderr: %s", code, calls, stderr)
					}
				default:
					path := map[string]string{"alt": alt, "fake": f.bin}[want]
					if code != 0 || f.execedPath() != path {
						t.Errorf("after the change: exit %d, execed %q; want %s\nstderr: %s", code, f.execedPath(), path, stderr)
					}
				}
				if tc.stderr != "" && !strings.Contains(stderr, tc.stderr) || tc.stderr == "" && stderr != "" {
					t.Errorf("after the change: stderr %q; want %q", stderr, tc.stderr)
				}
				if n.decodes != 2 {
					t.Errorf("after the change: %d decodings; want 2 (the change is a miss)", n.decodes)
				}
			})
		}
	}
}

// TestSettingsCacheRuntimeGone: when the runtime the cache names is gone,
// the full path runs and says so in the settings' words (file and line),
// as without a cache.
func TestSettingsCacheRuntimeGone(t *testing.T) {
	f := newFake(t)
	f.shim("state", passID)
	if err := os.Remove(f.bin); err != nil {
		t.Fatal(err)
	}
	code, stderr := f.shim("state", passID)
	want := filepath.Join(f.root, "etc/crhook/crhook.toml") + ":3"
	if code != 127 || !strings.Contains(stderr, "not found") || !strings.Contains(stderr, want) {
		t.Errorf("exit %d, stderr %q; want 127 and the runtime not found, set at %s", code, stderr, want)
	}
}

// TestSettingsCacheDistrusted: a cache file another user could have
// written, a link, or one that does not parse, is not used; the files
// are decoded.
func TestSettingsCacheDistrusted(t *testing.T) {
	spoilt := func(data []byte) string { return strings.Replace(string(data), "rt/runc", "rs/runc", 1) }
	for _, tc := range []struct {
		name   string
		rootly bool
		spoil  func(t *testing.T, path string)
	}{
		{"writable by others", true, func(t *testing.T, path string) {
			data, _ := os.ReadFile(path)
			writeOrFail(t, path, spoilt(data), 0o666)
		}},
		{"a link", false, func(t *testing.T, path string) {
			data, _ := os.ReadFile(path)
			other := path + ".other"
			writeOrFail(t, other, spoilt(data), 0o600)
			_ = os.Remove(path)
			if err := os.Symlink(other, path); err != nil {
				t.Fatal(err)
			}
		}},
		{"another format", false, func(t *testing.T, path string) {
			data, _ := os.ReadFile(path)
			writeOrFail(t, path, strings.Replace(spoilt(data), "cache 3", "cache 2", 1), 0o600)
		}},
		{"another file's entry", false, func(t *testing.T, path string) {
			data, _ := os.ReadFile(path)
			writeOrFail(t, path, strings.Replace(spoilt(data), "etc/crhook/crhook.toml", "etc/crhook/other.toml", 1), 0o600)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.rootly && os.Geteuid() != 0 {
				t.Skip("the owner and mode rule applies when crhook runs as root")
			}
			f := newFake(t)
			f.altRuntime()
			f.shim("state", passID)
			tc.spoil(t, filepath.Join(f.paths.Cache, settingsCacheName))
			n := countDecodes(t)
			code, stderr := f.shim("state", passID)
			if code != 0 || f.execedPath() != f.bin || n.decodes != 1 {
				t.Errorf("exit %d, execed %q, %d decodings, stderr %q; want the settings' runtime %s, decoded", code, f.execedPath(), n.decodes, stderr, f.bin)
			}
		})
	}
}

// TestParseSettingsCache: what marshal writes parses back; anything else
// is refused, never half read.
func TestParseSettingsCache(t *testing.T) {
	c := settingsCache{runtimePath: "/usr/bin/crun", names: [4]string{"/a b", "", "/d", ""}, at: 42, entries: []cacheEntry{
		{kind: entFile, path: "/a b", st: statKey{1, 2, 3, 4, 5, 6, -7, 8}, sum: 0xfeed},
		{kind: entFile, path: "/b\nc", absent: true},
		{kind: entDir, path: "/d", st: statKey{1, 2, 3, 4, 5, 6, 7, 8}},
		{kind: entDropIn, path: "/d/x.toml", st: statKey{1, 2, 3, 4, 5, 6, 7, 8}, sum: 1},
	}}
	data := string(c.marshal())
	got, ok := parseSettingsCache([]byte(data))
	if !ok || got.runtimePath != c.runtimePath || got.names != c.names || got.at != c.at || len(got.entries) != len(c.entries) {
		t.Fatalf("round trip: %+v, %v\n%q", got, ok, data)
	}
	for i := range c.entries {
		if got.entries[i] != c.entries[i] {
			t.Errorf("entry %d: %+v; want %+v", i, got.entries[i], c.entries[i])
		}
	}
	for name, bad := range map[string]string{
		"no header":          strings.TrimPrefix(data, cacheHeader),
		"another header":     strings.Replace(data, "cache 3", "cache 2", 1),
		"runtime.path empty": strings.Replace(data, "/usr/bin/crun", "", 1),
		"names cut short":    cacheHeader + "/usr/bin/crun\x00/a b\x00",
		"time missing":       strings.Replace(data, "\x0042\x00", "\x00", 1),
		"time not a number":  strings.Replace(data, "\x0042\x00", "\x00x\x00", 1),
		"unknown kind":       strings.Replace(data, "dropin\x00", "link\x00", 1),
		"entry cut short":    strings.TrimSuffix(data, "1\x00"),
		"short stat":         strings.Replace(data, " 8 feed\x00", " feed\x00", 1),
		"long stat":          strings.Replace(data, " 8 feed\x00", " 8 9 feed\x00", 1),
		"no hash":            strings.Replace(data, " 8 feed\x00", " 8\x00", 1),
		"hash on a dir":      strings.Replace(data, "/d\x001 2 3 4 5 6 7 8\x00", "/d\x001 2 3 4 5 6 7 8 9\x00", 1),
		"bad number":         strings.Replace(data, " -7 ", " x ", 1),
		"bad hash":           strings.Replace(data, " feed\x00", " food\x00", 1),
	} {
		if bad == data {
			t.Fatalf("%s: the corruption changed nothing", name)
		}
		if _, ok := parseSettingsCache([]byte(bad)); ok {
			t.Errorf("%s: parsed:\n%q", name, bad)
		}
	}
}

func writeOrFail(t *testing.T, path, content string, perm os.FileMode) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), perm); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, perm); err != nil {
		t.Fatal(err)
	}
}

// TestSettingsCacheNotWritten: a cache that cannot be written (its
// directory is a file) leaves the calls on the full path, silently.
func TestSettingsCacheNotWritten(t *testing.T) {
	f := newFake(t)
	f.paths.Cache = f.write("run/crhook", "not a directory\n")
	if err := writeSettingsCache(f.paths.Cache, &settingsCache{runtimePath: "runc"}); err == nil {
		t.Error("cache written below a file")
	}
	n := countDecodes(t)
	for range 2 {
		if code, stderr := f.shim("state", passID); code != 0 || stderr != "" || f.execedPath() != f.bin {
			t.Fatalf("exit %d, execed %q, stderr %q", code, f.execedPath(), stderr)
		}
	}
	if n.decodes != 2 {
		t.Errorf("%d decodings; want one per call", n.decodes)
	}
}

// TestSettingsCacheRacyChecked: an entry changed within racyWindow of the
// cache is checked beyond its stat, so that a change the stat cannot show
// (same size, same clock tick) is still a miss. Such a change cannot be
// made on purpose; the cache is edited instead to record other bytes, or
// another listing, for files whose stat is unchanged.
func TestSettingsCacheRacyChecked(t *testing.T) {
	for _, tc := range []struct {
		name   string
		tamper func(f *fake, c *settingsCache)
	}{
		{"a file's bytes are not the ones decoded", func(f *fake, c *settingsCache) {
			for i, e := range c.entries {
				if e.path == filepath.Join(f.root, "etc/crhook/crhook.toml") {
					c.entries[i].sum++
				}
			}
		}},
		{"the drop-in directory lists a file the cache has not", func(f *fake, c *settingsCache) {
			var kept []cacheEntry
			for _, e := range c.entries {
				if e.kind != entDropIn {
					kept = append(kept, e)
				}
			}
			c.entries = kept
		}},
		{"the cache has a drop-in the directory does not list", func(f *fake, c *settingsCache) {
			for _, e := range c.entries {
				if e.path == filepath.Join(f.root, "etc/crhook/crhook.toml") {
					e.kind = entDropIn
					c.entries = append(c.entries, e)
					break
				}
			}
		}},
		{"the drop-in directory lists another file", func(f *fake, c *settingsCache) {
			// 10-same.toml and 20-other.toml are one file (a hard link),
			// so their stats are alike: only the listing tells them apart.
			for i, e := range c.entries {
				if e.path == filepath.Join(f.root, "etc/crhook/crhook.d/20-other.toml") {
					c.entries[i].path = filepath.Join(f.root, "etc/crhook/crhook.d/10-same.toml")
				}
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFake(t)
			same := f.write("etc/crhook/crhook.d/10-same.toml", "# nothing\n")
			if err := os.Link(same, filepath.Join(f.root, "etc/crhook/crhook.d/20-other.toml")); err != nil {
				t.Fatal(err)
			}
			n := countDecodes(t)
			f.shim("state", passID)
			path := filepath.Join(f.paths.Cache, settingsCacheName)
			data, _ := os.ReadFile(path)
			c, ok := parseSettingsCache(data)
			if !ok {
				t.Fatalf("cache does not parse:\n%s", data)
			}
			tc.tamper(f, &c)
			writeOrFail(t, path, string(c.marshal()), 0o600)
			if code, stderr := f.shim("state", passID); code != 0 || f.execedPath() != f.bin || n.decodes != 2 {
				t.Errorf("exit %d, execed %q, %d decodings, stderr %q; want a miss, decoded", code, f.execedPath(), n.decodes, stderr)
			}
		})
	}
}

// TestSettingsCacheOtherBinary: a cache written by another crhook-runtime
// (an upgrade: new defaults or rules may decode the same files otherwise)
// is a miss.
func TestSettingsCacheOtherBinary(t *testing.T) {
	f := newFake(t)
	n := countDecodes(t)
	f.shim("state", passID)
	path := filepath.Join(f.paths.Cache, settingsCacheName)
	data, _ := os.ReadFile(path)
	c, ok := parseSettingsCache(data)
	if !ok || len(c.entries) == 0 || c.entries[0].kind != entSelf {
		t.Fatalf("cache without the running binary first:\n%q", data)
	}
	f.shim("state", passID)
	if n.decodes != 1 {
		t.Fatalf("%d decodings; want the second call served by the cache", n.decodes)
	}
	c.entries[0].st.ino++
	writeOrFail(t, path, string(c.marshal()), 0o600)
	if code, stderr := f.shim("state", passID); code != 0 || f.execedPath() != f.bin || n.decodes != 2 {
		t.Errorf("exit %d, execed %q, %d decodings, stderr %q; want a miss, decoded", code, f.execedPath(), n.decodes, stderr)
	}
}
