package dataplane

import (
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/lbstack/lbstack/speaker/bgp"
	"github.com/lbstack/lbstack/speaker/l2"
)

// apiStates gives each node of a fake cluster its API state, and mirrors
// what each core publishes (fresh, withdrawn) into the membership metadata
// every node sees, as PublishMeta and membership would.
type apiStates struct {
	c     *cluster
	mu    sync.Mutex
	state map[string]APIState
	self  map[string]SelfMeta
}

func withAPI(c *cluster, freshFor time.Duration) *apiStates {
	a := &apiStates{c: c, state: map[string]APIState{}, self: map[string]SelfMeta{}}
	for n, core := range c.cores {
		a.state[n] = APIState{Fresh: true, Settled: true}
		core.API = func() APIState { a.mu.Lock(); defer a.mu.Unlock(); return a.state[n] }
		core.PeerFreshFor = freshFor
		core.ConfirmFor = time.Second
		core.OnWithdrawn = func(w bool) {
			a.mu.Lock()
			s := a.self[n]
			s.Withdrawn = w
			a.self[n] = s
			a.mu.Unlock()
			a.publish(n)
		}
		a.self[n] = SelfMeta{Fresh: true}
		a.publish(n)
	}
	return a
}

// set changes node n's API state and publishes its freshness.
func (a *apiStates) set(n string, st APIState) {
	a.mu.Lock()
	a.state[n] = st
	s := a.self[n]
	s.Fresh = st.Fresh
	a.self[n] = s
	a.mu.Unlock()
	a.publish(n)
}

func (a *apiStates) publish(n string) {
	a.mu.Lock()
	meta := EncodeMeta(l2.Health{Running: []string{"eth0"}}, a.self[n], 512)
	a.mu.Unlock()
	for _, m := range a.c.mem {
		for i := range m.live {
			if m.live[i].Name == n {
				m.live[i].Meta = meta
			}
		}
	}
}

// settledCluster starts nodes with every API view fresh, hands them gs
// and elects, then again once each has seen the others fresh for longer
// than PeerFreshFor (3 s).
func settledCluster(gs []L2Group, nodes ...string) (*cluster, *apiStates) {
	c := newCluster(nodes...)
	api := withAPI(c, 3*time.Second)
	c.snapshot(&Snapshot{L2: gs})
	c.electInOrder(nodes...)
	c.clock.Step(4 * time.Second)
	c.electInOrder(nodes...)
	return c, api
}

// cutOff makes node n unreached and runs the elections until it has been
// so for ConfirmFor (1 s).
func cutOff(c *cluster, api *apiStates, n string, nodes ...string) {
	api.set(n, unreached)
	c.electInOrder(nodes...)
	c.clock.Step(time.Second)
	c.electInOrder(nodes...)
}

// electInOrder runs the nodes' elections in a fixed order.
func (c *cluster) electInOrder(nodes ...string) {
	for _, n := range nodes {
		c.cores[n].Elect()
	}
}

func ownedBy(c *cluster, n string) int { return len(c.l2[n].owned) }

var (
	unreached = APIState{Unreached: true}
	reached   = APIState{Fresh: true, Settled: true}
)

// TestStaleViewWithdraws: a node cut off from the API server while its
// peers reach it withdraws once the stale bound has passed (the API state
// says Unreached) and the peers have been fresh for PeerFreshFor: it
// announces nothing, the peers take its addresses over with the reason
// APIUnreachable, and every other address stays where it was. When its
// view has settled again it announces again, and no address moves back.
func TestStaleViewWithdraws(t *testing.T) {
	nodes := []string{"a", "b", "c"}
	c, api := settledCluster(groups(30, nodes...), nodes...)
	before := c.owners()
	if ownedBy(c, "a") == 0 {
		t.Fatal("a owns nothing to begin with")
	}
	c.moves = nil

	api.set("a", unreached)
	c.electInOrder(nodes...)
	if c.cores["a"].Withdrawn() {
		t.Fatal("a withdrew before it had been unreached for ConfirmFor")
	}
	c.clock.Step(time.Second)
	c.electInOrder(nodes...)
	if !c.cores["a"].Withdrawn() || ownedBy(c, "a") != 0 {
		t.Fatalf("a, cut off from the API server, withdrawn=%v, still announces %d addresses", c.cores["a"].Withdrawn(), ownedBy(c, "a"))
	}
	after := c.owners()
	for ip, o := range before {
		switch {
		case len(after[ip]) != 1:
			t.Fatalf("%s announced by %v after a withdrew", ip, after[ip])
		case o[0] != "a" && after[ip][0] != o[0]:
			t.Errorf("%s moved from %s to %s although only a withdrew", ip, o[0], after[ip][0])
		}
	}
	if len(c.moves) == 0 {
		t.Fatal("no moves")
	}
	for _, m := range c.moves {
		if m.From != "a" || m.Reason != MoveAPIUnreachable {
			t.Errorf("move %+v, want from a with reason %s", m, MoveAPIUnreachable)
		}
	}

	// A reconnects: first answers (fresh, not yet settled) change nothing.
	c.moves = nil
	api.set("a", APIState{Fresh: true})
	c.clock.Step(time.Second)
	c.electInOrder(nodes...)
	if !c.cores["a"].Withdrawn() {
		t.Error("a announces again before its view has settled")
	}
	api.set("a", reached)
	c.electInOrder(nodes...)
	c.electInOrder(nodes...)
	if c.cores["a"].Withdrawn() {
		t.Fatal("a still withdrawn with a settled view")
	}
	for ip, o := range c.owners() {
		if len(o) != 1 || o[0] == "a" {
			t.Errorf("%s announced by %v once a came back: want one owner, not a (no move back)", ip, o)
		}
	}
	if len(c.moves) != 0 {
		t.Errorf("moves when a came back: %+v", c.moves)
	}
	// And a takes its share again on the next real change: a new group.
	c.snapshot(&Snapshot{L2: append(groups(30, nodes...), group("198.51.100.1", "a"))})
	c.electInOrder(nodes...)
	if o := c.owners()[ip("198.51.100.1")]; len(o) != 1 || o[0] != "a" {
		t.Errorf("a's own group announced by %v", o)
	}
}

// TestStaleViewEveryoneCutOff: when the API server is gone for everyone (a
// restart) no node withdraws: the addresses stay where they are, announced
// from the last view.
func TestStaleViewEveryoneCutOff(t *testing.T) {
	nodes := []string{"a", "b", "c"}
	c, api := settledCluster(groups(30, nodes...), nodes...)
	before := c.owners()
	c.moves = nil
	// Freshness goes first (half the bound), then each node is unreached.
	for _, n := range nodes {
		api.set(n, APIState{})
	}
	c.clock.Step(2 * time.Second)
	c.electInOrder(nodes...)
	for _, n := range nodes {
		api.set(n, unreached)
	}
	c.clock.Step(10 * time.Second)
	c.electInOrder(nodes...)
	c.electInOrder(nodes...)
	for _, n := range nodes {
		if c.cores[n].Withdrawn() {
			t.Errorf("%s withdrew although no node reaches the API server", n)
		}
	}
	after := c.owners()
	for ip, o := range before {
		if len(after[ip]) != 1 || after[ip][0] != o[0] {
			t.Errorf("%s: %v before, %v after the API server went away for all", ip, o, after[ip])
		}
	}
	if len(c.moves) != 0 {
		t.Errorf("moves: %+v", c.moves)
	}
}

// TestStaleViewPeerFlagLate: when the API server goes away for everyone,
// a peer's fresh flag reaches this node late (its checks, gossip). A node
// unreached for less than ConfirmFor does not withdraw, and once the peer's
// flag has dropped it has no reason to.
func TestStaleViewPeerFlagLate(t *testing.T) {
	nodes := []string{"a", "b"}
	c, api := settledCluster(groups(10, nodes...), nodes...)
	before := c.owners()
	api.set("a", unreached) // b still says fresh
	c.electInOrder(nodes...)
	c.clock.Step(600 * time.Millisecond)
	c.electInOrder(nodes...)
	api.set("b", APIState{}) // b's flag drops
	c.clock.Step(600 * time.Millisecond)
	c.electInOrder(nodes...)
	c.clock.Step(5 * time.Second)
	c.electInOrder(nodes...)
	if c.cores["a"].Withdrawn() {
		t.Fatal("a withdrew in favour of a peer whose fresh flag was only late")
	}
	for ip, o := range c.owners() {
		if len(o) != 1 || o[0] != before[ip][0] {
			t.Errorf("%s: %v before, %v after", ip, before[ip], o)
		}
	}
}

// TestStaleViewPeerFreshTooShort: a peer whose view has been current for
// less than PeerFreshFor (it just reconnected after the same outage) does
// not make a node withdraw; once it has been, it does.
func TestStaleViewPeerFreshTooShort(t *testing.T) {
	nodes := []string{"a", "b"}
	c := newCluster(nodes...)
	api := withAPI(c, 3*time.Second)
	api.set("b", APIState{})
	c.snapshot(&Snapshot{L2: groups(10, nodes...)})
	c.electInOrder(nodes...)
	api.set("a", unreached)
	api.set("b", reached)
	c.electInOrder(nodes...) // a sees b fresh from now on
	c.clock.Step(2 * time.Second)
	c.electInOrder(nodes...)
	if c.cores["a"].Withdrawn() {
		t.Fatal("a withdrew in favour of a peer fresh for 2s (PeerFreshFor 3s)")
	}
	c.clock.Step(time.Second)
	c.electInOrder(nodes...)
	if !c.cores["a"].Withdrawn() {
		t.Fatal("a did not withdraw in favour of a peer fresh for 3s")
	}
	c.electInOrder(nodes...)
	for ip, o := range c.owners() {
		if len(o) != 1 || o[0] != "b" {
			t.Errorf("%s announced by %v, want b", ip, o)
		}
	}
}

// TestStaleViewComesBackWhenPeersLoseAPI: a withdrawn node announces again
// from its last view when no live peer has a current view any more, and
// when the peers with one go away: a stale answer beats none.
func TestStaleViewComesBackWhenPeersLoseAPI(t *testing.T) {
	nodes := []string{"a", "b"}
	c := newCluster(nodes...)
	api := withAPI(c, 3*time.Second)
	c.snapshot(&Snapshot{L2: groups(10, nodes...)})
	c.electInOrder(nodes...)
	c.clock.Step(4 * time.Second)
	cutOff(c, api, "a", nodes...)
	if !c.cores["a"].Withdrawn() {
		t.Fatal("a did not withdraw")
	}
	// b fails: a sees no fresh peer and announces everything again.
	c.see([]string{"a"}, "a")
	api.publish("a")
	c.cores["a"].Elect()
	if c.cores["a"].Withdrawn() || ownedBy(c, "a") != 10 {
		t.Fatalf("a alone: withdrawn=%v, owns %d of 10", c.cores["a"].Withdrawn(), ownedBy(c, "a"))
	}
}

// TestStaleViewKeepsSoleCandidate: a withdrawn node keeps the groups no
// other candidate can take (a node selector naming it alone): a stale
// answer beats none.
func TestStaleViewKeepsSoleCandidate(t *testing.T) {
	nodes := []string{"a", "b"}
	c := newCluster(nodes...)
	api := withAPI(c, 3*time.Second)
	only := group("198.51.100.7", "a")
	c.snapshot(&Snapshot{L2: append(groups(10, nodes...), only)})
	c.electInOrder(nodes...)
	c.clock.Step(4 * time.Second)
	cutOff(c, api, "a", nodes...)
	c.electInOrder(nodes...)
	if !c.cores["a"].Withdrawn() {
		t.Fatal("a did not withdraw")
	}
	owners := c.owners()
	if o := owners[only.Key]; len(o) != 1 || o[0] != "a" {
		t.Errorf("the group only a can announce is announced by %v", o)
	}
	if ownedBy(c, "a") != 1 {
		t.Errorf("withdrawn a announces %d addresses, want only its sole group", ownedBy(c, "a"))
	}
}

// TestBGPGate: while withdrawn, the plan goes on without paths (the
// sessions stay); afterwards the newest plan goes on whole.
func TestBGPGate(t *testing.T) {
	var got []BGPPlan
	g := &BGPGate{Apply: func(p BGPPlan, _ map[string]string, _ netip.Addr) { got = append(got, p) }}
	g.SetWithdrawn(true) // nothing known yet: nothing applied
	if len(got) != 0 {
		t.Fatalf("applied %d plans before any was known", len(got))
	}
	plan := BGPPlan{Peers: []bgp.Peer{{Name: "r1"}}, Paths: []bgp.Path{{Prefix: netip.MustParsePrefix("203.0.113.1/32")}}}
	g.Plan(plan, nil, netip.Addr{})
	last := got[len(got)-1]
	if len(last.Peers) != 1 || len(last.Paths) != 0 {
		t.Fatalf("withdrawn: applied %d peers, %d paths; want the peer and no path", len(last.Peers), len(last.Paths))
	}
	g.SetWithdrawn(false)
	last = got[len(got)-1]
	if len(last.Peers) != 1 || len(last.Paths) != 1 {
		t.Fatalf("back: applied %d peers, %d paths; want both", len(last.Peers), len(last.Paths))
	}
	n := len(got)
	g.SetWithdrawn(false)
	if len(got) != n {
		t.Error("no change re-applied the plan")
	}
}
