package speaker

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	toolscache "k8s.io/client-go/tools/cache"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	lbv1 "github.com/lbstack/lbstack/api/v1alpha1"
	"github.com/lbstack/lbstack/internal/config"
	"github.com/lbstack/lbstack/internal/configload"
	"github.com/lbstack/lbstack/internal/lbservice"
	"github.com/lbstack/lbstack/internal/render"
	"github.com/lbstack/lbstack/speaker/dataplane"
	"github.com/lbstack/lbstack/speaker/plan"
)

// aggregateKey is the one queue key of the speaker's reconciler: every
// event on any watched kind maps to it, so a burst of events costs one pass.
var aggregateKey = reconcile.Request{NamespacedName: types.NamespacedName{Name: "lbstack-speaker"}}

// Watcher turns the API server's objects into snapshots for the core. It
// keeps the last valid configuration when a new one is invalid.
type Watcher struct {
	Client client.Client
	Node   string
	// Clock times the passes and the password reads (nil: the real clock).
	Clock clock.Clock
	// MemberlistPort is the port other speakers listen on (for Join).
	MemberlistPort int
	// OnSnapshot receives each new snapshot.
	OnSnapshot func(*dataplane.Snapshot)
	// OnPeers receives the memberlist addresses of the other nodes when
	// they change.
	OnPeers func([]string)
	// OnBGP receives this node's BGP plan, the peers' passwords and the
	// router ID.
	OnBGP func(plan dataplane.BGPPlan, passwords map[string]string, routerID netip.Addr)
	// OnBGPView receives, after each pass, what the writer of Services'
	// bgp entries needs to know of every node (see BGPReporter).
	OnBGPView func(BGPView)
	// Cache, when set, is the manager's cache: Services are read from its
	// informer's store without copies (see listServices).
	Cache cache.Cache
	// Secrets reads BGP password Secrets (uncached: the speaker may get
	// exactly those Secrets by name, not list them).
	Secrets client.Reader
	// Namespace is where password Secrets without a namespace live.
	Namespace string

	// MinInterval is the least time between two passes: events arriving
	// meanwhile merge into the next pass (a pass reads every Service, so
	// without it a burst of N Service events costs N² work).
	MinInterval time.Duration

	pwOnce    sync.Once
	pwBook    *passwordBook
	mu        sync.Mutex
	lastPass  time.Time
	lastCost  time.Duration
	cfg       *config.Config
	peers     []string
	expected  []string
	stack     string
	synced    bool
	lastError string
}

func (w *Watcher) clock() clock.Clock {
	if w.Clock == nil {
		return clock.RealClock{}
	}
	return w.Clock
}

// SetupWithManager registers the watcher with one aggregate queue key.
func (w *Watcher) SetupWithManager(mgr ctrl.Manager) error {
	all := handler.EnqueueRequestsFromMapFunc(func(context.Context, client.Object) []reconcile.Request {
		return []reconcile.Request{aggregateKey}
	})
	b := ctrl.NewControllerManagedBy(mgr).Named("speaker")
	for _, o := range []client.Object{
		&corev1.Service{}, &discoveryv1.EndpointSlice{}, &corev1.Node{},
		&lbv1.LoadBalancerStack{}, &lbv1.IPAddressPool{}, &lbv1.L2Advertisement{}, &lbv1.BGPAdvertisement{},
		&lbv1.BGPPeer{}, &lbv1.BFDProfile{}, &lbv1.Community{},
	} {
		b = b.Watches(o, all)
	}
	return b.Complete(w)
}

// Synced reports whether a first snapshot was built (readiness).
func (w *Watcher) Synced() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.synced
}

// ExpectedPeers returns the other nodes on which a live speaker is
// expected as of the last pass (see expectedSpeakers), sorted.
func (w *Watcher) ExpectedPeers() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.Clone(w.expected)
}

// StackName returns the name of the LoadBalancerStack in force as of the
// last pass, "" when there is none.
func (w *Watcher) StackName() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.stack
}

// Reconcile builds a snapshot from the cache.
func (w *Watcher) Reconcile(ctx context.Context, _ reconcile.Request) (reconcile.Result, error) {
	log := ctrl.LoggerFrom(ctx)
	w.mu.Lock()
	// At least MinInterval between passes, and at least four times what
	// the last pass took: passes (which read every Service) use at most
	// about a fifth of a core however many Services there are.
	wait := max(w.MinInterval, 4*w.lastCost) - w.clock().Since(w.lastPass)
	if wait > 0 {
		w.mu.Unlock()
		return reconcile.Result{RequeueAfter: wait}, nil
	}
	start := w.clock().Now()
	w.lastPass = start
	w.mu.Unlock()
	defer func() {
		w.mu.Lock()
		w.lastCost = w.clock().Since(start)
		w.mu.Unlock()
	}()
	objs, err := configload.List(ctx, w.Client)
	if err != nil {
		return reconcile.Result{}, err
	}
	// The same configuration in force as the controller's: a conflict
	// that got past admission leaves the later item out on every node.
	cfg, _, _, errs := config.InForce(objs)
	w.mu.Lock()
	if len(errs) > 0 {
		msg := errs.ToAggregate().Error()
		if msg != w.lastError {
			log.Error(errs.ToAggregate(), "Invalid configuration; keeping the last valid one")
			w.lastError = msg
		}
		cfg = w.cfg
	} else {
		w.cfg, w.lastError = cfg, ""
	}
	w.mu.Unlock()

	// Read-only lists straight from the cache, without a deep copy of
	// every object on every pass (at 10,000 Services the copies were most
	// of the speaker's memory churn).
	var nodeList corev1.NodeList
	if err := w.Client.List(ctx, &nodeList, client.UnsafeDisableDeepCopy); err != nil {
		return reconcile.Result{}, err
	}
	nodes, peers, selfIP := nodeStates(nodeList.Items, w.Node, w.MemberlistPort)
	inForce := config.StackInForce(objs.Stacks)
	expected := expectedSpeakers(nodeList.Items, w.Node, inForce)
	services, err := w.services(ctx, cfg)
	if err != nil {
		return reconcile.Result{}, err
	}
	snap := &dataplane.Snapshot{L2: plan.L2(cfg, services, nodes), ExpectedPeers: expected}

	w.mu.Lock()
	peersChanged := !slices.Equal(peers, w.peers)
	w.peers, w.expected, w.synced = peers, expected, cfg != nil
	w.stack = ""
	if inForce != nil {
		w.stack = inForce.Name
	}
	w.mu.Unlock()
	if peersChanged && w.OnPeers != nil {
		w.OnPeers(peers)
	}
	if w.OnSnapshot != nil && cfg != nil {
		w.OnSnapshot(snap)
	}
	if w.OnBGP != nil && cfg != nil {
		bgpPlan := plan.BGP(cfg, services, nodes, w.Node)
		pw := w.secrets(ctx, &bgpPlan)
		w.OnBGP(bgpPlan.BGPPlan, pw.passwords, plan.RouterID(bgpPlan, selfIP))
		if w.OnBGPView != nil {
			w.OnBGPView(BGPView{Config: cfg, Services: services, Nodes: nodes, Established: establishedSessions(objs.Peers)})
		}
		// Nothing else wakes the watcher when a Secret is due again (a
		// retry, a rotated password): come back then.
		if !pw.next.IsZero() {
			return reconcile.Result{RequeueAfter: max(pw.next.Sub(w.clock().Now()), w.MinInterval, 10*time.Millisecond)}, nil
		}
	}
	return reconcile.Result{}, nil
}

// secrets reads the peers' TCP MD5 passwords and BFD keys. A peer whose
// password or key cannot be used is left out of the plan with the reason
// (never configured without it); it returns the result, whose passwords
// are by peer name.
func (w *Watcher) secrets(ctx context.Context, bgpPlan *plan.BGPPlan) passwordResult {
	const pwID, keyID = "password/", "bfd-key/"
	refs := make(map[string]lbv1.SecretReference, len(bgpPlan.Passwords)+len(bgpPlan.BFDKeys))
	for name, ref := range bgpPlan.Passwords {
		refs[pwID+name] = ref
	}
	for name, ref := range bgpPlan.BFDKeys {
		refs[keyID+name] = ref
	}
	res := w.passwords().lookup(ctx, refs)
	out := passwordResult{passwords: map[string]string{}, next: res.next}
	for id, why := range res.unusable {
		if name, ok := strings.CutPrefix(id, pwID); ok {
			bgpPlan.Skip(name, "password "+why+"; the session is not opened without its password")
		} else if name, ok := strings.CutPrefix(id, keyID); ok {
			bgpPlan.Skip(name, "BFD key "+why+"; the session is not opened without its BFD key")
		}
	}
	for id, why := range res.stale {
		ctrl.LoggerFrom(ctx).Info("Secret unreadable; keeping the value read before", "use", id, "reason", why)
	}
	for id, v := range res.passwords {
		if name, ok := strings.CutPrefix(id, pwID); ok {
			out.passwords[name] = v
			continue
		}
		name, _ := strings.CutPrefix(id, keyID)
		cfg, ok := bgpPlan.BFD[name]
		if !ok {
			continue
		}
		if err := cfg.Auth.CheckKey(v); err != nil {
			bgpPlan.Skip(name, fmt.Sprintf("BFD key Secret %s: %v; the session is not opened without a usable BFD key", secretName(bgpPlan.BFDKeys[name], w.Namespace), err))
			continue
		}
		cfg.Auth.Key = v
		bgpPlan.BFD[name] = cfg
	}
	return out
}

func secretName(ref lbv1.SecretReference, defaultNamespace string) string {
	if ref.Namespace == "" {
		return defaultNamespace + "/" + ref.Name
	}
	return ref.Namespace + "/" + ref.Name
}

// passwords returns the watcher's password book.
func (w *Watcher) passwords() *passwordBook {
	w.pwOnce.Do(func() {
		r := w.Secrets
		if r == nil {
			r = w.Client
		}
		w.pwBook = newPasswordBook(r, w.Namespace, w.clock())
	})
	return w.pwBook
}

// services returns the Services lbstack serves that have addresses.
func (w *Watcher) services(ctx context.Context, cfg *config.Config) ([]plan.ServiceState, error) {
	if cfg == nil {
		return nil, nil
	}
	items, err := w.listServices(ctx)
	if err != nil {
		return nil, err
	}
	var out []plan.ServiceState
	for _, s := range items {
		if !lbservice.Serves(s, cfg.LoadBalancerClass) {
			continue
		}
		st := plan.ServiceState{
			Key:    client.ObjectKeyFromObject(s),
			Labels: labels.Set(s.Labels),
			Pool:   s.Annotations[lbv1.AnnotationAllocatedFromPool],
			Local:  s.Spec.ExternalTrafficPolicy == corev1.ServiceExternalTrafficPolicyLocal,
		}
		st.IPs = lbservice.IngressIPs(s)
		if len(st.IPs) == 0 {
			continue
		}
		if st.Local {
			nodes, err := w.endpointNodes(ctx, s)
			if err != nil {
				return nil, err
			}
			st.EndpointNodes = nodes
		}
		out = append(out, st)
	}
	return out, nil
}

// listServices returns the cached Services, read-only. From the informer's
// store when Cache gives one: a pass then costs a slice of pointers, where
// a typed List copies every Service into a new slice (at 10,000 Services,
// 5.7 MB of garbage per pass, most of the speaker's memory churn).
func (w *Watcher) listServices(ctx context.Context) ([]*corev1.Service, error) {
	if w.Cache != nil {
		inf, err := w.Cache.GetInformer(ctx, &corev1.Service{})
		if err != nil {
			return nil, err
		}
		if store, ok := informerStore(inf); ok {
			objs := store.List()
			out := make([]*corev1.Service, 0, len(objs))
			for _, o := range objs {
				if s, ok := o.(*corev1.Service); ok {
					out = append(out, s)
				}
			}
			return out, nil
		}
	}
	var list corev1.ServiceList
	if err := w.Client.List(ctx, &list, client.UnsafeDisableDeepCopy); err != nil {
		return nil, err
	}
	out := make([]*corev1.Service, len(list.Items))
	for i := range list.Items {
		out[i] = &list.Items[i]
	}
	return out, nil
}

// informerStore returns the store of a controller-runtime informer (a
// client-go SharedIndexInformer underneath).
func informerStore(inf cache.Informer) (toolscache.Store, bool) {
	st, ok := inf.(interface{ GetStore() toolscache.Store })
	if !ok {
		return nil, false
	}
	return st.GetStore(), true
}

// endpointNodes returns the nodes with a ready endpoint of s.
func (w *Watcher) endpointNodes(ctx context.Context, s *corev1.Service) (map[string]bool, error) {
	var slices discoveryv1.EndpointSliceList
	if err := w.Client.List(ctx, &slices, client.InNamespace(s.Namespace), client.MatchingLabels{discoveryv1.LabelServiceName: s.Name}, client.UnsafeDisableDeepCopy); err != nil {
		return nil, fmt.Errorf("listing EndpointSlices of %s: %w", client.ObjectKeyFromObject(s), err)
	}
	return lbservice.ReadyEndpointNodes(slices.Items), nil
}

// nodeStates reduces Nodes to what eligibility needs, and returns the
// memberlist addresses of the other nodes (their first InternalIP) and this
// node's first IPv4 InternalIP.
func nodeStates(items []corev1.Node, self string, port int) ([]plan.NodeState, []string, netip.Addr) {
	var selfIP netip.Addr
	nodes := make([]plan.NodeState, 0, len(items))
	var peers []string
	for i := range items {
		n := &items[i]
		nodes = append(nodes, plan.NodeOf(n))
		if n.Name == self {
			for _, a := range n.Status.Addresses {
				if ip, err := netip.ParseAddr(a.Address); err == nil && a.Type == corev1.NodeInternalIP && ip.Is4() && !selfIP.IsValid() {
					selfIP = ip
				}
			}
			continue
		}
		for _, a := range n.Status.Addresses {
			if a.Type == corev1.NodeInternalIP {
				peers = append(peers, net.JoinHostPort(a.Address, strconv.Itoa(port)))
				break
			}
		}
	}
	slices.Sort(peers)
	return nodes, peers, selfIP
}

// expectedSpeakers returns the nodes other than self on which a live
// speaker is expected, sorted: Ready nodes on which the speaker DaemonSet
// places a pod (the stack's node selector and tolerations, as rendered,
// plus the tolerations the DaemonSet controller adds). Joining goes to
// every node (nodeStates); this narrower list only decides whether a
// speaker that has joined nobody may call itself ready, so a node the
// DaemonSet skips, or a dead one, never holds readiness back.
func expectedSpeakers(items []corev1.Node, self string, stack *lbv1.LoadBalancerStack) []string {
	sel, tolerations := render.SpeakerPlacement(stack)
	selector := labels.SelectorFromSet(sel)
	tolerations = append(tolerations, daemonSetTolerations...)
	var out []string
	for i := range items {
		n := &items[i]
		if n.Name == self || !selector.Matches(labels.Set(n.Labels)) || !nodeReady(n) || !tolerates(tolerations, n.Spec.Taints) {
			continue
		}
		out = append(out, n.Name)
	}
	slices.Sort(out)
	return out
}

// daemonSetTolerations are the tolerations the DaemonSet controller adds
// to every pod of a host-network DaemonSet.
var daemonSetTolerations = []corev1.Toleration{
	{Key: corev1.TaintNodeNotReady, Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoExecute},
	{Key: corev1.TaintNodeUnreachable, Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoExecute},
	{Key: corev1.TaintNodeDiskPressure, Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoSchedule},
	{Key: corev1.TaintNodeMemoryPressure, Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoSchedule},
	{Key: corev1.TaintNodePIDPressure, Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoSchedule},
	{Key: corev1.TaintNodeUnschedulable, Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoSchedule},
	{Key: corev1.TaintNodeNetworkUnavailable, Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoSchedule},
}

func nodeReady(n *corev1.Node) bool {
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// tolerates reports whether tolerations tolerate every taint that keeps a
// pod off a node (NoSchedule, NoExecute).
func tolerates(tolerations []corev1.Toleration, taints []corev1.Taint) bool {
	for i := range taints {
		t := &taints[i]
		if t.Effect == corev1.TaintEffectPreferNoSchedule {
			continue
		}
		if !slices.ContainsFunc(tolerations, func(tol corev1.Toleration) bool { return tol.ToleratesTaint(logr.Discard(), t, false) }) {
			return false
		}
	}
	return true
}
