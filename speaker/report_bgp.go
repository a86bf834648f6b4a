package speaker

import (
	"context"
	"fmt"
	"maps"
	"math"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	"k8s.io/client-go/util/workqueue"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	lbv1 "github.com/lbstack/lbstack/api/v1alpha1"
	"github.com/lbstack/lbstack/internal/config"
	"github.com/lbstack/lbstack/speaker/bgp"
	"github.com/lbstack/lbstack/speaker/dataplane"
	"github.com/lbstack/lbstack/speaker/election"
	"github.com/lbstack/lbstack/speaker/plan"
)

// Event reasons on BGPPeers.
const (
	ReasonSessionUp   = "SessionUp"
	ReasonSessionDown = "SessionDown"
	// ReasonPeerSkipped: the node left the peer out (its status entry is
	// NotConfigured and says why).
	ReasonPeerSkipped = "PeerSkipped"
)

// bgpKey is one object the BGP reporter writes: a BGPPeer's status entry
// of this node, or the bgp entries of a Service's ServiceAnnouncement.
type bgpKey struct {
	peer bool
	types.NamespacedName
}

// BGPView is what the writer of a Service's bgp entries needs to know of
// every node, as of one watcher pass.
type BGPView struct {
	Config   *config.Config
	Services []plan.ServiceState
	Nodes    []plan.NodeState
	// Established lists, by node, the BGPPeers whose status entry of that
	// node says Established.
	Established map[string]map[string]bool
}

// establishedSessions reads BGPView.Established from the peers' statuses.
func establishedSessions(peers []lbv1.BGPPeer) map[string]map[string]bool {
	out := map[string]map[string]bool{}
	for i := range peers {
		for _, s := range peers[i].Status.Nodes {
			if s.State != lbv1.BGPSessionEstablished {
				continue
			}
			if out[s.Node] == nil {
				out[s.Node] = map[string]bool{}
			}
			out[s.Node][peers[i].Name] = true
		}
	}
	return out
}

// BGPReporter writes this node's view of BGP: its session with each peer
// in the BGPPeer's status.nodes (server-side apply with a field manager
// per node, so the entries of all nodes add up), and the bgp entries of
// the ServiceAnnouncements it is the writer of.
//
// One speaker writes all bgp entries of a Service — one per advertising
// node, with the node's established peers its paths go to — so writes
// grow with Services, not nodes × Services. The writer is the first of
// the live speakers in the rendezvous order of the Service's
// namespace/name (election.NameOwner): each speaker computes every node's
// plan for the Services it writes (the plan is pure), takes the other
// nodes' sessions from their BGPPeer status entries and its own from its
// driver, and leaves out nodes whose speaker is not live. All writers
// share one field manager, so a writer's apply replaces what an earlier
// writer of the Service wrote. A speaker that has joined none of the
// speakers it expects (Isolated) writes no Service entries: it would
// otherwise remove every other node's.
type BGPReporter struct {
	Client   client.Client
	Recorder events.EventRecorder
	Node     string
	Clock    clock.Clock
	// Reader lists ServiceAnnouncements when the writers change (the
	// speaker does not cache them). Nil: Client.
	Reader client.Reader
	// Live returns the names of the live speakers (nil: this node alone).
	Live func() []string
	// Isolated reports whether this speaker joined none of the speakers
	// it expects (nil: never).
	Isolated func() bool
	// MinInterval is the least time between two computations of the
	// Service entries (0: 1 s); a computation that takes long spaces the
	// next ten times its duration away.
	MinInterval time.Duration

	events eventQueue
	// writes counts the ServiceAnnouncement writes (a metric).
	writes atomic.Uint64

	mu       sync.Mutex
	queue    workqueue.TypedRateLimitingInterface[bgpKey]
	kick     chan struct{}
	sessions map[string]lbv1.BGPNodeSession
	// established are this node's Established peers (from its driver).
	established map[string]bool
	view        *BGPView
	// live is the live set the Service writers were last chosen from.
	live []string
	// desired and written are the bgp entries of the Services this node
	// writes; written also holds the entries found when it became their
	// writer (so a node's since survives a change of writer). exists
	// tells which ServiceAnnouncements exist.
	desired map[types.NamespacedName][]lbv1.AnnouncingNode
	written map[types.NamespacedName][]lbv1.AnnouncingNode
	exists  map[types.NamespacedName]bool
}

func (r *BGPReporter) init() {
	if r.queue == nil {
		r.queue = workqueue.NewTypedRateLimitingQueue(workqueue.NewTypedItemExponentialFailureRateLimiter[bgpKey](100*time.Millisecond, maxReportRetryBackoffTime))
		r.kick = make(chan struct{}, 1)
		r.sessions, r.established = map[string]lbv1.BGPNodeSession{}, map[string]bool{}
		r.desired, r.written = map[types.NamespacedName][]lbv1.AnnouncingNode{}, map[types.NamespacedName][]lbv1.AnnouncingNode{}
		r.exists = map[types.NamespacedName]bool{}
	}
}

// bgpServiceFieldOwner is the field manager of every writer of the bgp
// entries of ServiceAnnouncements.
const bgpServiceFieldOwner = client.FieldOwner("lbstack-speaker-bgp")

func (r *BGPReporter) fieldOwner() client.FieldOwner {
	return client.FieldOwner("lbstack-speaker-bgp-" + r.Node)
}

// notify asks the Run loop to recompute the Service entries. The caller
// holds r.mu.
func (r *BGPReporter) notify() {
	select {
	case r.kick <- struct{}{}:
	default:
	}
}

// View records the objects of a watcher pass.
func (r *BGPReporter) View(v BGPView) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.init()
	r.view = &v
	r.notify()
}

// Status records the sessions and the plan in force.
func (r *BGPReporter) Status(st dataplane.BGPStatus) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.init()
	now := r.Clock.Now()
	established := map[string]bool{}
	for _, ps := range st.Sessions {
		name := ps.Name
		s := lbv1.BGPNodeSession{Node: r.Node, State: sessionState(ps.State), BFDState: ps.BFDState,
			PrefixesAdvertised: int32(min(ps.PrefixesAdvertised, math.MaxInt32)), LastError: ps.LastError}
		if s.State == lbv1.BGPSessionEstablished {
			established[name] = true
		}
		r.setSession(name, s, now)
	}
	// Peers this node left out: an entry that says so and why.
	for name, why := range st.Plan.Skipped {
		if prev, ok := r.sessions[name]; !ok || prev.State != lbv1.BGPSessionNotConfigured || prev.LastError != why {
			r.skippedEvent(name, why)
		}
		r.setSession(name, lbv1.BGPNodeSession{Node: r.Node, State: lbv1.BGPSessionNotConfigured, LastError: why}, now)
	}
	// A peer this node no longer has: its entry goes.
	for name := range r.sessions {
		_, skipped := st.Plan.Skipped[name]
		if !skipped && !slices.ContainsFunc(st.Sessions, func(ps dataplane.PeerSession) bool { return ps.Name == name }) {
			delete(r.sessions, name)
			r.queue.Add(bgpKey{peer: true, NamespacedName: types.NamespacedName{Name: name}})
		}
	}
	if !maps.Equal(established, r.established) {
		r.established = established
		r.notify()
	}
}

// setSession records this node's entry for a peer, keeping the time of
// the last state change, and queues its write when it changed. The
// caller holds r.mu.
func (r *BGPReporter) setSession(name string, s lbv1.BGPNodeSession, now time.Time) {
	prev, ok := r.sessions[name]
	s.LastTransitionTime = prev.LastTransitionTime
	if !ok || prev.State != s.State {
		s.LastTransitionTime = metav1.NewTime(now.Truncate(time.Second))
	}
	if !ok || !equality.Semantic.DeepEqual(prev, s) {
		r.sessions[name] = s
		r.queue.Add(bgpKey{peer: true, NamespacedName: types.NamespacedName{Name: name}})
	}
}

// sessionState maps gobgp's lower-case FSM state to the API's.
func sessionState(s string) lbv1.BGPSessionState {
	for _, st := range []lbv1.BGPSessionState{lbv1.BGPSessionIdle, lbv1.BGPSessionConnect, lbv1.BGPSessionActive,
		lbv1.BGPSessionOpenSent, lbv1.BGPSessionOpenConfirm, lbv1.BGPSessionEstablished} {
		if strings.EqualFold(string(st), s) {
			return st
		}
	}
	return lbv1.BGPSessionUnknown
}

func mergeSorted(a, b []string) []string {
	out := append(slices.Clone(a), b...)
	slices.Sort(out)
	return slices.Compact(out)
}

// skippedEvent emits PeerSkipped on a BGPPeer this node leaves out.
func (r *BGPReporter) skippedEvent(name, why string) {
	r.events.add(func(ctx context.Context) {
		var p lbv1.BGPPeer
		if err := r.Client.Get(ctx, types.NamespacedName{Name: name}, &p); err != nil {
			return
		}
		r.Recorder.Eventf(&p, nil, corev1.EventTypeWarning, ReasonPeerSkipped, "Configure", "Not configured on node %s: %s", r.Node, why)
	})
}

// Event emits a session up/down event on the BGPPeer.
func (r *BGPReporter) Event(ev bgp.PeerEvent) {
	r.events.add(func(ctx context.Context) {
		var p lbv1.BGPPeer
		if err := r.Client.Get(ctx, types.NamespacedName{Name: ev.Name}, &p); err != nil {
			return
		}
		if ev.Up {
			r.Recorder.Eventf(&p, nil, corev1.EventTypeNormal, ReasonSessionUp, "Session", "Node %s: session with %s established", r.Node, ev.Address)
		} else {
			r.Recorder.Eventf(&p, nil, corev1.EventTypeWarning, ReasonSessionDown, "Session", "Node %s: session with %s down (%s): %s", r.Node, ev.Address, ev.State, ev.Reason)
		}
	})
}

// Run writes until ctx ends.
func (r *BGPReporter) Run(ctx context.Context) error {
	r.mu.Lock()
	r.init()
	q, kick := r.queue, r.kick
	r.mu.Unlock()
	var wg sync.WaitGroup
	wg.Go(func() { r.events.run(ctx) })
	wg.Go(func() { r.serviceLoop(ctx, kick) })
	runQueue(ctx, q, r.write, "Writing BGP status; will retry")
	wg.Wait()
	return nil
}

// serviceLoop recomputes the Service entries when the view, this node's
// sessions or (checked every second) the live speakers change, at most
// once per MinInterval.
func (r *BGPReporter) serviceLoop(ctx context.Context, kick <-chan struct{}) {
	every := r.MinInterval
	if every <= 0 {
		every = time.Second
	}
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-kick:
		case <-tick.C:
			r.mu.Lock()
			same := slices.Equal(r.liveNames(), r.live)
			r.mu.Unlock()
			if same {
				continue
			}
		}
		start := time.Now()
		if err := r.services(ctx); err != nil {
			ctrl.LoggerFrom(ctx).Error(err, "Reading ServiceAnnouncements; will retry")
			r.mu.Lock()
			r.live = nil // the next tick tries again
			r.mu.Unlock()
		}
		// A status is a report: at most a tenth of a core goes to it.
		select {
		case <-ctx.Done():
			return
		case <-time.After(max(every, 10*time.Since(start))):
		}
	}
}

// liveNames returns the sorted live speakers, this node included.
func (r *BGPReporter) liveNames() []string {
	var live []string
	if r.Live != nil {
		live = r.Live()
	}
	if !slices.Contains(live, r.Node) {
		live = append(live, r.Node)
	}
	slices.Sort(live)
	return slices.Compact(live)
}

// services computes the bgp entries of the Services this node writes and
// queues the writes of those that changed.
func (r *BGPReporter) services(ctx context.Context) error {
	if r.Isolated != nil && r.Isolated() {
		r.mu.Lock()
		r.live = nil // recompute once it has joined
		r.mu.Unlock()
		return nil
	}
	r.mu.Lock()
	view, live := r.view, r.liveNames()
	r.mu.Unlock()
	if view == nil || view.Config == nil {
		return nil
	}
	mine := func(k types.NamespacedName) bool { return election.NameOwner(k.String(), live) == r.Node }
	r.mu.Lock()
	reseed := !slices.Equal(live, r.live)
	r.mu.Unlock()
	var found map[types.NamespacedName][]lbv1.AnnouncingNode
	if reseed {
		// The writers changed: what the Services this node now writes
		// hold is read once, in pages, for all of them.
		var err error
		if found, err = r.readEntries(ctx, mine); err != nil {
			return err
		}
	}

	var services []plan.ServiceState
	for _, s := range view.Services {
		if mine(s.Key) {
			services = append(services, s)
		}
	}
	isLive := map[string]bool{}
	for _, n := range live {
		isLive[n] = true
	}
	now := metav1.NewTime(r.Clock.Now().Truncate(time.Second))
	want := map[types.NamespacedName][]lbv1.AnnouncingNode{}
	r.mu.Lock()
	ownEstablished := r.established
	r.mu.Unlock()
	for _, n := range view.Nodes {
		if !isLive[n.Name] {
			continue // a node whose speaker is gone advertises nothing (its sessions end)
		}
		established := view.Established[n.Name]
		if n.Name == r.Node {
			established = ownEstablished
		}
		p := plan.BGP(view.Config, services, view.Nodes, n.Name)
		var all []string
		for _, peer := range p.Peers {
			if established[peer.Name] {
				all = append(all, peer.Name)
			}
		}
		slices.Sort(all)
		entries := map[types.NamespacedName]*lbv1.AnnouncingNode{}
		for _, path := range p.Paths {
			peers := all
			if len(path.Peers) > 0 {
				peers = nil
				for _, name := range path.Peers {
					if slices.Contains(all, name) {
						peers = append(peers, name)
					}
				}
			}
			for _, ref := range p.Services[path.Prefix] {
				svc := types.NamespacedName(ref)
				e := entries[svc]
				if e == nil {
					e = &lbv1.AnnouncingNode{Node: n.Name, Protocol: lbv1.ProtocolBGP, Since: now}
					entries[svc] = e
				}
				e.Peers = mergeSorted(e.Peers, peers)
			}
		}
		for svc, e := range entries {
			want[svc] = append(want[svc], *e)
		}
	}

	r.mu.Lock()
	defer r.mu.Unlock()
	if reseed {
		r.live = live
		for svc := range r.written {
			if !mine(svc) {
				// Another node writes it now; this one forgets it (an
				// apply here would remove that writer's entries).
				delete(r.written, svc)
				delete(r.desired, svc)
				delete(r.exists, svc)
			}
		}
		for svc, entries := range found {
			r.written[svc], r.exists[svc] = entries, true
		}
	}
	for svc, entries := range want {
		slices.SortFunc(entries, func(a, b lbv1.AnnouncingNode) int { return strings.Compare(a.Node, b.Node) })
		// A node keeps the since of the entry it had (or was to have).
		for i := range entries {
			for _, had := range [][]lbv1.AnnouncingNode{r.written[svc], r.desired[svc]} {
				if j := slices.IndexFunc(had, func(e lbv1.AnnouncingNode) bool { return e.Node == entries[i].Node }); j >= 0 {
					entries[i].Since = had[j].Since
					break
				}
			}
		}
		r.setDesired(svc, entries)
	}
	for svc := range r.written {
		if _, ok := want[svc]; !ok {
			r.setDesired(svc, nil) // an empty list removes the entries
		}
	}
	return nil
}

// setDesired records the entries svc should have and queues its write
// when they differ from what it has. The caller holds r.mu.
func (r *BGPReporter) setDesired(svc types.NamespacedName, entries []lbv1.AnnouncingNode) {
	if prev, ok := r.desired[svc]; ok && equality.Semantic.DeepEqual(prev, entries) {
		return
	}
	r.desired[svc] = entries
	if written, ok := r.written[svc]; !ok && len(entries) == 0 || ok && equality.Semantic.DeepEqual(written, entries) {
		return
	}
	r.queue.Add(bgpKey{NamespacedName: svc})
}

// readEntries lists the ServiceAnnouncements (in pages) and returns the
// bgp entries of those the mine function selects, an empty list for those
// without, so the caller knows they exist.
func (r *BGPReporter) readEntries(ctx context.Context, mine func(types.NamespacedName) bool) (map[types.NamespacedName][]lbv1.AnnouncingNode, error) {
	reader := r.Reader
	if reader == nil {
		reader = r.Client
	}
	out := map[types.NamespacedName][]lbv1.AnnouncingNode{}
	cont := ""
	for {
		var list lbv1.ServiceAnnouncementList
		if err := reader.List(ctx, &list, client.Limit(500), client.Continue(cont)); err != nil {
			return nil, err
		}
		for i := range list.Items {
			a := &list.Items[i]
			key := client.ObjectKeyFromObject(a)
			if !mine(key) {
				continue
			}
			entries := []lbv1.AnnouncingNode{}
			for _, e := range a.Status.Nodes {
				if e.Protocol == lbv1.ProtocolBGP {
					entries = append(entries, e)
				}
			}
			out[key] = entries
		}
		if cont = list.Continue; cont == "" {
			return out, nil
		}
	}
}

func (r *BGPReporter) write(ctx context.Context, key bgpKey) error {
	if key.peer {
		return r.writePeer(ctx, key.Name)
	}
	r.mu.Lock()
	entries, ok := r.desired[key.NamespacedName]
	written, wrote := r.written[key.NamespacedName]
	exists := r.exists[key.NamespacedName]
	r.mu.Unlock()
	if !ok || wrote && equality.Semantic.DeepEqual(entries, written) {
		return nil // no longer this node's to write, or written already
	}
	var svc corev1.Service
	if err := r.Client.Get(ctx, key.NamespacedName, &svc); err != nil {
		if apierrors.IsNotFound(err) {
			r.forget(key.NamespacedName)
			return nil
		}
		return err
	}
	if !exists {
		if _, err := ensureAnnouncement(ctx, r.Client, key.NamespacedName); err != nil {
			return err
		}
	}
	// No entry: applying an empty list removes the writers' (an empty
	// status would be sent as null, which the API server refuses).
	nodes := []any{}
	for i := range entries {
		body, err := runtime.DefaultUnstructuredConverter.ToUnstructured(&entries[i])
		if err != nil {
			return err
		}
		nodes = append(nodes, body)
	}
	status := map[string]any{"nodes": nodes}
	if len(entries) > 0 {
		ips := []any{}
		for _, ip := range ingressIPs(&svc) {
			ips = append(ips, ip)
		}
		status["service"], status["protocol"], status["ips"] = svc.Name, string(lbv1.ProtocolBGP), ips
	}
	u := statusApply("ServiceAnnouncement", key.NamespacedName, status)
	r.writes.Add(1)
	if err := r.Client.Status().Apply(ctx, client.ApplyConfigurationFromUnstructured(u), bgpServiceFieldOwner, client.ForceOwnership); err != nil {
		if apierrors.IsNotFound(err) {
			// Gone with its Service, or not made yet: create it next time.
			r.mu.Lock()
			delete(r.exists, key.NamespacedName)
			r.mu.Unlock()
		}
		return fmt.Errorf("applying ServiceAnnouncement status: %w", err)
	}
	r.mu.Lock()
	if cur, ok := r.desired[key.NamespacedName]; ok {
		r.written[key.NamespacedName], r.exists[key.NamespacedName] = entries, true
		if !equality.Semantic.DeepEqual(cur, entries) {
			r.queue.Add(key) // changed meanwhile
		}
	}
	r.mu.Unlock()
	return nil
}

// forget drops a Service that is gone.
func (r *BGPReporter) forget(svc types.NamespacedName) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.desired, svc)
	delete(r.written, svc)
	delete(r.exists, svc)
}

// writePeer applies this node's status entry of a BGPPeer.
func (r *BGPReporter) writePeer(ctx context.Context, name string) error {
	r.mu.Lock()
	s, ok := r.sessions[name]
	r.mu.Unlock()
	// No entry: applying an empty list removes ours.
	status := map[string]any{"nodes": []any{}}
	if ok {
		body, err := runtime.DefaultUnstructuredConverter.ToUnstructured(&s)
		if err != nil {
			return err
		}
		status["nodes"] = []any{body}
	}
	u := statusApply("BGPPeer", types.NamespacedName{Name: name}, status)
	if err := r.Client.Status().Apply(ctx, client.ApplyConfigurationFromUnstructured(u), r.fieldOwner(), client.ForceOwnership); err != nil {
		if apierrors.IsNotFound(err) {
			return nil // the peer is gone
		}
		return fmt.Errorf("applying BGPPeer status: %w", err)
	}
	return nil
}
