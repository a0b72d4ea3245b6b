package migrate

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestParseDestinationURL(t *testing.T) {
	tests := []struct {
		in   string
		want Destination
	}{
		{"ssh://root@10.250.13.2", Destination{User: "root", Host: "10.250.13.2", Port: 22, From: "command line"}},
		{"ssh://root@10.250.13.2:2222", Destination{User: "root", Host: "10.250.13.2", Port: 2222, From: "command line"}},
		{"ssh://host-b.example/", Destination{Host: "host-b.example", Port: 22, From: "command line"}},
		{"ssh://core@[fd00::2]:22", Destination{User: "core", Host: "fd00::2", Port: 22, From: "command line"}},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseDestination(tt.in, ConnectionSearch{})
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestParseDestinationRejects(t *testing.T) {
	tests := []struct{ in, msg string }{
		{"", "empty"},
		{"tcp://10.0.0.2:8080", "over ssh, not tcp://"},
		{"unix:///run/podman/podman.sock", "over ssh, not unix://"},
		{"ssh://", "host \"\""},
		{"ssh://root@", "host \"\""},
		{"ssh://-oProxyCommand=sh@x", "user \"-oProxyCommand=sh\""},
		{"ssh://root@-oProxyCommand=x", "host"},
		{"ssh://root:hunter2@host", "has a password"},
		{"ssh://root@host:0", "port \"0\""},
		{"ssh://root@host:70000", "port \"70000\""},
		{"ssh://root@host:", "empty port"},
		{"ssh://root@host:22/run/podman/podman.sock", "names a host, not a path"},
		{"ssh://root@host?x=1", "want ssh://user@host[:port]"},
		{"ssh://root@host#frag", "want ssh://user@host[:port]"},
		{"root@host-b", "for a host write ssh://root@host-b"},
		{"ssh://ro ot@host", "invalid"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			_, err := ParseDestination(tt.in, ConnectionSearch{})
			if !errors.Is(err, ErrDestination) {
				t.Fatalf("error %v, want ErrDestination", err)
			}
			if !strings.Contains(err.Error(), tt.msg) {
				t.Fatalf("error %q lacks %q", err, tt.msg)
			}
			if strings.Contains(err.Error(), "hunter2") {
				t.Fatalf("error shows the password: %q", err)
			}
		})
	}
}

func writeFile(t *testing.T, path, data string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestConnections builds podman's files under a temporary root: a
// drop-in replaces the system file's connection, podman-connections.json
// replaces both, and the rest of containers.conf is not ours to judge.
func TestConnections(t *testing.T) {
	root := t.TempDir()
	share := filepath.Join(root, "usr/share/containers/containers.conf")
	etc := filepath.Join(root, "etc/containers/containers.conf")
	dropins := filepath.Join(root, "etc/containers/containers.conf.d")
	conns := filepath.Join(root, "etc/containers/podman-connections.json")
	writeFile(t, share, `
[engine]
runtime = "crhook"
some_future_key = true
[engine.service_destinations.host-b]
uri = "ssh://root@10.250.13.2:22/run/podman/podman.sock"
identity = "/root/.ssh/old"
[engine.service_destinations.host-c]
uri = "ssh://core@host-c.example:2200/run/user/1000/podman/podman.sock"
[engine.service_destinations.local]
uri = "unix:///run/podman/podman.sock"
`)
	writeFile(t, filepath.Join(dropins, "10-b.conf"), `
[engine.service_destinations.host-b]
uri = "ssh://root@10.250.13.2:2222/run/podman/podman.sock"
identity = "/root/.ssh/id_b"
`)
	writeFile(t, filepath.Join(dropins, "20-ignored.txt"), `not toml at all [[[`)
	writeFile(t, conns, `{"Connection":{"Default":"host-d","Connections":{
		"host-c":{"URI":"ssh://core@host-c.example:22/run/podman/podman.sock","Identity":"/root/.ssh/id_c","IsMachine":false},
		"host-d":{"URI":"ssh://root@[fd00::4]/run/podman/podman.sock"}}},"Farm":{}}`)
	s := ConnectionSearch{ContainersConf: []string{share, etc, dropins}, ConnectionsJSON: conns}

	tests := []struct {
		name string
		want Destination
	}{
		{"host-b", Destination{Connection: "host-b", User: "root", Host: "10.250.13.2", Port: 2222, Identity: "/root/.ssh/id_b",
			Socket: "/run/podman/podman.sock", From: filepath.Join(dropins, "10-b.conf")}},
		{"host-c", Destination{Connection: "host-c", User: "core", Host: "host-c.example", Port: 22, Identity: "/root/.ssh/id_c",
			Socket: "/run/podman/podman.sock", From: conns}},
		{"host-d", Destination{Connection: "host-d", User: "root", Host: "fd00::4", Port: 22, Socket: "/run/podman/podman.sock", From: conns}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseDestination(tt.name, s)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("got  %+v\nwant %+v", got, tt.want)
			}
		})
	}

	_, err := ParseDestination("local", s)
	if !errors.Is(err, ErrDestination) || !strings.Contains(err.Error(), `connection "local" in `+share) || !strings.Contains(err.Error(), "not unix://") {
		t.Errorf("a unix connection: %v", err)
	}
	_, err = ParseDestination("host-x", s)
	if !errors.Is(err, ErrDestination) || !strings.Contains(err.Error(), `known: "host-b", "host-c", "host-d", "local"`) {
		t.Errorf("unknown connection: %v", err)
	}
	_, err = ParseDestination("host-x", ConnectionSearch{ContainersConf: []string{filepath.Join(root, "nowhere")}})
	if !errors.Is(err, ErrDestination) || !strings.Contains(err.Error(), "none are defined") {
		t.Errorf("no files at all: %v", err)
	}

	bad := filepath.Join(root, "bad.conf")
	writeFile(t, bad, "[engine\n")
	if _, err := ParseDestination("host-b", ConnectionSearch{ContainersConf: []string{bad}}); err == nil || !strings.Contains(err.Error(), bad) {
		t.Errorf("broken containers.conf not reported with its path: %v", err)
	}
	badJSON := filepath.Join(root, "bad.json")
	writeFile(t, badJSON, "{")
	if _, err := ParseDestination("host-b", ConnectionSearch{ConnectionsJSON: badJSON}); err == nil || !strings.Contains(err.Error(), badJSON) {
		t.Errorf("broken podman-connections.json not reported with its path: %v", err)
	}
}

func TestPodmanConnectionSearch(t *testing.T) {
	env := func(m map[string]string) func(string) string { return func(k string) string { return m[k] } }
	tests := []struct {
		name string
		env  map[string]string
		uid  int
		want ConnectionSearch
	}{
		{"root", nil, 0, ConnectionSearch{
			ContainersConf:  []string{"/usr/share/containers/containers.conf", "/etc/containers/containers.conf", "/etc/containers/containers.conf.d"},
			ConnectionsJSON: "/etc/containers/podman-connections.json"}},
		{"user", nil, 1000, ConnectionSearch{
			ContainersConf: []string{"/usr/share/containers/containers.conf", "/etc/containers/containers.conf", "/etc/containers/containers.conf.d",
				"/home/u/.config/containers/containers.conf", "/home/u/.config/containers/containers.conf.d"},
			ConnectionsJSON: "/home/u/.config/containers/podman-connections.json"}},
		{"user with XDG_CONFIG_HOME", map[string]string{"XDG_CONFIG_HOME": "/xdg"}, 1000, ConnectionSearch{
			ContainersConf: []string{"/usr/share/containers/containers.conf", "/etc/containers/containers.conf", "/etc/containers/containers.conf.d",
				"/xdg/containers/containers.conf", "/xdg/containers/containers.conf.d"},
			ConnectionsJSON: "/xdg/containers/podman-connections.json"}},
		{"env overrides", map[string]string{"CONTAINERS_CONF": "/c.conf", "PODMAN_CONNECTIONS_CONF": "/p.json"}, 0,
			ConnectionSearch{ContainersConf: []string{"/c.conf"}, ConnectionsJSON: "/p.json"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := PodmanConnectionSearch(env(tt.env), tt.uid, "/home/u"); !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("got  %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

func TestDestinationSSHArgs(t *testing.T) {
	d := Destination{User: "root", Host: "10.250.13.2", Port: 2222, Identity: "/k"}
	want := []string{"-p", "2222", "-i", "/k", "-o", "IdentitiesOnly=yes", "-l", "root", "--", "10.250.13.2"}
	if got := d.SSHArgs(); !reflect.DeepEqual(got, want) {
		t.Fatalf("SSHArgs = %q, want %q", got, want)
	}
	if got := (Destination{Host: "h", Port: 22}).SSHArgs(); !reflect.DeepEqual(got, []string{"-p", "22", "--", "h"}) {
		t.Fatalf("SSHArgs = %q", got)
	}
	for d, want := range map[Destination]string{
		{User: "root", Host: "10.250.13.2", Port: 22}:                    "ssh://root@10.250.13.2:22",
		{Host: "fd00::2", Port: 2222, Connection: "b"}:                   "ssh://[fd00::2]:2222 (b)",
		{User: "core", Host: "h", Port: 22, Connection: "c", From: "/x"}: "ssh://core@h:22 (c)",
	} {
		if got := d.String(); got != want {
			t.Errorf("String() = %q, want %q", got, want)
		}
	}
}

// FuzzParseDestination: no input panics, and nothing accepted could be
// read by ssh as an option or carries a password.
func FuzzParseDestination(f *testing.F) {
	for _, s := range []string{"ssh://root@10.250.13.2:22", "ssh://-x@h", "ssh://h:-1", "ssh://[::1]", "ssh://a:b@c", "name", "ssh://h/%zz"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		d, err := ParseDestination(s, ConnectionSearch{})
		if err != nil {
			if !errors.Is(err, ErrDestination) {
				t.Fatalf("error without ErrDestination: %v", err)
			}
			return
		}
		if !safeSSHWord(d.Host) || (d.User != "" && !safeSSHWord(d.User)) || d.Port < 1 || d.Port > 65535 {
			t.Fatalf("accepted %q as %+v", s, d)
		}
	})
}
