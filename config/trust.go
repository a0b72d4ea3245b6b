package config

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"syscall"
)

// maxFileSize bounds what the loader reads; option files are a few lines.
const maxFileSize = 1 << 20

// readTrusted reads a config file. A missing file is (nil, false, nil).
// When crhook runs as root it refuses files that another user could have
// written, like sshd's StrictModes: these files steer a root process.
func readTrusted(path string) ([]byte, bool, error) {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("open config %q: %w", path, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, false, fmt.Errorf("stat config %q: %w", path, err)
	}
	if !fi.Mode().IsRegular() {
		return nil, false, &FileError{File: path, Err: fmt.Errorf("%w: not a regular file", ErrUnsafeFile)}
	}
	if err := checkOwner(path, fi); err != nil {
		return nil, false, err
	}
	data, err := io.ReadAll(io.LimitReader(f, maxFileSize+1))
	if err != nil {
		return nil, false, fmt.Errorf("read config %q: %w", path, err)
	}
	if len(data) > maxFileSize {
		return nil, false, &FileError{File: path, Err: fmt.Errorf("%w: larger than %d bytes", ErrUnsafeFile, maxFileSize)}
	}
	return data, true, nil
}

func checkOwner(path string, fi fs.FileInfo) error {
	if os.Geteuid() != 0 {
		return nil
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return nil
	}
	switch {
	case st.Uid != 0:
		return &FileError{File: path, Err: fmt.Errorf("%w: owned by uid %d, not root", ErrUnsafeFile, st.Uid),
			Hint: "run: chown root:root " + path}
	case fi.Mode().Perm()&0o022 != 0:
		return &FileError{File: path, Err: fmt.Errorf("%w: writable by group or others (mode %04o)", ErrUnsafeFile, fi.Mode().Perm()),
			Hint: "run: chmod go-w " + path}
	}
	return nil
}
