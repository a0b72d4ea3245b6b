//go:build e2e

package e2e

import (
	"archive/tar"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/crhook/crhook/tests/hosttest"
)

const crhookRuntime = "/usr/libexec/crhook/crhook-runtime"

// TestRuncContainerSpecificCRIUConfig is runc v1.1.5's own test "checkpoint
// and restore with container specific CRIU config"
// (tests/integration/checkpoint.bats), run through crhook-runtime as the
// runtime binary, the way containerd or a runc user calls it: `run -d`,
// `checkpoint --work-path ./work-dir`, `restore -d --work-path ./work-dir`
// in the bundle directory. log-file in the container's org.criu.config must
// put CRIU's log at work-dir/NAME at checkpoint and at restore; log-file in
// default.conf must not.
func TestRuncContainerSpecificCRIUConfig(t *testing.T) {
	need(t)
	dir := t.TempDir()
	ctrConf := filepath.Join(dir, "runc-criu-ctr.conf")
	log1, log2 := "runc-criu-log-default.log", "runc-criu-log-ctr.log"
	layers(t, map[string]string{"/etc/criu/default.conf": "log-file=" + log1 + "\n"})
	if err := os.WriteFile(ctrConf, []byte("log-file="+log2+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	bundle := busyboxBundle(t, dir, map[string]string{"org.criu.config": ctrConf}, "sleep", "1000000")
	id := "crhook-e2e-runc-" + randHex(4)
	rt := func(args ...string) result {
		t.Helper()
		return runIn(t, bundle, crhookRuntime, args...)
	}
	t.Cleanup(func() { rt("delete", "--force", id) })

	if r := rt("run", "-d", id); r.code != 0 {
		t.Fatalf("run: %s", r)
	}
	assertStatus(t, rt, id, "running")
	work := filepath.Join(bundle, "work-dir")

	if r := rt("checkpoint", "--work-path", "./work-dir", id); r.code != 0 {
		t.Fatalf("checkpoint: %s%s", r, grepErrors(filepath.Join(work, log2)))
	}
	assertLogs(t, work, log1, log2, "checkpoint")
	if r := rt("state", id); r.code == 0 {
		t.Fatalf("container still exists after checkpoint: %s", r)
	}
	if err := os.Remove(filepath.Join(work, log2)); err != nil {
		t.Fatal(err)
	}

	if r := rt("restore", "-d", "--work-path", "./work-dir", id); r.code != 0 {
		t.Fatalf("restore: %s%s", r, grepErrors(filepath.Join(work, log2)))
	}
	assertLogs(t, work, log1, log2, "restore")
	assertStatus(t, rt, id, "running")
}

// TestRestoreReadOnlyBundleRunsNothing imports a checkpoint archive whose
// config.dump names an org.criu.config with an action-script, into a
// bundle crhook cannot rewrite: the restore must fail, say why on podman's
// stderr, and the script must never run. The file itself is root's and
// would pass the layer checks, so only the failed rewrite stands between
// the archive and the script. Two ways to be unwritable: the whole bundle
// read-only, and only config.json (a read-only bind mount over it), where
// CRIU could still write its log and reach the script.
func TestRestoreReadOnlyBundleRunsNothing(t *testing.T) {
	need(t)
	layers(t, nil)
	for name, ro := range map[string]string{"bundle": "$bundle", "config.json": "$bundle/config.json"} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			marker := filepath.Join(dir, "action-script-ran")
			script := filepath.Join(dir, "action.sh")
			evil := filepath.Join(dir, "evil.conf")
			writeFile(t, script, "#!/bin/sh\ntouch "+marker+"\n", 0o755)
			writeFile(t, evil, "action-script "+script+"\n", 0o600)
			// The runtime podman records for the container: crhook, except
			// that a restore gets a read-only view of RO in its bundle.
			wrapper := filepath.Join(dir, "crhook-ro-restore")
			writeFile(t, wrapper, `#!/bin/sh
bundle=
prev=
restore=
for a in "$@"; do
	[ "$prev" = --bundle ] && bundle=$a
	[ "$a" = restore ] && restore=1
	prev=$a
done
if [ -n "$restore" ] && [ -n "$bundle" ]; then
	ro="`+ro+`"
	exec unshare -m sh -c 'mount --bind "$0" "$0" && mount -o remount,bind,ro "$0" "$0" && exec "$@"' "$ro" `+crhookRuntime+` "$@"
fi
exec `+crhookRuntime+` "$@"
`, 0o755)

			ctr := startCtr(t, wrapper, nil, "exec sleep 1000000")
			archive := filepath.Join(dir, "ckpt.tar")
			mustPodman(t, "container", "checkpoint", "--compress", "none", "--export", archive, ctr)
			mustPodman(t, "rm", "-f", "-t", "0", ctr)
			setArchiveAnnotation(t, archive, "org.criu.config", evil)

			r := podman(t, "container", "restore", "--import", archive)
			t.Cleanup(func() { podman(t, "rm", "-f", "-t", "0", ctr) })
			t.Logf("podman container restore --import:\n%s", r)
			if _, err := os.Stat(marker); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("the archive's action-script ran (%v)", err)
			}
			if r.code == 0 {
				t.Fatalf("restore with a read-only %s succeeded", name)
			}
			for _, w := range []string{"crhook: restore of container", "refused", "make the bundle writable", evil} {
				if !strings.Contains(r.err, w) {
					t.Errorf("podman's stderr lacks %q", w)
				}
			}
			if running(t, ctr) {
				t.Fatal("the container runs")
			}
		})
	}
}

// TestPodmanContainerFile: a file named with podman run --annotation
// org.criu.config is the container's layer 4 through podman, at checkpoint
// and at restore (tcp-established there is what lets the TCP stream
// survive), config show names it, and the same file made writable by
// others makes the checkpoint refuse.
func TestPodmanContainerFile(t *testing.T) {
	forEachRuntime(t, func(t *testing.T, w *wrapped) {
		layers(t, nil)
		conf := filepath.Join(t.TempDir(), "ctr.conf")
		writeFile(t, conf, "# this container keeps its connections\ntcp-established\n", 0o644)
		name := startTCP(t, w, "--annotation", "org.criu.config="+conf)
		show := w.crhook(t, "config", "show", "--origin", "--container", name)
		for _, want := range []string{"container's own CRIU file (layer 4, org.criu.config): " + conf, "# " + conf + ":2"} {
			if !strings.Contains(show.out, want) {
				t.Errorf("config show --origin --container lacks %q:\n%s", want, show)
			}
		}
		checkpointRestore(t, w, name)

		writeFile(t, conf, "tcp-established\n", 0o666)
		checkpointFails(t, w, name, "ctr.conf", "writable by group or others") // not the path: it differs per runtime
	})
}

// busyboxBundle makes an OCI bundle from the host's static busybox: the
// spec `runc spec` writes, without a terminal and with a writable root,
// with the given args and annotations.
func busyboxBundle(t *testing.T, dir string, ann map[string]string, args ...string) string {
	t.Helper()
	bundle := filepath.Join(dir, "bundle")
	bin := filepath.Join(bundle, "rootfs", "bin")
	if err := os.MkdirAll(bin, 0o755); err != nil {
		t.Fatal(err)
	}
	bb, err := os.ReadFile("/bin/busybox")
	if err != nil {
		t.Skipf("no static busybox for the bundle: %v", err)
	}
	writeFile(t, filepath.Join(bin, "busybox"), string(bb), 0o755)
	for _, applet := range []string{"sh", "sleep"} {
		if err := os.Symlink("busybox", filepath.Join(bin, applet)); err != nil {
			t.Fatal(err)
		}
	}
	if r := run(t, "runc", "spec", "--bundle", bundle); r.code != 0 {
		t.Fatalf("runc spec: %s", r)
	}
	path := filepath.Join(bundle, "config.json")
	var spec map[string]any
	if err := json.Unmarshal([]byte(readFile(t, path)), &spec); err != nil {
		t.Fatal(err)
	}
	proc := spec["process"].(map[string]any)
	proc["terminal"] = false
	proc["args"] = args
	spec["annotations"] = ann
	// CRIU's restore makes temporary mount points in the root, as in
	// runc's own test bundle.
	spec["root"].(map[string]any)["readonly"] = false
	data, err := json.Marshal(spec)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, path, string(data), 0o644)
	return bundle
}

// runIn runs a command in dir with stdio on pipes, as runc's own tests
// do: CRIU dumps pipes to outside the container as external and runc hands
// the restore's stdio back in, while a file on a host mount it could not
// dump. The container inherits the pipes, so the output is read up to a
// short deadline after the command exits, never up to EOF.
func runIn(t *testing.T, dir, name string, args ...string) result {
	t.Helper()
	inR, inW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	outR, outW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	errR, errW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		for _, f := range []*os.File{inR, inW, outR, outW, errR, errW} {
			_ = f.Close()
		}
	})
	cmd := exec.Command(name, args...)
	cmd.Dir, cmd.Stdin, cmd.Stdout, cmd.Stderr = dir, inR, outW, errW
	err = cmd.Run()
	r := result{out: drain(outR), err: drain(errR)}
	r.code = hosttest.ExitCode(t, err, fmt.Sprintf("%s %v", name, args))
	return r
}

// drain reads what a pipe holds now.
func drain(f *os.File) string {
	var b strings.Builder
	buf := make([]byte, 64<<10)
	for {
		_ = f.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
		n, err := f.Read(buf)
		b.Write(buf[:n])
		if err != nil {
			return b.String()
		}
	}
}

func assertStatus(t *testing.T, rt func(...string) result, id, want string) {
	t.Helper()
	var st struct {
		Status string `json:"status"`
	}
	eventually(t, 10*time.Second, id+" "+want, func() bool {
		r := rt("state", id)
		return r.code == 0 && json.Unmarshal([]byte(r.out), &st) == nil && st.Status == want
	})
}

func assertLogs(t *testing.T, work, log1, log2, op string) {
	t.Helper()
	if _, err := os.Stat(filepath.Join(work, log1)); err == nil {
		t.Errorf("%s: log-file from default.conf took effect: %s exists", op, filepath.Join(work, log1))
	}
	if _, err := os.Stat(filepath.Join(work, log2)); err != nil {
		t.Errorf("%s: log-file from the container's org.criu.config did not take effect: %v", op, err)
	}
}

// grepErrors quotes the error lines of a CRIU log, for a failure message.
func grepErrors(path string) string {
	data, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	var errs []string
	for _, l := range strings.Split(string(data), "\n") {
		if strings.Contains(l, "Error") {
			errs = append(errs, l)
		}
	}
	return "\nCRIU errors in " + path + ":\n" + strings.Join(errs, "\n")
}

func writeFile(t *testing.T, path, content string, mode os.FileMode) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, mode); err != nil {
		t.Fatal(err)
	}
}

// setArchiveAnnotation rewrites an uncompressed podman checkpoint archive so the spec in
// its config.dump (what podman restores the container from) and spec.dump
// carry one more annotation: an archive made elsewhere, or tampered with.
func setArchiveAnnotation(t *testing.T, archive, key, value string) {
	t.Helper()
	in, err := os.Open(archive)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	tmp := archive + ".new"
	out, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	tr, tw := tar.NewReader(in), tar.NewWriter(out)
	seen := 0
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		data, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		switch filepath.Clean(h.Name) {
		case "config.dump":
			data = annotate(t, data, []string{"spec", "annotations"}, key, value)
			seen++
		case "spec.dump":
			data = annotate(t, data, []string{"annotations"}, key, value)
		}
		h.Size = int64(len(data))
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write(data); err != nil {
			t.Fatal(err)
		}
	}
	if seen != 1 {
		t.Fatalf("no config.dump in %s", archive)
	}
	if err := errors.Join(tw.Close(), out.Close(), os.Rename(tmp, archive)); err != nil {
		t.Fatal(err)
	}
}

// annotate sets key=value in the JSON object found at path in data.
func annotate(t *testing.T, data []byte, path []string, key, value string) []byte {
	t.Helper()
	var doc map[string]any
	if err := json.Unmarshal(data, &doc); err != nil {
		t.Fatal(err)
	}
	obj := doc
	for _, p := range path {
		next, ok := obj[p].(map[string]any)
		if !ok {
			next = map[string]any{}
			obj[p] = next
		}
		obj = next
	}
	obj[key] = value
	out, err := json.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	return out
}
