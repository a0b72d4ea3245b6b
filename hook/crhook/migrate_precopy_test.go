package main

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/crhook/crhook/engine/doctor"
	"github.com/crhook/crhook/engine/migrate"
)

// TestParseFinal: --final is stream or lazy, and lazy only with --mode
// precopy (auto and lazy have no rounds to put a final dump on).
func TestParseFinal(t *testing.T) {
	for _, tc := range []struct {
		final string
		mode  migrate.Mode
		want  migrate.Mode
		err   string
	}{
		{"stream", migrate.ModePrecopy, migrate.ModeStream, ""},
		{"lazy", migrate.ModePrecopy, migrate.ModeLazy, ""},
		{"stream", migrate.ModeAuto, migrate.ModeStream, ""},
		{"stream", migrate.ModeLazy, migrate.ModeStream, ""},
		{"lazy", migrate.ModeAuto, "", "use it with --mode precopy, not auto"},
		{"lazy", migrate.ModeStream, "", "use it with --mode precopy, not stream"},
		{"precopy", migrate.ModePrecopy, "", `--final "precopy": want stream or lazy`},
		{"", migrate.ModePrecopy, "", "want stream or lazy"},
	} {
		t.Run(tc.final+" with "+string(tc.mode), func(t *testing.T) {
			got, err := parseFinal(tc.final, tc.mode)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("parseFinal = %q, %v; want an error saying %q", got, err, tc.err)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("parseFinal = %q, %v; want %q", got, err, tc.want)
			}
		})
	}
}

// TestFinalLazyRefusal: a lazy final dump is refused, with the host, the
// fact and the fix, where post-copy cannot run: crun on either end,
// pipes CRIU cannot grow on the source, no userfaultfd on the
// destination; a destination that could not be checked blocks nothing.
func TestFinalLazyRefusal(t *testing.T) {
	ok := func(id string) doctor.Result {
		return doctor.Result{ID: id, Status: doctor.OK, Evidence: []string{"fine"}}
	}
	warn := func(id, fix, ev string) doctor.Result {
		return doctor.Result{ID: id, Status: doctor.Warn, Evidence: []string{ev}, Fix: fix}
	}
	here := []doctor.Result{ok("migrate.uffd"), ok("migrate.lazy_pipe"), ok("migrate.soft_dirty")}
	runc := &doctor.Versions{Runtime: "runc"}
	dest := &remoteDoctor{Schema: 1, Checks: []doctor.Result{ok("migrate.uffd")}, Versions: runc}
	for _, tc := range []struct {
		name      string
		local     *doctor.Report
		remote    *remoteDoctor
		remoteErr error
		// srcRuntime: the container's own runtime ("": crhook's, as
		// doctor reports it).
		srcRuntime string
		want       string
	}{
		{name: "both can", local: &doctor.Report{Results: here, Versions: runc}, remote: dest},
		{name: "crun here", local: &doctor.Report{Results: here, Versions: &doctor.Versions{Runtime: "crun"}}, remote: dest,
			want: "source: the runtime is crun, which has no --lazy-pages"},
		{name: "a crun container, runc as crhook's runtime", local: &doctor.Report{Results: here, Versions: runc}, remote: dest,
			srcRuntime: "crun", want: "source: the runtime is crun, which has no --lazy-pages"},
		{name: "crun there", local: &doctor.Report{Results: here, Versions: runc},
			remote: &remoteDoctor{Schema: 1, Checks: dest.Checks, Versions: &doctor.Versions{Runtime: "crun"}}, want: "destination: the runtime is crun"},
		{name: "small pipes here", local: &doctor.Report{Results: []doctor.Result{here[0],
			warn("migrate.lazy_pipe", "sysctl -w fs.pipe-max-size=4194304", "fs.pipe-max-size = 1048576 < 4194304"), here[2]}, Versions: runc},
			remote: dest, want: "source: fs.pipe-max-size = 1048576 < 4194304 (fix: sysctl -w fs.pipe-max-size=4194304)"},
		{name: "no userfaultfd there", local: &doctor.Report{Results: here, Versions: runc},
			remote: &remoteDoctor{Schema: 1, Checks: []doctor.Result{warn("migrate.uffd", "boot a kernel built with CONFIG_USERFAULTFD=y", "criu check --feature uffd: exit status 1")}, Versions: runc},
			want:   "destination: criu check --feature uffd: exit status 1"},
		{name: "destination not checked", local: &doctor.Report{Results: here, Versions: runc}, remoteErr: errors.New("ssh: exit 255")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rt := tc.srcRuntime
			if rt == "" {
				rt = tc.local.Versions.Runtime
			}
			err := finalLazyRefusal(tc.local, rt, tc.remote, tc.remoteErr)
			if tc.want == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "use --final stream") {
				t.Fatalf("refusal %v, want one saying %q and the way out", err, tc.want)
			}
		})
	}
}

// TestPrecopyDryRunSteps pins what --dry-run says precopy would do, for
// each final dump (testdata/golden/migrate-dry-run-precopy-*.txt; go
// test -update).
func TestPrecopyDryRunSteps(t *testing.T) {
	dest := migrate.Destination{Host: "hostb", Port: 2222}
	policy := precopyPolicy(300 * time.Millisecond)
	for _, fin := range []precopyFinal{
		{mode: migrate.ModeStream},
		{mode: migrate.ModeLazy, ps: migrate.PageServer{Address: "10.0.0.2"}},
	} {
		var b strings.Builder
		for i, s := range precopyDryRunSteps("web", dest, "0123abcd", migrate.PageServer{Address: "10.0.0.1"}, policy, true, fin) {
			fmt.Fprintf(&b, "%d. %s\n", i+1, s)
		}
		golden(t, "migrate-dry-run-precopy-"+string(fin.mode)+".txt", []byte(b.String()))
	}
}
