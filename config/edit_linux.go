package config

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// errNoDir: the file's directory does not exist and the edit may not
// create it (Unset); there is nothing to edit.
var errNoDir = errors.New("directory does not exist")

// lockedDir is the directory of the file being edited, open and locked for
// the whole read-modify-write.
//
// The lock is an exclusive flock on the directory itself, not on the file:
// the file is replaced by rename, so a lock on its inode would be left
// behind on the old inode and a second editor would lock the new one. A
// separate lock file would survive renames too but litter /etc/criu and
// could be unlinked under a waiting editor, leaving two editors locking two
// different inodes. Every operation below goes through the same directory
// fd (openat, renameat), so the file we read, the temporary file and the
// rename all happen in the directory we locked even if a path component
// is swapped meanwhile.
type lockedDir struct {
	fd   int
	path string
}

// lockDir opens dir (creating it and missing parents with mode 0755 when
// create is set) and waits for its exclusive lock. flock waits without a
// timeout: the lock is only held across a read, a parse and a small write.
func lockDir(dir string, create bool) (*lockedDir, error) {
	if create {
		if err := makeDirs(dir); err != nil {
			return nil, err
		}
	}
	fd, err := syscall.Open(dir, syscall.O_RDONLY|syscall.O_DIRECTORY|syscall.O_CLOEXEC, 0)
	if err != nil {
		if !create && errors.Is(err, fs.ErrNotExist) {
			return nil, errNoDir
		}
		return nil, fmt.Errorf("open directory %q: %w", dir, err)
	}
	for {
		err = syscall.Flock(fd, syscall.LOCK_EX)
		if err != syscall.EINTR {
			break
		}
	}
	if err != nil {
		syscall.Close(fd)
		return nil, fmt.Errorf("lock directory %q: %w", dir, err)
	}
	return &lockedDir{fd: fd, path: dir}, nil
}

// close releases the lock (closing the only fd of the open file
// description drops the flock).
func (d *lockedDir) close() error {
	if err := syscall.Close(d.fd); err != nil {
		return fmt.Errorf("unlock directory %q: %w", d.path, err)
	}
	return nil
}

// makeDirs creates dir and its missing parents with mode 0755 whatever the
// umask, and leaves existing ones as they are.
func makeDirs(dir string) error {
	var missing []string
	for d := dir; ; d = filepath.Dir(d) {
		_, err := os.Lstat(d)
		if err == nil {
			break
		}
		if !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("create directory %q: %w", dir, err)
		}
		missing = append(missing, d)
		if filepath.Dir(d) == d {
			break
		}
	}
	for i := len(missing) - 1; i >= 0; i-- {
		err := os.Mkdir(missing[i], 0o755)
		if errors.Is(err, fs.ErrExist) {
			continue // another editor made it first
		}
		if err == nil {
			err = os.Chmod(missing[i], 0o755)
		}
		if err != nil {
			return fmt.Errorf("create directory %q: %w", missing[i], err)
		}
	}
	return nil
}

// read returns the contents of name and what the replacement must keep of
// it, or a nil fileMeta when it does not exist. path is for messages.
//
// Symbolic links are refused rather than followed: rename would replace
// the link itself with a regular file (silently cutting it off from its
// target), and following it would have root write wherever the link
// points, in a directory we have not locked. The user can name the target
// explicitly. Hard-linked files are refused for the same reason: rename
// would split them.
func (d *lockedDir) read(name, path string) ([]byte, *fileMeta, error) {
	// O_NONBLOCK: opening a FIFO planted under this name must not hang us;
	// it has no effect on reading regular files.
	fd, err := syscall.Openat(d.fd, name, syscall.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK|syscall.O_CLOEXEC, 0)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil, nil, nil
	case errors.Is(err, syscall.ELOOP):
		target, _ := os.Readlink(path)
		return nil, nil, fmt.Errorf("edit %q: it is a symbolic link to %q and crhook does not edit through links (edit the target with --file)", path, target)
	case err != nil:
		return nil, nil, fmt.Errorf("open %q: %w", path, err)
	}
	f := os.NewFile(uintptr(fd), path)
	defer f.Close()
	var st syscall.Stat_t
	if err := syscall.Fstat(fd, &st); err != nil {
		return nil, nil, fmt.Errorf("stat %q: %w", path, err)
	}
	if st.Mode&syscall.S_IFMT != syscall.S_IFREG {
		return nil, nil, fmt.Errorf("edit %q: not a regular file (remove it or choose another --file)", path)
	}
	if st.Nlink > 1 {
		return nil, nil, fmt.Errorf("edit %q: it has %d hard links and replacing it would split them (make it a single file first)", path, st.Nlink)
	}
	data, err := io.ReadAll(io.LimitReader(f, maxFileSize+1))
	if err != nil {
		return nil, nil, fmt.Errorf("read %q: %w", path, err)
	}
	if len(data) > maxFileSize {
		return nil, nil, fmt.Errorf("edit %q: larger than %d bytes, not a CRIU option file", path, maxFileSize)
	}
	return data, &fileMeta{mode: st.Mode & 0o7777, uid: int(st.Uid), gid: int(st.Gid)}, nil
}

// replace atomically replaces name with data: a new temporary file in the
// same directory (O_EXCL|O_NOFOLLOW, so nothing planted under its name is
// followed or reused) is written, given meta's owner and mode, fsynced and
// renamed over name, then the directory is fsynced so the rename survives
// a crash. The file at name is never opened for writing: readers (CRIU,
// a concurrent checkpoint) see either the old or the new file, whole.
// uid -1 keeps the creating process's owner.
func (d *lockedDir) replace(name, path string, data []byte, meta *fileMeta) (err error) {
	tmp, f, err := d.createTemp(name)
	if err != nil {
		return err
	}
	if tempCreated != nil {
		tempCreated()
	}
	tmpPath := filepath.Join(d.path, tmp)
	defer func() {
		if err != nil {
			f.Close() // may already be closed; the write error is the one to report
			if uerr := syscall.Unlinkat(d.fd, tmp); uerr != nil && !errors.Is(uerr, fs.ErrNotExist) {
				err = errors.Join(err, fmt.Errorf("remove temporary file %q: %w", tmpPath, uerr))
			}
		}
	}()
	if _, err := f.Write(data); err != nil {
		return fmt.Errorf("write temporary file %q: %w", tmpPath, err)
	}
	if meta.uid >= 0 {
		// chown before chmod: chown clears setuid/setgid bits.
		var st syscall.Stat_t
		if err := syscall.Fstat(int(f.Fd()), &st); err != nil {
			return fmt.Errorf("stat temporary file %q: %w", tmpPath, err)
		}
		if int(st.Uid) != meta.uid || int(st.Gid) != meta.gid {
			if err := f.Chown(meta.uid, meta.gid); err != nil {
				return fmt.Errorf("keep owner %d:%d of %q: %w (edit it as its owner or as root)", meta.uid, meta.gid, path, err)
			}
		}
	}
	if err := syscall.Fchmod(int(f.Fd()), meta.mode); err != nil {
		return fmt.Errorf("keep mode %04o of %q: %w", meta.mode, path, err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("sync temporary file %q: %w", tmpPath, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("close temporary file %q: %w", tmpPath, err)
	}
	if err := syscall.Renameat(d.fd, tmp, d.fd, name); err != nil {
		return fmt.Errorf("replace %q: %w", path, err)
	}
	if err := syscall.Fsync(d.fd); err != nil {
		// The new file is in place; only its durability across a crash
		// is in doubt, which the caller should still hear about.
		return fmt.Errorf("sync directory %q: %w", d.path, err)
	}
	return nil
}

// tempCreated, when set (by tests only), runs right after the temporary
// file is created: the point where a killed editor leaves one behind.
var tempCreated func()

// tempInfix marks crhook's temporary files: ".NAME.crhook-RANDOM".
const tempInfix = ".crhook-"

// isTempName reports whether name is one of createTemp's names.
func isTempName(name string) bool {
	i := strings.LastIndex(name, tempInfix)
	if !strings.HasPrefix(name, ".") || i <= 1 {
		return false
	}
	suffix := name[i+len(tempInfix):]
	return suffix != "" && strings.Trim(suffix, "0123456789abcdefghijklmnopqrstuvwxyz") == ""
}

// removeStaleTemps deletes the temporary files that editors killed
// mid-edit left behind. Every editor holds this directory's lock from
// before it creates its temporary file until it has renamed or removed
// it, so while we hold the lock any file so named is stale. Only regular
// files are removed, relative to the locked directory; errors are
// ignored: a leftover costs nothing but disk.
func (d *lockedDir) removeStaleTemps() {
	fd, err := syscall.Dup(d.fd)
	if err != nil {
		return
	}
	f := os.NewFile(uintptr(fd), d.path)
	defer f.Close()
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return
	}
	names, _ := f.Readdirnames(-1)
	for _, n := range names {
		if !isTempName(n) {
			continue
		}
		var st unix.Stat_t
		if unix.Fstatat(d.fd, n, &st, unix.AT_SYMLINK_NOFOLLOW) == nil && st.Mode&unix.S_IFMT == unix.S_IFREG {
			_ = unix.Unlinkat(d.fd, n, 0)
		}
	}
}

// createTemp makes a new file ".NAME.crhook-RANDOM" in the directory. The
// leading dot and the suffix keep CRIU and drop-in loaders from ever
// reading a half-written file as configuration.
func (d *lockedDir) createTemp(name string) (string, *os.File, error) {
	for range 100 {
		tmp := "." + name + tempInfix + strconv.FormatUint(rand.Uint64(), 36)
		fd, err := syscall.Openat(d.fd, tmp,
			syscall.O_WRONLY|syscall.O_CREAT|syscall.O_EXCL|syscall.O_NOFOLLOW|syscall.O_CLOEXEC, 0o600)
		if errors.Is(err, fs.ErrExist) {
			continue
		}
		if err != nil {
			return "", nil, fmt.Errorf("create temporary file in %q: %w", d.path, err)
		}
		return tmp, os.NewFile(uintptr(fd), filepath.Join(d.path, tmp)), nil
	}
	return "", nil, fmt.Errorf("create temporary file in %q: 100 names taken", d.path)
}
