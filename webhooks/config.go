// Package webhooks holds lbstack's admission webhooks, served by the
// operator: validators for every lbstack.io configuration kind, which list
// what exists, swap in the incoming object and call config.Build, the
// project's one validity function; and a Service webhook that only warns.
package webhooks

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"sort"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"sigs.k8s.io/controller-runtime/pkg/client"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	lbv1 "github.com/lbstack/lbstack/api/v1alpha1"
	"github.com/lbstack/lbstack/internal/config"
)

// ConfigValidator validates objects of one lbstack configuration kind
// against the rest of the configuration. It rejects a change that brings
// in an error config.Build did not report before, so a configuration that
// was already broken (say, created while the webhook was down) can still
// be repaired one object at a time.
type ConfigValidator[T client.Object] struct {
	// Reader lists the configuration and Services; use an uncached reader
	// so two quick changes cannot both pass against a stale view.
	Reader client.Reader
	// Kind is T's kind, for messages.
	Kind string
	// Resource is T's plural resource name, for Forbidden errors.
	Resource string
	// Namespace is where password Secrets without a namespace live (the
	// operator's namespace).
	Namespace string
}

var _ admission.Validator[*lbv1.IPAddressPool] = &ConfigValidator[*lbv1.IPAddressPool]{}

// ValidateCreate checks the configuration with obj added.
func (v *ConfigValidator[T]) ValidateCreate(ctx context.Context, obj T) (admission.Warnings, error) {
	objs, err := listObjects(ctx, v.Reader)
	if err != nil {
		return nil, apierrors.NewInternalError(err)
	}
	return v.judge(ctx, obj, with(objs, obj, true), with(objs, obj, false), false)
}

// ValidateUpdate checks the configuration with newObj in place of oldObj.
func (v *ConfigValidator[T]) ValidateUpdate(ctx context.Context, oldObj, newObj T) (admission.Warnings, error) {
	objs, err := listObjects(ctx, v.Reader)
	if err != nil {
		return nil, apierrors.NewInternalError(err)
	}
	return v.judge(ctx, newObj, with(objs, oldObj, false), with(objs, newObj, false), false)
}

// ValidateDelete refuses to delete what others still use: a BFDProfile or
// Community something refers to, a pool whose addresses Services hold.
//
// A child of a LoadBalancerStack that is gone or being deleted (its
// controller reference names a stack that no longer exists, by UID, or
// has a deletionTimestamp) is the garbage collector's to remove: refusing
// would leave it behind for good. Its delete is allowed, with a warning
// naming what still uses it (the Services that keep their addresses, for
// a pool). A child of a live stack is judged as any object: the stack's
// inline item still defines it, so deleting it takes nothing away (the
// operator re-creates it).
func (v *ConfigValidator[T]) ValidateDelete(ctx context.Context, obj T) (admission.Warnings, error) {
	objs, err := listObjects(ctx, v.Reader)
	if err != nil {
		return nil, apierrors.NewInternalError(err)
	}
	if owner, going := ownerGoing(obj, objs.Stacks); going {
		return v.allowChildDelete(ctx, obj, owner, objs)
	}
	return v.judge(ctx, obj, with(objs, obj, false), with(objs, obj, true), true)
}

// ownerGoing returns the controller reference of obj when it is a
// LoadBalancerStack's child, and whether that stack is gone or being deleted.
func ownerGoing(obj client.Object, stacks []lbv1.LoadBalancerStack) (*metav1.OwnerReference, bool) {
	ref := config.StackController(obj)
	if ref == nil {
		return nil, false
	}
	for i := range stacks {
		if s := &stacks[i]; s.UID == ref.UID {
			return ref, !s.DeletionTimestamp.IsZero()
		}
	}
	return ref, true
}

// allowChildDelete allows the delete of obj, a child of the stack owner
// (its controller reference) that is gone or going, and warns about what it leaves without:
// what deleting obj would take away if the stack were gone and obj a
// standalone object.
func (v *ConfigValidator[T]) allowChildDelete(ctx context.Context, obj T, ownerRef *metav1.OwnerReference, objs config.Objects) (admission.Warnings, error) {
	owner := ownerRef.Name
	objs.Stacks = slices.DeleteFunc(slices.Clone(objs.Stacks), func(s lbv1.LoadBalancerStack) bool { return s.UID == ownerRef.UID })
	standalone := obj.DeepCopyObject().(T)
	standalone.SetOwnerReferences(nil)
	before := with(objs, standalone, false)
	after := with(objs, obj, true)
	_, _, errsBefore := config.Build(before)
	_, _, errsAfter := config.Build(after)
	var warnings admission.Warnings
	if newErrs := subtract(errsAfter, errsBefore); len(newErrs) > 0 {
		users := make([]string, 0, len(newErrs))
		for _, e := range newErrs {
			users = append(users, e.Field)
		}
		warnings = append(warnings, fmt.Sprintf("%s %q goes away with its LoadBalancerStack %q though it is still in use by %s", v.Kind, obj.GetName(), owner, list(users)))
	}
	svcs, err := v.services(ctx)
	if err != nil {
		return nil, apierrors.NewInternalError(err)
	}
	for _, l := range poolLosses(svcs, before, after) {
		if !l.stays {
			warnings = append(warnings, fmt.Sprintf("IPAddressPool %q goes away with its LoadBalancerStack %q while Services hold its addresses: %s; they keep their IPs but nothing announces them", l.pool, owner, list(l.holders)))
		}
	}
	if len(warnings) > 0 {
		logf.FromContext(ctx).Info("Allowing the delete of a LoadBalancerStack's child still in use: the stack is gone or being deleted",
			"kind", v.Kind, "name", obj.GetName(), "LoadBalancerStack", owner, "warnings", []string(warnings))
	}
	return warnings, nil
}

func (v *ConfigValidator[T]) judge(ctx context.Context, obj T, before, after config.Objects, deleting bool) (admission.Warnings, error) {
	_, warnsBefore, errsBefore := config.Build(before)
	_, warnsAfter, errsAfter := config.Build(after)
	newErrs := subtract(errsAfter, errsBefore)
	warnings := admission.Warnings(subtractStrings(warnsAfter, warnsBefore))
	gk := schema.GroupKind{Group: lbv1.GroupVersion.Group, Kind: v.Kind}

	if deleting && len(newErrs) > 0 {
		users := make([]string, 0, len(newErrs))
		for _, e := range newErrs {
			users = append(users, e.Field)
		}
		return warnings, apierrors.NewForbidden(schema.GroupResource{Group: gk.Group, Resource: v.Resource}, obj.GetName(),
			fmt.Errorf("%s %q is still in use by %s; change those first", v.Kind, obj.GetName(), strings.Join(users, ", ")))
	}
	if len(newErrs) > 0 {
		return warnings, apierrors.NewInvalid(gk, obj.GetName(), newErrs)
	}
	if !deleting {
		warnings = append(warnings, v.passwordWarnings(ctx, obj)...)
	}

	// Pools that disappear, or shrink, under Services that hold their addresses.
	svcs, err := v.services(ctx)
	if err != nil {
		return warnings, apierrors.NewInternalError(err)
	}
	var inUse []string
	_, isStack := any(obj).(*lbv1.LoadBalancerStack)
	for _, l := range poolLosses(svcs, before, after) {
		switch {
		case !l.stays && deleting && isStack:
			warnings = append(warnings, fmt.Sprintf("IPAddressPool %q goes away with this stack while Services hold its addresses: %s; they keep their IPs but nothing announces them", l.pool, list(l.holders)))
		case !l.stays:
			inUse = append(inUse, fmt.Sprintf("IPAddressPool %q is still in use by Services %s", l.pool, list(l.holders)))
		default:
			warnings = append(warnings, fmt.Sprintf("IPAddressPool %q no longer contains addresses held by Services %s; they keep their IPs and get a Warning event until they are changed", l.pool, list(l.holders)))
		}
	}
	if len(inUse) > 0 {
		sort.Strings(inUse)
		return warnings, apierrors.NewForbidden(schema.GroupResource{Group: gk.Group, Resource: v.Resource}, obj.GetName(),
			fmt.Errorf("%s; release their IPs first (delete the Services, or move them to another pool)", strings.Join(inUse, "; ")))
	}
	return warnings, nil
}

func (v *ConfigValidator[T]) services(ctx context.Context) ([]corev1.Service, error) {
	var l corev1.ServiceList
	if err := v.Reader.List(ctx, &l); err != nil {
		return nil, fmt.Errorf("listing Services: %w", err)
	}
	return l.Items, nil
}

// poolLoss is a pool that disappears (stays false) or shrinks under
// Services that hold its addresses.
type poolLoss struct {
	pool    string
	stays   bool
	holders []string
}

// poolLosses compares the pools of before and after and returns, sorted
// by pool name, those that lose addresses Services hold.
func poolLosses(svcs []corev1.Service, before, after config.Objects) []poolLoss {
	var out []poolLoss
	poolsAfter := poolRanges(after)
	for name, rangesBefore := range poolRanges(before) {
		rangesAfter, stays := poolsAfter[name]
		if holders := holdersOf(svcs, name, rangesBefore, rangesAfter); len(holders) > 0 {
			out = append(out, poolLoss{pool: name, stays: stays, holders: holders})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].pool < out[j].pool })
	return out
}

// poolRanges maps every pool in force in objs (standalone and inline) to
// its parsable ranges. A stack's rendered children are skipped, as
// config.Build skips them: the stack's inline item is the pool, so
// deleting or pruning a child takes no address away, and removing the
// inline item (or the stack) does.
func poolRanges(objs config.Objects) map[string][]config.Range {
	out := map[string][]config.Range{}
	add := func(name string, addrs []lbv1.PoolAddress) {
		rs := []config.Range{}
		for _, a := range addrs {
			if r, err := config.ParseRange(string(a)); err == nil {
				rs = append(rs, r)
			}
		}
		out[name] = rs
	}
	for _, p := range objs.Pools {
		if !config.OwnedByStack(&p.ObjectMeta) {
			add(p.Name, p.Spec.Addresses)
		}
	}
	for _, s := range objs.Stacks {
		for _, p := range s.Spec.Pools {
			add(p.Name, p.Addresses)
		}
	}
	return out
}

// holdersOf lists the Services holding an address of pool name (by the
// controller's annotation or by IP) that is not in rangesAfter.
func holdersOf(svcs []corev1.Service, name string, before, after []config.Range) []string {
	var out []string
	in := func(rs []config.Range, a netip.Addr) bool {
		for _, r := range rs {
			if r.Contains(a) {
				return true
			}
		}
		return false
	}
	for _, s := range svcs {
		for _, ing := range s.Status.LoadBalancer.Ingress {
			a, err := netip.ParseAddr(ing.IP)
			if err != nil {
				continue
			}
			fromPool := s.Annotations[lbv1.AnnotationAllocatedFromPool] == name || in(before, a)
			if fromPool && !in(after, a) {
				out = append(out, fmt.Sprintf("%s/%s (%s)", s.Namespace, s.Name, a))
				break
			}
		}
	}
	sort.Strings(out)
	return out
}

// list joins names, eliding after ten.
func list(names []string) string {
	const max = 10
	if len(names) <= max {
		return strings.Join(names, ", ")
	}
	return fmt.Sprintf("%s and %d more", strings.Join(names[:max], ", "), len(names)-max)
}

func subtract(a, b field.ErrorList) field.ErrorList {
	seen := map[string]bool{}
	for _, e := range b {
		seen[e.Error()] = true
	}
	var out field.ErrorList
	for _, e := range a {
		if !seen[e.Error()] {
			out = append(out, e)
		}
	}
	return out
}

func subtractStrings(a, b []string) []string {
	seen := map[string]bool{}
	for _, s := range b {
		seen[s] = true
	}
	var out []string
	for _, s := range a {
		if !seen[s] {
			out = append(out, s)
		}
	}
	return out
}

// passwordWarnings checks the password Secrets obj's peers and the key
// Secrets its BFD profiles refer to: one that is missing, lacks the key,
// is of the wrong type or holds a key too long is a warning (it may be
// created next), and the speakers leave the peers concerned out
// (NotConfigured) until it is fixed, rather than open a session without
// its password or key.
func (v *ConfigValidator[T]) passwordWarnings(ctx context.Context, obj T) []string {
	type ref struct {
		path   *field.Path
		ref    lbv1.SecretReference
		maxLen int // of a BFD key; 0 for a password
	}
	var refs []ref
	bfdKey := func(path *field.Path, s *lbv1.BFDProfileSpec) {
		if a := s.Authentication; a != nil && a.KeySecret.Name != "" {
			refs = append(refs, ref{path.Child("authentication", "keySecret"), a.KeySecret, a.Type.MaxKeyLength()})
		}
	}
	switch o := any(obj).(type) {
	case *lbv1.BGPPeer:
		if o.Spec.PasswordSecret != nil {
			refs = append(refs, ref{field.NewPath("spec", "passwordSecret"), *o.Spec.PasswordSecret, 0})
		}
	case *lbv1.BFDProfile:
		bfdKey(field.NewPath("spec"), &o.Spec)
	case *lbv1.LoadBalancerStack:
		for i, p := range o.Spec.BGPPeers {
			if p.PasswordSecret != nil {
				refs = append(refs, ref{field.NewPath("spec", "bgpPeers").Index(i).Child("passwordSecret"), *p.PasswordSecret, 0})
			}
		}
		for i := range o.Spec.BFDProfiles {
			bfdKey(field.NewPath("spec", "bfdProfiles").Index(i), &o.Spec.BFDProfiles[i].BFDProfileSpec)
		}
	}
	var out []string
	for _, r := range refs {
		ns, key := r.ref.Namespace, r.ref.Key
		if ns == "" {
			ns = v.Namespace
		}
		if key == "" {
			key = "password"
		}
		var s corev1.Secret
		problem := ""
		switch err := v.Reader.Get(ctx, types.NamespacedName{Namespace: ns, Name: r.ref.Name}, &s); {
		case apierrors.IsNotFound(err):
			problem = fmt.Sprintf("Secret %s/%s does not exist", ns, r.ref.Name)
		case err != nil:
			problem = fmt.Sprintf("cannot read Secret %s/%s to check it: %v", ns, r.ref.Name, err)
		default:
			problem = config.PasswordProblem(&s, key)
			if n := len(s.Data[key]); problem == "" && r.maxLen > 0 && n > r.maxLen {
				problem = fmt.Sprintf("Secret %s/%s: the key under %q is %d bytes; this authentication type takes at most %d", ns, r.ref.Name, key, n, r.maxLen)
			}
		}
		what := "this session until the password"
		if r.maxLen > 0 {
			what = "the sessions using this BFD profile until the key"
		}
		if problem != "" {
			out = append(out, fmt.Sprintf("%s[%s].%s: %s; the speakers do not open %s can be read", v.Kind, obj.GetName(), r.path, problem, what))
		}
	}
	return out
}
