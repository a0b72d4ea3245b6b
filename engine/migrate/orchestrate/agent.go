package orchestrate

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"github.com/crhook/crhook/engine"
	"github.com/crhook/crhook/engine/migrate/pki"
)

// The agent is the far end of the control channel: `crhook
// migrate-agent` runs these on either host, as root, for the orchestrator.

// AgentPrepare reads an agentRequest from r, writes this host's TLS files
// into the migration's directory and the plan, naming them, into
// container id's state directory.
func AgentPrepare(stateDir, id string, r io.Reader) error {
	var req agentRequest
	dec := json.NewDecoder(io.LimitReader(r, 1<<20))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		return fmt.Errorf("read the migration request: %w", err)
	}
	if req.Plan == nil || req.Material == nil {
		return errors.New("the migration request has no plan or no TLS material")
	}
	role := pki.RoleServer
	if req.Role == pki.RoleClient.String() {
		role = pki.RoleClient
	} else if req.Role != pki.RoleServer.String() {
		return fmt.Errorf("the migration request's role %q is neither server nor client", req.Role)
	}
	dir, err := migrationDir(stateDir, req.Plan.MigrationID)
	if err != nil {
		return err
	}
	paths, err := req.Material.WriteFiles(filepath.Join(dir, "tls-"+role.String()), role)
	if err != nil {
		return err
	}
	req.Plan.TLS = paths
	return engine.WritePlan(stateDir, id, req.Plan)
}

func migrationDir(stateDir, migID string) (string, error) {
	if migID == "" || strings.ContainsAny(migID, "/\x00") || migID == "." || migID == ".." {
		return "", fmt.Errorf("migration id %q is not a file name", migID)
	}
	dir := engine.MigrationDir(stateDir, migID)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", fmt.Errorf("create migration directory: %w", err)
	}
	return dir, nil
}

// AgentProgress reports the page server (role server) or the lazy-pages
// daemon (role client) of migration migID on this host.
func AgentProgress(stateDir, role, migID string) (Progress, error) {
	dir, err := migrationDir(stateDir, migID)
	if err != nil {
		return Progress{}, err
	}
	rc := engine.PageServerRC
	if role == pki.RoleClient.String() {
		rc = engine.LazyPagesRC
	}
	var p Progress
	readRC := func() error {
		data, err := os.ReadFile(filepath.Join(dir, rc))
		switch {
		case err == nil:
			p.Done = true
			if p.Code, err = strconv.Atoi(strings.TrimSpace(string(data))); err != nil {
				return fmt.Errorf("%s: %q is no exit status", filepath.Join(dir, rc), data)
			}
		case !errors.Is(err, fs.ErrNotExist):
			return err
		}
		return nil
	}
	if err := readRC(); err != nil {
		return p, err
	}
	if pgid, ok := readPGID(dir); ok {
		p.Moved = groupIO(pgid)
		if !p.Done && !groupAlive(pgid) {
			// The CRIU process is gone. Its supervisor, the group's
			// leader, writes its exit status right after: it may have
			// done so since the read above, or be about to. Only a
			// supervisor gone without a status was killed; calling an
			// exit 0 a failure here would kill a destination that has
			// every page while its source is already gone.
			if err := readRC(); err != nil {
				return p, err
			}
			if !p.Done && !leaderAlive(pgid) {
				p.Done, p.Code = true, 137
			}
		}
	}
	return p, nil
}

// leaderAlive: process pgid still runs (not a zombie) and leads its group.
func leaderAlive(pgid int) bool {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pgid))
	if err != nil {
		return false
	}
	s := string(data)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	// state ppid pgrp
	return len(f) >= 3 && f[0] != "Z" && f[0] != "X" && f[2] == strconv.Itoa(pgid)
}

// AgentAbort kills migration migID's CRIU processes on this host and
// removes its plan and files.
func AgentAbort(stateDir, id, migID string) error {
	dir, err := migrationDir(stateDir, migID)
	if err != nil {
		return err
	}
	if pgid, ok := readPGID(dir); ok {
		_ = syscall.Kill(-pgid, syscall.SIGKILL)
	}
	// The source's dumped tasks, kept frozen for a rollback, must not
	// outlive an aborted migration: they would be a second copy.
	err = deleteKept(dir)
	return errors.Join(err, AgentCleanup(stateDir, id, migID))
}

// deleteKept runs the runtime's delete --force that crhook-runtime
// recorded for the tasks it kept (source only); gone already is fine.
func deleteKept(dir string) error {
	data, err := os.ReadFile(filepath.Join(dir, engine.DeleteArgv))
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	var argv []string
	if err == nil {
		err = json.Unmarshal(data, &argv)
	}
	if err != nil {
		return fmt.Errorf("read %q: %w", filepath.Join(dir, engine.DeleteArgv), err)
	}
	if len(argv) < 2 || !filepath.IsAbs(argv[0]) {
		return fmt.Errorf("%q holds no runtime command line: %q", filepath.Join(dir, engine.DeleteArgv), data)
	}
	out, err := exec.Command(argv[0], argv[1:]...).CombinedOutput()
	if err != nil && !strings.Contains(string(out), "does not exist") {
		return fmt.Errorf("delete the source's kept tasks: %s: %w: %s", strings.Join(argv, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

// AgentCleanup removes migration migID's plan and files; what still runs
// of its supervisor (the timeout's sleep) is stopped.
func AgentCleanup(stateDir, id, migID string) error {
	dir, err := migrationDir(stateDir, migID)
	if err != nil {
		return err
	}
	if pgid, ok := readPGID(dir); ok && !groupHasCRIU(pgid) {
		_ = syscall.Kill(-pgid, syscall.SIGKILL)
	}
	var errs []error
	if path, err := engine.PlanPath(stateDir, id); err == nil {
		if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, err)
		}
		// The directory prepare made on a destination the container
		// never reached; a container's own (criu.conf in it) stays.
		_ = os.Remove(filepath.Dir(path))
	}
	return errors.Join(append(errs, os.RemoveAll(dir))...)
}

func readPGID(dir string) (int, bool) {
	data, err := os.ReadFile(filepath.Join(dir, engine.PGID))
	if err != nil {
		return 0, false
	}
	n, err := strconv.Atoi(strings.TrimSpace(string(data)))
	return n, err == nil && n > 1
}

// groupMembers lists the processes of group pgid with their names.
func groupMembers(pgid int) map[int]string {
	m := map[int]string{}
	procs, _ := filepath.Glob("/proc/[0-9]*/stat")
	for _, p := range procs {
		data, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		s := string(data)
		i := strings.LastIndexByte(s, ')')
		j := strings.IndexByte(s, '(')
		if i < 0 || j < 0 {
			continue
		}
		f := strings.Fields(s[i+1:])
		// state ppid pgrp
		if len(f) < 3 || f[0] == "Z" || f[2] != strconv.Itoa(pgid) {
			continue
		}
		pid, _ := strconv.Atoi(filepath.Base(filepath.Dir(p)))
		m[pid] = s[j+1 : i]
	}
	return m
}

func groupAlive(pgid int) bool { return groupHasCRIU(pgid) }

// groupHasCRIU: the group runs more than its supervisor's timer.
func groupHasCRIU(pgid int) bool {
	for _, name := range groupMembers(pgid) {
		if name != "sleep" && name != "sh" {
			return true
		}
	}
	return false
}

// groupIO is the bytes read and written by the group's processes: it
// grows while pages move.
func groupIO(pgid int) int64 {
	var n int64
	for pid := range groupMembers(pgid) {
		data, err := os.ReadFile(fmt.Sprintf("/proc/%d/io", pid))
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(data), "\n") {
			k, v, ok := strings.Cut(line, ": ")
			if ok && (k == "rchar" || k == "wchar") {
				x, _ := strconv.ParseInt(v, 10, 64)
				n += x
			}
		}
	}
	return n
}
