package engine

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/crhook/crhook/config"
)

// The state directory is a trust boundary: runc hands CRIU the criu.conf
// crhook writes there, and CRIU runs its action-script as root. So the
// path is walked one component at a time with openat(O_NOFOLLOW), every
// directory is checked with config.Untrusted (root-owned, not writable by
// group or others), and criu.conf is written relative to the verified
// directory's descriptor. Nothing another user could swap is followed.
//
// Above state_dir, a symbolic link is followed only when the directory
// holding it passed the check (only root could have made it; Debian's
// /var/run is one), and its target is walked the same way. From state_dir
// down (state_dir, containers, ID) links are refused outright.

// ErrUnsafeStateDir is wrapped by every refusal of the state directory.
var ErrUnsafeStateDir = errors.New("unsafe crhook state directory")

// maxLinks bounds the symbolic links followed above state_dir (MAXSYMLINKS).
const maxLinks = 40

// dirFD is an open directory whose path was verified on the way down.
type dirFD struct {
	fd   int
	path string
}

func (d dirFD) close() { _ = unix.Close(d.fd) }

// openStateDir opens stateDir/sub... for writing into, creating missing
// directories with mode 0700 when create is set (those from state_dir down
// labelled for SELinux as the policy labels /run/crhook). Without create,
// a missing directory is fs.ErrNotExist.
func openStateDir(stateDir string, create bool, sub ...string) (dirFD, error) {
	if !filepath.IsAbs(stateDir) {
		return dirFD{}, fmt.Errorf("%w: state_dir %q is not an absolute path", ErrUnsafeStateDir, stateDir)
	}
	stateDir = filepath.Clean(stateDir)
	parent, err := openAncestors(filepath.Dir(stateDir), create)
	if err != nil {
		return dirFD{}, err
	}
	cur := parent
	for i, name := range append([]string{filepath.Base(stateDir)}, sub...) {
		next, err := openStrict(cur, name, create, i > 0)
		cur.close()
		if err != nil {
			return dirFD{}, err
		}
		cur = next
	}
	return cur, nil
}

// openAncestors opens the directory at the absolute path p, following
// only links that sit in a verified directory.
func openAncestors(p string, create bool) (dirFD, error) {
	root, err := openVerified(unix.AT_FDCWD, "/", "/", true)
	if err != nil {
		return dirFD{}, err
	}
	stack := []dirFD{root}
	defer func() {
		for _, d := range stack {
			d.close()
		}
	}()
	queue := strings.Split(p, "/")
	links := 0
	for len(queue) > 0 {
		name := queue[0]
		queue = queue[1:]
		cur := stack[len(stack)-1]
		switch name {
		case "", ".":
			continue
		case "..":
			if len(stack) > 1 {
				cur.close()
				stack = stack[:len(stack)-1]
			}
			continue
		}
		path := filepath.Join(cur.path, name)
		next, err := openVerified(cur.fd, name, path, true)
		switch {
		case errors.Is(err, unix.ELOOP) || errors.Is(err, unix.ENOTDIR):
			target, lerr := readLink(cur.fd, name)
			if lerr != nil {
				return dirFD{}, fmt.Errorf("%w: %q is not a directory", ErrUnsafeStateDir, path)
			}
			if links++; links > maxLinks {
				return dirFD{}, fmt.Errorf("%w: too many symbolic links resolving %q", ErrUnsafeStateDir, p)
			}
			if filepath.IsAbs(target) {
				for _, d := range stack[1:] {
					d.close()
				}
				stack = stack[:1]
			}
			queue = append(strings.Split(target, "/"), queue...)
			continue
		case errors.Is(err, fs.ErrNotExist) && create:
			if err := mkdirLabelled(cur.fd, name, path, ""); err != nil {
				return dirFD{}, err
			}
			next, err = openVerified(cur.fd, name, path, true)
		}
		if err != nil {
			return dirFD{}, err
		}
		stack = append(stack, next)
	}
	top := stack[len(stack)-1]
	stack = stack[:len(stack)-1]
	return top, nil
}

// openStrict opens name in d, a directory of the state tree itself: no
// link, root-owned, not writable by others. tighten makes it mode 0700:
// containers/ and containers/ID are crhook's own; state_dir may be shared.
func openStrict(d dirFD, name string, create, tighten bool) (dirFD, error) {
	path := filepath.Join(d.path, name)
	next, err := openVerified(d.fd, name, path, false)
	if errors.Is(err, fs.ErrNotExist) && create {
		if err := mkdirLabelled(d.fd, name, path, stateLabel); err != nil {
			return dirFD{}, err
		}
		next, err = openVerified(d.fd, name, path, false)
	}
	if errors.Is(err, unix.ELOOP) || errors.Is(err, unix.ENOTDIR) {
		if target, lerr := readLink(d.fd, name); lerr == nil {
			return dirFD{}, fmt.Errorf("%w: %q is a symbolic link (to %q); crhook does not follow links in its state directory, "+
				"where they would redirect root's writes (remove the link: rm %q, crhook recreates the directory; or set state_dir in crhook.toml to a real directory)",
				ErrUnsafeStateDir, path, target, path)
		}
		return dirFD{}, fmt.Errorf("%w: %q is not a directory (remove it: crhook recreates it)", ErrUnsafeStateDir, path)
	}
	if err != nil {
		return dirFD{}, err
	}
	// Checked to be root's, so root's to tighten; runc and CRIU run as root.
	if !tighten {
		return next, nil
	}
	if err := unix.Fchmod(next.fd, 0o700); err != nil {
		next.close()
		return dirFD{}, fmt.Errorf("secure state directory %q: %w", path, err)
	}
	return next, nil
}

// openVerified opens name in dirfd without following a link and checks the
// directory it got. ancestor allows a root-owned sticky directory (/tmp).
func openVerified(dirfd int, name, path string, ancestor bool) (dirFD, error) {
	fd, err := unix.Openat(dirfd, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		if errors.Is(err, unix.ELOOP) || errors.Is(err, unix.ENOTDIR) || errors.Is(err, fs.ErrNotExist) {
			return dirFD{}, err
		}
		return dirFD{}, fmt.Errorf("open state directory %q: %w", path, err)
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		_ = unix.Close(fd)
		return dirFD{}, fmt.Errorf("stat state directory %q: %w", path, err)
	}
	if why, fix := config.TrustProblem(path, st.Uid, st.Mode&0o7777, ancestor); why != "" {
		_ = unix.Close(fd)
		return dirFD{}, fmt.Errorf("%w: %q is %s, so another user could change root's CRIU config there (run: %s)",
			ErrUnsafeStateDir, path, why, fix)
	}
	return dirFD{fd: fd, path: path}, nil
}

func readLink(dirfd int, name string) (string, error) {
	buf := make([]byte, 4096)
	n, err := unix.Readlinkat(dirfd, name, buf)
	if err != nil {
		return "", err
	}
	return string(buf[:n]), nil
}

// mkdirLabelled makes name in dirfd, mode 0700, with label ("" for the
// default). Another process making it first is fine: it is checked next.
func mkdirLabelled(dirfd int, name, path, label string) error {
	err := withCreateLabel(label, func() error { return unix.Mkdirat(dirfd, name, 0o700) })
	if err != nil && !errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("create state directory %q: %w", path, err)
	}
	return nil
}

// writeFileAt replaces name in d with data: a temp file created relative to
// the directory's descriptor (O_EXCL|O_NOFOLLOW), fsync, renameat.
func writeFileAt(d dirFD, name string, data []byte, perm uint32) (err error) {
	tmp := "." + name + ".tmp" + fmt.Sprint(os.Getpid())
	open := func() (int, error) {
		return unix.Openat(d.fd, tmp, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, perm)
	}
	var fd int
	err = withCreateLabel(stateLabel, func() error { fd, err = open(); return err })
	if errors.Is(err, fs.ErrExist) {
		// A crashed earlier run with our pid; it is ours to replace.
		if rmErr := unix.Unlinkat(d.fd, tmp, 0); rmErr == nil {
			err = withCreateLabel(stateLabel, func() error { fd, err = open(); return err })
		}
	}
	tmpPath := filepath.Join(d.path, tmp)
	if err != nil {
		return fmt.Errorf("create %q: %w", tmpPath, err)
	}
	f := os.NewFile(uintptr(fd), tmpPath)
	defer func() {
		if err != nil {
			err = errors.Join(err, f.Close(), unix.Unlinkat(d.fd, tmp, 0))
		}
	}()
	if _, err = f.Write(data); err != nil {
		return fmt.Errorf("write %q: %w", tmpPath, err)
	}
	if err = f.Chmod(os.FileMode(perm)); err != nil {
		return fmt.Errorf("chmod %q: %w", tmpPath, err)
	}
	if err = f.Sync(); err != nil {
		return fmt.Errorf("sync %q: %w", tmpPath, err)
	}
	if err = f.Close(); err != nil {
		return fmt.Errorf("close %q: %w", tmpPath, err)
	}
	if err = unix.Renameat(d.fd, tmp, d.fd, name); err != nil {
		return fmt.Errorf("replace %q: %w", filepath.Join(d.path, name), err)
	}
	return nil
}

// removeAt removes name from d and, if it is a directory, everything in
// it, without following any link: a link is removed, never its target.
func removeAt(d dirFD, name string) error {
	path := filepath.Join(d.path, name)
	err := unix.Unlinkat(d.fd, name, 0)
	if err == nil || errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if !errors.Is(err, unix.EISDIR) && !errors.Is(err, unix.EPERM) {
		return fmt.Errorf("remove %q: %w", path, err)
	}
	fd, err := unix.Openat(d.fd, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("open %q: %w", path, err)
	}
	sub := dirFD{fd: fd, path: path}
	f := os.NewFile(uintptr(fd), path)
	names, err := f.Readdirnames(-1)
	if err != nil {
		f.Close()
		return fmt.Errorf("list %q: %w", path, err)
	}
	var errs []error
	for _, n := range names {
		errs = append(errs, removeAt(sub, n))
	}
	f.Close()
	if err := unix.Unlinkat(d.fd, name, unix.AT_REMOVEDIR); err != nil && !errors.Is(err, fs.ErrNotExist) {
		errs = append(errs, fmt.Errorf("remove %q: %w", path, err))
	}
	return errors.Join(errs...)
}
