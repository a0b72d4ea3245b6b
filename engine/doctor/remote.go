package doctor

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
)

// Versions are the releases a migration's two ends must agree on, as
// this host reports them (the "versions" key of the JSON report).
type Versions struct {
	// CRIU is criu --version's release, "" when unknown.
	CRIU string `json:"criu"`
	// Runtime is the wrapped runtime's base name (runc, crun), "" when
	// it was not found.
	Runtime string `json:"runtime"`
	// RuntimeVersion is its --version release, "" when unknown.
	RuntimeVersion string `json:"runtime_version"`
}

// versions gathers Versions once per run, from the facts the checks use.
func (p *probe) versions() *Versions {
	v := &Versions{}
	if c := p.criuInfo(); c.hasVersion {
		v.CRIU = c.version.String()
	}
	path, err := p.h.Run.LookPath(p.configInfo().settings.Runtime.Path)
	if err != nil {
		return v
	}
	v.Runtime = filepath.Base(path)
	out := p.run(path, "--version")
	if out.Err == nil && out.Code == 0 {
		if rv, ok := parseVersion(firstLine(out.Stdout, "")); ok {
			v.RuntimeVersion = rv.String()
		}
	}
	return v
}

// RemoteArea is the area the far end checks for --destination: what a
// migration needs there beyond what any host running crhook has.
const RemoteArea = "migrate"

// RemoteCommand is the command run on the far end, over ssh.
var RemoteCommand = []string{"crhook", "doctor", "--format", "json", "--only", RemoteArea}

// remoteReport is the part of the far end's JSON report compared here.
type remoteReport struct {
	Schema   int       `json:"schema"`
	Checks   []Result  `json:"checks"`
	Versions *Versions `json:"versions"`
}

// IDs of the checks AddRemote adds.
const (
	idReachable      = "destination.reachable"
	idCRIUVersion    = "destination.criu_version"
	idRuntimeVersion = "destination.runtime_version"
)

// AddRemote adds to r what the far end dest said in out: whether it
// answered, its checks with "remote." before their IDs, and whether its
// CRIU and runtime match this host's (r.Versions). ssh is the ssh
// command line that reaches dest, up to the host: out is what it printed
// with RemoteCommand appended.
func (r *Report) AddRemote(dest string, ssh []string, out Output) {
	cmd := strings.Join(append(slices.Clone(ssh), RemoteCommand...), " ")
	reach := Result{ID: idReachable, Title: "destination answers crhook doctor over ssh"}
	criu := Result{ID: idCRIUVersion, Title: "same CRIU release (major.minor) on both ends"}
	rt := Result{ID: idRuntimeVersion, Title: "same wrapped runtime on both ends"}
	rep, err := decodeRemote(out)
	if err != nil {
		reach.Status, reach.Evidence = Fail, []string{cmd + ": " + err.Error()}
		reach.Fix = fmt.Sprintf("make `%s true` work without a prompt (a key or agent, a known host key), "+
			"and install crhook on %s in root's PATH, the same release as here", strings.Join(ssh, " "), dest)
		skip := []string{"no report from " + dest + " (see " + idReachable + ")"}
		criu.Status, criu.Evidence = Skip, skip
		rt.Status, rt.Evidence = Skip, skip
		r.Results = append(r.Results, reach, criu, rt)
		return
	}
	reach.Status = OK
	reach.Evidence = []string{fmt.Sprintf("%s: exit status %d, %d checks", cmd, out.Code, len(rep.Checks))}
	r.Results = append(r.Results, reach)
	for _, res := range rep.Checks {
		res.ID = "remote." + res.ID
		res.Title += " (" + dest + ")"
		if res.Evidence == nil {
			res.Evidence = []string{}
		}
		r.Results = append(r.Results, res)
	}
	local := r.Versions
	if local == nil {
		local = &Versions{}
	}
	criu.Status, criu.Fix, criu.Evidence = compareCRIU(*local, rep.Versions, dest)
	rt.Status, rt.Fix, rt.Evidence = compareRuntime(*local, rep.Versions, dest)
	r.Results = append(r.Results, criu, rt)
}

// decodeRemote reads the far end's report. Any exit status the report
// gives is fine (1 and 2 are verdicts); no report is the failure, told
// with what ssh or the far end printed.
func decodeRemote(out Output) (*remoteReport, error) {
	if out.Err != nil {
		return nil, out.Err
	}
	var rep remoteReport
	if err := json.Unmarshal([]byte(out.Stdout), &rep); err != nil || rep.Schema == 0 {
		msg := firstLine(out.Stderr, firstLine(out.Stdout, "no output"))
		if out.Code == 255 {
			return nil, fmt.Errorf("ssh failed (exit status 255): %s", msg)
		}
		return nil, fmt.Errorf("exit status %d, no JSON report: %s", out.Code, msg)
	}
	if rep.Schema != SchemaVersion {
		return nil, fmt.Errorf("the far end's crhook writes doctor schema %d, this one reads %d", rep.Schema, SchemaVersion)
	}
	return &rep, nil
}

const upgradeRemote = "install the same crhook release on both ends"

// compareCRIU wants the same major.minor on both ends. CRIU keeps images
// readable by later releases but not by earlier ones, and in a lazy or
// streamed migration the source's page server and the destination's
// lazy-pages daemon or page server must speak the same page-xfer
// protocol; a migration also goes back one day. Equal major.minor is the
// rule that covers both directions and that a user can check; patch
// releases are bug fixes and may differ.
func compareCRIU(local Versions, remote *Versions, dest string) (Status, string, []string) {
	if remote == nil {
		return Warn, upgradeRemote, []string{dest + ": its crhook reports no versions (older than this one)"}
	}
	ev := []string{fmt.Sprintf("here: CRIU %s; %s: CRIU %s", orUnknown(local.CRIU), dest, orUnknown(remote.CRIU))}
	lv, lok := parseVersion(local.CRIU)
	rv, rok := parseVersion(remote.CRIU)
	if !lok || !rok {
		return Warn, "make criu --version work on both ends (crhook doctor, check criu.binary, on each)",
			append(ev, "cannot compare: a version is unknown")
	}
	if lv.nums[0] != rv.nums[0] || lv.nums[1] != rv.nums[1] {
		return Fail, fmt.Sprintf("install the same CRIU release (%d.%d) on both ends", lv.nums[0], lv.nums[1]),
			append(ev, "images and the page-server protocol are only compatible within one CRIU major.minor: an older CRIU cannot restore a newer one's images")
	}
	if lv != rv {
		ev = append(ev, "same major.minor; patch releases differ (bug fixes only)")
	}
	return OK, "", ev
}

// compareRuntime wants the same runtime on both ends: the checkpoint a
// runtime writes (descriptors.json, its CRIU options) is restored by the
// destination's, and crun has no lazy pages. A different release of the
// same runtime is a warning: untested, not known to break.
func compareRuntime(local Versions, remote *Versions, dest string) (Status, string, []string) {
	if remote == nil {
		return Warn, upgradeRemote, []string{dest + ": its crhook reports no versions (older than this one)"}
	}
	ev := []string{fmt.Sprintf("here: %s %s; %s: %s %s", orUnknown(local.Runtime), local.RuntimeVersion,
		dest, orUnknown(remote.Runtime), remote.RuntimeVersion)}
	sameRuntime := `set the same runtime.path in /etc/crhook/crhook.toml on both ends (runc for lazy migration)`
	switch {
	case local.Runtime == "" || remote.Runtime == "":
		return Warn, "install the wrapped runtime on both ends (see runtime.criu_config)", append(ev, "cannot compare: a runtime was not found")
	case local.Runtime != remote.Runtime:
		return Warn, sameRuntime, append(ev, "the destination restores with another runtime than the one that dumps: untested by crhook migrate")
	}
	lv, lok := parseVersion(local.RuntimeVersion)
	rv, rok := parseVersion(remote.RuntimeVersion)
	switch {
	case !lok || !rok:
		return Warn, "make the runtime's --version work on both ends", append(ev, "cannot compare: a version is unknown")
	case lv.nums[0] != rv.nums[0] || lv.nums[1] != rv.nums[1]:
		return Warn, fmt.Sprintf("install the same %s release on both ends", local.Runtime),
			append(ev, "different major.minor releases of the runtime: untested by crhook migrate")
	}
	return OK, "", ev
}

func orUnknown(s string) string {
	if s == "" {
		return "unknown"
	}
	return s
}
