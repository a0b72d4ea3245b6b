package criuopt

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
)

// valueError is a rejected value: what is wrong and what to write instead.
type valueError struct{ detail, hint string }

func (e *valueError) Error() string { return e.detail }

func badValue(hint, format string, args ...any) *valueError {
	return &valueError{detail: fmt.Sprintf(format, args...), hint: hint}
}

// applyOptions runs getopt over a file's words and, for each option, the
// check of CRIU's parse_options switch that makes it fail.
func applyOptions(words []argWord) ([]Statement, *FileError) {
	g := getopt{argv: words}
	var out []Statement
	for {
		o, ok, err := g.next()
		if err != nil {
			return nil, err
		}
		if !ok {
			return out, nil
		}
		opt, neg, _ := Lookup(o.name)
		if check := criuCheckFor(opt); check != nil && !neg {
			if verr := check(o.arg, o.hasArg); verr != nil {
				at := o.at
				if o.hasArg {
					at = o.argAt
				}
				return nil, &FileError{Line: at.line, Col: at.col,
					Err:  fmt.Errorf("%w: %s %q: %s", ErrInvalidValue, opt.Name, o.arg, verr.detail),
					Hint: verr.hint}
			}
		}
		out = append(out, Statement{Option: opt, Negated: neg, Value: o.arg, HasValue: o.hasArg,
			Line: o.at.line, Col: o.at.col})
		// CRIU prints its version or help and exits 0 right there.
		if opt.Name == "version" || opt.Name == "help" {
			return out, nil
		}
	}
}

// Check is the one place that decides whether an option takes a value and
// whether a value is valid: the editor (crhook config set) and the
// annotation layer both ask it. negated is the "no-" form; value "" means
// none. It returns the statement that sets it, or an error wrapping
// ErrInvalidValue that says what to write instead.
func Check(opt *Option, negated bool, value string) (Statement, error) {
	st := Statement{Option: opt, Negated: negated, Value: value, HasValue: value != ""}
	name := st.Name()
	switch {
	case negated && value != "":
		return st, fmt.Errorf("%w: %s takes no value (it switches %s off)", ErrInvalidValue, name, opt.Name)
	case opt.Arg == NoArg && value != "":
		hint := ""
		if opt.Negatable {
			hint = fmt.Sprintf("; to turn it off set no-%s", opt.Name)
		}
		return st, fmt.Errorf("%w: %s is a switch and takes no value%s", ErrInvalidValue, name, hint)
	case opt.Arg == RequiredArg && value == "":
		kind := opt.Type.String()
		if len(opt.Enum) > 0 {
			kind = "one of " + strings.Join(opt.Enum, ", ")
		}
		return st, fmt.Errorf("%w: %s needs a value (%s)", ErrInvalidValue, name, kind)
	case strings.ContainsAny(value, "\n\x00"):
		// CRIU reads the file line by line with C strings: neither fits.
		return st, fmt.Errorf("%w: a value cannot contain a newline or NUL byte", ErrInvalidValue)
	}
	if value != "" {
		if err := checkValue(opt, value); err != nil {
			return st, err
		}
	}
	// The parser also knows what CRIU refuses in a file whatever the value
	// (deprecated switches such as ms, getopt corner cases): the canonical
	// line must pass it before anything is written.
	if _, err := Parse("", []byte(Format(st)+"\n")); err != nil {
		var fe *FileError
		if errors.As(err, &fe) {
			if fe.Hint != "" {
				return st, fmt.Errorf("%w (%s)", fe.Err, fe.Hint)
			}
			return st, fe.Err
		}
		return st, err
	}
	return st, nil
}

// ValidateValue is Check for a value alone: crhook's check before it
// writes one, stricter than CRIU (which takes "ghost-limit banana" as 0).
// It also rejects what CRIU would reject and values that cannot be
// written in CRIU's file syntax so that they read back unchanged. For an
// option with an optional value, "" means no value.
func ValidateValue(opt *Option, value string) error {
	if opt == nil {
		return fmt.Errorf("%w: no option", ErrInvalidValue)
	}
	_, err := Check(opt, false, value)
	return err
}

// checkValue is Check's test of a value the option takes, as an error.
func checkValue(opt *Option, value string) error {
	if ve := validateValue(opt, value); ve != nil {
		if ve.hint != "" {
			return fmt.Errorf("%w: %s %q: %s (%s)", ErrInvalidValue, opt.Name, value, ve.detail, ve.hint)
		}
		return fmt.Errorf("%w: %s %q: %s", ErrInvalidValue, opt.Name, value, ve.detail)
	}
	return nil
}

// validateValue checks a value of an option that takes one (Check has
// settled that): its type, CRIU's own check of it, and that its line
// reads back as the same value.
func validateValue(opt *Option, value string) *valueError {
	switch opt.Type {
	case TypeInt:
		n, err := strconv.ParseInt(value, 10, 32)
		if err != nil {
			return badValue("write a decimal number", "not an integer")
		}
		if lo, found := intMin(opt.Name); found && n < lo || opt.Name == "port" && n > 65535 {
			return badValue(fmt.Sprintf("use a number from %d", lo), "out of range")
		}
	case TypeSize:
		digits := strings.TrimRight(value, "KMG")
		if len(value)-len(digits) > 1 || digits == "" || strings.Trim(digits, "0123456789") != "" {
			return badValue("write a byte count with an optional K, M or G suffix, e.g. 10M", "not a size")
		}
	}
	// Enums are checked here too, from the catalog's list (criuCheckFor).
	if check := criuCheckFor(opt); check != nil {
		if err := check(value, true); err != nil {
			return err
		}
	}
	st := Statement{Option: opt, Value: value, HasValue: true}
	got, ub, err := parse("", []byte(Format(st)+"\n"))
	if err != nil || ub || len(got) != 1 || got[0].Value != value || got[0].Option.Name != opt.Name {
		return badValue("avoid combining spaces with '#', a trailing backslash or a literal \\\"",
			"CRIU's config syntax cannot express this value")
	}
	return nil
}

// intMin is the least value crhook accepts for integer options.
func intMin(name string) (int64, bool) {
	switch name {
	case "tree", "port":
		return 1, true
	case "close", "timeout", "status-fd", "ps-socket", "verbosity":
		return 0, true
	}
	return 0, false
}

// criuCheck mirrors one case of parse_options' switch: a non-nil result
// means CRIU exits non-zero on that value. hasArg is false for an optional
// value that was not given.
type criuCheck func(arg string, hasArg bool) *valueError

// criuChecks holds the cases that can fail, by option name (short options
// map to the same names). Checks that depend on the host (does the join-ns
// file or pid exist, is the inherit-fd descriptor open, does the macvlan
// interface exist) are left to CRIU: the file may be used elsewhere.
var criuChecks = sync.OnceValue(func() map[string]criuCheck {
	return map[string]criuCheck{
		"tree": func(a string, _ bool) *valueError {
			if cAtoi(a) <= 0 {
				return badValue("give the pid of the tree's root task", "not a positive pid")
			}
			return nil
		},
		"port": func(a string, _ bool) *valueError {
			if cAtoi(a) == 0 {
				return badValue("give a port number from 1 to 65535", "not a port")
			}
			return nil
		},
		"ms": func(string, bool) *valueError {
			return badValue(`remove it; see "Check options" of criu --help`, "--ms is deprecated and CRIU refuses it")
		},
		"veth-pair": func(a string, _ bool) *valueError {
			if !strings.Contains(a, "=") {
				return badValue("write IN=OUT", "no '='")
			}
			return nil
		},
		"ext-mount-map": func(a string, _ bool) *valueError {
			if a == "auto" {
				return nil
			}
			key, val, ok := strings.Cut(a, ":")
			if !ok {
				return badValue("write KEY:VALUE or auto", "no ':'")
			}
			if key == "" {
				return checkExternal("mnt[]:" + val)
			}
			return nil
		},
		"external": func(a string, _ bool) *valueError { return checkExternal(a) },
		"status-fd": func(a string, _ bool) *valueError {
			if _, ok := cScanInt(a); !ok {
				return badValue("give a file descriptor number", "not a number")
			}
			return nil
		},
		"feature": func(a string, _ bool) *valueError {
			for _, f := range criuFeatures() {
				if f == a {
					return nil
				}
			}
			return badValue("see criu check --help for the feature names", "unknown feature")
		},
		"cpu-cap":     checkCPUCap,
		"ext-unix-sk": checkUnixInodes,
		"inherit-fd":  checkInheritFd,
		"join-ns":     checkJoinNS,
	}
})

// criuCheckFor is the check of opt's case in parse_options: its entry in
// criuChecks, else for an enum option (empty-ns, manage-cgroups,
// network-lock, pre-dump-mode, file-validation) a lookup in the catalog's
// Enum, the one list of its values. An optional enum value may be absent.
func criuCheckFor(opt *Option) criuCheck {
	if check := criuChecks()[opt.Name]; check != nil {
		return check
	}
	if opt.Type != TypeEnum {
		return nil
	}
	return func(a string, has bool) *valueError {
		if !has {
			return nil
		}
		for _, v := range opt.Enum {
			if a == v {
				return nil
			}
		}
		return badValue("use one of: "+strings.Join(opt.Enum, ", "), "unknown value")
	}
}

// criuFeatures is feature_list of criu/cr-check.c (4.2.1).
var criuFeatures = sync.OnceValue(func() []string {
	return strings.Fields(`mnt_id mem_dirty_track aio_remap timerfd tun
	tun_ns userns fdinfo_lock seccomp_suspend seccomp_filters loginuid cgroupns
	autofs tcp_half_closed compat_cr uffd uffd-noncoop can_map_vdso sk_ns
	sk_unix_file net_diag_raw nsid link_nsid kcmp_epoll timens external_net_ns
	clone3_set_tid newifindex nftables has_ipt_legacy pidfd_store ns_pid
	apparmor_stacking network_lock_nftables sockopt_buf_lock memfd_hugetlb
	move_mount_set_group openat2 get_rseq_conf ipv6_freebind pagemap_scan
	timer_cr_ids overlayfs_maps breakpoints pagemap_scan_guard_pages`)
})

// checkExternal is add_external: "mnt[]" takes ":m", ":s" or nothing after a
// colon, and a "macvlan" entry without "[..]:" makes CRIU dereference NULL.
func checkExternal(a string) *valueError {
	if rest, ok := strings.CutPrefix(a, "mnt[]"); ok {
		if len(rest) > 1 && rest[0] == ':' && rest[1] != 'm' && rest[1] != 's' {
			return badValue("after mnt[]: use m (masters) or s (sharing)", "unknown auto-detection flag")
		}
		return nil
	}
	if strings.HasPrefix(a, "macvlan") {
		_, after, ok := strings.Cut(a, "[")
		if ok {
			_, after, ok = strings.Cut(after, "]")
		}
		if !ok || !strings.HasPrefix(after, ":") {
			return badValue("write macvlan[NAME]:IFACE", "macvlan entry without an interface (CRIU crashes on it)")
		}
	}
	return nil
}

// checkCPUCap is parse_cpu_cap: comma-separated fpu, all, none, cpu, ins,
// each optionally inverted by '^'; CRIU matches prefixes, so "fpux" fails on
// the "x".
func checkCPUCap(a string, _ bool) *valueError {
	for a != "" {
		switch {
		case a[0] == '^' || a[0] == ',':
			a = a[1:]
		case strings.HasPrefix(a, "none"):
			a = a[4:]
		case strings.HasPrefix(a, "fpu"), strings.HasPrefix(a, "all"),
			strings.HasPrefix(a, "cpu"), strings.HasPrefix(a, "ins"):
			a = a[3:]
		default:
			return badValue("use fpu, cpu, ins, all or none, comma-separated", "unknown FPU mode")
		}
	}
	return nil
}

// checkUnixInodes is unix_sk_ids_parse: comma-separated inode numbers read
// with strtoul, each non-zero as an unsigned int.
func checkUnixInodes(a string, has bool) *valueError {
	for has && a != "" {
		if a[0] == ',' {
			a = a[1:]
			continue
		}
		n, rest := cStrtoul(a)
		if uint32(n) == 0 {
			return badValue("give socket inode numbers separated by commas", "not an inode number")
		}
		a = rest
	}
	return nil
}

// checkInheritFd is inherit_fd_parse: fd[N]:ID or debug[N]:TEXT with N >= 0
// and something after the first colon.
func checkInheritFd(a string, _ bool) *valueError {
	rest, ok := strings.CutPrefix(a, "fd")
	if !ok {
		rest, ok = strings.CutPrefix(a, "debug")
	}
	fd, scanned := 0, false
	if ok && strings.HasPrefix(rest, "[") {
		fd, scanned = cScanInt(rest[1:])
	}
	_, id, colon := strings.Cut(a, ":")
	if !scanned || fd < 0 || !colon || id == "" {
		return badValue("write fd[N]:ID", "not an inherit-fd argument")
	}
	return nil
}

// checkJoinNS is parse_join_ns and the host-independent part of
// join_ns_add: NS:FILE[,EXTRA], FILE a path or a pid, NS one of net, uts,
// time, ipc, user, mnt; for user, EXTRA is UID[,GID].
func checkJoinNS(a string, _ bool) *valueError {
	ns, file, ok := strings.Cut(a, ":")
	if !ok {
		return badValue("write NS:FILE, e.g. net:/run/netns/x", "no ':'")
	}
	file, extra, hasExtra := strings.Cut(file, ",")
	if isIntStr(file) && cAtoi(file) <= 0 {
		return badValue("give a positive pid or a namespace file", "invalid pid")
	}
	switch ns {
	case "net", "uts", "time", "ipc", "mnt":
	case "user":
		if hasExtra {
			uid, gid, hasGid := strings.Cut(extra, ",")
			if !isIntStr(uid) || hasGid && !isIntStr(gid) {
				return badValue("write user:FILE,UID,GID with ids from 0 to 65535", "invalid uid or gid")
			}
		}
	default:
		return badValue("use net, uts, time, ipc, user or mnt", "unsupported namespace type")
	}
	return nil
}

// The C library conversions CRIU uses, with glibc's edge cases: leading
// whitespace and a sign are accepted, overflow saturates, and the result is
// truncated to the C type.

// cStrto parses like strtol/strtoul in base 10 without the final cast:
// neg, the magnitude (saturated to 2^64-1), the unparsed rest, and whether
// any digit was read (if not, rest is the whole input, as endptr is).
func cStrto(s string) (neg bool, mag uint64, overflow bool, rest string, digits bool) {
	i := 0
	for i < len(s) && isSpace(s[i]) {
		i++
	}
	if i < len(s) && (s[i] == '+' || s[i] == '-') {
		neg = s[i] == '-'
		i++
	}
	start := i
	for ; i < len(s) && s[i] >= '0' && s[i] <= '9'; i++ {
		d := uint64(s[i] - '0')
		if mag > (^uint64(0)-d)/10 {
			overflow = true
		}
		mag = mag*10 + d
	}
	if i == start {
		return false, 0, false, s, false
	}
	return neg, mag, overflow, s[i:], true
}

// cStrtol is strtol(s, &end, 10).
func cStrtol(s string) (v int64, rest string, digits, erange bool) {
	neg, mag, of, rest, digits := cStrto(s)
	switch {
	case neg && (of || mag > 1<<63):
		return -1 << 63, rest, digits, true
	case !neg && (of || mag > 1<<63-1):
		return 1<<63 - 1, rest, digits, true
	case neg:
		return -int64(mag), rest, digits, false
	}
	return int64(mag), rest, digits, false
}

// cStrtoul is strtoul(s, &end, 10): a '-' negates modulo 2^64.
func cStrtoul(s string) (uint64, string) {
	neg, mag, of, rest, _ := cStrto(s)
	if of {
		return ^uint64(0), rest
	}
	if neg {
		return -mag, rest
	}
	return mag, rest
}

// cAtoi is glibc's atoi: (int)strtol(s, NULL, 10).
func cAtoi(s string) int32 {
	v, _, _, _ := cStrtol(s)
	return int32(v)
}

// cScanInt is sscanf(s, "%d", &n) == 1.
func cScanInt(s string) (int, bool) {
	v, _, digits, _ := cStrtol(s)
	return int(int32(v)), digits
}

// isIntStr is check_int_str of criu/namespaces.c: empty, or a whole
// decimal number from 0 to 65535.
func isIntStr(s string) bool {
	if s == "" {
		return true
	}
	v, rest, digits, erange := cStrtol(s)
	return digits && !erange && rest == "" && v >= 0 && v <= 65535
}
