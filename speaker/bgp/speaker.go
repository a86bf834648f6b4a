package bgp

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	api "github.com/osrg/gobgp/v3/api"
	gobgplog "github.com/osrg/gobgp/v3/pkg/log"
	"github.com/osrg/gobgp/v3/pkg/server"

	"github.com/go-logr/logr"
	"k8s.io/utils/clock"
)

// eventBuffer is the capacity of the Events channel.
const eventBuffer = 64

// ErrStopped is returned by the setters once Run has returned.
var ErrStopped = errors.New("BGP speaker is stopped")

type phase int

const (
	phaseNew phase = iota
	phaseRunning
	phaseStopped
)

// Speaker announces paths to BGP peers with one embedded gobgp server.
// Create it with New, call Run once, and describe the desired state with
// SetPeers and SetPaths, before or after Run starts. All methods are safe
// for concurrent use.
type Speaker struct {
	cfg    Config
	log    logr.Logger
	clock  clock.PassiveClock
	glog   *logAdapter
	gobgp  *server.BgpServer
	status *status
	events chan PeerEvent
	// running is true from gobgp's start to Run's end; read without mu,
	// which a slow start holds.
	running atomic.Bool

	// mu serialises changes; it is held across calls into gobgp.
	mu        sync.Mutex
	phase     phase
	wantPeers map[string]Peer
	wantPaths map[netip.Prefix]*pathSpec
	// down holds SetPeerDown's wishes by peer name.
	down map[string]bool
	// peers and paths are what gobgp has.
	peers  map[string]*peerState
	paths  map[netip.Prefix]*pathState
	nextID uint32
}

// peerState is a neighbor configured in gobgp.
type peerState struct {
	spec Peer
	// id names the peer's policy objects and its withdraw marker.
	id uint32
	// createdDown is the AdminDown the neighbor was added with; adminDown
	// is what gobgp was last told.
	createdDown, adminDown bool
	// allowed is the content of the peer's prefix sets.
	allowed map[netip.Prefix]struct{}
}

// pathState is a path in gobgp's global RIB.
type pathState struct {
	spec *pathSpec
	// markers are the ids of the peers whose withdraw markers the path
	// carries.
	markers []uint32
}

// New validates cfg and creates a Speaker. It starts nothing.
func New(cfg Config) (*Speaker, error) {
	if err := cfg.validate(); err != nil {
		return nil, fmt.Errorf("invalid BGP configuration: %w", err)
	}
	cfg.ListenAddresses = slices.Clone(cfg.ListenAddresses)
	s := &Speaker{
		cfg:       cfg,
		log:       cfg.Log,
		clock:     cfg.Clock,
		status:    newStatus(),
		events:    make(chan PeerEvent, eventBuffer),
		wantPeers: map[string]Peer{},
		wantPaths: map[netip.Prefix]*pathSpec{},
		down:      map[string]bool{},
		peers:     map[string]*peerState{},
		paths:     map[netip.Prefix]*pathState{},
		nextID:    1,
	}
	if s.clock == nil {
		s.clock = clock.RealClock{}
	}
	s.glog = newLogAdapter(cfg.Log.WithName("gobgp"), func(msg string, f gobgplog.Fields) {
		s.status.observe(msg, f, s.glog.redact)
	})
	s.gobgp = server.NewBgpServer(server.LoggerOption(s.glog))
	return s, nil
}

// Run starts gobgp, applies the peers and paths set so far and keeps
// gobgp running until ctx ends; then it closes every session (with a Cease
// NOTIFICATION) and returns nil. Errors applying the state set before Run
// are logged, and the next SetPeers or SetPaths retries. Run may be called
// once.
func (s *Speaker) Run(ctx context.Context) error {
	s.mu.Lock()
	if s.phase != phaseNew {
		s.mu.Unlock()
		return errors.New("BGP speaker: Run called twice")
	}
	s.log.Info("Starting BGP speaker", "routerID", s.cfg.RouterID, "asn", s.cfg.ASN, "listenPort", s.cfg.ListenPort)
	// Serve has no way to stop; see the package doc.
	go s.gobgp.Serve()
	err := s.start(ctx)
	if err != nil {
		s.phase = phaseStopped
		s.mu.Unlock()
		s.stop(ctx)
		return err
	}
	s.phase = phaseRunning
	s.running.Store(true)
	if err := s.syncPeers(ctx); err != nil {
		s.log.Error(err, "Applying BGP peers")
	}
	if err := s.syncPaths(ctx); err != nil {
		s.log.Error(err, "Applying BGP paths")
	}
	s.mu.Unlock()

	<-ctx.Done()
	s.running.Store(false)
	s.mu.Lock()
	s.phase = phaseStopped
	s.mu.Unlock()
	s.stop(ctx)
	return nil
}

func (s *Speaker) start(ctx context.Context) error {
	err := s.gobgp.StartBgp(ctx, &api.StartBgpRequest{Global: &api.Global{
		Asn:             s.cfg.ASN,
		RouterId:        s.cfg.RouterID.String(),
		ListenPort:      s.cfg.ListenPort,
		ListenAddresses: s.cfg.ListenAddresses,
	}})
	if err != nil {
		return fmt.Errorf("starting gobgp: %w", err)
	}
	if err := s.gobgp.WatchEvent(ctx, &api.WatchEventRequest{Peer: &api.WatchEventRequest_Peer{}}, s.onWatchEvent); err != nil {
		return fmt.Errorf("watching BGP peers: %w", err)
	}
	// gobgp v3 applies per-neighbor policies to route-server clients
	// only; every other neighbor gets the global policies.
	for _, p := range []struct {
		policy *api.Policy
		dir    api.PolicyDirection
	}{
		{apiImportPolicy(), api.PolicyDirection_IMPORT},
		{&api.Policy{Name: exportPolicyName}, api.PolicyDirection_EXPORT},
	} {
		if err := s.gobgp.AddPolicy(ctx, &api.AddPolicyRequest{Policy: p.policy}); err != nil {
			return fmt.Errorf("adding policy %s: %w", p.policy.Name, err)
		}
		err = s.gobgp.AddPolicyAssignment(ctx, &api.AddPolicyAssignmentRequest{Assignment: &api.PolicyAssignment{
			Name:          globalRIB,
			Direction:     p.dir,
			Policies:      []*api.Policy{{Name: p.policy.Name}},
			DefaultAction: api.RouteAction_REJECT,
		}})
		if err != nil {
			return fmt.Errorf("assigning policy %s: %w", p.policy.Name, err)
		}
	}
	return nil
}

func (s *Speaker) stop(ctx context.Context) {
	s.log.Info("Stopping BGP speaker")
	// gobgp ignores the context; the stop must not be cut short by ctx.
	if err := s.gobgp.StopBgp(context.WithoutCancel(ctx), &api.StopBgpRequest{}); err != nil {
		s.log.Error(err, "Stopping gobgp")
	}
}

// Running reports whether gobgp has started and Run has not returned.
func (s *Speaker) Running() bool { return s.running.Load() }

// Events returns the session up/down changes. The channel is buffered and
// never closed; when the reader falls behind, the oldest events are
// dropped, so gobgp is never blocked. Read Peers for the current state.
func (s *Speaker) Events() <-chan PeerEvent {
	return s.events
}

func (s *Speaker) onWatchEvent(r *api.WatchEventResponse) {
	addr, state, adminDown, peerAS, ok := peerEvent(r)
	if !ok {
		return
	}
	if state == "established" {
		if why := s.status.asMismatch(addr, peerAS); why != "" {
			// The session never counts as up: reset it (gobgp tries again
			// after its idle hold time, in case the router is fixed).
			s.status.refuse(addr, why)
			s.log.Info("BGP session refused", "address", addr, "reason", why)
			go func() {
				if err := s.gobgp.ResetPeer(context.Background(), &api.ResetPeerRequest{Address: addr.String(), Communication: "peer AS of the wrong kind (dynamicASN)"}); err != nil {
					s.log.V(1).Info("Resetting a refused session failed", "address", addr, "error", err.Error())
				}
			}()
			return
		}
	}
	ev, changed := s.status.transition(addr, state, adminDown, s.clock.Now())
	if !changed {
		return
	}
	if ev.Up {
		s.log.Info("BGP session established", "peer", ev.Name, "address", ev.Address)
	} else {
		s.log.Info("BGP session down", "peer", ev.Name, "address", ev.Address, "state", ev.State, "reason", ev.Reason)
	}
	// gobgp calls us from one goroutine per watch, so this is the only
	// sender and dropping the oldest event makes room.
	for {
		select {
		case s.events <- ev:
			return
		default:
		}
		select {
		case <-s.events:
		default:
		}
	}
}

// SetPeers replaces the set of peers. It adds new peers, deletes removed
// ones and changes only the peers whose configuration changed; see the
// package doc. A peer that cannot be configured (invalid, or a second peer
// with a name or address already in the list) is left out and the others
// are applied: the error is then a *SkippedPeersError naming each peer
// left out and why. Before Run, the peers are recorded and applied when
// Run starts.
func (s *Speaker) SetPeers(peers []Peer) error {
	want, skipped := validatePeers(peers)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.phase == phaseStopped {
		return ErrStopped
	}
	s.wantPeers = want
	for name := range s.down {
		if _, ok := want[name]; !ok {
			delete(s.down, name)
		}
	}
	s.updateSecrets()
	var err error
	if len(skipped) > 0 {
		err = &SkippedPeersError{Peers: skipped}
	}
	if s.phase != phaseRunning {
		return err
	}
	return errors.Join(err, s.syncPeers(context.Background()))
}

// SkippedPeersError names the peers SetPeers left out, with the reason;
// every other peer was applied.
type SkippedPeersError struct {
	// Peers maps a skipped peer's name to the reason.
	Peers map[string]error
}

func (e *SkippedPeersError) Error() string {
	names := slices.Sorted(maps.Keys(e.Peers))
	parts := make([]string, len(names))
	for i, n := range names {
		parts[i] = fmt.Sprintf("peer %q: %v", n, e.Peers[n])
	}
	return "BGP peers left out (the others are configured): " + strings.Join(parts, "; ")
}

// validatePeers returns the peers that can be configured, and the reason
// for each that cannot: the first peer of a name or address wins.
func validatePeers(peers []Peer) (map[string]Peer, map[string]error) {
	want := make(map[string]Peer, len(peers))
	skipped := map[string]error{}
	addrs := map[netip.Addr]string{}
	for _, p := range peers {
		if err := p.validate(); err != nil {
			skipped[p.Name] = err
			continue
		}
		if _, dup := want[p.Name]; dup {
			skipped[p.Name] = errors.New("a second peer of this name")
			continue
		}
		if other, dup := addrs[p.Address]; dup {
			skipped[p.Name] = fmt.Errorf("address %v is also peer %q's; one session per router address", p.Address, other)
			continue
		}
		want[p.Name], addrs[p.Address] = p, p.Name
	}
	return want, skipped
}

// updateSecrets tells the log adapter every password gobgp may know.
func (s *Speaker) updateSecrets() {
	var secrets []string
	for _, p := range s.wantPeers {
		secrets = append(secrets, p.Password)
	}
	for _, p := range s.peers {
		secrets = append(secrets, p.spec.Password)
	}
	s.glog.setSecrets(secrets)
}

// softFields clears the fields that gobgp's UpdatePeer changes without
// resetting the session.
func softFields(p Peer) Peer {
	p.HoldTime, p.KeepaliveTime, p.ConnectTime, p.EBGPMultiHop = 0, 0, 0, false
	return p
}

// syncPeers makes gobgp's neighbors match wantPeers. Callers hold mu.
func (s *Speaker) syncPeers(ctx context.Context) error {
	var errs []error
	// Deletions first, to free addresses for re-created peers.
	for _, name := range slices.Sorted(maps.Keys(s.peers)) {
		cur := s.peers[name]
		want, ok := s.wantPeers[name]
		if ok && softFields(want) == softFields(cur.spec) {
			continue
		}
		if err := s.deletePeer(ctx, cur); err != nil {
			errs = append(errs, err)
			continue
		}
		delete(s.peers, name)
	}
	for _, name := range slices.Sorted(maps.Keys(s.wantPeers)) {
		want := s.wantPeers[name]
		cur, ok := s.peers[name]
		switch {
		case !ok:
			if err := s.addPeer(ctx, want); err != nil {
				errs = append(errs, err)
			}
		case want != cur.spec:
			s.log.Info("Updating BGP peer", "peer", name, "address", want.Address)
			_, err := s.gobgp.UpdatePeer(ctx, &api.UpdatePeerRequest{Peer: apiPeer(want, s.cfg.ASN, cur.createdDown)})
			if err != nil {
				errs = append(errs, fmt.Errorf("updating peer %q: %w", name, err))
				continue
			}
			cur.spec = want
			fallthrough
		default:
			if err := s.applyAdminState(ctx, s.peers[name]); err != nil {
				errs = append(errs, err)
			}
		}
	}
	byAddr := make(map[netip.Addr]string, len(s.peers))
	for name, p := range s.peers {
		byAddr[p.spec.Address] = name
	}
	s.status.setPeers(byAddr)
	s.updateSecrets()
	return errors.Join(errs...)
}

// addPeer creates the peer's policy, with the prefixes of the current
// paths that go to it, and then the neighbor.
func (s *Speaker) addPeer(ctx context.Context, p Peer) error {
	for _, other := range s.peers {
		if other.spec.Address == p.Address {
			return fmt.Errorf("adding peer %q: address %v is still in use by peer %q", p.Name, p.Address, other.spec.Name)
		}
	}
	st := &peerState{spec: p, id: s.nextID, allowed: map[netip.Prefix]struct{}{}}
	s.nextID++
	for prefix, path := range s.paths {
		if path.spec.allows(p.Name) {
			st.allowed[prefix] = struct{}{}
		}
	}
	log := s.log.WithValues("peer", p.Name, "address", p.Address)
	log.Info("Adding BGP peer", "peerASN", p.PeerASN, "localASN", p.localASN(s.cfg.ASN), "prefixes", len(st.allowed))
	if err := s.addPolicy(ctx, st); err != nil {
		s.deletePolicy(ctx, log, st)
		return fmt.Errorf("adding peer %q: %w", p.Name, err)
	}
	down := s.down[p.Name]
	s.status.configure(p.Address, p.Name, p.DynamicASN, p.localASN(s.cfg.ASN))
	if err := s.gobgp.AddPeer(ctx, &api.AddPeerRequest{Peer: apiPeer(p, s.cfg.ASN, down)}); err != nil {
		s.deletePolicy(ctx, log, st)
		return fmt.Errorf("adding peer %q: %w", p.Name, err)
	}
	st.createdDown, st.adminDown = down, down
	s.peers[p.Name] = st
	return nil
}

// addPolicy creates the peer's defined sets and its statements in the
// global export policy.
func (s *Speaker) addPolicy(ctx context.Context, st *peerState) error {
	v4, v6 := splitFamilies(slices.Collect(maps.Keys(st.allowed)))
	for _, set := range peerSets(st.id, st.spec.Address, v4, v6) {
		if err := s.gobgp.AddDefinedSet(ctx, &api.AddDefinedSetRequest{DefinedSet: set}); err != nil {
			return fmt.Errorf("adding defined set %s: %w", set.Name, err)
		}
	}
	policy := &api.Policy{Name: exportPolicyName, Statements: apiPeerStatements(st.id)}
	if err := s.gobgp.AddPolicy(ctx, &api.AddPolicyRequest{Policy: policy}); err != nil {
		return fmt.Errorf("adding export policy statements: %w", err)
	}
	return nil
}

// deletePeer deletes the neighbor (gobgp sends it a Cease NOTIFICATION)
// and then its policy.
func (s *Speaker) deletePeer(ctx context.Context, st *peerState) error {
	log := s.log.WithValues("peer", st.spec.Name, "address", st.spec.Address)
	log.Info("Deleting BGP peer")
	s.status.unconfigure(st.spec.Address)
	if err := s.gobgp.DeletePeer(ctx, &api.DeletePeerRequest{Address: st.spec.Address.String()}); err != nil {
		return fmt.Errorf("deleting peer %q: %w", st.spec.Name, err)
	}
	s.deletePolicy(ctx, log, st)
	return nil
}

// deletePolicy deletes what addPolicy created. Failures only leak unused
// objects, whose names are never reused, so they are logged.
func (s *Speaker) deletePolicy(ctx context.Context, log logr.Logger, st *peerState) {
	stmts := apiPeerStatements(st.id)
	names := make([]*api.Statement, 0, len(stmts))
	for _, stmt := range stmts {
		names = append(names, &api.Statement{Name: stmt.Name})
	}
	err := s.gobgp.DeletePolicy(ctx, &api.DeletePolicyRequest{Policy: &api.Policy{Name: exportPolicyName, Statements: names}})
	if err != nil {
		log.V(1).Info("Could not remove statements from the export policy", "error", err.Error())
	}
	// Removing statements from a policy leaves them defined.
	for _, stmt := range names {
		if err := s.gobgp.DeleteStatement(ctx, &api.DeleteStatementRequest{Statement: stmt, All: true}); err != nil {
			log.V(1).Info("Could not delete statement", "statement", stmt.Name, "error", err.Error())
		}
	}
	for _, set := range peerSets(st.id, st.spec.Address, nil, nil) {
		if err := s.gobgp.DeleteDefinedSet(ctx, &api.DeleteDefinedSetRequest{DefinedSet: set, All: true}); err != nil {
			log.V(1).Info("Could not delete defined set", "definedSet", set.Name, "error", err.Error())
		}
	}
}

// SetPeerDown shuts the session with the named peer down administratively
// (gobgp sends a Cease NOTIFICATION and stops connecting) or lets it come
// up again. The speaker calls it when BFD finds the peer unreachable. The
// state is kept while the peer stays configured, also across changes that
// re-create it; it is dropped when SetPeers removes the peer.
func (s *Speaker) SetPeerDown(name string, down bool) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.phase == phaseStopped {
		return ErrStopped
	}
	if _, ok := s.wantPeers[name]; !ok {
		return fmt.Errorf("BGP peer %q is not configured", name)
	}
	s.down[name] = down
	st, ok := s.peers[name]
	if s.phase != phaseRunning || !ok {
		return nil
	}
	return s.applyAdminState(context.Background(), st)
}

func (s *Speaker) applyAdminState(ctx context.Context, st *peerState) error {
	down := s.down[st.spec.Name]
	if st.adminDown == down {
		return nil
	}
	addr := st.spec.Address.String()
	if !down {
		// Re-created rather than enabled: gobgp holds an enabled neighbor
		// in Idle for its idle hold time (5 s) before it connects, a new
		// one connects within 1–2 s — the routes come back that much
		// sooner after BFD finds the path again.
		s.log.Info("Enabling BGP session", "peer", st.spec.Name, "address", st.spec.Address)
		if err := s.deletePeer(ctx, st); err != nil {
			return fmt.Errorf("setting peer %q up: %w", st.spec.Name, err)
		}
		delete(s.peers, st.spec.Name)
		return s.addPeer(ctx, st.spec)
	}
	s.log.Info("Shutting BGP session down", "peer", st.spec.Name, "address", st.spec.Address)
	if err := s.gobgp.DisablePeer(ctx, &api.DisablePeerRequest{Address: addr, Communication: disableCommunication}); err != nil {
		return fmt.Errorf("setting peer %q down: %w", st.spec.Name, err)
	}
	st.adminDown = true
	return nil
}

// SetPaths replaces the set of announced paths. It announces new and
// changed prefixes, withdraws removed ones and changes per-peer
// restrictions, touching nothing else; see the package doc. Paths with the
// same prefix are merged. An invalid list changes nothing. Before Run, the
// paths are recorded and applied when Run starts.
func (s *Speaker) SetPaths(paths []Path) error {
	want, err := mergePaths(paths)
	if err != nil {
		return fmt.Errorf("invalid BGP paths: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.phase == phaseStopped {
		return ErrStopped
	}
	s.wantPaths = want
	if s.phase != phaseRunning {
		return nil
	}
	return s.syncPaths(context.Background())
}

// syncPaths makes gobgp's global RIB and the peers' prefix sets match
// wantPaths. Callers hold mu. Every step records what it did, so after a
// failure the next call continues from there.
func (s *Speaker) syncPaths(ctx context.Context) error {
	var errs []error
	names := slices.Sorted(maps.Keys(s.peers))
	want := s.wantPaths

	// What each peer's sets must hold, and the changes per prefix.
	gained := map[netip.Prefix][]*peerState{}
	lost := map[netip.Prefix][]*peerState{}
	add := map[string][]netip.Prefix{}
	remove := map[string][]netip.Prefix{}
	for _, name := range names {
		st := s.peers[name]
		for prefix, spec := range want {
			if _, ok := st.allowed[prefix]; !ok && spec.allows(name) {
				gained[prefix] = append(gained[prefix], st)
				add[name] = append(add[name], prefix)
			}
		}
		for prefix := range st.allowed {
			if spec, ok := want[prefix]; !ok || !spec.allows(name) {
				lost[prefix] = append(lost[prefix], st)
				remove[name] = append(remove[name], prefix)
			}
		}
	}

	// 1. Allow new prefixes before their paths are added.
	for _, name := range names {
		if err := s.changeSets(ctx, s.peers[name], add[name], true); err != nil {
			errs = append(errs, err)
		}
	}

	// 2. Announce new and changed paths; nudge paths that lose peers.
	var unmark []netip.Prefix
	softReset := map[string]*peerState{}
	for _, prefix := range slices.SortedFunc(maps.Keys(want), comparePrefixes) {
		spec, cur := want[prefix], s.paths[prefix]
		var markers []uint32
		if cur != nil {
			for _, st := range lost[prefix] {
				markers = append(markers, st.id)
			}
			slices.Sort(markers)
		}
		switch {
		case cur == nil || len(markers) > 0 || len(cur.markers) > 0 || !cur.spec.attrs.equal(spec.attrs):
			if err := s.announce(ctx, spec, markers); err != nil {
				errs = append(errs, err)
				continue
			}
			s.paths[prefix] = &pathState{spec: spec, markers: markers}
			if len(markers) > 0 {
				unmark = append(unmark, prefix)
			}
		default:
			// Same attributes: only peers that gained the prefix need it.
			for _, st := range gained[prefix] {
				if _, ok := st.allowed[prefix]; ok {
					softReset[st.spec.Name] = st
				}
			}
			cur.spec = spec
		}
	}

	// 3. Withdraw removed paths.
	for _, prefix := range slices.SortedFunc(maps.Keys(s.paths), comparePrefixes) {
		if _, ok := want[prefix]; ok {
			continue
		}
		if err := s.withdraw(ctx, prefix, s.paths[prefix]); err != nil {
			errs = append(errs, err)
			continue
		}
		delete(s.paths, prefix)
	}

	// 4. Disallow prefixes that peers lost. A path whose set change failed
	// keeps its markers, so the peer is not sent it again.
	stuck := map[netip.Prefix]bool{}
	for _, name := range names {
		if err := s.changeSets(ctx, s.peers[name], remove[name], false); err != nil {
			errs = append(errs, err)
			for _, prefix := range remove[name] {
				stuck[prefix] = true
			}
		}
	}

	// 5. Drop the markers.
	for _, prefix := range unmark {
		if stuck[prefix] {
			continue
		}
		cur := s.paths[prefix]
		if err := s.announce(ctx, cur.spec, nil); err != nil {
			errs = append(errs, err)
			continue
		}
		cur.markers = nil
	}

	// 6. Send unchanged paths to the peers that gained them.
	for _, name := range slices.Sorted(maps.Keys(softReset)) {
		st := softReset[name]
		s.log.V(1).Info("Resending paths to BGP peer", "peer", name, "address", st.spec.Address)
		err := s.gobgp.ResetPeer(ctx, &api.ResetPeerRequest{Address: st.spec.Address.String(), Soft: true, Direction: api.ResetPeerRequest_OUT})
		if err != nil {
			errs = append(errs, fmt.Errorf("soft reset of peer %q: %w", name, err))
		}
	}
	return errors.Join(errs...)
}

func splitFamilies(prefixes []netip.Prefix) (v4, v6 []netip.Prefix) {
	slices.SortFunc(prefixes, comparePrefixes)
	for _, p := range prefixes {
		if p.Addr().Is4() {
			v4 = append(v4, p)
		} else {
			v6 = append(v6, p)
		}
	}
	return v4, v6
}

// changeSets adds prefixes to, or removes them from, the peer's prefix
// sets, and records what succeeded.
func (s *Speaker) changeSets(ctx context.Context, st *peerState, prefixes []netip.Prefix, add bool) error {
	v4, v6 := splitFamilies(prefixes)
	var errs []error
	for _, set := range []struct {
		v6       bool
		prefixes []netip.Prefix
	}{{false, v4}, {true, v6}} {
		if len(set.prefixes) == 0 {
			continue
		}
		ds := apiPrefixSet(prefixSetName(st.id, set.v6), set.prefixes)
		var err error
		if add {
			err = s.gobgp.AddDefinedSet(ctx, &api.AddDefinedSetRequest{DefinedSet: ds})
		} else {
			err = s.gobgp.DeleteDefinedSet(ctx, &api.DeleteDefinedSetRequest{DefinedSet: ds})
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("changing prefixes allowed to peer %q: %w", st.spec.Name, err))
			continue
		}
		for _, p := range set.prefixes {
			if add {
				st.allowed[p] = struct{}{}
			} else {
				delete(st.allowed, p)
			}
		}
	}
	return errors.Join(errs...)
}

func (s *Speaker) announce(ctx context.Context, spec *pathSpec, markers []uint32) error {
	p, err := apiPath(spec.prefix, spec.attrs, markers, s.clock.Now())
	if err != nil {
		return err
	}
	if len(markers) == 0 {
		s.log.V(1).Info("Announcing prefix", "prefix", spec.prefix)
	} else {
		s.log.V(1).Info("Withdrawing prefix from some peers", "prefix", spec.prefix, "peerIDs", markers)
	}
	if _, err := s.gobgp.AddPath(ctx, &api.AddPathRequest{TableType: api.TableType_GLOBAL, Path: p}); err != nil {
		return fmt.Errorf("announcing %v: %w", spec.prefix, err)
	}
	return nil
}

func (s *Speaker) withdraw(ctx context.Context, prefix netip.Prefix, cur *pathState) error {
	p, err := apiPath(prefix, cur.spec.attrs, cur.markers, s.clock.Now())
	if err != nil {
		return err
	}
	s.log.V(1).Info("Withdrawing prefix", "prefix", prefix)
	if err := s.gobgp.DeletePath(ctx, &api.DeletePathRequest{TableType: api.TableType_GLOBAL, Path: p}); err != nil {
		return fmt.Errorf("withdrawing %v: %w", prefix, err)
	}
	return nil
}

// Peers reports the configured peers' sessions, sorted by name. Before Run
// has applied them it returns none.
func (s *Speaker) Peers() []PeerStatus {
	s.mu.Lock()
	names := make(map[netip.Addr]string, len(s.peers))
	for name, st := range s.peers {
		names[st.spec.Address] = name
	}
	running := s.phase == phaseRunning
	s.mu.Unlock()
	if !running {
		return nil
	}
	var out []PeerStatus
	err := s.gobgp.ListPeer(context.Background(), &api.ListPeerRequest{EnableAdvertised: true}, func(p *api.Peer) {
		addr, err := netip.ParseAddr(p.GetConf().GetNeighborAddress())
		if err != nil {
			return
		}
		addr = addr.Unmap()
		name, ok := names[addr]
		if !ok {
			return
		}
		out = append(out, peerStatus(name, addr, p, s.status.lastError(addr)))
	})
	if err != nil {
		s.log.Error(err, "Listing BGP peers")
	}
	slices.SortFunc(out, func(a, b PeerStatus) int { return cmp.Compare(a.Name, b.Name) })
	return out
}

// peerStatus converts gobgp's view of one neighbor. It never copies the
// password that gobgp returns with it.
func peerStatus(name string, addr netip.Addr, p *api.Peer, lastError string) PeerStatus {
	st := p.GetState()
	out := PeerStatus{
		Name:      name,
		Address:   addr,
		State:     stateName(st.GetSessionState()),
		Up:        st.GetSessionState() == api.PeerState_ESTABLISHED,
		AdminDown: st.GetAdminState() == api.PeerState_DOWN,
		LastError: lastError,
	}
	out.UpdatesSent = st.GetMessages().GetSent().GetUpdate()
	if !out.Up {
		return out
	}
	if up := p.GetTimers().GetState().GetUptime(); up != nil && up.GetSeconds() > 0 {
		out.Since = up.AsTime()
	}
	// gobgp counts an End-of-RIB marker per family in the advertised
	// count when graceful restart was negotiated.
	eor := 0
	if p.GetGracefulRestart().GetEnabled() && remoteHasGracefulRestart(p) {
		eor = 1
	}
	for _, af := range p.GetAfiSafis() {
		if n := int(af.GetState().GetAdvertised()); n > 0 {
			out.PrefixesAdvertised += max(n-eor, 0)
		}
	}
	return out
}

func remoteHasGracefulRestart(p *api.Peer) bool {
	for _, c := range p.GetState().GetRemoteCap() {
		if c.MessageIs(&api.GracefulRestartCapability{}) {
			return true
		}
	}
	return false
}
