package engine

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	migrate "github.com/crhook/crhook/engine/migrate/plan" // the plan only: engine/migrate links net/url
)

// A streamed migration (plan mode stream): the source's final dump goes
// straight into a `criu page-server` on the destination, and only the
// small image directory travels through podman's export and import.
//
//	destination  StartPageServer (crhook migrate-agent serve): page server,
//	             TLS server, writing into MIGRATION_DIR/pages
//	source       checkpoint: pause, runc checkpoint --leave-running
//	             --page-server, synchronously; the tasks stay frozen
//	destination  restore: only after the page server exited 0, its images
//	             join podman's, then an ordinary restore
//
// Files of the run directory (MigrationDir) for a stream, besides those
// of lazy.go (PageServerRC and PageServerOut are the destination's page
// server here).
const (
	// StreamPages (destination) is the directory the page server writes
	// the pagemap and pages images into.
	StreamPages = "pages"
	// PageServerLog (destination) is the page server's CRIU log.
	PageServerLog = "page-server.log"
	// DumpRC and DumpOut (source) are runc checkpoint's exit status and
	// output: the shim waits for them, under a supervisor that kills the
	// dump at the plan's total timeout.
	DumpRC  = "dump.rc"
	DumpOut = "dump.out"
)

// pollInterval is how often the shim looks at a process it waits for.
const pollInterval = 20 * time.Millisecond

// StartPageServer starts the destination's page server for plan p, as
// `crhook migrate-agent serve` asks it to: `criu page-server` with TLS,
// listening on p's address and port, under the supervisor (own process
// group, killed at the total timeout, exit status in PageServerRC). It
// returns once CRIU says it listens (its status fd), or fails within the
// plan's connect timeout having killed it.
func StartPageServer(stateDir string, p *migrate.Plan, criu string) error {
	if err := p.Validate(); err != nil {
		return err
	}
	if p.Mode != migrate.ModeStream {
		return fmt.Errorf("a page server on the destination is for mode stream, not %s", p.Mode)
	}
	dir := MigrationDir(stateDir, p.MigrationID)
	pages := filepath.Join(dir, StreamPages)
	if err := os.MkdirAll(pages, 0o700); err != nil {
		return fmt.Errorf("create the page server's directory: %w", err)
	}
	args, err := PageServerArgs(p.PageServer, p.TLS, pages, filepath.Join(dir, PageServerLog))
	if err != nil {
		return err
	}
	statusR, statusW, err := os.Pipe()
	if err != nil {
		return err
	}
	defer statusR.Close()
	pgid, err := startSupervised(dir, PageServerOut, PageServerRC, time.Duration(p.Timeouts.Total), append([]string{criu}, args...), "", []*os.File{statusW})
	statusW.Close()
	if err != nil {
		return err
	}
	_ = statusR.SetReadDeadline(time.Now().Add(time.Duration(p.Timeouts.Connect)))
	if _, err := io.ReadFull(statusR, make([]byte, 1)); err != nil {
		_ = syscall.Kill(-pgid, syscall.SIGKILL)
		out, _ := os.ReadFile(filepath.Join(dir, PageServerOut))
		return fmt.Errorf("criu page-server on %s did not come up within %v (%w; log %s): %s", p.PageServer,
			time.Duration(p.Timeouts.Connect), err, filepath.Join(dir, PageServerLog), strings.TrimSpace(string(out)))
	}
	return nil
}

// streamCheckpoint dumps the container into the destination's page
// server. It pauses the container first and dumps with --leave-running:
// CRIU puts back the freezer state it found, so the dumped tasks stay
// frozen (never two running copies), kept by keepForMigration as the
// copy a rollback restores. It waits for runc, bounded by the plan's
// total and no-progress timeouts; on any failure the container is
// resumed and nothing was moved.
func (r *runner) streamCheckpoint(id string, p *migrate.Plan) int {
	fail := func(err error) int {
		fmt.Fprintf(r.stderr, "crhook: streamed checkpoint of container %s for migration %s failed: %v\n", id, p.MigrationID, err)
		return 1
	}
	if err := r.finalDumpRefusal(); err != nil {
		return fail(err)
	}
	opts, err := CriuOptsFromPlan(p, "checkpoint", 0)
	if err != nil {
		return fail(err)
	}
	args, err := opts.Args(KindOf(r.rt.Path()), "checkpoint", r.inv.rest)
	if err != nil {
		return fail(err)
	}
	if err := r.addMigrationConf(p, opts); err != nil {
		return fail(err)
	}
	st, err := r.status(id)
	if err != nil {
		return fail(fmt.Errorf("read its state: %w; nothing was dumped", err))
	}
	if st != "running" {
		// A paused container is its owner's: a dump that must leave it
		// frozen could not tell the owner's pause from crhook's.
		return fail(fmt.Errorf("it is %s, not running; nothing was dumped", st))
	}
	if err := r.pauseForDump(id); err != nil {
		return fail(err)
	}
	dir := MigrationDir(r.settings.StateDir, p.MigrationID)
	argv := append(append(append([]string{r.rt.Path()}, r.inv.global...), "checkpoint"), args...)
	code, err := runWatched(dir, DumpOut, DumpRC, argv, time.Duration(p.Timeouts.Total), time.Duration(p.Timeouts.NoProgress))
	if err != nil || code != 0 {
		out, _ := os.ReadFile(filepath.Join(dir, DumpOut))
		r.explain(id, string(out))
		// Paused by crhook: resume it, whatever CRIU left.
		r.unfreeze(id, "running", nil)
		if err == nil {
			err = fmt.Errorf("%s exited %d: %s", shellJoin(argv), code, strings.TrimSpace(string(out)))
		}
		return fail(fmt.Errorf("%w; the container runs on here", err))
	}
	del := r.runtimeCmd("delete", id)
	del = append(del[:len(del)-1], "--force", id)
	if data, err := json.Marshal(del); err == nil {
		_ = os.WriteFile(filepath.Join(dir, DeleteArgv), data, 0o600)
	}
	p.Status = migrate.StatusServing
	if err := WritePlan(r.settings.StateDir, id, p); err != nil {
		// Without "serving" in the plan, podman's delete would kill the
		// tasks a rollback needs.
		fmt.Fprintf(r.stderr, "crhook: warning: a failure before the destination runs cannot be rolled back: %v\n", err)
	}
	fmt.Fprintf(r.stderr, "crhook: container %s dumped into the page server at %s for migration %s; its tasks stay frozen here until the migration commits or rolls back\n",
		ShortID(id), p.PageServer, p.MigrationID)
	return 0
}

// pauseForDump freezes a running container before crhook dumps it for a
// migration: runc's freezer loop retries within microseconds, where
// CRIU's polls the cgroup v1 freezer every 100 ms. A pause that fails is
// undone (the container runs on); every failure after it must resume
// the container too (unfreeze with "running").
func (r *runner) pauseForDump(id string) error {
	if _, err := r.rt.Output(r.runtimeCmd("pause", id)[1:]); err != nil {
		r.unfreeze(id, "running", nil)
		return fmt.Errorf("pause it before the dump: %w; nothing was dumped", err)
	}
	return nil
}

// runWatched runs argv under supervisorScript in dir and waits for it.
// It kills the whole group when argv runs longer than total, or when
// the group reads and writes nothing for noProgress.
func runWatched(dir, out, rc string, argv []string, total, noProgress time.Duration) (int, error) {
	pgid, err := startSupervised(dir, out, rc, total, argv, "", nil)
	if err != nil {
		return 0, err
	}
	// Once the group is gone its id may be reused: nobody may kill it
	// by the recorded id any more.
	defer func() { _ = os.Remove(filepath.Join(dir, PGID)) }()
	start := time.Now()
	last, lastIO := start, int64(-1)
	for {
		if data, err := os.ReadFile(filepath.Join(dir, rc)); err == nil {
			code, err := strconv.Atoi(strings.TrimSpace(string(data)))
			if err != nil {
				return 0, fmt.Errorf("%s: %q is no exit status", filepath.Join(dir, rc), data)
			}
			return code, nil
		}
		now := time.Now()
		switch n := GroupIO(pgid); {
		case n != lastIO:
			last, lastIO = now, n
		case now.Sub(last) > noProgress:
			_ = syscall.Kill(-pgid, syscall.SIGKILL)
			return 0, fmt.Errorf("%s made no progress for %v: killed", shellJoin(argv), noProgress)
		}
		if now.Sub(start) > total+5*time.Second { // the supervisor kills it at total
			_ = syscall.Kill(-pgid, syscall.SIGKILL)
			return 0, fmt.Errorf("%s did not end within %v: killed", shellJoin(argv), total)
		}
		time.Sleep(pollInterval)
	}
}

// streamRestore restores the container on the destination from the image
// directory podman imported plus the pages its page server received. It
// refuses unless that page server exited 0: only then did every page
// arrive, and a restore from part of them would run on missing memory.
func (r *runner) streamRestore(id string, p *migrate.Plan) int {
	fail := func(err error) int {
		fmt.Fprintf(r.stderr, "crhook: streamed restore of container %s for migration %s failed: %v; nothing runs\n", id, p.MigrationID, err)
		return 1
	}
	images := r.inv.flag("--image-path", "")
	if !filepath.IsAbs(images) {
		return fail(fmt.Errorf("restore has no absolute --image-path (%q)", images))
	}
	dir := MigrationDir(r.settings.StateDir, p.MigrationID)
	rc := filepath.Join(dir, PageServerRC)
	data, err := os.ReadFile(rc)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return fail(fmt.Errorf("the page server has not finished (no %s): pages may still be missing", rc))
	case err != nil:
		return fail(err)
	case strings.TrimSpace(string(data)) != "0":
		return fail(fmt.Errorf("the page server exited %s (%s, log %s): pages are missing", strings.TrimSpace(string(data)), rc,
			filepath.Join(dir, PageServerLog)))
	}
	if err := movePages(filepath.Join(dir, StreamPages), images); err != nil {
		return fail(err)
	}
	if code, started := r.run(nil); code != 0 {
		if started {
			r.explain(id, "")
		}
		return code
	}
	p.Status = migrate.StatusRestored
	if err := WritePlan(r.settings.StateDir, id, p); err != nil {
		fmt.Fprintf(r.stderr, "crhook: warning: %v\n", err)
	}
	return 0
}

// movePages moves the page server's images (pagemap-*.img, pages-*.img)
// from into the image directory to. A name that is already there is
// refused, never overwritten: the archive must not bring pages of its
// own. Without one pagemap nothing arrived, and that is refused too.
func movePages(from, to string) error {
	ents, err := os.ReadDir(from)
	if err != nil {
		return fmt.Errorf("read the page server's images: %w", err)
	}
	pagemaps := 0
	for _, e := range ents {
		if !e.Type().IsRegular() {
			return fmt.Errorf("%s is not a regular file (%v)", filepath.Join(from, e.Name()), e.Type())
		}
		if strings.HasPrefix(e.Name(), "pagemap-") {
			pagemaps++
		}
		src, dst := filepath.Join(from, e.Name()), filepath.Join(to, e.Name())
		if _, err := os.Lstat(dst); !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("the imported image directory already has %s: refusing to mix it with the page server's", dst)
		}
		err := os.Rename(src, dst)
		if errors.Is(err, syscall.EXDEV) {
			err = copyFile(src, dst)
		}
		if err != nil {
			return fmt.Errorf("move the page server's %s into %s: %w", e.Name(), to, err)
		}
	}
	if pagemaps == 0 {
		return fmt.Errorf("the page server wrote no pagemap into %s: no page arrived", from)
	}
	return nil
}

// copyFile copies src to a new file dst (never through a symlink), for
// a state directory on another file system than podman's storage.
func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL|syscall.O_NOFOLLOW, 0o600)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	if err := out.Close(); err != nil {
		return err
	}
	return os.Remove(src)
}
