package plan

import (
	"bytes"
	"encoding/json"
	"fmt"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

// PlanVersion is the plan format this crhook writes and the only one it
// reads. Bump it whenever a field changes meaning; a shim must never act
// on a plan it may misread (it would dump or restore the wrong way).
const PlanVersion = 1

// PlanFile is the plan's name inside the container's state directory
// (STATE_DIR/containers/ID, next to the generated criu.conf).
const PlanFile = "migration.json"

// PlanPath is where the plan for the container whose state directory is
// containerStateDir lives. The caller has validated the container ID.
func PlanPath(containerStateDir string) string {
	return filepath.Join(containerStateDir, PlanFile)
}

// Mode is how memory moves.
type Mode string

// The modes of `crhook migrate --mode`. A plan holds a concrete mode:
// auto is resolved (Decide) before a plan is written.
const (
	ModeStream  Mode = "stream"  // the final dump goes straight into a page server on the destination
	ModeLazy    Mode = "lazy"    // post-copy: the destination runs at once and faults pages in from the source
	ModePrecopy Mode = "precopy" // pre-dump rounds while running, then a final streamed dump
	ModeAuto    Mode = "auto"    // chosen from measured facts
)

// ParseMode accepts the names `--mode` takes.
func ParseMode(s string) (Mode, error) {
	switch m := Mode(s); m {
	case ModeStream, ModeLazy, ModePrecopy, ModeAuto:
		return m, nil
	}
	return "", fmt.Errorf("%w %q: want stream, lazy, precopy or auto", ErrMode, s)
}

// Status is where the migration stands, as the shim reports it back in
// the same file.
type Status string

// Statuses, in the order a migration goes through them.
const (
	StatusPlanned   Status = "planned"   // written by the orchestrator; the shim has not acted
	StatusServing   Status = "serving"   // source: the page server is up (runc's status byte arrived)
	StatusRestored  Status = "restored"  // destination: the process runs (lazy: on top of the lazy-pages daemon)
	StatusCommitted Status = "committed" // every page moved; the source is gone
	StatusFailed    Status = "failed"    // see Error; before commit the source was resumed
)

// Plan tells the runtime shim how to checkpoint or restore one container
// as part of a migration. The orchestrator writes it (0600, atomically)
// into the container's state directory before it calls podman; the shim
// reads it at checkpoint (source) or restore (destination), and nothing
// else passes between them.
type Plan struct {
	Version int  `json:"version"`
	Mode    Mode `json:"mode"`
	// MigrationID names this migration in logs and file names.
	MigrationID string `json:"migration_id"`
	// PageServer is the page server of this migration: on the source for
	// lazy (the destination's lazy-pages daemon connects to it), on the
	// destination for stream and precopy.
	PageServer PageServer `json:"page_server"`
	// TLS is the material for CRIU's --tls options, on this host.
	TLS TLSPaths `json:"tls"`
	// ParentPath is the last pre-dump's image directory (precopy only),
	// relative to the migration's run directory on that host:
	// "rounds/N". The shim turns it into runc's --parent-path, relative
	// to the image directory.
	ParentPath string `json:"parent_path,omitempty"`
	// Round is the pre-copy round the source's next pre-dump is (precopy
	// only; 0 before the first and for the final dump).
	Round int `json:"round,omitempty"`
	// Final is how a pre-copy's final dump goes (precopy only): stream
	// (the default, "" too) into a page server on the destination, or
	// lazy: post-copy on top of the last round, the source's page server
	// serving what changed since it. PageServer and TLS are then a lazy
	// migration's (the source serves).
	Final    Mode     `json:"final,omitempty"`
	Timeouts Timeouts `json:"timeouts"`
	Status   Status   `json:"status"`
	// Error says why, when Status is failed.
	Error string `json:"error,omitempty"`
}

// PageServer is an address and port CRIU's page server listens on or a
// client connects to.
type PageServer struct {
	Address string `json:"address"`
	Port    int    `json:"port"`
}

// String is the ADDR:PORT form runc's --page-server takes.
func (p PageServer) String() string {
	// net.JoinHostPort, without linking package net into crhook-runtime
	// (it reads the plan on every checkpoint and restore).
	if strings.Contains(p.Address, ":") {
		return "[" + p.Address + "]:" + strconv.Itoa(p.Port)
	}
	return p.Address + ":" + strconv.Itoa(p.Port)
}

// TLSPaths are the files CRIU's --tls-cacert, --tls-cert and --tls-key
// name. Each host gets its own pair (server or client) and the CA
// certificate; no host ever gets the CA's key.
type TLSPaths struct {
	CACert string `json:"ca_cert"`
	Cert   string `json:"cert"`
	Key    string `json:"key"`
}

// Timeouts bound every wait of the shim: no CRIU step may wait forever
// (the lazy page server accept()s without one).
type Timeouts struct {
	// Connect: the peer must connect to the page server within it.
	Connect Duration `json:"connect"`
	// NoProgress: the page stream may stall at most this long.
	NoProgress Duration `json:"no_progress"`
	// Total: the whole migration, after which the source is resumed
	// (before commit) or the destination killed (after).
	Total Duration `json:"total"`
}

// Duration is a time.Duration written as Go's duration string ("30s"),
// so a person reading the plan sees units.
type Duration time.Duration

// MarshalJSON writes the duration string.
func (d Duration) MarshalJSON() ([]byte, error) {
	return json.Marshal(time.Duration(d).String())
}

// UnmarshalJSON reads a duration string; a bare number is refused, it
// would have no unit.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("duration must be a string such as \"30s\", got %s", b)
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("duration %q: %w", s, err)
	}
	*d = Duration(v)
	return nil
}

// Marshal validates p and encodes it, indented, with a final newline.
func (p *Plan) Marshal() ([]byte, error) {
	if err := p.Validate(); err != nil {
		return nil, err
	}
	b, err := json.MarshalIndent(p, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("%w: encode: %w", ErrPlan, err)
	}
	return append(b, '\n'), nil
}

// ParsePlan decodes a plan strictly: the version first (a plan of another
// version is refused as such, whatever else it holds; json.Unmarshal
// also refuses anything after the object), then every field, refusing
// unknown ones, then Validate.
func ParsePlan(data []byte) (*Plan, error) {
	var head struct {
		Version *int `json:"version"`
	}
	if err := json.Unmarshal(data, &head); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrPlan, err)
	}
	if head.Version == nil {
		return nil, fmt.Errorf("%w: no \"version\" field", ErrPlan)
	}
	if *head.Version != PlanVersion {
		return nil, fmt.Errorf("%w: version %d, this crhook reads version %d: run the same crhook version on both hosts",
			ErrPlanVersion, *head.Version, PlanVersion)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var p Plan
	if err := dec.Decode(&p); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrPlan, err)
	}
	if err := p.Validate(); err != nil {
		return nil, err
	}
	return &p, nil
}

// Validate checks what the shim relies on: a concrete mode, a usable page
// server, absolute TLS paths (all three: the page server must never run
// without TLS), positive timeouts and a known status.
func (p *Plan) Validate() error {
	var errs []string
	if p.Version != PlanVersion {
		errs = append(errs, fmt.Sprintf("version is %d, want %d", p.Version, PlanVersion))
	}
	switch p.Mode {
	case ModeStream, ModeLazy, ModePrecopy:
	case ModeAuto:
		errs = append(errs, "mode auto must be resolved before a plan is written")
	default:
		errs = append(errs, fmt.Sprintf("mode %q is not stream, lazy or precopy", p.Mode))
	}
	if p.MigrationID == "" || strings.ContainsAny(p.MigrationID, "/\x00") || p.MigrationID == "." || p.MigrationID == ".." {
		errs = append(errs, fmt.Sprintf("migration_id %q must be a non-empty file name", p.MigrationID))
	}
	if p.PageServer.Address == "" || strings.HasPrefix(p.PageServer.Address, "-") || strings.ContainsAny(p.PageServer.Address, " \t\n/") {
		errs = append(errs, fmt.Sprintf("page_server.address %q is not a host name or IP address", p.PageServer.Address))
	}
	if p.PageServer.Port < 1 || p.PageServer.Port > 65535 {
		errs = append(errs, fmt.Sprintf("page_server.port %d is not in 1..65535", p.PageServer.Port))
	}
	for name, path := range map[string]string{"tls.ca_cert": p.TLS.CACert, "tls.cert": p.TLS.Cert, "tls.key": p.TLS.Key} {
		if !filepath.IsAbs(path) || filepath.Clean(path) != path {
			errs = append(errs, fmt.Sprintf("%s %q must be a clean absolute path", name, path))
		}
	}
	if p.Mode == ModePrecopy && p.ParentPath != "" && (filepath.IsAbs(p.ParentPath) || strings.ContainsRune(p.ParentPath, 0)) {
		errs = append(errs, fmt.Sprintf("parent_path %q must be relative to the migration directory (rounds/N)", p.ParentPath))
	}
	if p.Round < 0 || (p.Round != 0 && p.Mode != ModePrecopy) {
		errs = append(errs, fmt.Sprintf("round %d: only precopy has rounds, numbered from 1", p.Round))
	}
	switch {
	case p.Final != "" && p.Mode != ModePrecopy:
		errs = append(errs, fmt.Sprintf("final is set for mode %s; only precopy has a final dump after its rounds", p.Mode))
	case p.Final != "" && p.Final != ModeStream && p.Final != ModeLazy:
		errs = append(errs, fmt.Sprintf("final %q is not stream or lazy", p.Final))
	}
	if p.Mode != ModePrecopy && p.ParentPath != "" {
		errs = append(errs, fmt.Sprintf("parent_path is set for mode %s; only precopy has a parent image", p.Mode))
	}
	for name, d := range map[string]Duration{"timeouts.connect": p.Timeouts.Connect, "timeouts.no_progress": p.Timeouts.NoProgress, "timeouts.total": p.Timeouts.Total} {
		if d <= 0 {
			errs = append(errs, fmt.Sprintf("%s must be positive, got %s", name, time.Duration(d)))
		}
	}
	switch p.Status {
	case StatusPlanned, StatusServing, StatusRestored, StatusCommitted:
		if p.Error != "" {
			errs = append(errs, fmt.Sprintf("error is set but status is %s", p.Status))
		}
	case StatusFailed:
		if p.Error == "" {
			errs = append(errs, "status failed needs an error")
		}
	default:
		errs = append(errs, fmt.Sprintf("status %q is unknown", p.Status))
	}
	if len(errs) > 0 {
		slices.Sort(errs)
		return fmt.Errorf("%w: %s", ErrPlan, strings.Join(errs, "; "))
	}
	return nil
}
