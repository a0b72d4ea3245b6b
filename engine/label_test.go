package engine

import (
	"path/filepath"
	"testing"
)

// TestStateLabelFollowsStateDir: whatever state_dir is configured, what
// crhook creates from it down is labelled crhook_var_run_t (state_dir,
// containers, ID, the criu.conf temp file renamed into place), and the
// directories it must create above state_dir are not.
func TestStateLabelFollowsStateDir(t *testing.T) {
	var labelled int
	var calls []string
	old := setFSCreate
	setFSCreate = func(label string) error {
		calls = append(calls, label)
		if label == stateLabel {
			labelled++
		}
		return nil
	}
	t.Cleanup(func() { setFSCreate = old })

	state := filepath.Join(t.TempDir(), "srv", "crhook-state")
	conf, _ := ConfPath(state, stateID)
	if err := WriteConf(conf, []byte("x\n")); err != nil {
		t.Fatal(err)
	}
	// srv (above state_dir) unlabelled; state_dir, containers, ID and the
	// file labelled, each reset after its creation.
	if labelled != 4 || len(calls) != 8 {
		t.Fatalf("fscreate calls %q; want stateLabel then \"\" for each of state_dir, containers, ID, criu.conf", calls)
	}
	calls, labelled = nil, 0
	if err := WriteConf(conf, []byte("y\n")); err != nil {
		t.Fatal(err)
	}
	if labelled != 1 {
		t.Fatalf("rewrite: fscreate calls %q; want only the new file labelled", calls)
	}
}
