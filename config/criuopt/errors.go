package criuopt

import (
	"errors"
	"fmt"
)

// Sentinel errors; detail is added with fmt.Errorf("%w: ...", ErrX) and
// callers test with errors.Is.
var (
	// ErrSyntax: a CRIU option file that CRIU itself would refuse.
	ErrSyntax = errors.New("invalid CRIU configuration")
	// ErrUnknownOption: a name that is not a CRIU 4.2 long option.
	ErrUnknownOption = errors.New("unknown CRIU option")
	// ErrInvalidValue: a value CRIU would misread or reject.
	ErrInvalidValue = errors.New("invalid value")
)

// FileError locates a problem in a file. Its message is what users read:
// "FILE:LINE:COL: what is wrong (hint)". The settings loader and the
// layer resolver use it too, so every message about a file has one shape.
type FileError struct {
	File string
	Line int // 1-based; 0 when the problem is the file as a whole
	Col  int // 1-based byte column; 0 when unknown
	Err  error
	Hint string // what to do about it, if there is something better than "fix the line"
}

func (e *FileError) Error() string {
	loc := Printable(e.File)
	if e.Line > 0 {
		loc = fmt.Sprintf("%s:%d", loc, e.Line)
		if e.Col > 0 {
			loc = fmt.Sprintf("%s:%d", loc, e.Col)
		}
	}
	msg := loc + ": " + e.Err.Error()
	if e.Hint != "" {
		msg += " (" + e.Hint + ")"
	}
	return msg
}

func (e *FileError) Unwrap() error { return e.Err }
