//go:build e2e

package migrate

import (
	"os"
	"testing"
)

func TestZZProbeCrunOnB(t *testing.T) {
	m := setupPodmanMigrationOn(t, "crhook-zp", 15, "crhook-crun", "--cgroupns", os.Getenv("ZZ_CGNS"))
	for _, c := range []string{"podman container checkpoint " + m.name, "podman container restore " + m.name,
		`id=$(podman inspect -f "{{.Id}}" ` + m.name + `); grep -i -B3 error /var/lib/containers/storage/overlay-containers/$id/userdata/restore.log | head -30`} {
		r := m.h.ssh(t, c)
		t.Logf("$ %s\n%+v", c, r)
	}
}
