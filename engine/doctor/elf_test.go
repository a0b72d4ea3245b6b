package doctor

import (
	"os"
	"strings"
	"testing"
)

func TestLibFor(t *testing.T) {
	// The system's libc, found the loader's way, exports printf.
	lib, syms, err := libFor("/bin/sh", "libc.so.6")
	if err != nil {
		t.Skipf("no libc.so.6 in the usual directories: %v", err)
	}
	if !syms["printf"] {
		t.Errorf("libFor(libc.so.6) = %s without printf", lib)
	}
	if _, _, err := libFor("/bin/sh", "libcrhook-none.so.9"); err == nil || !strings.Contains(err.Error(), "libcrhook-none.so.9 not found") {
		t.Errorf("libFor(missing) err = %v", err)
	}
}

// TestLibForRunpath: the test setup's crun finds its libcriu through its
// RUNPATH (tests/setup-crun.sh), which no system directory holds.
func TestLibForRunpath(t *testing.T) {
	const crun = "/usr/local/libexec/crhook-test/crun"
	if _, err := os.Stat(crun); err != nil {
		t.Skipf("%s not installed (tests/setup-crun.sh): %v", crun, err)
	}
	lib, syms, err := libFor(crun, "libcriu.so.2")
	if err != nil {
		t.Fatal(err)
	}
	if lib != "/usr/local/libexec/crhook-test/crun-root/libcriu/libcriu.so.2" || !syms["criu_set_config_file"] {
		t.Errorf("libFor(%s) = %s, criu_set_config_file %v", crun, lib, syms["criu_set_config_file"])
	}
}
