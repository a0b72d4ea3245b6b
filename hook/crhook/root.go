package main

import (
	"github.com/spf13/cobra"

	"github.com/crhook/crhook/config"
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
	root.PersistentFlags().StringVar(&rootDir, "root", "", "read and edit the files below this directory instead of /")
	root.AddCommand(newConfigCmd(), newExplainCmd(), newDoctorCmd(), newMigrateCmd(), newMigrateAgentCmd())
	return root
}

// rootDir is the --root flag: every default path is taken below it.
var rootDir string

// paths are the search paths the CLI uses, honouring --root.
func paths() config.Paths { return config.DefaultPaths().Under(rootDir) }
