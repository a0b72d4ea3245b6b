package orchestrate

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// shortRunner runs commands here but cuts stdin after n bytes: an ssh
// connection that dropped mid-copy (cat there sees EOF, exits 0).
type shortRunner struct{ n int64 }

func (s shortRunner) Run(ctx context.Context, stdin io.Reader, argv ...string) ([]byte, error) {
	if stdin != nil && s.n >= 0 {
		stdin = io.LimitReader(stdin, s.n)
	}
	return Local{}.Run(ctx, stdin, argv...)
}
func (shortRunner) Where() string { return "here" }

// TestImport: the archive is copied and restored in one command, and a
// copy cut short is never restored.
func TestImport(t *testing.T) {
	for _, tc := range []struct {
		name     string
		n        int64 // bytes that arrive; -1 all
		podmanRC string
		want     string // in the error; "" for success
	}{
		{"copied and restored", -1, "0", ""},
		{"connection drops mid-copy", 5, "0", "cut short (want 11 bytes); nothing was restored"},
		{"restore fails", -1, "1", `restore "ctr"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			bin := filepath.Join(dir, "bin")
			log := filepath.Join(dir, "podman.log")
			if err := os.Mkdir(bin, 0o755); err != nil {
				t.Fatal(err)
			}
			fake := "#!/bin/sh\necho \"$@\" >>" + log + "\nexit " + tc.podmanRC + "\n"
			if err := os.WriteFile(filepath.Join(bin, "podman"), []byte(fake), 0o755); err != nil {
				t.Fatal(err)
			}
			t.Setenv("PATH", bin+":"+os.Getenv("PATH"))
			file := filepath.Join(dir, "ctr.tar")
			if err := os.WriteFile(file, []byte("hello world"), 0o600); err != nil {
				t.Fatal(err)
			}
			h := &PodmanHost{R: shortRunner{tc.n}, TmpDir: filepath.Join(dir, "remote")}
			err := h.Import(context.Background(), "ctr", file)
			ran, _ := os.ReadFile(log)
			if tc.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				if want := "container restore --import " + filepath.Join(dir, "remote", "ctr.tar"); strings.TrimSpace(string(ran)) != want {
					t.Errorf("podman ran %q, want %q", ran, want)
				}
				got, _ := os.ReadFile(filepath.Join(dir, "remote", "ctr.tar"))
				if string(got) != "hello world" {
					t.Errorf("archive there = %q", got)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
			if tc.n >= 0 && len(ran) != 0 {
				t.Errorf("a short archive was restored: podman %s", ran)
			}
		})
	}
}
