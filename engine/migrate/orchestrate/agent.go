package orchestrate

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"github.com/crhook/crhook/engine"
	"github.com/crhook/crhook/engine/migrate"
	"github.com/crhook/crhook/engine/migrate/pki"
)

// The agent is the far end of the control channel: `crhook
// migrate-agent` runs these on either host, as root, for the orchestrator.

// AgentPrepare reads an agentRequest from r, writes this host's TLS files
// into the migration's directory and the plan, naming them, into
// container id's state directory.
func AgentPrepare(stateDir, id string, r io.Reader) error {
	req, role, err := readRequest(r)
	if err != nil {
		return err
	}
	return install(stateDir, id, req, role)
}

// AgentFail marks container id's plan failed, for the reason given: its
// next restore rolls the migration back (engine rollbackRestore).
func AgentFail(stateDir, id, reason string) error {
	p, err := engine.ReadPlan(stateDir, id)
	if err != nil {
		return err
	}
	if p == nil {
		return fmt.Errorf("container %s has no migration plan on this host: nothing to roll back", id)
	}
	p.Status, p.Error = migrate.StatusFailed, reason
	return engine.WritePlan(stateDir, id, p)
}

// AgentServe is AgentPrepare for a stream's destination, which then
// starts the page server the source's dump goes into (on an ephemeral
// port of the plan's address when the plan's port is 0) and returns its
// port once it listens.
func AgentServe(stateDir, id string, r io.Reader) (int, error) {
	req, role, err := readRequest(r)
	if err != nil {
		return 0, err
	}
	if role != pki.RoleServer || req.Plan.Mode != migrate.ModeStream {
		return 0, fmt.Errorf("a page server is served for mode stream in the server role, not %s as %s", req.Plan.Mode, req.Role)
	}
	if req.Plan.PageServer.Port == 0 {
		if req.Plan.PageServer.Port, err = freePort(req.Plan.PageServer.Address); err != nil {
			return 0, err
		}
	}
	if err := install(stateDir, id, req, role); err != nil {
		return 0, err
	}
	if err := engine.StartPageServer(stateDir, req.Plan, engine.CriuBinary("criu")); err != nil {
		return 0, err
	}
	return req.Plan.PageServer.Port, nil
}

// freePort asks the kernel for a free port on addr, this host's address
// the source reaches; the page server takes it a moment later.
func freePort(addr string) (int, error) {
	l, err := net.Listen("tcp", net.JoinHostPort(addr, "0"))
	if err != nil {
		return 0, fmt.Errorf("pick a port for the page server on %s: %w", addr, err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	return port, l.Close()
}

func readRequest(r io.Reader) (agentRequest, pki.Role, error) {
	var req agentRequest
	dec := json.NewDecoder(io.LimitReader(r, 1<<20))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		return req, 0, fmt.Errorf("read the migration request: %w", err)
	}
	if req.Plan == nil || req.Material == nil {
		return req, 0, errors.New("the migration request has no plan or no TLS material")
	}
	role := pki.RoleServer
	if req.Role == pki.RoleClient.String() {
		role = pki.RoleClient
	} else if req.Role != pki.RoleServer.String() {
		return req, 0, fmt.Errorf("the migration request's role %q is neither server nor client", req.Role)
	}
	return req, role, nil
}

// install writes req's TLS files for role and its plan, naming them.
func install(stateDir, id string, req agentRequest, role pki.Role) error {
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

// AgentProgress reports the page server (role server: a lazy source's,
// a stream destination's) or the lazy-pages daemon (role client) of
// migration migID on this host.
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
	if ents, err := os.ReadDir(filepath.Join(dir, engine.StreamPages)); err == nil {
		for _, e := range ents {
			if fi, err := e.Info(); err == nil && fi.Mode().IsRegular() {
				p.PageBytes += fi.Size()
			}
		}
	}
	if pgid, ok := readPGID(dir); ok {
		p.Moved = engine.GroupIO(pgid)
		if !p.Done && engine.GroupGone(pgid) {
			// Killed with its supervisor, or the supervisor wrote the
			// status and left just now: look once more.
			p.Done, p.Code = true, 137
			if data, err := os.ReadFile(filepath.Join(dir, rc)); err == nil {
				if code, err := strconv.Atoi(strings.TrimSpace(string(data))); err == nil {
					p.Code = code
				}
			}
		}
	}
	return p, nil
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
	if pgid, ok := readPGID(dir); ok && !engine.GroupWorks(pgid) {
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
