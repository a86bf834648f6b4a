package dataplane

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-logr/logr"
	"k8s.io/utils/clock"

	"github.com/lbstack/lbstack/speaker/election"
	"github.com/lbstack/lbstack/speaker/l2"
	"github.com/lbstack/lbstack/speaker/membership"
)

// Reasons an address moved, in ServiceAnnouncement status and events.
const (
	// MoveAssigned: the address was new to the speakers (or had no owner).
	MoveAssigned = "Assigned"
	// MoveNodeFailed: the owner stopped heartbeating.
	MoveNodeFailed = "NodeFailed"
	// MoveNodeLeft: the owner's speaker said goodbye (SIGTERM, roll-out).
	MoveNodeLeft = "NodeLeft"
	// MoveInterfaceDown: the owner's announcing interfaces lost carrier.
	MoveInterfaceDown = "InterfaceDown"
	// MoveNotEligible: the owner is no longer eligible (node selector,
	// exclusion label, NetworkUnavailable, or no ready endpoint with
	// externalTrafficPolicy Local).
	MoveNotEligible = "NotEligible"
	// MoveRebalanced: a node joined or became eligible and the election
	// gave it the address.
	MoveRebalanced = "Rebalanced"
)

// Snapshot is everything the announce loop needs from the API server. The
// loop keeps the last one, so failover goes on without the API server.
type Snapshot struct {
	// L2 are the layer-2 groups (see PlanL2).
	L2 []L2Group
	// ExpectedPeers are the other nodes on which a live speaker is
	// expected (see Watcher.ExpectedPeers). When there are none, a
	// starting speaker does not wait to join anyone before electing.
	ExpectedPeers []string
}

// Members is the membership the core needs: live members, what each
// claims, and a change signal (implemented by membership.Membership).
type Members interface {
	Live() []membership.Member
	Changed() <-chan struct{}
	SetWatched(names []string)
	// Claims returns, per election key, the other live members that
	// announce it.
	Claims() map[netip.Addr][]membership.Claimant
	// SetClaims publishes the groups this node announces.
	SetClaims(claims []membership.Claim)
	// Settled reports whether this node has joined another member and
	// knows the claims of every live member.
	Settled() bool
}

// Departures optionally tells how a member went: graceful leave or failure,
// and when it was last heard from.
type Departures interface {
	Departure(name string) (membership.Departure, bool)
}

// Announcer is the layer-2 announcer the core drives.
type Announcer interface {
	SetOwned(map[netip.Addr]l2.Target)
	// Reannounce sends the gratuitous ARP / unsolicited NA schedule again
	// for owned addresses, so that clients that followed another node's
	// announcement come back.
	Reannounce(ips []netip.Addr)
}

// Move is a change of the node announcing a group, seen by the new owner.
type Move struct {
	Group    L2Group
	From, To string
	Reason   string
	// Message explains the reason for people.
	Message string
	At      time.Time
	// DetectionTime is how long the failure took to notice (NodeFailed:
	// from the owner's last heartbeat to the takeover).
	DetectionTime time.Duration
}

// NodeMeta is what a speaker tells the others through membership metadata.
type NodeMeta struct {
	// Running are the node's eligible interfaces with carrier.
	Running []string `json:"r,omitempty"`
	// AnyRunning is set instead of Running when the list does not fit.
	AnyRunning bool `json:"a,omitempty"`
	// Known is false before the first interface scan.
	Known bool `json:"k,omitempty"`
	// Fresh: the node's API view is current (SelfMeta.Fresh).
	Fresh bool `json:"f,omitempty"`
	// Withdrawn: the node withdrew (SelfMeta.Withdrawn); the others pass
	// it over.
	Withdrawn bool `json:"w,omitempty"`
}

// EncodeMeta encodes the health of the node's interfaces and its own state
// for membership metadata, within limit bytes.
func EncodeMeta(h l2.Health, s SelfMeta, limit int) []byte {
	m := NodeMeta{Running: h.Running, Known: true, Fresh: s.Fresh, Withdrawn: s.Withdrawn}
	b, _ := json.Marshal(m)
	if len(b) > limit {
		b, _ = json.Marshal(NodeMeta{AnyRunning: len(h.Running) > 0, Known: true, Fresh: s.Fresh, Withdrawn: s.Withdrawn})
	}
	return b
}

// healthyFor reports whether a member with metadata meta can announce on
// interfaces (nil: any); see NodeMeta.healthyOn.
func healthyFor(meta []byte, interfaces []string) bool {
	return decodeMeta(meta).healthyOn(interfaces)
}

// healthyOn reports whether the member can announce on interfaces (nil:
// any). Unknown or unreadable metadata (the zero NodeMeta) counts as
// healthy: only a node that says it lost carrier is passed over.
func (m NodeMeta) healthyOn(interfaces []string) bool {
	if !m.Known || m.AnyRunning {
		return true
	}
	if interfaces == nil {
		return len(m.Running) > 0
	}
	for _, i := range interfaces {
		if slices.Contains(m.Running, i) {
			return true
		}
	}
	return false
}

// Core is the announce loop: it elects an owner per layer-2 group from the
// last snapshot, the live members and what each announces, drives the
// announcer, and reports the moves this node makes. It never talks to the
// API server.
//
// The election (see Elect) keeps an address where it is while its owner
// stays live, eligible and healthy: a node that joins, returns after a
// restart or becomes eligible takes no address another node announces, so
// each fault moves an address at most once. Addresses that have no live
// owner go to the rendezvous-hash favourite among the candidates.
type Core struct {
	Node       string
	Members    Members
	Departures Departures // may be nil
	L2         Announcer
	Clock      clock.Clock
	Log        logr.Logger
	// OnMove is called (from the loop) for each group this node takes over;
	// it must not block.
	OnMove func(Move)
	// OnOwned is called after each election with the groups this node owns.
	OnOwned func([]L2Group)
	// JoinTimeout bounds how long after its first snapshot a starting
	// speaker that expects peers waits to join them (and learn what they
	// announce) before it elects on its own. Until it has joined it takes
	// no address.
	JoinTimeout time.Duration
	// JoinGrace is how long, once joined, this node still waits before it
	// elects: one failure-detection timeout and a little, so that if its
	// previous run announced addresses and the others are taking them over
	// right now, their claims reach it first.
	JoinGrace time.Duration
	// API reports this node's connection to the API server (see
	// speaker.APIView). A node that cannot reach it while a peer can
	// withdraws (see decideWithdrawn). nil: it never withdraws.
	API func() APIState
	// PeerFreshFor is how long a peer must have published a current API
	// view before this node, cut off from the API server, withdraws in its
	// favour: a peer that got the API server back a moment before this node
	// (after a restart of the API server) is no reason to move addresses.
	PeerFreshFor time.Duration
	// ConfirmFor is how long this node must have been unreached (API) with
	// a fresh peer before it withdraws: the peers' freshness reaches it
	// late (their own checks, gossip), so when the API server went away
	// for everyone, their flags have dropped by then.
	ConfirmFor time.Duration
	// OnWithdrawn is called (from the loop) when this node withdraws (true)
	// or announces again (false); it must not block.
	OnWithdrawn func(bool)

	mu       sync.Mutex
	snapshot *Snapshot
	kick     wakeup

	// Loop state.
	joined     bool
	joinedFlag atomic.Bool // joined, for other goroutines (Joined)
	firstSnap  time.Time
	settledAt  time.Time
	owners     map[netip.Addr]string   // group key → owner at the last election
	lastSeen   map[string]time.Time    // when a member was last seen live by an election
	liveAtLast map[string]bool         // the members live at the last election
	contested  map[netip.Addr]string   // group key → the rivals this node won it from
	gen        map[netip.Addr]uint32   // group key → the generation of this node\'s claim
	known      map[netip.Addr]uint32   // group key → the newest generation known of anyone\'s claim
	view       map[netip.Addr]uint16   // group key → the fewest candidates seen live while owning it
	yielded    map[netip.Addr]struct{} // groups given up to a foreign answer while alone
	conflicts  chan netip.Addr

	// Stale view state (see decideWithdrawn).
	withdrawn     bool
	withdrawnFlag atomic.Bool          // withdrawn, for other goroutines (Withdrawn)
	freshSince    map[string]time.Time // peer → since when it publishes a current view
	unreachedAt   time.Time            // since when the API state says Unreached (zero: it does not)
	peerSeen      map[string]time.Time // peer → when it was last live
}

// SetSnapshot hands the core a new snapshot; the loop elects again.
func (c *Core) SetSnapshot(s *Snapshot) {
	c.mu.Lock()
	c.snapshot = s
	c.mu.Unlock()
	c.kick.Notify()
}

// Conflict tells the core that a host with another MAC answers for ip, which
// this node announces. A node that has joined no other speaker though it
// expects some (a different memberlist key, port 7946 blocked) gives the
// address up until it joins: the other answer comes from a speaker it cannot
// see. A node with peers keeps it (the announcer re-asserts; the claims
// decide between speakers that see each other). It does not block.
func (c *Core) Conflict(ip netip.Addr) {
	select {
	case c.conflictCh() <- ip:
	default:
	}
}

// Joined reports whether this node has finished joining and elects (see
// JoinTimeout, JoinGrace); before that it announces nothing.
func (c *Core) Joined() bool { return c.joinedFlag.Load() }

// Isolated reports whether this node has joined none of the speakers its
// last snapshot expects (lbstack_speaker_membership_isolated).
func (c *Core) Isolated() bool {
	snap := c.currentSnapshot()
	return snap != nil && c.alone(snap)
}

func (c *Core) conflictCh() chan netip.Addr {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.conflicts == nil {
		c.conflicts = make(chan netip.Addr, 64)
	}
	return c.conflicts
}

// Run elects on every membership change and every snapshot until ctx
// ends; then it releases every address (before membership leaves, so this
// node stops answering as the others take over).
func (c *Core) Run(ctx context.Context) error {
	conflicts := c.conflictCh()
	for {
		// While joining, look again every 50 ms: the join ends on a
		// timeout or a grace, not only on an event.
		var joining <-chan time.Time
		if !c.joined {
			joining = c.Clock.After(50 * time.Millisecond)
		} else if c.API != nil && (c.withdrawn || c.API().Unreached) {
			// Cut off from the API server: the peers' freshness is a
			// matter of time, not only of events.
			joining = c.Clock.After(250 * time.Millisecond)
		}
		select {
		case <-ctx.Done():
			c.L2.SetOwned(nil)
			c.Members.SetClaims(nil)
			return nil
		case <-c.Members.Changed():
		case <-c.kick.C():
		case <-joining:
		case ip := <-conflicts:
			c.conflict(ip)
		}
		c.Elect()
	}
}

func (c *Core) currentSnapshot() *Snapshot {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.snapshot
}

// conflict handles a foreign answer for ip (see Conflict).
func (c *Core) conflict(ip netip.Addr) {
	snap := c.currentSnapshot()
	if snap == nil || !c.alone(snap) {
		return
	}
	for _, g := range snap.L2 {
		if slices.Contains(g.IPs, ip) {
			if c.yielded == nil {
				c.yielded = map[netip.Addr]struct{}{}
			}
			if _, ok := c.yielded[g.Key]; !ok {
				c.Log.Info("Another host answers for an address while this speaker has joined none of the speakers it expects: giving the address up until it joins them",
					"ips", g.IPs, "expectedPeers", len(snap.ExpectedPeers))
			}
			c.yielded[g.Key] = struct{}{}
		}
	}
}

// alone reports whether this node sees no other live member though it
// expects some.
func (c *Core) alone(snap *Snapshot) bool {
	if len(snap.ExpectedPeers) == 0 {
		return false
	}
	for _, m := range c.Members.Live() {
		if m.Name != c.Node {
			return false
		}
	}
	return true
}

// join decides whether this node has finished joining: it has no peers to
// expect, or it has known every live member's claims for JoinGrace, or it
// waited JoinTimeout after its first snapshot.
func (c *Core) join(snap *Snapshot, now time.Time) {
	if c.joined {
		return
	}
	if c.firstSnap.IsZero() {
		c.firstSnap = now
	}
	waited := now.Sub(c.firstSnap)
	if !c.Members.Settled() {
		c.settledAt = time.Time{}
	} else if c.settledAt.IsZero() {
		c.settledAt = now
	}
	var why string
	switch {
	case len(snap.ExpectedPeers) == 0:
		why = "no other speaker expected"
	case !c.settledAt.IsZero() && now.Sub(c.settledAt) >= c.JoinGrace:
		why = "joined the other speakers and learned what they announce"
	case waited >= c.JoinTimeout:
		why = "no other speaker answered within the join timeout"
	default:
		return
	}
	c.joined = true
	c.joinedFlag.Store(true)
	c.Log.Info("Joined: electing", "reason", why, "waited", waited.Round(time.Millisecond), "expectedPeers", len(snap.ExpectedPeers))
}

// Elect runs one election and applies it. It is called by Run; tests call
// it directly. For each group, over the candidates that are live and whose
// announcing interfaces have carrier:
//
//   - the claimants are the candidates that announce the group now (this
//     node, if it owns it; the others from their published claims);
//   - with claimants, the owner is one of them (resolve): the address stays
//     where it is, and when two announce it (a partition healed) both reach
//     the same winner, which re-announces so that clients come back;
//   - without, the owner is the rendezvous favourite among the candidates.
//
// This node takes nothing before it has joined (see JoinTimeout). The others
// count it as a candidate meanwhile: an address that has no owner and whose
// favourite is a joining node waits for it (a gap of at most the join),
// rather than two nodes deciding from different views (a double answer).
func (c *Core) Elect() {
	snap := c.currentSnapshot()
	if snap == nil {
		return // nothing known yet: keep what is announced
	}
	now := c.Clock.Now()
	c.join(snap, now)
	members := map[string]membership.Member{}
	for _, m := range c.Members.Live() {
		members[m.Name] = m
	}
	// Each member's metadata, decoded once for every group below.
	metas := make(map[string]NodeMeta, len(members))
	for n, m := range members {
		metas[n] = decodeMeta(m.Meta)
	}
	withdrawn := c.decideWithdrawn(metas, now)
	claims := c.Members.Claims()
	// Members seen before, gone at the last election and live again: a
	// partition healed or a node came back. It may have announced what this
	// node announces (or its clients may still point at it), so this node
	// re-announces the groups it keeps that the returning node could own.
	returning := map[string]bool{}
	for n := range members {
		if _, seen := c.lastSeen[n]; seen && !c.liveAtLast[n] && n != c.Node {
			returning[n] = true
		}
	}
	alone := c.alone(snap)
	if !alone {
		c.yielded = nil
	}
	if c.owners == nil {
		c.owners, c.lastSeen, c.contested = map[netip.Addr]string{}, map[string]time.Time{}, map[netip.Addr]string{}
	}
	owned := map[netip.Addr]l2.Target{}
	var mine []L2Group
	var reannounce []netip.Addr
	var keys []membership.Claim
	gen := map[netip.Addr]uint32{}
	view := map[netip.Addr]uint16{}
	known := map[netip.Addr]uint32{}
	watch := map[string]bool{}
	owners := make(map[netip.Addr]string, len(snap.L2))
	contested := map[netip.Addr]string{}
	for _, g := range snap.L2 {
		_, yielded := c.yielded[g.Key]
		var cands []string
		for _, n := range g.CandidateNames() {
			m, ok := metas[n]
			if !ok || !m.healthyOn(g.Candidates[n]) {
				continue
			}
			if n == c.Node && (!c.joined || yielded) {
				continue
			}
			cands = append(cands, n)
		}
		cands = passOverWithdrawn(cands, metas, c.Node, withdrawn)
		var claimants []membership.Claimant
		for _, n := range cands {
			self := n == c.Node
			if self && c.owners[g.Key] == c.Node {
				claimants = append(claimants, membership.Claimant{Node: n, Gen: c.gen[g.Key], View: c.view[g.Key]})
			} else if i := slices.IndexFunc(claims[g.Key], func(cl membership.Claimant) bool { return cl.Node == n }); !self && i >= 0 {
				claimants = append(claimants, claims[g.Key][i])
			}
		}
		// The newest generation of this key anyone claims, or this node
		// last knew of (a taker's claim is one newer).
		newest := c.known[g.Key]
		for _, cl := range claims[g.Key] {
			newest = max(newest, cl.Gen)
		}
		known[g.Key] = newest
		pool := c.resolve(g, claimants, members)
		if len(pool) == 0 {
			pool = cands
		}
		owner := election.Owner(g.Key, pool)
		owners[g.Key] = owner
		// Watch the owner and the node that would take over from it.
		next := election.Owner(g.Key, slices.DeleteFunc(slices.Clone(cands), func(n string) bool { return n == owner }))
		if owner == c.Node || next == c.Node {
			for _, n := range []string{owner, next} {
				if n != "" {
					watch[n] = true
				}
			}
		}
		if owner != c.Node {
			continue
		}
		mine = append(mine, g)
		for _, ip := range g.IPs {
			owned[ip] = l2.Target{Interfaces: g.Candidates[c.Node]}
		}
		prev, had := c.owners[g.Key]
		seen := uint16(min(len(cands), 1<<16-1))
		if !had || prev != c.Node {
			gen[g.Key], view[g.Key] = newest+1, seen
		} else {
			gen[g.Key], view[g.Key] = c.gen[g.Key], min(c.view[g.Key], seen)
		}
		keys = append(keys, membership.Claim{Key: g.Key, Gen: gen[g.Key], View: view[g.Key]})
		known[g.Key] = max(known[g.Key], gen[g.Key])
		var rivals []string
		for _, cl := range claimants {
			if cl.Node != c.Node {
				rivals = append(rivals, cl.Node)
			}
		}
		switch {
		case len(rivals) > 0 && c.contested[g.Key] != strings.Join(rivals, ","):
			c.Log.Info("Keeping addresses another node also announced: re-announcing", "ips", g.IPs, "others", rivals)
			reannounce = append(reannounce, g.IPs...)
		case had && prev == c.Node && slices.ContainsFunc(g.CandidateNames(), func(n string) bool { return returning[n] }):
			reannounce = append(reannounce, g.IPs...)
		}
		if len(rivals) > 0 {
			contested[g.Key] = strings.Join(rivals, ",")
		}
		if !had || prev != c.Node {
			c.reportMove(g, prev, members, now)
		}
	}
	c.L2.SetOwned(owned)
	c.Members.SetClaims(keys)
	if len(reannounce) > 0 {
		c.L2.Reannounce(reannounce)
	}
	delete(watch, c.Node)
	names := make([]string, 0, len(watch))
	for n := range watch {
		names = append(names, n)
	}
	slices.Sort(names)
	c.Members.SetWatched(names)

	c.liveAtLast = map[string]bool{}
	for n := range members {
		c.lastSeen[n] = now
		c.liveAtLast[n] = true
	}
	if !c.joined {
		// What it computed for the others while joining is no history of
		// its own: its first moves are assignments.
		owners = map[netip.Addr]string{}
	}
	c.owners, c.contested, c.gen, c.view, c.known = owners, contested, gen, view, known
	if c.OnOwned != nil {
		c.OnOwned(mine)
	}
}

// resolve returns the claimants that may keep g (all of them elect the
// rendezvous favourite among those), reached alike by every node that knows
// the same claims; the rules, in order:
//
//   - this node steps back when another claimant cannot hear its heartbeats
//     (SuspectsUs): that one, which takes it for dead, would not;
//   - the claims held with the largest view win: a node that was cut off
//     held its addresses seeing only itself, while the side that took over
//     (which the clients follow) saw more;
//   - among those, the newest generation wins: the claim taken over last.
func (c *Core) resolve(g L2Group, claimants []membership.Claimant, members map[string]membership.Member) []string {
	if len(claimants) < 2 {
		if len(claimants) == 1 {
			return []string{claimants[0].Node}
		}
		return nil
	}
	if slices.ContainsFunc(claimants, func(y membership.Claimant) bool { return y.Node != c.Node && members[y.Node].SuspectsUs }) {
		if slices.ContainsFunc(claimants, func(x membership.Claimant) bool { return x.Node == c.Node }) {
			c.Log.Info("Giving addresses up: a node that cannot hear this one announces them", "ips", g.IPs)
		}
		claimants = slices.DeleteFunc(slices.Clone(claimants), func(x membership.Claimant) bool { return x.Node == c.Node })
	}
	var best uint16
	for _, x := range claimants {
		best = max(best, x.View)
	}
	claimants = slices.DeleteFunc(slices.Clone(claimants), func(x membership.Claimant) bool { return x.View < best })
	var newest uint32
	for _, x := range claimants {
		newest = max(newest, x.Gen)
	}
	var out []string
	for _, x := range claimants {
		if x.Gen == newest {
			out = append(out, x.Node)
		}
	}
	return out
}

// reportMove explains why this node now owns g.
func (c *Core) reportMove(g L2Group, prev string, live map[string]membership.Member, now time.Time) {
	m := Move{Group: g, From: prev, To: c.Node, At: now}
	_, prevLive := live[prev]
	switch {
	case prev == "":
		m.Reason, m.Message = MoveAssigned, fmt.Sprintf("%s announces %s", c.Node, FormatIPs(g.IPs))
	case !prevLive:
		m.Reason = MoveNodeFailed
		if d, ok := c.departure(prev); ok && d.Graceful {
			m.Reason = MoveNodeLeft
			m.Message = fmt.Sprintf("%s left the cluster (its speaker stopped); %s took over", prev, c.Node)
		} else {
			if ok && !d.LastHeard.IsZero() {
				m.DetectionTime = now.Sub(d.LastHeard)
			} else if seen, ok := c.lastSeen[prev]; ok {
				m.DetectionTime = now.Sub(seen)
			}
			m.Message = fmt.Sprintf("%s stopped answering heartbeats (detected in %s); %s took over", prev, m.DetectionTime.Round(time.Millisecond), c.Node)
		}
	case decodeMeta(live[prev].Meta).Withdrawn:
		m.Reason, m.Message = MoveAPIUnreachable, fmt.Sprintf("%s cannot reach the API server while %s can; %s took over", prev, c.Node, c.Node)
	case hasKey(g.Candidates, prev) && !healthyFor(live[prev].Meta, g.Candidates[prev]):
		m.Reason, m.Message = MoveInterfaceDown, fmt.Sprintf("the announcing interfaces of %s lost carrier; %s took over", prev, c.Node)
	case !hasKey(g.Candidates, prev):
		m.Reason, m.Message = MoveNotEligible, fmt.Sprintf("%s is no longer eligible to announce %s; %s took over", prev, FormatIPs(g.IPs), c.Node)
	default:
		m.Reason, m.Message = MoveRebalanced, fmt.Sprintf("the election gave %s %s (from %s, which is still live: it gave the addresses up to this node)", c.Node, FormatIPs(g.IPs), prev)
	}
	c.Log.Info("Taking over addresses", "ips", g.IPs, "from", prev, "reason", m.Reason, "detectionTime", m.DetectionTime)
	if c.OnMove != nil {
		c.OnMove(m)
	}
}

func (c *Core) departure(name string) (membership.Departure, bool) {
	if c.Departures == nil {
		return membership.Departure{}, false
	}
	return c.Departures.Departure(name)
}

func hasKey[V any](m map[string]V, k string) bool {
	_, ok := m[k]
	return ok
}

// FormatIPs lists addresses for people: "a, b, c".
func FormatIPs(ips []netip.Addr) string {
	s := ""
	for i, ip := range ips {
		if i > 0 {
			s += ", "
		}
		s += ip.String()
	}
	return s
}
