// Package webhooks holds lbstack's admission webhooks, served by the
// operator: validators for every lbstack.io configuration kind, which list
// what exists, swap in the incoming object and call config.Build, the
// project's one validity function; and a Service webhook that only warns.
package webhooks

import (
	"context"
	"fmt"
	"net/netip"
	"sort"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"sigs.k8s.io/controller-runtime/pkg/client"
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
func (v *ConfigValidator[T]) ValidateDelete(ctx context.Context, obj T) (admission.Warnings, error) {
	objs, err := listObjects(ctx, v.Reader)
	if err != nil {
		return nil, apierrors.NewInternalError(err)
	}
	return v.judge(ctx, obj, with(objs, obj, false), with(objs, obj, true), true)
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

	// Pools that disappear, or shrink, under Services that hold their addresses.
	svcs, err := v.services(ctx)
	if err != nil {
		return warnings, apierrors.NewInternalError(err)
	}
	var inUse []string
	poolsAfter := poolRanges(after)
	for name, rangesBefore := range poolRanges(before) {
		rangesAfter, stays := poolsAfter[name]
		holders := holdersOf(svcs, name, rangesBefore, rangesAfter)
		if len(holders) == 0 {
			continue
		}
		_, isStack := any(obj).(*lbv1.LoadBalancerStack)
		switch {
		case !stays && deleting && isStack:
			warnings = append(warnings, fmt.Sprintf("IPAddressPool %q goes away with this stack while Services hold its addresses: %s; they keep their IPs but nothing announces them", name, list(holders)))
		case !stays:
			inUse = append(inUse, fmt.Sprintf("IPAddressPool %q is still in use by Services %s", name, list(holders)))
		default:
			warnings = append(warnings, fmt.Sprintf("IPAddressPool %q no longer contains addresses held by Services %s; they keep their IPs and get a Warning event until they are changed", name, list(holders)))
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

// poolRanges maps every pool in objs (standalone and inline) to its
// parsable ranges.
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
		add(p.Name, p.Spec.Addresses)
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
