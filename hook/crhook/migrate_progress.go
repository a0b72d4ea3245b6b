package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"
	"unicode"

	"github.com/crhook/crhook/engine/migrate/orchestrate"
)

// Progress of `crhook migrate` on a terminal: one line, rewritten in
// place with a carriage return, never an escape sequence. Quiet when
// stderr is not a terminal (runMigrate decides).

// progressWidth bounds the line: a line longer than the terminal wraps,
// and a carriage return then rewrites only its last row. 79 columns fit
// any terminal without asking its size.
const progressWidth = 79

// pagesIOFactor turns what the orchestrator sees move (bytes read and
// written by the CRIU processes of both ends, orchestrate.Options.OnPages,
// from /proc/PID/io) into page bytes. The source's page server read(2)s
// each page from its page pipe once (counted); TLS sends and receives on
// the sockets with send(2)/recv(2), which rchar and wchar do not count.
// Measured (TestCrhookMigrateAuto, 64 MiB): 65.4 MiB of I/O for 65.0 MiB
// of memory measured before: one byte of I/O per page byte.
const pagesIOFactor = 1

// pageSize is what the page counts count in.
const pageSize = 4096

// progressState is one moment of a migration, all the line shows.
type progressState struct {
	Container string
	Phase     orchestrate.Phase
	// Elapsed since the migration started.
	Elapsed time.Duration
	// Pages phase: page bytes moved so far, in PagesElapsed, of Total
	// (the memory measured before the migration; 0 when unknown).
	Moved, Total int64
	PagesElapsed time.Duration
}

// line renders s, at most progressWidth runes.
func (s progressState) line() string {
	var b strings.Builder
	fmt.Fprintf(&b, "migrate %s: %s", cleanName(s.Container, 20), s.Phase)
	if s.Phase != orchestrate.PhasePages {
		fmt.Fprintf(&b, ", %.1fs", s.Elapsed.Seconds())
		return clip(b.String())
	}
	rate := 0.0
	if s.PagesElapsed > 0 {
		rate = float64(s.Moved) / s.PagesElapsed.Seconds()
	}
	// Most telling first: a clipped line loses the page count, not the ETA.
	u := unitFor(max(s.Total, s.Moved))
	if s.Total > 0 {
		fmt.Fprintf(&b, " %s/%s (%d%%)", u.format(s.Moved, false), u.format(s.Total, true), min(100, 100*s.Moved/s.Total))
	} else {
		fmt.Fprintf(&b, " %s", u.format(s.Moved, true))
	}
	if eta, ok := s.eta(rate); ok {
		fmt.Fprintf(&b, ", ETA %s", eta)
	} else {
		b.WriteString(", ETA -")
	}
	ru := unitFor(int64(rate))
	fmt.Fprintf(&b, ", %s/s, %d pages", ru.format(int64(rate), true), s.Moved/pageSize)
	return clip(b.String())
}

// unit is a binary unit for sizes on the progress line.
type unit struct {
	name string
	size float64
}

func unitFor(n int64) unit {
	switch {
	case n >= 1<<30:
		return unit{"GiB", 1 << 30}
	case n >= 1<<20:
		return unit{"MiB", 1 << 20}
	}
	return unit{"KiB", 1 << 10}
}

func (u unit) format(n int64, withName bool) string {
	s := fmt.Sprintf("%.1f", float64(n)/u.size)
	if withName {
		s += " " + u.name
	}
	return s
}

// eta is the rest of Total at rate; unknown without a total or a rate.
// Past the total (the measure was low, or memory grew) it says 0s: the
// pages phase ends when both CRIU ends exit, not at a byte count.
func (s progressState) eta(rate float64) (string, bool) {
	if s.Total <= 0 || rate <= 0 {
		return "", false
	}
	left := max(0, s.Total-s.Moved)
	d := time.Duration(float64(left) / rate * float64(time.Second))
	if d >= time.Minute {
		return d.Round(time.Second).String(), true
	}
	return fmt.Sprintf("%.1fs", d.Seconds()), true
}

// cleanName keeps a container name from writing to the terminal: anything
// but printable characters (escape sequences, control bytes, a carriage
// return of its own) becomes '?'; long names are cut.
func cleanName(s string, n int) string {
	r := []rune(s)
	if len(r) > n {
		r = append(r[:n-1], '…')
	}
	for i, c := range r {
		if !unicode.IsPrint(c) {
			r[i] = '?'
		}
	}
	return string(r)
}

func clip(s string) string {
	r := []rune(s)
	if len(r) > progressWidth {
		return string(r[:progressWidth])
	}
	return s
}

// progress draws progressState on w as the migration goes; Run's
// callbacks call it from one goroutine.
type progress struct {
	w          io.Writer
	now        func() time.Time
	state      progressState
	start      time.Time
	pagesStart time.Time
	width      int // of the line drawn last, to blank what a shorter one leaves
}

func newProgress(w io.Writer, container string, total int64, now func() time.Time) *progress {
	return &progress{w: w, now: now, start: now(), state: progressState{Container: container, Total: total}}
}

// phase is orchestrate.Options.OnPhase.
func (p *progress) phase(ph orchestrate.Phase) {
	p.state.Phase = ph
	if ph == orchestrate.PhasePages {
		p.pagesStart = p.now()
	}
	p.draw()
}

// pages is orchestrate.Options.OnPages: io is the CRIU processes' I/O.
func (p *progress) pages(io int64) {
	// Never backwards: an end's I/O leaves the sum when its CRIU exits.
	p.state.Moved = max(p.state.Moved, io/pagesIOFactor)
	p.draw()
}

func (p *progress) draw() {
	now := p.now()
	p.state.Elapsed = now.Sub(p.start)
	if !p.pagesStart.IsZero() {
		p.state.PagesElapsed = now.Sub(p.pagesStart)
	}
	line := p.state.line()
	n := len([]rune(line))
	pad := strings.Repeat(" ", max(0, p.width-n))
	fmt.Fprintf(p.w, "\r%s%s", line, pad)
	p.width = n
}

// done ends the line, so what follows starts on its own.
func (p *progress) done() {
	if p.width > 0 {
		fmt.Fprintln(p.w)
	}
}

// terminalProgress gives Run's callbacks when stderr is a terminal, and
// stop, which ends the line (safe to call twice). The memory total for the
// ETA is auto's measure, or read now (cheap: no working-set window).
func terminalProgress(ctx context.Context, src *orchestrate.PodmanHost, name string, auto *measured) (func(orchestrate.Phase), func(int64), func()) {
	if !isTerminal(os.Stderr) {
		return nil, nil, func() {}
	}
	var total int64
	if auto != nil {
		total = auto.MemoryBytes
	} else if pid, err := src.InitPID(ctx, name); err == nil {
		if pids, err := orchestrate.ProcessTree("/proc", pid); err == nil {
			if m, err := orchestrate.ReadMemory("/proc", pids); err == nil {
				total = m.DumpedBytes
			}
		}
	}
	p := newProgress(os.Stderr, name, total, time.Now)
	var once sync.Once
	return p.phase, p.pages, func() { once.Do(p.done) }
}
