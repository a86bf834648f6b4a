package speaker

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"slices"
	"sync"
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
}

// Members is the membership the core needs: live members and a change signal.
type Members interface {
	Live() []membership.Member
	Changed() <-chan struct{}
	SetWatched(names []string)
}

// Departures optionally tells how a member went: graceful leave or failure,
// and when it was last heard from.
type Departures interface {
	Departure(name string) (membership.Departure, bool)
}

// Announcer is the layer-2 announcer the core drives.
type Announcer interface {
	SetOwned(map[netip.Addr]l2.Target)
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
}

// EncodeMeta encodes the health of the node's interfaces for membership
// metadata, within limit bytes.
func EncodeMeta(h l2.Health, limit int) []byte {
	m := NodeMeta{Running: h.Running, Known: true}
	b, _ := json.Marshal(m)
	if len(b) > limit {
		b, _ = json.Marshal(NodeMeta{AnyRunning: len(h.Running) > 0, Known: true})
	}
	return b
}

// healthyFor reports whether a member with metadata meta can announce on
// interfaces (nil: any). Unknown or unreadable metadata counts as healthy:
// only a node that says it lost carrier is passed over.
func healthyFor(meta []byte, interfaces []string) bool {
	if len(meta) == 0 {
		return true
	}
	var m NodeMeta
	if err := json.Unmarshal(meta, &m); err != nil || !m.Known {
		return true
	}
	if m.AnyRunning {
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
// last snapshot and the live members, drives the announcer, and reports
// the moves this node makes. It never talks to the API server.
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
	// Grace is how long after start this node does not take addresses:
	// long enough for the others to hear it is back (one failure-detection
	// timeout), so that a returning favourite and the current owner do not
	// answer at the same time.
	Grace time.Duration

	mu       sync.Mutex
	snapshot *Snapshot
	started  time.Time
	kick     wakeup

	// Loop state.
	owners   map[netip.Addr]string // group key → owner at the last election
	lastSeen map[string]time.Time  // when a member was last seen live by an election
}

// SetSnapshot hands the core a new snapshot; the loop elects again.
func (c *Core) SetSnapshot(s *Snapshot) {
	c.mu.Lock()
	c.snapshot = s
	c.mu.Unlock()
	c.kick.Notify()
}

// Run elects on every membership change and every snapshot until ctx
// ends; then it releases every address (before membership leaves, so this
// node stops answering as the others take over).
func (c *Core) Run(ctx context.Context) error {
	c.mu.Lock()
	c.started = c.Clock.Now()
	c.mu.Unlock()
	graceOver := c.Clock.After(c.Grace)
	for {
		select {
		case <-ctx.Done():
			c.L2.SetOwned(nil)
			return nil
		case <-c.Members.Changed():
		case <-c.kick.C():
		case <-graceOver:
			graceOver = nil
		}
		c.Elect()
	}
}

// inGrace reports whether this node still holds back from taking addresses.
func (c *Core) inGrace(now time.Time) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return !c.started.IsZero() && now.Sub(c.started) < c.Grace
}

// Elect runs one election and applies it. It is called by Run; tests call
// it directly.
func (c *Core) Elect() {
	c.mu.Lock()
	snap := c.snapshot
	c.mu.Unlock()
	if snap == nil {
		return // nothing known yet: keep what is announced
	}
	now := c.Clock.Now()
	live := map[string][]byte{}
	for _, m := range c.Members.Live() {
		live[m.Name] = m.Meta
	}
	grace := c.inGrace(now)
	if c.owners == nil {
		c.owners, c.lastSeen = map[netip.Addr]string{}, map[string]time.Time{}
	}
	owned := map[netip.Addr]l2.Target{}
	var mine []L2Group
	watch := map[string]bool{}
	owners := make(map[netip.Addr]string, len(snap.L2))
	for _, g := range snap.L2 {
		var cands []string
		for _, n := range g.CandidateNames() {
			meta, ok := live[n]
			if !ok {
				continue
			}
			if !healthyFor(meta, g.Candidates[n]) || (grace && n == c.Node) {
				continue
			}
			cands = append(cands, n)
		}
		owner := election.Owner(g.Key, cands)
		owners[g.Key] = owner
		// Watch the nodes next to this one in the group's ranking: they
		// take over from each other.
		rank := election.Ranking(g.Key, cands)
		if len(rank) > 1 && (rank[0] == c.Node || rank[1] == c.Node) {
			watch[rank[0]], watch[rank[1]] = true, true
		}
		if owner != c.Node {
			continue
		}
		mine = append(mine, g)
		for _, ip := range g.IPs {
			owned[ip] = l2.Target{Interfaces: g.Candidates[c.Node]}
		}
		if prev, ok := c.owners[g.Key]; !ok || prev != c.Node {
			c.reportMove(g, prev, live, now)
		}
	}
	c.L2.SetOwned(owned)
	delete(watch, c.Node)
	names := make([]string, 0, len(watch))
	for n := range watch {
		names = append(names, n)
	}
	slices.Sort(names)
	c.Members.SetWatched(names)

	for n := range live {
		c.lastSeen[n] = now
	}
	c.owners = owners
	if c.OnOwned != nil {
		c.OnOwned(mine)
	}
}

// reportMove explains why this node now owns g.
func (c *Core) reportMove(g L2Group, prev string, live map[string][]byte, now time.Time) {
	m := Move{Group: g, From: prev, To: c.Node, At: now}
	_, prevLive := live[prev]
	switch {
	case prev == "":
		m.Reason, m.Message = MoveAssigned, fmt.Sprintf("%s announces %s", c.Node, ipList(g.IPs))
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
	case hasKey(g.Candidates, prev) && !healthyFor(live[prev], g.Candidates[prev]):
		m.Reason, m.Message = MoveInterfaceDown, fmt.Sprintf("the announcing interfaces of %s lost carrier; %s took over", prev, c.Node)
	case !hasKey(g.Candidates, prev):
		m.Reason, m.Message = MoveNotEligible, fmt.Sprintf("%s is no longer eligible to announce %s; %s took over", prev, ipList(g.IPs), c.Node)
	default:
		m.Reason, m.Message = MoveRebalanced, fmt.Sprintf("%s joined the candidates and the election gave it %s (from %s)", c.Node, ipList(g.IPs), prev)
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

func ipList(ips []netip.Addr) string {
	s := ""
	for i, ip := range ips {
		if i > 0 {
			s += ", "
		}
		s += ip.String()
	}
	return s
}
