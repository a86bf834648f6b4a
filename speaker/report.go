package speaker

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
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
	"github.com/lbstack/lbstack/internal/lbservice"
	"github.com/lbstack/lbstack/speaker/dataplane"
)

// Event reasons on Services.
const (
	ReasonAnnouncing        = "Announcing"
	ReasonAnnouncementMoved = "AnnouncementMoved"
	ReasonAnnouncementClash = "AnnouncementConflict"
	// ReasonMembershipKeyMismatch: a speaker with another memberlist key
	// talks to this one (event on the Node).
	ReasonMembershipKeyMismatch = "MembershipKeyMismatch"
	speakerFieldOwnerLayer2     = "lbstack-speaker"
	maxReportRetryBackoffTime   = 30 * time.Second
)

// Reporter writes what this node announces into ServiceAnnouncement
// status and Service events. It runs apart from the announce loop: the
// loop hands it facts and never waits for the API server.
type Reporter struct {
	Client   client.Client
	Recorder events.EventRecorder
	Node     string
	Clock    clock.Clock
	// Interfaces returns the interfaces an address is announced on.
	Interfaces func(netip.Addr) []string

	events eventQueue
	// writes counts the ServiceAnnouncement writes (a metric).
	writes atomic.Uint64

	mu      sync.Mutex
	queue   workqueue.TypedRateLimitingInterface[types.NamespacedName]
	desired map[types.NamespacedName]*lbv1.ServiceAnnouncementStatus
	written map[types.NamespacedName]*lbv1.ServiceAnnouncementStatus
	since   map[netip.Addr]time.Time       // group key → when this node took it
	moves   map[netip.Addr]*dataplane.Move // group key → the move that gave it to this node
	owned   map[types.NamespacedName]bool
}

func (r *Reporter) init() {
	if r.queue == nil {
		r.queue = workqueue.NewTypedRateLimitingQueue(workqueue.NewTypedItemExponentialFailureRateLimiter[types.NamespacedName](100*time.Millisecond, maxReportRetryBackoffTime))
		r.desired, r.written = map[types.NamespacedName]*lbv1.ServiceAnnouncementStatus{}, map[types.NamespacedName]*lbv1.ServiceAnnouncementStatus{}
		r.since, r.moves, r.owned = map[netip.Addr]time.Time{}, map[netip.Addr]*dataplane.Move{}, map[types.NamespacedName]bool{}
	}
}

// Moved records a move this node made and emits its events (asynchronously).
func (r *Reporter) Moved(m dataplane.Move) {
	r.mu.Lock()
	r.init()
	mv := m
	r.moves[m.Group.Key] = &mv
	r.since[m.Group.Key] = m.At
	r.mu.Unlock()
	r.events.add(func(ctx context.Context) { r.moveEvents(ctx, m) })
}

// Owned records the groups this node owns after an election.
func (r *Reporter) Owned(groups []dataplane.L2Group) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.init()
	now := map[types.NamespacedName]bool{}
	keys := map[netip.Addr]bool{}
	for _, g := range groups {
		keys[g.Key] = true
		if _, ok := r.since[g.Key]; !ok {
			r.since[g.Key] = r.Clock.Now()
		}
		for _, ref := range g.Services {
			s := types.NamespacedName(ref)
			now[s] = true
			st := r.statusLocked(s, g)
			if !equality.Semantic.DeepEqual(st, r.desired[s]) {
				r.desired[s] = st
				r.queue.Add(s)
			}
		}
	}
	for k := range r.since {
		if !keys[k] {
			delete(r.since, k)
			delete(r.moves, k)
		}
	}
	for s := range r.owned {
		if !now[s] {
			delete(r.desired, s) // the new owner writes it
			delete(r.written, s)
		}
	}
	r.owned = now
}

// statusLocked is the layer-2 status of Service s announced through g.
func (r *Reporter) statusLocked(s types.NamespacedName, g dataplane.L2Group) *lbv1.ServiceAnnouncementStatus {
	since := metav1.NewTime(r.since[g.Key].Truncate(time.Second))
	node := lbv1.AnnouncingNode{Node: r.Node, Protocol: lbv1.ProtocolLayer2, Since: since}
	if r.Interfaces != nil {
		if ifs := r.Interfaces(g.Key); len(ifs) > 0 {
			node.Interface = strings.Join(ifs, ",")
			if ifi, err := net.InterfaceByName(ifs[0]); err == nil {
				node.MAC = ifi.HardwareAddr.String()
			}
		}
	}
	st := &lbv1.ServiceAnnouncementStatus{
		Service:   s.Name,
		Protocol:  lbv1.ProtocolLayer2,
		Nodes:     []lbv1.AnnouncingNode{node},
		NodeNames: r.Node,
		Since:     &since,
	}
	if m := r.moves[g.Key]; m != nil {
		st.LastMove = &lbv1.AnnouncementMove{From: m.From, To: m.To, Reason: m.Reason, Message: m.Message, At: metav1.NewTime(m.At.Truncate(time.Second))}
		if m.DetectionTime > 0 {
			st.LastMove.DetectionTime = &metav1.Duration{Duration: m.DetectionTime.Round(time.Millisecond)}
		}
	}
	return st
}

// Run writes statuses until ctx ends.
func (r *Reporter) Run(ctx context.Context) error {
	r.mu.Lock()
	r.init()
	q := r.queue
	r.mu.Unlock()
	done := make(chan struct{})
	go func() { defer close(done); r.events.run(ctx) }()
	runQueue(ctx, q, r.write, "Writing ServiceAnnouncement; will retry")
	<-done
	return nil
}

// eventQueue runs the event jobs of a reporter off the caller's goroutine
// (the announce loop never waits for the API server), one at a time under
// the reporter's Run context, each within 10 s. It holds at most 256 jobs
// and drops (counting them) what does not fit: events are reports, the
// statuses carry the state.
type eventQueue struct {
	once    sync.Once
	ch      chan func(context.Context)
	dropped atomic.Uint64
}

func (q *eventQueue) init() { q.once.Do(func() { q.ch = make(chan func(context.Context), 256) }) }

// add queues job without blocking.
func (q *eventQueue) add(job func(context.Context)) {
	q.init()
	select {
	case q.ch <- job:
	default:
		q.dropped.Add(1)
	}
}

// run runs the queued jobs until ctx ends.
func (q *eventQueue) run(ctx context.Context) {
	q.init()
	for {
		select {
		case <-ctx.Done():
			return
		case job := <-q.ch:
			jctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			job(jctx)
			cancel()
		}
	}
}

// runQueue feeds the keys of q to write until ctx ends, retrying failed
// keys with q's backoff.
func runQueue[K comparable](ctx context.Context, q workqueue.TypedRateLimitingInterface[K], write func(context.Context, K) error, failed string) {
	go func() {
		<-ctx.Done()
		q.ShutDown()
	}()
	for {
		key, quit := q.Get()
		if quit {
			return
		}
		if err := write(ctx, key); err != nil {
			ctrl.LoggerFrom(ctx).Error(err, failed, "key", key)
			q.AddRateLimited(key)
		} else {
			q.Forget(key)
		}
		q.Done(key)
	}
}

// ensureAnnouncement creates the Service's ServiceAnnouncement, owned by
// the Service (so it goes with it), unless it exists. It returns the
// Service, or nil when the Service is gone.
func ensureAnnouncement(ctx context.Context, c client.Client, key types.NamespacedName) (*corev1.Service, error) {
	var svc corev1.Service
	if err := c.Get(ctx, key, &svc); err != nil {
		return nil, client.IgnoreNotFound(err)
	}
	ann := &lbv1.ServiceAnnouncement{ObjectMeta: metav1.ObjectMeta{Name: key.Name, Namespace: key.Namespace,
		OwnerReferences: []metav1.OwnerReference{{APIVersion: "v1", Kind: "Service", Name: svc.Name, UID: svc.UID}}}}
	if err := c.Create(ctx, ann); err != nil && !apierrors.IsAlreadyExists(err) {
		return nil, fmt.Errorf("creating ServiceAnnouncement: %w", err)
	}
	return &svc, nil
}

// ingressIPs are the addresses in the Service's status (lbservice's
// reading of it), sorted.
func ingressIPs(svc *corev1.Service) []string {
	var ips []string
	for _, a := range lbservice.IngressIPs(svc) {
		ips = append(ips, a.String())
	}
	slices.Sort(ips)
	return ips
}

// write applies the desired status of one Service's ServiceAnnouncement.
func (r *Reporter) write(ctx context.Context, key types.NamespacedName) error {
	r.mu.Lock()
	want := r.desired[key].DeepCopy()
	done := want != nil && equality.Semantic.DeepEqual(want, r.written[key])
	r.mu.Unlock()
	if want == nil || done {
		return nil
	}
	svc, err := ensureAnnouncement(ctx, r.Client, key)
	if err != nil || svc == nil {
		return err
	}
	want.IPs = ingressIPs(svc)
	m, err := runtime.DefaultUnstructuredConverter.ToUnstructured(want)
	if err != nil {
		return err
	}
	u := statusApply("ServiceAnnouncement", key, m)
	r.writes.Add(1)
	if err := r.Client.Status().Apply(ctx, client.ApplyConfigurationFromUnstructured(u), client.FieldOwner(speakerFieldOwnerLayer2), client.ForceOwnership); err != nil {
		return fmt.Errorf("applying ServiceAnnouncement status: %w", err)
	}
	r.mu.Lock()
	if cur := r.desired[key]; cur != nil {
		r.written[key] = cur.DeepCopy()
	}
	r.mu.Unlock()
	return nil
}

// statusApply is a server-side apply body for the status of an lbstack
// object of kind.
func statusApply(kind string, key types.NamespacedName, status map[string]any) *unstructured.Unstructured {
	u := &unstructured.Unstructured{Object: map[string]any{"status": status}}
	u.SetAPIVersion(lbv1.GroupVersion.String())
	u.SetKind(kind)
	u.SetName(key.Name)
	u.SetNamespace(key.Namespace)
	return u
}

// moveEvents emits Announcing and, after a move, AnnouncementMoved on each
// Service of the group.
func (r *Reporter) moveEvents(ctx context.Context, m dataplane.Move) {
	for _, ref := range m.Group.Services {
		var svc corev1.Service
		if err := r.Client.Get(ctx, types.NamespacedName(ref), &svc); err != nil {
			continue
		}
		r.Recorder.Eventf(&svc, nil, corev1.EventTypeNormal, ReasonAnnouncing, "Announce", "Node %s announces %s over layer 2", r.Node, dataplane.FormatIPs(m.Group.IPs))
		if m.From != "" {
			msg := fmt.Sprintf("Announcement moved from %s to %s: %s (%s)", m.From, m.To, m.Reason, m.Message)
			if m.DetectionTime > 0 {
				msg += fmt.Sprintf("; detection time %s", m.DetectionTime.Round(time.Millisecond))
			}
			r.Recorder.Eventf(&svc, nil, corev1.EventTypeNormal, ReasonAnnouncementMoved, "Announce", "%s", msg)
		}
	}
}

// Foreign records, as a Warning event on this node's Node, that memberlist
// traffic arrives that this speaker cannot decrypt: a speaker with another
// memberlist key, which forms a cluster of its own (each announcing what it
// elects). The metric lbstack_speaker_membership_undecryptable_total counts
// every such packet. It does not block.
func (r *Reporter) Foreign(detail string) {
	r.events.add(func(ctx context.Context) {
		var node corev1.Node
		if err := r.Client.Get(ctx, types.NamespacedName{Name: r.Node}, &node); err != nil {
			return
		}
		r.Recorder.Eventf(&node, nil, corev1.EventTypeWarning, ReasonMembershipKeyMismatch, "Join",
			"The speaker on %s receives memberlist traffic it cannot decrypt: another speaker uses a different memberlist key (Secret lbstack-memberlist replaced without every speaker rotating?) and cannot join this one's cluster, or something that is no speaker sends to its memberlist port: %s", r.Node, detail)
	})
}

// Conflict reports another MAC answering for an address this node
// announces: a Warning event on the Services holding it. It does not block.
func (r *Reporter) Conflict(ip netip.Addr, ifname string, ours, theirs net.HardwareAddr, services []dataplane.ServiceRef) {
	r.events.add(func(ctx context.Context) { r.conflictEvents(ctx, ip, ifname, ours, theirs, services) })
}

func (r *Reporter) conflictEvents(ctx context.Context, ip netip.Addr, ifname string, ours, theirs net.HardwareAddr, services []dataplane.ServiceRef) {
	for _, ref := range services {
		var svc corev1.Service
		if err := r.Client.Get(ctx, types.NamespacedName(ref), &svc); err != nil {
			continue
		}
		r.Recorder.Eventf(&svc, nil, corev1.EventTypeWarning, ReasonAnnouncementClash, "Announce",
			"Split brain: %s is announced by node %s with MAC %s on %s, and another host answers for it with MAC %s", ip, r.Node, ours, ifname, theirs)
	}
}
