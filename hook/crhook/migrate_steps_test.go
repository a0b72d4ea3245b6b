package main

import (
	"fmt"
	"strings"
	"testing"

	"github.com/crhook/crhook/engine/migrate"
)

// TestDryRunSteps pins what `crhook migrate --dry-run` says it would do,
// per mode (testdata/golden/migrate-dry-run-*.txt; go test -update).
func TestDryRunSteps(t *testing.T) {
	dest := migrate.Destination{Host: "hostb", Port: 2222}
	for _, tc := range []struct {
		mode migrate.Mode
		ps   migrate.PageServer
		rm   bool
	}{
		{migrate.ModeLazy, migrate.PageServer{Address: "10.0.0.2", Port: 40123}, false},
		{migrate.ModeStream, migrate.PageServer{Address: "10.0.0.1"}, true},
	} {
		var b strings.Builder
		for i, s := range dryRunSteps(tc.mode, "web", dest, "0123abcd", tc.ps, tc.rm) {
			fmt.Fprintf(&b, "%d. %s\n", i+1, s)
		}
		golden(t, "migrate-dry-run-"+string(tc.mode)+".txt", []byte(b.String()))
	}
}
