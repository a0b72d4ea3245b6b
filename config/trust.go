package config

import (
	"errors"
	"fmt"

	"github.com/crhook/crhook/config/criuopt"
	"github.com/crhook/crhook/config/safefile"
)

// readTrusted reads a config file through safefile.ReadTrusted, the one
// rule for what steers crhook as root (regular file, trusted owner and
// mode, bounded size). A missing file is (nil, false, nil); a refusal is
// a *FileError wrapping ErrUnsafeFile.
func readTrusted(path string) ([]byte, bool, error) {
	data, found, err := safefile.ReadTrusted(path)
	return data, found, unsafeFileError(err)
}

// unsafeFileError turns safefile's refusal into a *FileError.
func unsafeFileError(err error) error {
	var se *safefile.Error
	if errors.As(err, &se) {
		return &criuopt.FileError{File: se.Path, Err: fmt.Errorf("%w: %s", ErrUnsafeFile, se.Why), Hint: se.Hint}
	}
	return err
}
