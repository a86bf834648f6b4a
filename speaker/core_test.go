package speaker

import (
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/go-logr/logr"
	clocktesting "k8s.io/utils/clock/testing"

	"github.com/lbstack/lbstack/speaker/l2"
	"github.com/lbstack/lbstack/speaker/membership"
)

type fakeMembers struct {
	live    []membership.Member
	gone    map[string]membership.Departure
	watched []string
	changed chan struct{}
}

func (f *fakeMembers) Live() []membership.Member { return f.live }
func (f *fakeMembers) Changed() <-chan struct{}  { return f.changed }
func (f *fakeMembers) SetWatched(n []string)     { f.watched = n }
func (f *fakeMembers) Departure(n string) (membership.Departure, bool) {
	d, ok := f.gone[n]
	return d, ok
}

func (f *fakeMembers) set(names ...string) {
	f.live = nil
	for _, n := range names {
		f.live = append(f.live, membership.Member{Name: n})
	}
}

type fakeL2 struct{ owned map[netip.Addr]l2.Target }

func (f *fakeL2) SetOwned(o map[netip.Addr]l2.Target) { f.owned = o }

// cluster is one Core per node over a shared fake membership view.
type cluster struct {
	clock *clocktesting.FakeClock
	cores map[string]*Core
	l2    map[string]*fakeL2
	mem   map[string]*fakeMembers
	moves []Move
}

func newCluster(nodes ...string) *cluster {
	c := &cluster{clock: clocktesting.NewFakeClock(time.Unix(1000, 0)), cores: map[string]*Core{}, l2: map[string]*fakeL2{}, mem: map[string]*fakeMembers{}}
	for _, n := range nodes {
		m := &fakeMembers{gone: map[string]membership.Departure{}, changed: make(chan struct{}, 1)}
		m.set(nodes...)
		a := &fakeL2{}
		c.mem[n], c.l2[n] = m, a
		c.cores[n] = &Core{Node: n, Members: m, Departures: m, L2: a, Clock: c.clock, Log: logr.Discard(),
			OnMove: func(mv Move) { c.moves = append(c.moves, mv) }}
	}
	return c
}

func (c *cluster) snapshot(s *Snapshot) {
	for _, core := range c.cores {
		core.SetSnapshot(s)
	}
}

func (c *cluster) elect() {
	for _, core := range c.cores {
		core.Elect()
	}
}

// owners returns, per address, the nodes announcing it.
func (c *cluster) owners() map[netip.Addr][]string {
	out := map[netip.Addr][]string{}
	for n, a := range c.l2 {
		for ip := range a.owned {
			out[ip] = append(out[ip], n)
		}
	}
	return out
}

func group(key string, candidates ...string) L2Group {
	g := L2Group{Key: ip(key), IPs: []netip.Addr{ip(key)}, Candidates: map[string][]string{}}
	for _, n := range candidates {
		g.Candidates[n] = nil
	}
	return g
}

func groups(n int, candidates ...string) []L2Group {
	var out []L2Group
	for i := range n {
		out = append(out, group(netip.AddrFrom4([4]byte{192, 0, 2, byte(i + 1)}).String(), candidates...))
	}
	return out
}

// TestExactlyOneOwner: every group has exactly one announcing node, and
// the groups spread over the nodes.
func TestExactlyOneOwner(t *testing.T) {
	c := newCluster("a", "b", "c")
	c.snapshot(&Snapshot{L2: groups(30, "a", "b", "c")})
	c.elect()
	per := map[string]int{}
	for ip, o := range c.owners() {
		if len(o) != 1 {
			t.Fatalf("%s announced by %v", ip, o)
		}
		per[o[0]]++
	}
	if len(c.owners()) != 30 || len(per) != 3 {
		t.Fatalf("owners %v", per)
	}
	for _, m := range c.moves {
		if m.Reason != MoveAssigned || m.From != "" {
			t.Errorf("first election: %+v", m)
		}
	}
}

// TestFailoverWithoutAPIServer: the snapshot stays as it was (no API
// server), the owner fails, and the survivors take over its groups on the
// membership change alone, explaining why and how long detection took.
func TestFailoverWithoutAPIServer(t *testing.T) {
	c := newCluster("a", "b", "c")
	c.snapshot(&Snapshot{L2: groups(30, "a", "b", "c")})
	c.elect()
	before := c.owners()
	c.moves = nil

	c.clock.Step(time.Second)
	for _, n := range []string{"a", "b"} {
		c.mem[n].set("a", "b")
		c.mem[n].gone["c"] = membership.Departure{LastHeard: c.clock.Now().Add(-380 * time.Millisecond), At: c.clock.Now()}
	}
	delete(c.cores, "c")
	c.l2["c"].owned = nil
	c.elect()
	after := c.owners()
	for ip, o := range before {
		switch {
		case len(after[ip]) != 1:
			t.Fatalf("%s announced by %v after the failure", ip, after[ip])
		case o[0] != "c" && after[ip][0] != o[0]:
			t.Errorf("%s moved from %s to %s although %s is alive", ip, o[0], after[ip][0], o[0])
		}
	}
	if len(c.moves) == 0 {
		t.Fatal("no moves")
	}
	for _, m := range c.moves {
		if m.From != "c" || m.Reason != MoveNodeFailed || m.DetectionTime != 380*time.Millisecond {
			t.Errorf("move %+v", m)
		}
	}
}

func TestMoveReasons(t *testing.T) {
	cases := map[string]struct {
		change     func(c *cluster, g *L2Group)
		wantReason string
	}{
		"graceful leave": {func(c *cluster, g *L2Group) {
			c.mem["b"].set("b")
			c.mem["b"].gone["a"] = membership.Departure{Graceful: true}
		}, MoveNodeLeft},
		"interface down": {func(c *cluster, g *L2Group) {
			c.mem["b"].live = []membership.Member{{Name: "a", Meta: EncodeMeta(l2.Health{NoCarrier: []string{"eth0"}}, 512)}, {Name: "b"}}
		}, MoveInterfaceDown},
		"not eligible": {func(c *cluster, g *L2Group) { delete(g.Candidates, "a") }, MoveNotEligible},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			c := newCluster("a", "b")
			// Find a key that a owns with both candidates.
			var g L2Group
			for _, cand := range groups(20, "a", "b") {
				c.snapshot(&Snapshot{L2: []L2Group{cand}})
				c.elect()
				if len(c.l2["a"].owned) == 1 {
					g = cand
					break
				}
			}
			if !g.Key.IsValid() {
				t.Fatal("no key owned by a")
			}
			c.moves = nil
			tc.change(c, &g)
			c.cores["b"].SetSnapshot(&Snapshot{L2: []L2Group{g}})
			c.cores["b"].Elect()
			if len(c.l2["b"].owned) != 1 || len(c.moves) != 1 || c.moves[0].Reason != tc.wantReason || c.moves[0].From != "a" {
				t.Fatalf("b owns %v, moves %+v", c.l2["b"].owned, c.moves)
			}
		})
	}
}

// TestNoSnapshotKeepsAnnouncing: before the first snapshot nothing is
// decided (a restarted speaker does not drop what it cannot know yet).
func TestNoSnapshotKeepsAnnouncing(t *testing.T) {
	c := newCluster("a")
	c.l2["a"].owned = map[netip.Addr]l2.Target{ip("192.0.2.1"): {}}
	c.cores["a"].Elect()
	if len(c.l2["a"].owned) != 1 {
		t.Fatal("an election without a snapshot changed the announcements")
	}
}

// TestWatchesRunnerUp: a node watches the nodes next to it in the ranking
// of its groups, not everyone.
func TestWatchesRunnerUp(t *testing.T) {
	c := newCluster("a", "b", "c", "d", "e")
	c.snapshot(&Snapshot{L2: groups(1, "a", "b", "c", "d", "e")})
	c.elect()
	owner := c.owners()[ip("192.0.2.1")][0]
	w := c.mem[owner].watched
	if len(w) != 1 || slices.Contains(w, owner) {
		t.Fatalf("owner %s watches %v, want exactly the runner-up", owner, w)
	}
	runnerUp := w[0]
	if !slices.Equal(c.mem[runnerUp].watched, []string{owner}) {
		t.Errorf("runner-up %s watches %v, want the owner %s", runnerUp, c.mem[runnerUp].watched, owner)
	}
}

// TestInterfaceHealthFiltersCandidates: a node whose announcing interface
// lost carrier is passed over for groups on that interface only.
func TestInterfaceHealthFiltersCandidates(t *testing.T) {
	meta := EncodeMeta(l2.Health{Running: []string{"eth0"}, NoCarrier: []string{"eth1"}}, 512)
	if !healthyFor(meta, nil) || !healthyFor(meta, []string{"eth0"}) || healthyFor(meta, []string{"eth1"}) {
		t.Error("health filter")
	}
	if !healthyFor(nil, []string{"eth1"}) || !healthyFor([]byte("garbage"), nil) {
		t.Error("unknown health must count as healthy")
	}
	if healthyFor(EncodeMeta(l2.Health{NoCarrier: []string{"eth0"}}, 512), nil) {
		t.Error("a node without any running interface is healthy")
	}
	many := l2.Health{}
	for i := range 200 {
		many.Running = append(many.Running, "ethernet-interface-"+string(rune('a'+i%26)))
	}
	if b := EncodeMeta(many, 512); len(b) > 512 || !healthyFor(b, []string{"x"}) {
		t.Errorf("large health: %d bytes", len(b))
	}
}

// TestGraceAfterStart: a (re)started speaker takes no address until the
// grace period is over, then takes its share.
func TestGraceAfterStart(t *testing.T) {
	c := newCluster("a", "b")
	for _, core := range c.cores {
		core.Grace = 500 * time.Millisecond
		core.started = c.clock.Now()
	}
	c.snapshot(&Snapshot{L2: groups(20, "a", "b")})
	c.cores["a"].Elect()
	if len(c.l2["a"].owned) != 0 {
		t.Fatalf("a took %d addresses during its grace period", len(c.l2["a"].owned))
	}
	c.clock.Step(600 * time.Millisecond)
	c.cores["a"].Elect()
	if len(c.l2["a"].owned) == 0 || len(c.l2["a"].owned) == 20 {
		t.Fatalf("after the grace period a owns %d of 20", len(c.l2["a"].owned))
	}
}

func TestOfferLatestAndWakeup(t *testing.T) {
	ch := make(chan int, 1)
	for i := range 5 {
		offerLatest(ch, i)
	}
	if got := <-ch; got != 4 {
		t.Errorf("offerLatest kept %d, want the newest 4", got)
	}
	var w wakeup
	w.Notify()
	w.Notify()
	<-w.C()
	select {
	case <-w.C():
		t.Error("two notifications before a read woke twice")
	default:
	}
}
