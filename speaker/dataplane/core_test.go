package dataplane

import (
	"maps"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/go-logr/logr"
	clocktesting "k8s.io/utils/clock/testing"

	"github.com/lbstack/lbstack/speaker/l2"
	"github.com/lbstack/lbstack/speaker/membership"
)

// fakeMembers is one node's view of a fake cluster: whom it sees live, and
// the claims of those (read from their own fakeMembers).
type fakeMembers struct {
	node      string
	all       map[string]*fakeMembers
	live      []membership.Member
	gone      map[string]membership.Departure
	watched   []string
	changed   chan struct{}
	claims    []membership.Claim
	unsettled bool
}

func (f *fakeMembers) Live() []membership.Member      { return f.live }
func (f *fakeMembers) Changed() <-chan struct{}       { return f.changed }
func (f *fakeMembers) SetWatched(n []string)          { f.watched = n }
func (f *fakeMembers) SetClaims(k []membership.Claim) { f.claims = slices.Clone(k) }
func (f *fakeMembers) Settled() bool                  { return !f.unsettled }
func (f *fakeMembers) Claims() map[netip.Addr][]membership.Claimant {
	out := map[netip.Addr][]membership.Claimant{}
	for _, m := range f.live {
		if m.Name == f.node || f.all[m.Name] == nil {
			continue
		}
		for _, k := range f.all[m.Name].claims {
			out[k.Key] = append(out[k.Key], membership.Claimant{Node: m.Name, Gen: k.Gen, View: k.View})
		}
	}
	return out
}
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

type fakeL2 struct {
	owned       map[netip.Addr]l2.Target
	reannounced []netip.Addr
}

func (f *fakeL2) SetOwned(o map[netip.Addr]l2.Target) { f.owned = o }
func (f *fakeL2) Reannounce(ips []netip.Addr)         { f.reannounced = append(f.reannounced, ips...) }

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
		c.start(n, nodes...)
	}
	return c
}

// start (re)starts node n with a fresh Core, announcer and claims, seeing
// the live nodes.
func (c *cluster) start(n string, live ...string) {
	m := &fakeMembers{node: n, all: c.mem, gone: map[string]membership.Departure{}, changed: make(chan struct{}, 1)}
	m.set(live...)
	a := &fakeL2{}
	c.mem[n], c.l2[n] = m, a
	c.cores[n] = &Core{Node: n, Members: m, Departures: m, L2: a, Clock: c.clock, Log: logr.Discard(),
		JoinTimeout: 5 * time.Second, JoinGrace: 600 * time.Millisecond, OnMove: func(mv Move) { c.moves = append(c.moves, mv) }}
}

// see sets, on each of the nodes on, which nodes it sees live.
func (c *cluster) see(on []string, live ...string) {
	for _, n := range on {
		c.mem[n].set(live...)
	}
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
			c.mem["b"].live = []membership.Member{{Name: "a", Meta: EncodeMeta(l2.Health{NoCarrier: []string{"eth0"}}, SelfMeta{}, 512)}, {Name: "b"}}
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
	meta := EncodeMeta(l2.Health{Running: []string{"eth0"}, NoCarrier: []string{"eth1"}}, SelfMeta{}, 512)
	if !healthyFor(meta, nil) || !healthyFor(meta, []string{"eth0"}) || healthyFor(meta, []string{"eth1"}) {
		t.Error("health filter")
	}
	if !healthyFor(nil, []string{"eth1"}) || !healthyFor([]byte("garbage"), nil) {
		t.Error("unknown health must count as healthy")
	}
	if healthyFor(EncodeMeta(l2.Health{NoCarrier: []string{"eth0"}}, SelfMeta{}, 512), nil) {
		t.Error("a node without any running interface is healthy")
	}
	many := l2.Health{}
	for i := range 200 {
		many.Running = append(many.Running, "ethernet-interface-"+string(rune('a'+i%26)))
	}
	if b := EncodeMeta(many, SelfMeta{}, 512); len(b) > 512 || !healthyFor(b, []string{"x"}) {
		t.Errorf("large health: %d bytes", len(b))
	}
}

// checkOne fails unless every group has exactly one announcing node.
func (c *cluster) checkOne(t *testing.T, gs []L2Group) map[netip.Addr]string {
	t.Helper()
	owners := c.owners()
	out := map[netip.Addr]string{}
	for _, g := range gs {
		if o := owners[g.Key]; len(o) != 1 {
			t.Fatalf("%s announced by %v, want exactly one node", g.Key, o)
		} else {
			out[g.Key] = o[0]
		}
	}
	return out
}

// TestRestartTakesNothingAnnounced: a node that fails loses its groups to
// the others; when it comes back it takes none of them back (one move per
// address per restart), takes nothing before it has joined, and gets its
// share of the groups created after it joined.
func TestRestartTakesNothingAnnounced(t *testing.T) {
	c := newCluster("a", "b", "c")
	gs := groups(30, "a", "b", "c")
	c.snapshot(&Snapshot{L2: gs, ExpectedPeers: []string{"x"}})
	c.elect()
	c.clock.Step(6 * time.Second) // past the join timeout: all joined
	c.elect()
	before := c.checkOne(t, gs)

	// c fails; a and b take its groups.
	delete(c.cores, "c")
	c.l2["c"].owned = nil
	c.see([]string{"a", "b"}, "a", "b")
	c.elect()
	during := c.checkOne(t, gs)
	moved := 0
	for k, o := range before {
		if o == "c" {
			moved++
		} else if during[k] != o {
			t.Errorf("%s moved from %s, which is alive", k, o)
		}
	}
	if moved == 0 {
		t.Fatal("c owned nothing: pick other keys")
	}

	// c comes back: while it joins it takes nothing, and once joined it
	// takes nothing the others announce.
	c.moves = nil
	c.start("c", "a", "b", "c")
	c.mem["c"].unsettled = true
	c.see([]string{"a", "b"}, "a", "b", "c")
	c.cores["c"].SetSnapshot(&Snapshot{L2: gs, ExpectedPeers: []string{"a", "b"}})
	c.elect()
	if n := len(c.l2["c"].owned); n != 0 {
		t.Fatalf("c took %d addresses before joining", n)
	}
	c.mem["c"].unsettled = false
	c.elect()
	if n := len(c.l2["c"].owned); n != 0 {
		t.Fatalf("c took %d addresses before the join grace ended", n)
	}
	c.clock.Step(time.Second)
	c.elect()
	after := c.checkOne(t, gs)
	for k, o := range during {
		if after[k] != o {
			t.Errorf("%s moved from %s to %s when c came back", k, o, after[k])
		}
	}
	if len(c.moves) != 0 {
		t.Errorf("moves when c came back: %+v", c.moves)
	}

	// New groups spread over all three again.
	fresh := []L2Group{}
	for i := range 30 {
		fresh = append(fresh, group(netip.AddrFrom4([4]byte{198, 51, 100, byte(i + 1)}).String(), "a", "b", "c"))
	}
	c.snapshot(&Snapshot{L2: append(slices.Clone(gs), fresh...)})
	c.elect()
	per := map[string]int{}
	for _, o := range c.checkOne(t, fresh) {
		per[o]++
	}
	if per["c"] == 0 {
		t.Errorf("c got none of 30 new groups: %v", per)
	}
}

// TestJoinTimeout: a speaker that expects peers and joins none waits
// JoinTimeout after its first snapshot, then announces on its own; one that
// expects none does not wait.
func TestJoinTimeout(t *testing.T) {
	c := newCluster("a")
	c.mem["a"].unsettled = true
	gs := groups(3, "a", "b")
	c.cores["a"].SetSnapshot(&Snapshot{L2: gs, ExpectedPeers: []string{"b"}})
	c.cores["a"].Elect()
	c.clock.Step(4 * time.Second)
	c.cores["a"].Elect()
	if n := len(c.l2["a"].owned); n != 0 {
		t.Fatalf("after 4 s of a 5 s join timeout: a owns %d", n)
	}
	c.clock.Step(time.Second)
	c.cores["a"].Elect()
	if n := len(c.l2["a"].owned); n != 3 {
		t.Fatalf("after the join timeout: a owns %d of 3", n)
	}

	lone := newCluster("a")
	lone.mem["a"].unsettled = true
	lone.cores["a"].SetSnapshot(&Snapshot{L2: gs})
	lone.cores["a"].Elect()
	if n := len(lone.l2["a"].owned); n != 3 {
		t.Errorf("a speaker expecting no peer waited: owns %d of 3", n)
	}
}

// TestHealResolvesTwoClaimants: a partition leaves a group announced on both
// sides; when it heals, both sides pick the same single owner whatever order
// they elect in — the node that took over during the partition, so the
// partition moved each address once — the winner re-announces, and nothing
// flaps.
func TestHealResolvesTwoClaimants(t *testing.T) {
	for _, order := range [][]string{{"a", "b", "c"}, {"c", "b", "a"}} {
		c := newCluster("a", "b", "c")
		gs := groups(20, "a", "b", "c")
		c.snapshot(&Snapshot{L2: gs})
		c.elect()
		// a is cut off: it keeps its groups; b and c take them too.
		c.see([]string{"a"}, "a")
		c.see([]string{"b", "c"}, "b", "c")
		c.elect()
		twice := 0
		for _, o := range c.owners() {
			if len(o) == 2 {
				twice++
			}
		}
		if twice == 0 {
			t.Fatal("the partition left no group on both sides: pick other keys")
		}
		majority := map[netip.Addr]string{}
		for _, n := range []string{"b", "c"} {
			for ip := range c.l2[n].owned {
				majority[ip] = n
			}
		}
		// Heal.
		c.see([]string{"a", "b", "c"}, "a", "b", "c")
		for _, n := range order {
			c.cores[n].Elect()
		}
		for _, n := range order {
			c.cores[n].Elect()
		}
		healed := c.checkOne(t, gs)
		if !maps.Equal(healed, majority) {
			t.Errorf("order %v: after the heal the owners moved again (from the nodes that took over during the partition): %v, want %v", order, healed, majority)
		}
		for k, o := range healed {
			if !slices.Contains(c.l2[o].reannounced, k) {
				t.Errorf("order %v: %s kept %s after the heal without re-announcing it", order, o, k)
			}
		}
		for range 3 {
			c.elect()
		}
		if got := c.checkOne(t, gs); !maps.Equal(got, healed) {
			t.Errorf("order %v: owners changed after the heal settled", order)
		}
	}
}

// TestSuspectedClaimantStepsBack: heartbeats from a to b are lost, so b
// declares a dead and takes a's groups; a hears b and learns that b
// suspects it, and gives those groups up: one owner each.
func TestSuspectedClaimantStepsBack(t *testing.T) {
	c := newCluster("a", "b")
	gs := groups(20, "a", "b")
	c.snapshot(&Snapshot{L2: gs})
	c.elect()
	c.see([]string{"b"}, "b")
	c.elect()
	c.mem["a"].live = []membership.Member{{Name: "a"}, {Name: "b", SuspectsUs: true}}
	c.elect()
	for k, o := range c.checkOne(t, gs) {
		if o != "b" {
			t.Errorf("%s announced by %s, want b (which cannot hear a)", k, o)
		}
	}
}

// TestAloneYieldsToForeignAnswer: a speaker that joined none of the speakers
// it expects gives up an address another host answers for, until it joins.
func TestAloneYieldsToForeignAnswer(t *testing.T) {
	c := newCluster("a")
	c.mem["a"].unsettled = true
	gs := groups(2, "a", "b")
	c.cores["a"].SetSnapshot(&Snapshot{L2: gs, ExpectedPeers: []string{"b"}})
	c.clock.Step(6 * time.Second)
	c.cores["a"].Elect()
	c.clock.Step(6 * time.Second)
	c.cores["a"].Elect()
	if len(c.l2["a"].owned) != 2 {
		t.Fatalf("a owns %d of 2 after the join timeout", len(c.l2["a"].owned))
	}
	c.cores["a"].conflict(gs[0].Key)
	c.cores["a"].Elect()
	if _, ok := c.l2["a"].owned[gs[0].Key]; ok || len(c.l2["a"].owned) != 1 {
		t.Fatalf("after a foreign answer for %s, a owns %v", gs[0].Key, c.l2["a"].owned)
	}
	// It joins b (b owns nothing): the address is elected again.
	c.start("b", "a", "b")
	c.mem["a"].set("a", "b")
	c.cores["a"].Elect()
	c.cores["b"].SetSnapshot(&Snapshot{L2: gs})
	c.cores["b"].Elect()
	c.checkOne(t, gs)
}

func TestOfferLatestAndWakeup(t *testing.T) {
	ch := make(chan int, 1)
	for i := range 5 {
		OfferLatest(ch, i)
	}
	if got := <-ch; got != 4 {
		t.Errorf("OfferLatest kept %d, want the newest 4", got)
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

func ip(s string) netip.Addr { return netip.MustParseAddr(s) }
