package realcluster

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

func TestUnescapeMount(t *testing.T) {
	for in, want := range map[string]string{
		`/var/lib/a`:             "/var/lib/a",
		`/var/lib/with\040space`: "/var/lib/with space",
		`/tab\011and\134slash`:   "/tab\tand\\slash",
		`/trailing\04`:           `/trailing\04`,
		`/not\999octal`:          `/not\999octal`,
	} {
		if got := unescapeMount(in); got != want {
			t.Errorf("unescapeMount(%q) = %q, want %q", in, got, want)
		}
	}
}

func FuzzUnescapeMount(f *testing.F) {
	for _, s := range []string{`/a\040b`, `\`, `\0`, `\777`, ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if got := unescapeMount(s); len(got) > len(s) {
			t.Errorf("unescapeMount(%q) = %q grew", s, got)
		}
	})
}
