package criuopt

import (
	"sort"
	"sync"
)

// ArgKind says whether an option takes a value, as getopt_long's has_arg does.
type ArgKind uint8

const (
	NoArg ArgKind = iota
	RequiredArg
	// OptionalArg options take a value only as NAME=VALUE (getopt never
	// consumes the next word for them), so "manage-cgroups soft" on a config
	// line leaves "soft" as a stray word that CRIU silently ignores.
	OptionalArg
)

// ValueType is how crhook validates a value before it writes it.
type ValueType uint8

const (
	TypeNone ValueType = iota
	TypeString
	TypeInt
	TypeSize // a byte count with an optional K, M or G suffix (CRIU's parse_size)
	TypePath
	TypeEnum
)

func (t ValueType) String() string {
	return [...]string{"none", "string", "integer", "size", "path", "enum"}[t]
}

// Option describes one long option of CRIU 4.2.1 (criu/config.c long_opts).
type Option struct {
	Name string
	Arg  ArgKind
	// Negatable options come from CRIU's BOOL_OPT and have a "no-NAME" form.
	Negatable bool
	// Repeatable options accumulate across lines and layers; others: last wins.
	Repeatable bool
	Type       ValueType
	Enum       []string
	// Owned options are set by the runtime for each operation (paths, pids,
	// detaching); a layer that sets them would break podman, so the resolver
	// drops them from the container path with a warning.
	Owned bool
	// Unsafe options run code or write files chosen by whoever sets them;
	// they are never accepted from annotations whatever the allow-list says.
	Unsafe bool
}

// IsBool reports whether the option is an on/off switch.
func (o *Option) IsBool() bool { return o.Arg == NoArg }

var (
	manageCgroupsModes = []string{"none", "props", "soft", "full", "strict", "ignore"}
	networkLockMethods = []string{"iptables", "nftables", "skip", "none"}
)

// catalog lists every long option of CRIU 4.2.1 in long_opts order.
// TestCatalogMatchesCRIU compares it with the CRIU source and binary.
var catalog = []Option{
	{Name: "tree", Arg: RequiredArg, Type: TypeInt, Owned: true},
	{Name: "leave-stopped", Owned: true},
	{Name: "leave-running", Owned: true},
	{Name: "restore-detached", Negatable: true, Owned: true},
	{Name: "restore-sibling", Negatable: true, Owned: true},
	{Name: "daemon", Negatable: true, Owned: true},
	{Name: "images-dir", Arg: RequiredArg, Type: TypePath, Owned: true},
	{Name: "work-dir", Arg: RequiredArg, Type: TypePath, Owned: true},
	{Name: "log-file", Arg: RequiredArg, Type: TypePath, Owned: true},
	{Name: "join-ns", Arg: RequiredArg, Type: TypeString, Repeatable: true, Unsafe: true},
	{Name: "root", Arg: RequiredArg, Type: TypePath, Owned: true},
	{Name: "ext-unix-sk", Arg: OptionalArg, Type: TypeString, Repeatable: true},
	{Name: "help", Owned: true},
	{Name: "tcp-established", Negatable: true},
	{Name: "close", Arg: RequiredArg, Type: TypeInt, Owned: true},
	{Name: "log-pid", Negatable: true, Owned: true},
	{Name: "version", Owned: true},
	{Name: "evasive-devices", Negatable: true},
	{Name: "pidfile", Arg: RequiredArg, Type: TypePath, Owned: true},
	{Name: "veth-pair", Arg: RequiredArg, Type: TypeString, Repeatable: true, Unsafe: true},
	{Name: "action-script", Arg: RequiredArg, Type: TypePath, Repeatable: true, Unsafe: true},
	{Name: "link-remap", Negatable: true},
	{Name: "shell-job", Negatable: true},
	{Name: "file-locks", Negatable: true},
	{Name: "page-server", Negatable: true, Owned: true},
	{Name: "address", Arg: RequiredArg, Type: TypeString, Owned: true},
	{Name: "port", Arg: RequiredArg, Type: TypeInt, Owned: true},
	{Name: "prev-images-dir", Arg: RequiredArg, Type: TypePath, Owned: true},
	{Name: "ms", Owned: true},
	{Name: "track-mem", Negatable: true, Owned: true},
	{Name: "auto-dedup", Negatable: true},
	{Name: "libdir", Arg: RequiredArg, Type: TypePath, Unsafe: true},
	{Name: "cpu-cap", Arg: OptionalArg, Type: TypeString},
	{Name: "force-irmap", Negatable: true},
	{Name: "ext-mount-map", Arg: RequiredArg, Type: TypeString, Repeatable: true, Unsafe: true},
	{Name: "exec-cmd", Owned: true},
	{Name: "manage-cgroups", Arg: OptionalArg, Type: TypeEnum, Enum: manageCgroupsModes},
	{Name: "cgroup-root", Arg: RequiredArg, Type: TypeString, Repeatable: true, Unsafe: true},
	{Name: "inherit-fd", Arg: RequiredArg, Type: TypeString, Repeatable: true, Owned: true},
	{Name: "feature", Arg: RequiredArg, Type: TypeString, Owned: true},
	{Name: "skip-mnt", Arg: RequiredArg, Type: TypePath, Repeatable: true, Unsafe: true},
	{Name: "enable-fs", Arg: RequiredArg, Type: TypeString, Repeatable: true},
	{Name: "enable-external-sharing"},
	{Name: "enable-external-masters"},
	{Name: "freeze-cgroup", Arg: RequiredArg, Type: TypePath, Owned: true},
	{Name: "ghost-limit", Arg: RequiredArg, Type: TypeSize},
	{Name: "irmap-scan-path", Arg: RequiredArg, Type: TypePath, Repeatable: true, Unsafe: true},
	{Name: "lsm-profile", Arg: RequiredArg, Type: TypeString, Unsafe: true},
	{Name: "timeout", Arg: RequiredArg, Type: TypeInt},
	{Name: "external", Arg: RequiredArg, Type: TypeString, Repeatable: true, Unsafe: true},
	{Name: "empty-ns", Arg: RequiredArg, Type: TypeEnum, Enum: []string{"net"}, Owned: true},
	{Name: "lazy-pages", Owned: true},
	{Name: "extra", Negatable: true},
	{Name: "experimental", Negatable: true},
	{Name: "all"},
	{Name: "cgroup-props", Arg: RequiredArg, Type: TypeString, Unsafe: true},
	{Name: "cgroup-props-file", Arg: RequiredArg, Type: TypePath, Unsafe: true},
	{Name: "cgroup-dump-controller", Arg: RequiredArg, Type: TypeString, Repeatable: true},
	{Name: "skip-in-flight", Negatable: true},
	{Name: "deprecated", Negatable: true},
	{Name: "display-stats", Negatable: true},
	{Name: "weak-sysctls", Negatable: true},
	{Name: "status-fd", Arg: RequiredArg, Type: TypeInt, Owned: true},
	{Name: "tcp-close", Negatable: true},
	{Name: "verbosity", Arg: OptionalArg, Type: TypeInt},
	{Name: "ps-socket", Arg: RequiredArg, Type: TypeInt, Owned: true},
	{Name: "stream", Negatable: true, Owned: true},
	{Name: "config", Arg: RequiredArg, Type: TypePath, Owned: true},
	{Name: "no-default-config", Owned: true},
	{Name: "tls-cacert", Arg: RequiredArg, Type: TypePath, Unsafe: true},
	{Name: "tls-cacrl", Arg: RequiredArg, Type: TypePath, Unsafe: true},
	{Name: "tls-cert", Arg: RequiredArg, Type: TypePath, Unsafe: true},
	{Name: "tls-key", Arg: RequiredArg, Type: TypePath, Unsafe: true},
	{Name: "tls", Negatable: true},
	{Name: "tls-no-cn-verify"},
	{Name: "cgroup-yard", Arg: RequiredArg, Type: TypePath, Unsafe: true},
	{Name: "pre-dump-mode", Arg: RequiredArg, Type: TypeEnum, Enum: []string{"splice", "read"}},
	{Name: "file-validation", Arg: RequiredArg, Type: TypeEnum, Enum: []string{"filesize", "buildid"}},
	{Name: "skip-file-rwx-check", Negatable: true},
	{Name: "lsm-mount-context", Arg: RequiredArg, Type: TypeString, Unsafe: true},
	{Name: "network-lock", Arg: RequiredArg, Type: TypeEnum, Enum: networkLockMethods},
	{Name: "mntns-compat-mode", Negatable: true},
	{Name: "unprivileged", Negatable: true},
	{Name: "ghost-fiemap", Negatable: true},
	{Name: "allow-uprobes", Negatable: true},
}

// byName is built on first use: crhook-runtime links this package and
// every init costs each call podman makes to it.
var byName = sync.OnceValue(func() map[string]*Option {
	m := make(map[string]*Option, len(catalog))
	for i := range catalog {
		m[catalog[i].Name] = &catalog[i]
	}
	return m
})

// Lookup finds an option by its exact name. A "no-NAME" form of a negatable
// option returns that option with negated set.
func Lookup(name string) (opt *Option, negated bool, ok bool) {
	if o, found := byName()[name]; found {
		return o, false, true
	}
	if base, found := byName()[trimNo(name)]; found && base.Negatable && base.Name != name {
		return base, true, true
	}
	return nil, false, false
}

func trimNo(name string) string {
	if len(name) > 3 && name[:3] == "no-" {
		return name[3:]
	}
	return name
}

// Options returns the catalog sorted by name.
func Options() []Option {
	out := append([]Option(nil), catalog...)
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// longNames lists every name getopt_long knows, "no-" forms included, in
// CRIU's long_opts order; abbreviation matching depends on that order.
func longNames() []string {
	names := make([]string, 0, len(catalog)*2)
	for _, o := range catalog {
		names = append(names, o.Name)
		if o.Negatable {
			names = append(names, "no-"+o.Name)
		}
	}
	return names
}
