package engine

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
)

// CRIUConfigAnnotation is the annotation runc (and crun >= 1.26) reads to
// find the CRIU config file of a container, instead of /etc/criu/runc.conf.
const CRIUConfigAnnotation = "org.criu.config"

// annotateBundle sets one annotation in BUNDLE/config.json. Only the
// annotations object is decoded; every other value is carried over as raw
// JSON, so nothing of the spec changes but key order and white space.
func annotateBundle(bundle, key, value string) error {
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
	if ann[key] == value {
		return nil
	}
	ann[key] = value
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
