package engine

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/crhook/crhook/config"
	"github.com/crhook/crhook/config/safefile"
)

// countDecodes counts the shim's TOML decodings of the settings files for
// the rest of the test.
func countDecodes(t *testing.T) *int {
	t.Helper()
	n := new(int)
	orig := decodeSettings
	decodeSettings = func(files []config.SettingsFile, readErr error) (*config.Settings, error) {
		*n++
		return orig(files, readErr)
	}
	t.Cleanup(func() { decodeSettings = orig })
	return n
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

// TestPassThroughCacheDecodesNoTOML: the first pass-through call decodes
// the settings and writes the cache; the next ones, with the files
// unchanged, run the same runtime without decoding TOML at all.
func TestPassThroughCacheDecodesNoTOML(t *testing.T) {
	f := newFake(t)
	decodes := countDecodes(t)
	for i, cmd := range []string{"state", "kill", "state", "start"} {
		code, stderr := f.shim(cmd, passID)
		if code != 0 || f.execedPath() != f.bin || f.calls() != cmd+" "+passID || stderr != "" {
			t.Fatalf("call %d (%s): exit %d, execed %q, stderr %q; want the fake runtime to get it", i, cmd, code, f.execed, stderr)
		}
		if *decodes != 1 {
			t.Fatalf("after call %d (%s): settings decoded %d times; want once, by the first call", i, cmd, *decodes)
		}
	}
	if _, err := os.Stat(filepath.Join(f.paths.Cache, settingsCacheName)); err != nil {
		t.Errorf("no settings cache: %v", err)
	}

	// Without a cache directory every call decodes, as before the cache.
	f.paths.Cache = ""
	f.shim("state", passID)
	if *decodes != 2 {
		t.Errorf("no cache directory: %d decodings; want a second one", *decodes)
	}
}

// TestSettingsCacheMisses: whatever changes in the settings files after
// the cache was written (same size, same second; a drop-in added or
// removed; $CRHOOK_CONFIG; a broken file), the next call sees it, as it
// did before there was a cache.
func TestSettingsCacheMisses(t *testing.T) {
	for _, tc := range []struct {
		name   string
		change func(f *fake, alt string)
		// want is the runtime that must get the call after the change:
		// "alt" or "fake".
		want   string
		stderr string
	}{
		{"runtime.path edited in place, same size", func(f *fake, alt string) {
			data, _ := os.ReadFile(filepath.Join(f.root, "etc/crhook/crhook.toml"))
			f.write("etc/crhook/crhook.toml", strings.Replace(string(data), f.bin, alt, 1))
		}, "alt", ""},
		{"drop-in added", func(f *fake, alt string) {
			f.write("etc/crhook/crhook.d/50-alt.toml", "[runtime]\npath = \""+alt+"\"\n")
		}, "alt", ""},
		{"shipped defaults set it", func(f *fake, alt string) {
			data, _ := os.ReadFile(filepath.Join(f.root, "etc/crhook/crhook.toml"))
			f.write("etc/crhook/crhook.toml", strings.Replace(string(data), "[runtime]\npath = \""+f.bin+"\"\n", "", 1))
			f.write("usr/share/crhook/crhook.toml", "[runtime]\npath = \""+alt+"\"\n")
		}, "alt", ""},
		{"$CRHOOK_CONFIG", func(f *fake, alt string) {
			f.paths.SettingsEnv = f.write("env.toml", "[runtime]\npath = \""+alt+"\"\n")
		}, "alt", ""},
		{"unrelated key broken", func(f *fake, alt string) {
			f.write("etc/crhook/crhook.d/50-typo.toml", "[criu]\ndeny = [\"no-such-option\"]\n")
		}, "fake", "invalid crhook settings"},
		{"a drop-in that set it removed", nil, "fake", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFake(t)
			alt := f.altRuntime()
			change := tc.change
			if change == nil {
				// The cache is written with the drop-in; removing it must
				// bring back crhook.toml's runtime.
				f.write("etc/crhook/crhook.d/50-alt.toml", "[runtime]\npath = \""+alt+"\"\n")
				tc.want = "fake"
				change = func(f *fake, _ string) {
					if err := os.Remove(filepath.Join(f.root, "etc/crhook/crhook.d/50-alt.toml")); err != nil {
						t.Fatal(err)
					}
				}
			}
			decodes := countDecodes(t)
			f.shim("state", passID)
			f.shim("state", passID)
			if *decodes != 1 {
				t.Fatalf("%d decodings before the change; want 1 (the cache serves the second call)", *decodes)
			}
			change(f, alt)
			code, stderr := f.shim("state", passID)
			want := map[string]string{"alt": alt, "fake": f.bin}[tc.want]
			if code != 0 || f.execedPath() != want {
				t.Errorf("after the change: exit %d, execed %q; want %s\nstderr: %s", code, f.execedPath(), want, stderr)
			}
			if tc.stderr != "" && !strings.Contains(stderr, tc.stderr) || tc.stderr == "" && stderr != "" {
				t.Errorf("after the change: stderr %q; want %q", stderr, tc.stderr)
			}
			if *decodes != 2 {
				t.Errorf("after the change: %d decodings; want 2 (the change is a miss)", *decodes)
			}
		})
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
// written, or that does not parse, is not used; the files are decoded.
func TestSettingsCacheDistrusted(t *testing.T) {
	for _, tc := range []struct {
		name   string
		rootly bool
		spoil  func(t *testing.T, path string, alt string)
	}{
		{"writable by others", true, func(t *testing.T, path, alt string) {
			data, _ := os.ReadFile(path)
			writeOrFail(t, path, strings.Replace(string(data), "rt/runc", "rs/runc", 1), 0o666)
		}},
		{"a link", false, func(t *testing.T, path, alt string) {
			data, _ := os.ReadFile(path)
			other := path + ".other"
			writeOrFail(t, other, strings.Replace(string(data), "rt/runc", "rs/runc", 1), 0o600)
			_ = os.Remove(path)
			if err := os.Symlink(other, path); err != nil {
				t.Fatal(err)
			}
		}},
		{"another format", false, func(t *testing.T, path, alt string) {
			data, _ := os.ReadFile(path)
			writeOrFail(t, path, strings.Replace(strings.Replace(string(data), "rt/runc", "rs/runc", 1), "cache 1", "cache 0", 1), 0o600)
		}},
		{"no runtime.path line", false, func(t *testing.T, path, alt string) {
			writeOrFail(t, path, cacheHeader, 0o600)
		}},
		{"runtime.path not quoted", false, func(t *testing.T, path, alt string) {
			data, _ := os.ReadFile(path)
			writeOrFail(t, path, strings.Replace(string(data), `"`+alt[:len(alt)-len("rs/runc")]+"rt/runc"+`"`, alt, 1), 0o600)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.rootly && os.Geteuid() != 0 {
				t.Skip("the owner and mode rule applies when crhook runs as root")
			}
			f := newFake(t)
			alt := f.altRuntime()
			f.shim("state", passID)
			tc.spoil(t, filepath.Join(f.paths.Cache, settingsCacheName), alt)
			decodes := countDecodes(t)
			code, stderr := f.shim("state", passID)
			if code != 0 || f.execedPath() != f.bin || *decodes != 1 {
				t.Errorf("exit %d, execed %q, %d decodings, stderr %q; want the settings' runtime %s, decoded", code, f.execedPath(), *decodes, stderr, f.bin)
			}
		})
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
// directory is a file; the settings are too large to be read back) leaves
// the calls on the full path, silently.
func TestSettingsCacheNotWritten(t *testing.T) {
	t.Run("directory is a file", func(t *testing.T) {
		f := newFake(t)
		f.paths.Cache = f.write("run/crhook", "not a directory\n")
		if err := writeSettingsCache(f.paths.Cache, nil, "runc"); err == nil {
			t.Error("cache written below a file")
		}
		decodes := countDecodes(t)
		for range 2 {
			if code, stderr := f.shim("state", passID); code != 0 || stderr != "" || f.execedPath() != f.bin {
				t.Fatalf("exit %d, execed %q, stderr %q", code, f.execedPath(), stderr)
			}
		}
		if *decodes != 2 {
			t.Errorf("%d decodings; want one per call", *decodes)
		}
	})
	t.Run("too large", func(t *testing.T) {
		f := newFake(t)
		big := "# " + strings.Repeat("x", safefile.MaxSize/2) + "\n"
		f.write("etc/crhook/crhook.d/10-big.toml", big)
		f.write("etc/crhook/crhook.d/20-big.toml", big)
		f.shim("state", passID)
		if _, err := os.Stat(filepath.Join(f.paths.Cache, settingsCacheName)); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("cache of more than the bound written: %v", err)
		}
	})
}
