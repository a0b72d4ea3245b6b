package engine

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// The state readers: what the wrapped runtime stored of a container at
// create time, read from its own files when they are where it keeps them,
// else asked of the runtime itself.

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

// runcStateAnnotations reads the annotations runc stored at create time
// (as "key=value" labels in ROOT/ID/state.json). It saves starting a
// second Go runtime for `runc state`, about 5 ms of every checkpoint.
func runcStateAnnotations(root, id string) (map[string]string, bool) {
	data, err := os.ReadFile(filepath.Join(root, id, "state.json"))
	if err != nil {
		return nil, false
	}
	var st struct {
		Config struct {
			Labels []string `json:"labels"`
		} `json:"config"`
	}
	if json.Unmarshal(data, &st) != nil || st.Config.Labels == nil {
		return nil, false
	}
	ann := make(map[string]string, len(st.Config.Labels))
	for _, l := range st.Config.Labels {
		if k, v, ok := strings.Cut(l, "="); ok {
			ann[k] = v
		}
	}
	return ann, true
}

// runtimeState is the runtime's `state ID` answer: the portable way, used
// when the runtime's state file is not where it keeps it.
type runtimeState struct {
	Status      string            `json:"status"`
	Annotations map[string]string `json:"annotations"`
}

// queryState asks the runtime (`RUNTIME GLOBAL... state ID`).
func queryState(rt OCIRuntime, global []string, id string) (*runtimeState, error) {
	args := append(append(append([]string(nil), global...), "state"), id)
	out, err := rt.Output(args)
	if err != nil {
		return nil, err
	}
	var st runtimeState
	if err := json.Unmarshal(out, &st); err != nil {
		return nil, fmt.Errorf("decode the answer of %s: %w", shellJoin(append([]string{rt.Path()}, args...)), err)
	}
	return &st, nil
}
