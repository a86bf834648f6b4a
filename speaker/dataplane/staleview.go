package dataplane

import (
	"context"
	"encoding/json"
	"net/netip"
	"sync"
	"time"

	"github.com/go-logr/logr"

	"github.com/lbstack/lbstack/speaker/l2"
	"github.com/lbstack/lbstack/speaker/membership"
)

// MoveAPIUnreachable: the owner cannot reach the API server while this node
// can, so the owner withdrew (see Core.API): it announces from a view it can
// no longer refresh.
const MoveAPIUnreachable = "APIUnreachable"

// APIState is what a speaker knows of its own connection to the API server
// (see speaker.APIView).
type APIState struct {
	// Fresh: the API server answered within the last half stale bound; the
	// speaker's view of Services and configuration is current. The others
	// see it in the membership metadata.
	Fresh bool
	// Unreached: the API server has not answered for the whole stale bound
	// (--api-stale-after); the view may miss deletions and changes.
	Unreached bool
	// Settled: the API server has answered without a gap long enough for
	// the watches to have caught up after a cut.
	Settled bool
}

// SelfMeta is the state a speaker publishes about itself next to its
// interface health.
type SelfMeta struct {
	// Fresh: its API view is current (APIState.Fresh).
	Fresh bool
	// Withdrawn: it cannot reach the API server while a peer can, and
	// announces nothing (see Core.API). The others pass it over.
	Withdrawn bool
}

// PeerStaleForget is how long the core remembers since when a peer that is
// out of sight had a fresh view.
const PeerStaleForget = 10 * time.Minute

// decodeMeta reads a member's metadata; none or garbage gives the zero
// NodeMeta: interfaces unknown (healthy), not fresh, not withdrawn.
func decodeMeta(meta []byte) NodeMeta {
	var m NodeMeta
	if len(meta) == 0 || json.Unmarshal(meta, &m) != nil {
		return NodeMeta{}
	}
	return m
}

// fresh reports whether the member says its API view is current. Speakers
// that publish nothing (older versions) never count as fresh: no node
// withdraws in their favour.
func (m NodeMeta) fresh() bool { return m.Fresh && !m.Withdrawn }

// decideWithdrawn decides whether this node withdraws: it has not reached
// the API server (Unreached) for ConfirmFor while a live peer has had a
// current view for at least PeerFreshFor. Then the peers, which see deletions and changes this
// node cannot, announce instead: this node passes itself over in every
// layer 2 group another candidate can take and advertises no BGP path. It
// comes back once its own view has settled, or at once when no live peer
// has a current view any more (announcing from a stale view beats no
// announcement at all). Without API (nil), it never withdraws.
func (c *Core) decideWithdrawn(members map[string]NodeMeta, now time.Time) bool {
	if c.API == nil {
		return false
	}
	st := c.API()
	if c.freshSince == nil {
		c.freshSince = map[string]time.Time{}
		c.peerSeen = map[string]time.Time{}
	}
	var anyFresh, longFresh bool
	for name, m := range members {
		if name == c.Node {
			continue
		}
		c.peerSeen[name] = now
		if !m.fresh() {
			delete(c.freshSince, name)
			continue
		}
		since, ok := c.freshSince[name]
		if !ok {
			since = now
			c.freshSince[name] = now
		}
		anyFresh = true
		if now.Sub(since) >= c.PeerFreshFor {
			longFresh = true
		}
	}
	// A peer out of sight keeps its record (it may come back fresh after a
	// short partition), but not forever.
	for name, seen := range c.peerSeen {
		if _, live := members[name]; !live && now.Sub(seen) > PeerStaleForget {
			delete(c.peerSeen, name)
			delete(c.freshSince, name)
		}
	}
	switch {
	case !st.Unreached:
		c.unreachedAt = time.Time{}
	case c.unreachedAt.IsZero():
		c.unreachedAt = now
	}
	was := c.withdrawn
	if was {
		c.withdrawn = !st.Settled && anyFresh
	} else {
		c.withdrawn = st.Unreached && now.Sub(c.unreachedAt) >= c.ConfirmFor && longFresh
	}
	if c.withdrawn != was {
		c.withdrawnFlag.Store(c.withdrawn)
		switch {
		case c.withdrawn:
			c.Log.Info("Withdrawing: the API server is unreachable from this node while another speaker reaches it; the others announce instead", "unreachedFor", now.Sub(c.unreachedAt).Round(time.Millisecond))
		case st.Settled:
			c.Log.Info("Announcing again: the API server answers and the view has caught up")
		default:
			c.Log.Info("Announcing again from the last view: no other live speaker reaches the API server either")
		}
		if c.OnWithdrawn != nil {
			c.OnWithdrawn(c.withdrawn)
		}
	}
	return c.withdrawn
}

// Withdrawn reports whether this node withdrew (see Core.API).
func (c *Core) Withdrawn() bool { return c.withdrawnFlag.Load() }

// APIChanged tells the core that the API state changed; it elects again.
func (c *Core) APIChanged() { c.kick.Notify() }

// passOverWithdrawn returns the candidates of a group without the withdrawn
// ones, unless that leaves none: an address only a withdrawn node can
// announce stays with it. self reports whether this node withdrew (its own
// metadata may not have reached the others yet, but it knows).
func passOverWithdrawn(cands []string, metas map[string]NodeMeta, node string, self bool) []string {
	var keep []string
	for _, n := range cands {
		if n == node && self || n != node && metas[n].Withdrawn {
			continue
		}
		keep = append(keep, n)
	}
	if len(keep) == 0 {
		return cands
	}
	return keep
}

// PublishMeta publishes the node's metadata (see EncodeMeta) whenever its
// interface health (from health) or its own state (from self) changes, so
// the others pass over a node whose announcing interfaces lost carrier or
// that withdrew, and know which peers have a current API view. It returns
// when ctx ends.
func PublishMeta(ctx context.Context, health <-chan l2.Health, self <-chan SelfMeta, mem MetaSetter, log logr.Logger) {
	var (
		h     l2.Health
		s     SelfMeta
		known bool
	)
	for {
		select {
		case <-ctx.Done():
			return
		case h = <-health:
			known = true
		case s = <-self:
		}
		meta := EncodeMeta(h, s, membership.MaxMetaSize)
		if !known {
			// No interface scan yet: say nothing of the interfaces.
			meta, _ = json.Marshal(NodeMeta{Fresh: s.Fresh, Withdrawn: s.Withdrawn})
		}
		if err := mem.SetMeta(meta); err != nil {
			log.Error(err, "Publishing the node's metadata")
		}
	}
}

// BGPGate passes BGP plans on to Apply, without paths while the node is
// withdrawn (see Core.API): the sessions stay up, so that the node
// advertises again the moment it comes back.
type BGPGate struct {
	// Apply receives the plans (BGPDriver.Set).
	Apply func(plan BGPPlan, passwords map[string]string, routerID netip.Addr)

	mu        sync.Mutex
	withdrawn bool
	last      *bgpWant
}

// Plan takes the newest plan (Watcher.OnBGP).
func (g *BGPGate) Plan(plan BGPPlan, passwords map[string]string, routerID netip.Addr) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.last = &bgpWant{plan: plan, passwords: passwords, routerID: routerID}
	g.applyLocked()
}

// SetWithdrawn withdraws every path (true) or restores the last plan.
func (g *BGPGate) SetWithdrawn(w bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.withdrawn == w {
		return
	}
	g.withdrawn = w
	g.applyLocked()
}

func (g *BGPGate) applyLocked() {
	if g.last == nil {
		return
	}
	plan := g.last.plan
	if g.withdrawn {
		plan.Paths, plan.Services = nil, nil
	}
	g.Apply(plan, g.last.passwords, g.last.routerID)
}
