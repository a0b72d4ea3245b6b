package engine

import (
	"encoding/json"
	"fmt"
)

// KindFromFeatures names the runtime from its `features` output (the OCI
// runtime-spec's features document), asked of the binary podman actually
// runs: a crhook-runtime passes `features` through, so the answer is the
// wrapped runtime's, whatever the wrapper is called. crun names itself in
// run.oci.crun.version (and, for compatibility, also sets runc's
// checkpoint annotation); runc in org.opencontainers.runc.version.
func KindFromFeatures(data []byte) (kind RuntimeKind, version string, err error) {
	var f struct {
		Annotations map[string]string `json:"annotations"`
	}
	if err := json.Unmarshal(data, &f); err != nil {
		return "", "", fmt.Errorf("read the runtime's features: %w", err)
	}
	if v, ok := f.Annotations["run.oci.crun.version"]; ok {
		return Crun, v, nil
	}
	if v, ok := f.Annotations["org.opencontainers.runc.version"]; ok {
		return Runc, v, nil
	}
	return "", "", fmt.Errorf("the runtime's features name neither crun (run.oci.crun.version) nor runc (org.opencontainers.runc.version)")
}
