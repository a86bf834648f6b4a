package controllers

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"sort"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	"k8s.io/client-go/util/workqueue"
	"k8s.io/klog/v2"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/source"

	lbv1 "github.com/lbstack/lbstack/api/v1alpha1"
	"github.com/lbstack/lbstack/internal/config"
	"github.com/lbstack/lbstack/internal/configload"
	"github.com/lbstack/lbstack/internal/ipam"
)

// Event reasons and the Service condition the controller writes.
const (
	ReasonIPAllocated      = "IPAllocated"
	ReasonAllocationFailed = "AllocationFailed"
	ReasonIPReleased       = "IPReleased"
	ReasonOutsidePool      = "AddressOutsidePool"
	// ReasonAddressConflict: the Service's status named an address another
	// Service holds (a restore found two claims; the younger loses).
	ReasonAddressConflict = "AddressConflict"
	// ConditionAddressInPool is False on a Service whose address is no
	// longer in any pool; it keeps the address until it is changed.
	ConditionAddressInPool = "lbstack.io/AddressInPool"
	// FieldOwner is the controller's field manager.
	FieldOwner = "lbstack-controller"
)

// ServiceReconciler assigns addresses to Services of type LoadBalancer.
//
// Allocation is serialized on the allocator's lock; the API writes that
// follow run concurrently across workers.
type ServiceReconciler struct {
	Client   client.Client
	Recorder events.EventRecorder
	// Pools is told which pools' counters changed.
	Pools *PoolStatusWriter

	mu        sync.Mutex
	alloc     *ipam.Allocator
	cfg       *config.Config
	cfgDirty  bool
	restored  bool
	lastError map[string]string
	orphaned  map[string]bool
	// annotated remembers the pool annotation already written per
	// Service, so a reconcile that sees a stale cached copy does not
	// write it again.
	annotated map[string]string
	// queue is the controller's work queue (set when it starts): Services
	// whose allocation failed are queued again when addresses free up.
	queue workqueue.TypedRateLimitingInterface[reconcile.Request]
	// unclassed remembers the Services already logged as left alone
	// because no stack names the served class.
	unclassed map[string]bool
}

// NewServiceReconciler returns a reconciler with an empty allocator.
func NewServiceReconciler(c client.Client, rec events.EventRecorder, pools *PoolStatusWriter) *ServiceReconciler {
	return &ServiceReconciler{Client: c, Recorder: rec, Pools: pools, alloc: ipam.New(), cfgDirty: true,
		lastError: map[string]string{}, orphaned: map[string]bool{}, annotated: map[string]string{}, unclassed: map[string]bool{}}
}

// SetupWithManager registers the controller: Services, and every lbstack
// configuration kind (a change re-evaluates every LoadBalancer Service).
func (r *ServiceReconciler) SetupWithManager(mgr ctrl.Manager, workers int) error {
	r.Pools.alloc = r
	configChanged := handler.EnqueueRequestsFromMapFunc(func(ctx context.Context, _ client.Object) []reconcile.Request {
		r.mu.Lock()
		r.cfgDirty = true
		r.mu.Unlock()
		return r.loadBalancerServices(ctx)
	})
	// Pools may select Services by their namespace's labels.
	namespaceChanged := handler.EnqueueRequestsFromMapFunc(func(ctx context.Context, ns client.Object) []reconcile.Request {
		return r.loadBalancerServices(ctx, client.InNamespace(ns.GetName()))
	})
	b := ctrl.NewControllerManagedBy(mgr).Named("service").
		For(&corev1.Service{}).
		Watches(&corev1.Namespace{}, namespaceChanged, builder.WithPredicates(predicate.LabelChangedPredicate{})).
		WithOptions(controller.Options{MaxConcurrentReconciles: workers}).
		WatchesRawSource(source.Func(func(_ context.Context, q workqueue.TypedRateLimitingInterface[reconcile.Request]) error {
			r.mu.Lock()
			r.queue = q
			r.mu.Unlock()
			return nil
		}))
	for _, o := range []client.Object{&lbv1.LoadBalancerStack{}, &lbv1.IPAddressPool{}, &lbv1.L2Advertisement{},
		&lbv1.BGPAdvertisement{}, &lbv1.BGPPeer{}, &lbv1.BFDProfile{}, &lbv1.Community{}} {
		// Status writes (the pool counters this controller writes every
		// second) change neither the spec (generation) nor the labels, and
		// must not requeue every Service.
		b = b.Watches(o, configChanged, builder.WithPredicates(predicate.Or(predicate.GenerationChangedPredicate{}, predicate.LabelChangedPredicate{})))
	}
	return b.Complete(r)
}

// loadBalancerServices lists the LoadBalancer Services as requests.
func (r *ServiceReconciler) loadBalancerServices(ctx context.Context, opts ...client.ListOption) []reconcile.Request {
	var svcs corev1.ServiceList
	if err := r.Client.List(ctx, &svcs, opts...); err != nil {
		ctrl.LoggerFrom(ctx).Error(err, "Listing Services to re-evaluate")
		return nil
	}
	var out []reconcile.Request
	for _, s := range svcs.Items {
		if s.Spec.Type == corev1.ServiceTypeLoadBalancer {
			out = append(out, reconcile.Request{NamespacedName: types.NamespacedName{Namespace: s.Namespace, Name: s.Name}})
		}
	}
	return out
}

// Reconcile assigns, keeps or releases one Service's addresses.
func (r *ServiceReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	key := req.String()
	log := ctrl.LoggerFrom(ctx).WithValues("Service", klog.KRef(req.Namespace, req.Name))
	ctx = ctrl.LoggerInto(ctx, log)

	if err := r.prepare(ctx); err != nil {
		return ctrl.Result{}, err
	}
	var svc corev1.Service
	if err := r.Client.Get(ctx, req.NamespacedName, &svc); apierrors.IsNotFound(err) {
		r.release(key)
		return ctrl.Result{}, nil
	} else if err != nil {
		return ctrl.Result{}, err
	}
	r.mu.Lock()
	cfg := r.cfg
	r.mu.Unlock()
	if cfg == nil {
		// Which Services lbstack serves is unknown until a valid
		// configuration is seen: release and clear nothing.
		if ours(&svc, "") && len(svc.Status.LoadBalancer.Ingress) == 0 {
			r.fail(ctx, &svc, errors.New("no valid lbstack configuration (no LoadBalancerStack or IPAddressPool, or the configuration is invalid)"))
		}
		return ctrl.Result{}, nil
	}
	if !ours(&svc, cfg.LoadBalancerClass) {
		if cfg.Stack == "" && svc.Spec.Type == corev1.ServiceTypeLoadBalancer && svc.Spec.LoadBalancerClass != nil &&
			svc.Annotations[lbv1.AnnotationAllocatedFromPool] != "" {
			// No stack names the served class (the stack was deleted, or is
			// being replaced): a Service of another class may be ours.
			r.leaveUnclassed(ctx, key)
			return ctrl.Result{}, nil
		}
		r.release(key)
		return ctrl.Result{}, r.clear(ctx, &svc)
	}
	in, err := r.describe(ctx, &svc)
	if err != nil {
		r.fail(ctx, &svc, err)
		return ctrl.Result{}, nil
	}

	r.mu.Lock()
	before, _ := r.alloc.Assigned(key)
	res, err := r.alloc.Assign(in)
	orphan := false
	for _, ip := range res.IPs {
		if r.cfg.PoolOf(ip) == "" {
			orphan = true
		}
	}
	r.mu.Unlock()
	if err != nil {
		r.fail(ctx, &svc, err)
		return ctrl.Result{}, r.clearUnbacked(ctx, &svc)
	}
	r.Pools.Touch(before.Pool, res.Pool)
	err = r.write(ctx, &svc, res, sameIPs(before.IPs, res.IPs) && before.Pool != "", orphan)
	if apierrors.IsConflict(err) {
		// Written from a stale copy (see fenced): read it again and redo.
		log.V(1).Info("The Service changed while its assignment was written; reconciling again")
		return ctrl.Result{RequeueAfter: conflictRetry}, nil
	}
	return ctrl.Result{}, err
}

// conflictRetry is how soon a Service whose write met a newer version is
// reconciled again (the cache has the newer version by then, as a rule).
const conflictRetry = 100 * time.Millisecond

// prepare loads the configuration when it changed and, once after
// start-up (or a leader change), learns every address already assigned.
func (r *ServiceReconciler) prepare(ctx context.Context) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.cfgDirty {
		objs, err := listConfig(ctx, r.Client)
		if err != nil {
			return err
		}
		cfg, _, errs := config.Build(objs)
		r.cfgDirty = false
		switch {
		case len(errs) > 0 && r.cfg != nil:
			ctrl.LoggerFrom(ctx).Error(errs.ToAggregate(), "Configuration is invalid; keeping the last valid one")
		case len(errs) > 0:
			ctrl.LoggerFrom(ctx).Error(errs.ToAggregate(), "Configuration is invalid; no addresses are assigned until it is fixed")
		default:
			r.cfg = cfg
			r.alloc.SetConfig(cfg)
			r.Pools.TouchAll()
		}
	}
	if r.restored || r.cfg == nil {
		return nil
	}
	var svcs corev1.ServiceList
	if err := r.Client.List(ctx, &svcs); err != nil {
		return fmt.Errorf("listing Services to restore assignments: %w", err)
	}
	// Oldest first: when two Services claim one address, the older keeps it.
	sort.Slice(svcs.Items, func(i, j int) bool {
		a, b := &svcs.Items[i], &svcs.Items[j]
		if !a.CreationTimestamp.Equal(&b.CreationTimestamp) {
			return a.CreationTimestamp.Before(&b.CreationTimestamp)
		}
		return a.Namespace+"/"+a.Name < b.Namespace+"/"+b.Name
	})
	restored := 0
	for i := range svcs.Items {
		s := &svcs.Items[i]
		ips := ingressIPs(s)
		if !ours(s, r.class()) || len(ips) == 0 {
			continue
		}
		// A request that no longer parses still holds the addresses in
		// its status: restored with no request, so nobody else gets them.
		in, err := r.describe(ctx, s)
		if err != nil {
			ctrl.LoggerFrom(ctx).Info("Restoring the addresses of a Service whose request does not parse; it keeps them until the request is fixed", "Service", klog.KObj(s), "reason", err.Error())
		}
		if err := r.alloc.Restore(in, ips); err != nil {
			ctrl.LoggerFrom(ctx).Info("Not restoring a conflicting address; the Service will get another", "Service", klog.KObj(s), "reason", err.Error())
			continue
		}
		restored++
	}
	r.restored = true
	r.Pools.TouchAll()
	ctrl.LoggerFrom(ctx).Info("Restored assigned addresses", "services", restored)
	return nil
}

// ours reports whether lbstack, serving loadBalancerClass class, serves s.
func ours(s *corev1.Service, class string) bool { return config.Serves(s, class) }

// class is the served loadBalancerClass; the caller holds r.mu.
func (r *ServiceReconciler) class() string {
	if r.cfg == nil {
		return ""
	}
	return r.cfg.LoadBalancerClass
}

func (r *ServiceReconciler) release(key string) {
	r.mu.Lock()
	before, ok := r.alloc.Assigned(key)
	r.alloc.Release(key)
	delete(r.lastError, key)
	delete(r.orphaned, key)
	delete(r.annotated, key)
	delete(r.unclassed, key)
	if ok {
		r.retryPendingLocked()
	}
	r.mu.Unlock()
	if ok {
		r.Pools.Touch(before.Pool)
	}
}

// retryPendingLocked queues again every Service whose allocation failed:
// addresses were freed, one of them may now fit. The caller holds r.mu.
func (r *ServiceReconciler) retryPendingLocked() {
	if r.queue == nil {
		return
	}
	for key := range r.lastError {
		ns, name, _ := strings.Cut(key, "/")
		r.queue.Add(reconcile.Request{NamespacedName: types.NamespacedName{Namespace: ns, Name: name}})
	}
}

// leaveUnclassed logs, once per Service, that a Service holding an address
// from lbstack is left alone while no stack names the served class.
func (r *ServiceReconciler) leaveUnclassed(ctx context.Context, key string) {
	r.mu.Lock()
	seen := r.unclassed[key]
	r.unclassed[key] = true
	r.mu.Unlock()
	if !seen {
		ctrl.LoggerFrom(ctx).Info("Leaving a Service of another loadBalancerClass alone: no LoadBalancerStack names the class lbstack serves, and the Service holds an address from lbstack")
	}
}

// fenced is the patch of every write to a Service: a merge patch that
// carries the resourceVersion it was computed from, so a write computed
// from a stale copy (a leader that lost its lease while its writes were in
// flight, an old cache) fails with a conflict instead of undoing what
// another writer did.
func fenced(before *corev1.Service) client.Patch {
	return client.MergeFromWithOptions(before, client.MergeFromWithOptimisticLock{})
}

// clearUnbacked removes from the status of a Service that could not be
// given an address the addresses the allocator does not hold for it: the
// allocator is the truth after a restore, so such an address belongs to
// another Service (the older claim won the restore) and the status would
// otherwise promise it to two Services for good.
func (r *ServiceReconciler) clearUnbacked(ctx context.Context, svc *corev1.Service) error {
	ips := ingressIPs(svc)
	if len(ips) == 0 {
		return nil
	}
	key := svc.Namespace + "/" + svc.Name
	var holders []string
	r.mu.Lock()
	_, held := r.alloc.Assigned(key)
	if !held {
		for _, ip := range ips {
			for _, h := range r.alloc.Holders(ip) {
				holders = append(holders, fmt.Sprintf("%s (Service %s)", ip, h))
			}
		}
	}
	r.mu.Unlock()
	if held {
		return nil
	}
	before := svc.DeepCopy()
	svc.Status.LoadBalancer.Ingress = nil
	meta.RemoveStatusCondition(&svc.Status.Conditions, ConditionAddressInPool)
	if err := r.Client.Status().Patch(ctx, svc, fenced(before)); err != nil {
		return fmt.Errorf("clearing the status of %s: %w", klog.KObj(svc), err)
	}
	if _, ok := svc.Annotations[lbv1.AnnotationAllocatedFromPool]; ok {
		before := svc.DeepCopy()
		delete(svc.Annotations, lbv1.AnnotationAllocatedFromPool)
		if err := r.Client.Patch(ctx, svc, fenced(before)); err != nil {
			return fmt.Errorf("removing the pool annotation of %s: %w", klog.KObj(svc), err)
		}
	}
	r.mu.Lock()
	delete(r.annotated, key)
	r.mu.Unlock()
	msg := fmt.Sprintf("The status named %s, which this Service does not hold", joinIPs(ips))
	if len(holders) > 0 {
		msg += ": held by " + strings.Join(holders, ", ") + ", which claimed it first"
	}
	msg += "; cleared, the Service waits for an address"
	ctrl.LoggerFrom(ctx).Info("Clearing addresses the Service does not hold", "ips", joinIPs(ips), "holders", holders)
	r.Recorder.Eventf(svc, nil, corev1.EventTypeWarning, ReasonAddressConflict, "Allocate", "%s", msg)
	return nil
}

// clear removes lbstack's address from a Service it no longer serves.
func (r *ServiceReconciler) clear(ctx context.Context, svc *corev1.Service) error {
	if _, ok := svc.Annotations[lbv1.AnnotationAllocatedFromPool]; !ok {
		return nil
	}
	if svc.Spec.Type == corev1.ServiceTypeLoadBalancer || len(svc.Status.LoadBalancer.Ingress) > 0 {
		patch := fenced(svc.DeepCopy())
		svc.Status.LoadBalancer.Ingress = nil
		if err := r.Client.Status().Patch(ctx, svc, patch); err != nil {
			return fmt.Errorf("clearing status of %s: %w", klog.KObj(svc), err)
		}
	}
	patch := fenced(svc.DeepCopy())
	delete(svc.Annotations, lbv1.AnnotationAllocatedFromPool)
	if err := r.Client.Patch(ctx, svc, patch); err != nil {
		return fmt.Errorf("removing annotation of %s: %w", klog.KObj(svc), err)
	}
	r.Recorder.Eventf(svc, nil, corev1.EventTypeNormal, ReasonIPReleased, "Release", "lbstack no longer serves this Service; its address was released")
	return nil
}

func (r *ServiceReconciler) describe(ctx context.Context, svc *corev1.Service) (ipam.Service, error) {
	return describeService(ctx, r.Client, svc)
}

// describeService turns a Service into the allocator's view of it. When
// the Service's request does not parse it returns the error and the
// description without the request (Restore still records its addresses).
func describeService(ctx context.Context, c client.Reader, svc *corev1.Service) (ipam.Service, error) {
	req, reqErr := config.ParseServiceRequest(svc)
	in := ipam.Service{
		Key:       svc.Namespace + "/" + svc.Name,
		Namespace: svc.Namespace,
		Labels:    labels.Set(svc.Labels),
		IPv4First: len(svc.Spec.IPFamilies) == 0 || svc.Spec.IPFamilies[0] == corev1.IPv4Protocol,
		Request:   req,
	}
	if p := svc.Spec.IPFamilyPolicy; p != nil {
		switch *p {
		case corev1.IPFamilyPolicyPreferDualStack:
			in.Policy = ipam.PreferDualStack
		case corev1.IPFamilyPolicyRequireDualStack:
			in.Policy = ipam.RequireDualStack
		}
	}
	for _, p := range svc.Spec.Ports {
		proto := string(p.Protocol)
		if proto == "" {
			proto = string(corev1.ProtocolTCP)
		}
		in.Ports = append(in.Ports, ipam.Port{Port: p.Port, Protocol: proto})
	}
	if svc.Spec.ExternalTrafficPolicy == corev1.ServiceExternalTrafficPolicyLocal {
		in.Backend = "local:" + labels.SelectorFromSet(svc.Spec.Selector).String()
	}
	var ns corev1.Namespace
	if err := c.Get(ctx, client.ObjectKey{Name: svc.Namespace}, &ns); err == nil {
		in.NamespaceLabels = labels.Set(ns.Labels)
	}
	return in, reqErr
}

// fail reports an allocation failure once per distinct reason.
func (r *ServiceReconciler) fail(ctx context.Context, svc *corev1.Service, err error) {
	key := svc.Namespace + "/" + svc.Name
	r.mu.Lock()
	repeated := r.lastError[key] == err.Error()
	r.lastError[key] = err.Error()
	r.mu.Unlock()
	if repeated {
		return
	}
	ctrl.LoggerFrom(ctx).Info("Cannot assign an address", "reason", err.Error())
	r.Recorder.Eventf(svc, nil, corev1.EventTypeWarning, ReasonAllocationFailed, "Allocate", "Cannot assign an address: %s", err.Error())
}

// write records the assignment in the Service: status (one write), the
// pool annotation, an event when the addresses changed.
func (r *ServiceReconciler) write(ctx context.Context, svc *corev1.Service, res ipam.Result, unchanged, orphan bool) error {
	key := svc.Namespace + "/" + svc.Name
	r.mu.Lock()
	delete(r.lastError, key)
	wasOrphan := r.orphaned[key]
	r.orphaned[key] = orphan
	r.mu.Unlock()

	want := make([]corev1.LoadBalancerIngress, len(res.IPs))
	vip := corev1.LoadBalancerIPModeVIP
	for i, ip := range res.IPs {
		want[i] = corev1.LoadBalancerIngress{IP: ip.String(), IPMode: &vip}
	}
	statusBefore := svc.DeepCopy()
	svc.Status.LoadBalancer.Ingress = want
	cond := metav1.Condition{Type: ConditionAddressInPool, Status: metav1.ConditionTrue, Reason: "InPool",
		Message: fmt.Sprintf("Address(es) from IPAddressPool %q", res.Pool), ObservedGeneration: svc.Generation}
	if orphan {
		cond.Status, cond.Reason = metav1.ConditionFalse, ReasonOutsidePool
		cond.Message = fmt.Sprintf("Address(es) %s are no longer in any IPAddressPool; the Service keeps them until it is changed", joinIPs(res.IPs))
	}
	if orphan || meta.FindStatusCondition(svc.Status.Conditions, ConditionAddressInPool) != nil {
		meta.SetStatusCondition(&svc.Status.Conditions, cond)
	}
	if !equality.Semantic.DeepEqual(statusBefore.Status, svc.Status) {
		if err := r.Client.Status().Patch(ctx, svc, fenced(statusBefore)); err != nil {
			return fmt.Errorf("writing status: %w", err)
		}
	}
	r.mu.Lock()
	written := r.annotated[key] == res.Pool
	r.mu.Unlock()
	if svc.Annotations[lbv1.AnnotationAllocatedFromPool] != res.Pool && res.Pool != "" && !written {
		before := svc.DeepCopy()
		if svc.Annotations == nil {
			svc.Annotations = map[string]string{}
		}
		svc.Annotations[lbv1.AnnotationAllocatedFromPool] = res.Pool
		if err := r.Client.Patch(ctx, svc, fenced(before)); err != nil {
			return fmt.Errorf("writing annotation: %w", err)
		}
		r.mu.Lock()
		r.annotated[key] = res.Pool
		r.mu.Unlock()
	}
	if orphan && !wasOrphan {
		r.Recorder.Eventf(svc, nil, corev1.EventTypeWarning, ReasonOutsidePool, "Allocate", "%s", cond.Message)
	}
	if !unchanged || !sameIngress(statusBefore.Status.LoadBalancer.Ingress, res.IPs) {
		ctrl.LoggerFrom(ctx).Info("Assigned address", "ips", joinIPs(res.IPs), "pool", res.Pool)
		r.Recorder.Eventf(svc, nil, corev1.EventTypeNormal, ReasonIPAllocated, "Allocate", "Assigned IP(s) %s from IPAddressPool %q", joinIPs(res.IPs), res.Pool)
	}
	return nil
}

func ingressIPs(s *corev1.Service) []netip.Addr {
	var out []netip.Addr
	for _, ing := range s.Status.LoadBalancer.Ingress {
		if a, err := netip.ParseAddr(ing.IP); err == nil {
			out = append(out, a)
		}
	}
	return out
}

func sameIPs(a, b []netip.Addr) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func sameIngress(ing []corev1.LoadBalancerIngress, ips []netip.Addr) bool {
	if len(ing) != len(ips) {
		return false
	}
	for i := range ips {
		if ing[i].IP != ips[i].String() {
			return false
		}
	}
	return true
}

func joinIPs(ips []netip.Addr) string {
	s := make([]string, len(ips))
	for i, ip := range ips {
		s[i] = ip.String()
	}
	return strings.Join(s, ",")
}

// listConfig reads the lbstack configuration objects.
func listConfig(ctx context.Context, c client.Reader) (config.Objects, error) {
	return configload.List(ctx, c)
}
