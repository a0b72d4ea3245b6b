package engine

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"

	migrate "github.com/crhook/crhook/engine/migrate/plan" // the plan only: engine/migrate links net/url
)

// ErrUntrustedPlan is a migration plan file the shim must not act on,
// because someone other than crhook's user could have written it.
var ErrUntrustedPlan = errors.New("untrusted migration plan")

// maxPlanSize bounds what ReadPlan reads; a real plan is under 1 KiB.
const maxPlanSize = 64 << 10

// PlanPath is where the migration plan of container id lives: in its
// state directory, next to its criu.conf.
func PlanPath(stateDir, id string) (string, error) {
	conf, err := ConfPath(stateDir, id)
	if err != nil {
		return "", err
	}
	return migrate.PlanPath(filepath.Dir(conf)), nil
}

// WritePlan validates p and writes it as container id's plan, the way
// the generated criu.conf is written: the state directory walked without
// following links, file 0600 through a temp file and rename.
func WritePlan(stateDir, id string, p *migrate.Plan) error {
	path, err := PlanPath(stateDir, id)
	if err != nil {
		return err
	}
	data, err := p.Marshal()
	if err != nil {
		return fmt.Errorf("write migration plan %q: %w", path, err)
	}
	d, err := openStateDir(stateDir, true, "containers", id)
	if err != nil {
		return fmt.Errorf("write migration plan of container %s: %w", id, err)
	}
	defer d.close()
	return writeFileAt(d, filepath.Base(path), data, 0o600)
}

// ReadPlan returns container id's migration plan, or nil when it has none
// (an ordinary checkpoint or restore). A plan is only trusted when it is
// a regular file owned by this process's user and private to it, not a
// symlink; anything else is an error: the shim fails the command rather
// than run an ordinary checkpoint in a migration's place, or a
// migration nobody asked for.
func ReadPlan(stateDir, id string) (*migrate.Plan, error) {
	path, err := PlanPath(stateDir, id)
	if err != nil {
		return nil, err
	}
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		if errors.Is(err, syscall.ELOOP) {
			return nil, fmt.Errorf("%w: %s is a symlink; remove it", ErrUntrustedPlan, path)
		}
		return nil, fmt.Errorf("open migration plan %q: %w", path, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("stat migration plan %q: %w", path, err)
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	switch {
	case !fi.Mode().IsRegular():
		return nil, fmt.Errorf("%w: %s is not a regular file (%v); remove it", ErrUntrustedPlan, path, fi.Mode().Type())
	case !ok || int(st.Uid) != os.Geteuid():
		return nil, fmt.Errorf("%w: %s is owned by uid %d, not %d; remove it", ErrUntrustedPlan, path, st.Uid, os.Geteuid())
	case fi.Mode().Perm()&0o077 != 0:
		return nil, fmt.Errorf("%w: %s has mode %v, others may write it; remove it", ErrUntrustedPlan, path, fi.Mode().Perm())
	}
	data, err := io.ReadAll(io.LimitReader(f, maxPlanSize+1))
	if err != nil {
		return nil, fmt.Errorf("read migration plan %q: %w", path, err)
	}
	if len(data) > maxPlanSize {
		return nil, fmt.Errorf("%w: %s is larger than %d bytes", migrate.ErrPlan, path, maxPlanSize)
	}
	p, err := migrate.ParsePlan(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return p, nil
}
