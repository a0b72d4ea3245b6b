package criuopt

import (
	"go/build"
	"testing"
)

// TestPure: the option language does no I/O. Files are read by the
// loader (config, through safefile) and written by the editor
// (config/edit); this package only turns bytes into statements and back,
// so it can be fuzzed and compared with CRIU without a file system.
func TestPure(t *testing.T) {
	pkg, err := build.ImportDir(".", 0)
	if err != nil {
		t.Fatal(err)
	}
	io := map[string]bool{"os": true, "io/fs": true, "io/ioutil": true, "path/filepath": true, "syscall": true,
		"golang.org/x/sys/unix": true, "net": true, "os/exec": true}
	for _, imp := range pkg.Imports {
		if io[imp] {
			t.Errorf("criuopt imports %s: I/O belongs in config (reading) or config/edit (writing)", imp)
		}
	}
}
