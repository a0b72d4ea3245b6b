package diagnose

import (
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
)

// concurrentChild is set in the re-executed test binary of
// TestConcurrentExplain: there the tables have not been loaded yet.
const concurrentChild = "CRHOOK_DIAGNOSE_CONCURRENT_CHILD"

// TestConcurrentExplain runs diagnoses in parallel, as a long-lived caller
// (an API server, migration) would. Under `go test -race` it fails if any
// table is filled lazily without synchronisation. It re-runs itself in a
// fresh process so that the very first use of the tables is the concurrent
// one, whatever tests ran before in this process.
func TestConcurrentExplain(t *testing.T) {
	explainConcurrently(t)
	if os.Getenv(concurrentChild) != "" {
		return
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestConcurrentExplain$", "-test.count=1")
	cmd.Env = append(os.Environ(), concurrentChild+"=1")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("concurrent diagnoses in a fresh process: %v\n%s", err, out)
	}
}

func explainConcurrently(t *testing.T) {
	// Logs whose entries use every lazily built part: side conditions
	// (also), derived values, groups, the noise filter and the facts.
	logs := []string{"selinux-connect.dump.log", "dirty-tracking.predump.log", "ghost-limit.dump.log",
		"podman-tcp-established.dump.log", "generic-stream-unix.dump.log", "pid-in-use.restore.log",
		"tcp-established.restore.log", "no-checkpoint-restore.dump.log"}
	var wg sync.WaitGroup
	got := make([][]string, 8) // per goroutine, by log
	errs := make(chan error, 8*len(logs))
	start := make(chan struct{})
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			got[g] = make([]string, len(logs))
			for i := range logs {
				name := logs[(i+g)%len(logs)]
				d, err := Explain(filepath.Join("testdata/logs", name), Context{ContainerName: "web"})
				if err != nil {
					errs <- err
					continue
				}
				got[g][(i+g)%len(logs)] = d.Text()
			}
		}()
	}
	close(start)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	// The same answers as one at a time.
	for i, name := range logs {
		d, err := Explain(filepath.Join("testdata/logs", name), Context{ContainerName: "web"})
		if err != nil {
			t.Fatal(err)
		}
		for g := range got {
			if got[g][i] != d.Text() {
				t.Errorf("%s: goroutine %d got\n%s\nwant\n%s", name, g, got[g][i], d.Text())
			}
		}
	}
}
