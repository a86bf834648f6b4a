package webhooks

import (
	"context"
	"fmt"
	"net/netip"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	lbv1 "github.com/lbstack/lbstack/api/v1alpha1"
	"github.com/lbstack/lbstack/internal/config"
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
	if class := svc.Spec.LoadBalancerClass; (class != nil && *class != cfg.LoadBalancerClass) || (class == nil && cfg.LoadBalancerClass != "") {
		return nil // another load balancer's Service
	}
	var w admission.Warnings
	req, err := config.ParseServiceRequest(svc)
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
	for i := range svcs.Items {
		other := &svcs.Items[i]
		if other.Namespace == svc.Namespace && other.Name == svc.Name || other.Spec.Type != corev1.ServiceTypeLoadBalancer {
			continue
		}
		otherReq, _ := config.ParseServiceRequest(other)
		shared := req.SharingKey != "" && req.SharingKey == otherReq.SharingKey
		for _, ip := range req.IPs {
			if !holds(other, ip) {
				continue
			}
			if !shared {
				w = append(w, fmt.Sprintf("lbstack: the requested IP %s is already held by Service %s/%s; to share it, give both Services the same %s annotation", ip, other.Namespace, other.Name, lbv1.AnnotationAllowSharedIP))
			}
		}
		if shared {
			if port, clash := config.PortClash(svc, other); clash {
				w = append(w, fmt.Sprintf("lbstack: sharing key %q: port %s is also used by Service %s/%s, so the two cannot share an IP", req.SharingKey, port, other.Namespace, other.Name))
			}
		}
	}
	return w
}

func holds(svc *corev1.Service, ip netip.Addr) bool {
	for _, ing := range svc.Status.LoadBalancer.Ingress {
		if a, err := netip.ParseAddr(ing.IP); err == nil && a == ip {
			return true
		}
	}
	return false
}
