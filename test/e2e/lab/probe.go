package lab

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os/exec"
	"path/filepath"
	"sort"
	"sync"
	"time"

	"github.com/lbstack/lbstack/internal/testenv"
)

// ProbeEvent is one line of the probe: a target went down or came up.
type ProbeEvent struct {
	Time   time.Time `json:"time"`
	Target string    `json:"target"`
	OK     bool      `json:"ok"`
	Node   string    `json:"node,omitempty"`
	Error  string    `json:"error,omitempty"`
}

// Probe is a client in the client namespace opening a fresh HTTP
// connection to each target every 5 ms (test/e2e/lab/probe).
type Probe struct {
	mu     sync.Mutex
	events []ProbeEvent
	proc   *Proc
	done   chan struct{}
}

// StartProbe builds the probe into dir and starts it in the client
// namespace against the URLs. Stop ends it; the lab's Close kills it too.
func StartProbe(l *Lab, dir string, urls ...string) (*Probe, error) {
	bin := filepath.Join(dir, "probe")
	build := exec.Command("go", "build", "-o", bin, "./test/e2e/lab/probe")
	build.Dir = testenv.RepoRoot()
	if out, err := build.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("building the probe: %w: %s", err, out)
	}
	proc, out, err := l.StreamProc(l.Client, append([]string{bin}, urls...)...)
	if err != nil {
		return nil, fmt.Errorf("starting the probe: %w", err)
	}
	p := &Probe{proc: proc, done: make(chan struct{})}
	go func() {
		defer close(p.done)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			var e ProbeEvent
			if json.Unmarshal(sc.Bytes(), &e) == nil {
				p.mu.Lock()
				p.events = append(p.events, e)
				p.mu.Unlock()
			}
		}
	}()
	return p, nil
}

// Stop ends the probe.
func (p *Probe) Stop() {
	_ = p.proc.Stop(5 * time.Second)
	select {
	case <-p.done:
	case <-time.After(5 * time.Second):
	}
}

// Up reports whether target's last request succeeded.
func (p *Probe) Up(target string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	for i := len(p.events) - 1; i >= 0; i-- {
		if p.events[i].Target == target {
			return p.events[i].OK
		}
	}
	return false
}

// Gaps returns the periods target was down between since and until, each
// from a failed request to the next successful one (clipped to the window).
func (p *Probe) Gaps(target string, since, until time.Time) []time.Duration {
	p.mu.Lock()
	events := append([]ProbeEvent(nil), p.events...)
	p.mu.Unlock()
	sort.Slice(events, func(i, j int) bool { return events[i].Time.Before(events[j].Time) })
	var gaps []time.Duration
	var downAt time.Time
	up := true
	add := func(from, to time.Time) {
		from, to = maxTime(from, since), minTime(to, until)
		if to.After(from) {
			gaps = append(gaps, to.Sub(from))
		}
	}
	for _, e := range events {
		if e.Target != target {
			continue
		}
		switch {
		case !e.OK && up:
			up, downAt = false, e.Time
		case e.OK && !up:
			up = true
			add(downAt, e.Time)
		}
	}
	if !up {
		add(downAt, until)
	}
	return gaps
}

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

// WaitUp waits until every target answers.
func (p *Probe) WaitUp(ctx context.Context, targets ...string) error {
	return WaitFor(ctx, 20*time.Millisecond, func() error {
		for _, t := range targets {
			if !p.Up(t) {
				return fmt.Errorf("%s is down", t)
			}
		}
		return nil
	})
}

// FirstAnswer returns when target was first answered, at or after since,
// by a node for which ok holds: since itself if such a node answered
// already then. It reports false if no such answer has been reported.
func (p *Probe) FirstAnswer(target string, since time.Time, ok func(node string) bool) (time.Time, bool) {
	p.mu.Lock()
	events := append([]ProbeEvent(nil), p.events...)
	p.mu.Unlock()
	sort.Slice(events, func(i, j int) bool { return events[i].Time.Before(events[j].Time) })
	var before *ProbeEvent
	for i := range events {
		e := &events[i]
		switch {
		case e.Target != target:
		case e.Time.Before(since):
			before = e
		case e.OK && ok(e.Node):
			if before != nil && before.OK && ok(before.Node) {
				return since, true
			}
			return e.Time, true
		}
	}
	if before != nil && before.OK && ok(before.Node) {
		return since, true
	}
	return time.Time{}, false
}

// sorted returns target's events, oldest first.
func (p *Probe) sorted(target string) []ProbeEvent {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []ProbeEvent
	for _, e := range p.events {
		if e.Target == target {
			out = append(out, e)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Time.Before(out[j].Time) })
	return out
}

// NodeAt returns the node that answered target at t ("" if it was down).
func (p *Probe) NodeAt(target string, t time.Time) string {
	node := ""
	for _, e := range p.sorted(target) {
		if e.Time.After(t) {
			break
		}
		node = ""
		if e.OK {
			node = e.Node
		}
	}
	return node
}

// NodesBetween returns the nodes that answered target between from and to,
// in order (a node that answers again after another is listed again).
func (p *Probe) NodesBetween(target string, from, to time.Time) []string {
	var out []string
	add := func(n string) {
		if n != "" && (len(out) == 0 || out[len(out)-1] != n) {
			out = append(out, n)
		}
	}
	add(p.NodeAt(target, from))
	for _, e := range p.sorted(target) {
		if e.Time.After(from) && e.Time.Before(to) && e.OK {
			add(e.Node)
		}
	}
	return out
}
