package lab

import (
	"slices"
	"testing"
	"time"
)

func TestProbeGaps(t *testing.T) {
	t0 := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	ev := func(ms int, ok bool) ProbeEvent { return ProbeEvent{Time: at(ms), Target: "a", OK: ok} }
	tests := map[string]struct {
		events       []ProbeEvent
		since, until int
		want         []time.Duration
	}{
		"never down":               {events: []ProbeEvent{ev(0, true)}, since: 0, until: 1000},
		"one outage":               {events: []ProbeEvent{ev(0, true), ev(100, false), ev(500, true)}, since: 0, until: 1000, want: []time.Duration{400 * time.Millisecond}},
		"clipped to the window":    {events: []ProbeEvent{ev(0, true), ev(100, false), ev(500, true)}, since: 200, until: 300, want: []time.Duration{100 * time.Millisecond}},
		"still down at the end":    {events: []ProbeEvent{ev(0, true), ev(800, false)}, since: 0, until: 1000, want: []time.Duration{200 * time.Millisecond}},
		"several, unordered input": {events: []ProbeEvent{ev(600, true), ev(0, true), ev(500, false), ev(100, false), ev(200, true)}, since: 0, until: 1000, want: []time.Duration{100 * time.Millisecond, 100 * time.Millisecond}},
		"other targets ignored":    {events: []ProbeEvent{ev(0, true), {Time: at(100), Target: "b", OK: false}}, since: 0, until: 1000},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			p := &Probe{events: tc.events}
			got := p.Gaps("a", at(tc.since), at(tc.until))
			if !slices.Equal(got, tc.want) {
				t.Errorf("Gaps = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestProbeFirstAnswer(t *testing.T) {
	t0 := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	ev := func(ms int, ok bool, node string) ProbeEvent {
		return ProbeEvent{Time: at(ms), Target: "a", OK: ok, Node: node}
	}
	notN1 := func(n string) bool { return n != "n1" }
	tests := map[string]struct {
		events []ProbeEvent
		since  int
		want   int // -1: none
	}{
		"outage then new node":     {events: []ProbeEvent{ev(0, true, "n1"), ev(100, false, ""), ev(450, true, "n2")}, since: 90, want: 450},
		"straight to the new node": {events: []ProbeEvent{ev(0, true, "n1"), ev(300, true, "n2")}, since: 100, want: 300},
		"back to the old node":     {events: []ProbeEvent{ev(0, true, "n1"), ev(100, false, ""), ev(450, true, "n1")}, since: 90, want: -1},
		"already on another node":  {events: []ProbeEvent{ev(0, true, "n2"), ev(500, false, "")}, since: 100, want: 100},
		"other targets ignored":    {events: []ProbeEvent{ev(0, true, "n1"), {Time: at(200), Target: "b", OK: true, Node: "n2"}}, since: 100, want: -1},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			p := &Probe{events: tc.events}
			got, ok := p.FirstAnswer("a", at(tc.since), notN1)
			switch {
			case tc.want < 0 && ok:
				t.Errorf("FirstAnswer = %v, want none", got)
			case tc.want >= 0 && (!ok || !got.Equal(at(tc.want))):
				t.Errorf("FirstAnswer = %v, %v; want %v", got, ok, at(tc.want))
			}
		})
	}
}
