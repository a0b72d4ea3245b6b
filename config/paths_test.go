package config

import (
	"os/user"
	"path/filepath"
	"testing"
)

// TestWithUser: the user's CRIU layer is looked up only for system paths,
// and only when asked (pass-through never reads the password database);
// a tree built by hand keeps the user layer it was given, none included.
func TestWithUser(t *testing.T) {
	sys := SystemPaths()
	if sys.UserCRIU != "" {
		t.Errorf("SystemPaths looked the user up already: %q", sys.UserCRIU)
	}
	u, err := user.Current()
	if err != nil || u.HomeDir == "" {
		t.Skipf("this user has no home directory to look up (%v)", err)
	}
	want := filepath.Join(u.HomeDir, ".criu", "default.conf")
	if got := sys.WithUser().UserCRIU; got != want {
		t.Errorf("SystemPaths().WithUser().UserCRIU = %q, want %q", got, want)
	}
	if got := DefaultPaths().UserCRIU; got != want {
		t.Errorf("DefaultPaths().UserCRIU = %q, want %q", got, want)
	}
	if got := (Paths{CRIUDir: "/x"}).WithUser().UserCRIU; got != "" {
		t.Errorf("a hand-built tree got a user layer: %q", got)
	}
}
