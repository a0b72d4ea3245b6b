package edit

// The editor behind `crhook config set` and `crhook config unset`.
//
// A CRIU option file is edited as a list of lines, each paired with the
// statement the parser found on it (CRIU reads at most one option per
// line). Only the lines an edit is about are touched; every other line,
// comment, blank line, CRLF ending and a missing final newline go back byte
// for byte, because these files are written by people and by config
// management and a diff should show exactly the change asked for.
//
// Safety rules, in the order they apply:
//   - the option and its value are checked against the catalog before the
//     file is even opened, so a typo leaves the file as it was;
//   - a file that does not parse is never rewritten: CRIU would reject it
//     anyway and rewriting it could hide or move the broken line;
//   - the result is parsed again and must hold exactly the statements the
//     edit meant to leave, else nothing is written (guards against a
//     canonical line that CRIU's quirky tokenizer would read differently);
//   - the file is replaced atomically (temporary file in the same
//     directory, fsync, rename, directory fsync) with its mode and owner;
//   - editors are serialised by an flock on the directory (edit_linux.go),
//     and an editor holding it removes the temporary files of editors that
//     were killed mid-edit (no live editor can own one then).

import (
	"bytes"
	"errors"
	"fmt"
	"path/filepath"
	"strings"

	"github.com/crhook/crhook/config/criuopt"
)

// newFileMode is the mode of a file Set creates: CRIU option files are
// read by CRIU and by users checking what is in effect, and written by root.
const newFileMode = 0o644

// fileMeta is what the replacement keeps of the original file.
type fileMeta struct {
	mode     uint32 // permission, setuid/setgid and sticky bits
	uid, gid int
}

// Set makes the CRIU option file at path set name to value and reports
// whether the file changed. name is a full catalog name, or "no-NAME" for
// the negation of a boolean; abbreviations are refused (getopt would accept
// them, but a file should say what it means). value must be empty for
// switches and "no-" forms and is required for options that take one.
//
// A single-valued option ends up on one line: the last line setting it, in
// either its plain or "no-" form, is rewritten in place (indentation and a
// trailing comment kept) and earlier ones are deleted. A repeatable option
// gets a new line at the end unless a line with this exact value exists.
//
// A missing file is created with mode 0644 (and missing parent directories
// with 0755). A file that does not parse is left untouched and its parse
// error (file:line:column) returned. The file is replaced atomically with
// its mode and owner kept; editors of files in one directory, in any
// process, take turns on an flock of that directory. A symbolic link or a
// hard-linked file is refused, not edited (see lockedDir.read).
func Set(path, name, value string) (changed bool, err error) {
	want, err := statementFor(name, value)
	if err != nil {
		return false, fmt.Errorf("set %q in %s: %w", name, criuopt.Printable(path), err)
	}
	return edit(path, true, func(lines []line) ([]line, error) {
		out := setLine(lines, want)
		// Lines after "version" or "help" are never applied: CRIU prints
		// and exits there. A setting that lands after one would not apply.
		if i := stopIndex(out); i >= 0 {
			for _, l := range out[i+1:] {
				if l.st != nil {
					stop := out[i].st
					return nil, fmt.Errorf("not editing %q: line %d sets %s, so CRIU prints its %s and stops reading options there, "+
						"and %s would never apply (remove that line first: crhook config unset %s; nothing was changed)",
						path, stop.Line, stop.Name(), stop.Name(), name, stop.Name())
				}
			}
		}
		return out, nil
	})
}

// stopIndex is the index of the line setting "version" or "help", after
// which CRIU reads no option (applyOptions); -1 when there is none.
func stopIndex(lines []line) int {
	for i, l := range lines {
		if l.st != nil && (l.st.Option.Name == "version" || l.st.Option.Name == "help") {
			return i
		}
	}
	return -1
}

// Unset removes every line that sets one of names, in its plain or "no-"
// form, and reports how many lines went. Names follow Set's rules; an
// unknown one fails the whole call before the file is read. A missing file
// has nothing to remove and is not created.
func Unset(path string, names ...string) (removed int, err error) {
	drop := make(map[*criuopt.Option]bool, len(names))
	for _, name := range names {
		opt, _, ok := criuopt.Lookup(name)
		if !ok {
			return 0, fmt.Errorf("unset %q in %s: %w", name, criuopt.Printable(path), criuopt.UnknownOption(name))
		}
		drop[opt] = true
	}
	_, err = edit(path, false, func(lines []line) ([]line, error) {
		gone := make([]bool, len(lines))
		for {
			stopGone, stop := "", stopIndex(lines)
			for i, l := range lines {
				if l.st != nil && drop[l.st.Option] {
					removed++
					gone[i] = true
					if i == stop {
						stopGone = l.st.Name()
					}
					lines[i] = line{text: commentOut(l.text)}
				}
			}
			if stopGone == "" {
				break
			}
			// Without "version" or "help" the lines after it apply: they
			// must parse, and may set names too. Removed lines are
			// commented out meanwhile so that line numbers stay the file's.
			relines, err := splitParsed(path, join(lines))
			if err != nil {
				return nil, fmt.Errorf("not removing %s from %q: the lines after it would then apply, and CRIU rejects them (nothing was changed): %w", stopGone, path, err)
			}
			lines = relines
		}
		out := lines[:0:0]
		for i, l := range lines {
			if !gone[i] {
				out = append(out, l)
			}
		}
		return out, nil
	})
	if err != nil {
		return 0, err
	}
	return removed, nil
}

// commentOut is a comment line in the place of text, with its ending, so
// that a reparse keeps every other line's number.
func commentOut(text string) string {
	if strings.HasSuffix(text, "\n") {
		return "#\n"
	}
	return "#"
}

// statementFor checks name and value against the catalog (criuopt.Check)
// and returns the statement Set must leave in the file.
func statementFor(name, value string) (criuopt.Statement, error) {
	opt, negated, ok := criuopt.Lookup(name)
	if !ok {
		return criuopt.Statement{}, criuopt.UnknownOption(name)
	}
	return criuopt.Check(opt, negated, value)
}

// line is one line of the file with its terminator ("\n", "\r\n" or none
// for a last line without one) and the statement on it, if any.
type line struct {
	text string
	st   *criuopt.Statement
}

// edit runs change on the lines of the file at path while holding the
// directory's lock and replaces the file when the bytes differ. With
// create, a missing file (and its missing parents) is created; without,
// a missing file is left alone and change never runs.
func edit(path string, create bool, change func([]line) ([]line, error)) (changed bool, err error) {
	path = filepath.Clean(path)
	dir, name := filepath.Split(path)
	if name == "" || name == "." || name == ".." || name == "/" {
		return false, fmt.Errorf("edit %q: not a file name", path)
	}
	d, err := lockDir(filepath.Clean(dir+"."), create)
	if errors.Is(err, errNoDir) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	defer func() {
		if cerr := d.close(); cerr != nil {
			err = errors.Join(err, cerr)
		}
	}()
	d.removeStaleTemps()

	old, meta, err := d.read(name, path)
	if err != nil {
		return false, err
	}
	if meta == nil && !create {
		return false, nil
	}
	lines, err := splitParsed(path, old)
	if err != nil {
		return false, fmt.Errorf("not editing %q, fix it first (nothing was changed): %w", path, err)
	}
	lines, err = change(lines)
	if err != nil {
		return false, err
	}
	data := join(lines)
	if meta != nil && bytes.Equal(data, old) {
		return false, nil
	}
	if err := verify(path, data, lines); err != nil {
		return false, err
	}
	if meta == nil {
		meta = &fileMeta{mode: newFileMode, uid: -1, gid: -1}
	}
	if err := d.replace(name, path, data, meta); err != nil {
		return false, err
	}
	return true, nil
}

// splitParsed parses data as CRIU would and pairs each line with its
// statement. Line numbers come from the parser; lines split at '\n' as
// CRIU's getline does, so a '\r' stays part of its line.
func splitParsed(path string, data []byte) ([]line, error) {
	stmts, err := criuopt.Parse(path, data)
	if err != nil {
		return nil, err
	}
	texts := strings.SplitAfter(string(data), "\n")
	if texts[len(texts)-1] == "" {
		texts = texts[:len(texts)-1]
	}
	lines := make([]line, len(texts))
	for i, t := range texts {
		lines[i].text = t
	}
	for i := range stmts {
		n := stmts[i].Line - 1
		if n < 0 || n >= len(lines) || lines[n].st != nil {
			// CRIU takes at most one option per line; anything else means
			// the parser and the editor disagree about the file.
			return nil, &criuopt.FileError{File: path, Line: stmts[i].Line,
				Err: fmt.Errorf("%w: cannot map option %s to one line", criuopt.ErrSyntax, stmts[i].Name())}
		}
		lines[n].st = &stmts[i]
	}
	return lines, nil
}

func join(lines []line) []byte {
	var b bytes.Buffer
	for _, l := range lines {
		b.WriteString(l.text)
	}
	return b.Bytes()
}

// verify parses the edited text and checks it holds exactly the statements
// the edit meant, in order. It catches a canonical line that CRIU would
// read differently (its tokenizer has many corner cases) before the file
// is touched.
func verify(path string, data []byte, lines []line) error {
	got, err := criuopt.Parse(path, data)
	if err != nil {
		return fmt.Errorf("check edited %q (nothing was changed, please report this crhook bug): %w", path, err)
	}
	var want []criuopt.Statement
	for _, l := range lines {
		if l.st != nil {
			want = append(want, *l.st)
		}
	}
	if len(got) != len(want) {
		return fmt.Errorf("check edited %q: %d options after the edit, expected %d (nothing was changed, please report this crhook bug)",
			path, len(got), len(want))
	}
	for i := range got {
		if !sameStatement(got[i], want[i]) {
			return fmt.Errorf("check edited %q: line %d reads as %q, expected %q (nothing was changed, please report this crhook bug)",
				path, got[i].Line, criuopt.Format(got[i]), criuopt.Format(want[i]))
		}
	}
	return nil
}

// sameStatement compares what CRIU would do with two statements.
func sameStatement(a, b criuopt.Statement) bool {
	return a.Option == b.Option && a.Negated == b.Negated && a.HasValue == b.HasValue && a.Value == b.Value
}

// setLine applies Set's rules for want to lines.
func setLine(lines []line, want criuopt.Statement) []line {
	var at []int
	for i, l := range lines {
		if l.st != nil && l.st.Option == want.Option {
			at = append(at, i)
		}
	}
	if want.Option.Repeatable {
		for _, i := range at {
			if sameStatement(*lines[i].st, want) {
				return lines
			}
		}
		return appendLine(lines, want)
	}
	if len(at) == 0 {
		return appendLine(lines, want)
	}
	last := at[len(at)-1]
	out := make([]line, 0, len(lines))
	for i, l := range lines {
		switch {
		case i == last:
			if !sameStatement(*l.st, want) {
				l = rewrite(l, want)
			}
		case l.st != nil && l.st.Option == want.Option:
			continue // an earlier setting the last one overrode anyway
		}
		out = append(out, l)
	}
	return out
}

// appendLine adds want on a new line at the end. A last line without a
// newline gets one first, or the two would run together.
func appendLine(lines []line, want criuopt.Statement) []line {
	out := append([]line(nil), lines...)
	if n := len(out); n > 0 && !strings.HasSuffix(out[n-1].text, "\n") {
		out[n-1].text += "\n"
	}
	st := want
	return append(out, line{text: criuopt.Format(st) + "\n", st: &st})
}

// rewrite returns l setting want instead, keeping its indentation and a
// trailing comment when the new line still reads as want with them. The
// line ends in '\n' even if it ended in "\r\n": the canonical line must
// read the same to CRIU, and a '\r' is not whitespace to every part of its
// tokenizer. A last line without a newline stays without one.
func rewrite(l line, want criuopt.Statement) line {
	text, eol := l.text, ""
	if strings.HasSuffix(text, "\n") {
		text, eol = strings.TrimSuffix(strings.TrimSuffix(text, "\n"), "\r"), "\n"
	}
	indent := ""
	if c := l.st.Col - 1; c > 0 && c <= len(text) && strings.Trim(text[:c], " \t") == "" {
		indent = text[:c]
	}
	formatted := criuopt.Format(want)
	candidates := []string{indent + formatted}
	if comment := trailingComment(text, *l.st); comment != "" {
		candidates = []string{indent + formatted + " " + comment, formatted + " " + comment, indent + formatted}
	}
	st := want
	for _, c := range candidates {
		if readsAs(c, want) {
			return line{text: c + eol, st: &st}
		}
	}
	// verify reports it if even the bare canonical line does not read back.
	return line{text: formatted + eol, st: &st}
}

// trailingComment finds the comment at the end of text, the line that
// holds st: the first '#' such that the text before it still reads as st
// ('#' inside a quoted value does not qualify, the prefix would not parse).
func trailingComment(text string, st criuopt.Statement) string {
	for j := max(st.Col-1, 0); j < len(text); j++ {
		if text[j] != '#' {
			continue
		}
		if readsAs(text[:j], st) || readsAs(strings.TrimRight(text[:j], " \t"), st) {
			return text[j:]
		}
	}
	return ""
}

// readsAs reports whether one line of text parses to exactly st.
func readsAs(text string, st criuopt.Statement) bool {
	got, err := criuopt.Parse("", []byte(text+"\n"))
	return err == nil && len(got) == 1 && sameStatement(got[0], st)
}
