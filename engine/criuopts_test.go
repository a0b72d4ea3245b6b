package engine

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/crhook/crhook/config/criuopt"
	migrate "github.com/crhook/crhook/engine/migrate/plan"
)

var testTLS = &migrate.TLSPaths{CACert: "/run/crhook/m/ca.pem", Cert: "/run/crhook/m/server.pem", Key: "/run/crhook/m/server-key.pem"}

func TestCriuOptsFlags(t *testing.T) {
	ps := &migrate.PageServer{Address: "10.250.13.2", Port: 27277}
	tests := []struct {
		name string
		o    CriuOpts
		kind RuntimeKind
		cmd  string
		want []string
		err  string
	}{
		{"nothing", CriuOpts{}, Runc, "checkpoint", nil, ""},
		{"lazy dump", CriuOpts{LazyPages: true, PageServer: ps, StatusFd: 3, TLS: testTLS}, Runc, "checkpoint",
			[]string{"--lazy-pages", "--page-server", "10.250.13.2:27277", "--status-fd", "3"}, ""},
		{"streamed dump", CriuOpts{PageServer: ps, TLS: testTLS}, Runc, "checkpoint", []string{"--page-server", "10.250.13.2:27277"}, ""},
		{"streamed dump of a paused container", CriuOpts{LeaveRunning: true, PageServer: ps, TLS: testTLS}, Runc, "checkpoint",
			[]string{"--leave-running", "--page-server", "10.250.13.2:27277"}, ""},
		{"pre-dump round", CriuOpts{PreDump: true, ParentPath: "../round-1", PageServer: ps, TLS: testTLS}, Runc, "checkpoint",
			[]string{"--pre-dump", "--parent-path", "../round-1", "--page-server", "10.250.13.2:27277"}, ""},
		{"ipv6 page server", CriuOpts{PageServer: &migrate.PageServer{Address: "fd00::2", Port: 1}, TLS: testTLS}, Runc, "checkpoint",
			[]string{"--page-server", "[fd00::2]:1"}, ""},
		{"lazy restore", CriuOpts{LazyPages: true}, Runc, "restore", []string{"--lazy-pages"}, ""},
		{"crun pre-dump", CriuOpts{PreDump: true, ParentPath: "../r1"}, Crun, "checkpoint", []string{"--pre-dump", "--parent-path", "../r1"}, ""},

		{"crun streamed dump: the page server is in the config", CriuOpts{LeaveRunning: true, PageServer: ps, TLS: testTLS}, Crun, "checkpoint", []string{"--leave-running"}, ""},
		{"crun lazy", CriuOpts{LazyPages: true}, Crun, "restore", nil, "crun has no --lazy-pages"},
		{"crun status fd", CriuOpts{LazyPages: true, PageServer: ps, StatusFd: 3, TLS: testTLS}, Crun, "checkpoint", nil, "crun has no --lazy-pages or --status-fd"},
		{"page server without TLS", CriuOpts{PageServer: ps}, Runc, "checkpoint", nil, "needs TLS material"},
		{"lazy without page server", CriuOpts{LazyPages: true, StatusFd: 3}, Runc, "checkpoint", nil, "only on this host"},
		{"lazy without status fd", CriuOpts{LazyPages: true, PageServer: ps, TLS: testTLS}, Runc, "checkpoint", nil, "needs --status-fd"},
		{"status fd on stderr", CriuOpts{LazyPages: true, PageServer: ps, StatusFd: 2, TLS: testTLS}, Runc, "checkpoint", nil, "standard stream"},
		{"status fd without lazy", CriuOpts{StatusFd: 5}, Runc, "checkpoint", nil, "only reports a lazy page server"},
		{"lazy pre-dump", CriuOpts{LazyPages: true, PreDump: true, PageServer: ps, StatusFd: 3, TLS: testTLS}, Runc, "checkpoint", nil, "exclude each other"},
		{"absolute parent", CriuOpts{PreDump: true, ParentPath: "/var/lib/x"}, Runc, "checkpoint", nil, "relative to the image path"},
		{"lazy leave running", CriuOpts{LazyPages: true, LeaveRunning: true, PageServer: ps, StatusFd: 3, TLS: testTLS}, Runc, "checkpoint", nil, "exclude each other"},
		{"leave running at restore", CriuOpts{LeaveRunning: true}, Runc, "restore", nil, "restore takes only --lazy-pages"},
		{"page server at restore", CriuOpts{PageServer: ps, TLS: testTLS}, Runc, "restore", nil, "restore takes only --lazy-pages"},
		{"option as address", CriuOpts{PageServer: &migrate.PageServer{Address: "--lib=/x", Port: 1}, TLS: testTLS}, Runc, "checkpoint", nil, "not a host name"},
		{"port 0", CriuOpts{PageServer: &migrate.PageServer{Address: "h", Port: 0}, TLS: testTLS}, Runc, "checkpoint", nil, "not in 1..65535"},
		{"relative TLS", CriuOpts{TLS: &migrate.TLSPaths{CACert: "ca.pem", Cert: "/c", Key: "/k"}}, Runc, "checkpoint", nil, "TLS CA certificate \"ca.pem\""},
		{"TLS path with a quote", CriuOpts{TLS: &migrate.TLSPaths{CACert: "/ca\".pem", Cert: "/c", Key: "/k"}}, Runc, "checkpoint", nil, "clean absolute path"},
		{"other subcommand", CriuOpts{}, Runc, "exec", nil, "neither checkpoint nor restore"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.o.Flags(tt.kind, tt.cmd)
			if tt.err != "" {
				if !errors.Is(err, ErrCriuOpts) || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("error %v, want ErrCriuOpts saying %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("flags %q, want %q", got, tt.want)
			}
		})
	}
}

func TestCriuOptsArgs(t *testing.T) {
	o := CriuOpts{LazyPages: true, PageServer: &migrate.PageServer{Address: "10.250.13.1", Port: 4000}, StatusFd: 3, TLS: testTLS}
	// podman's checkpoint arguments, container ID last.
	rest := []string{"--image-path", "/var/lib/c/checkpoint", "--work-path", "/var/lib/c", "--leave-running=false", "0123abcd"}
	got, err := o.Args(Runc, "checkpoint", rest)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"--image-path", "/var/lib/c/checkpoint", "--work-path", "/var/lib/c", "--leave-running=false",
		"--lazy-pages", "--page-server", "10.250.13.1:4000", "--status-fd", "3", "0123abcd"}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("args %q\nwant %q", got, want)
	}
	if rest[len(rest)-1] != "0123abcd" || len(rest) != 6 {
		t.Fatal("Args changed its input")
	}
	for _, tt := range []struct {
		name string
		rest []string
		err  string
	}{
		{"already lazy", []string{"--lazy-pages", "id"}, "already has --lazy-pages"},
		{"already a page server, = form", []string{"--page-server=1.2.3.4:5", "id"}, "already has --page-server=1.2.3.4:5"},
		{"single dash form", []string{"-status-fd", "4", "id"}, "already has -status-fd"},
		{"no id", nil, "no container ID"},
		{"flag last", []string{"--image-path", "/x", "--lazy-pages"}, "no container ID"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := o.Args(Runc, "checkpoint", tt.rest); !errors.Is(err, ErrCriuOpts) || !strings.Contains(err.Error(), tt.err) {
				t.Fatalf("error %v, want %q", err, tt.err)
			}
		})
	}
}

// TestCriuOptsConfLines: the TLS lines parse, with crhook's copy of
// CRIU's own parser, into exactly the options and paths meant.
func TestCriuOptsConfLines(t *testing.T) {
	tls := &migrate.TLSPaths{CACert: "/run/crhook/m-1/ca.pem", Cert: "/run/crhook/m-1/client.pem", Key: "/run/crhook/m-1/client-key.pem"}
	lines, err := CriuOpts{TLS: tls}.ConfLines()
	if err != nil {
		t.Fatal(err)
	}
	sts, err := criuopt.Parse("criu.conf", []byte(strings.Join(lines, "\n")+"\n"))
	if err != nil {
		t.Fatalf("CRIU would reject the TLS lines: %v\n%s", err, strings.Join(lines, "\n"))
	}
	got := map[string]string{}
	for _, st := range sts {
		got[st.Name()] = st.Value
	}
	want := map[string]string{"tls": "", "tls-cacert": tls.CACert, "tls-cert": tls.Cert, "tls-key": tls.Key}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("parsed %v, want %v", got, want)
	}
	// crun has no --page-server: its lines go into the file too.
	ps := &migrate.PageServer{Address: "10.250.13.2", Port: 27277}
	lines, err = CriuOpts{TLS: tls, PageServer: ps}.ConfLinesFor(Crun)
	if err != nil {
		t.Fatal(err)
	}
	if sts, err = criuopt.Parse("criu.conf", []byte(strings.Join(lines, "\n")+"\n")); err != nil {
		t.Fatalf("CRIU would reject crun's lines: %v", err)
	}
	for _, st := range sts {
		got[st.Name()] = st.Value
	}
	want["page-server"], want["address"], want["port"] = "", "10.250.13.2", "27277"
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("crun: parsed %v, want %v", got, want)
	}
	if runc, _ := (CriuOpts{TLS: tls, PageServer: ps}).ConfLinesFor(Runc); len(runc) != 4 {
		t.Fatalf("runc takes --page-server as a flag, not in the file: %q", runc)
	}
	if lines, err := (CriuOpts{}).ConfLines(); lines != nil || err != nil {
		t.Fatalf("no TLS: %q %v", lines, err)
	}
	// What CRIU's parser would cut, split or mis-read.
	for _, p := range []string{"/a\nlib /tmp/evil", "/run/crhook/m 1/ca.pem", "/run/crhook/m#1/ca.pem", "/a\"b", "/a\\b", "/a\tb"} {
		if _, err := (CriuOpts{TLS: &migrate.TLSPaths{CACert: p, Cert: "/c", Key: "/k"}}).ConfLines(); !errors.Is(err, ErrCriuOpts) {
			t.Errorf("ConfLines accepted the path %q: %v", p, err)
		}
	}
	// The parser would indeed have mis-read a quoted path with a space.
	if _, err := criuopt.Parse("criu.conf", []byte("tls-cacert \"/run/crhook/m 1/ca.pem\"\n")); err == nil {
		t.Log("CRIU's parser now reads quoted paths with spaces; tlsErrs could allow them")
	}
}

func TestLazyPagesDaemonArgs(t *testing.T) {
	got, err := LazyPagesDaemonArgs(migrate.PageServer{Address: "10.250.13.2", Port: 27277}, *testTLS, "/var/lib/c/checkpoint", "lazy-pages.log")
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"lazy-pages", "--page-server", "--address", "10.250.13.2", "--port", "27277",
		"--tls", "--tls-cacert", testTLS.CACert, "--tls-cert", testTLS.Cert, "--tls-key", testTLS.Key,
		"-D", "/var/lib/c/checkpoint", "-o", "lazy-pages.log"}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("args %q\nwant %q", got, want)
	}
	if _, err := LazyPagesDaemonArgs(migrate.PageServer{Address: "-x", Port: 1}, *testTLS, "rel", "l"); !errors.Is(err, ErrCriuOpts) ||
		!strings.Contains(err.Error(), "not a host name") || !strings.Contains(err.Error(), "not absolute") {
		t.Fatalf("bad daemon args: %v", err)
	}
}

func TestCriuOptsFromPlan(t *testing.T) {
	plan := func(mode migrate.Mode, parent string) *migrate.Plan {
		return &migrate.Plan{Version: migrate.PlanVersion, Mode: mode, MigrationID: "m1", ParentPath: parent,
			PageServer: migrate.PageServer{Address: "10.250.13.1", Port: 4000}, TLS: *testTLS, Status: migrate.StatusPlanned,
			Timeouts: migrate.Timeouts{Connect: migrate.Duration(time.Second), NoProgress: migrate.Duration(time.Second), Total: migrate.Duration(time.Minute)}}
	}
	ps := &migrate.PageServer{Address: "10.250.13.1", Port: 4000}
	lazyFinal := func(p *migrate.Plan) *migrate.Plan { p.Final = migrate.ModeLazy; return p }
	for _, tt := range []struct {
		name string
		plan *migrate.Plan
		cmd  string
		want CriuOpts
	}{
		{"lazy source", plan(migrate.ModeLazy, ""), "checkpoint", CriuOpts{LazyPages: true, PageServer: ps, StatusFd: 7, TLS: testTLS}},
		{"lazy destination", plan(migrate.ModeLazy, ""), "restore", CriuOpts{LazyPages: true, TLS: testTLS}},
		{"stream source", plan(migrate.ModeStream, ""), "checkpoint", CriuOpts{LeaveRunning: true, PageServer: ps, TLS: testTLS}},
		{"stream destination", plan(migrate.ModeStream, ""), "restore", CriuOpts{}},
		{"precopy final dump", plan(migrate.ModePrecopy, "../round-2"), "checkpoint", CriuOpts{LeaveRunning: true, PageServer: ps, ParentPath: "../round-2", TLS: testTLS}},
		{"precopy lazy final dump", lazyFinal(plan(migrate.ModePrecopy, "../round-2")), "checkpoint", CriuOpts{LazyPages: true, PageServer: ps, StatusFd: 7, ParentPath: "../round-2", TLS: testTLS}},
		{"precopy lazy final restore", lazyFinal(plan(migrate.ModePrecopy, "rounds/2")), "restore", CriuOpts{LazyPages: true, TLS: testTLS}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, err := CriuOptsFromPlan(tt.plan, tt.cmd, 7)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("got %+v, want %+v", got, tt.want)
			}
			if _, err := got.Flags(Runc, tt.cmd); err != nil {
				t.Fatalf("the plan's options do not make runc flags: %v", err)
			}
		})
	}
	bad := plan(migrate.ModeLazy, "")
	bad.Version = 2
	if _, err := CriuOptsFromPlan(bad, "checkpoint", 7); !errors.Is(err, migrate.ErrPlan) {
		t.Fatalf("invalid plan: %v", err)
	}
}

func TestKindOf(t *testing.T) {
	for path, want := range map[string]RuntimeKind{"runc": Runc, "/usr/sbin/runc": Runc, "/usr/bin/crun": Crun, "crun-1.28": Crun, "/opt/runc.amd64": Runc} {
		if got := KindOf(path); got != want {
			t.Errorf("KindOf(%q) = %s, want %s", path, got, want)
		}
	}
}

// TestPageServerArgsRefuses: `crhook migrate-agent serve` hands these
// arguments to CRIU as they are; each relative path or bad address is
// refused and named, all at once.
func TestPageServerArgsRefuses(t *testing.T) {
	ps := migrate.PageServer{Address: "10.250.13.2", Port: 27277}
	got, err := PageServerArgs(ps, *testTLS, "/var/lib/c/images", "/var/lib/c/page-server.log")
	if err != nil || got[0] != "page-server" || !strings.Contains(strings.Join(got, " "), "--port 27277 --tls --tls-cacert /run/crhook/m/ca.pem") {
		t.Fatalf("PageServerArgs = %q, %v; want a page-server command with TLS", got, err)
	}
	_, err = PageServerArgs(migrate.PageServer{Address: "-x", Port: 0}, *testTLS, "images", "log")
	if !errors.Is(err, ErrCriuOpts) {
		t.Fatalf("PageServerArgs(bad) error = %v; want ErrCriuOpts", err)
	}
	for _, want := range []string{`address "-x"`, "port 0", `images dir "images"`, `log file "log"`} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("PageServerArgs(bad) error %q does not name %s", err, want)
		}
	}
}
