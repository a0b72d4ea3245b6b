package engine

import (
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

// A pre-copy migration (plan mode precopy): pre-dump rounds while the
// container runs, each into a page server on the destination, then a
// final dump like a stream's that sends only what changed since the
// last round.
//
//	destination  StartRoundPageServer (migrate-agent serve-round N): a TLS
//	             page server writing MIGRATION_DIR/rounds/N, whose parent
//	             is ../N-1 (CRIU's --prev-images-dir makes the link)
//	source       podman checkpoint --pre-checkpoint: the shim turns it
//	             into runc checkpoint --pre-dump --page-server into
//	             MIGRATION_DIR/rounds/N, --parent-path the round before;
//	             the container keeps running
//	destination  the final page server (round 0) writes MIGRATION_DIR/pages
//	             with parent ../rounds/LAST
//	source       podman checkpoint: paused, --leave-running, --parent-path
//	             the last round, as a stream's (tasks kept frozen)
//	destination  restore: the final pages join podman's images, the rounds
//	             move in beside them, and the image directory's parent
//	             link names the last round there: CRIU reads each page from
//	             the newest image in the chain that has it
const (
	// PrecopyRounds is the directory of the rounds, on both ends: the
	// source's local images of each pre-dump (inventory, no pages), the
	// destination's page server's (pagemap and pages).
	PrecopyRounds = "rounds"
	// parentLink is the name CRIU gives an image directory's link to the
	// previous one (CR_PARENT_LINK).
	parentLink = "parent"
)

// RoundDir is pre-copy round n's directory in migration dir's rounds.
func RoundDir(migDir string, n int) string {
	return filepath.Join(migDir, PrecopyRounds, strconv.Itoa(n))
}

// StartRoundPageServer starts the destination's page server of pre-copy
// round n (n >= 1), writing into RoundDir, or of the final dump (n == 0)
// writing into MIGRATION_DIR/pages, after last rounds. Like
// StartPageServer: TLS, supervised, returns once it listens.
func StartRoundPageServer(stateDir string, p *migrate.Plan, criu string, n, last int) error {
	if err := p.Validate(); err != nil {
		return err
	}
	if p.Mode != migrate.ModePrecopy {
		return fmt.Errorf("a pre-copy round's page server is for mode precopy, not %s", p.Mode)
	}
	if n < 0 || last < 0 || (n == 0 && last < 1) {
		return fmt.Errorf("pre-copy page server: round %d after %d rounds: want round >= 1, or 0 (final) after at least one", n, last)
	}
	dir := MigrationDir(stateDir, p.MigrationID)
	images, prev := RoundDir(dir, n), ""
	switch {
	case n == 0:
		images, prev = filepath.Join(dir, StreamPages), filepath.Join("..", PrecopyRounds, strconv.Itoa(last))
	case n > 1:
		prev = filepath.Join("..", strconv.Itoa(n-1))
	}
	if prev != "" {
		if _, err := os.Stat(filepath.Join(images, prev)); err != nil {
			return fmt.Errorf("the previous round's images are missing here: %w", err)
		}
	}
	if err := os.MkdirAll(images, 0o700); err != nil {
		return fmt.Errorf("create the page server's directory: %w", err)
	}
	args, err := PageServerArgs(p.PageServer, p.TLS, images, filepath.Join(dir, PageServerLog))
	if err != nil {
		return err
	}
	if prev != "" {
		// CRIU links images/parent to it; the source's PS_IOV_PARENT
		// questions ("is this page in the parent?") are answered there.
		args = append(args, "--prev-images-dir", prev)
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
		return fmt.Errorf("criu page-server (pre-copy round %d) on %s did not come up within %v (%w; log %s): %s", n, p.PageServer,
			time.Duration(p.Timeouts.Connect), err, filepath.Join(dir, PageServerLog), strings.TrimSpace(string(out)))
	}
	return nil
}

// precopyParent is plan p's ParentPath (the last round, relative to the
// migration directory: "rounds/N") relative to the image directory
// images, as runc's --parent-path takes it; "" without one.
func precopyParent(stateDir string, p *migrate.Plan, images string) (string, error) {
	if p.ParentPath == "" {
		return "", nil
	}
	clean := filepath.Clean(p.ParentPath)
	if filepath.IsAbs(clean) || clean != p.ParentPath || !strings.HasPrefix(clean, PrecopyRounds+"/") || strings.Contains(clean, "..") {
		return "", fmt.Errorf("plan parent_path %q is not a round of the migration (rounds/N)", p.ParentPath)
	}
	if !filepath.IsAbs(images) {
		return "", fmt.Errorf("checkpoint has no absolute --image-path (%q)", images)
	}
	parent := filepath.Join(MigrationDir(stateDir, p.MigrationID), clean)
	if _, err := os.Stat(filepath.Join(parent, "inventory.img")); err != nil {
		return "", fmt.Errorf("the last pre-dump's images are missing: %w", err)
	}
	return filepath.Rel(images, parent)
}

// precopyPreDump is one pre-copy round on the source: podman's
// `checkpoint --pre-checkpoint` (its --pre-dump into its own directory)
// becomes a pre-dump into the round's directory of the migration, with
// the round before as parent and the pages sent to the destination's
// page server of this round. The container keeps running; a failure
// resumes it if CRIU left it frozen.
func (r *runner) precopyPreDump(id string, p *migrate.Plan) int {
	fail := func(err error) int {
		fmt.Fprintf(r.stderr, "crhook: pre-copy round of container %s for migration %s failed: %v\n", id, p.MigrationID, err)
		return 1
	}
	if r.confPath == "" {
		return fail(errNoTLSConf)
	}
	n := p.Round
	if n < 1 {
		return fail(fmt.Errorf("the plan names no pre-copy round (%d): migrate-agent writes it before each round", n))
	}
	images := RoundDir(MigrationDir(r.settings.StateDir, p.MigrationID), n)
	if err := os.MkdirAll(images, 0o700); err != nil {
		return fail(err)
	}
	parent, err := precopyParent(r.settings.StateDir, p, images)
	if err != nil {
		return fail(err)
	}
	ps := p.PageServer
	tls := p.TLS
	opts := CriuOpts{PreDump: true, ParentPath: parent, PageServer: &ps, TLS: &tls}
	// podman's own flags name its pre-checkpoint directory: replaced by
	// the round's, whose parent chain the next rounds and the final dump
	// follow.
	rest := withoutFlags(r.inv.rest, map[string]bool{"--pre-dump": false, "--image-path": true, "--work-path": true})
	rest = append(append([]string{"--image-path", images, "--work-path", images}, rest[:len(rest)-1]...), rest[len(rest)-1])
	args, err := opts.Args(Runc, "checkpoint", rest)
	if err != nil {
		return fail(err)
	}
	if err := r.addMigrationConf(p, opts); err != nil {
		return fail(err)
	}
	before, berr := r.status(id)
	r.inv = parseArgs(append(append(append([]string{}, r.inv.global...), "checkpoint"), args...))
	code, started := r.run(nil)
	if code != 0 {
		if started {
			r.explain(id, "")
		}
		r.unfreeze(id, before, berr)
	}
	return code
}

// withoutFlags drops the flags named in drop from args (true: it takes a
// value, as the next word or after "="). The last word, the container
// ID, always stays.
func withoutFlags(args []string, drop map[string]bool) []string {
	if len(args) == 0 {
		return nil
	}
	var out []string
	for i := 0; i < len(args)-1; i++ {
		a := args[i]
		name, _, hasEq := strings.Cut(a, "=")
		if v, ok := drop[name]; ok {
			if v && !hasEq {
				i++
			}
			continue
		}
		out = append(out, a)
	}
	return append(out, args[len(args)-1])
}

// precopyCheckpoint is the final dump of a pre-copy migration, with the
// last round as parent: a stream's (paused, --leave-running into the
// destination's page server, the tasks kept frozen), or with plan final
// lazy a lazy one's (pre-copy and post-copy combined: the source's page
// server serves what changed since the last round, the destination
// faults it in).
func (r *runner) precopyCheckpoint(id string, p *migrate.Plan) int {
	images := r.inv.flag("--image-path", "")
	parent, err := precopyParent(r.settings.StateDir, p, images)
	if err == nil && parent == "" {
		err = errors.New("the plan names no last pre-copy round (parent_path): a final dump without one would send all memory while frozen; use --mode stream for that")
	}
	if err != nil {
		fmt.Fprintf(r.stderr, "crhook: final pre-copy checkpoint of container %s for migration %s failed: %v; nothing was dumped\n", id, p.MigrationID, err)
		return 1
	}
	final := *p
	final.ParentPath = parent
	dump := r.streamCheckpoint
	if p.Final == migrate.ModeLazy {
		dump = r.lazyCheckpoint
	}
	code := dump(id, &final)
	if code == 0 {
		// CRIU's link to the last round (images/parent) would go into
		// podman's archive, and podman's import refuses a link that leaves
		// the image directory ("invalid symlink"). The destination links
		// its own last round at restore; a rollback dumps afresh. A lazy
		// dump's page server, still serving, no longer reads it: the
		// pages it serves are in its pipes, those of the rounds are on
		// the destination.
		if fi, err := os.Lstat(filepath.Join(images, parentLink)); err == nil && fi.Mode()&fs.ModeSymlink != 0 {
			if err := os.Remove(filepath.Join(images, parentLink)); err != nil {
				fmt.Fprintf(r.stderr, "crhook: warning: podman's import will refuse the archive: %v\n", err)
			}
		}
	}
	return code
}

// precopyRestore restores on the destination: the final page server's
// images join podman's (a lazy final has none: its pagemap came in the
// archive), the rounds move into podman's image directory
// (precopyRoundsIn), and its parent link (the source's, from the archive,
// is replaced) names the last of them, so CRIU reads every page not in
// the final dump from the rounds. A lazy final then restores as lazy
// mode does (lazyRestore): the pages that changed since the last round
// are faulted in from the source, under the same supervisor that kills
// the container if the stream breaks. Every link stays inside the image
// directory: CRIU follows them in the restored task, after it moved into
// the container's root, where an absolute path (or a relative one that
// leaves the directory) names nothing: "Can't open parent path".
func (r *runner) precopyRestore(id string, p *migrate.Plan) int {
	fail := func(err error) int {
		fmt.Fprintf(r.stderr, "crhook: pre-copy restore of container %s for migration %s failed: %v; nothing runs\n", id, p.MigrationID, err)
		return 1
	}
	images := r.inv.flag("--image-path", "")
	if !filepath.IsAbs(images) {
		return fail(fmt.Errorf("restore has no absolute --image-path (%q)", images))
	}
	dir := MigrationDir(r.settings.StateDir, p.MigrationID)
	rounds := filepath.Join(dir, PrecopyRounds)
	last, err := filepath.Rel(PrecopyRounds, filepath.Clean(p.ParentPath))
	if p.ParentPath == "" || err != nil || strings.HasPrefix(last, "..") || strings.Contains(last, "/") {
		return fail(fmt.Errorf("plan parent_path %q is not a round of the migration (rounds/N)", p.ParentPath))
	}
	if _, err := os.Stat(filepath.Join(rounds, last)); err != nil {
		return fail(fmt.Errorf("the last round's pages are missing: %w", err))
	}
	lazy := p.Final == migrate.ModeLazy
	if !lazy {
		// Only after every page arrived: streamRestore checks the same first.
		if data, err := os.ReadFile(filepath.Join(dir, PageServerRC)); err != nil || strings.TrimSpace(string(data)) != "0" {
			return r.streamRestore(id, p)
		}
		// The final page server's own link (to ../rounds/LAST) is not
		// moved: movePages takes regular files only.
		if err := os.Remove(filepath.Join(dir, StreamPages, parentLink)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fail(err)
		}
	}
	// Every round's page server exited 0, or the orchestrator would not
	// have gone on to the final dump; a round's images that are not
	// there were refused above.
	in := filepath.Join(images, precopyRoundsIn)
	if _, err := os.Lstat(in); !errors.Is(err, fs.ErrNotExist) {
		return fail(fmt.Errorf("the imported image directory already has %s: refusing to mix it with the rounds", in))
	}
	if err := moveTree(rounds, in); err != nil {
		return fail(fmt.Errorf("move the pre-copy rounds into %s: %w", images, err))
	}
	if fi, err := os.Lstat(filepath.Join(images, parentLink)); err == nil {
		if fi.Mode()&fs.ModeSymlink == 0 {
			return fail(fmt.Errorf("%s is not a link: refusing to replace it", filepath.Join(images, parentLink)))
		}
		if err := os.Remove(filepath.Join(images, parentLink)); err != nil {
			return fail(err)
		}
	}
	if err := os.Symlink(filepath.Join(precopyRoundsIn, last), filepath.Join(images, parentLink)); err != nil {
		return fail(err)
	}
	if lazy {
		return r.lazyRestore(id, p)
	}
	return r.streamRestore(id, p)
}

// precopyRoundsIn is where the rounds go in podman's image directory.
const precopyRoundsIn = "precopy-rounds"

// moveTree moves directory from to to (which must not exist): a rename,
// or across file systems a copy of its directories, regular files and
// links (kept as they are: the rounds' parent links are relative to
// their place in the tree), then the removal of from.
func moveTree(from, to string) error {
	err := os.Rename(from, to)
	if !errors.Is(err, syscall.EXDEV) {
		return err
	}
	err = filepath.WalkDir(from, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(from, path)
		if err != nil {
			return err
		}
		dst := filepath.Join(to, rel)
		switch {
		case d.IsDir():
			return os.Mkdir(dst, 0o700)
		case d.Type()&fs.ModeSymlink != 0:
			target, err := os.Readlink(path)
			if err != nil {
				return err
			}
			return os.Symlink(target, dst)
		case d.Type().IsRegular():
			return copyFileKeep(path, dst)
		}
		return fmt.Errorf("%s is neither a directory, a file nor a link (%v)", path, d.Type())
	})
	if err != nil {
		return err
	}
	return os.RemoveAll(from)
}

// copyFileKeep is copyFile without removing src (moveTree removes the
// whole tree once it is copied).
func copyFileKeep(src, dst string) error {
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
	return out.Close()
}
