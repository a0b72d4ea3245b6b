package diagnose

import (
	"bytes"
	"regexp"
	"strings"
)

// entry is one catalog row: patterns → meaning → fixes.
type entry struct {
	id       string
	priority int
	// match: any of these on a CRIU error or warning line.
	match []*regexp.Regexp
	// also, when set, must occur somewhere in the log (any line, before or
	// after the match) for the entry to count.
	also    *regexp.Regexp
	alsoLit []byte // its literal prefix, a cheap filter; set by loadTables
	// ops, when set, restricts the entry to these operations ("" = unknown).
	ops     []string
	meaning string
	// option is the CRIU option that fixes it, value its value ("" for a
	// switch); fix.go writes them as config, annotation and command-line
	// fixes for the engine in use.
	option, value string
	fixes         []fixTemplate
	// derive adds computed variables (a suggested ghost-limit).
	derive func(vars map[string]string)
}

func (e *entry) alsoMatch(b []byte) bool {
	// The literal prefix is a cheap filter: also is tried on every line.
	if len(e.alsoLit) > 0 && !bytes.Contains(b, e.alsoLit) {
		return false
	}
	return e.also.Match(b)
}

// fixesFor renders the entry's fixes for engine, most general first.
func (e *entry) fixesFor(engine Engine, op string, vars map[string]string) []Fix {
	fixes := []Fix{}
	if e.option != "" {
		fixes = append(fixes, optionFix{e.option, e.value}.render(engine, op, vars)...)
	}
	for _, t := range e.fixes {
		if t.appliesTo(engine) {
			fixes = append(fixes, Fix{t.Scope, expand(t.Command, vars)})
		}
	}
	return fixes
}

// expand replaces {name} with vars[name]; unknown names stay as they are.
func expand(s string, vars map[string]string) string {
	if !strings.Contains(s, "{") {
		return s
	}
	var b strings.Builder
	for {
		i := strings.IndexByte(s, '{')
		j := strings.IndexByte(s[i+1:], '}')
		if i < 0 || j < 0 {
			break
		}
		name := s[i+1 : i+1+j]
		v, ok := vars[name]
		if !ok {
			v = "{" + name + "}"
		}
		b.WriteString(s[:i])
		b.WriteString(v)
		s = s[i+j+2:]
	}
	b.WriteString(s)
	return b.String()
}
