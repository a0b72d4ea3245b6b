package engine

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"

	"github.com/crhook/crhook/config"
)

// CRIUConfigAnnotation is the annotation runc (and crun >= 1.26) reads to
// find the CRIU config file of a container, instead of /etc/criu/runc.conf.
const CRIUConfigAnnotation = config.ContainerFileAnnotation

// OriginalCRIUConfigAnnotation remembers the org.criu.config a container
// was given by its creator once crhook has pointed org.criu.config at its
// generated file: that file is the container's layer 4, at checkpoint (from
// the runtime's stored spec) and at restore (from the bundle) alike.
const OriginalCRIUConfigAnnotation = "io.crhook.original-criu-config"

// pointBundle makes BUNDLE/config.json name crhook's generated file in
// org.criu.config and remember the container's own file, if any, in
// OriginalCRIUConfigAnnotation. A bundle that already says so is left alone.
func pointBundle(bundle, generated, original string) error {
	return annotateBundle(bundle, map[string]string{CRIUConfigAnnotation: generated, OriginalCRIUConfigAnnotation: original})
}

// containerFile is the CRIU file a container names for itself: its
// org.criu.config, unless that is a file crhook generated, in which case
// the one crhook remembered when it replaced the annotation.
func containerFile(ann map[string]string, stateDir string) string {
	if cur := ann[CRIUConfigAnnotation]; cur != "" && !isGenerated(stateDir, cur) {
		return cur
	}
	return ann[OriginalCRIUConfigAnnotation]
}

// isGenerated reports a path of the form STATE_DIR/containers/ID/criu.conf:
// a file crhook writes, never a layer of its own.
func isGenerated(stateDir, path string) bool {
	dir, file := filepath.Split(path)
	id := filepath.Base(dir)
	return file == "criu.conf" && validID(id) &&
		filepath.Clean(dir) == filepath.Join(stateDir, "containers", id)
}

// annotateBundle sets annotations in BUNDLE/config.json; an empty value
// removes the key. Only the annotations object is decoded; every other
// value is carried over as raw JSON, so nothing of the spec changes but
// key order and white space.
func annotateBundle(bundle string, set map[string]string) error {
	path := filepath.Join(bundle, "config.json")
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("read OCI spec: %w", err)
	}
	var spec map[string]json.RawMessage
	if err := json.Unmarshal(data, &spec); err != nil {
		return fmt.Errorf("decode OCI spec %q: %w", path, err)
	}
	ann := map[string]string{}
	if raw, ok := spec["annotations"]; ok && string(raw) != "null" {
		if err := json.Unmarshal(raw, &ann); err != nil {
			return fmt.Errorf("decode annotations in %q: %w", path, err)
		}
	}
	changed := false
	for key, value := range set {
		old, ok := ann[key]
		switch {
		case value == "" && ok:
			delete(ann, key)
		case value != "" && old != value:
			ann[key] = value
		default:
			continue
		}
		changed = true
	}
	if !changed {
		return nil
	}
	if spec["annotations"], err = json.Marshal(ann); err != nil {
		return fmt.Errorf("encode annotations: %w", err)
	}
	out, err := json.Marshal(spec)
	if err != nil {
		return fmt.Errorf("encode OCI spec: %w", err)
	}
	perm := os.FileMode(0o600)
	if fi, err := os.Stat(path); err == nil {
		perm = fi.Mode().Perm()
	}
	return atomicWrite(path, out, perm)
}

// bundleAnnotations reads the annotations of BUNDLE/config.json.
func bundleAnnotations(bundle string) (map[string]string, error) {
	path := filepath.Join(bundle, "config.json")
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read OCI spec: %w", err)
	}
	var spec struct {
		Annotations map[string]string `json:"annotations"`
	}
	if err := json.Unmarshal(data, &spec); err != nil {
		return nil, fmt.Errorf("decode OCI spec %q: %w", path, err)
	}
	return spec.Annotations, nil
}
