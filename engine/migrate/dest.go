package migrate

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/BurntSushi/toml"
)

// Destination is the host a container migrates to, reached over ssh as
// `podman image scp` and podman's remote connections reach it.
type Destination struct {
	// Connection is the podman system connection it came from; empty
	// when it was given as ssh://….
	Connection string `json:"connection,omitempty"`
	User       string `json:"user,omitempty"`
	Host       string `json:"host"`
	Port       int    `json:"port"`
	// Identity is the ssh key the connection names, if any.
	Identity string `json:"identity,omitempty"`
	// Socket is the URI's path: podman's API socket on that host. crhook
	// does not use it (it runs crhook over ssh) but keeps it for messages.
	Socket string `json:"socket,omitempty"`
	// From says where it was found: "command line" or the file that
	// defines the connection.
	From string `json:"from"`
}

// SSHArgs are the ssh options and destination for d, ending with "--"
// and the host so nothing after can be read as an option; append the
// remote command.
func (d Destination) SSHArgs() []string {
	args := []string{"-p", strconv.Itoa(d.Port)}
	if d.Identity != "" {
		args = append(args, "-i", d.Identity, "-o", "IdentitiesOnly=yes")
	}
	if d.User != "" {
		args = append(args, "-l", d.User)
	}
	return append(args, "--", d.Host)
}

// String is the destination as an ssh:// URL, with the connection name.
func (d Destination) String() string {
	u := url.URL{Scheme: "ssh", Host: d.Host}
	if strings.Contains(d.Host, ":") {
		u.Host = "[" + d.Host + "]"
	}
	u.Host += ":" + strconv.Itoa(d.Port)
	if d.User != "" {
		u.User = url.User(d.User)
	}
	if d.Connection != "" {
		return fmt.Sprintf("%s (%s)", u.String(), d.Connection)
	}
	return u.String()
}

// ConnectionSearch is where podman keeps its system connections, as the
// podman that runs crhook would read them. Tests build the tree under a
// temporary directory.
type ConnectionSearch struct {
	// ContainersConf are containers.conf files and drop-in directories
	// (their *.conf files, in lexical order) in podman's load order: a
	// later file's [engine.service_destinations.NAME] replaces an
	// earlier one's. Missing files and directories are skipped.
	ContainersConf []string
	// ConnectionsJSON is podman 5's podman-connections.json; its
	// connections win over containers.conf's, as in podman.
	ConnectionsJSON string
}

// PodmanConnectionSearch is the search podman 4 and 5 use for the user
// uid with home directory home: $CONTAINERS_CONF alone when set, else
// the system files, and for a user other than root their own files;
// podman-connections.json from $PODMAN_CONNECTIONS_CONF, else next to
// the user's containers.conf (/etc/containers for root).
func PodmanConnectionSearch(getenv func(string) string, uid int, home string) ConnectionSearch {
	userDir := "/etc/containers"
	if uid != 0 {
		cfg := getenv("XDG_CONFIG_HOME")
		if cfg == "" {
			cfg = filepath.Join(home, ".config")
		}
		userDir = filepath.Join(cfg, "containers")
	}
	var s ConnectionSearch
	if env := getenv("CONTAINERS_CONF"); env != "" {
		s.ContainersConf = []string{env}
	} else {
		s.ContainersConf = []string{
			"/usr/share/containers/containers.conf",
			"/etc/containers/containers.conf",
			"/etc/containers/containers.conf.d",
		}
		if uid != 0 {
			s.ContainersConf = append(s.ContainersConf,
				filepath.Join(userDir, "containers.conf"), filepath.Join(userDir, "containers.conf.d"))
		}
	}
	s.ConnectionsJSON = getenv("PODMAN_CONNECTIONS_CONF")
	if s.ConnectionsJSON == "" {
		s.ConnectionsJSON = filepath.Join(userDir, "podman-connections.json")
	}
	return s
}

// ParseDestination reads DESTINATION as `crhook migrate` takes it: an
// ssh://[user@]host[:port] URL, or the name of a podman system connection
// over ssh found through s.
func ParseDestination(arg string, s ConnectionSearch) (Destination, error) {
	if strings.Contains(arg, "://") {
		d, err := parseSSHURI(arg)
		if err != nil {
			return Destination{}, err
		}
		if d.Socket != "" {
			return Destination{}, fmt.Errorf("%w %q: a destination URL names a host, not a path (%q); use ssh://user@host[:port]",
				ErrDestination, arg, d.Socket)
		}
		d.From = "command line"
		return d, nil
	}
	if arg == "" {
		return Destination{}, fmt.Errorf("%w: empty; give ssh://user@host[:port] or a podman system connection name", ErrDestination)
	}
	if strings.Contains(arg, "@") {
		return Destination{}, fmt.Errorf("%w %q: not a podman connection name; for a host write ssh://%s", ErrDestination, arg, arg)
	}
	return s.Lookup(arg)
}

// rawConnection is a connection as podman stores it, in either file.
type rawConnection struct {
	URI      string `toml:"uri" json:"URI"`
	Identity string `toml:"identity" json:"Identity"`
}

// Lookup finds the podman system connection name.
func (s ConnectionSearch) Lookup(name string) (Destination, error) {
	conns, from, err := s.load()
	if err != nil {
		return Destination{}, err
	}
	c, ok := conns[name]
	if !ok {
		known := make([]string, 0, len(conns))
		for n := range conns {
			known = append(known, strconv.Quote(n))
		}
		slices.Sort(known)
		have := "none are defined"
		if len(known) > 0 {
			have = "known: " + strings.Join(known, ", ")
		}
		return Destination{}, fmt.Errorf("%w: no podman system connection %q (%s; searched %s and %s); add one with `podman system connection add` or give ssh://user@host[:port]",
			ErrDestination, name, have, strings.Join(s.ContainersConf, ", "), s.ConnectionsJSON)
	}
	d, err := parseSSHURI(c.URI)
	if err != nil {
		return Destination{}, fmt.Errorf("podman system connection %q in %s: %w", name, from[name], err)
	}
	d.Connection, d.Identity, d.From = name, c.Identity, from[name]
	return d, nil
}

// load reads every connection, later files winning, the JSON file last.
func (s ConnectionSearch) load() (map[string]rawConnection, map[string]string, error) {
	conns, from := map[string]rawConnection{}, map[string]string{}
	files, err := expandConfs(s.ContainersConf)
	if err != nil {
		return nil, nil, err
	}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, nil, fmt.Errorf("read podman connections from %s: %w", f, err)
		}
		// Only the keys crhook needs; the rest of containers.conf is
		// podman's to validate.
		var conf struct {
			Engine struct {
				ServiceDestinations map[string]rawConnection `toml:"service_destinations"`
			} `toml:"engine"`
		}
		if _, err := toml.Decode(string(data), &conf); err != nil {
			return nil, nil, fmt.Errorf("read podman connections from %s: %w", f, err)
		}
		for n, c := range conf.Engine.ServiceDestinations {
			conns[n], from[n] = c, f
		}
	}
	if s.ConnectionsJSON == "" {
		return conns, from, nil
	}
	data, err := os.ReadFile(s.ConnectionsJSON)
	if errors.Is(err, fs.ErrNotExist) {
		return conns, from, nil
	}
	if err != nil {
		return nil, nil, fmt.Errorf("read podman connections from %s: %w", s.ConnectionsJSON, err)
	}
	var file struct {
		Connection struct {
			Connections map[string]rawConnection `json:"Connections"`
		} `json:"Connection"`
	}
	if err := json.Unmarshal(data, &file); err != nil {
		return nil, nil, fmt.Errorf("read podman connections from %s: %w", s.ConnectionsJSON, err)
	}
	for n, c := range file.Connection.Connections {
		conns[n], from[n] = c, s.ConnectionsJSON
	}
	return conns, from, nil
}

// expandConfs replaces each directory by its *.conf files in lexical
// order, one level deep; a missing path is skipped.
func expandConfs(paths []string) ([]string, error) {
	var out []string
	for _, p := range paths {
		fi, err := os.Stat(p)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("read podman configuration %s: %w", p, err)
		}
		if !fi.IsDir() {
			out = append(out, p)
			continue
		}
		entries, err := os.ReadDir(p)
		if err != nil {
			return nil, fmt.Errorf("read podman drop-in directory %s: %w", p, err)
		}
		for _, e := range entries { // ReadDir sorts by name
			if !e.IsDir() && strings.HasSuffix(e.Name(), ".conf") {
				out = append(out, filepath.Join(p, e.Name()))
			}
		}
	}
	return out, nil
}

// parseSSHURI reads ssh://[user@]host[:port][/path]. Anything ssh could
// take for an option, and passwords, are refused.
func parseSSHURI(s string) (Destination, error) {
	u, err := url.Parse(s)
	if err != nil {
		return Destination{}, fmt.Errorf("%w %q: %w", ErrDestination, s, err)
	}
	if u.Scheme != "ssh" {
		return Destination{}, fmt.Errorf("%w %q: crhook migrate reaches the destination over ssh, not %s://", ErrDestination, s, u.Scheme)
	}
	if u.Opaque != "" || u.RawQuery != "" || u.Fragment != "" || u.ForceQuery {
		return Destination{}, fmt.Errorf("%w %q: want ssh://user@host[:port]", ErrDestination, s)
	}
	d := Destination{Host: u.Hostname(), Port: 22, Socket: strings.TrimSuffix(u.Path, "/")}
	if u.User != nil {
		if _, hasPassword := u.User.Password(); hasPassword {
			return Destination{}, fmt.Errorf("%w %q: has a password; use an ssh key or agent", ErrDestination, redact(u))
		}
		d.User = u.User.Username()
		if !safeSSHWord(d.User) {
			return Destination{}, fmt.Errorf("%w %q: user %q is not a user name", ErrDestination, s, d.User)
		}
	}
	if d.Host == "" || !safeSSHWord(d.Host) {
		return Destination{}, fmt.Errorf("%w %q: host %q is not a host name or address", ErrDestination, s, d.Host)
	}
	if p := u.Port(); p != "" {
		n, err := strconv.Atoi(p)
		if err != nil || n < 1 || n > 65535 {
			return Destination{}, fmt.Errorf("%w %q: port %q is not in 1..65535", ErrDestination, s, p)
		}
		d.Port = n
	} else if strings.HasSuffix(u.Host, ":") {
		return Destination{}, fmt.Errorf("%w %q: empty port", ErrDestination, s)
	}
	return d, nil
}

// safeSSHWord: non-empty, not an option, no blanks or controls.
func safeSSHWord(s string) bool {
	if s == "" || strings.HasPrefix(s, "-") {
		return false
	}
	for _, r := range s {
		if r <= ' ' || r == 0x7f {
			return false
		}
	}
	return true
}

func redact(u *url.URL) string {
	c := *u
	c.User = url.User(u.User.Username())
	return c.String()
}
