package dataplane

import (
	"context"
	"errors"
	"maps"
	"math/rand/v2"
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/go-logr/logr"
	"k8s.io/utils/clock"

	"github.com/lbstack/lbstack/speaker/bfd"
	"github.com/lbstack/lbstack/speaker/bgp"
)

// BGPPlan is what this node does over BGP: its sessions and the paths it
// advertises (computed by speaker/plan). Every eligible node advertises
// every Service address it may (the routers spread traffic over them:
// ECMP), so there is no election.
type BGPPlan struct {
	// Peers are the sessions of this node, sorted by name, without
	// passwords (those come apart, see BGPDriver.Set).
	Peers []bgp.Peer
	// BFD are the BFD sessions of the peers that have a BFD profile, by
	// peer name.
	BFD map[string]bfd.SessionConfig
	// Paths are the paths this node advertises, sorted by prefix.
	Paths []bgp.Path
	// Services are the Services behind each advertised prefix.
	Services map[netip.Prefix][]ServiceRef
	// Skipped are the peers selected for this node that it leaves out,
	// by name, with the reason (the planner's, and after Set those the
	// speaker could not configure). The other peers run regardless.
	Skipped map[string]string
}

// BGPDriver keeps this node's embedded BGP speaker and its BFD sessions in
// line with the last BGP plan. Like the layer-2 core it needs no API
// server once it has a plan: BFD takes a session down the moment the
// router stops answering, and brings it back when it answers again.
type BGPDriver struct {
	Node  string
	Log   logr.Logger
	Clock clock.WithTicker
	// BFDPort is the local BFD port (0: 3784) and BFDMultihopPort the
	// multi-hop one (0: 4784); tests change them.
	BFDPort, BFDMultihopPort uint16
	// OnEvent receives session up/down events (must not block).
	OnEvent func(bgp.PeerEvent)
	// OnStatus receives the sessions' state after each change and every
	// few seconds (must not block).
	OnStatus func(BGPStatus)
	// Resolve finds the router of an unnumbered session on an interface
	// (nil: LinkLocalNeighbor). The driver asks again every 2 s and keeps
	// the last address found while nothing else is.
	Resolve func(ifname string) (netip.Addr, error)

	// wg counts the goroutines the driver starts (the BGP speaker, BFD and
	// their followers); Run returns only when they have ended.
	wg sync.WaitGroup

	mu         sync.Mutex
	want       *bgpWant
	kick       wakeup
	spk        *bgp.Speaker
	stopSpk    context.CancelFunc
	asn        uint32
	rid        netip.Addr
	bfdm       *bfd.Manager
	bfdPeers   map[netip.Addr]string // BFD peer address → BGP peer name
	bfdState   map[string]string     // BGP peer name → BFD state
	applied    BGPPlan
	appliedGen uint64
	// routers are the routers found for unnumbered sessions, by
	// interface; unresolved says why an interface has none.
	routers    map[string]netip.Addr
	unresolved map[string]string
	// spkErr and bfdErr say why the BGP speaker or BFD did not start or
	// stopped; cleared when one starts again.
	spkErr, bfdErr string
}

type bgpWant struct {
	plan      BGPPlan
	passwords map[string]string
	routerID  netip.Addr
}

// BGPStatus is what the node reports about its BGP sessions and paths.
type BGPStatus struct {
	// Sessions are the BGP sessions of this node, sorted by peer name.
	Sessions []PeerSession
	// Plan is the plan in force, and PlanGeneration counts the plans
	// applied, so a receiver can tell a new plan from the same one.
	Plan           BGPPlan
	PlanGeneration uint64
}

// PeerSession is the state of one BGP session and of its BFD session.
type PeerSession struct {
	bgp.PeerStatus
	// BFDState is the BFD session's state ("Up", "Down", ...), empty
	// without BFD.
	BFDState string
}

// Set hands the driver a new plan with the peers' passwords and the router
// ID (the node's IPv4 unless a peer sets one).
func (d *BGPDriver) Set(plan BGPPlan, passwords map[string]string, routerID netip.Addr) {
	d.mu.Lock()
	d.want = &bgpWant{plan: plan, passwords: passwords, routerID: routerID}
	d.mu.Unlock()
	d.kick.Notify()
}

// Run applies plans until ctx ends, then stops the BGP speaker (which
// notifies the routers) and the BFD sessions, and returns when everything it
// started has ended.
func (d *BGPDriver) Run(ctx context.Context) error {
	tick := d.Clock.NewTicker(2 * time.Second)
	defer tick.Stop()
	defer d.wg.Wait()
	defer d.stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-d.kick.C():
			d.resolveRouters() // a new plan may name new interfaces
			d.apply(ctx)
		case <-tick.C():
			if d.resolveRouters() {
				d.apply(ctx)
			}
		}
		d.report()
	}
}

func (d *BGPDriver) stop() {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.stopSpk != nil {
		d.stopSpk()
		d.stopSpk, d.spk = nil, nil
	}
}

// apply brings the speaker and BFD in line with the wanted plan.
func (d *BGPDriver) apply(ctx context.Context) {
	d.mu.Lock()
	w := d.want
	d.mu.Unlock()
	if w == nil {
		return
	}
	d.mu.Lock()
	routers, unresolved := d.routers, d.unresolved
	d.mu.Unlock()
	skipped := maps.Clone(w.plan.Skipped)
	peers := make([]bgp.Peer, 0, len(w.plan.Peers))
	for _, p := range w.plan.Peers {
		p.Password = w.passwords[p.Name]
		if p.Interface != "" {
			a, ok := routers[p.Interface]
			if !ok {
				if skipped == nil {
					skipped = map[string]string{}
				}
				skipped[p.Name] = unresolved[p.Interface]
				continue
			}
			p.Address = a
		}
		peers = append(peers, p)
	}
	if len(peers) == 0 {
		if d.spk != nil {
			_ = d.spk.SetPaths(nil)
			_ = d.spk.SetPeers(nil)
		}
		d.applyBFD(ctx, w.plan)
		applied := w.plan
		applied.Skipped = skipped
		d.setApplied(applied)
		return
	}
	// Every peer carries its own local ASN, so the global one only has to
	// be valid: a change of the first peer's ASN must not restart the
	// speaker and with it every session. A new router ID does (gobgp has
	// one per server).
	asn := peers[0].LocalASN
	if d.spk == nil || w.routerID != d.rid {
		d.stop()
		spk, err := bgp.New(bgp.Config{RouterID: w.routerID, ASN: asn, ListenPort: -1, Clock: d.Clock, Log: d.Log.WithName("bgp")})
		if err != nil {
			d.Log.Error(err, "Starting the BGP speaker")
			d.mu.Lock()
			d.spkErr = err.Error()
			d.mu.Unlock()
			return
		}
		sctx, cancel := context.WithCancel(ctx)
		d.mu.Lock()
		d.spk, d.stopSpk, d.asn, d.rid, d.spkErr = spk, cancel, asn, w.routerID, ""
		d.mu.Unlock()
		d.wg.Go(func() {
			if err := spk.Run(sctx); err != nil {
				d.Log.Error(err, "BGP speaker stopped")
				d.mu.Lock()
				if d.spk == spk {
					d.spkErr = err.Error()
				}
				d.mu.Unlock()
			}
		})
		d.wg.Go(func() { d.forwardEvents(sctx, spk) })
	}
	if err := d.spk.SetPeers(peers); err != nil {
		// One peer that cannot be configured never stops the others.
		var sk *bgp.SkippedPeersError
		if errors.As(err, &sk) {
			if skipped == nil {
				skipped = map[string]string{}
			}
			for name, why := range sk.Peers {
				skipped[name] = why.Error()
			}
		}
		d.Log.Error(err, "Configuring BGP peers")
	}
	if err := d.spk.SetPaths(w.plan.Paths); err != nil {
		d.Log.Error(err, "Advertising paths")
	}
	d.applyBFD(ctx, w.plan)
	applied := w.plan
	applied.Skipped = skipped
	d.setApplied(applied)
}

// resolveRouters looks for the routers of the wanted plan's unnumbered
// sessions, keeping the last one found on an interface while no other is,
// and reports whether anything changed. Run calls it before applying a new
// plan and every tick; apply uses what it found.
func (d *BGPDriver) resolveRouters() bool {
	d.mu.Lock()
	var ifaces []string
	if d.want != nil {
		for _, p := range d.want.plan.Peers {
			if p.Interface != "" && !slices.Contains(ifaces, p.Interface) {
				ifaces = append(ifaces, p.Interface)
			}
		}
	}
	old, oldWhy := d.routers, d.unresolved
	d.mu.Unlock()
	if len(ifaces) == 0 && len(old) == 0 && len(oldWhy) == 0 {
		return false
	}
	resolve := d.Resolve
	if resolve == nil {
		resolve = LinkLocalNeighbor
	}
	routers, why := map[string]netip.Addr{}, map[string]string{}
	for _, ifname := range ifaces {
		a, err := resolve(ifname)
		switch {
		case err == nil:
			routers[ifname] = a
		case old[ifname].IsValid():
			routers[ifname] = old[ifname] // the router may be restarting
		default:
			why[ifname] = err.Error()
		}
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if maps.Equal(routers, old) && maps.Equal(why, oldWhy) {
		return false
	}
	for ifname, a := range routers {
		if old[ifname] != a {
			d.Log.Info("Found the router of an unnumbered BGP session", "interface", ifname, "address", a)
		}
	}
	d.routers, d.unresolved = routers, why
	return true
}

func (d *BGPDriver) setApplied(p BGPPlan) {
	d.mu.Lock()
	d.applied = p
	d.appliedGen++
	d.mu.Unlock()
}

func (d *BGPDriver) forwardEvents(ctx context.Context, spk *bgp.Speaker) {
	for {
		select {
		case <-ctx.Done():
			return
		case ev, ok := <-spk.Events():
			if !ok {
				return
			}
			if d.OnEvent != nil {
				d.OnEvent(ev)
			}
			d.report()
		}
	}
}

// applyBFD adds and removes BFD sessions for the peers with a profile.
func (d *BGPDriver) applyBFD(ctx context.Context, plan BGPPlan) {
	want := map[netip.Addr]bfd.SessionConfig{}
	names := map[netip.Addr]string{}
	for _, p := range plan.Peers {
		cfg, ok := plan.BFD[p.Name]
		if !ok {
			continue
		}
		want[cfg.Peer] = cfg
		names[cfg.Peer] = p.Name
	}
	if len(want) > 0 && d.bfdm == nil {
		m, err := bfd.NewManager(bfd.ManagerConfig{Port: d.BFDPort, Multihop: true, MultihopPort: d.BFDMultihopPort, Clock: d.Clock, Rand: rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64())), Log: d.Log.WithName("bfd")})
		if err != nil {
			d.Log.Error(err, "Starting BFD; sessions run without it")
			d.mu.Lock()
			d.bfdErr = err.Error()
			d.mu.Unlock()
			return
		}
		d.mu.Lock()
		d.bfdm, d.bfdErr = m, ""
		d.mu.Unlock()
		d.wg.Go(func() {
			if err := m.Run(ctx); err != nil {
				d.Log.Error(err, "BFD stopped")
				d.mu.Lock()
				d.bfdErr = err.Error()
				d.mu.Unlock()
			}
		})
		changes := m.Subscribe(ctx)
		d.wg.Go(func() { d.followBFD(ctx, changes) })
	}
	if d.bfdm == nil {
		return
	}
	d.mu.Lock()
	old := d.bfdPeers
	d.bfdPeers = names
	d.mu.Unlock()
	for addr := range old {
		if _, ok := want[addr]; !ok {
			_ = d.bfdm.RemoveSession(addr)
		}
	}
	for _, cfg := range want {
		if err := d.bfdm.AddSession(cfg); err != nil {
			d.Log.Error(err, "Adding BFD session", "peer", cfg.Peer)
		}
	}
}

// followBFD shuts a BGP session when its BFD session goes down (not when
// the router switched BFD off on purpose) and opens it when BFD is up again.
func (d *BGPDriver) followBFD(ctx context.Context, changes <-chan bfd.StateChange) {
	for {
		select {
		case <-ctx.Done():
			return
		case ch, ok := <-changes:
			if !ok {
				return
			}
			d.mu.Lock()
			name := d.bfdPeers[ch.Peer]
			spk := d.spk
			if d.bfdState == nil {
				d.bfdState = map[string]string{}
			}
			d.bfdState[name] = ch.New.String()
			d.mu.Unlock()
			if name == "" || spk == nil {
				continue
			}
			switch {
			case ch.New == bfd.StateDown && ch.Old == bfd.StateUp && ch.RemoteState != bfd.StateAdminDown:
				d.Log.Info("BFD session down; shutting the BGP session", "peer", name, "diag", ch.Diag.String())
				_ = spk.SetPeerDown(name, true)
			case ch.New == bfd.StateUp:
				_ = spk.SetPeerDown(name, false)
			}
			d.report()
		}
	}
}

// report sends the sessions' state to OnStatus.
func (d *BGPDriver) report() {
	if d.OnStatus == nil {
		return
	}
	d.mu.Lock()
	spk := d.spk
	bfdState := make(map[string]string, len(d.bfdState))
	for k, v := range d.bfdState {
		bfdState[k] = v
	}
	st := BGPStatus{Plan: d.applied, PlanGeneration: d.appliedGen}
	d.mu.Unlock()
	if spk != nil {
		for _, p := range spk.Peers() {
			st.Sessions = append(st.Sessions, PeerSession{PeerStatus: p, BFDState: bfdState[p.Name]})
		}
	}
	d.OnStatus(st)
}

// BGPMetrics are the counters of the BGP and BFD sessions, for metrics.
type BGPMetrics struct {
	// Peers are the BGP sessions.
	Peers []bgp.PeerStatus
	// BFD are the BFD sessions, by BGP peer name.
	BFD map[string]bfd.SessionStatus
	// BFDPackets are the BFD packet counters of the running BFD manager
	// (zero when none runs; they restart from zero with a new manager).
	BFDPackets bfd.Counters
}

// Metrics reads the sessions' counters. It is safe to call at any time,
// from any goroutine (the metrics collector).
func (d *BGPDriver) Metrics() BGPMetrics {
	d.mu.Lock()
	spk, bfdm, names := d.spk, d.bfdm, d.bfdPeers
	d.mu.Unlock()
	var m BGPMetrics
	if spk != nil {
		m.Peers = spk.Peers()
	}
	if bfdm != nil {
		m.BFDPackets = bfdm.Counters()
		m.BFD = map[string]bfd.SessionStatus{}
		for _, s := range bfdm.Sessions() {
			if name := names[s.Peer]; name != "" {
				m.BFD[name] = s
			}
		}
	}
	return m
}

// BGPReadiness says whether the BGP side of the speaker can announce.
type BGPReadiness struct {
	// Configured is true when the last plan has peers for this node.
	Configured bool
	// Running is true when the embedded BGP speaker for that plan runs.
	Running bool
	// BFDWanted is true when a peer of the plan has a BFD profile, and
	// BFDRunning when BFD listens.
	BFDWanted, BFDRunning bool
	// Err is why the BGP speaker did not start or stopped, BFDErr why BFD
	// did; empty when they did not fail.
	Err, BFDErr string
}

// Readiness reports the state of the BGP speaker and BFD against the last
// plan handed to Set.
func (d *BGPDriver) Readiness() BGPReadiness {
	d.mu.Lock()
	defer d.mu.Unlock()
	var r BGPReadiness
	if d.want != nil {
		r.Configured = len(d.want.plan.Peers) > 0
		for _, p := range d.want.plan.Peers {
			if _, ok := d.want.plan.BFD[p.Name]; ok {
				r.BFDWanted = true
			}
		}
	}
	r.Running = d.spk != nil && d.spk.Running()
	r.BFDRunning = d.bfdm != nil && d.bfdErr == ""
	r.Err, r.BFDErr = d.spkErr, d.bfdErr
	return r
}
