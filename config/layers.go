package config

import (
	"fmt"

	"github.com/crhook/crhook/config/criuopt"
)

// The CRIU files as crhook-runtime reads them: through readTrusted, then the
// option language.

// CheckFile parses one CRIU file with the loader's ownership rules. It
// returns the number of options, or -1 when the file does not exist.
func CheckFile(path string) (int, error) {
	data, found, err := readTrusted(path)
	if err != nil || !found {
		return -1, err
	}
	stmts, err := criuopt.Parse(path, data)
	return len(stmts), err
}

// LayerCheck is one CRIU file checked as crhook-runtime would read it.
type LayerCheck struct {
	File    string
	Options int   // options it sets; -1 when the file does not exist
	Err     error // why crhook-runtime would refuse it
}

// CheckLayers checks each file with CheckFile: `crhook config check` and
// doctor's config.layers report the same thing the same way.
func CheckLayers(files []string) []LayerCheck {
	out := make([]LayerCheck, 0, len(files))
	for _, f := range files {
		n, err := CheckFile(f)
		out = append(out, LayerCheck{File: f, Options: n, Err: err})
	}
	return out
}

// String is the check's one line: "FILE: ok, 2 options", "FILE: absent",
// or the error (which names the file and line).
func (c LayerCheck) String() string {
	switch {
	case c.Err != nil:
		return c.Err.Error()
	case c.Options < 0:
		return c.File + ": absent"
	case c.Options == 1:
		return c.File + ": ok, 1 option"
	}
	return fmt.Sprintf("%s: ok, %d options", c.File, c.Options)
}

// LintFile is Lint on a file, read with the loader's ownership rules; a
// missing file has nothing to report.
func LintFile(path string) ([]*criuopt.FileError, error) {
	data, found, err := readTrusted(path)
	if err != nil || !found {
		return nil, err
	}
	return criuopt.Lint(path, data)
}
