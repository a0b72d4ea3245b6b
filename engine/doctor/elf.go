package doctor

import (
	"debug/elf"
	"fmt"
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
