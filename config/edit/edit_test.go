package edit

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/crhook/crhook/config/criuopt"
)

// missing marks a table case whose file does not exist beforehand.
const missing = "\x00missing"

func TestEdit(t *testing.T) {
	set := func(name, value string) func(string) (int, error) {
		return func(path string) (int, error) {
			changed, err := Set(path, name, value)
			if changed {
				return 1, err
			}
			return 0, err
		}
	}
	unset := func(names ...string) func(string) (int, error) {
		return func(path string) (int, error) { return Unset(path, names...) }
	}
	tests := []struct {
		name    string
		before  string
		do      func(path string) (int, error)
		after   string // ignored when an error is expected: the file must not change
		n       int    // 1 if Set changed the file; lines removed by Unset
		wantErr error  // nil: no error; errAny: any error
		errHas  string
	}{
		{name: "create missing file", before: missing, do: set("tcp-established", ""),
			after: "tcp-established\n", n: 1},
		{name: "append after comments and blanks", before: "# site defaults\n\nshell-job\n", do: set("tcp-established", ""),
			after: "# site defaults\n\nshell-job\ntcp-established\n", n: 1},
		{name: "already set is no change", before: "# x\ntcp-established\n", do: set("tcp-established", ""),
			after: "# x\ntcp-established\n"},
		{name: "replace value in place", before: "# a\nghost-limit 1M\n# b\nshell-job\n", do: set("ghost-limit", "2M"),
			after: "# a\nghost-limit 2M\n# b\nshell-job\n", n: 1},
		{name: "same value differently spaced is no change", before: "ghost-limit   1M\n", do: set("ghost-limit", "1M"),
			after: "ghost-limit   1M\n"},
		{name: "last of several wins, earlier ones go", before: "ghost-limit 1M\n# keep me\nghost-limit 4M\ntimeout 5\n",
			do: set("ghost-limit", "8M"), after: "# keep me\nghost-limit 8M\ntimeout 5\n", n: 1},
		{name: "duplicates removed even when the last already matches", before: "timeout 3\ntimeout 5\n",
			do: set("timeout", "5"), after: "timeout 5\n", n: 1},
		{name: "switch replaces its no- form", before: "# off for now\nno-tcp-established\nshell-job\n",
			do: set("tcp-established", ""), after: "# off for now\ntcp-established\nshell-job\n", n: 1},
		{name: "no- form replaces the switch", before: "tcp-established\nshell-job\n",
			do: set("no-tcp-established", ""), after: "no-tcp-established\nshell-job\n", n: 1},
		{name: "indentation and trailing comment kept", before: "\tghost-limit 1M # raised for the db\n",
			do: set("ghost-limit", "2M"), after: "\tghost-limit 2M # raised for the db\n", n: 1},
		{name: "value that needs quotes", before: "# c\n", do: set("lsm-profile", `apparmor:a "b" c`),
			after: "# c\n" + formatLine("lsm-profile", `apparmor:a "b" c`) + "\n", n: 1},
		{name: "quoted value replaced, comment kept", before: "lsm-profile \"apparmor:x y\" # why\n",
			do: set("lsm-profile", "apparmor:z"), after: "lsm-profile apparmor:z # why\n", n: 1},
		{name: "optional value", before: "manage-cgroups\n", do: set("manage-cgroups", "soft"),
			after: formatLine("manage-cgroups", "soft") + "\n", n: 1},
		{name: "repeatable appends a new value", before: "enable-fs nfs\n# end\n", do: set("enable-fs", "fuse"),
			after: "enable-fs nfs\n# end\nenable-fs fuse\n", n: 1},
		{name: "repeatable with the value present is no change", before: "enable-fs nfs\nenable-fs fuse\n",
			do: set("enable-fs", "nfs"), after: "enable-fs nfs\nenable-fs fuse\n"},
		{name: "CRLF lines kept, new line LF", before: "# written on windows\r\n\r\n", do: set("shell-job", ""),
			after: "# written on windows\r\n\r\nshell-job\n", n: 1},
		{name: "no trailing newline: append", before: "# x\nshell-job", do: set("tcp-established", ""),
			after: "# x\nshell-job\ntcp-established\n", n: 1},
		{name: "no trailing newline: replace keeps it so", before: "shell-job\nghost-limit 1M", do: set("ghost-limit", "3M"),
			after: "shell-job\nghost-limit 3M", n: 1},
		{name: "empty file", before: "", do: set("shell-job", ""), after: "shell-job\n", n: 1},

		{name: "unset removes both forms", before: "tcp-established\n# c\nno-tcp-established\nshell-job\n",
			do: unset("tcp-established"), after: "# c\nshell-job\n", n: 2},
		{name: "unset by no- name", before: "tcp-established\nshell-job\n",
			do: unset("no-tcp-established"), after: "shell-job\n", n: 1},
		{name: "unset several and repeatables", before: "enable-fs nfs\nshell-job\nenable-fs fuse\n\ntimeout 4\n",
			do: unset("enable-fs", "timeout"), after: "shell-job\n\n", n: 3},
		{name: "unset absent is no change", before: "# c\nshell-job\n", do: unset("tcp-established"),
			after: "# c\nshell-job\n"},
		{name: "unset in missing file creates nothing", before: missing, do: unset("shell-job"), after: missing},

		{name: "unknown option", before: "shell-job\n", do: set("tcp-establishd", ""),
			wantErr: criuopt.ErrUnknownOption, errHas: "did you mean tcp-established"},
		{name: "abbreviation refused", before: "shell-job\n", do: set("tcp-est", ""),
			wantErr: criuopt.ErrUnknownOption, errHas: "full name: tcp-established"},
		{name: "unknown option creates nothing", before: missing, do: set("ghost", ""), wantErr: criuopt.ErrUnknownOption},
		{name: "unset unknown option", before: "shell-job\n", do: unset("shell-job", "bogus"), wantErr: criuopt.ErrUnknownOption},
		{name: "bad value leaves file byte for byte", before: "# mine\nghost-limit 1M  \n", do: set("ghost-limit", "banana"),
			wantErr: criuopt.ErrInvalidValue},
		{name: "bad enum value", before: "shell-job\n", do: set("network-lock", "carrier-pigeon"), wantErr: criuopt.ErrInvalidValue},
		{name: "value for a switch", before: "shell-job\n", do: set("tcp-established", "yes"),
			wantErr: criuopt.ErrInvalidValue, errHas: "no-tcp-established"},
		{name: "value for a no- form", before: "shell-job\n", do: set("no-shell-job", "1"), wantErr: criuopt.ErrInvalidValue},
		{name: "missing required value", before: "shell-job\n", do: set("network-lock", ""),
			wantErr: criuopt.ErrInvalidValue, errHas: "nftables"},
		{name: "switch CRIU refuses in a file", before: "shell-job\n", do: set("ms", ""),
			wantErr: criuopt.ErrInvalidValue, errHas: "deprecated"},
		{name: "newline in value", before: "shell-job\n", do: set("lsm-profile", "apparmor:x\ntcp-close"), wantErr: criuopt.ErrInvalidValue},
		{name: "unparsable file is not rewritten", before: "shell-job\nlsm-profile \"unterminated\n# after\n",
			do: set("tcp-established", ""), wantErr: errAny, errHas: ":2:"},
		{name: "unparsable file is not rewritten by unset", before: "shell-job\nlsm-profile \"unterminated\n",
			do: unset("shell-job"), wantErr: errAny, errHas: ":2:"},
		{name: "set after version refused, not a crhook bug", before: "tcp-established\nversion\n", do: set("shell-job", ""),
			wantErr: errAny, errHas: "line 2 sets version, so CRIU prints its version and stops reading options there"},
		{name: "set before version rewrites in place", before: "ghost-limit 1M\nhelp\nshell-job\n", do: set("ghost-limit", "2M"),
			after: "ghost-limit 2M\nhelp\nshell-job\n", n: 1},
		{name: "unset version lets the lines after it apply", before: "version\n# c\ntcp-established", do: unset("version"),
			after: "# c\ntcp-established", n: 1},
		{name: "unset version removes the one it uncovers", before: "version\nshell-job\nversion\ntimeout 3\n", do: unset("version"),
			after: "shell-job\ntimeout 3\n", n: 2},
		{name: "unset version refused when what follows does not parse", before: "version\nbogus-option\n", do: unset("version"),
			wantErr: criuopt.ErrUnknownOption, errHas: ":2:1: unknown CRIU option"},
		{name: "CRLF on an option line is what CRIU rejects", before: "shell-job\r\n", do: set("tcp-established", ""),
			wantErr: errAny},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "etc", "criu", "default.conf")
			var ino uint64
			if tc.before != missing {
				writeFile(t, path, tc.before, 0o644)
				ino = inode(t, path)
			}
			n, err := tc.do(path)
			switch {
			case tc.wantErr == nil && err != nil:
				t.Fatalf("unexpected error: %v", err)
			case tc.wantErr != nil && err == nil:
				t.Fatalf("no error, want %v", tc.wantErr)
			case tc.wantErr != nil && !errors.Is(tc.wantErr, errAny) && !errors.Is(err, tc.wantErr):
				t.Fatalf("error %q is not %v", err, tc.wantErr)
			case err != nil && !strings.Contains(err.Error(), tc.errHas):
				t.Fatalf("error %q does not mention %q", err, tc.errHas)
			}
			if err != nil {
				t.Logf("error as users read it: %v", err)
			}
			want := tc.after
			if err != nil || (tc.n == 0 && tc.after == tc.before) {
				want = tc.before
			}
			got := readOrMissing(t, path)
			if got != want {
				t.Errorf("file after:\n%q\nwant:\n%q", got, want)
			}
			if n != tc.n {
				t.Errorf("n = %d, want %d", n, tc.n)
			}
			if want == tc.before && tc.before != missing && inode(t, path) != ino {
				t.Errorf("unchanged file was replaced (inode changed)")
			}
			if got != missing {
				if _, err := criuopt.Parse(path, []byte(got)); err != nil && want != tc.before {
					t.Errorf("edited file does not parse: %v", err)
				}
			}
			assertNoTemp(t, filepath.Dir(path))
		})
	}
}

// formatLine is the canonical line for name and value (Format is tested
// with the parser; here it only spares the table CRIU's quoting rules).
func formatLine(name, value string) string {
	opt, negated, _ := criuopt.Lookup(name)
	return criuopt.Format(criuopt.Statement{Option: opt, Negated: negated, Value: value, HasValue: value != ""})
}

// errAny in a table case means "some error"; the message is checked by errHas.
var errAny = errors.New("any error")

func TestSetCreatesWithModes(t *testing.T) {
	// Not parallel: the umask is process-wide. A restrictive umask must not
	// leave a file CRIU's users cannot read.
	old := syscall.Umask(0o077)
	defer syscall.Umask(old)
	root := t.TempDir()
	path := filepath.Join(root, "a", "b", "default.conf")
	if _, err := Set(path, "shell-job", ""); err != nil {
		t.Fatal(err)
	}
	for p, want := range map[string]fs.FileMode{
		path:                     0o644,
		filepath.Dir(path):       fs.ModeDir | 0o755,
		filepath.Join(root, "a"): fs.ModeDir | 0o755,
	} {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode() != want {
			t.Errorf("%s: mode %v, want %v", p, fi.Mode(), want)
		}
	}
}

func TestSetKeepsMode(t *testing.T) {
	path := filepath.Join(t.TempDir(), "default.conf")
	writeFile(t, path, "shell-job\n", 0o640)
	if _, err := Set(path, "tcp-established", ""); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o640 {
		t.Errorf("mode %04o, want 0640", fi.Mode().Perm())
	}
}

func TestSetKeepsOwner(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to give the file another owner")
	}
	path := filepath.Join(t.TempDir(), "default.conf")
	writeFile(t, path, "shell-job\n", 0o600)
	if err := os.Chown(path, 4321, 8765); err != nil {
		t.Fatal(err)
	}
	if _, err := Set(path, "tcp-established", ""); err != nil {
		t.Fatal(err)
	}
	var st syscall.Stat_t
	if err := syscall.Stat(path, &st); err != nil {
		t.Fatal(err)
	}
	if st.Uid != 4321 || st.Gid != 8765 || st.Mode&0o7777 != 0o600 {
		t.Errorf("owner %d:%d mode %04o, want 4321:8765 0600", st.Uid, st.Gid, st.Mode&0o7777)
	}
}

func TestEditRefusesLinksAndSpecialFiles(t *testing.T) {
	dir := t.TempDir()
	target := filepath.Join(dir, "real.conf")
	writeFile(t, target, "shell-job\n", 0o644)

	link := filepath.Join(dir, "default.conf")
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
	dangling := filepath.Join(dir, "dangling.conf")
	if err := os.Symlink(filepath.Join(dir, "nowhere"), dangling); err != nil {
		t.Fatal(err)
	}
	hard := filepath.Join(dir, "hard.conf")
	if err := os.Link(target, hard); err != nil {
		t.Fatal(err)
	}
	fifo := filepath.Join(dir, "fifo.conf")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Fatal(err)
	}
	for path, want := range map[string]string{
		link:     "symbolic link",
		dangling: "symbolic link",
		hard:     "hard links",
		fifo:     "not a regular file",
		dir:      "not a regular file",
	} {
		_, err := Set(path, "tcp-established", "")
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Set(%s): error %v, want one mentioning %q", filepath.Base(path), err, want)
		}
		if _, err := Unset(path, "shell-job"); err == nil {
			t.Errorf("Unset(%s): no error", filepath.Base(path))
		}
	}
	if fi, err := os.Lstat(link); err != nil || fi.Mode()&fs.ModeSymlink == 0 {
		t.Errorf("link was replaced: %v %v", fi, err)
	}
	if got := readOrMissing(t, target); got != "shell-job\n" {
		t.Errorf("target changed: %q", got)
	}
	if _, err := os.Lstat(filepath.Join(dir, "nowhere")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("dangling link's target was created")
	}
}

// TestSetWaitsForLock holds the directory lock the way another editor
// would and checks that Set waits for it instead of editing underneath.
func TestSetWaitsForLock(t *testing.T) {
	path := filepath.Join(t.TempDir(), "default.conf")
	writeFile(t, path, "shell-job\n", 0o644)
	d, err := lockDir(filepath.Dir(path), false)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := Set(path, "tcp-established", "")
		done <- err
	}()
	select {
	case err := <-done:
		t.Fatalf("Set finished while the lock was held: %v", err)
	case <-time.After(200 * time.Millisecond):
	}
	if err := d.close(); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if got := readOrMissing(t, path); got != "shell-job\ntcp-established\n" {
		t.Errorf("file %q", got)
	}
}

// concurrentSets picks n distinct options with a value Set accepts,
// preferring options a layer may set on the container path.
func concurrentSets(t *testing.T, n int) [][2]string {
	t.Helper()
	samples := map[string]string{
		"lsm-profile": "apparmor:crhook", "lsm-mount-context": "system_u:object_r:container_file_t:s0",
		"cgroup-props": "crhook", "cgroup-dump-controller": "cpu", "enable-fs": "nfs",
		"external": "mnt[crhook]:m", "ext-mount-map": "/a:/b", "veth-pair": "eth0=veth0",
		"join-ns": "net:/proc/1/ns/net", "cgroup-root": "/crhook",
	}
	value := func(o criuopt.Option) string {
		if v, ok := samples[o.Name]; ok {
			return v
		}
		switch {
		case o.Arg != criuopt.RequiredArg:
			return ""
		case o.Type == criuopt.TypeEnum:
			return o.Enum[0]
		case o.Type == criuopt.TypeInt:
			return "5"
		case o.Type == criuopt.TypeSize:
			return "1M"
		case o.Type == criuopt.TypePath:
			return "/var/lib/crhook/" + o.Name
		}
		return "crhook"
	}
	var out [][2]string
	for _, owned := range []bool{false, true} {
		for _, o := range criuopt.Options() {
			if o.Owned != owned || len(out) == n {
				continue
			}
			v := value(o)
			if _, err := statementFor(o.Name, v); err == nil {
				out = append(out, [2]string{o.Name, v})
			}
		}
	}
	if len(out) < n {
		t.Fatalf("only %d options accept a sample value, need %d", len(out), n)
	}
	return out
}

// checkAllSet asserts the file parses and sets every option of sets.
func checkAllSet(t *testing.T, path string, sets [][2]string) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	stmts, err := criuopt.Parse(path, data)
	if err != nil {
		t.Fatalf("file does not parse after concurrent edits: %v", err)
	}
	got := map[string]string{}
	for _, st := range stmts {
		got[st.Name()] = st.Value
	}
	for _, s := range sets {
		if v, ok := got[s[0]]; !ok || v != s[1] {
			t.Errorf("%s: got %q (present %v), want %q", s[0], v, ok, s[1])
		}
	}
	if len(stmts) != len(sets) {
		t.Errorf("%d statements, want %d", len(stmts), len(sets))
	}
	assertNoTemp(t, filepath.Dir(path))
}

func TestSetConcurrentGoroutines(t *testing.T) {
	path := filepath.Join(t.TempDir(), "criu", "default.conf")
	sets := concurrentSets(t, 50)
	var wg sync.WaitGroup
	errs := make([]error, len(sets))
	start := make(chan struct{})
	for i, s := range sets {
		wg.Go(func() {
			<-start
			_, errs[i] = Set(path, s[0], s[1])
		})
	}
	t0 := time.Now()
	close(start)
	wg.Wait()
	t.Logf("50 concurrent Set goroutines: %v", time.Since(t0))
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	checkAllSet(t, path, sets)
}

// TestSetConcurrentProcesses is the acceptance check: 50 processes, each
// doing one Set of a distinct option into the same (initially missing)
// file, released together; every option must be there afterwards.
func TestSetConcurrentProcesses(t *testing.T) {
	if testing.Short() {
		t.Skip("starts 50 processes; skipped in -short mode")
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "criu", "default.conf")
	gate := filepath.Join(dir, "go")
	sets := concurrentSets(t, 50)
	cmds := make([]*exec.Cmd, len(sets))
	outs := make([]strings.Builder, len(sets))
	for i, s := range sets {
		cmd := exec.Command(os.Args[0], "-test.run=^TestEditHelperProcess$", "-test.count=1")
		cmd.Env = append(os.Environ(), "CRHOOK_EDIT_HELPER="+strings.Join([]string{gate, path, s[0], s[1]}, "\x1f"))
		cmd.Stdout, cmd.Stderr = &outs[i], &outs[i]
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		cmds[i] = cmd
	}
	t0 := time.Now()
	writeFile(t, gate, "", 0o644)
	for i, cmd := range cmds {
		if err := cmd.Wait(); err != nil {
			t.Errorf("set %s: %v\n%s", sets[i][0], err, outs[i].String())
		}
	}
	t.Logf("50 concurrent Set processes, from release to last exit: %v", time.Since(t0))
	checkAllSet(t, path, sets)
}

// TestEditHelperProcess is the body of one process of
// TestSetConcurrentProcesses: the test binary re-executes itself with
// CRHOOK_EDIT_HELPER="GATE\x1fPATH\x1fNAME\x1fVALUE", waits for GATE to
// exist so all processes start editing together, and does one Set.
func TestEditHelperProcess(t *testing.T) {
	env := os.Getenv("CRHOOK_EDIT_HELPER")
	if env == "" {
		t.Skip("helper for TestSetConcurrentProcesses; runs only when re-executed by it")
	}
	args := strings.Split(env, "\x1f")
	deadline := time.Now().Add(30 * time.Second)
	for {
		if _, err := os.Stat(args[0]); err == nil {
			break
		}
		if time.Now().After(deadline) {
			fmt.Fprintln(os.Stderr, "gate never opened")
			os.Exit(2)
		}
		time.Sleep(time.Millisecond)
	}
	if _, err := Set(args[1], args[2], args[3]); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	os.Exit(0)
}

func writeFile(t *testing.T, path, content string, mode fs.FileMode) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, mode); err != nil {
		t.Fatal(err)
	}
}

func readOrMissing(t *testing.T, path string) string {
	t.Helper()
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return missing
	}
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

func inode(t *testing.T, path string) uint64 {
	t.Helper()
	var st syscall.Stat_t
	if err := syscall.Stat(path, &st); err != nil {
		t.Fatal(err)
	}
	return st.Ino
}

// assertNoTemp checks no temporary file of the editor was left behind.
func assertNoTemp(t *testing.T, dir string) {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return
	}
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if strings.Contains(e.Name(), ".crhook-") {
			t.Errorf("temporary file left behind: %s", e.Name())
		}
	}
}

// TestSetQuotesControlBytes: a file name with an escape sequence is never
// echoed raw in the editor's messages (the loader's: config's
// TestMessagesQuoteControlBytes).
func TestSetQuotesControlBytes(t *testing.T) {
	dir := t.TempDir() + "/\x1b[31mred"
	_, err := Set(dir+"/default.conf", "tcp-established", "yes")
	if err == nil || strings.Contains(err.Error(), "\x1b") {
		t.Errorf("Set error shows raw control bytes: %q", err)
	}
}
