package engine

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/crhook/crhook/config"
	"github.com/crhook/crhook/config/safefile"
)

// The settings cache lets a pass-through call (state, kill, exec, start:
// most of what podman runs) find runtime.path without reading or decoding
// the settings files. Decoding the shipped crhook.toml and the admin's
// files cost more than everything else crhook adds to such a call, and on
// this kind of VM every page of memory a process touches for the first
// time costs too; the files rarely change.
//
// The cache holds runtime.path, the configured file names, and for the
// running crhook-runtime, every settings file, the drop-in directory and
// each drop-in: its identity and times as stat(2) gives them (device,
// inode, mode, owner, size, mtime, ctime, links followed, as the files
// are read), or that it was absent, and a hash of each file's bytes as
// decoded. A pass-through call stats each path; the cached runtime.path
// is used only when every one is as recorded. Any difference (an edit, a
// drop-in added or removed, a chmod, another $CRHOOK_CONFIG, a new
// crhook-runtime) is a miss: the files are read and decoded as always,
// and the cache is written again.
//
// A change within the file system's timestamp granularity of the moment
// the cache recorded a file could leave its stat unchanged (the "racily
// clean" problem git's index has). So an entry whose mtime or ctime is
// within racyWindow of the cache's own time is never trusted on its stat:
// a file's bytes are read and hashed, a directory is listed, and the
// cache is written again, no longer racy, once the window has passed.
//
// Only settings that decoded and validated are cached, so broken settings
// keep their behaviour (the error on every call, runtime.path from the
// file that sets it, exit 127 naming file:line). A cached runtime that
// cannot be found or run sends the call down the full path, which says
// why in the settings' words. The cache file lives in the state directory
// (config.Paths.Cache), read and written through the same checked walk as
// criu.conf, not following links, and trusted by the settings files' owner
// and mode rule: it steers which program root runs.

// settingsCacheName is the cache's file in the Cache directory.
const settingsCacheName = "settings.cache"

// SettingsCachePath is the settings cache's file for p, "" when p keeps
// none; crhook-runtime(8) documents it.
func SettingsCachePath(p config.Paths) string {
	if p.Cache == "" {
		return ""
	}
	return filepath.Join(p.Cache, settingsCacheName)
}

// cacheHeader starts the file; a new format gets a new header, and an
// old file is then a miss.
const cacheHeader = "crhook settings cache 3\n"

// racyWindow is how close to the cache's time an entry's timestamps may
// be and still be trusted on its stat. File timestamps come from a clock
// that ticks at most every few milliseconds; seconds leave a wide margin.
var racyWindow = 2 * time.Second

// cacheNow is the clock the cache is stamped with; tests move it.
var cacheNow = time.Now

// Entry kinds, the first word of an entry's line.
const (
	entFile   = "file"   // a settings file
	entDropIn = "dropin" // a file listed from the drop-in directory
	entDir    = "dir"    // the drop-in directory
	// entSelf is the running crhook-runtime (/proc/self/exe): another
	// build may decode or validate the same files differently (a new
	// default, a new rule), so an upgrade is a miss.
	entSelf = "self"
)

// selfExe names the running binary for stat(2).
const selfExe = "/proc/self/exe"

// hashed reports whether the kind's entry carries a hash of the bytes.
func hashed(kind string) bool { return kind == entFile || kind == entDropIn }

// cacheEntry is one path the settings depend on.
type cacheEntry struct {
	kind, path string
	absent     bool
	st         statKey
	sum        uint64 // FNV-1a of a file's bytes
}

// statKey is what of stat(2) must be unchanged.
type statKey struct {
	dev, ino, mode, uid, gid, size, mtime, ctime int64
}

func statOf(st *unix.Stat_t) statKey {
	return statKey{int64(st.Dev), int64(st.Ino), int64(st.Mode), int64(st.Uid), int64(st.Gid), st.Size,
		st.Mtim.Nano(), st.Ctim.Nano()}
}

// racy reports whether the entry changed too close to at to be trusted
// on its stat alone.
func (k statKey) racy(at int64) bool {
	return max(k.mtime, k.ctime) > at-int64(racyWindow)
}

// fnv64 is FNV-1a: it tells the bytes a file had when it was decoded from
// other bytes of the same size and times; the files are trusted (root's),
// so no one is trying to collide it.
func fnv64(b []byte) uint64 {
	h := uint64(14695981039346656037)
	for _, c := range b {
		h ^= uint64(c)
		h *= 1099511628211
	}
	return h
}

// settingsCache is a parsed cache file.
type settingsCache struct {
	runtimePath string
	names       [4]string // the configured file names (cacheNames)
	at          int64     // when the entries were stat'ed, Unix ns
	entries     []cacheEntry
}

// cacheNames is the configured settings file names, which the cache must
// have been written for.
func cacheNames(p config.Paths) [4]string {
	return [4]string{p.SettingsDefault, p.SettingsSystem, p.SettingsDropIn, p.SettingsEnv}
}

// The file is the header line, then fields each ended by a NUL byte
// (no path holds one): runtime.path, the four names, the time, then per
// entry its kind, its path, and "absent" or its stat numbers (and a
// file's hash) separated by blanks. No quoting: a pass-through call
// parses it, and strconv's quoting touches the Unicode tables, pages the
// process would not otherwise fault in.

func (c *settingsCache) marshal() []byte {
	b := make([]byte, 0, 512)
	b = append(b, cacheHeader...)
	field := func(s string) { b = append(append(b, s...), 0) }
	field(c.runtimePath)
	for _, n := range c.names {
		field(n)
	}
	b = append(strconv.AppendInt(b, c.at, 10), 0)
	for _, e := range c.entries {
		field(e.kind)
		field(e.path)
		if e.absent {
			field("absent")
			continue
		}
		for i, v := range []int64{e.st.dev, e.st.ino, e.st.mode, e.st.uid, e.st.gid, e.st.size, e.st.mtime, e.st.ctime} {
			if i > 0 {
				b = append(b, ' ')
			}
			b = strconv.AppendInt(b, v, 10)
		}
		if hashed(e.kind) {
			b = append(b, ' ')
			b = strconv.AppendUint(b, e.sum, 16)
		}
		b = append(b, 0)
	}
	return b
}

// parseSettingsCache reads what marshal wrote; ok is false for anything
// else.
func parseSettingsCache(data []byte) (c settingsCache, ok bool) {
	rest, ok := bytes.CutPrefix(data, []byte(cacheHeader))
	if !ok {
		return c, false
	}
	next := func() (string, bool) {
		i := bytes.IndexByte(rest, 0)
		if i < 0 {
			return "", false
		}
		f := string(rest[:i])
		rest = rest[i+1:]
		return f, true
	}
	if c.runtimePath, ok = next(); !ok || c.runtimePath == "" {
		return c, false
	}
	for i := range c.names {
		if c.names[i], ok = next(); !ok {
			return c, false
		}
	}
	at, ok := next()
	var err error
	if c.at, err = strconv.ParseInt(at, 10, 64); !ok || err != nil {
		return c, false
	}
	for len(rest) > 0 {
		var e cacheEntry
		var state string
		e.kind, ok = next()
		if ok {
			e.path, ok = next()
		}
		if ok {
			state, ok = next()
		}
		if !ok || !hashed(e.kind) && e.kind != entDir && e.kind != entSelf {
			return c, false
		}
		if state == "absent" {
			e.absent = true
			c.entries = append(c.entries, e)
			continue
		}
		var v [8]int64
		n := 0
		for f := range strings.SplitSeq(state, " ") {
			var err error
			switch {
			case n < len(v):
				v[n], err = strconv.ParseInt(f, 10, 64)
			case n == len(v) && hashed(e.kind):
				e.sum, err = strconv.ParseUint(f, 16, 64)
			default:
				return c, false
			}
			if err != nil {
				return c, false
			}
			n++
		}
		if n != 8 && !hashed(e.kind) || n != 9 && hashed(e.kind) {
			return c, false
		}
		e.st = statKey{v[0], v[1], v[2], v[3], v[4], v[5], v[6], v[7]}
		c.entries = append(c.entries, e)
	}
	return c, true
}

// stat is stat(2) of path, following links as reading the file does;
// absent is ENOENT.
func stat(path string) (st unix.Stat_t, absent bool, err error) {
	for {
		err = unix.Stat(path, &st)
		if !errors.Is(err, unix.EINTR) {
			break
		}
	}
	if errors.Is(err, unix.ENOENT) {
		return st, true, nil
	}
	return st, false, err
}

// cachedRuntimePath is runtime.path from the cache in p.Cache, when every
// path the settings depend on is as the cache recorded it. rewrite is set
// when entries that were racy are now settled: the cache should be
// written again, so that later calls trust their stat.
func cachedRuntimePath(p config.Paths) (path string, rewrite *settingsCache, ok bool) {
	if p.Cache == "" {
		return "", nil, false
	}
	d, err := openStateDir(p.Cache, false)
	if err != nil {
		return "", nil, false
	}
	data, found, err := d.ReadTrusted(settingsCacheName)
	d.close()
	if err != nil || !found {
		return "", nil, false
	}
	c, ok := parseSettingsCache(data)
	if !ok || c.names != cacheNames(p) {
		return "", nil, false
	}
	racy, racyDir := false, false
	for _, e := range c.entries {
		st, absent, err := stat(e.path)
		if err != nil || absent != e.absent {
			return "", nil, false
		}
		if absent {
			continue
		}
		if statOf(&st) != e.st || !trustedStat(e, &st) {
			return "", nil, false
		}
		if !e.st.racy(c.at) || e.kind == entSelf {
			// A new build is installed as a new file (install(1), rpm,
			// go build: a new inode), so its stat tells without a hash
			// of megabytes; only an in-place copy of the same size in
			// the same clock tick would go unseen.
			continue
		}
		racy = true
		if e.kind == entDir {
			racyDir = true // listed below
			continue
		}
		data, found, err := safefile.ReadTrusted(e.path)
		if err != nil || !found || fnv64(data) != e.sum {
			return "", nil, false
		}
	}
	if racyDir {
		// The files a load would read now must be the cached ones.
		names, err := p.SettingsFiles()
		if err != nil {
			return "", nil, false
		}
		i := 0
		for _, e := range c.entries {
			if !hashed(e.kind) {
				continue
			}
			for i < len(names) && names[i] == "" {
				i++
			}
			if i == len(names) || names[i] != e.path {
				return "", nil, false
			}
			i++
		}
		for ; i < len(names); i++ {
			if names[i] != "" {
				return "", nil, false
			}
		}
	}
	if racy && cacheNow().UnixNano()-int64(racyWindow) > c.at {
		rewrite = &c
	}
	return c.runtimePath, rewrite, true
}

// trustedStat applies the settings files' rules to what stat said of a
// cached entry: a regular file (a directory for the drop-in directory),
// and as root, the owner and mode rule.
func trustedStat(e cacheEntry, st *unix.Stat_t) bool {
	want := uint32(unix.S_IFREG)
	if e.kind == entDir {
		want = unix.S_IFDIR
	}
	if uint32(st.Mode)&unix.S_IFMT != want {
		return false
	}
	return !hashed(e.kind) || os.Geteuid() != 0 || safefile.Untrusted(e.path, st.Uid, uint32(st.Mode)&0o7777, false) == nil
}

// newSettingsCache records runtimePath as decoded from files (as
// ReadSettingsFiles read them). The entries are stat'ed after the files
// were read and the cache is stamped after that: a change in between is
// within the racy window, so it is checked by content, never missed.
func newSettingsCache(p config.Paths, files []config.SettingsFile, runtimePath string) (*settingsCache, error) {
	c := &settingsCache{runtimePath: runtimePath, names: cacheNames(p)}
	add := func(kind, path string, sum uint64) error {
		st, absent, err := stat(path)
		if err != nil {
			return err
		}
		e := cacheEntry{kind: kind, path: path, absent: absent, sum: sum}
		if !absent {
			e.st = statOf(&st)
		}
		c.entries = append(c.entries, e)
		return nil
	}
	if err := add(entSelf, selfExe, 0); err != nil {
		return nil, err
	}
	dirDone := p.SettingsDropIn == ""
	for _, f := range files {
		kind := entFile
		if f.DropIn {
			kind = entDropIn
		}
		if !dirDone && (f.DropIn || f.Path == p.SettingsEnv) {
			if err := add(entDir, p.SettingsDropIn, 0); err != nil {
				return nil, err
			}
			dirDone = true
		}
		if err := add(kind, f.Path, fnv64(f.Data)); err != nil {
			return nil, err
		}
		if f.Found == c.entries[len(c.entries)-1].absent {
			return nil, errors.New("a settings file came or went while it was read")
		}
	}
	if !dirDone {
		if err := add(entDir, p.SettingsDropIn, 0); err != nil {
			return nil, err
		}
	}
	c.at = cacheNow().UnixNano()
	return c, nil
}

// writeSettingsCache writes c. It is a courtesy: a cache that cannot be
// written leaves the next call on the full path, so errors are only
// returned for tests.
func writeSettingsCache(dir string, c *settingsCache) error {
	if dir == "" {
		return nil
	}
	d, err := openStateDir(dir, true)
	if err != nil {
		return err
	}
	defer d.close()
	return writeFileAt(d, settingsCacheName, c.marshal(), 0o600)
}
