package engine

import (
	"bytes"
	"strconv"

	"github.com/crhook/crhook/config"
	"github.com/crhook/crhook/config/safefile"
)

// The settings cache lets a pass-through call (state, kill, exec, start:
// most of what podman runs) find runtime.path without decoding TOML.
// Decoding the shipped crhook.toml and the admin's files costs more than
// everything else crhook adds to such a call, and they rarely change.
//
// The cache holds runtime.path beside the exact bytes of every settings
// file it was decoded from, in load order, and which files were absent.
// A call still lists and reads every file (trusted, as always) and uses
// the cached value only when the bytes are the same; anything else (an
// edit, a drop-in added or removed, $CRHOOK_CONFIG, a file made
// untrusted) is a miss, and the call decodes the files as before. Only
// settings that decoded and validated without error are cached, so the
// broken-settings behaviour (the error on every call, runtime.path kept
// from the file that sets it) is the full path's. Bytes, not timestamps:
// no edit is ever missed, whatever the file system's clock.
//
// The file lives in the state directory (config.Paths.Cache), opened
// through the same checked walk as criu.conf: it steers which program
// root runs, so it is trusted exactly as the settings files are.

// settingsCacheName is the cache's file in the Cache directory.
const settingsCacheName = "settings.cache"

// cacheHeader starts the file; a new format gets a new header, and an
// old file is then a miss.
const cacheHeader = "crhook settings cache 1\n"

// settingsKey is the files as the cache records them: each file's path,
// then its length and bytes, or "absent".
func settingsKey(files []config.SettingsFile) []byte {
	n := 0
	for _, f := range files {
		n += len(f.Path) + len(f.Data) + 32
	}
	b := make([]byte, 0, n)
	for _, f := range files {
		b = append(b, "file "...)
		b = strconv.AppendQuote(b, f.Path)
		if !f.Found {
			b = append(b, " absent\n"...)
			continue
		}
		b = append(b, ' ')
		b = strconv.AppendInt(b, int64(len(f.Data)), 10)
		b = append(b, '\n')
		b = append(b, f.Data...)
		b = append(b, '\n')
	}
	return b
}

// cachedRuntimePath is runtime.path from the cache in dir, when the cache
// was written from exactly these files.
func cachedRuntimePath(dir string, files []config.SettingsFile) (string, bool) {
	if dir == "" {
		return "", false
	}
	d, err := openStateDir(dir, false)
	if err != nil {
		return "", false
	}
	defer d.close()
	data, found, err := d.ReadTrusted(settingsCacheName)
	if err != nil || !found {
		return "", false
	}
	rest, ok := bytes.CutPrefix(data, []byte(cacheHeader))
	if !ok {
		return "", false
	}
	line, key, ok := bytes.Cut(rest, []byte("\n"))
	if !ok {
		return "", false
	}
	quoted, ok := bytes.CutPrefix(line, []byte("runtime.path "))
	if !ok {
		return "", false
	}
	path, err := strconv.Unquote(string(quoted))
	if err != nil || path == "" || !bytes.Equal(key, settingsKey(files)) {
		return "", false
	}
	return path, true
}

// writeSettingsCache records runtimePath as decoded from files. It is a
// courtesy: a cache that cannot be written leaves the next call on the
// full path, so errors are only returned for tests.
func writeSettingsCache(dir string, files []config.SettingsFile, runtimePath string) error {
	if dir == "" {
		return nil
	}
	data := append([]byte(cacheHeader+"runtime.path "+strconv.Quote(runtimePath)+"\n"), settingsKey(files)...)
	if len(data) > safefile.MaxSize {
		return nil // would not be read back
	}
	d, err := openStateDir(dir, true)
	if err != nil {
		return err
	}
	defer d.close()
	return writeFileAt(d, settingsCacheName, data, 0o600)
}
