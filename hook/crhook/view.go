package main

import (
	"fmt"
	"io"
	"text/tabwriter"

	"github.com/crhook/crhook/config"
	"github.com/crhook/crhook/config/criuopt"
	"github.com/crhook/crhook/engine"
)

// view is what `crhook config show` prints.
type view struct {
	Runtime    string
	Container  *engine.Container
	Resolution *config.Resolution
}

func (v *view) writeText(w io.Writer, origin bool) {
	if c := v.Container; c != nil {
		fmt.Fprintf(w, "# container %s (%s), runtime %s\n", c.Name, engine.ShortID(c.ID), c.Runtime)
		if c.Bypass != "" {
			fmt.Fprintf(w, "# bypasses crhook: %s\n", c.Bypass)
		} else {
			fmt.Fprintf(w, "# CRIU config: %s\n", c.CRIUConfig)
		}
		if c.CRIUFile != "" {
			fmt.Fprintf(w, "# container's own CRIU file (layer 4, %s): %s\n", engine.CRIUConfigAnnotation, c.CRIUFile)
		}
		fmt.Fprintf(w, "# SELinux process label: %s\n# SELinux mount label: %s\n", shownLabel(c.ProcessLabel), shownLabel(c.MountLabel))
	}
	tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	for _, s := range v.Resolution.Options {
		if origin {
			fmt.Fprintf(tw, "%s\t# %s\n", s.Text(), s.Origin)
		} else {
			fmt.Fprintln(tw, s.Text())
		}
	}
	tw.Flush()
	for _, d := range v.Resolution.Dropped {
		fmt.Fprintf(w, "# dropped: %s (%s): %s\n", d.Text(), d.Origin, d.Reason)
	}
}

// The JSON of `crhook config show --format json` is written from these
// types, not from config's and engine's own structs: its keys are a
// contract (crhook-config(1), JSON OUTPUT), all snake_case, and must not
// change when a Go field is renamed. testdata/golden/config-show.json
// pins them.
type jsonShow struct {
	Runtime   string         `json:"runtime"`
	Container *jsonContainer `json:"container,omitempty"`
	Layers    []jsonLayer    `json:"layers"`
	Options   []jsonOption   `json:"options"`
	Dropped   []jsonOption   `json:"dropped"`
}

type jsonContainer struct {
	ID           string            `json:"id"`
	Name         string            `json:"name"`
	Runtime      string            `json:"runtime"`
	Annotations  map[string]string `json:"annotations"`
	CRIUConfig   string            `json:"criu_config"`
	Bypass       string            `json:"bypass"`
	ProcessLabel string            `json:"process_label"`
	MountLabel   string            `json:"mount_label"`
}

type jsonLayer struct {
	Path    string `json:"path"`
	Present bool   `json:"present"`
}

type jsonOrigin struct {
	File       string `json:"file,omitempty"`
	Line       int    `json:"line,omitempty"`
	Annotation string `json:"annotation,omitempty"`
}

type jsonOption struct {
	Name   string     `json:"name"`
	Value  *string    `json:"value,omitempty"`
	Origin jsonOrigin `json:"origin"`
	Reason string     `json:"reason,omitempty"`
}

func toJSON(s config.Option, reason string) jsonOption {
	o := jsonOption{Name: s.Name(), Reason: reason,
		Origin: jsonOrigin{File: s.Origin.File, Line: s.Origin.Line, Annotation: s.Origin.Annotation}}
	if s.HasValue {
		v := s.Value
		o.Value = &v
	}
	return o
}

func (v *view) writeJSON(w io.Writer) error {
	out := jsonShow{Runtime: v.Runtime, Layers: []jsonLayer{}, Options: []jsonOption{}, Dropped: []jsonOption{}}
	if c := v.Container; c != nil {
		ann := c.Annotations
		if ann == nil {
			ann = map[string]string{}
		}
		out.Container = &jsonContainer{ID: c.ID, Name: c.Name, Runtime: c.Runtime, Annotations: ann,
			CRIUConfig: c.CRIUConfig, Bypass: c.Bypass, ProcessLabel: c.ProcessLabel, MountLabel: c.MountLabel}
	}
	for _, l := range v.Resolution.Layers {
		out.Layers = append(out.Layers, jsonLayer{Path: l.Path, Present: l.Present})
	}
	for _, s := range v.Resolution.Options {
		out.Options = append(out.Options, toJSON(s, ""))
	}
	for _, d := range v.Resolution.Dropped {
		out.Dropped = append(out.Dropped, toJSON(d.Option, d.Reason))
	}
	return writeJSON(w, out)
}

// writeGet prints one option: "true"/"false" for switches, else its
// value(s), one per line, with the origin on stderr-free trailing comment.
func (v *view) writeGet(w io.Writer, opt *criuopt.Option) error {
	found := false
	for _, s := range v.Resolution.Options {
		if s.Option != opt {
			continue
		}
		found = true
		if s.HasValue {
			fmt.Fprintf(w, "%s\t# %s\n", s.Value, s.Origin)
		} else {
			fmt.Fprintf(w, "true\t# %s\n", s.Origin)
		}
	}
	switch {
	case found:
		return nil
	case opt.IsBool():
		fmt.Fprintln(w, "false")
		return nil
	default:
		return fmt.Errorf("%s is not set in any layer: CRIU's default applies", opt.Name)
	}
}

// shownLabel is an SELinux label as the view prints it, saying why one
// is missing.
func shownLabel(s string) string {
	if s == "" {
		return "(none: SELinux is off, or the container runs unconfined)"
	}
	return s
}
