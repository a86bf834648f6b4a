package webhooks

import (
	"context"
	"fmt"
	"slices"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/lbstack/lbstack/internal/config"
	"github.com/lbstack/lbstack/internal/lbservice"
)

// ServiceValidator warns about Service requests lbstack cannot honour. It
// never rejects (its webhook's failurePolicy is Ignore, so a down operator
// cannot block Services either): the controller reports the same problems
// as events, and a warning at apply time only saves a round trip.
type ServiceValidator struct {
	// Reader lists the lbstack configuration and Services.
	Reader client.Reader
}

var _ admission.Validator[*corev1.Service] = &ServiceValidator{}

// ValidateCreate warns about a new Service.
func (v *ServiceValidator) ValidateCreate(ctx context.Context, svc *corev1.Service) (admission.Warnings, error) {
	return v.warnings(ctx, svc), nil
}

// ValidateUpdate warns about a changed Service.
func (v *ServiceValidator) ValidateUpdate(ctx context.Context, _, svc *corev1.Service) (admission.Warnings, error) {
	return v.warnings(ctx, svc), nil
}

// ValidateDelete never objects.
func (v *ServiceValidator) ValidateDelete(context.Context, *corev1.Service) (admission.Warnings, error) {
	return nil, nil
}

func (v *ServiceValidator) warnings(ctx context.Context, svc *corev1.Service) admission.Warnings {
	if svc.Spec.Type != corev1.ServiceTypeLoadBalancer {
		return nil
	}
	objs, err := listObjects(ctx, v.Reader)
	if err != nil {
		return admission.Warnings{fmt.Sprintf("lbstack could not check this Service: %v", err)}
	}
	cfg, _, errs := config.Build(objs)
	if cfg == nil {
		if len(errs) > 0 {
			return admission.Warnings{fmt.Sprintf("lbstack's configuration is invalid, so this Service's request could not be checked: %v", errs.ToAggregate())}
		}
		return nil
	}
	if !lbservice.Serves(svc, cfg.LoadBalancerClass) {
		return nil // another load balancer's Service
	}
	var w admission.Warnings
	req, err := lbservice.ParseRequest(svc)
	if err != nil {
		return admission.Warnings{fmt.Sprintf("lbstack: %v", err)}
	}
	if req.Pool != "" {
		if _, ok := cfg.Pools[req.Pool]; !ok {
			w = append(w, fmt.Sprintf("lbstack: the requested IPAddressPool %q does not exist; the Service gets no IP until it does", req.Pool))
		}
	}
	for _, ip := range req.IPs {
		pool := cfg.PoolOf(ip)
		switch {
		case pool == "":
			w = append(w, fmt.Sprintf("lbstack: the requested IP %s is in no IPAddressPool; the Service gets no IP until a pool contains it", ip))
		case req.Pool != "" && pool != req.Pool && cfg.Pools[req.Pool] != nil:
			w = append(w, fmt.Sprintf("lbstack: the requested IP %s is in IPAddressPool %q, not in the requested pool %q", ip, pool, req.Pool))
		}
	}

	var svcs corev1.ServiceList
	if err := v.Reader.List(ctx, &svcs); err != nil {
		return append(w, fmt.Sprintf("lbstack could not list Services to check sharing: %v", err))
	}
	// The allocator's sharing rule (lbservice.Sharing.Conflict), checked
	// against the Services that hold an address now.
	mine := lbservice.SharingOf(svc)
	for i := range svcs.Items {
		other := &svcs.Items[i]
		if other.Namespace == svc.Namespace && other.Name == svc.Name || !lbservice.Serves(other, cfg.LoadBalancerClass) {
			continue
		}
		held := lbservice.IngressIPs(other)
		if len(held) == 0 {
			continue
		}
		theirs := lbservice.SharingOf(other)
		reason := mine.Conflict(theirs)
		if reason == "" {
			continue
		}
		requested := false
		for _, ip := range req.IPs {
			if slices.Contains(held, ip) {
				requested = true
				w = append(w, fmt.Sprintf("lbstack: the requested IP %s is held by Service %s/%s and cannot be shared: %s; this Service gets no IP until that one releases it", ip, other.Namespace, other.Name, reason))
			}
		}
		if !requested && mine.Key != "" && mine.Key == theirs.Key {
			w = append(w, fmt.Sprintf("lbstack: sharing key %q: this Service cannot share an IP with Service %s/%s (%s), so the two get different IPs", mine.Key, other.Namespace, other.Name, reason))
		}
	}
	return w
}
