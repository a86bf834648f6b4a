package membership

import (
	"cmp"
	"slices"
	"testing"
	"time"
)

// A detector script: heartbeats, forgets and checks at times in milliseconds
// from an arbitrary start. At equal times, heartbeats and forgets run before
// the check.
type detectorEvent struct {
	at     int
	heard  string
	forget string
}

// beats returns heartbeats from name every period ms in [from, to].
func beats(name string, from, to, period int) []detectorEvent {
	var ev []detectorEvent
	for at := from; at <= to; at += period {
		ev = append(ev, detectorEvent{at: at, heard: name})
	}
	return ev
}

// ticks returns check times every period ms in [from, to].
func ticks(from, to, period int) []int {
	var at []int
	for t := from; t <= to; t += period {
		at = append(at, t)
	}
	return at
}

func concat[T any](parts ...[]T) []T { return slices.Concat(parts...) }

func TestDetector(t *testing.T) {
	const interval, missed = 100 * time.Millisecond, 4

	tests := map[string]struct {
		events []detectorEvent
		checks []int
		// wantDead[t]: names Check returns at t (every check not listed
		// must return none); wantRevived[t]: names whose Heard at t
		// reports a revival.
		wantDead    map[int][]string
		wantRevived map[int][]string
	}{
		"steady heartbeats keep a peer alive": {
			events: beats("a", 0, 3000, 100),
			checks: ticks(0, 3000, 25),
		},
		"a peer never heard is never judged": {
			// Gossip told us of "b" long ago, but no heartbeat from it
			// arrived: only "a", heard and then silent, is judged.
			events:   beats("a", 0, 500, 100),
			checks:   ticks(0, 3000, 25),
			wantDead: map[int][]string{925: {"a"}},
		},
		"dead after four missed heartbeats, declared once": {
			// Last heartbeat at 1000; 1400 is exactly 400 ms of
			// silence, not more.
			events:   beats("a", 0, 1000, 100),
			checks:   ticks(0, 3000, 25),
			wantDead: map[int][]string{1425: {"a"}},
		},
		"jittery heartbeats within the timeout are fine": {
			events: concat(
				beats("a", 0, 500, 100),
				[]detectorEvent{{at: 890, heard: "a"}, {at: 1280, heard: "a"}, {at: 1670, heard: "a"}},
			),
			checks: ticks(0, 2000, 25),
			// 1670 + 400 = 2070: dead after the last check.
		},
		"several peers, reported sorted": {
			events: concat(
				beats("c", 0, 500, 100),
				beats("a", 0, 500, 100),
				beats("b", 0, 2000, 100),
			),
			checks:   ticks(0, 2000, 25),
			wantDead: map[int][]string{925: {"a", "c"}},
		},
		"a dead peer comes back with its next heartbeat": {
			events: concat(
				beats("a", 0, 500, 100),
				beats("a", 1500, 2000, 100),
			),
			checks:      ticks(0, 3000, 25),
			wantDead:    map[int][]string{925: {"a"}, 2425: {"a"}},
			wantRevived: map[int][]string{1500: {"a"}},
		},
		"a forgotten peer is not judged, and starts afresh": {
			events: concat(
				beats("a", 0, 500, 100),
				[]detectorEvent{{at: 600, forget: "a"}},
				beats("a", 2000, 2000, 100),
			),
			checks: ticks(0, 2300, 25),
			// Heard at 2000 is a first heartbeat, not a revival;
			// silent since, but 2300 - 2000 < 400.
		},
		"late checker skips one interval and then reads the queued heartbeats": {
			// The checker stalls from 1000 to 2000 (the peer kept
			// sending; its heartbeats sit unread). It wakes at 2000:
			// without the rule it would declare "a" dead at once.
			events: concat(
				beats("a", 0, 1000, 100),
				beats("a", 2005, 3000, 100), // the queue, then live ones
			),
			checks: concat(ticks(0, 1000, 25), ticks(2000, 3000, 25)),
		},
		"late checker still catches a real death after the quiet interval": {
			// Peer died at 1000, checker stalled 1000-2000: judged at
			// the first check one interval after waking.
			events:   beats("a", 0, 1000, 100),
			checks:   concat(ticks(0, 1000, 25), ticks(2000, 3000, 25)),
			wantDead: map[int][]string{2100: {"a"}},
		},
		"each late check restarts the quiet interval": {
			events: beats("a", 0, 1000, 100),
			// Stalls of 300 ms in a row: never judging while late.
			checks:   concat(ticks(0, 1000, 25), ticks(1300, 2200, 300), ticks(2225, 2500, 25)),
			wantDead: map[int][]string{2300: {"a"}},
		},
		"a peer paused for 250 ms is not declared dead": {
			// Worst case: the pause starts just before a heartbeat is
			// due (1100) and ends at 1350, when it sends at once.
			events: concat(
				beats("a", 0, 1000, 100),
				beats("a", 1350, 3000, 100),
			),
			checks: ticks(0, 3000, 25),
		},
		"a checker paused for 250 ms does not declare its peers dead": {
			// Our own node pauses 1090-1340: no checks, and heartbeats
			// from 1100 to 1300 are read only at 1345.
			events: concat(
				beats("a", 0, 1000, 100),
				beats("a", 1345, 1345, 100),
				beats("a", 1400, 3000, 100),
			),
			checks: concat(ticks(0, 1075, 25), ticks(1340, 3000, 20)),
		},
		"a peer paused for 500 ms is declared dead and comes back": {
			events: concat(
				beats("a", 0, 1000, 100),
				beats("a", 1500, 2000, 100),
			),
			checks:      ticks(0, 2000, 25),
			wantDead:    map[int][]string{1425: {"a"}},
			wantRevived: map[int][]string{1500: {"a"}},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			type step struct {
				detectorEvent
				check bool
			}
			var steps []step
			for _, e := range tc.events {
				steps = append(steps, step{detectorEvent: e})
			}
			for _, at := range tc.checks {
				steps = append(steps, step{detectorEvent: detectorEvent{at: at}, check: true})
			}
			slices.SortStableFunc(steps, func(a, b step) int {
				return cmp.Or(cmp.Compare(a.at, b.at), cmpBool(a.check, b.check))
			})
			for at := range tc.wantDead {
				if !slices.Contains(tc.checks, at) {
					t.Fatalf("wantDead at %d ms, where there is no check", at)
				}
			}

			start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
			d := NewDetector(interval, missed)
			for _, s := range steps {
				now := start.Add(time.Duration(s.at) * time.Millisecond)
				switch {
				case s.check:
					if got, want := d.Check(now), tc.wantDead[s.at]; !slices.Equal(got, want) {
						t.Errorf("Check at %d ms = %q, want %q", s.at, got, want)
					}
				case s.forget != "":
					d.Forget(s.forget)
				default:
					want := slices.Contains(tc.wantRevived[s.at], s.heard)
					if got := d.Heard(s.heard, now); got != want {
						t.Errorf("Heard(%q) at %d ms = %t, want %t", s.heard, s.at, got, want)
					}
				}
			}
		})
	}
}

func TestDetectorDead(t *testing.T) {
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	at := func(ms int) time.Time { return start.Add(time.Duration(ms) * time.Millisecond) }
	d := NewDetector(100*time.Millisecond, 4)

	if d.Dead("a") {
		t.Error("Dead(a) before any heartbeat = true")
	}
	d.Heard("a", at(0))
	for ms := 0; ms <= 500; ms += 25 {
		d.Check(at(ms))
	}
	if !d.Dead("a") {
		t.Error("Dead(a) after 500 ms of silence = false")
	}
	if !d.Heard("a", at(510)) || d.Dead("a") {
		t.Error("a heartbeat did not revive a")
	}
	d.Check(at(525))
	d.Forget("a")
	if d.Dead("a") {
		t.Error("Dead(a) after Forget = true")
	}
}

func TestDetectorHeardOutOfOrder(t *testing.T) {
	// Heartbeats are stamped by concurrent goroutines: a later Heard may
	// carry an earlier time. It must not move the last heartbeat back.
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	at := func(ms int) time.Time { return start.Add(time.Duration(ms) * time.Millisecond) }
	d := NewDetector(100*time.Millisecond, 4)
	d.Heard("a", at(0))
	d.Heard("a", at(300))
	d.Heard("a", at(250))
	for ms := 0; ms <= 700; ms += 25 {
		if dead := d.Check(at(ms)); len(dead) > 0 {
			t.Fatalf("Check at %d ms = %q, want none", ms, dead)
		}
	}
	if dead := d.Check(at(725)); !slices.Equal(dead, []string{"a"}) {
		t.Errorf("Check at 725 ms = %q, want [a]", dead)
	}
}

func cmpBool(a, b bool) int {
	switch {
	case a == b:
		return 0
	case !a:
		return -1
	}
	return 1
}
