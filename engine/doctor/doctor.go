// Package doctor answers, in one run, whether container checkpoint/restore
// through crhook will work on this host, for which features, and how to
// fix what will not. Every check reads the host through Host, so tests
// feed it a fake /proc, /etc, /sys and canned command output.
package doctor

import (
	"context"
	"slices"
	"strings"
)

// Status is a check's verdict. The strings are part of the JSON schema.
type Status string

const (
	// OK: this part will work.
	OK Status = "ok"
	// Warn: checkpoint/restore works, but a feature or a container will not.
	Warn Status = "warn"
	// Fail: checkpoint or restore will fail until the fix is applied.
	Fail Status = "fail"
	// Skip: the check does not apply here (SELinux off) or could not run.
	Skip Status = "skip"
)

// Result is one check's answer.
type Result struct {
	// ID is stable (area.name) so scripts can match on it.
	ID    string `json:"id"`
	Title string `json:"title"`
	// Status is ok, warn, fail or skip.
	Status Status `json:"status"`
	// Evidence says what was read or run to get here, one fact per line.
	Evidence []string `json:"evidence"`
	// Fix is what to do, empty when there is nothing to do.
	Fix string `json:"fix"`
}

// check is one entry of the catalogue: it always returns a Result, never
// an error, because one broken probe must not hide the others.
type check struct {
	id, title string
	run       func(*probe) Result
}

// checks is the catalogue in report order: what the kernel can do, the
// CRIU that does it, the runtime that drives CRIU, podman that drives the
// runtime, crhook's own config, the host policies around them, then what
// live migration needs on top (migrate.go).
var checks = []check{
	{"kernel.checkpoint_restore", "kernel built with CONFIG_CHECKPOINT_RESTORE", checkCheckpointRestore},
	{"kernel.namespaces", "kernel namespaces for containers", checkNamespaces},
	{"kernel.userfaultfd", "userfaultfd for lazy restore (post-copy migration)", checkUserfaultfd},
	{"kernel.mem_soft_dirty", "soft-dirty tracking for pre-copy (pre-dump)", checkSoftDirty},
	{"criu.binary", "CRIU found and runs", checkCRIUBinary},
	{"criu.check", "criu check", checkCRIUCheck},
	{"criu.known_bad", "CRIU version against known-bad kernels", checkKnownBad},
	{"criu.selinux", "CRIU built with libselinux", checkCRIUSELinux},
	{"runtime.criu_config", "wrapped runtime passes CRIU config files", checkRuntime},
	{"podman.version", "podman", checkPodmanVersion},
	{"podman.registered", "crhook registered as a podman runtime", checkRegistered},
	{"podman.default_runtime", "crhook is podman's default runtime", checkDefaultRuntime},
	{"podman.containers", "existing containers run through crhook", checkContainers},
	{"config.settings", "crhook.toml settings load", checkSettings},
	{"config.layers", "CRIU config layers parse", checkLayers},
	{"config.dropped", "options dropped or denied on the container path", checkDropped},
	{"config.permissions", "owner and mode of config files and state directory", checkPermissions},
	{"selinux.status", "SELinux mode", checkSELinuxStatus},
	{"selinux.container_policy", "container-selinux allows CRIU restore", checkContainerPolicy},
	{"selinux.crhook_module", "crhook SELinux module installed", checkCrhookModule},
	{"limits.rlimits", "container default rlimits within what the host grants", checkRlimits},
	{"migrate.uffd", "userfaultfd usable by CRIU for lazy (post-copy) migration", checkMigrateUffd},
	{"migrate.lazy_pipe", "CAP_SYS_RESOURCE or fs.pipe-max-size for lazy dumps", checkMigrateLazyPipe},
	{"migrate.soft_dirty", "CRIU dirty-page tracking for pre-copy migration", checkMigrateSoftDirty},
	{"migrate.tls", "CRIU built with TLS for page-server traffic", checkMigrateTLS},
}

// Areas are the first words of the check IDs, in report order: what
// `crhook doctor --only` takes.
func Areas() []string {
	var out []string
	for _, c := range checks {
		area, _, _ := strings.Cut(c.id, ".")
		if !slices.Contains(out, area) {
			out = append(out, area)
		}
	}
	return out
}

// Run performs every check against h, in catalogue order.
func Run(ctx context.Context, h *Host) *Report { return RunOnly(ctx, h, nil) }

// RunOnly performs the checks of the given areas (all when areas is
// empty), and gathers the versions a far end compares with
// (Report.Versions).
func RunOnly(ctx context.Context, h *Host, areas []string) *Report {
	if ctx == nil {
		ctx = context.Background()
	}
	p := &probe{ctx: ctx, h: h}
	r := &Report{}
	for _, c := range checks {
		if area, _, _ := strings.Cut(c.id, "."); len(areas) > 0 && !slices.Contains(areas, area) {
			continue
		}
		res := c.run(p)
		res.ID, res.Title = c.id, c.title
		if res.Evidence == nil {
			res.Evidence = []string{}
		}
		r.Results = append(r.Results, res)
	}
	r.Versions = p.versions()
	return r
}

// probe carries one run's host and the facts several checks share (the
// CRIU found, the kernel release, podman info), each gathered once.
type probe struct {
	ctx context.Context
	h   *Host

	kernelOnce bool
	kernel     kernelFacts
	criuOnce   bool
	criu       criuFacts
	podmanOnce bool
	podman     podmanFacts
	ccOnce     *containersConf
	confOnce   bool
	conf       configFacts
	selOnce    bool
	sel        selinuxFacts
}

func (p *probe) run(name string, args ...string) Output {
	return p.h.Run.Run(p.ctx, name, args...)
}

func result(s Status, fix string, evidence ...string) Result {
	return Result{Status: s, Evidence: evidence, Fix: fix}
}
