package orchestrate

import (
	"bytes"
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/crhook/crhook/engine"
)

// ContainerRuntime says which runtime container name really runs on, on
// h: the binary podman hands conmon (`-r`, from the container's own
// runtime, which a podman runtime name such as crhook-crun may point
// anywhere), asked for its `features`. crhook's configured runtime.path
// is not the answer: a podman runtime may wrap crhook-runtime with a
// config of its own.
func (h *PodmanHost) ContainerRuntime(ctx context.Context, name string) (path string, kind engine.RuntimeKind, version string, err error) {
	out, err := h.R.Run(ctx, nil, "podman", "container", "inspect", "--format", "{{.State.ConmonPid}}", name)
	if err != nil {
		return "", "", "", fmt.Errorf("find the conmon of container %q on %s: %w", name, h.R.Where(), err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(out)))
	if err != nil || pid <= 1 {
		return "", "", "", fmt.Errorf("podman inspect of %q on %s gave conmon pid %q: is it running?", name, h.R.Where(), strings.TrimSpace(string(out)))
	}
	cmdline, err := h.R.Run(ctx, nil, "cat", "/proc/"+strconv.Itoa(pid)+"/cmdline")
	if err != nil {
		return "", "", "", fmt.Errorf("read conmon's command line on %s: %w", h.R.Where(), err)
	}
	if path = ConmonRuntime(cmdline); path == "" {
		return "", "", "", fmt.Errorf("conmon %d on %s names no runtime (-r)", pid, h.R.Where())
	}
	features, err := h.R.Run(ctx, nil, path, "features")
	if err != nil {
		return path, "", "", fmt.Errorf("ask runtime %s for its features on %s: %w", path, h.R.Where(), err)
	}
	kind, version, err = engine.KindFromFeatures(features)
	if err != nil {
		return path, "", "", fmt.Errorf("runtime %s on %s: %w", path, h.R.Where(), err)
	}
	return path, kind, version, nil
}

// ConmonRuntime is the runtime conmon was started with: the argument of
// -r or --runtime in its NUL-separated command line.
func ConmonRuntime(cmdline []byte) string {
	args := bytes.Split(bytes.TrimRight(cmdline, "\x00"), []byte{0})
	for i, a := range args {
		switch s := string(a); {
		case (s == "-r" || s == "--runtime") && i+1 < len(args):
			return string(args[i+1])
		case strings.HasPrefix(s, "--runtime="):
			return strings.TrimPrefix(s, "--runtime=")
		}
	}
	return ""
}
