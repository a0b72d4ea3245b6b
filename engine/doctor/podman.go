package doctor

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

type podmanFacts struct {
	path    string
	lookErr string
	infoErr string
	version string
	// ociRuntime is podman's default runtime as `podman info` reports it.
	ociRuntime, ociRuntimePath string
}

type podmanInfo struct {
	Host struct {
		OCIRuntime struct {
			Name string `json:"name"`
			Path string `json:"path"`
		} `json:"ociRuntime"`
	} `json:"host"`
	Version struct {
		Version string `json:"Version"`
	} `json:"version"`
}

func (p *probe) podmanInfo() *podmanFacts {
	if p.podmanOnce {
		return &p.podman
	}
	p.podmanOnce = true
	f := &p.podman
	path, err := p.h.Run.LookPath("podman")
	if err != nil {
		f.lookErr = fmt.Sprintf("podman not found in PATH=%s", p.h.Getenv("PATH"))
		return f
	}
	f.path = path
	out := p.run(path, "info", "--format", "json")
	if out.Err != nil || out.Code != 0 {
		f.infoErr = "podman info: " + describe(out)
		return f
	}
	var info podmanInfo
	if err := json.Unmarshal([]byte(out.Stdout), &info); err != nil {
		f.infoErr = fmt.Sprintf("decode podman info --format json: %v", err)
		return f
	}
	f.version = info.Version.Version
	f.ociRuntime, f.ociRuntimePath = info.Host.OCIRuntime.Name, info.Host.OCIRuntime.Path
	return f
}

// containersConf reads podman's config files once; the limits check
// needs them without running podman.
func (p *probe) containersConf() *containersConf {
	if p.ccOnce == nil {
		p.ccOnce = p.h.loadContainersConf()
	}
	return p.ccOnce
}

func checkPodmanVersion(p *probe) Result {
	f := p.podmanInfo()
	switch {
	case f.path == "":
		return result(Fail, "install podman: crhook is a podman runtime", f.lookErr)
	case f.infoErr != "":
		return result(Fail, "fix podman first: run podman info and follow its error", f.infoErr)
	}
	return result(OK, "", fmt.Sprintf("%s: podman %s, default runtime %s (%s)", f.path, f.version, f.ociRuntime, f.ociRuntimePath))
}

const registerFix = "install contrib/containers.conf.d/50-crhook.conf as /etc/containers/containers.conf.d/50-crhook.conf (make install does)"

func checkRegistered(p *probe) Result {
	c := p.containersConf()
	ev := confErrors(c)
	paths, ok := c.runtimes["crhook"]
	if !ok {
		ev = append(ev, fmt.Sprintf("no crhook in [engine.runtimes] of %s", orNone(strings.Join(c.files, ", "))))
		return result(Fail, registerFix, ev...)
	}
	ev = append(ev, fmt.Sprintf("%s: crhook = [%s]", c.runtimesFrom["crhook"], strings.Join(paths, ", ")))
	for _, path := range paths {
		if fi, err := os.Stat(p.h.path(path)); err == nil && fi.Mode().IsRegular() && fi.Mode().Perm()&0o111 != 0 {
			ev = append(ev, "podman runs "+path)
			if len(c.errs) > 0 {
				// podman refuses to start on a containers.conf it cannot parse.
				return result(Fail, "fix the containers.conf file named above: podman does not start with it", ev...)
			}
			return result(OK, "", ev...)
		}
	}
	return result(Fail, "install crhook-runtime (make install puts it in /usr/libexec/crhook)",
		append(ev, "none of these paths is an executable file")...)
}

func checkDefaultRuntime(p *probe) Result {
	f := p.podmanInfo()
	name, from := f.ociRuntime, "podman info"
	if name == "" {
		name, from = p.containersConf().runtime, p.containersConf().runtimeFrom
	}
	if name == "" {
		return result(Skip, "", "cannot tell podman's default runtime: "+orNone(f.infoErr+f.lookErr))
	}
	if isCrhook(name) {
		return result(OK, "", fmt.Sprintf("default runtime is %s (%s)", name, from))
	}
	return result(Warn,
		`use podman --runtime crhook run ..., or make crhook the default: printf '[engine]\nruntime = "crhook"\n' > /etc/containers/containers.conf.d/99-crhook-default.conf`,
		fmt.Sprintf("default runtime is %s (%s)", name, from),
		"containers created without --runtime crhook bypass crhook: their checkpoints ignore /etc/criu/default.conf")
}

func isCrhook(runtime string) bool {
	return runtime == "crhook" || filepath.Base(runtime) == "crhook-runtime"
}

// maxListed bounds the containers named in the evidence.
const maxListed = 10

func checkContainers(p *probe) Result {
	f := p.podmanInfo()
	if f.path == "" || f.infoErr != "" {
		return result(Skip, "", "podman does not work (see podman.version)")
	}
	out := p.run(f.path, "ps", "-a", "--format", "json")
	if out.Err != nil || out.Code != 0 {
		return result(Warn, "", "podman ps -a: "+describe(out))
	}
	var list []struct {
		ID string `json:"Id"`
	}
	if err := json.Unmarshal([]byte(out.Stdout), &list); err != nil {
		return result(Warn, "", fmt.Sprintf("decode podman ps -a --format json: %v", err))
	}
	if len(list) == 0 {
		return result(OK, "", "no containers yet")
	}
	ids := make([]string, len(list))
	for i, c := range list {
		ids[i] = c.ID
	}
	ctrs, err := p.inspectRuntimes(f.path, ids)
	if err != nil {
		return result(Warn, "", err.Error())
	}
	if len(ctrs) == 0 {
		return result(OK, "", "no containers left (removed while doctor ran)")
	}
	var bypass []string
	for _, c := range ctrs {
		if !isCrhook(c.OCIRuntime) {
			bypass = append(bypass, fmt.Sprintf("%s (runtime %s)", c.Name, c.OCIRuntime))
		}
	}
	if len(bypass) == 0 {
		return result(OK, "", plural(len(ctrs), "container")+", all created with runtime crhook")
	}
	ev := []string{fmt.Sprintf("%d of %d containers bypass crhook, so crhook's CRIU layers do not reach their checkpoints:", len(bypass), len(ctrs))}
	if len(bypass) > maxListed {
		bypass = append(bypass[:maxListed], fmt.Sprintf("... and %d more", len(bypass)-maxListed))
	}
	ev = append(ev, bypass...)
	return result(Warn, "recreate them with podman run --runtime crhook (a container keeps the runtime it was created with)", ev...)
}

func confErrors(c *containersConf) []string {
	var ev []string
	for _, e := range c.errs {
		ev = append(ev, "cannot read: "+e)
	}
	return ev
}

func orNone(s string) string {
	if s == "" {
		return "(none)"
	}
	return s
}

type ctrRuntime struct {
	Name       string `json:"Name"`
	OCIRuntime string `json:"OCIRuntime"`
}

// inspectRuntimes asks podman which runtime each container was created
// with (ps does not say). One call covers them all; podman 4 fails that
// call whole when one container went away meanwhile, so then each is
// asked alone and the vanished ones are left out.
func (p *probe) inspectRuntimes(podman string, ids []string) ([]ctrRuntime, error) {
	inspect := func(ids ...string) ([]ctrRuntime, Output) {
		out := p.run(podman, append([]string{"container", "inspect", "--format", "json"}, ids...)...)
		var ctrs []ctrRuntime
		if out.Err != nil || out.Code != 0 || json.Unmarshal([]byte(out.Stdout), &ctrs) != nil {
			return nil, out
		}
		return ctrs, out
	}
	if ctrs, _ := inspect(ids...); ctrs != nil {
		return ctrs, nil
	}
	var all []ctrRuntime
	var lastErr Output
	failed := 0
	for _, id := range ids {
		ctrs, out := inspect(id)
		if ctrs == nil {
			if !strings.Contains(out.Stderr, "no such container") {
				failed, lastErr = failed+1, out
			}
			continue
		}
		all = append(all, ctrs...)
	}
	if failed > 0 {
		return all, fmt.Errorf("podman container inspect failed for %d containers: %s", failed, describe(lastErr))
	}
	return all, nil
}
