package main

import (
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/crhook/crhook/config"
	"github.com/crhook/crhook/config/criuopt"
	"github.com/crhook/crhook/config/edit"
	"github.com/crhook/crhook/engine"
)

func newConfigCmd() *cobra.Command {
	c := &cobra.Command{
		Use:   "config",
		Short: "Show, check and edit the CRIU options of the container path",
	}
	c.AddCommand(newShowCmd(), newGetCmd(), newSetCmd(), newUnsetCmd(), newCheckCmd())
	return c
}

type showFlags struct {
	origin    bool
	runtime   string
	format    string
	container string
}

func newShowCmd() *cobra.Command {
	var f showFlags
	c := &cobra.Command{
		Use:   "show",
		Short: "Print the options CRIU gets on the container path",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := checkFormat(f.format); err != nil {
				return err
			}
			v, err := resolveView(f)
			if err != nil {
				return err
			}
			if f.format == "json" {
				return v.writeJSON(cmd.OutOrStdout())
			}
			v.writeText(cmd.OutOrStdout(), f.origin)
			return nil
		},
	}
	c.Flags().BoolVar(&f.origin, "origin", false, "show the file:line or annotation each option comes from")
	c.Flags().StringVar(&f.runtime, "runtime", "", "resolve for this runtime's layer: runc or crun (default: runtime.path of crhook.toml)")
	addFormatFlag(c, &f.format, "schema in crhook-config(1)")
	c.Flags().StringVar(&f.container, "container", "", "resolve for an existing container (name or ID), its annotations included")
	return c
}

func resolveView(f showFlags) (*view, error) {
	p := paths()
	settings, err := config.LoadSettings(p)
	if err != nil {
		return nil, err
	}
	runtime := settings.Runtime.Path
	if f.runtime != "" {
		runtime = f.runtime
	}
	v := &view{Runtime: runtime}
	in := config.Input{Runtime: runtime, Settings: settings}
	if f.container != "" {
		ctr, err := engine.InspectContainer(f.container)
		if err != nil {
			return nil, err
		}
		v.Container = ctr
		in.Annotations = ctr.Annotations
		if ctr.Bypass == "" {
			in.ContainerFile = ctr.CRIUFile // layer 4; a bypassing container's file is all CRIU reads
		}
	}
	if v.Resolution, err = config.Resolve(p, in); err != nil {
		return nil, err
	}
	return v, nil
}

func newGetCmd() *cobra.Command {
	var runtime string
	c := &cobra.Command{
		Use:   "get NAME",
		Short: "Print the effective value of one option",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			opt, _, ok := criuopt.Lookup(args[0])
			if !ok {
				return fmt.Errorf("get %q: %w", args[0], criuopt.UnknownOption(args[0]))
			}
			v, err := resolveView(showFlags{runtime: runtime})
			if err != nil {
				return err
			}
			return v.writeGet(cmd.OutOrStdout(), opt)
		},
	}
	c.Flags().StringVar(&runtime, "runtime", "", "resolve for this runtime's layer: runc or crun")
	return c
}

type fileFlags struct {
	system, user bool
	file         string
}

func (f *fileFlags) register(c *cobra.Command) {
	c.Flags().BoolVar(&f.system, "system", false, "edit /etc/criu/default.conf (the default)")
	c.Flags().BoolVar(&f.user, "user", false, "edit ~/.criu/default.conf of the current user")
	c.Flags().StringVar(&f.file, "file", "", "edit this CRIU config file")
	c.MarkFlagsMutuallyExclusive("system", "user", "file")
}

func (f *fileFlags) target() (string, error) {
	p := paths()
	switch {
	case f.file != "":
		return f.file, nil
	case f.user:
		if p.UserCRIU == "" {
			return "", errors.New("the current user has no home directory: use --file")
		}
		return p.UserCRIU, nil
	default:
		return p.SystemCRIU(), nil
	}
}

func newSetCmd() *cobra.Command {
	var f fileFlags
	c := &cobra.Command{
		Use:   "set NAME [VALUE]",
		Short: "Set an option in a CRIU config file (validated, atomic)",
		Args:  cobra.RangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			path, err := f.target()
			if err != nil {
				return err
			}
			value := ""
			if len(args) == 2 {
				value = args[1]
			}
			changed, err := edit.Set(path, args[0], value)
			if err != nil {
				return err
			}
			if !changed {
				fmt.Fprintf(cmd.ErrOrStderr(), "%s: %s already set\n", criuopt.Printable(path), args[0])
			}
			return nil
		},
	}
	f.register(c)
	return c
}

func newUnsetCmd() *cobra.Command {
	var f fileFlags
	c := &cobra.Command{
		Use:   "unset NAME...",
		Short: "Remove options (and their no- forms) from a CRIU config file",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			path, err := f.target()
			if err != nil {
				return err
			}
			n, err := edit.Unset(path, args...)
			if err != nil {
				return err
			}
			if n == 0 {
				fmt.Fprintf(cmd.ErrOrStderr(), "%s: none of %v was set\n", criuopt.Printable(path), args)
			}
			return nil
		},
	}
	f.register(c)
	return c
}

func newCheckCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "check [FILE...]",
		Short: "Check CRIU config files (all layers and crhook.toml when none given)",
		RunE: func(cmd *cobra.Command, args []string) error {
			bad := checkFiles(cmd.OutOrStdout(), cmd.ErrOrStderr(), args)
			if bad > 0 {
				return exitCode(1)
			}
			return nil
		},
	}
}
