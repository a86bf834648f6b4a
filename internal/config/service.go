package config

import (
	"fmt"
	"net/netip"
	"strings"

	corev1 "k8s.io/api/core/v1"

	lbv1 "github.com/lbstack/lbstack/api/v1alpha1"
)

// ServiceRequest is what a Service asks of the allocator.
type ServiceRequest struct {
	// IPs are the requested IPs, at most one per family.
	IPs []netip.Addr
	// Pool is the requested pool, "" for any.
	Pool string
	// SharingKey is the allow-shared-ip key, "" for no sharing.
	SharingKey string
}

// ParseServiceRequest reads the IPs, pool and sharing key a Service
// requests, from spec.loadBalancerIP and lbstack's annotations.
func ParseServiceRequest(svc *corev1.Service) (ServiceRequest, error) {
	req := ServiceRequest{
		Pool:       svc.Annotations[lbv1.AnnotationAddressPool],
		SharingKey: svc.Annotations[lbv1.AnnotationAllowSharedIP],
	}
	var raw []string
	if v, ok := svc.Annotations[lbv1.AnnotationLoadBalancerIPs]; ok {
		for _, s := range strings.Split(v, ",") {
			raw = append(raw, strings.TrimSpace(s))
		}
		if svc.Spec.LoadBalancerIP != "" {
			return req, fmt.Errorf("spec.loadBalancerIP and annotation %s are both set; use the annotation only", lbv1.AnnotationLoadBalancerIPs)
		}
	} else if svc.Spec.LoadBalancerIP != "" {
		raw = []string{svc.Spec.LoadBalancerIP}
	}
	seen4, seen6 := false, false
	for _, s := range raw {
		a, err := ParseIP(s)
		if err != nil {
			return req, fmt.Errorf("requested IP: %w", err)
		}
		if (a.Is4() && seen4) || (a.Is6() && seen6) {
			return req, fmt.Errorf("annotation %s requests two IPs of one family; at most one IPv4 and one IPv6", lbv1.AnnotationLoadBalancerIPs)
		}
		seen4, seen6 = seen4 || a.Is4(), seen6 || a.Is6()
		req.IPs = append(req.IPs, a)
	}
	return req, nil
}

// PortClash returns the first port/protocol two Services both use, which
// keeps them from sharing an IP.
func PortClash(a, b *corev1.Service) (string, bool) {
	for _, pa := range a.Spec.Ports {
		for _, pb := range b.Spec.Ports {
			if pa.Port == pb.Port && protocol(pa.Protocol) == protocol(pb.Protocol) {
				return fmt.Sprintf("%d/%s", pa.Port, protocol(pa.Protocol)), true
			}
		}
	}
	return "", false
}

func protocol(p corev1.Protocol) corev1.Protocol {
	if p == "" {
		return corev1.ProtocolTCP
	}
	return p
}

// PoolOf returns the name of the pool holding a, or "".
func (c *Config) PoolOf(a netip.Addr) string {
	for name, p := range c.Pools {
		if p.Contains(a) {
			return name
		}
	}
	return ""
}

// Serves reports whether lbstack, serving loadBalancerClass class ("" for
// Services without a class), serves the Service: the controller assigns
// its addresses and the speakers announce them.
func Serves(s *corev1.Service, class string) bool {
	if s.Spec.Type != corev1.ServiceTypeLoadBalancer {
		return false
	}
	if s.Spec.LoadBalancerClass == nil {
		return class == ""
	}
	return *s.Spec.LoadBalancerClass == class
}
