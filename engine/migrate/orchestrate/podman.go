package orchestrate

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/crhook/crhook/engine/migrate"
	"github.com/crhook/crhook/engine/migrate/pki"
)

// Runner runs a command on one host: here, or over ssh.
type Runner interface {
	// Run runs argv with stdin; it returns stdout, and an error that
	// quotes stderr.
	Run(ctx context.Context, stdin io.Reader, argv ...string) ([]byte, error)
	Where() string
}

// Local runs commands on this host.
type Local struct{}

// Run runs argv here.
func (Local) Run(ctx context.Context, stdin io.Reader, argv ...string) ([]byte, error) {
	return runCmd(exec.CommandContext(ctx, argv[0], argv[1:]...), stdin, argv)
}

// Where names this host.
func (Local) Where() string { return "this host" }

// SSH runs commands on a destination over ssh. The remote shell gets one
// line of single-quoted words: nothing in argv is read by it.
type SSH struct {
	Dest migrate.Destination
	// Options go before the destination's own (-F CONFIG, -o ...).
	Options []string
	// ConnectTimeout bounds the ssh connection itself.
	ConnectTimeout time.Duration
	// ControlPath, set by Multiplex, is the socket of the master
	// connection the commands share. A command that finds no master
	// there connects on its own, as without it.
	ControlPath string
}

func (s SSH) args(extra ...string) []string {
	args := append([]string{"-o", "BatchMode=yes", "-o", fmt.Sprintf("ConnectTimeout=%d", int(s.ConnectTimeout.Seconds())+1),
		"-o", "ServerAliveInterval=5", "-o", "ServerAliveCountMax=3"}, s.Options...)
	if s.ControlPath != "" {
		args = append(args, "-o", "ControlMaster=no", "-S", s.ControlPath)
	}
	return append(append(args, extra...), s.Dest.SSHArgs()...)
}

// Run runs argv on the destination.
func (s SSH) Run(ctx context.Context, stdin io.Reader, argv ...string) ([]byte, error) {
	return runCmd(exec.CommandContext(ctx, "ssh", append(s.args(), shellQuote(argv))...), stdin, argv)
}

// Multiplex opens one authenticated connection to the destination that
// every later command of the returned SSH shares (OpenSSH's ControlMaster):
// a command then costs a session on it, not a key exchange and an
// authentication, which matters inside a migration's frozen window. The
// control socket goes in dir, which must be private (0700): whoever
// reaches the socket runs commands on the destination. The master is a
// child of this process, killed with it even by SIGKILL (parent-death
// signal); close stops it and removes the socket.
func (s SSH) Multiplex(ctx context.Context, dir string) (SSH, func(), error) {
	sock := filepath.Join(dir, "ssh-control")
	m := s
	m.ControlPath = ""
	cmd := exec.Command("ssh", m.args("-M", "-N", "-o", "ControlPersist=no", "-S", sock)...)
	var errb bytes.Buffer
	cmd.Stderr = &errb
	// Pdeathsig fires when the thread that started the child exits; Go
	// keeps its threads (none of this package's goroutines locks one).
	// Its own process group: a Ctrl-C at the terminal (SIGINT to the
	// foreground group) must not cut the connection a rollback needs.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setpgid: true}
	if err := cmd.Start(); err != nil {
		return s, nil, fmt.Errorf("start the ssh master connection to %s: %w", s.Where(), err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	stop := func() {
		_ = cmd.Process.Kill()
		<-exited
		_ = os.Remove(sock)
	}
	deadline := time.NewTimer(s.ConnectTimeout + time.Second)
	defer deadline.Stop()
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for {
		// The master creates its socket once it is authenticated.
		if fi, err := os.Stat(sock); err == nil && fi.Mode()&os.ModeSocket != 0 {
			m.ControlPath = sock
			return m, stop, nil
		}
		select {
		case <-exited:
			stop()
			return s, nil, fmt.Errorf("ssh master connection to %s: %s", s.Where(), strings.TrimSpace(errb.String()))
		case <-deadline.C:
			stop()
			return s, nil, fmt.Errorf("ssh master connection to %s: not up within %v", s.Where(), s.ConnectTimeout)
		case <-ctx.Done():
			stop()
			return s, nil, ctx.Err()
		case <-tick.C:
		}
	}
}

// Where names the destination.
func (s SSH) Where() string { return s.Dest.String() }

func runCmd(cmd *exec.Cmd, stdin io.Reader, argv []string) ([]byte, error) {
	var out, errb bytes.Buffer
	cmd.Stdin, cmd.Stdout, cmd.Stderr = stdin, &out, &errb
	// Its own process group, so a Ctrl-C at the terminal reaches crhook
	// alone: a podman checkpoint or restore under way finishes, and Run
	// decides between steps (rollback before the destination runs).
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Run(); err != nil {
		return out.Bytes(), fmt.Errorf("%s: %w: %s", shellQuote(argv), err, strings.TrimSpace(errb.String()))
	}
	return out.Bytes(), nil
}

func shellQuote(argv []string) string {
	q := make([]string, len(argv))
	for i, a := range argv {
		q[i] = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
	}
	return strings.Join(q, " ")
}

// PodmanHost is either end, driven through podman and `crhook
// migrate-agent` run by a Runner.
type PodmanHost struct {
	R Runner
	// Crhook is the crhook binary on that host.
	Crhook string
	// TmpDir holds the checkpoint archive there.
	TmpDir string
	// Role is this end's side of the page stream, whose CRIU process
	// Progress watches: the page server (source) or the lazy-pages daemon.
	Role pki.Role
}

// agentRequest is what `crhook migrate-agent prepare` reads on stdin.
type agentRequest struct {
	Plan     *migrate.Plan    `json:"plan"`
	Role     string           `json:"role"`
	Material *pki.TLSMaterial `json:"material"`
}

// Prepare writes this end's TLS files and plan through the agent.
func (h *PodmanHost) Prepare(ctx context.Context, id string, p *migrate.Plan, role pki.Role, m *pki.TLSMaterial) error {
	// Only what this end needs: never the other end's key.
	mine := &pki.TLSMaterial{CACert: m.CACert}
	if role == pki.RoleServer {
		mine.ServerCert, mine.ServerKey = m.ServerCert, m.ServerKey
	} else {
		mine.ClientCert, mine.ClientKey = m.ClientCert, m.ClientKey
	}
	req, err := json.Marshal(agentRequest{Plan: p, Role: role.String(), Material: mine})
	if err != nil {
		return err
	}
	if _, err := h.R.Run(ctx, bytes.NewReader(req), h.Crhook, "migrate-agent", "prepare", id); err != nil {
		return fmt.Errorf("prepare the migration on %s: %w", h.R.Where(), err)
	}
	return nil
}

// Progress asks the agent.
func (h *PodmanHost) Progress(ctx context.Context, migID string) (Progress, error) {
	out, err := h.R.Run(ctx, nil, h.Crhook, "migrate-agent", "progress", h.Role.String(), migID)
	if err != nil {
		return Progress{}, fmt.Errorf("watch the migration on %s: %w", h.R.Where(), err)
	}
	var p Progress
	if err := json.Unmarshal(out, &p); err != nil {
		return Progress{}, fmt.Errorf("decode the progress from %s: %w: %q", h.R.Where(), err, out)
	}
	return p, nil
}

// Abort kills the migration's CRIU process there and removes its files.
func (h *PodmanHost) Abort(ctx context.Context, id, migID string) error {
	if _, err := h.R.Run(ctx, nil, h.Crhook, "migrate-agent", "abort", id, migID); err != nil {
		return fmt.Errorf("abort the migration on %s: %w", h.R.Where(), err)
	}
	return nil
}

// Cleanup removes the migration's files there.
func (h *PodmanHost) Cleanup(ctx context.Context, id, migID string) error {
	if _, err := h.R.Run(ctx, nil, h.Crhook, "migrate-agent", "cleanup", id, migID); err != nil {
		return fmt.Errorf("clean up the migration on %s: %w", h.R.Where(), err)
	}
	return nil
}

// Inspect asks podman for the container.
func (h *PodmanHost) Inspect(ctx context.Context, name string) (Container, error) {
	out, err := h.R.Run(ctx, nil, "podman", "container", "inspect", "--format", "{{.ID}} {{.Name}} {{.State.Running}}", name)
	if err != nil {
		return Container{}, fmt.Errorf("find container %q on %s: %w", name, h.R.Where(), err)
	}
	f := strings.Fields(string(out))
	if len(f) != 3 {
		return Container{}, fmt.Errorf("podman inspect of %q on %s printed %q", name, h.R.Where(), out)
	}
	return Container{ID: f[0], Name: f[1], Running: f[2] == "true"}, nil
}

// Checkpoint exports the container; --keep leaves podman's own copy of
// the image directory for a rollback.
func (h *PodmanHost) Checkpoint(ctx context.Context, name string) (string, int64, error) {
	file := filepath.Join(h.TmpDir, "checkpoint.tar")
	if _, err := h.R.Run(ctx, nil, "podman", "container", "checkpoint", "--keep", "--compress", "none", "--export", file, name); err != nil {
		return "", 0, fmt.Errorf("checkpoint %q on %s: %w", name, h.R.Where(), err)
	}
	fi, err := os.Stat(file)
	if err != nil {
		return "", 0, fmt.Errorf("checkpoint archive: %w", err)
	}
	return file, fi.Size(), nil
}

// Rollback restores the container here through podman, from its dumped
// tasks, which crhook-runtime kept frozen (see engine keepForMigration).
func (h *PodmanHost) Rollback(ctx context.Context, c Container, p *migrate.Plan, _ *pki.TLSMaterial) error {
	// Status failed tells crhook-runtime's restore to roll back: dump
	// the kept, frozen tasks anew and restore from that.
	if _, err := h.R.Run(ctx, nil, h.Crhook, "migrate-agent", "fail", c.ID, "rolled back on the source"); err != nil {
		return fmt.Errorf("mark migration %s failed on %s: %w", p.MigrationID, h.R.Where(), err)
	}
	if _, err := h.R.Run(ctx, nil, "podman", "container", "restore", "--keep", c.Name); err != nil {
		return fmt.Errorf("restore %q on %s from its kept tasks: %w", c.Name, h.R.Where(), err)
	}
	return nil
}

// Remove deletes the container there, running or not.
func (h *PodmanHost) Remove(ctx context.Context, name string) error {
	if _, err := h.R.Run(ctx, nil, "podman", "rm", "--force", "--ignore", "--time", "0", name); err != nil {
		return fmt.Errorf("remove %q on %s: %w", name, h.R.Where(), err)
	}
	return nil
}

// Send copies file to this host's TmpDir through the runner (cat over
// ssh: the same channel, no second authentication).
func (h *PodmanHost) Send(ctx context.Context, file string) (string, error) {
	f, err := os.Open(file)
	if err != nil {
		return "", err
	}
	defer f.Close()
	dst := filepath.Join(h.TmpDir, filepath.Base(file))
	if _, err := h.R.Run(ctx, f, "sh", "-c", `umask 077 && mkdir -p "$1" && cat >"$2"`, "sh", h.TmpDir, dst); err != nil {
		return "", fmt.Errorf("copy the checkpoint to %s: %w", h.R.Where(), err)
	}
	return dst, nil
}

// RemoveID deletes the container with that ID there, running or not.
func (h *PodmanHost) RemoveID(ctx context.Context, id string) error { return h.Remove(ctx, id) }

// KillID kills the container with that ID there; not running is fine.
func (h *PodmanHost) KillID(ctx context.Context, id string) error {
	out, err := h.R.Run(ctx, nil, "podman", "inspect", "--format", "{{.State.Running}}", id)
	if err != nil || strings.TrimSpace(string(out)) != "true" {
		return nil // gone or stopped: nothing runs
	}
	if _, err := h.R.Run(ctx, nil, "podman", "kill", "--signal", "KILL", id); err != nil {
		return fmt.Errorf("kill %s on %s: %w", id, h.R.Where(), err)
	}
	return nil
}

// Restore imports the archive under the container's own name.
func (h *PodmanHost) Restore(ctx context.Context, name, file string) error {
	if _, err := h.R.Run(ctx, nil, "podman", "container", "restore", "--import", file); err != nil {
		return fmt.Errorf("restore %q on %s: %w", name, h.R.Where(), err)
	}
	return nil
}

// Import copies the checkpoint file over and restores it under the
// container's own name in one remote command: one ssh session fewer in
// the frozen window (about 75 ms here, mostly the remote login shell).
// The archive is restored only when every byte arrived: a connection
// that drops mid-copy ends cat at EOF, and a short archive must not run.
func (h *PodmanHost) Import(ctx context.Context, name, file string) error {
	f, err := os.Open(file)
	if err != nil {
		return err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	dst := filepath.Join(h.TmpDir, filepath.Base(file))
	script := `umask 077 && mkdir -p "$1" && cat >"$2" && [ "$(wc -c <"$2")" -eq "$3" ] || { echo "copying the checkpoint to $2 failed or was cut short (want $3 bytes); nothing was restored" >&2; exit 1; }; exec podman container restore --import "$2"`
	if _, err := h.R.Run(ctx, f, "sh", "-c", script, "sh", h.TmpDir, dst, strconv.FormatInt(fi.Size(), 10)); err != nil {
		return fmt.Errorf("copy the checkpoint to %s and restore %q from it: %w", h.R.Where(), name, err)
	}
	return nil
}

// PageServerAddress is the source's address as sshd on the destination
// sees it, where a lazy-pages daemon connects.
func (h *PodmanHost) PageServerAddress(ctx context.Context) (string, error) {
	a, err := h.Addresses(ctx)
	return a.Source, err
}

// Addresses are both ends of the ssh connection as sshd on the
// destination sees them: the first and third words of $SSH_CONNECTION.
func (h *PodmanHost) Addresses(ctx context.Context) (Addresses, error) {
	out, err := h.R.Run(ctx, nil, "sh", "-c", `echo "$SSH_CONNECTION"`)
	if err != nil {
		return Addresses{}, fmt.Errorf("ask %s for this host's address: %w", h.R.Where(), err)
	}
	f := strings.Fields(string(out))
	if len(f) < 3 {
		return Addresses{}, fmt.Errorf("%s has no SSH_CONNECTION: reach it over ssh", h.R.Where())
	}
	return Addresses{Source: f[0], Destination: f[2]}, nil
}

// ServePages starts the destination's page server of a stream through
// the agent, which writes this end's TLS files and plan first.
func (h *PodmanHost) ServePages(ctx context.Context, id string, p *migrate.Plan, m *pki.TLSMaterial) (int, error) {
	req, err := json.Marshal(agentRequest{Plan: p, Role: pki.RoleServer.String(),
		Material: &pki.TLSMaterial{CACert: m.CACert, ServerCert: m.ServerCert, ServerKey: m.ServerKey}})
	if err != nil {
		return 0, err
	}
	out, err := h.R.Run(ctx, bytes.NewReader(req), h.Crhook, "migrate-agent", "serve", id)
	if err != nil {
		return 0, fmt.Errorf("start the page server on %s: %w", h.R.Where(), err)
	}
	var ans struct{ Port int }
	if err := json.Unmarshal(out, &ans); err != nil {
		return 0, fmt.Errorf("decode the page server's port from %s: %w: %q", h.R.Where(), err, out)
	}
	if ans.Port < 1 || ans.Port > 65535 {
		return 0, fmt.Errorf("the page server on %s answered %q: no port", h.R.Where(), out)
	}
	return ans.Port, nil
}
