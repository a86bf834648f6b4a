package controllers

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"

	"github.com/go-logr/logr"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	"k8s.io/klog/v2"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	lbv1 "github.com/lbstack/lbstack/api/v1alpha1"
	"github.com/lbstack/lbstack/internal/config"
	"github.com/lbstack/lbstack/internal/configload"
	"github.com/lbstack/lbstack/internal/render"
)

// Reasons of the LoadBalancerStack's conditions and events.
const (
	ReasonRolledOut            = "RolledOut"
	ReasonRollingOut           = "RollingOut"
	ReasonAsExpected           = "AsExpected"
	ReasonInvalidConfiguration = "InvalidConfiguration"
	ReasonApplyFailed          = "ApplyFailed"
	ReasonNotInForce           = "NotInForce"
	// ReasonConflictingObjects: objects conflicting with earlier ones are
	// left out of the configuration in force (condition ConflictsIgnored).
	ReasonConflictingObjects = "ConflictingObjects"
)

// StackReconciler is the operator: it renders the LoadBalancerStack in
// force into its children (internal/render), applies them with server-side
// apply under one field owner — writing nothing when the live children
// already hold the desired fields — removes children no longer desired,
// and reports honestly through the stack's status.
type StackReconciler struct {
	// Client reads from the operator's cache (restricted to what it owns)
	// and writes to the API server.
	Client client.Client
	// Recorder emits events on the stack.
	Recorder events.EventRecorder
	// Namespace receives the namespaced children.
	Namespace string
	// Image is the default image of the controller and the speakers.
	Image string
	// ImagePullSecrets are the default pull secrets of the controller and
	// the speakers (Secrets in Namespace).
	ImagePullSecrets []corev1.LocalObjectReference
	// Rand generates the memberlist key; crypto/rand when nil.
	Rand io.Reader
	// APIReader reads the memberlist key Secret from the API server, not
	// the cache (which holds only labelled children: a Secret that lost
	// its label must not look missing, or the key would be replaced). The
	// Client when nil.
	APIReader client.Reader
	// Metrics counts applies and repaired drift and reports the stacks'
	// conditions; nil: no metrics.
	Metrics *OperatorMetrics
}

// SetupWithManager registers the reconciler: it follows stacks, the
// children they own, and the standalone configuration (which changes what
// is valid and which BGP password Secrets the speakers may read).
func (r *StackReconciler) SetupWithManager(mgr ctrl.Manager) error {
	allStacks := handler.EnqueueRequestsFromMapFunc(func(ctx context.Context, _ client.Object) []reconcile.Request {
		var l lbv1.LoadBalancerStackList
		if err := r.Client.List(ctx, &l); err != nil {
			return nil
		}
		out := make([]reconcile.Request, 0, len(l.Items))
		for _, s := range l.Items {
			out = append(out, reconcile.Request{NamespacedName: types.NamespacedName{Name: s.Name}})
		}
		return out
	})
	b := ctrl.NewControllerManagedBy(mgr).
		Named("loadbalancerstack").
		For(&lbv1.LoadBalancerStack{}, builder.WithPredicates(predicate.Or(predicate.GenerationChangedPredicate{}, predicate.LabelChangedPredicate{}, predicate.AnnotationChangedPredicate{})))
	for _, o := range []client.Object{&corev1.ServiceAccount{}, &corev1.Secret{}, &corev1.Service{}, &rbacv1.ClusterRole{}, &rbacv1.ClusterRoleBinding{}, &rbacv1.Role{}, &rbacv1.RoleBinding{}, &appsv1.Deployment{}, &appsv1.DaemonSet{}} {
		b = b.Owns(o)
	}
	// Configuration kinds: owned children and standalone objects alike
	// can change validity, pool usage and the password Secrets.
	for _, o := range []client.Object{&lbv1.IPAddressPool{}, &lbv1.BGPPeer{}, &lbv1.BFDProfile{}, &lbv1.Community{}, &lbv1.L2Advertisement{}, &lbv1.BGPAdvertisement{}} {
		b = b.Watches(o, allStacks)
	}
	return b.Complete(r)
}

// Reconcile runs the phases for one stack and writes its status once.
func (r *StackReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	stack := &lbv1.LoadBalancerStack{}
	if err := r.Client.Get(ctx, req.NamespacedName, stack); err != nil {
		if apierrors.IsNotFound(err) {
			r.Metrics.forgetStack(req.Name)
		}
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if !stack.DeletionTimestamp.IsZero() {
		r.Metrics.forgetStack(stack.Name)
		return ctrl.Result{}, nil // garbage collection removes the children
	}
	log := ctrl.LoggerFrom(ctx).WithValues("LoadBalancerStack", klog.KObj(stack))
	ctx = ctrl.LoggerInto(ctx, log)

	before := stack.DeepCopy()
	st := &stackState{stack: stack}
	err := r.configure(ctx, st)
	if err == nil && st.degraded == nil {
		err = r.apply(ctx, st)
	}
	if err2 := r.observe(ctx, st); err2 != nil {
		err = errors.Join(err, err2)
	}
	if err2 := r.writeStatus(ctx, before, st); err2 != nil {
		err = errors.Join(err, err2)
	}
	r.Metrics.observeStack(stack)
	if err == nil && st.degraded != nil && st.degraded.Reason != ReasonApplyFailed {
		// Invalid configuration: retrying cannot help; a change to the
		// stack or the configuration triggers the next pass.
		return ctrl.Result{}, reconcile.TerminalError(errors.New(st.degraded.Message))
	}
	return ctrl.Result{}, err
}

// stackState is what the phases learn about one stack.
type stackState struct {
	stack    *lbv1.LoadBalancerStack
	config   config.Objects
	cfg      *config.Config    // the valid configuration; nil when not
	degraded *metav1.Condition // nil: not degraded
	// ignored are the items left out of the configuration in force
	// because they conflict with earlier ones.
	ignored []config.Ignored
}

// configure validates the configuration with the stack in it, the same
// function the webhooks and the speakers use.
func (r *StackReconciler) configure(ctx context.Context, st *stackState) error {
	objs, err := configload.List(ctx, r.Client)
	if err != nil {
		return fmt.Errorf("reading the configuration: %w", err)
	}
	st.config = objs
	if inForce := config.StackInForce(objs.Stacks); inForce != nil && inForce.Name != st.stack.Name {
		st.degraded = &metav1.Condition{Type: lbv1.ConditionDegraded, Status: metav1.ConditionTrue, Reason: ReasonNotInForce,
			Message: fmt.Sprintf("only one LoadBalancerStack may exist in a cluster and %q is in force; this one is ignored", inForce.Name)}
		return nil
	}
	cfg, ignored, _, errs := config.InForce(objs)
	st.cfg, st.ignored = cfg, ignored
	if len(errs) > 0 {
		msgs := make([]string, 0, 3)
		for i, e := range errs {
			if i == 3 {
				msgs = append(msgs, fmt.Sprintf("and %d more", len(errs)-3))
				break
			}
			msgs = append(msgs, e.Error())
		}
		st.degraded = &metav1.Condition{Type: lbv1.ConditionDegraded, Status: metav1.ConditionTrue, Reason: ReasonInvalidConfiguration,
			Message: "The configuration is invalid; nothing was changed: " + strings.Join(msgs, "; ")}
	}
	return nil
}

// apply renders the children, applies those that differ from the live
// objects and deletes the children no longer rendered.
func (r *StackReconciler) apply(ctx context.Context, st *stackState) error {
	log := ctrl.LoggerFrom(ctx)
	key, err := r.memberlistKey(ctx, st.stack)
	if err != nil {
		return r.applyFailed(st, err)
	}
	desired := render.All(st.stack, render.Params{
		Namespace:        r.Namespace,
		Image:            r.Image,
		ImagePullSecrets: r.ImagePullSecrets,
		MemberlistKey:    key,
		PasswordSecrets:  passwordSecrets(st.cfg),
	})
	want := map[string]bool{}
	var errs []error
	// Identities, permissions, configuration and Services first, in
	// parallel; the workloads that use them after.
	var first, last []client.Object
	for _, obj := range desired {
		want[render.Key(obj)] = true
		switch obj.(type) {
		case *appsv1.Deployment, *appsv1.DaemonSet:
			last = append(last, obj)
		default:
			first = append(first, obj)
		}
	}
	for _, batch := range [][]client.Object{first, last} {
		var (
			mu sync.Mutex
			wg sync.WaitGroup
		)
		sem := make(chan struct{}, applyParallelism)
		for _, obj := range batch {
			wg.Add(1)
			sem <- struct{}{}
			go func() {
				defer func() { <-sem; wg.Done() }()
				if err := r.applyOne(ctx, log, obj); err != nil {
					mu.Lock()
					errs = append(errs, err)
					mu.Unlock()
				}
			}()
		}
		wg.Wait()
	}
	if err := r.prune(ctx, st.stack, want); err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return r.applyFailed(st, err)
	}
	return nil
}

// applyParallelism bounds the concurrent writes of one pass.
const applyParallelism = 8

// applyOne applies obj unless the live object already contains it. A live
// object that lacks desired fields although it carries the hash of the
// very desired state (render.AnnotationHash) has drifted: someone changed
// what the operator owns since its last apply.
func (r *StackReconciler) applyOne(ctx context.Context, log logr.Logger, obj client.Object) error {
	u, err := render.Desired(obj)
	if err != nil {
		return err
	}
	kind := obj.GetObjectKind().GroupVersionKind().Kind
	live := obj.DeepCopyObject().(client.Object)
	err = r.Client.Get(ctx, client.ObjectKeyFromObject(obj), live)
	drifted := false
	switch {
	case err == nil:
		liveMap, err := render.Normalize(live)
		if err == nil && render.Contains(liveMap, u.Object) {
			return nil
		}
		drifted = live.GetAnnotations()[render.AnnotationHash] == u.GetAnnotations()[render.AnnotationHash]
	case !apierrors.IsNotFound(err):
		return fmt.Errorf("reading %s: %w", render.Key(obj), err)
	}
	if drifted {
		log.Info("Repairing drifted "+kind, "name", obj.GetName(), "namespace", obj.GetNamespace())
	} else {
		log.Info("Applying "+kind, "name", obj.GetName(), "namespace", obj.GetNamespace())
	}
	if err := r.Client.Apply(ctx, client.ApplyConfigurationFromUnstructured(u), client.FieldOwner(render.FieldOwner), client.ForceOwnership); err != nil {
		return fmt.Errorf("applying %s: %w", render.Key(obj), err)
	}
	r.Metrics.childApplied(kind, drifted)
	return nil
}

func (r *StackReconciler) applyFailed(st *stackState, err error) error {
	st.degraded = &metav1.Condition{Type: lbv1.ConditionDegraded, Status: metav1.ConditionTrue, Reason: ReasonApplyFailed, Message: err.Error()}
	return err
}

// prune deletes the stack's children that are not desired any more: only
// objects whose controller reference is this stack, so objects created by
// hand are never touched.
func (r *StackReconciler) prune(ctx context.Context, stack *lbv1.LoadBalancerStack, want map[string]bool) error {
	sel := client.MatchingLabelsSelector{Selector: labels.SelectorFromSet(labels.Set{render.LabelStack: stack.Name, render.LabelManagedBy: render.FieldOwner})}
	var errs []error
	for _, gvk := range render.Kinds() {
		list, err := r.Client.Scheme().New(gvk.GroupVersion().WithKind(gvk.Kind + "List"))
		if err != nil {
			return err
		}
		l := list.(client.ObjectList)
		if err := r.Client.List(ctx, l, sel); err != nil {
			errs = append(errs, fmt.Errorf("listing %s: %w", gvk.Kind, err))
			continue
		}
		items, err := meta.ExtractList(l)
		if err != nil {
			return err
		}
		for _, it := range items {
			o := it.(client.Object)
			o.GetObjectKind().SetGroupVersionKind(gvk)
			if want[render.Key(o)] || !ownedBy(o, stack) {
				continue
			}
			ctrl.LoggerFrom(ctx).Info("Deleting "+gvk.Kind+" no longer in the stack", "name", o.GetName(), "namespace", o.GetNamespace())
			if err := r.Client.Delete(ctx, o, client.Preconditions{UID: ptr.To(o.GetUID())}); client.IgnoreNotFound(err) != nil {
				errs = append(errs, fmt.Errorf("deleting %s: %w", render.Key(o), err))
			}
		}
	}
	return errors.Join(errs...)
}

func ownedBy(o client.Object, stack *lbv1.LoadBalancerStack) bool {
	ref := metav1.GetControllerOf(o)
	return ref != nil && ref.UID == stack.UID
}

// memberlistKey returns the key in the existing Secret or a new one. It is
// generated once and then kept: the Secret is only ever re-applied with
// the key it already holds (read from the API server, so that a Secret that
// lost its label keeps its key). A key that must be replaced — the Secret
// was deleted or holds no usable key while speakers run — is replaced
// loudly: a Warning event on the stack. The speakers rotate to it without a
// split (they keep decrypting with the old key) and roll, since their pod
// template carries the key's hash.
func (r *StackReconciler) memberlistKey(ctx context.Context, stack *lbv1.LoadBalancerStack) ([]byte, error) {
	reader := r.APIReader
	if reader == nil {
		reader = r.Client
	}
	var s corev1.Secret
	err := reader.Get(ctx, types.NamespacedName{Namespace: r.Namespace, Name: render.MemberlistSecretName}, &s)
	if err == nil && len(s.Data[render.MemberlistSecretKey]) == render.MemberlistKeySize {
		return s.Data[render.MemberlistSecretKey], nil
	}
	if err != nil && !apierrors.IsNotFound(err) {
		return nil, fmt.Errorf("reading the memberlist key: %w", err)
	}
	var ds appsv1.DaemonSet
	if derr := r.Client.Get(ctx, types.NamespacedName{Namespace: r.Namespace, Name: render.SpeakerName}, &ds); derr == nil {
		why := "was deleted"
		if err == nil {
			why = fmt.Sprintf("holds no %d-byte key %q", render.MemberlistKeySize, render.MemberlistSecretKey)
		}
		r.Recorder.Eventf(stack, nil, corev1.EventTypeWarning, "MemberlistKeyReplaced", "Render",
			"Secret %s/%s %s while speakers run: generated a new memberlist key; the speakers rotate to it (still decrypting the old one) and roll",
			r.Namespace, render.MemberlistSecretName, why)
	}
	src := r.Rand
	if src == nil {
		src = rand.Reader
	}
	key := make([]byte, render.MemberlistKeySize)
	if _, err := io.ReadFull(src, key); err != nil {
		return nil, fmt.Errorf("generating the memberlist key: %w", err)
	}
	ctrl.LoggerFrom(ctx).Info("Generating the memberlist key", "Secret", klog.KRef(r.Namespace, render.MemberlistSecretName))
	return key, nil
}

// passwordSecrets lists the BGP password Secrets of the peers and the key
// Secrets of the BFD profiles in force (inline and standalone, as
// config.Build resolved them).
func passwordSecrets(cfg *config.Config) []types.NamespacedName {
	var out []types.NamespacedName
	for _, p := range cfg.Peers {
		if ref := p.PasswordSecret; ref != nil {
			out = append(out, types.NamespacedName{Namespace: ref.Namespace, Name: ref.Name})
		}
	}
	// BFD keys are read the same way.
	for _, p := range cfg.BFDProfiles {
		if a := p.Auth; a != nil {
			out = append(out, types.NamespacedName{Namespace: a.KeySecret.Namespace, Name: a.KeySecret.Name})
		}
	}
	return out
}

// observe reads the workloads' roll-out and the pools' usage into the
// stack's status and sets Available and Progressing.
func (r *StackReconciler) observe(ctx context.Context, st *stackState) error {
	s := st.stack
	var ds appsv1.DaemonSet
	var dep appsv1.Deployment
	dsErr := r.Client.Get(ctx, types.NamespacedName{Namespace: r.Namespace, Name: render.SpeakerName}, &ds)
	depErr := r.Client.Get(ctx, types.NamespacedName{Namespace: r.Namespace, Name: render.ControllerName}, &dep)
	if err := errors.Join(client.IgnoreNotFound(dsErr), client.IgnoreNotFound(depErr)); err != nil {
		return err
	}
	ro := rollout{dsFound: dsErr == nil, depFound: depErr == nil, ds: &ds, dep: &dep}
	s.Status.SpeakersDesired = ds.Status.DesiredNumberScheduled
	s.Status.SpeakersReady = ds.Status.NumberReady
	s.Status.Speakers = fmt.Sprintf("%d/%d", ds.Status.NumberReady, ds.Status.DesiredNumberScheduled)
	s.Status.ControllerReady = dep.Status.ReadyReplicas

	s.Status.Pools = nil
	if st.degraded == nil || st.degraded.Reason != ReasonNotInForce {
		for _, p := range st.config.Pools {
			if ownedBy(&p, s) {
				s.Status.Pools = append(s.Status.Pools, lbv1.NamedPoolUsage{Name: p.Name, PoolUsage: *p.Status.PoolUsage.DeepCopy()})
			}
		}
		// The cache lists in no particular order.
		slices.SortFunc(s.Status.Pools, func(a, b lbv1.NamedPoolUsage) int { return strings.Compare(a.Name, b.Name) })
	}

	gen := s.Generation
	done, progress := ro.state()
	switch {
	case st.degraded != nil && st.degraded.Reason == ReasonNotInForce:
		setCondition(s, lbv1.ConditionAvailable, metav1.ConditionFalse, ReasonNotInForce, st.degraded.Message, gen)
		setCondition(s, lbv1.ConditionProgressing, metav1.ConditionFalse, ReasonNotInForce, st.degraded.Message, gen)
	case done:
		setCondition(s, lbv1.ConditionAvailable, metav1.ConditionTrue, ReasonRolledOut, progress, gen)
		setCondition(s, lbv1.ConditionProgressing, metav1.ConditionFalse, ReasonRolledOut, progress, gen)
	default:
		setCondition(s, lbv1.ConditionAvailable, metav1.ConditionFalse, ReasonRollingOut, progress, gen)
		setCondition(s, lbv1.ConditionProgressing, metav1.ConditionTrue, ReasonRollingOut, progress, gen)
	}
	if st.degraded != nil {
		setCondition(s, lbv1.ConditionDegraded, metav1.ConditionTrue, st.degraded.Reason, st.degraded.Message, gen)
	} else {
		setCondition(s, lbv1.ConditionDegraded, metav1.ConditionFalse, ReasonAsExpected, "The configuration is valid and every child is applied", gen)
	}
	if len(st.ignored) > 0 {
		setCondition(s, lbv1.ConditionConflictsIgnored, metav1.ConditionTrue, ReasonConflictingObjects, ignoredMessage(st.ignored), gen)
	} else if st.cfg != nil {
		meta.RemoveStatusCondition(&s.Status.Conditions, lbv1.ConditionConflictsIgnored)
	}
	s.Status.ObservedGeneration = gen
	return nil
}

func setCondition(s *lbv1.LoadBalancerStack, typ string, status metav1.ConditionStatus, reason, msg string, gen int64) {
	meta.SetStatusCondition(&s.Status.Conditions, metav1.Condition{Type: typ, Status: status, Reason: reason, Message: msg, ObservedGeneration: gen})
}

// rollout judges whether the workloads run what was last applied.
type rollout struct {
	dsFound, depFound bool
	ds                *appsv1.DaemonSet
	dep               *appsv1.Deployment
}

// state reports whether both workloads are fully rolled out, and a message
// saying how far they are.
func (ro rollout) state() (bool, string) {
	var waiting []string
	if !ro.dsFound {
		waiting = append(waiting, "the speaker DaemonSet does not exist yet")
	} else {
		st := ro.ds.Status
		switch {
		case st.ObservedGeneration < ro.ds.Generation:
			waiting = append(waiting, "the speaker DaemonSet's change is not observed yet")
		case st.UpdatedNumberScheduled < st.DesiredNumberScheduled || st.NumberAvailable < st.DesiredNumberScheduled:
			waiting = append(waiting, fmt.Sprintf("speakers: %d of %d updated, %d available", st.UpdatedNumberScheduled, st.DesiredNumberScheduled, st.NumberAvailable))
		}
	}
	if !ro.depFound {
		waiting = append(waiting, "the controller Deployment does not exist yet")
	} else {
		st := ro.dep.Status
		want := int32(1)
		if ro.dep.Spec.Replicas != nil {
			want = *ro.dep.Spec.Replicas
		}
		switch {
		case st.ObservedGeneration < ro.dep.Generation:
			waiting = append(waiting, "the controller Deployment's change is not observed yet")
		case st.UpdatedReplicas < want || st.AvailableReplicas < want || st.Replicas > want:
			waiting = append(waiting, fmt.Sprintf("controller: %d of %d updated, %d available", st.UpdatedReplicas, want, st.AvailableReplicas))
		}
	}
	if len(waiting) == 0 {
		return true, fmt.Sprintf("%d speakers and %d controller replicas run the current version", ro.ds.Status.NumberAvailable, ro.dep.Status.AvailableReplicas)
	}
	return false, "Waiting: " + strings.Join(waiting, "; ")
}

// writeStatus writes the status when it changed, and emits an event for
// every condition that flipped.
func (r *StackReconciler) writeStatus(ctx context.Context, before *lbv1.LoadBalancerStack, st *stackState) error {
	s := st.stack
	if equality.Semantic.DeepEqual(before.Status, s.Status) {
		return nil
	}
	for _, typ := range []string{lbv1.ConditionAvailable, lbv1.ConditionProgressing, lbv1.ConditionDegraded} {
		now := meta.FindStatusCondition(s.Status.Conditions, typ)
		old := meta.FindStatusCondition(before.Status.Conditions, typ)
		if now == nil || (old != nil && old.Status == now.Status && old.Reason == now.Reason) {
			continue
		}
		if old == nil && now.Status == metav1.ConditionFalse && typ == lbv1.ConditionDegraded {
			continue // not degraded from the start: nothing to tell
		}
		kind := corev1.EventTypeNormal
		if (typ == lbv1.ConditionDegraded && now.Status == metav1.ConditionTrue) || (typ == lbv1.ConditionAvailable && now.Status == metav1.ConditionFalse && old != nil) {
			kind = corev1.EventTypeWarning
		}
		r.Recorder.Eventf(s, nil, kind, now.Reason, "Reconcile", "%s is %s (%s): %s", typ, now.Status, now.Reason, now.Message)
	}
	if now := meta.FindStatusCondition(s.Status.Conditions, lbv1.ConditionConflictsIgnored); now != nil {
		if old := meta.FindStatusCondition(before.Status.Conditions, lbv1.ConditionConflictsIgnored); old == nil || old.Message != now.Message {
			r.Recorder.Eventf(s, nil, corev1.EventTypeWarning, ReasonConflictingObjects, "Reconcile", "%s", now.Message)
			for _, ig := range st.ignored {
				// An inline item has no object of its own: the event on
				// the stack names it.
				if o := st.config.Object(ig.Kind, ig.Name); o != nil && ig.Stack == "" {
					r.Recorder.Eventf(o, s, corev1.EventTypeWarning, ReasonConflictingObjects, "Reconcile",
						"Ignored: it conflicts with an earlier object: %s", ig.Errors.ToAggregate().Error())
				}
			}
		}
	}
	if err := r.Client.Status().Patch(ctx, s, client.MergeFrom(before)); err != nil {
		return fmt.Errorf("writing status: %w", err)
	}
	return nil
}

// ignoredMessage says which items are left out and why.
func ignoredMessage(ignored []config.Ignored) string {
	parts := make([]string, 0, len(ignored))
	for _, ig := range ignored {
		parts = append(parts, fmt.Sprintf("%s is ignored: %s", ig, ig.Errors.ToAggregate().Error()))
	}
	return "Objects that conflict with earlier ones got in anyway; the later of each pair is left out and the rest is in force: " + strings.Join(parts, "; ")
}
