//go:build e2e

package migrate

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/crhook/crhook/engine/migrate"
)

// TestPodmanConnectionIsFound: a connection the real podman writes with
// `podman system connection add` is the destination crhook reads. The
// files are a temporary CONTAINERS_CONF and PODMAN_CONNECTIONS_CONF, so
// the host's connections are neither read nor changed.
func TestPodmanConnectionIsFound(t *testing.T) {
	if _, err := exec.LookPath("podman"); err != nil {
		t.Skip("podman not installed: run tests/setup-host.sh")
	}
	dir := t.TempDir()
	env := map[string]string{
		"CONTAINERS_CONF":         filepath.Join(dir, "containers.conf"),
		"PODMAN_CONNECTIONS_CONF": filepath.Join(dir, "podman-connections.json"),
	}
	if err := os.WriteFile(env["CONTAINERS_CONF"], nil, 0o644); err != nil {
		t.Fatal(err)
	}
	// With a socket path in the URI podman stores the connection without
	// dialling the host.
	add := exec.Command("podman", "system", "connection", "add", "--identity", "/root/.ssh/id_hostb",
		"hostb", "ssh://root@10.250.13.2:2222/run/podman/podman.sock")
	add.Env = append(os.Environ(), "CONTAINERS_CONF="+env["CONTAINERS_CONF"], "PODMAN_CONNECTIONS_CONF="+env["PODMAN_CONNECTIONS_CONF"])
	if out, err := add.CombinedOutput(); err != nil {
		t.Fatalf("podman system connection add: %v\n%s", err, out)
	}
	search := migrate.PodmanConnectionSearch(func(k string) string { return env[k] }, os.Getuid(), os.Getenv("HOME"))
	d, err := migrate.ParseDestination("hostb", search)
	if err != nil {
		t.Fatal(err)
	}
	want := migrate.Destination{Connection: "hostb", User: "root", Host: "10.250.13.2", Port: 2222,
		Identity: "/root/.ssh/id_hostb", Socket: "/run/podman/podman.sock"}
	d.From = ""
	if d != want {
		t.Fatalf("got  %+v\nwant %+v", d, want)
	}
}
