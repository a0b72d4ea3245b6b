//go:build e2e

package e2e

import (
	"regexp"
	"strings"
	"testing"
	"time"
)

// step is one container operation whose exit code and output must be the
// same under crhook as under runc.
type step struct {
	name string
	args func(ctr string) []string
}

var passSteps = []step{
	{"exec", func(c string) []string { return []string{"exec", c, "sh", "-c", "echo out; echo err >&2; exit 7"} }},
	{"exec -t", func(c string) []string { return []string{"exec", "-t", c, "sh", "-c", "tty >/dev/null && echo tty"} }},
	{"exec -i", func(c string) []string { return []string{"exec", "-i", c, "cat"} }},
	{"logs", func(c string) []string { return []string{"logs", c} }},
	{"pause", func(c string) []string { return []string{"pause", c} }},
	{"state paused", func(c string) []string { return []string{"inspect", "--format", "{{.State.Status}}", c} }},
	{"unpause", func(c string) []string { return []string{"unpause", c} }},
	{"ps", func(c string) []string {
		return []string{"ps", "--filter", "name=^" + c + "$", "--format", "{{.Image}} {{.Command}} {{.Status}}"}
	}},
	{"inspect", func(c string) []string {
		return []string{"inspect", "--format", "{{.State.Status}} {{.Config.Cmd}}", c}
	}},
	{"kill", func(c string) []string { return []string{"kill", "--signal", "USR1", c} }},
	{"stop", func(c string) []string { return []string{"stop", "-t", "1", c} }},
	{"exit code", func(c string) []string { return []string{"inspect", "--format", "{{.State.ExitCode}}", c} }},
	{"rm", func(c string) []string { return []string{"rm", c} }},
}

// normalize removes what differs between two containers by nature.
var volatile = regexp.MustCompile(`crhook-e2e-[0-9a-f]+|[0-9a-f]{64}|[0-9a-f]{12}|(Up|Exited \(\d+\)) .* ago`)

func TestPassThroughMatchesRuntime(t *testing.T) {
	forEachRuntime(t, func(t *testing.T, w *wrapped) {
		layers(t, nil)
		// The container prints, traps USR1 to exit 3 on its own, so kill and
		// stop both show the runtime's signal delivery and exit codes.
		script := `echo started; trap 'echo usr1; exit 3' USR1; while :; do sleep 0.05; done`
		ctrs := map[string]string{}
		for _, rt := range []string{w.plain, w.podman} {
			ctrs[rt] = startCtr(t, rt, nil, script)
		}
		for _, c := range ctrs {
			eventually(t, 10*time.Second, "container logs", func() bool { return strings.Contains(mustPodman(t, "logs", c), "started") })
		}
		for _, s := range passSteps {
			got := map[string]result{}
			for rt, c := range ctrs {
				r := podman(t, s.args(c)...)
				r.out = volatile.ReplaceAllString(r.out, "X")
				r.err = volatile.ReplaceAllString(r.err, "X")
				got[rt] = r
			}
			same := got[w.plain] == got[w.podman]
			w.note("%s: same as the runtime alone: %v", s.name, same)
			if !same {
				t.Errorf("%s differs:\n%s:   %s\ncrhook: %s", s.name, w.name, got[w.plain], got[w.podman])
			}
		}
	})
}

func TestRunExitCodeAndOutput(t *testing.T) {
	forEachRuntime(t, func(t *testing.T, w *wrapped) {
		layers(t, nil)
		for _, rt := range []string{w.plain, w.podman} {
			args := append(append([]string{"--runtime", rt, "run", "--rm"}, limits...), image, "sh", "-c", "echo hello; exit 42")
			r := podman(t, args...)
			w.note("podman run: exit %d, %q", r.code, r.out)
			if r.code != 42 || r.out != "hello\n" {
				t.Errorf("%s: podman run: %s", rt, r)
			}
		}
	})
}
