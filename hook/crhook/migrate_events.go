package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/crhook/crhook/engine/migrate/orchestrate"
)

// The worker (migrate_worker.go) tells the foreground `crhook migrate`
// what happens as JSON lines on a pipe: one event a line, the summary
// last. The foreground only draws them; the worker decides everything.

// Event types.
const (
	evPhase   = "phase"   // Phase starts
	evPages   = "pages"   // Moved: the CRIU processes' I/O so far
	evWarning = "warning" // Text: printed on stderr, the migration goes on
	evSummary = "summary" // Summary and Error: the last event
)

// event is one line of the stream.
type event struct {
	Type  string            `json:"type"`
	Phase orchestrate.Phase `json:"phase,omitempty"`
	Moved int64             `json:"moved,omitempty"`
	Text  string            `json:"text,omitempty"`
	// Summary is what --format json prints; Error is the migration's
	// error text ("" when it succeeded), as the foreground returns it.
	Summary *migrateSummary `json:"summary,omitempty"`
	Error   string          `json:"error,omitempty"`
}

// errNoSummary: the stream ended (EOF, or a line cut short) before the
// summary: the worker died or its pipe was closed.
var errNoSummary = errors.New("the event stream ended before the summary")

// eventHandler is what the foreground does with each event but the summary.
type eventHandler struct {
	phase func(orchestrate.Phase)
	pages func(int64)
	warn  func(string)
}

// readEvents reads r until the summary event and returns it, with the
// last phase seen. An event of a type it does not know is reported
// through warn and skipped: dropping the stream would leave the worker
// writing into a closed pipe, which it takes for an interrupt.
func readEvents(r io.Reader, h eventHandler) (*event, orchestrate.Phase, error) {
	br := bufio.NewReader(r)
	var last orchestrate.Phase
	for {
		line, err := br.ReadBytes('\n')
		if err != nil {
			// A line without its newline is cut short: the writer died
			// in the middle of it.
			if errors.Is(err, io.EOF) {
				err = errNoSummary
			}
			return nil, last, fmt.Errorf("read the worker's events: %w", err)
		}
		var ev event
		if jerr := json.Unmarshal(line, &ev); jerr != nil {
			h.call(func() { h.warn(fmt.Sprintf("unreadable event from the worker skipped: %v: %q", jerr, line)) })
			continue
		}
		switch ev.Type {
		case evPhase:
			last = ev.Phase
			if h.phase != nil {
				h.phase(ev.Phase)
			}
		case evPages:
			if h.pages != nil {
				h.pages(ev.Moved)
			}
		case evWarning:
			h.call(func() { h.warn(ev.Text) })
		case evSummary:
			if ev.Summary == nil || ev.Summary.Summary == nil {
				return nil, last, fmt.Errorf("read the worker's events: %w: a summary event without a summary", errNoSummary)
			}
			return &ev, last, nil
		default:
			h.call(func() { h.warn(fmt.Sprintf("event of unknown type %q from the worker skipped", ev.Type)) })
		}
	}
}

func (h eventHandler) call(f func()) {
	if h.warn != nil {
		f()
	}
}

// emitter writes events for the worker without ever blocking it: a
// foreground that stopped reading (suspended with Ctrl-Z, say) must not
// stall the protocol and its timeouts. Events queue in memory; page
// counts are coalesced into the latest. The first failed write (the
// foreground is gone: EPIPE) calls gone once and drops the rest.
type emitter struct {
	mu      sync.Mutex
	queue   []event
	pages   int // index in queue of the page count waiting, or -1
	closed  bool
	wake    chan struct{}
	drained chan struct{}
	w       io.Writer
	gone    func(error)
	// onPhase, if set, is told each phase before it is sent.
	onPhase func(orchestrate.Phase)
}

// phase is orchestrate.Options.OnPhase.
func (e *emitter) phase(p orchestrate.Phase) {
	if e.onPhase != nil {
		e.onPhase(p)
	}
	e.send(event{Type: evPhase, Phase: p})
}

func newEmitter(w io.Writer, gone func(error)) *emitter {
	e := &emitter{w: w, gone: gone, pages: -1, wake: make(chan struct{}, 1), drained: make(chan struct{})}
	go e.loop()
	return e
}

// send queues ev.
func (e *emitter) send(ev event) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return
	}
	if ev.Type == evPages {
		if e.pages < 0 {
			e.queue = append(e.queue, ev)
			e.pages = len(e.queue) - 1
		} else {
			e.queue[e.pages].Moved = ev.Moved
		}
	} else {
		e.queue = append(e.queue, ev)
		e.pages = -1 // a later count goes after this event
	}
	select {
	case e.wake <- struct{}{}:
	default:
	}
}

// close sends nothing more; the returned channel closes once the queue
// was written (or given up).
func (e *emitter) close() <-chan struct{} {
	e.mu.Lock()
	e.closed = true
	e.mu.Unlock()
	select {
	case e.wake <- struct{}{}:
	default:
	}
	return e.drained
}

func (e *emitter) loop() {
	defer close(e.drained)
	failed := false
	for {
		e.mu.Lock()
		q, closed := e.queue, e.closed
		e.queue, e.pages = nil, -1
		e.mu.Unlock()
		for _, ev := range q {
			if failed {
				break
			}
			b, err := json.Marshal(ev)
			if err == nil {
				_, err = e.w.Write(append(b, '\n'))
			}
			if err != nil {
				failed = true
				e.gone(err)
			}
		}
		if closed {
			e.mu.Lock()
			empty := len(e.queue) == 0
			e.mu.Unlock()
			if empty {
				return
			}
			continue
		}
		<-e.wake
	}
}
