package criuopt

import (
	"errors"
	"fmt"
)

// ErrIgnored marks a word CRIU accepts in a file but never reads.
var ErrIgnored = errors.New("ignored by CRIU")

// Lint reports what CRIU accepts in a file but silently ignores: words that
// are not options, such as "soft" in "manage-cgroups soft" (an optional
// value is only read as manage-cgroups=soft), and everything after "--".
// A file that does not parse is Parse's business: Lint returns its error.
func Lint(file string, data []byte) ([]*FileError, error) {
	if _, err := Parse(file, data); err != nil {
		return nil, err
	}
	words, _, ferr := splitWords(file, data)
	if ferr != nil {
		return nil, ferr
	}
	g := getopt{argv: words}
	onLine := map[int]gotOpt{} // the option each line set
	for {
		o, ok, err := g.next()
		if err != nil || !ok {
			break
		}
		onLine[o.at.line] = o
	}
	var out []*FileError
	for _, w := range g.stray {
		hint := "remove it; CRIU reads only option names and their values"
		if o, ok := onLine[w.line]; ok {
			if opt, _, _ := Lookup(o.name); opt != nil && opt.Arg == OptionalArg {
				hint = fmt.Sprintf("write %s=%s: CRIU takes an optional value only after '='", opt.Name, w.text)
			}
		}
		out = append(out, &FileError{File: file, Line: w.line, Col: w.col,
			Err: fmt.Errorf("%w: %q", ErrIgnored, w.text), Hint: hint})
	}
	return out, nil
}
