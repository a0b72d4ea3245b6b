package diagnose

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/golden")

// Every catalog entry is tested on a real CRIU log line; testdata/logs/README.md
// says where each log comes from.
var cases = []struct {
	log  string
	ctx  Context
	rule string
	said string // the quoted root-cause line contains this
	op   string
	fix  string // one of the fixes is exactly this
}{
	{log: "tcp-established.dump.log", rule: "tcp-established", said: "Connected TCP socket, consider using --tcp-established", op: OpDump,
		fix: "criu dump --tcp-established ..."},
	{log: "podman-tcp-established.dump.log", ctx: Context{ContainerName: "web"}, rule: "tcp-established", said: "Connected TCP socket", op: OpDump,
		fix: "podman container checkpoint --tcp-established web"},
	{log: "podman-tcp-established.dump.log", rule: "tcp-established", said: "Connected TCP socket", op: OpDump,
		fix: "podman run --annotation io.crhook.criu.tcp-established=true ..."},
	{log: "tcp-established.restore.log", ctx: Context{ContainerName: "web", Operation: OpRestore}, rule: "tcp-established", said: "Connected TCP socket in image", op: OpRestore,
		fix: "podman container restore --tcp-established web"},
	{log: "shell-job-session-leader.dump.log", rule: "shell-job", said: "is not a session leader", op: OpDump,
		fix: "criu dump --shell-job ..."},
	{log: "shell-job-tty.dump.log", rule: "shell-job", said: "without correspond master peer", op: OpDump,
		fix: "crhook config set shell-job"},
	{log: "shell-job-dangling.dump.log", rule: "shell-job", said: "Found dangling tty", op: OpDump,
		fix: "crhook config set shell-job"},
	{log: "file-locks.dump.log", ctx: Context{ContainerName: "db"}, rule: "file-locks", said: "Some file locks are hold", op: OpDump,
		fix: "podman container checkpoint --file-locks db"},
	{log: "ext-unix-sk.dump.log", ctx: Context{ContainerName: "db"}, rule: "ext-unix-sk", said: "External socket is used", op: OpDump,
		fix: "podman run --annotation io.crhook.criu.ext-unix-sk=true ..."},
	{log: "ext-unix-sk.restore.log", rule: "ext-unix-sk", said: "External socket found in image", op: OpRestore,
		fix: "criu restore --ext-unix-sk ..."},
	{log: "ghost-limit.dump.log", ctx: Context{ContainerName: "db"}, rule: "ghost-limit", said: "Can't dump ghost file /tmp/diag/big of 3145728 size", op: OpDump,
		fix: "podman run --annotation io.crhook.criu.ghost-limit=4M ..."},
	{log: "ghost-limit.dump.log", rule: "ghost-limit", said: "Can't dump ghost file", op: OpDump,
		fix: "crhook config set ghost-limit 4M"},
	{log: "link-remap.dump.log", rule: "link-remap", said: "Can't create link remap for /tmp/diag/lr1", op: OpDump,
		fix: "criu dump --link-remap ..."},
	{log: "pid-in-use.restore.log", rule: "pid-in-use", said: "Can't fork for 5696: File exists", op: OpRestore,
		fix: "ps -o pid,user,args -p 5696   # stop it, then restore again"},
	{log: "dirty-tracking.predump.log", rule: "no-dirty-tracking", said: "BUG at criu/mem.c:46", op: "",
		fix: "criu dump ...   # instead of pre-dump"},
	{log: "dirty-tracking.predump.log", ctx: Context{Operation: OpPreDump, ContainerName: "web"}, rule: "no-dirty-tracking", said: "BUG at criu/mem.c", op: OpPreDump,
		fix: "podman container checkpoint web   # without --pre-checkpoint"},
	{log: "dirty-tracking.check.log", rule: "no-dirty-tracking", said: "Dirty tracking is OFF. Memory snapshot will not work",
		fix: "criu check --feature mem_dirty_track   # passes on a kernel with CONFIG_MEM_SOFT_DIRTY=y"},
	{log: "criu-too-old-vdso.check.log", rule: "criu-too-old", said: "Unexpected rt vDSO area bounds", fix: upgradeCRIU},
	{log: "criu-too-old-sockopt.dump.log", rule: "criu-too-old", said: "Can't get 1:16 opt", op: OpDump, fix: upgradeCRIU},
	{log: "no-checkpoint-restore.dump.log", rule: "no-checkpoint-restore", said: "kcmp failed", op: OpDump,
		fix: "grep CONFIG_CHECKPOINT_RESTORE /boot/config-$(uname -r)   # must be =y: boot a kernel built with it"},
	{log: "no-checkpoint-restore.check.log", rule: "no-checkpoint-restore", said: "System call kcmp is not supported",
		fix: "grep CONFIG_CHECKPOINT_RESTORE /boot/config-$(uname -r)   # must be =y: boot a kernel built with it"},
	{log: "selinux-connect.dump.log", rule: "selinux", said: "Unable to connect a transport socket: Permission denied", op: OpDump,
		fix: "ausearch -m AVC,USER_AVC -ts recent   # shows the denial"},
	{log: "selinux-dyntransition.restore.log", rule: "selinux", said: "can't write lsm profile -13", op: OpRestore,
		fix: "semodule -l | grep -w crhook   # if missing, install crhook-selinux"},
	{log: "selinux-sockcreate.restore.log", rule: "selinux", said: "socket SELinux context: Permission denied", op: OpRestore,
		fix: "ausearch -m AVC,USER_AVC -ts recent   # shows the denial"},
	{log: "no-space.dump.log", rule: "no-space", said: "No space left on device", op: OpDump,
		fix: "df -h testdata/logs   # free space there, or checkpoint to another filesystem"},
	{log: "generic-stream-unix.dump.log", rule: "generic", said: "Can't dump half of stream unix connection", op: OpDump},
	{log: "success.dump.log", rule: "no-error"},
}

func TestCatalog(t *testing.T) {
	for _, tc := range cases {
		t.Run(tc.log+"/"+tc.ctx.ContainerName+tc.ctx.Operation, func(t *testing.T) {
			path := filepath.Join("testdata/logs", tc.log)
			d, err := Explain(path, tc.ctx)
			if err != nil {
				t.Fatal(err)
			}
			check(t, d, tc.rule, tc.said, tc.op, tc.fix)
		})
	}
}

func check(t *testing.T, d *Diagnosis, rule, said, op, fix string) {
	t.Helper()
	if d.Rule != rule {
		t.Fatalf("rule = %q, want %q\n%s", d.Rule, rule, d.Text())
	}
	if d.Operation != op {
		t.Errorf("operation = %q, want %q", d.Operation, op)
	}
	if d.Meaning == "" || strings.Contains(d.Meaning, "{") {
		t.Errorf("meaning not rendered: %q", d.Meaning)
	}
	if len(d.Quote) != len(d.QuoteLines) {
		t.Fatalf("%d quoted lines, %d line numbers", len(d.Quote), len(d.QuoteLines))
	}
	if said != "" {
		root := ""
		for i, n := range d.QuoteLines {
			if n == d.Line {
				root = d.Quote[i]
			}
		}
		if !strings.Contains(root, said) {
			t.Errorf("root-cause line %d = %q, want it to contain %q", d.Line, root, said)
		}
		if strings.Contains(root, "RLIMIT_NOFILE") {
			t.Errorf("the harmless rlimit error was taken for the cause")
		}
	}
	found := fix == ""
	for _, f := range d.Fixes {
		found = found || f.Command == fix
		if strings.Contains(f.Command, "{") {
			t.Errorf("fix not rendered: %q", f.Command)
		}
		switch f.Scope {
		case ScopeAll, ScopeContainer, ScopeThisTime, ScopeHost:
		default:
			t.Errorf("fix %q has unknown scope %q", f.Command, f.Scope)
		}
	}
	if !found {
		t.Errorf("no fix %q in %+v", fix, d.Fixes)
	}
}

// TestEveryEntryTested keeps the promise that each catalog entry has a test
// on a real log: an entry no case reaches fails here.
func TestEveryEntryTested(t *testing.T) {
	catalog := loadTables().catalog
	hit := make([]bool, len(catalog))
	for _, tc := range cases {
		data, err := os.ReadFile(filepath.Join("testdata/logs", tc.log))
		if err != nil {
			t.Fatal(err)
		}
		for _, line := range strings.Split(string(data), "\n") {
			for i, e := range catalog {
				for _, re := range e.match {
					if re.MatchString(line) && e.id == tc.rule {
						hit[i] = true
					}
				}
			}
		}
	}
	runc, err := os.ReadFile("testdata/logs/podman-precheckpoint.runc-stderr.txt")
	if err != nil {
		t.Fatal(err)
	}
	for i, e := range catalog {
		for _, re := range e.match {
			if re.Match(runc) {
				hit[i] = true
			}
		}
		if !hit[i] {
			t.Errorf("catalog entry %d (%s, %s) has no test log", i, e.id, e.match[0])
		}
	}
}

// TestWithoutTimestamps: below -v4 CRIU writes no "(00.000000)" stamps, and
// restore lines carry a PID prefix; the rules must not depend on either.
func TestWithoutTimestamps(t *testing.T) {
	stamp := regexp.MustCompile(`(?m)^\(\d+\.\d+\) `)
	for _, tc := range cases {
		data, err := os.ReadFile(filepath.Join("testdata/logs", tc.log))
		if err != nil {
			t.Fatal(err)
		}
		bare := stamp.ReplaceAll(data, nil)
		d, err := ExplainReader(tc.log, bytes.NewReader(bare), tc.ctx)
		if err != nil {
			t.Fatal(err)
		}
		if d.Rule != tc.rule {
			t.Errorf("%s without timestamps: rule %q, want %q", tc.log, d.Rule, tc.rule)
		}
	}
}

func TestRuntimeOutput(t *testing.T) {
	// podman container checkpoint --pre-checkpoint on this machine: runc
	// refuses before CRIU runs and leaves dump.log empty.
	runc, err := os.ReadFile("testdata/logs/podman-precheckpoint.runc-stderr.txt")
	if err != nil {
		t.Fatal(err)
	}
	ctx := Context{Operation: OpPreDump, ContainerName: "web", RuntimeOutput: string(runc)}
	d, err := ExplainReader("/var/lib/containers/storage/overlay-containers/ID/userdata/dump.log", strings.NewReader(""), ctx)
	if err != nil {
		t.Fatal(err)
	}
	check(t, d, "no-dirty-tracking", "CRIU is missing features", OpPreDump, "podman container checkpoint web   # without --pre-checkpoint")
	if d.LogPath != "runtime stderr" {
		t.Errorf("log = %q", d.LogPath)
	}

	// The same runc message on a plain dump says nothing about dirty tracking.
	ctx.Operation = OpDump
	d, _ = ExplainReader("dump.log", strings.NewReader(""), ctx)
	if d.Rule != ruleEmpty {
		t.Errorf("dump with runc's feature error: rule %q, want %q", d.Rule, ruleEmpty)
	}
}

func TestNoLog(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "dump.log")
	d, err := Explain(missing, Context{Operation: OpDump})
	if !errors.Is(err, ErrUnreadableLog) || !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("err = %v, want ErrUnreadableLog wrapping fs.ErrNotExist", err)
	}
	if d == nil || d.Rule != ruleNoLog || !strings.Contains(d.Text(), missing) {
		t.Fatalf("missing log: %+v", d)
	}

	empty := filepath.Join(t.TempDir(), "dump.log")
	if err := os.WriteFile(empty, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	d, err = Explain(empty, Context{})
	if err != nil || d.Rule != ruleEmpty || !strings.Contains(d.Text(), "is empty") {
		t.Fatalf("empty log: %v %+v", err, d)
	}
}

type failingReader struct{ n int }

func (r *failingReader) Read(p []byte) (int, error) {
	if r.n > 0 {
		r.n--
		return copy(p, "(00.1) Error (criu/x.c:1): something broke\n"), nil
	}
	return 0, errors.New("disk on fire")
}

func TestReadError(t *testing.T) {
	d, err := ExplainReader("dump.log", &failingReader{n: 2}, Context{})
	if !errors.Is(err, ErrUnreadableLog) || d == nil || d.Rule != ruleGeneric {
		t.Fatalf("err = %v, d = %+v", err, d)
	}
}

func TestPriorityAndOrder(t *testing.T) {
	log := strings.Join([]string{
		"(00.1) Error (criu/util.c:1534): rlimit: Can't setup RLIMIT_NOFILE for self: Operation not permitted",
		"(00.2) Error (criu/files-reg.c:1031): Can't dump ghost file /a of 3000000 size, increase limit",
		"(00.3) Error (criu/page-xfer.c:263): page-xfer: Unable to spice data: No space left on device",
		"(00.4) Error (criu/sk-inet.c:200): inet: Connected TCP socket, consider using --tcp-established option.",
		"(00.5) Error (criu/cr-dump.c:1975): Dumping FAILED.",
	}, "\n")
	d, _ := ExplainReader("dump.log", strings.NewReader(log), Context{})
	if d.Rule != "no-space" || d.Line != 3 {
		t.Errorf("higher priority must win: %s:%d", d.Rule, d.Line)
	}
	// Same priority: the first error is the cause.
	log = strings.Replace(log, "No space left on device", "Broken pipe", 1)
	d, _ = ExplainReader("dump.log", strings.NewReader(log), Context{})
	if d.Rule != "ghost-limit" || d.Line != 2 {
		t.Errorf("earliest must win: %s:%d", d.Rule, d.Line)
	}
}

func TestGenericQuotesFirstAndLastErrors(t *testing.T) {
	var b strings.Builder
	b.WriteString("(00.1) Error (criu/util.c:1534): rlimit: Can't setup RLIMIT_NOFILE for self: Operation not permitted\n")
	b.WriteString("(00.2) Error (criu/x.c:1): the first real error\n")
	for i := 0; i < 20; i++ {
		b.WriteString("(00.3) debug noise\n(00.4) Error (criu/y.c:2): a consequence\n")
	}
	b.WriteString("(00.5) Error (criu/cr-dump.c:1975): Dumping FAILED.\n")
	d, _ := ExplainReader("dump.log", strings.NewReader(b.String()), Context{})
	if d.Rule != ruleGeneric || !d.Generic || d.Line != 2 {
		t.Fatalf("rule %s line %d", d.Rule, d.Line)
	}
	if last := d.Quote[len(d.Quote)-1]; !strings.Contains(last, "a consequence") || d.QuoteLines[len(d.QuoteLines)-1] != 42 {
		t.Errorf("last quoted line %d %q", d.QuoteLines[len(d.QuoteLines)-1], last)
	}
	if !strings.Contains(d.Text(), "the whole log is dump.log") {
		t.Errorf("generic text does not name the log:\n%s", d.Text())
	}
}

// TestHostileLog: names in CRIU logs come from inside the container, so no
// terminal escape may pass through, and a single endless line is cut.
func TestHostileLog(t *testing.T) {
	log := "(00.1) Error (criu/files-reg.c:1031): Can't dump ghost file /tmp/\x1b]0;pwned\x07\xff of 9999999 size, increase limit\n" +
		"(00.2) " + strings.Repeat("x", 1<<20) + "\n"
	d, err := ExplainReader("dump.log", strings.NewReader(log), Context{})
	if err != nil {
		t.Fatal(err)
	}
	text := d.Text()
	if strings.ContainsAny(text, "\x1b\x07") || !strings.Contains(text, `\u001b]0;pwned\u0007\xff`) {
		t.Errorf("control characters not escaped:\n%q", text)
	}
	for _, q := range d.Quote {
		if len(q) > maxLine {
			t.Errorf("quoted line of %d bytes", len(q))
		}
	}
	if d.Rule != "ghost-limit" || !strings.Contains(d.Fixes[0].Command, "ghost-limit 16M") {
		t.Errorf("%s %+v", d.Rule, d.Fixes)
	}
}

// TestGolden pins Text() and the JSON schema for a podman failure.
func TestGolden(t *testing.T) {
	for _, g := range []struct {
		name, log string
		ctx       Context
	}{
		{"podman-tcp", "podman-tcp-established.dump.log", Context{Operation: OpDump, ContainerName: "web", ConfigFile: "/run/crhook/containers/3c712a82ce76/criu.conf"}},
		{"criu-ghost", "ghost-limit.dump.log", Context{}},
		{"generic", "generic-stream-unix.dump.log", Context{}},
	} {
		t.Run(g.name, func(t *testing.T) {
			d, err := Explain(filepath.Join("testdata/logs", g.log), g.ctx)
			if err != nil {
				t.Fatal(err)
			}
			js, err := json.MarshalIndent(d, "", "  ")
			if err != nil {
				t.Fatal(err)
			}
			golden(t, g.name+".txt", d.Text())
			golden(t, g.name+".json", string(js)+"\n")
		})
	}
}

func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata/golden", name)
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update)", err)
	}
	if got != string(want) {
		t.Errorf("%s differs (go test -update rewrites it):\n--- got\n%s--- want\n%s", path, got, want)
	}
}

// TestConfigFromLog: without a ConfigFile from the caller, the config in
// effect is the one CRIU names: the RPC file for runc, else the files parsed.
func TestConfigFromLog(t *testing.T) {
	for log, want := range map[string]string{
		"podman-tcp-established.dump.log": "/etc/criu/runc.conf",
		"criu-too-old-vdso.check.log":     "/etc/criu/default.conf",
		"tcp-established.dump.log":        "",
	} {
		d, _ := Explain(filepath.Join("testdata/logs", log), Context{})
		if d.Config != want {
			t.Errorf("%s: config %q, want %q", log, d.Config, want)
		}
		if got := strings.Contains(d.Text(), "Config in effect: "+want+"\n"); got != (want != "") {
			t.Errorf("%s: text names config %v:\n%s", log, got, d.Text())
		}
	}
}
