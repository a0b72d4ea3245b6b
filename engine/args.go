package engine

import "strings"

// globalValueFlag reports the global flags of runc and crun that take a
// value as the next word; every other global flag is a switch or uses "=".
// A switch, not a map: a package-level map is built at init, on every
// runtime call, pass-through included.
func globalValueFlag(a string) bool {
	switch a {
	case "--root", "--log", "--log-format", "--criu", "--rootless", "--cgroup-manager", "--log-level":
		return true
	}
	return false
}

// invocation is a runtime command line split the way runc reads it. It
// reads flags as podman passed them, and adds the ones crhook's typed
// options turn into (AddFlags), so that the command line handed to the
// runtime is built in one place.
type invocation struct {
	args   []string // everything after argv[0]: as given, plus AddFlags
	global []string // global flags before the subcommand
	cmd    string   // the subcommand; "" for e.g. --version
	rest   []string // the subcommand's own arguments
}

// parseArgs finds the subcommand among the global flags. It never fails:
// anything it does not understand is passed through to the runtime as is.
func parseArgs(args []string) invocation {
	inv := invocation{args: args}
	for i := 0; i < len(args); i++ {
		a := args[i]
		if !strings.HasPrefix(a, "-") {
			inv.global, inv.cmd, inv.rest = args[:i:i], a, args[i+1:] // capped: appending to global keeps cmd
			return inv
		}
		if globalValueFlag(a) {
			i++
		}
	}
	inv.global = args
	return inv
}

// AddFlags inserts subcommand flags before the container ID, where runc
// and crun read them (their flag parsers stop at the first operand), as if
// the caller had passed them: e.g. the flags of a typed CriuOpts. Without
// a subcommand there is nothing to add them to, and nothing changes.
func (inv *invocation) AddFlags(flags ...string) {
	if len(flags) == 0 || inv.cmd == "" {
		return
	}
	rest := make([]string, 0, len(inv.rest)+len(flags))
	if n := len(inv.rest); n > 0 {
		rest = append(append(append(rest, inv.rest[:n-1]...), flags...), inv.rest[n-1])
	} else {
		rest = append(rest, flags...)
	}
	g := len(inv.global)
	args := make([]string, 0, g+1+len(rest))
	args = append(append(append(args, inv.global...), inv.cmd), rest...)
	inv.args, inv.global, inv.rest = args, args[:g:g], args[g+1:]
}

// flag returns the value of a subcommand flag given as "--name V",
// "--name=V" or, for names in short, "-s V".
func (inv invocation) flag(name, short string) string {
	for i, a := range inv.rest {
		switch {
		case (a == name || a == "-"+name[2:] || (short != "" && a == short)) && i+1 < len(inv.rest):
			return inv.rest[i+1]
		case strings.HasPrefix(a, name+"="):
			return a[len(name)+1:]
		}
	}
	return ""
}

// hasFlag reports whether a subcommand switch is present.
func (inv invocation) hasFlag(name string) bool {
	for _, a := range inv.rest {
		if a == name || a == "-"+name[2:] || a == name+"=true" {
			return true
		}
	}
	return false
}

// containerID is the last argument: podman and conmon always put the
// container ID after the subcommand's flags.
func (inv invocation) containerID() string {
	if len(inv.rest) == 0 {
		return ""
	}
	return inv.rest[len(inv.rest)-1]
}

// wantsHelp reports a --help or -h among the subcommand's arguments.
func (inv invocation) wantsHelp() bool {
	for _, a := range inv.rest {
		if a == "--help" || a == "-h" {
			return true
		}
	}
	return false
}

// globalFlag returns a global flag's value ("--root V" or "--root=V"), or def.
func (inv invocation) globalFlag(name, def string) string {
	for i, a := range inv.global {
		switch {
		case a == name && i+1 < len(inv.global):
			return inv.global[i+1]
		case strings.HasPrefix(a, name+"="):
			return a[len(name)+1:]
		}
	}
	return def
}
