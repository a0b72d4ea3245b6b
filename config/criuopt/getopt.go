package criuopt

import (
	"fmt"
	"strings"
	"sync"
)

// This file emulates glibc 2.36 getopt_long (posix/getopt.c) on the argv
// CRIU builds from a config file, with CRIU's short and long options. The
// default PERMUTE ordering applies (CRIU does not set POSIXLY_CORRECT):
// words that are not options are skipped and ignored, "--" ends the scan.

// criuShortOpts is short_opts of parse_options. Short options matter in
// files because a stray value word such as "-j" is one.
const criuShortOpts = "dSsRt:hD:o:v::x::Vr:jJ:lW:L:M:"

// shortLong maps each short option to the long option CRIU's switch treats
// the same way. Built on first use, as every table here: crhook-runtime
// links this package and pays for each table built at start-up on every
// call podman makes, most of which never parse a CRIU option.
var shortLong = sync.OnceValue(func() map[byte]string {
	return map[byte]string{
		'd': "restore-detached", 'S': "restore-sibling", 's': "leave-stopped",
		'R': "leave-running", 't': "tree", 'h': "help", 'D': "images-dir",
		'o': "log-file", 'v': "verbosity", 'x': "ext-unix-sk", 'V': "version",
		'r': "root", 'j': "shell-job", 'J': "join-ns", 'l': "file-locks",
		'W': "work-dir", 'L': "libdir", 'M': "ext-mount-map",
	}
})

// longOpt is one entry of long_opts. ident stands for the (has_arg, flag,
// val) triple: glibc only calls an abbreviation ambiguous when two matches
// differ in it, and BOOL_OPT("daemon") shares its flag with
// restore-detached.
type longOpt struct {
	name  string
	arg   ArgKind
	ident string
}

var longOpts = sync.OnceValue(func() []longOpt {
	var out []longOpt
	for _, name := range longNames() {
		opt, neg, _ := Lookup(name)
		id := opt.Name
		if opt.Name == "daemon" {
			id = "restore-detached"
		}
		if opt.Negatable {
			id += fmt.Sprintf("=%v", !neg)
		}
		out = append(out, longOpt{name: name, arg: opt.Arg, ident: fmt.Sprintf("%d/%s", opt.Arg, id)})
	}
	return out
})

// longIndex finds exact names without a scan: resolving runs before every
// checkpoint, over every line of every layer.
var longIndex = sync.OnceValue(func() map[string]int {
	m := make(map[string]int, len(longOpts()))
	for i, o := range longOpts() {
		m[o.name] = i
	}
	return m
})

// gotOpt is one option getopt_long returned.
type gotOpt struct {
	name   string // long_opts name, "no-" form included
	arg    string
	hasArg bool
	at     argWord // the word holding the option
	argAt  argWord // the word holding the argument, if any
}

// getopt walks argv like successive getopt_long calls.
type getopt struct {
	argv []argWord
	i    int // optind
	j    int // position inside a cluster of short options, 0 when none
	// stray collects the words CRIU skips (non-options, and all after
	// "--"), for Lint; CRIU itself never reads them.
	stray []argWord
}

// next returns the next option; ok is false at the end of the scan.
func (g *getopt) next() (o gotOpt, ok bool, err *FileError) {
	if g.j == 0 {
		for g.i < len(g.argv) && (len(g.argv[g.i].text) < 2 || g.argv[g.i].text[0] != '-') {
			g.stray = append(g.stray, g.argv[g.i])
			g.i++ // a non-option: permuted to the end, never read by CRIU
		}
		if g.i == len(g.argv) || g.argv[g.i].text == "--" {
			if g.i < len(g.argv) {
				g.stray = append(g.stray, g.argv[g.i+1:]...)
			}
			return o, false, nil
		}
		w := g.argv[g.i]
		if w.text[1] == '-' {
			return g.long(w)
		}
		g.j = 1
	}
	return g.short()
}

func (g *getopt) long(w argWord) (gotOpt, bool, *FileError) {
	name, value, hasValue := strings.Cut(w.text[2:], "=")
	opts := longOpts()
	var found *longOpt
	if k, ok := longIndex()[name]; ok {
		found = &opts[k]
	}
	if found == nil {
		// An unambiguous prefix is accepted: "tcp-est" is tcp-established.
		var matches []string
		for k := range opts {
			p := &opts[k]
			if !strings.HasPrefix(p.name, name) {
				continue
			}
			if found == nil {
				found = p
			} else if p.ident != found.ident {
				matches = append(matches, p.name)
			}
		}
		if len(matches) > 0 {
			matches = append([]string{found.name}, matches...)
			if len(matches) > 5 {
				matches = append(matches[:5], "...")
			}
			return gotOpt{}, false, &FileError{Line: w.line, Col: w.col,
				Err:  fmt.Errorf("%w: %q is an ambiguous abbreviation", ErrUnknownOption, name),
				Hint: "write the full name: " + strings.Join(matches, ", ")}
		}
	}
	if found == nil {
		fe := &FileError{Line: w.line, Col: w.col, Err: fmt.Errorf("%w: %q", ErrUnknownOption, name)}
		switch {
		case strings.Contains(name, "\r"):
			fe.Hint = "the line ends in a carriage return (DOS line ending); convert the file with dos2unix"
		case strings.Contains(name, "\t"):
			fe.Hint = "a tab separates the value only on a line without spaces; use a space"
		case strings.Contains(name, "#"):
			fe.Hint = "a comment must be preceded by whitespace"
		case Suggest(name) != "":
			fe.Hint = "did you mean " + Suggest(name) + "?"
		}
		return gotOpt{}, false, fe
	}
	g.i++
	o := gotOpt{name: found.name, at: w}
	switch {
	case hasValue && found.arg == NoArg:
		return o, false, &FileError{Line: w.line, Col: w.col,
			Err:  fmt.Errorf("%w: %s takes no value", ErrInvalidValue, found.name),
			Hint: "remove =" + value}
	case hasValue:
		o.arg, o.hasArg, o.argAt = value, true, w
	case found.arg == RequiredArg:
		// The value is the next word, even one from a later line.
		if g.i == len(g.argv) {
			return o, false, &FileError{Line: w.line, Col: w.col,
				Err:  fmt.Errorf("%w: %s needs a value", ErrSyntax, found.name),
				Hint: "write the value on the same line: " + found.name + " VALUE"}
		}
		o.arg, o.hasArg, o.argAt = g.argv[g.i].text, true, g.argv[g.i]
		g.i++
	}
	return o, true, nil
}

func (g *getopt) short() (gotOpt, bool, *FileError) {
	w := g.argv[g.i]
	c := w.text[g.j]
	g.j++
	rest := w.text[g.j:]
	if rest == "" {
		g.i++
		g.j = 0
	}
	k := strings.IndexByte(criuShortOpts, c)
	if k < 0 || c == ':' || c == ';' {
		return gotOpt{}, false, &FileError{Line: w.line, Col: w.col,
			Err:  fmt.Errorf("%w: the word %q is read as the short option -%c, which CRIU does not have", ErrSyntax, w.text, c),
			Hint: "a word starting with '-' after an option is an option itself; remove it or quote a value that needs spaces"}
	}
	o := gotOpt{name: shortLong()[c], at: w}
	spec := criuShortOpts[k+1:]
	switch {
	case strings.HasPrefix(spec, "::"):
		if rest != "" {
			o.arg, o.hasArg, o.argAt = rest, true, w
			g.i++
		}
		g.j = 0
	case strings.HasPrefix(spec, ":"):
		switch {
		case rest != "":
			o.arg, o.hasArg, o.argAt = rest, true, w
			g.i++
		case g.i == len(g.argv):
			return o, false, &FileError{Line: w.line, Col: w.col,
				Err:  fmt.Errorf("%w: the word %q is read as the short option -%c, which needs a value", ErrSyntax, w.text, c),
				Hint: "remove the word or give the option its long name and a value"}
		default:
			o.arg, o.hasArg, o.argAt = g.argv[g.i].text, true, g.argv[g.i]
			g.i++
		}
		g.j = 0
	}
	return o, true, nil
}
