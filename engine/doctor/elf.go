package doctor

import (
	"debug/elf"
	"fmt"
	"path/filepath"
	"strings"
)

// elfNeeded lists the DT_NEEDED libraries of a binary. Reading the ELF
// header needs no ldd (and runs nothing the binary names).
func elfNeeded(path string) ([]string, error) {
	f, err := elf.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read ELF %q: %w", path, err)
	}
	defer f.Close()
	libs, err := f.ImportedLibraries()
	if err != nil {
		return nil, fmt.Errorf("read dynamic section of %q: %w", path, err)
	}
	return libs, nil
}

// libDirs are where the dynamic loader looks after a binary's RUNPATH
// (Debian's multiarch directories, /usr/local/lib from ld.so.conf, and
// the traditional ones).
var libDirs = []string{
	"/lib/x86_64-linux-gnu", "/usr/lib/x86_64-linux-gnu", "/lib/aarch64-linux-gnu", "/usr/lib/aarch64-linux-gnu",
	"/usr/local/lib", "/usr/local/lib64", "/lib64", "/usr/lib64", "/lib", "/usr/lib",
}

// libFor finds the library binary would dlopen() by soname, the way the
// dynamic loader does (the binary's RUNPATH or RPATH, then the system
// library directories), and returns it with its exported symbols.
// crun loads libcriu.so.2 this way at checkpoint time, so ldd never shows it.
func libFor(binary, soname string) (string, map[string]bool, error) {
	var dirs []string
	if f, err := elf.Open(binary); err == nil {
		for _, tag := range []elf.DynTag{elf.DT_RUNPATH, elf.DT_RPATH} {
			if v, err := f.DynString(tag); err == nil {
				for _, s := range v {
					dirs = append(dirs, strings.Split(s, ":")...)
				}
			}
		}
		_ = f.Close()
	}
	dirs = append(dirs, libDirs...)
	for _, d := range dirs {
		p := filepath.Join(d, soname)
		f, err := elf.Open(p)
		if err != nil {
			continue
		}
		syms, err := f.DynamicSymbols()
		_ = f.Close()
		if err != nil {
			return p, nil, fmt.Errorf("read dynamic symbols of %q: %w", p, err)
		}
		exported := make(map[string]bool, len(syms))
		for _, s := range syms {
			if s.Section != elf.SHN_UNDEF {
				exported[s.Name] = true
			}
		}
		return p, exported, nil
	}
	return "", nil, fmt.Errorf("%s not found in %s", soname, strings.Join(dirs, ":"))
}
