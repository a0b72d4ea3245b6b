package criuopt

import (
	"bytes"
	"fmt"
	"strings"
)

// This file ports parse_config and parse_statement of CRIU 4.2.1
// (criu/config.c) byte for byte: a file CRIU rejects must be rejected here,
// and a file CRIU accepts must give the options CRIU would apply. The C code
// has many accidental behaviours; each one is kept and explained where it
// happens, because users' files already rely on them.

// argWord is one element of the argv CRIU builds from a config file, with
// where it came from so errors and statements can point at it.
type argWord struct {
	text string
	line int
	col  int // 1-based byte column of the word's first character
}

// Parse reads data as CRIU 4.2.1 reads a config file named file, and returns
// the options in the order CRIU applies them. Every error is a *FileError
// wrapping ErrSyntax, ErrUnknownOption or ErrInvalidValue.
//
// As in CRIU, "version" and "help" end the processing: CRIU prints and exits
// there, so the statements after them are never applied (their lines must
// still be well-formed, because CRIU splits the whole file first).
func Parse(file string, data []byte) ([]Statement, error) {
	st, _, err := parse(file, data)
	return st, err
}

// parse also reports whether CRIU would read memory past a value's
// allocation on some line (undefined behaviour, see cbuf); the differential
// test does not hold CRIU to a verdict on such files.
func parse(file string, data []byte) ([]Statement, bool, error) {
	words, ub, err := splitWords(file, data)
	if err != nil {
		return nil, ub, err
	}
	st, err := applyOptions(words)
	if err != nil {
		err.File = file
		return nil, ub, err
	}
	return st, ub, nil
}

// splitWords is CRIU's parse_config: the argv every line turns into.
func splitWords(file string, data []byte) (words []argWord, ub bool, _ *FileError) {
	lineNo := 0
	// getline: every line keeps its '\n'; a last line without one is
	// still a line.
	for len(data) > 0 {
		lineNo++
		n := bytes.IndexByte(data, '\n') + 1
		if n == 0 {
			n = len(data)
		}
		w, lineUB, err := parseStatement(data[:n], lineNo)
		if err != nil {
			err.File = file
			return nil, ub, err
		}
		ub = ub || lineUB
		words = append(words, w...)
		data = data[n:]
	}
	return words, ub, nil
}

// isSpace is isspace(3) in the C locale, which CRIU runs in.
func isSpace(c byte) bool {
	return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r'
}

// cbuf models a heap buffer that CRIU reads as a C string. parse_statement
// can scan from an offset beyond the value's terminating NUL (after escape
// removal or when a short quoted value follows a long name): bytes inside
// the allocation are modelled exactly, glibc calloc zeroes up to the
// chunk's usable size, and anything further is other heap memory. Such
// reads return NUL (what CRIU nearly always finds) and set ub.
type cbuf struct {
	b  []byte
	ub bool
}

func (c *cbuf) at(i int) byte {
	if i < len(c.b) {
		return c.b[i]
	}
	c.ub = true
	return 0
}

// cstr returns the C string starting at i.
func (c *cbuf) cstr(i int) []byte {
	j := i
	for c.at(j) != 0 {
		j++
	}
	if i >= len(c.b) {
		return nil
	}
	return c.b[i:j]
}

// callocUsable is the usable size of a glibc x86-64 chunk for req bytes;
// calloc clears all of it.
func callocUsable(req int) int {
	chunk := (req + 8 + 15) &^ 15
	if chunk < 32 {
		chunk = 32
	}
	return chunk - 8
}

func syntaxErr(line, col int, detail, hint string) *FileError {
	return &FileError{Line: line, Col: col, Err: fmt.Errorf("%w: %s", ErrSyntax, detail), Hint: hint}
}

// parseStatement turns one getline line into zero, one or two argv words
// like parse_statement: "--" plus the text before the first space (or, if
// there is no space at all, the first tab), then the value.
func parseStatement(raw []byte, lineNo int) ([]argWord, bool, *FileError) {
	line := raw
	// CRIU handles the line with str* functions: a NUL ends it, '\n' included.
	if i := bytes.IndexByte(line, 0); i >= 0 {
		line = line[:i]
	}
	if len(line) == 0 {
		return nil, false, nil
	}
	off := 0
	for off < len(line) && isSpace(line[off]) && line[off] != '\n' {
		off++
	}
	if off < len(line) && (line[off] == '\n' || line[off] == '#') {
		return nil, false, nil
	}
	// A whitespace-only last line without '\n' gets here with nothing left
	// and becomes the word "--", which ends getopt's scan of this file (or
	// is taken as the value of a preceding option that lacks one).
	base := off
	input := line[off:]
	if i := bytes.IndexByte(input, '\n'); i >= 0 {
		input = input[:i]
	}
	col := func(i int) int { return base + i + 1 }

	// A space anywhere wins over an earlier tab: "tree\t5 #c" is the
	// option "tree\t5".
	sp := bytes.IndexByte(input, ' ')
	if sp < 0 {
		sp = bytes.IndexByte(input, '\t')
	}
	if sp < 0 {
		return []argWord{{text: "--" + string(input), line: lineNo, col: col(0)}}, false, nil
	}
	words := []argWord{{text: "--" + string(input[:sp]), line: lineNo, col: col(0)}}
	off = sp + 1
	for off < len(input) && isSpace(input[off]) {
		off++
	}
	if off < len(input) && input[off] == '#' {
		return words, false, nil
	}

	valCol := col(off)
	var buf cbuf
	exactCols := false // whether buffer index + valueStart maps to the line
	valueStart := off
	if off < len(input) && input[off] == '"' {
		qcol := col(off)
		off++
		quoteStart, quoteOff := off, off
		if off >= len(input) {
			return nil, false, syntaxErr(lineNo, qcol, "lone double quote as value",
				`close the quote: NAME "VALUE"`)
		}
		if input[off] == '"' {
			// "" is the empty value; CRIU jumps past every later check,
			// so anything after the closing quote is ignored.
			return append(words, argWord{text: "", line: lineNo, col: valCol}), false, nil
		}
		found := false
		for {
			j := bytes.IndexByte(input[quoteOff+1:], '"')
			if j < 0 {
				break
			}
			idx := quoteOff + 1 + j
			quoteOff = idx
			if input[idx-1] == '\\' {
				continue
			}
			found = true
			n := idx - quoteStart
			buf = cbuf{b: make([]byte, callocUsable(n+1))}
			copy(buf.b, input[quoteStart:idx])
			// CRIU's offset is now a position in the line, not in the
			// value; the later checks use it on the value anyway.
			off++
			tail := input[idx+1:]
			// Text after the closing quote is only checked when it has a
			// space, and its last byte never is: `"v"x` is accepted.
			if bytes.IndexByte(tail, ' ') >= 0 {
				for k := 0; k < len(tail)-1; k++ {
					if tail[k] == '#' {
						break
					}
					if !isSpace(tail[k]) {
						return nil, false, syntaxErr(lineNo, col(idx+1+k),
							"text after the closing quote",
							"only a # comment may follow the quoted value")
					}
				}
			}
			break
		}
		if !found {
			return nil, false, syntaxErr(lineNo, qcol, "no closing double quote",
				`close the quote; write a quote inside the value as \"`)
		}
	} else {
		buf = cbuf{b: append(append([]byte(nil), input[off:]...), 0)}
		if i := bytes.IndexByte(input[off:], ' '); i >= 0 {
			off = i
		} else {
			off = 0
		}
		exactCols = true
	}

	if s := buf.cstr(0); bytes.Contains(s, []byte(`\"`)) {
		// Drop the backslash of every \" (quoted or not), in place: the
		// old tail stays in the buffer behind the new NUL.
		tmp := make([]byte, 0, len(s))
		skipped := 0
		for j := 0; j < len(s); j++ {
			if s[j] == '\\' && j+1 < len(s) && s[j+1] == '"' {
				skipped++
				continue
			}
			tmp = append(tmp, s[j])
		}
		copy(buf.b, tmp)
		buf.b[len(tmp)] = 0
		off += skipped + 1
		exactCols = false
	}

	// A '#' anywhere in the value starts a comment, even inside quotes.
	if s := buf.cstr(0); bytes.IndexByte(s, '#') >= 0 {
		buf.b[bytes.IndexByte(s, '#')] = 0
	}
	// "Unsupported configuration file format": from offset on, if there is
	// a space, everything but the last byte must be whitespace. So
	// "images-dir a b" is accepted as "a" and "images-dir a bc" is not.
	rest := buf.cstr(off)
	if bytes.IndexByte(rest, ' ') >= 0 {
		for j := 0; j < len(rest)-1; j++ {
			if !isSpace(rest[j]) {
				c := valCol
				if exactCols {
					c = col(valueStart + off + j)
				}
				return nil, false, syntaxErr(lineNo, c, "more than one value on the line",
					`a value containing spaces must be double-quoted: NAME "VALUE"`)
			}
		}
		buf.b[off+bytes.IndexByte(rest, ' ')] = 0
	}
	return append(words, argWord{text: string(buf.cstr(0)), line: lineNo, col: valCol}), buf.ub, nil
}

// Format returns one line (without '\n') that Parse reads back as st. It
// prefers "NAME VALUE", then "NAME=VALUE" (the value then needs no comment,
// quote or escape handling, as getopt splits it), then a double-quoted
// value. Optional values must use NAME=VALUE: getopt never takes the next
// word for them, so an optional value with a blank has no line (CRIU only
// gets one from a quoted word read as a short option, "-v\t"). Values
// ValidateValue rejects may not read back.
func Format(st Statement) string {
	name := st.Name()
	if !st.HasValue || st.Option == nil || st.Option.Arg == NoArg {
		return name
	}
	v := st.Value
	eq := name + "=" + v
	if st.Option.Arg == OptionalArg {
		return eq
	}
	cands := []string{eq}
	if v != "" {
		cands = []string{name + " " + v, eq}
	}
	esc := strings.ReplaceAll(v, `"`, `\"`)
	if !strings.HasSuffix(v, `\`) {
		// CRIU checks the quoted value for stray text from an offset that
		// grows with the name and the blanks before the quote (and the
		// escapes); the value survives when no space follows that offset.
		// So: one blank, or just enough blanks to start past the last space.
		extra := 0
		if n := strings.Count(v, `"`); n > 0 {
			extra = n + 1
		}
		pads := []int{1}
		if p := strings.LastIndexByte(v, ' ') + 1 - len(name) - 2 - extra; p > 1 {
			pads = append(pads, p)
		}
		for _, pad := range pads {
			cands = append(cands, name+strings.Repeat(" ", pad)+`"`+esc+`"`)
		}
	}
	// Unquoted, escaped quotes still shift that offset: `0 \"\` reads
	// back as `0 "\` although it has a space and ends in a backslash.
	cands = append(cands, name+" "+esc)
	var fallback string
	for _, c := range cands {
		got, ub, err := parse("", []byte(c+"\n"))
		if err != nil || len(got) != 1 || got[0].Value != v || got[0].Option.Name != st.Option.Name {
			continue
		}
		if !ub {
			return c
		}
		if fallback == "" {
			fallback = c
		}
	}
	if fallback != "" {
		return fallback
	}
	return eq
}
