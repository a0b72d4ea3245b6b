package main

import (
	"github.com/spf13/cobra"
)

func newRootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:   "crhook",
		Short: "Configure and diagnose CRIU checkpoint/restore of Podman containers",
		Long: `crhook makes podman container checkpoint/restore honour CRIU's config files.
Podman's runtime (runc, crun) drives CRIU over RPC, and CRIU then ignores
/etc/criu/default.conf. crhook-runtime, registered as podman's runtime, merges
the layers into one file per container and points the runtime at it.`,
		Version:       version,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.AddCommand(newConfigCmd())
	return root
}
