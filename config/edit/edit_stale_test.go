package edit

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// TestSetCleansTempOfKilledEditor: an editor SIGKILLed after creating its
// temporary file leaves it behind; the next editor, holding the
// directory's lock, removes it (and nothing that is not one of ours).
func TestSetCleansTempOfKilledEditor(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "default.conf")
	writeFile(t, path, "tcp-established\n", 0o644)
	keep := []string{".default.conf.crhook-NotOurs", "notes.crhook-abc", ".default.conf.swp"}
	for _, k := range keep {
		writeFile(t, filepath.Join(dir, k), "x", 0o644)
	}

	cmd := exec.Command(os.Args[0], "-test.run=^TestEditKillHelper$", "-test.count=1")
	cmd.Env = append(os.Environ(), "CRHOOK_EDIT_KILL="+path)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var temps []string
	deadline := time.Now().Add(20 * time.Second)
	for len(temps) == 0 {
		if time.Now().After(deadline) {
			_ = cmd.Process.Kill()
			t.Fatal("the helper editor never created its temporary file")
		}
		time.Sleep(5 * time.Millisecond)
		temps, _ = filepath.Glob(filepath.Join(dir, ".default.conf.crhook-*"))
		temps = without(temps, filepath.Join(dir, keep[0]))
	}
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	if _, err := os.Stat(temps[0]); err != nil {
		t.Fatalf("the killed editor's temporary file is not there to clean: %v", err)
	}

	if _, err := Set(path, "shell-job", ""); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(temps[0]); err == nil {
		t.Errorf("stale temporary file %s left behind", temps[0])
	}
	for _, k := range keep {
		if _, err := os.Stat(filepath.Join(dir, k)); err != nil {
			t.Errorf("%s is not crhook's temporary file but was removed: %v", k, err)
		}
	}
	if got := readOrMissing(t, path); got != "tcp-established\nshell-job\n" {
		t.Errorf("file = %q", got)
	}
}

func without(list []string, drop string) []string {
	var out []string
	for _, s := range list {
		if s != drop {
			out = append(out, s)
		}
	}
	return out
}

// TestEditKillHelper is the editor TestSetCleansTempOfKilledEditor kills:
// it blocks right after creating its temporary file.
func TestEditKillHelper(t *testing.T) {
	path := os.Getenv("CRHOOK_EDIT_KILL")
	if path == "" {
		t.Skip("helper for TestSetCleansTempOfKilledEditor; runs only when re-executed by it")
	}
	tempCreated = func() { time.Sleep(time.Hour) }
	_, err := Set(path, "ghost-limit", "1M")
	t.Fatalf("Set returned: %v", err)
}
