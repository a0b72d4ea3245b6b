package engine

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/crhook/crhook/config"
)

// lookRuntime resolves the wrapped runtime. podman may run us with a
// minimal PATH, so the usual sbin directories are tried too. at says where
// runtime.path was set, for the messages (asked only on failure): they say
// what is wrong with the file found there, and how to fix it, before any
// exec fails obscurely. It only stats: the pass-through path pays for
// nothing more, and vetRuntime reads the file when a step needs it.
func lookRuntime(name string, at func() config.Loc) (string, error) {
	try := []string{name}
	if !filepath.IsAbs(name) {
		if p, err := exec.LookPath(name); err == nil {
			try = []string{p}
		} else {
			try = nil
			dirs := append(filepath.SplitList(os.Getenv("PATH")), "/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin")
			for _, d := range dirs {
				if filepath.IsAbs(d) {
					try = append(try, filepath.Join(d, name))
				}
			}
		}
	}
	where := func() string { return fmt.Sprintf("runtime.path = %q, %s", name, at()) }
	var unusable error
	for _, p := range try {
		fi, err := os.Stat(p)
		switch {
		case err != nil:
			continue
		case fi.IsDir():
			unusable = fmt.Errorf("runtime %q is a directory (%s); set runtime.path to the runtime binary", p, where())
			continue
		case !fi.Mode().IsRegular():
			unusable = fmt.Errorf("runtime %q is not a regular file (%s); set runtime.path to the runtime binary", p, where())
			continue
		case fi.Mode()&0o111 == 0:
			unusable = fmt.Errorf("runtime %q is not executable (mode %04o, %s); run: chmod 0755 %q, or set runtime.path to another runtime",
				p, fi.Mode().Perm(), where(), p)
			continue
		}
		// Exec'ing crhook itself would loop forever. One stat of the
		// running binary, whatever links led to either.
		if self, err := os.Stat("/proc/self/exe"); err == nil && os.SameFile(fi, self) {
			return "", fmt.Errorf("runtime.path %q is crhook itself (%s); set it to runc or crun", name, at())
		}
		return p, nil
	}
	if unusable != nil {
		return "", unusable
	}
	return "", fmt.Errorf("runtime %q not found (%s); install runc or crun, or set runtime.path to the runtime's full path", name, where())
}

// vetRuntime says in advance, in the words of the settings, why execve of
// the runtime found at path would fail although the file is there.
func vetRuntime(path, name string, at func() config.Loc) error {
	if err := checkExecutable(path); err != nil {
		return fmt.Errorf("runtime %q cannot be run (runtime.path = %q, %s): %w", path, name, at(), err)
	}
	return nil
}

// checkExecutable tells in advance what execve would fail on with ENOEXEC
// or ENOENT although the file is there: a script whose #! interpreter is
// missing, or a file that is neither ELF nor a script. Without this, a
// checkpoint would fail with a bare "exec format error" and a misleading
// diagnosis of a CRIU that never ran. It reads one small block.
func checkExecutable(path string) error {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil // execve will say; reading is only a courtesy
	}
	defer f.Close()
	var buf [256]byte // the kernel's BINPRM_BUF_SIZE
	n, _ := io.ReadFull(f, buf[:])
	head := buf[:n]
	switch {
	case bytes.HasPrefix(head, []byte("\x7fELF")):
		return nil
	case bytes.HasPrefix(head, []byte("#!")):
		line, _, _ := bytes.Cut(head[2:], []byte("\n"))
		fields := strings.Fields(string(line))
		if len(fields) == 0 {
			return fmt.Errorf("its #! line names no interpreter (exec format error); fix the first line of %q", path)
		}
		interp := fields[0]
		if !filepath.IsAbs(interp) {
			return nil
		}
		fi, err := os.Stat(interp)
		switch {
		case err != nil:
			return fmt.Errorf("bad interpreter: its #! line names %q, which does not exist; install it or fix the first line of %q", interp, path)
		case fi.IsDir() || fi.Mode()&0o111 == 0:
			return fmt.Errorf("bad interpreter: its #! line names %q, which is not executable; fix the first line of %q", interp, path)
		}
		return nil
	}
	// Neither ELF nor script: only a binfmt_misc handler could run it.
	if ents, err := os.ReadDir("/proc/sys/fs/binfmt_misc"); err == nil {
		for _, e := range ents {
			if e.Name() != "register" && e.Name() != "status" {
				return nil
			}
		}
	}
	return fmt.Errorf("it is neither a program (ELF) nor a script with a #! line (exec format error); set runtime.path to the runtime binary")
}
