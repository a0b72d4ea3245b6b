package main

import (
	"fmt"
	"strconv"

	"github.com/crhook/crhook/engine/migrate"
)

// dryRunSteps are the steps --dry-run lists for mode.
func dryRunSteps(mode migrate.Mode, name string, dest migrate.Destination, id string, ps migrate.PageServer, rm bool) []string {
	removed := map[bool]string{true: " and remove it", false: ""}[rm]
	if mode == migrate.ModeStream {
		port := "an ephemeral port"
		if ps.Port != 0 {
			port = "port " + strconv.Itoa(ps.Port)
		}
		return []string{
			"make a CA and page-server/client certificates for this migration; send the page server's to the destination over ssh",
			fmt.Sprintf("start criu page-server (TLS) on %s, %s, and write the migration plan for %s on both hosts", ps.Address, port, id),
			fmt.Sprintf("podman container checkpoint --keep --compress none --export FILE %s: crhook-runtime pauses it and runs runc checkpoint --leave-running --page-server: the pages go to the destination, the dumped tasks stay frozen here", name),
			"wait until the destination's page server exited 0 (every page arrived)",
			"copy FILE (no pages in it) to " + dest.String(),
			"podman container restore --import FILE there: crhook-runtime adds the received pages to the image directory and restores",
			"delete the frozen tasks here, leave the source stopped" + removed,
		}
	}
	return []string{
		"make a CA and page-server/client certificates for this migration; send the client's to the destination over ssh",
		fmt.Sprintf("write the migration plan for %s on both hosts", id),
		fmt.Sprintf("podman container checkpoint --keep --compress none --export FILE %s: crhook-runtime dumps lazily and leaves a page server on %s", name, ps),
		"copy FILE (no pages in it) to " + dest.String(),
		"podman container restore --import FILE there: crhook-runtime starts criu lazy-pages and runc restore --lazy-pages",
		"wait until every page moved, then leave the source stopped" + removed,
	}
}
