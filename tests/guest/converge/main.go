// Command converge feeds the pre-copy rounds a guest scenario measured to
// crhook's stop rule (engine/migrate Policy.Next) and prints its verdict,
// so the scenario logs and follows the decision `crhook migrate --mode
// precopy` would make on the same numbers.
//
//	converge [-max-rounds N] [-max-downtime D] [-min-shrink F] BYTES:MILLISECONDS...
//
// Each argument is one round, oldest first: the bytes the pre-dump wrote
// and how long it took (freeze and copy included). It prints one line,
// "ACTION bandwidth=B/s predicted=D: REASON", ACTION being one of
// continue, converged, not-converging, round-cap. A test helper, built
// static (CGO_ENABLED=0) by tests/guest/run.sh and shipped over 9p; not a
// crhook command.
package main

import (
	"flag"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/crhook/crhook/engine/migrate"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "converge:", err)
		os.Exit(2)
	}
}

func run(args []string) error {
	fs := flag.NewFlagSet("converge", flag.ContinueOnError)
	p := migrate.DefaultPolicy
	fs.IntVar(&p.MaxRounds, "max-rounds", p.MaxRounds, "hard cap on pre-copy rounds")
	fs.DurationVar(&p.MaxDowntime, "max-downtime", p.MaxDowntime, "downtime budget of the final dump")
	fs.Float64Var(&p.MinShrink, "min-shrink", p.MinShrink, "fraction by which each round must shrink")
	if err := fs.Parse(args); err != nil {
		return err
	}
	rounds := make([]migrate.Round, 0, fs.NArg())
	for i, a := range fs.Args() {
		b, ms, ok := strings.Cut(a, ":")
		if !ok {
			return fmt.Errorf("round %d: %q: want BYTES:MILLISECONDS", i+1, a)
		}
		n, err := strconv.ParseInt(b, 10, 64)
		if err != nil {
			return fmt.Errorf("round %d: bytes %q: %w", i+1, b, err)
		}
		m, err := strconv.ParseInt(ms, 10, 64)
		if err != nil {
			return fmt.Errorf("round %d: milliseconds %q: %w", i+1, ms, err)
		}
		rounds = append(rounds, migrate.Round{Bytes: n, Duration: time.Duration(m) * time.Millisecond})
	}
	d, err := p.Next(rounds)
	if err != nil {
		return fmt.Errorf("policy %+v: %w", p, err)
	}
	fmt.Printf("%s bandwidth=%.0fB/s predicted=%v: %s\n", d.Action, d.Bandwidth, d.PredictedDowntime.Round(time.Millisecond), d.Reason)
	return nil
}
