package controllers

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
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
	"github.com/lbstack/lbstack/internal/ipam"
	"github.com/lbstack/lbstack/internal/lbservice"
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
// A reconcile is a list of phases: get the Service, prepare the assigner
// (configuration, restore), classify the Service, describe it, assign its
// addresses, write them, record events. Allocation is serialized inside
// the assigner; the API writes that follow run concurrently across
// workers, each fenced by the Service's resourceVersion.
type ServiceReconciler struct {
	Client   client.Client
	Recorder events.EventRecorder

	assign *assigner
}

// NewServiceReconciler returns a reconciler with an empty allocator; the
// pool status writer reads the allocator's usage and is told which pools
// changed.
func NewServiceReconciler(c client.Client, rec events.EventRecorder, pools *PoolStatusWriter) *ServiceReconciler {
	a := newAssigner()
	if pools != nil {
		pools.Usage = a
		a.touched, a.touchedAll = pools.Touch, pools.TouchAll
	}
	return &ServiceReconciler{Client: c, Recorder: rec, assign: a}
}

// SetupWithManager registers the controller: Services, and every lbstack
// configuration kind (a change re-evaluates every LoadBalancer Service).
func (r *ServiceReconciler) SetupWithManager(mgr ctrl.Manager, workers int) error {
	configChanged := handler.EnqueueRequestsFromMapFunc(func(ctx context.Context, _ client.Object) []reconcile.Request {
		r.assign.configChanged()
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
		// Services that failed to get an address are queued again when
		// addresses free up: the assigner needs the queue.
		WatchesRawSource(source.Func(func(_ context.Context, q workqueue.TypedRateLimitingInterface[reconcile.Request]) error {
			r.assign.setQueue(q)
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

// class is what the classify phase decides about a Service.
type class int

const (
	// gone: the Service was deleted; its addresses are released.
	gone class = iota
	// unknown: no valid configuration was seen yet, so which Services
	// lbstack serves is unknown; nothing is released or cleared.
	unknown
	// foreign: lbstack does not serve the Service (another class, not a
	// LoadBalancer); addresses it got from lbstack are released and cleared.
	foreign
	// unclassed: a LoadBalancer Service of another class that holds an
	// address from lbstack while no stack names the served class (the
	// stack was deleted or is being replaced): left alone.
	unclassed
	// served: lbstack assigns its addresses.
	served
)

// Reconcile assigns, keeps or releases one Service's addresses.
func (r *ServiceReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	key := req.String()
	log := ctrl.LoggerFrom(ctx).WithValues("Service", klog.KRef(req.Namespace, req.Name))
	ctx = ctrl.LoggerInto(ctx, log)

	svc, err := r.get(ctx, req)
	if err != nil {
		return ctrl.Result{}, err
	}
	if err := r.assign.prepare(ctx, r.Client); err != nil {
		return ctrl.Result{}, err
	}
	cfg := r.assign.config()
	switch classify(svc, cfg) {
	case gone:
		r.assign.release(key)
		return ctrl.Result{}, nil
	case unknown:
		if lbservice.Serves(svc, "") && len(svc.Status.LoadBalancer.Ingress) == 0 {
			r.fail(ctx, svc, FailureNoConfiguration, errors.New("no valid lbstack configuration (no LoadBalancerStack or IPAddressPool, or the configuration is invalid)"))
		}
		return ctrl.Result{}, nil
	case unclassed:
		if r.assign.firstUnclassed(key) {
			log.Info("Leaving a Service of another loadBalancerClass alone: no LoadBalancerStack names the class lbstack serves, and the Service holds an address from lbstack")
		}
		return ctrl.Result{}, nil
	case foreign:
		r.assign.release(key)
		return r.result(ctx, r.clear(ctx, svc))
	}
	in, err := describeService(ctx, r.Client, svc)
	if err != nil {
		r.fail(ctx, svc, FailureInvalidRequest, err)
		return ctrl.Result{}, nil
	}
	got, err := r.assign.assign(in)
	if err != nil {
		r.fail(ctx, svc, failureReason(err), err)
		return r.result(ctx, r.clearUnbacked(ctx, svc))
	}
	before := svc.DeepCopy()
	if err := r.write(ctx, svc, got); err != nil {
		return r.result(ctx, err)
	}
	r.events(ctx, before, svc, got)
	return ctrl.Result{}, nil
}

// get reads the Service; nil when it is gone.
func (r *ServiceReconciler) get(ctx context.Context, req ctrl.Request) (*corev1.Service, error) {
	var svc corev1.Service
	if err := r.Client.Get(ctx, req.NamespacedName, &svc); apierrors.IsNotFound(err) {
		return nil, nil
	} else if err != nil {
		return nil, err
	}
	return &svc, nil
}

// classify decides what the controller does with svc under cfg (nil
// before a valid configuration was seen).
func classify(svc *corev1.Service, cfg *config.Config) class {
	switch {
	case svc == nil:
		return gone
	case cfg == nil:
		return unknown
	case lbservice.Serves(svc, cfg.LoadBalancerClass):
		return served
	case cfg.Stack == "" && svc.Spec.Type == corev1.ServiceTypeLoadBalancer && svc.Spec.LoadBalancerClass != nil &&
		svc.Annotations[lbv1.AnnotationAllocatedFromPool] != "":
		return unclassed
	}
	return foreign
}

// result turns the error of a write into the reconcile's result: a write
// computed from a stale copy (see fenced) is redone after the cache caught
// up instead of failing with backoff.
func (r *ServiceReconciler) result(ctx context.Context, err error) (ctrl.Result, error) {
	if apierrors.IsConflict(err) {
		ctrl.LoggerFrom(ctx).V(1).Info("The Service changed while it was written; reconciling again")
		return ctrl.Result{RequeueAfter: conflictRetry}, nil
	}
	return ctrl.Result{}, err
}

// conflictRetry is how soon a Service whose write met a newer version is
// reconciled again (the cache has the newer version by then, as a rule).
const conflictRetry = 100 * time.Millisecond

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
	ips := lbservice.IngressIPs(svc)
	if len(ips) == 0 {
		return nil
	}
	key := svc.Namespace + "/" + svc.Name
	holders, unbacked := r.assign.unbacked(key, ips)
	if !unbacked {
		return nil
	}
	before := svc.DeepCopy()
	svc.Status.LoadBalancer.Ingress = nil
	meta.RemoveStatusCondition(&svc.Status.Conditions, ConditionAddressInPool)
	if err := r.Client.Status().Patch(ctx, svc, fenced(before)); err != nil {
		return fmt.Errorf("clearing the status of %s: %w", klog.KObj(svc), err)
	}
	if err := r.annotate(ctx, svc, written{}); err != nil {
		return err
	}
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
	if err := r.annotate(ctx, svc, written{}); err != nil {
		return err
	}
	r.Recorder.Eventf(svc, nil, corev1.EventTypeNormal, ReasonIPReleased, "Release", "lbstack no longer serves this Service; its address was released")
	return nil
}

// describeService turns a Service into the allocator's view of it, by the
// rules of lbservice. When the Service's request does not parse it returns
// the error and the description without the request (a restore still
// records its addresses).
func describeService(ctx context.Context, c client.Reader, svc *corev1.Service) (ipam.Service, error) {
	req, reqErr := lbservice.ParseRequest(svc)
	in := ipam.Service{
		Key:       svc.Namespace + "/" + svc.Name,
		Namespace: svc.Namespace,
		Labels:    labels.Set(svc.Labels),
		IPv4First: len(svc.Spec.IPFamilies) == 0 || svc.Spec.IPFamilies[0] == corev1.IPv4Protocol,
		Request:   req,
		Sharing:   lbservice.SharingOf(svc),
	}
	if p := svc.Spec.IPFamilyPolicy; p != nil {
		switch *p {
		case corev1.IPFamilyPolicyPreferDualStack:
			in.Policy = ipam.PreferDualStack
		case corev1.IPFamilyPolicyRequireDualStack:
			in.Policy = ipam.RequireDualStack
		}
	}
	var ns corev1.Namespace
	if err := c.Get(ctx, client.ObjectKey{Name: svc.Namespace}, &ns); err == nil {
		in.NamespaceLabels = labels.Set(ns.Labels)
	}
	return in, reqErr
}

// fail counts an allocation failure (reason is its label in
// lbstack_controller_allocation_failures_total) and reports it once per
// distinct message.
func (r *ServiceReconciler) fail(ctx context.Context, svc *corev1.Service, reason string, err error) {
	r.assign.metrics.failed(reason)
	if r.assign.failed(svc.Namespace+"/"+svc.Name, err.Error()) {
		return
	}
	ctrl.LoggerFrom(ctx).Info("Cannot assign an address", "reason", err.Error())
	r.Recorder.Eventf(svc, nil, corev1.EventTypeWarning, ReasonAllocationFailed, "Allocate", "Cannot assign an address: %s", err.Error())
}

// write records the assignment in the Service: its status (one write when
// it changed) and the pool and sharing annotations (one write when either
// changed).
func (r *ServiceReconciler) write(ctx context.Context, svc *corev1.Service, got assignment) error {
	statusBefore := svc.DeepCopy()
	svc.Status.LoadBalancer.Ingress = ingress(got.res.IPs)
	if cond := inPool(svc, got); got.orphan || meta.FindStatusCondition(svc.Status.Conditions, ConditionAddressInPool) != nil {
		meta.SetStatusCondition(&svc.Status.Conditions, cond)
	}
	if !equality.Semantic.DeepEqual(statusBefore.Status, svc.Status) {
		if err := r.Client.Status().Patch(ctx, svc, fenced(statusBefore)); err != nil {
			return fmt.Errorf("writing status: %w", err)
		}
	}
	want := written{pool: got.res.Pool, shared: got.shared}
	if want.pool == "" {
		// An address outside every pool keeps the pool it was given.
		want.pool = svc.Annotations[lbv1.AnnotationAllocatedFromPool]
	}
	return r.annotate(ctx, svc, want)
}

// annotate makes the Service's pool and sharing annotations say w (an
// empty value removes one), in one write, unless the Service or the last
// write already says it.
func (r *ServiceReconciler) annotate(ctx context.Context, svc *corev1.Service, w written) error {
	key := svc.Namespace + "/" + svc.Name
	has := func(name, want string) bool {
		got, ok := svc.Annotations[name]
		return got == want && ok == (want != "")
	}
	if has(lbv1.AnnotationAllocatedFromPool, w.pool) && has(lbv1.AnnotationSharedAs, w.shared) || r.assign.annotations(key) == w && w != (written{}) {
		r.assign.setAnnotations(key, w)
		return nil
	}
	before := svc.DeepCopy()
	for name, v := range map[string]string{lbv1.AnnotationAllocatedFromPool: w.pool, lbv1.AnnotationSharedAs: w.shared} {
		switch {
		case v == "":
			delete(svc.Annotations, name)
		case svc.Annotations == nil:
			svc.Annotations = map[string]string{name: v}
		default:
			svc.Annotations[name] = v
		}
	}
	if err := r.Client.Patch(ctx, svc, fenced(before)); err != nil {
		return fmt.Errorf("writing the annotations of %s: %w", klog.KObj(svc), err)
	}
	r.assign.setAnnotations(key, w)
	return nil
}

// events records what a successful write changed: an address assigned
// (or moved), an address that left every pool.
func (r *ServiceReconciler) events(ctx context.Context, before, svc *corev1.Service, got assignment) {
	wasOrphan := r.assign.succeeded(svc.Namespace+"/"+svc.Name, got.orphan)
	if got.orphan && !wasOrphan {
		r.Recorder.Eventf(svc, nil, corev1.EventTypeWarning, ReasonOutsidePool, "Allocate", "%s", inPool(svc, got).Message)
	}
	unchanged := slices.Equal(got.before.IPs, got.res.IPs) && got.before.Pool != ""
	if !unchanged || !sameIngress(before.Status.LoadBalancer.Ingress, got.res.IPs) {
		ctrl.LoggerFrom(ctx).Info("Assigned address", "ips", joinIPs(got.res.IPs), "pool", got.res.Pool)
		r.Recorder.Eventf(svc, nil, corev1.EventTypeNormal, ReasonIPAllocated, "Allocate", "Assigned IP(s) %s from IPAddressPool %q", joinIPs(got.res.IPs), got.res.Pool)
	}
}

// inPool is the Service's AddressInPool condition for an assignment.
func inPool(svc *corev1.Service, got assignment) metav1.Condition {
	if got.orphan {
		return metav1.Condition{Type: ConditionAddressInPool, Status: metav1.ConditionFalse, Reason: ReasonOutsidePool, ObservedGeneration: svc.Generation,
			Message: fmt.Sprintf("Address(es) %s are no longer in any IPAddressPool; the Service keeps them until it is changed", joinIPs(got.res.IPs))}
	}
	return metav1.Condition{Type: ConditionAddressInPool, Status: metav1.ConditionTrue, Reason: "InPool", ObservedGeneration: svc.Generation,
		Message: fmt.Sprintf("Address(es) from IPAddressPool %q", got.res.Pool)}
}

// ingress is the status.loadBalancer.ingress that names ips.
func ingress(ips []netip.Addr) []corev1.LoadBalancerIngress {
	vip := corev1.LoadBalancerIPModeVIP
	out := make([]corev1.LoadBalancerIngress, len(ips))
	for i, ip := range ips {
		out[i] = corev1.LoadBalancerIngress{IP: ip.String(), IPMode: &vip}
	}
	return out
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
