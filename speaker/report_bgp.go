package speaker

import (
	"context"
	"fmt"
	"math"
	"net/netip"
	"slices"
	"strings"
	"sync"
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
	"sigs.k8s.io/controller-runtime/pkg/client"

	lbv1 "github.com/lbstack/lbstack/api/v1alpha1"
	"github.com/lbstack/lbstack/speaker/bgp"
	"github.com/lbstack/lbstack/speaker/dataplane"
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
// of this node, or a Service's ServiceAnnouncement entry of this node.
type bgpKey struct {
	peer bool
	types.NamespacedName
}

// BGPReporter writes this node's view of BGP: its session with each peer
// in the BGPPeer's status.nodes, and for each Service it advertises its
// entry (protocol bgp, the peers) in the ServiceAnnouncement. Each node
// writes only its own entries (server-side apply with a field manager per
// node), so the entries of all nodes add up.
type BGPReporter struct {
	Client   client.Client
	Recorder events.EventRecorder
	Node     string
	Clock    clock.Clock

	events eventQueue

	mu       sync.Mutex
	queue    workqueue.TypedRateLimitingInterface[bgpKey]
	sessions map[string]lbv1.BGPNodeSession
	services map[types.NamespacedName]lbv1.AnnouncingNode
	since    map[netip.Prefix]time.Time
	// The Service entries depend only on the plan and the established
	// peers: not recomputed while neither changed.
	servicesFor string
}

func (r *BGPReporter) init() {
	if r.queue == nil {
		r.queue = workqueue.NewTypedRateLimitingQueue(workqueue.NewTypedItemExponentialFailureRateLimiter[bgpKey](100*time.Millisecond, maxReportRetryBackoffTime))
		r.sessions, r.services = map[string]lbv1.BGPNodeSession{}, map[types.NamespacedName]lbv1.AnnouncingNode{}
		r.since = map[netip.Prefix]time.Time{}
	}
}

func (r *BGPReporter) fieldOwner() client.FieldOwner {
	return client.FieldOwner("lbstack-speaker-bgp-" + r.Node)
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
	// Services: this node's entry lists the established peers its paths go to.
	all := make([]string, 0, len(established))
	for n := range established {
		all = append(all, n)
	}
	slices.Sort(all)
	servicesFor := fmt.Sprintf("%d/%v", st.PlanGeneration, all)
	if servicesFor == r.servicesFor {
		return
	}
	r.servicesFor = servicesFor
	want := map[types.NamespacedName]lbv1.AnnouncingNode{}
	for _, p := range st.Plan.Paths {
		if _, ok := r.since[p.Prefix]; !ok {
			r.since[p.Prefix] = now
		}
		peers := all
		if len(p.Peers) > 0 {
			peers = nil
			for _, n := range p.Peers {
				if established[n] {
					peers = append(peers, n)
				}
			}
		}
		for _, ref := range st.Plan.Services[p.Prefix] {
			svc := types.NamespacedName(ref)
			e := want[svc]
			e.Node, e.Protocol = r.Node, lbv1.ProtocolBGP
			e.Peers = mergeSorted(e.Peers, peers)
			if e.Since.IsZero() || r.since[p.Prefix].Before(e.Since.Time) {
				e.Since = metav1.NewTime(r.since[p.Prefix].Truncate(time.Second))
			}
			want[svc] = e
		}
	}
	for svc, e := range want {
		if prev, ok := r.services[svc]; !ok || !equality.Semantic.DeepEqual(prev, e) {
			r.services[svc] = e
			r.queue.Add(bgpKey{NamespacedName: svc})
		}
	}
	for svc := range r.services {
		if _, ok := want[svc]; !ok {
			delete(r.services, svc)
			r.queue.Add(bgpKey{NamespacedName: svc}) // writes an empty entry: removes ours
		}
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
	q := r.queue
	r.mu.Unlock()
	done := make(chan struct{})
	go func() { defer close(done); r.events.run(ctx) }()
	runQueue(ctx, q, r.write, "Writing BGP status; will retry")
	<-done
	return nil
}

func (r *BGPReporter) write(ctx context.Context, key bgpKey) error {
	kind := "ServiceAnnouncement"
	if key.peer {
		kind = "BGPPeer"
	}
	r.mu.Lock()
	var entry any
	if key.peer {
		if s, ok := r.sessions[key.Name]; ok {
			entry = &s
		}
	} else if e, ok := r.services[key.NamespacedName]; ok {
		entry = &e
	}
	r.mu.Unlock()
	// No entry: applying an empty list removes ours (an empty status
	// would be sent as null, which the API server refuses).
	status := map[string]any{"nodes": []any{}}
	if entry != nil {
		body, err := runtime.DefaultUnstructuredConverter.ToUnstructured(entry)
		if err != nil {
			return err
		}
		status["nodes"] = []any{body}
	}
	if !key.peer {
		svc, err := ensureAnnouncement(ctx, r.Client, key.NamespacedName)
		if err != nil || svc == nil {
			return err
		}
		if entry != nil {
			// Every node applies the same values: shared ownership.
			ips := []any{}
			for _, ip := range ingressIPs(svc) {
				ips = append(ips, ip)
			}
			status["service"], status["protocol"], status["ips"] = svc.Name, string(lbv1.ProtocolBGP), ips
		}
	}
	u := statusApply(kind, key.NamespacedName, status)
	if err := r.Client.Status().Apply(ctx, client.ApplyConfigurationFromUnstructured(u), r.fieldOwner(), client.ForceOwnership); err != nil {
		if apierrors.IsNotFound(err) {
			return nil // the peer or Service is gone
		}
		return fmt.Errorf("applying %s status: %w", kind, err)
	}
	return nil
}
