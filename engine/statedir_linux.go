package engine

import (
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/crhook/crhook/config/safefile"
)

// The state directory is a trust boundary: runc hands CRIU the criu.conf
// crhook writes there, and CRIU runs its action-script as root. So the
// path is walked one component at a time with openat(O_NOFOLLOW), every
// directory is checked with safefile.Problem (root-owned, not writable by
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
type dirFD struct{ safefile.Dir }

func (d dirFD) close() { _ = d.Close() }

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
	root, err := openVerified(dirFD{safefile.Dir{FD: unix.AT_FDCWD}}, "/", "/", true)
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
		path := filepath.Join(cur.Path, name)
		next, err := openVerified(cur, name, path, true)
		switch {
		case errors.Is(err, unix.ELOOP) || errors.Is(err, unix.ENOTDIR):
			target, lerr := cur.ReadLink(name)
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
			if err := mkdirLabelled(cur.FD, name, path, ""); err != nil {
				return dirFD{}, err
			}
			next, err = openVerified(cur, name, path, true)
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
	path := filepath.Join(d.Path, name)
	next, err := openVerified(d, name, path, false)
	if errors.Is(err, fs.ErrNotExist) && create {
		if err := mkdirLabelled(d.FD, name, path, stateLabel); err != nil {
			return dirFD{}, err
		}
		next, err = openVerified(d, name, path, false)
	}
	if errors.Is(err, unix.ELOOP) || errors.Is(err, unix.ENOTDIR) {
		if target, lerr := d.ReadLink(name); lerr == nil {
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
	if err := unix.Fchmod(next.FD, 0o700); err != nil {
		next.close()
		return dirFD{}, fmt.Errorf("secure state directory %q: %w", path, err)
	}
	return next, nil
}

// openVerified opens name in d without following a link and checks the
// directory it got. ancestor allows a root-owned sticky directory (/tmp).
// path names it for messages: the root "/" is opened in no directory.
func openVerified(d dirFD, name, path string, ancestor bool) (dirFD, error) {
	next, st, err := d.OpenNoFollow(name)
	if err != nil {
		if errors.Is(err, unix.ELOOP) || errors.Is(err, unix.ENOTDIR) || errors.Is(err, fs.ErrNotExist) {
			return dirFD{}, err
		}
		return dirFD{}, err // names the directory
	}
	next.Path = path
	if why, fix := safefile.Problem(path, st.Uid, st.Mode&0o7777, ancestor); why != "" {
		_ = next.Close()
		return dirFD{}, fmt.Errorf("%w: %q is %s, so another user could change root's CRIU config there (run: %s)",
			ErrUnsafeStateDir, path, why, fix)
	}
	return dirFD{next}, nil
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

// writeFileAt replaces name in d with data through safefile's one atomic
// writer, the temporary file created relative to the verified directory's
// descriptor and labelled as the state directory.
func writeFileAt(d dirFD, name string, data []byte, perm uint32) error {
	return d.Replace(name, data, safefile.Replace{Perm: perm, UID: -1, GID: -1,
		Create: func(create func() error) error { return withCreateLabel(stateLabel, create) }})
}

// removeAt removes name from d and, if it is a directory, everything in
// it, without following any link: a link is removed, never its target.
func removeAt(d dirFD, name string) error { return d.RemoveAll(name) }
