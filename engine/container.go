package engine

import (
	"encoding/json"
	"errors"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
)

// Container is what crhook needs to know of an existing podman container.
type Container struct {
	ID          string
	Name        string
	Runtime     string // podman's OCIRuntime for it
	Annotations map[string]string
	// CRIUConfig is the org.criu.config the runtime will use; empty when
	// the container was not created through crhook.
	CRIUConfig string
	// CRIUFile is the CRIU file the container names for itself (its own
	// org.criu.config, layer 4); empty for none.
	CRIUFile string
	// Bypass says why crhook's config does not reach this container.
	Bypass       string
	ProcessLabel string
	MountLabel   string
}

// InspectContainer asks podman about a container by name or ID.
func InspectContainer(nameOrID string) (*Container, error) {
	out, err := exec.Command("podman", "container", "inspect", "--format", "json", nameOrID).Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return nil, fmt.Errorf("podman container inspect %s: %s", nameOrID, strings.TrimSpace(string(ee.Stderr)))
		}
		return nil, fmt.Errorf("podman container inspect %s: %w", nameOrID, err)
	}
	var list []struct {
		ID            string `json:"Id"`
		Name          string `json:"Name"`
		OCIRuntime    string `json:"OCIRuntime"`
		OCIConfigPath string `json:"OCIConfigPath"`
		ProcessLabel  string `json:"ProcessLabel"`
		MountLabel    string `json:"MountLabel"`
		Config        struct {
			Annotations map[string]string `json:"Annotations"`
		} `json:"Config"`
	}
	if err := json.Unmarshal(out, &list); err != nil {
		return nil, fmt.Errorf("decode podman container inspect %s: %w", nameOrID, err)
	}
	if len(list) != 1 {
		return nil, fmt.Errorf("podman container inspect %s returned %d containers, want 1", nameOrID, len(list))
	}
	c := list[0]
	ctr := &Container{ID: c.ID, Name: c.Name, Runtime: c.OCIRuntime, Annotations: c.Config.Annotations,
		ProcessLabel: c.ProcessLabel, MountLabel: c.MountLabel}
	// The config.json podman wrote, and crhook annotated at create, says
	// what the runtime will read at checkpoint time.
	var named string
	if c.OCIConfigPath != "" {
		if ann, err := bundleAnnotations(filepath.Dir(c.OCIConfigPath)); err == nil {
			named = ann[CRIUConfigAnnotation]
			if generatedFor(named, c.ID) {
				ctr.CRIUConfig, ctr.CRIUFile = named, ann[OriginalCRIUConfigAnnotation]
			}
		}
	}
	switch {
	case ctr.CRIUConfig != "":
	case named != "":
		ctr.CRIUFile = named
		ctr.Bypass = fmt.Sprintf("created with runtime %q without crhook: its checkpoints hand CRIU %s=%q as it is, and crhook refuses them unless that file passes its checks; recreate it with podman --runtime crhook", c.OCIRuntime, CRIUConfigAnnotation, named)
	default:
		ctr.Bypass = fmt.Sprintf("created with runtime %q without crhook: its checkpoints read /etc/criu/runc.conf only; recreate it with podman --runtime crhook", c.OCIRuntime)
	}
	return ctr, nil
}

// generatedFor reports a path of the form .../containers/ID/criu.conf: the
// file crhook generates for container id, whatever its state dir.
func generatedFor(path, id string) bool {
	dir, file := filepath.Split(path)
	return file == "criu.conf" && filepath.Base(dir) == id && filepath.Base(filepath.Dir(filepath.Clean(dir))) == "containers"
}
