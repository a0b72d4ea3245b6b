package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/crhook/crhook/engine"
	"github.com/crhook/crhook/engine/doctor"
	"github.com/crhook/crhook/engine/migrate"
	"github.com/crhook/crhook/engine/migrate/orchestrate"
)

// builtModes are the modes this crhook runs, and so the ones `--mode
// auto` chooses among (migrate.Decide). When a mode's run path is built,
// it is added here: one line.
var builtModes = []migrate.Mode{migrate.ModeLazy, migrate.ModeStream, migrate.ModePrecopy}

// defaultMaxDowntime is --max-downtime's default: the budget auto's
// reason compares its estimate with (and pre-copy's stop rule will stop
// at). Lazy migration's own freeze is about 1 s on the test machine for
// 64 MiB to 1 GiB (docs/migration.md), so a tighter default would call
// every migration over budget.
const defaultMaxDowntime = 2 * time.Second

// measured is what auto measured on both hosts and what it made of it:
// shown by --dry-run and in the --format json summary.
type measured struct {
	// MemoryBytes: what CRIU would dump of the container's processes
	// (smaps_rollup Anonymous + Swap + Pss_Shmem, engine/migrate Smaps.Dumped).
	MemoryBytes int64 `json:"memory_bytes"`
	Processes   int   `json:"processes"`
	// WorkingSetBytes: what they touched within the window (accessed
	// bits cleared, then smaps_rollup Referenced summed).
	WorkingSetBytes    int64 `json:"working_set_bytes"`
	WorkingSetWindowMS int64 `json:"working_set_window_ms"`
	// Bandwidth is ssh's throughput to the destination.
	BandwidthBytesPerSecond int64  `json:"bandwidth_bytes_per_second"`
	Bandwidth               string `json:"bandwidth"`
	SoftDirty               bool   `json:"soft_dirty"`
	LazyPages               bool   `json:"lazy_pages"`
	// Evidence is what the mode checks rest on, one fact per line.
	Evidence      []string               `json:"evidence"`
	MaxDowntimeMS int64                  `json:"max_downtime_ms"`
	BuiltModes    []migrate.Mode         `json:"built_modes"`
	BestMode      migrate.Mode           `json:"best_mode,omitempty"`
	EstimatesMS   map[migrate.Mode]int64 `json:"estimates_ms,omitempty"`
}

// modeChecks is what doctor's migrate.* checks say on both hosts about
// the modes: one copy of each rule, in engine/doctor.
type modeChecks struct {
	softDirty bool
	lazy      bool
	noLazy    string
	evidence  []string
}

// remoteDoctor is the part of the destination's `crhook doctor --format
// json --only migrate` read here.
type remoteDoctor struct {
	Schema   int              `json:"schema"`
	Checks   []doctor.Result  `json:"checks"`
	Versions *doctor.Versions `json:"versions"`
}

// runRemoteChecks runs doctor's migration checks on the destination over
// the control channel. Its exit status is a verdict (2: warnings), so the
// report is read whatever the status; no report is the error.
func runRemoteChecks(ctx context.Context, dst *orchestrate.PodmanHost) (*remoteDoctor, error) {
	argv := append([]string{dst.Crhook}, doctor.RemoteCommand[1:]...)
	out, err := dst.R.Run(ctx, nil, argv...)
	var rep remoteDoctor
	if jerr := json.Unmarshal(out, &rep); jerr != nil || rep.Schema == 0 {
		if err == nil {
			err = fmt.Errorf("no JSON report: %w", jerr)
		}
		return nil, fmt.Errorf("run crhook doctor on %s: %w", dst.R.Where(), err)
	}
	if rep.Schema != doctor.SchemaVersion {
		return nil, fmt.Errorf("crhook doctor on %s writes schema %d, this crhook reads %d: install the same crhook on both ends",
			dst.R.Where(), rep.Schema, doctor.SchemaVersion)
	}
	return &rep, nil
}

// checkModes reads the verdicts. Lazy needs, on the source, userfaultfd
// (runc checks CRIU's lazy-pages feature before a lazy dump), pipes CRIU
// can grow to 4 MiB, and runc; on the destination, userfaultfd and runc.
// Pre-copy needs soft-dirty on the source. A check that could not run
// (skip) blocks nothing: the migration itself will say.
func checkModes(local []doctor.Result, localRuntime string, remote *remoteDoctor, remoteErr error) modeChecks {
	var mc modeChecks
	var why []string
	judge := func(where string, results []doctor.Result, ids ...string) {
		for _, id := range ids {
			res, ok := findResult(results, id)
			if !ok {
				mc.evidence = append(mc.evidence, fmt.Sprintf("%s: %s: not reported", where, id))
				continue
			}
			line := fmt.Sprintf("%s: %s %s: %s", where, id, res.Status, strings.Join(res.Evidence, "; "))
			mc.evidence = append(mc.evidence, line)
			if res.Status == doctor.Warn || res.Status == doctor.Fail {
				w := fmt.Sprintf("%s: %s", where, lastOf(res.Evidence, string(res.Status)))
				if res.Fix != "" {
					w += " (fix: " + res.Fix + ")"
				}
				why = append(why, w)
			}
		}
	}
	runtime := func(where, rt string) {
		if engine.KindOf(rt) == engine.Crun {
			why = append(why, where+": the runtime is crun, which has no --lazy-pages (use runc as runtime.path)")
		}
		mc.evidence = append(mc.evidence, fmt.Sprintf("%s: runtime %s", where, orUnknown(rt)))
	}
	judge("source", local, "migrate.uffd", "migrate.lazy_pipe")
	runtime("source", localRuntime)
	if remoteErr != nil {
		mc.evidence = append(mc.evidence, "destination: not checked: "+remoteErr.Error())
	} else {
		judge("destination", remote.Checks, "migrate.uffd")
		rt := ""
		if remote.Versions != nil {
			rt = remote.Versions.Runtime
		}
		runtime("destination", rt)
	}
	mc.lazy, mc.noLazy = len(why) == 0, strings.Join(why, "; ")
	if res, ok := findResult(local, "migrate.soft_dirty"); ok {
		mc.softDirty = res.Status == doctor.OK
		mc.evidence = append(mc.evidence, fmt.Sprintf("source: migrate.soft_dirty %s: %s", res.Status, strings.Join(res.Evidence, "; ")))
	}
	return mc
}

func findResult(rs []doctor.Result, id string) (doctor.Result, bool) {
	for _, r := range rs {
		if r.ID == id {
			return r, true
		}
	}
	return doctor.Result{}, false
}

// lastOf is the last evidence line: doctor's checks end with the one
// that decided.
func lastOf(ev []string, def string) string {
	if len(ev) == 0 {
		return def
	}
	return ev[len(ev)-1]
}

func orUnknown(s string) string {
	if s == "" {
		return "unknown"
	}
	return s
}

// sourceRuntime is the runtime container name runs on here, as
// checkModes reads it ("crun" or "runc"), and the evidence line: the
// container's own (a podman runtime such as crhook-crun may run
// crhook-runtime with another runtime.path), or crhook's runtime.path
// from doctor's report when the container's cannot be asked.
func sourceRuntime(ctx context.Context, src *orchestrate.PodmanHost, name string, local *doctor.Report) (rt, evidence string) {
	path, kind, version, err := src.ContainerRuntime(ctx, name)
	if err == nil {
		return string(kind), fmt.Sprintf("source: the container runs on %s %s (podman's runtime %s, asked for its features)", kind, version, path)
	}
	if local.Versions != nil {
		rt = local.Versions.Runtime
	}
	return rt, "source: the container's runtime: " + err.Error() + "; judged by crhook's runtime.path"
}

// localMigrateChecks runs doctor's migrate.* checks on this host.
func localMigrateChecks(ctx context.Context) *doctor.Report {
	return doctor.RunOnly(ctx, doctor.NewHost(paths()), []string{doctor.RemoteArea})
}

// measureFacts measures, before anything is frozen, what auto decides
// on: the container's memory and working set (for window), the bandwidth
// to the destination, and what both hosts can do. The bandwidth probe and
// the checks run while the working set is being watched.
func measureFacts(ctx context.Context, src, dst *orchestrate.PodmanHost, name string, maxDowntime, window time.Duration) (migrate.Facts, *measured, error) {
	pid, err := src.InitPID(ctx, name)
	if err != nil {
		return migrate.Facts{}, nil, err
	}
	var (
		wg                     sync.WaitGroup
		tp                     migrate.Throughput
		bwErr                  error
		local                  *doctor.Report
		remote                 *remoteDoctor
		remoteErr              error
		srcRuntime, rtEvidence string
	)
	wg.Add(1)
	go func() {
		defer wg.Done()
		tp, bwErr = orchestrate.MeasureBandwidth(ctx, dst.R)
		local = localMigrateChecks(ctx)
		remote, remoteErr = runRemoteChecks(ctx, dst)
		srcRuntime, rtEvidence = sourceRuntime(ctx, src, name, local)
	}()
	mem, memErr := orchestrate.MeasureMemory(ctx, "/proc", pid, window)
	wg.Wait()
	if memErr != nil {
		return migrate.Facts{}, nil, fmt.Errorf("measure the memory of container %q (process %d): %w", name, pid, memErr)
	}
	if bwErr != nil {
		return migrate.Facts{}, nil, bwErr
	}
	mc := checkModes(local.Results, srcRuntime, remote, remoteErr)
	mc.evidence = append(mc.evidence, rtEvidence)
	f := migrate.Facts{SoftDirty: mc.softDirty, LazyPages: mc.lazy, NoLazyReason: mc.noLazy,
		MemoryBytes: mem.DumpedBytes, WorkingSetBytes: mem.ReferencedBytes, Bandwidth: tp.BytesPerSecond(), MaxDowntime: maxDowntime}
	m := &measured{MemoryBytes: mem.DumpedBytes, Processes: mem.Processes, WorkingSetBytes: mem.ReferencedBytes,
		WorkingSetWindowMS: window.Milliseconds(), BandwidthBytesPerSecond: int64(tp.BytesPerSecond()),
		Bandwidth: fmt.Sprintf("ssh's throughput to %s (a transfer to cat >/dev/null there): %v", dst.R.Where(), tp),
		SoftDirty: mc.softDirty, LazyPages: mc.lazy, Evidence: mc.evidence, MaxDowntimeMS: maxDowntime.Milliseconds(),
		BuiltModes: builtModes}
	return f, m, nil
}

// record adds auto's choice to m.
func (m *measured) record(c migrate.Choice) {
	m.BestMode = c.Best
	m.EstimatesMS = map[migrate.Mode]int64{}
	for mode, d := range c.Estimates {
		m.EstimatesMS[mode] = d.Milliseconds()
	}
}

// decideAuto measures and decides; the choice's reason is the decision
// the summary and --dry-run show.
func decideAuto(ctx context.Context, src, dst *orchestrate.PodmanHost, name string, maxDowntime, window time.Duration) (migrate.Choice, *measured, error) {
	f, m, err := measureFacts(ctx, src, dst, name, maxDowntime, window)
	if err != nil {
		return migrate.Choice{}, nil, fmt.Errorf("--mode auto: %w (name a mode with --mode to skip the measurement)", err)
	}
	c, err := migrate.Decide(f, builtModes)
	if err != nil {
		return c, m, fmt.Errorf("--mode auto: %w", err)
	}
	m.record(c)
	return c, m, nil
}

// migrateSummary is the --format json summary: the protocol's, and what
// auto measured when it chose the mode.
type migrateSummary struct {
	*orchestrate.Summary
	Measured *measured `json:"measured,omitempty"`
	// Interrupted says what interrupted the migration's worker, and in
	// which phase (migrate_worker.go).
	Interrupted string `json:"interrupted,omitempty"`
}

// resolveMode turns --mode auto into the mode Decide picks, measuring
// first; a named mode is taken as asked. It returns the decision the
// summary states, and what auto measured (nil for a named mode).
func resolveMode(ctx context.Context, mode *migrate.Mode, src, dst *orchestrate.PodmanHost, name string, f migrateFlags) (string, *measured, error) {
	if *mode != migrate.ModeAuto {
		return fmt.Sprintf("%s: asked for with --mode %s", *mode, *mode), nil, nil
	}
	c, m, err := decideAuto(ctx, src, dst, name, f.maxDowntime, orchestrate.DefaultWorkingSetWindow)
	if err != nil {
		return "", m, err
	}
	*mode = c.Mode
	return c.Reason, m, nil
}

// writeDryRun prints d as text or JSON.
func writeDryRun(w io.Writer, format string, d dryRun) error {
	if format == "json" {
		return writeJSON(w, d)
	}
	t := d.Timeouts
	fmt.Fprintf(w, "would migrate %s (%s, running: %v) to %s, mode %s\n", d.Container, d.ID, d.Running, d.Destination, d.Mode)
	fmt.Fprintf(w, "decision: %s\n", d.Decision)
	fmt.Fprintf(w, "page server: %s; timeouts: connect %s, no progress %s, total %s\n", d.PageServer,
		time.Duration(t.Connect), time.Duration(t.NoProgress), time.Duration(t.Total))
	if m := d.Measured; m != nil {
		fmt.Fprintf(w, "fact: memory to move = %s, processes: %d (what CRIU dumps: smaps_rollup Anonymous + Swap + Pss_Shmem)\n",
			sizeString(m.MemoryBytes), m.Processes)
		fmt.Fprintf(w, "fact: working set = %s touched within %v (accessed bits cleared, then Referenced summed)\n",
			sizeString(m.WorkingSetBytes), time.Duration(m.WorkingSetWindowMS)*time.Millisecond)
		fmt.Fprintf(w, "fact: bandwidth = %s\n", m.Bandwidth)
		fmt.Fprintf(w, "fact: soft-dirty = %v; lazy pages = %v\n", m.SoftDirty, m.LazyPages)
		fmt.Fprintf(w, "fact: max downtime = %v; modes built = %s\n", time.Duration(m.MaxDowntimeMS)*time.Millisecond, modeNames(m.BuiltModes))
		for _, e := range m.Evidence {
			fmt.Fprintf(w, "evidence: %s\n", e)
		}
	}
	keys := make([]string, 0, len(d.Facts))
	for k := range d.Facts {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		fmt.Fprintf(w, "fact: %s = %s\n", k, d.Facts[k])
	}
	for i, s := range d.Steps {
		fmt.Fprintf(w, "%d. %s\n", i+1, s)
	}
	return nil
}

func modeNames(ms []migrate.Mode) string {
	s := make([]string, len(ms))
	for i, m := range ms {
		s[i] = string(m)
	}
	return strings.Join(s, ", ")
}

// sizeString is n in the largest binary unit that keeps it >= 1.
func sizeString(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}
