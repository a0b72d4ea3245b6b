package edit

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"

	"github.com/crhook/crhook/config/safefile"
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
	safefile.Dir
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
	d, err := safefile.OpenDir(dir)
	if err != nil {
		if !create && errors.Is(err, fs.ErrNotExist) {
			return nil, errNoDir
		}
		return nil, err
	}
	for {
		err = unix.Flock(d.FD, unix.LOCK_EX)
		if !errors.Is(err, unix.EINTR) {
			break
		}
	}
	if err != nil {
		_ = d.Close()
		return nil, fmt.Errorf("lock directory %q: %w", dir, err)
	}
	return &lockedDir{d}, nil
}

// close releases the lock (closing the only fd of the open file
// description drops the flock).
func (d *lockedDir) close() error {
	if err := d.Dir.Close(); err != nil {
		return fmt.Errorf("unlock directory %q: %w", d.Path, err)
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
	fd, err := unix.Openat(d.FD, name, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil, nil, nil
	case errors.Is(err, unix.ELOOP):
		target, _ := os.Readlink(path)
		return nil, nil, fmt.Errorf("edit %q: it is a symbolic link to %q and crhook does not edit through links (edit the target with --file)", path, target)
	case err != nil:
		return nil, nil, fmt.Errorf("open %q: %w", path, err)
	}
	f := os.NewFile(uintptr(fd), path)
	defer f.Close()
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return nil, nil, fmt.Errorf("stat %q: %w", path, err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		return nil, nil, fmt.Errorf("edit %q: not a regular file (remove it or choose another --file)", path)
	}
	if st.Nlink > 1 {
		return nil, nil, fmt.Errorf("edit %q: it has %d hard links and replacing it would split them (make it a single file first)", path, st.Nlink)
	}
	data, err := safefile.ReadBounded(f, safefile.MaxSize)
	if errors.Is(err, safefile.ErrTooLarge) {
		return nil, nil, fmt.Errorf("edit %q: larger than %d bytes, not a CRIU option file", path, safefile.MaxSize)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("read %q: %w", path, err)
	}
	return data, &fileMeta{mode: st.Mode & 0o7777, uid: int(st.Uid), gid: int(st.Gid)}, nil
}

// replace atomically replaces name with data through safefile's one
// atomic writer, keeping meta's owner and mode: readers (CRIU, a
// concurrent checkpoint) see either the old or the new file, whole, and
// the directory is fsynced so the rename survives a crash. The lock held
// on the directory is what makes the read-modify-write safe between
// editors. uid -1 keeps the creating process's owner.
func (d *lockedDir) replace(name, path string, data []byte, meta *fileMeta) error {
	err := d.Replace(name, data, safefile.Replace{Perm: meta.mode, UID: meta.uid, GID: meta.gid, Created: tempCreated})
	var oe *safefile.OwnerError
	if errors.As(err, &oe) {
		return fmt.Errorf("keep owner %d:%d of %q: %w (edit it as its owner or as root)", meta.uid, meta.gid, path, oe.Err)
	}
	return err
}

// tempCreated, when set (by tests only), runs right after the temporary
// file is created: the point where a killed editor leaves one behind.
var tempCreated func()

// removeStaleTemps deletes the temporary files that editors killed
// mid-edit left behind. Every editor holds this directory's lock from
// before it creates its temporary file until it has renamed or removed
// it, so while we hold the lock any file so named is stale.
func (d *lockedDir) removeStaleTemps() { d.RemoveTemps() }
