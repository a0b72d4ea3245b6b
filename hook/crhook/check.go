package main

import (
	"fmt"
	"io"

	"github.com/crhook/crhook/config"
)

// checkFiles parses each CRIU file (or, with none named, every layer of
// both runtimes and the crhook settings) and reports one line per file.
// It returns how many failed.
func checkFiles(out, errw io.Writer, files []string) int {
	p := paths()
	checkSettings := len(files) == 0
	if checkSettings {
		seen := map[string]bool{}
		for _, rt := range []string{"runc", "crun"} {
			for _, f := range p.CRIUFiles(rt) {
				if !seen[f] {
					seen[f] = true
					files = append(files, f)
				}
			}
		}
	}
	bad := 0
	for _, c := range config.CheckLayers(files) {
		if c.Err != nil {
			bad++
			fmt.Fprintf(errw, "%s\n", c)
			continue
		}
		fmt.Fprintf(out, "%s\n", c)
		if c.Options >= 0 {
			// Words CRIU ignores are warnings: the file works, but not as
			// its author meant.
			warns, _ := config.LintFile(c.File)
			for _, w := range warns {
				fmt.Fprintf(errw, "warning: %v\n", w)
			}
		}
	}
	if checkSettings {
		s, err := config.LoadSettings(p)
		if err != nil {
			bad++
			fmt.Fprintf(errw, "%v\n", err)
		} else {
			for _, f := range s.Files {
				fmt.Fprintf(out, "%s: ok\n", f)
			}
		}
	}
	return bad
}
