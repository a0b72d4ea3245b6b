package engine

import (
	"encoding/json"
	"os"
	"path/filepath"
)

// The wrapped runtime's own bookkeeping differs: runc keeps
// ROOT/ID/state.json (default root /run/runc) with the annotations as
// "key=value" labels; crun keeps ROOT/ID/status and a copy of the spec,
// ROOT/ID/config.json (default root /run/crun), and reads org.criu.config
// from that copy at checkpoint time. crhook must read the file of the
// runtime it wraps: a runc state.json under a crun root would be some
// other container's, or nothing.

// isCrun says whether the wrapped runtime is crun, by its file name as
// config.Paths.RuntimeFiles decides which runtime layer applies.
func isCrun(runtime string) bool { return filepath.Base(runtime) == "crun" }

// defaultRoot is the runtime's state root when podman passes no --root.
func defaultRoot(runtime string) string {
	if isCrun(runtime) {
		return "/run/crun"
	}
	return "/run/runc"
}

// storedAnnotations reads the annotations the wrapped runtime stored at
// create time, without running it. ok is false when its state is not
// where it keeps it; callers then ask `runtime state`.
func storedAnnotations(runtime, root, id string) (map[string]string, bool) {
	if root == "" {
		root = defaultRoot(runtime)
	}
	if isCrun(runtime) {
		return crunStateAnnotations(root, id)
	}
	return runcStateAnnotations(root, id)
}

// crunStateAnnotations reads ROOT/ID/config.json, the spec crun copied
// at create and reads again at checkpoint.
func crunStateAnnotations(root, id string) (map[string]string, bool) {
	data, err := os.ReadFile(filepath.Join(root, id, "config.json"))
	if err != nil {
		return nil, false
	}
	var spec struct {
		Annotations map[string]string `json:"annotations"`
	}
	if json.Unmarshal(data, &spec) != nil {
		return nil, false
	}
	if spec.Annotations == nil {
		spec.Annotations = map[string]string{}
	}
	return spec.Annotations, true
}
