package speaker

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	"k8s.io/client-go/util/workqueue"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	lbv1 "github.com/lbstack/lbstack/api/v1alpha1"
	"github.com/lbstack/lbstack/speaker/bgp"
)

// Event reasons on BGPPeers.
const (
	ReasonSessionUp   = "SessionUp"
	ReasonSessionDown = "SessionDown"
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

	mu       sync.Mutex
	queue    workqueue.TypedRateLimitingInterface[bgpKey]
	sessions map[string]lbv1.BGPNodeSession
	services map[types.NamespacedName]lbv1.AnnouncingNode
	written  map[bgpKey]any
	since    map[netip.Prefix]time.Time
}

func (r *BGPReporter) init() {
	if r.queue == nil {
		r.queue = workqueue.NewTypedRateLimitingQueue(workqueue.NewTypedItemExponentialFailureRateLimiter[bgpKey](100*time.Millisecond, maxReportRetryBackoffTime))
		r.sessions, r.services, r.written = map[string]lbv1.BGPNodeSession{}, map[types.NamespacedName]lbv1.AnnouncingNode{}, map[bgpKey]any{}
		r.since = map[netip.Prefix]time.Time{}
	}
}

func (r *BGPReporter) fieldOwner() client.FieldOwner {
	return client.FieldOwner("lbstack-speaker-bgp-" + r.Node)
}

// Status records the sessions and the plan in force.
func (r *BGPReporter) Status(st BGPStatus) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.init()
	now := r.Clock.Now()
	established := map[string]bool{}
	for i, s := range st.Sessions {
		name := st.Peers[i]
		if s.State == lbv1.BGPSessionEstablished {
			established[name] = true
		}
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
	// Services: this node's entry lists the established peers its paths go to.
	all := make([]string, 0, len(established))
	for n := range established {
		all = append(all, n)
	}
	slices.Sort(all)
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
		for _, svc := range st.Plan.Services[p.Prefix] {
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

func mergeSorted(a, b []string) []string {
	out := append(slices.Clone(a), b...)
	slices.Sort(out)
	return slices.Compact(out)
}

// Event emits a session up/down event on the BGPPeer.
func (r *BGPReporter) Event(ev bgp.PeerEvent) {
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		var p lbv1.BGPPeer
		if err := r.Client.Get(ctx, types.NamespacedName{Name: ev.Name}, &p); err != nil {
			return
		}
		if ev.Up {
			r.Recorder.Eventf(&p, nil, corev1.EventTypeNormal, ReasonSessionUp, "Session", "Node %s: session with %s established", r.Node, ev.Address)
		} else {
			r.Recorder.Eventf(&p, nil, corev1.EventTypeWarning, ReasonSessionDown, "Session", "Node %s: session with %s down (%s): %s", r.Node, ev.Address, ev.State, ev.Reason)
		}
	}()
}

// Run writes until ctx ends.
func (r *BGPReporter) Run(ctx context.Context) error {
	r.mu.Lock()
	r.init()
	q := r.queue
	r.mu.Unlock()
	go func() {
		<-ctx.Done()
		q.ShutDown()
	}()
	for {
		key, quit := q.Get()
		if quit {
			return nil
		}
		if err := r.write(ctx, key); err != nil {
			ctrl.LoggerFrom(ctx).Error(err, "Writing BGP status; will retry", "object", key.NamespacedName, "peer", key.peer)
			q.AddRateLimited(key)
		} else {
			q.Forget(key)
		}
		q.Done(key)
	}
}

func (r *BGPReporter) write(ctx context.Context, key bgpKey) error {
	r.mu.Lock()
	var body map[string]any
	var err error
	u := &unstructured.Unstructured{}
	u.SetAPIVersion(lbv1.GroupVersion.String())
	if key.peer {
		s, ok := r.sessions[key.Name]
		if !ok {
			r.mu.Unlock()
			return nil
		}
		u.SetKind("BGPPeer")
		body, err = runtime.DefaultUnstructuredConverter.ToUnstructured(&s)
		if err == nil {
			u.Object["status"] = map[string]any{"nodes": []any{body}}
		}
	} else {
		e, ok := r.services[key.NamespacedName]
		u.SetKind("ServiceAnnouncement")
		u.SetNamespace(key.Namespace)
		if ok {
			body, err = runtime.DefaultUnstructuredConverter.ToUnstructured(&e)
			if err == nil {
				u.Object["status"] = map[string]any{"nodes": []any{body}}
			}
		} else {
			u.Object["status"] = map[string]any{}
		}
	}
	u.SetName(key.Name)
	r.mu.Unlock()
	if err != nil {
		return err
	}
	if !key.peer {
		svc, err := r.ensureAnnouncement(ctx, key.NamespacedName)
		if err != nil || svc == nil {
			return err
		}
		if st, _ := u.Object["status"].(map[string]any); len(st) > 0 {
			// Every node applies the same values: shared ownership.
			st["service"], st["protocol"] = svc.Name, string(lbv1.ProtocolBGP)
			var ips []any
			for _, in := range svc.Status.LoadBalancer.Ingress {
				if in.IP != "" {
					ips = append(ips, in.IP)
				}
			}
			st["ips"] = ips
		}
	}
	if err := r.Client.Status().Apply(ctx, client.ApplyConfigurationFromUnstructured(u), r.fieldOwner(), client.ForceOwnership); err != nil {
		if apierrors.IsNotFound(err) {
			return nil // the peer or Service is gone
		}
		return fmt.Errorf("applying %s status: %w", u.GetKind(), err)
	}
	return nil
}

// ensureAnnouncement creates the Service's ServiceAnnouncement, owned by
// the Service, if it does not exist yet.
func (r *BGPReporter) ensureAnnouncement(ctx context.Context, key types.NamespacedName) (*corev1.Service, error) {
	var svc corev1.Service
	if err := r.Client.Get(ctx, key, &svc); err != nil {
		return nil, client.IgnoreNotFound(err)
	}
	ann := &lbv1.ServiceAnnouncement{ObjectMeta: metav1.ObjectMeta{Name: key.Name, Namespace: key.Namespace,
		OwnerReferences: []metav1.OwnerReference{{APIVersion: "v1", Kind: "Service", Name: svc.Name, UID: svc.UID}}}}
	if err := r.Client.Create(ctx, ann); err != nil && !apierrors.IsAlreadyExists(err) {
		return nil, fmt.Errorf("creating ServiceAnnouncement: %w", err)
	}
	return &svc, nil
}
