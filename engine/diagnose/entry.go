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
	// switch); they give the config, annotation and command-line fixes.
	option, value string
	// podmanFlag: podman container checkpoint and restore take --option.
	podmanFlag bool
	fixes      []fixTemplate
	// derive adds computed variables (a suggested ghost-limit).
	derive func(vars map[string]string)
}

type when uint8

const (
	always     when = iota
	podmanOnly      // CRIU ran for a container runtime
	criuOnly        // plain criu command line
)

type fixTemplate struct {
	Scope, Command string
	when           when
}

func (e *entry) alsoMatch(b []byte) bool {
	// The literal prefix is a cheap filter: also is tried on every line.
	if len(e.alsoLit) > 0 && !bytes.Contains(b, e.alsoLit) {
		return false
	}
	return e.also.Match(b)
}

// fixesFor renders the entry's fixes for the podman path or the plain criu
// command line, most general first.
func (e *entry) fixesFor(podman bool, op string, vars map[string]string) []Fix {
	fixes := []Fix{}
	if e.option != "" {
		value := expand(e.value, vars)
		set, ann, flag := e.option, e.option+"=true", "--"+e.option
		if value != "" {
			set, ann, flag = e.option+" "+value, e.option+"="+value, flag+" "+value
		}
		// crhook config set writes /etc/criu/default.conf, which plain
		// criu reads as well, so it is offered on both paths.
		fixes = append(fixes, Fix{ScopeAll, "crhook config set " + set})
		if podman {
			fixes = append(fixes, Fix{ScopeContainer, "podman run --annotation io.crhook.criu." + ann + " ..."})
			if e.podmanFlag && op != OpPreDump {
				fixes = append(fixes, Fix{ScopeThisTime, "podman container " + vars["podman_op"] + " " + flag + " " + vars["container"]})
			}
		} else {
			fixes = append(fixes, Fix{ScopeThisTime, "criu " + vars["op"] + " " + flag + " ..."})
		}
	}
	for _, t := range e.fixes {
		if t.when == podmanOnly && !podman || t.when == criuOnly && podman {
			continue
		}
		fixes = append(fixes, Fix{t.Scope, expand(t.Command, vars)})
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
