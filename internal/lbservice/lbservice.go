// Package lbservice is the one definition of the rules lbstack applies to a
// Service: whether lbstack serves it (its loadBalancerClass), what it
// requests (IPs, pool, sharing key), whether two Services may share an IP
// (sharing key, ports and backends), which pool an address belongs to and
// which addresses its status names. The allocator, the Service webhook and
// the speaker all call it, so admission warns about exactly what
// allocation refuses and the speaker announces exactly what the controller
// assigned.
package lbservice

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/netip"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/labels"

	lbv1 "github.com/lbstack/lbstack/api/v1alpha1"
	"github.com/lbstack/lbstack/internal/config"
)

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

// Request is what a Service asks of the allocator (its sharing key is
// part of Sharing).
type Request struct {
	// IPs are the requested IPs, at most one per family.
	IPs []netip.Addr
	// Pool is the requested pool, "" for any.
	Pool string
}

// annotation reads one of lbstack's Service annotations (its lbstack.io/
// name), or MetalLB's spelling of it (metallb.io/ or metallb.universe.tf/
// with the same name), so a Service migrated from MetalLB means the same.
// It returns the value, the key it came from (for messages) and whether
// any is set; several that disagree are an error naming them.
func annotation(svc *corev1.Service, lbstackKey string) (value, key string, ok bool, err error) {
	name := strings.TrimPrefix(lbstackKey, "lbstack.io/")
	for _, k := range []string{lbstackKey, lbv1.MetalLBAnnotationPrefix + name, lbv1.MetalLBLegacyAnnotationPrefix + name} {
		v, set := svc.Annotations[k]
		if !set {
			continue
		}
		if !ok {
			value, key, ok = v, k, true
			continue
		}
		if strings.TrimSpace(v) != strings.TrimSpace(value) {
			return value, key, ok, fmt.Errorf("annotations %s (%q) and %s (%q) disagree; set one of them", key, value, k, v)
		}
	}
	return value, key, ok, nil
}

// ParseRequest reads the IPs and pool a Service requests, from
// spec.loadBalancerIP and lbstack's annotations (or MetalLB's spelling of
// them). On an error the returned Request still holds the pool.
func ParseRequest(svc *corev1.Service) (Request, error) {
	var req Request
	pool, _, _, err := annotation(svc, lbv1.AnnotationAddressPool)
	req.Pool = pool
	if err != nil {
		return req, err
	}
	if _, _, _, err := annotation(svc, lbv1.AnnotationAllowSharedIP); err != nil {
		return req, err
	}
	ipsValue, ipsKey, ipsSet, err := annotation(svc, lbv1.AnnotationLoadBalancerIPs)
	if err != nil {
		return req, err
	}
	var raw []string
	if ipsSet {
		for _, s := range strings.Split(ipsValue, ",") {
			raw = append(raw, strings.TrimSpace(s))
		}
		if svc.Spec.LoadBalancerIP != "" {
			return req, fmt.Errorf("spec.loadBalancerIP and annotation %s are both set; use the annotation only", ipsKey)
		}
	} else if svc.Spec.LoadBalancerIP != "" {
		raw = []string{svc.Spec.LoadBalancerIP}
	}
	seen4, seen6 := false, false
	for _, s := range raw {
		a, err := config.ParseIP(s)
		if err != nil {
			return req, fmt.Errorf("requested IP: %w", err)
		}
		if (a.Is4() && seen4) || (a.Is6() && seen6) {
			return req, fmt.Errorf("annotation %s requests two IPs of one family; at most one IPv4 and one IPv6", ipsKey)
		}
		seen4, seen6 = seen4 || a.Is4(), seen6 || a.Is6()
		req.IPs = append(req.IPs, a)
	}
	return req, nil
}

// Port is one port of a Service, as the sharing rule sees it.
type Port struct {
	Port int32
	// Protocol is TCP, UDP or SCTP; an empty protocol in the Service is TCP.
	Protocol string
}

// Sharing is what decides whether two Services may share an IP.
type Sharing struct {
	// Key is the allow-shared-ip key, "" for no sharing.
	Key string
	// Ports are the Service's ports.
	Ports []Port
	// Backend is "" for externalTrafficPolicy Cluster; for Local it names
	// the Service's selector: only the nodes with its endpoints may
	// announce the IP, so Services sharing it must pick the same pods.
	Backend string
}

// SharingOf reads a Service's sharing key, ports and backend.
func SharingOf(svc *corev1.Service) Sharing {
	// Disagreeing spellings are ParseRequest's error; the first is used.
	key, _, _, _ := annotation(svc, lbv1.AnnotationAllowSharedIP)
	s := Sharing{Key: key}
	for _, p := range svc.Spec.Ports {
		proto := string(p.Protocol)
		if proto == "" {
			proto = string(corev1.ProtocolTCP)
		}
		s.Ports = append(s.Ports, Port{Port: p.Port, Protocol: proto})
	}
	if svc.Spec.ExternalTrafficPolicy == corev1.ServiceExternalTrafficPolicyLocal {
		s.Backend = "local:" + labels.SelectorFromSet(svc.Spec.Selector).String()
	}
	return s
}

// Digest is a short digest of s that changes whenever whether s may
// share with another Service could change: "" when s has no sharing key.
// The order of the ports does not matter.
func (s Sharing) Digest() string {
	if s.Key == "" {
		return ""
	}
	ports := make([]string, len(s.Ports))
	for i, p := range s.Ports {
		ports[i] = fmt.Sprintf("%d/%s", p.Port, p.Protocol)
	}
	slices.Sort(ports)
	sum := sha256.Sum256([]byte(strings.Join([]string{"v1", s.Key, strings.Join(ports, ","), s.Backend}, "\x00")))
	return "v1-" + hex.EncodeToString(sum[:8])
}

// Conflict says why Services with sharing s and o cannot share an IP, or
// returns "" when they can.
func (s Sharing) Conflict(o Sharing) string {
	if s.Key == "" || o.Key != s.Key {
		return "no common " + lbv1.AnnotationAllowSharedIP + " key"
	}
	for _, a := range s.Ports {
		for _, b := range o.Ports {
			if a.Port == b.Port && a.Protocol == b.Protocol {
				return fmt.Sprintf("both use port %d/%s", a.Port, a.Protocol)
			}
		}
	}
	if (s.Backend != "" || o.Backend != "") && s.Backend != o.Backend {
		return "externalTrafficPolicy Local needs the same selector on Services sharing an IP"
	}
	return ""
}

// IngressIPs returns the addresses in the Service's status, in order,
// IPv4-mapped IPv6 addresses written as IPv4; entries that are not an IP
// (a hostname, garbage) are skipped.
func IngressIPs(svc *corev1.Service) []netip.Addr {
	var out []netip.Addr
	for _, in := range svc.Status.LoadBalancer.Ingress {
		if a, err := netip.ParseAddr(in.IP); err == nil {
			out = append(out, a.Unmap())
		}
	}
	return out
}

// PoolOf returns the pool an address of a Service belongs to: the pool
// the controller recorded (annotated, from the Service's
// lbstack.io/allocated-from-pool annotation) when it holds the address,
// else the pool that contains it, else "" (the address is in no pool).
func PoolOf(cfg *config.Config, annotated string, ip netip.Addr) string {
	if p, ok := cfg.Pools[annotated]; ok && p.Contains(ip) {
		return annotated
	}
	return cfg.PoolOf(ip)
}

// ReadyEndpointNodes returns the nodes with a ready endpoint in the
// EndpointSlices of one Service (an endpoint without a Ready condition
// counts as ready, as the API says).
func ReadyEndpointNodes(slices []discoveryv1.EndpointSlice) map[string]bool {
	out := map[string]bool{}
	for _, sl := range slices {
		for _, ep := range sl.Endpoints {
			if ep.NodeName == nil || (ep.Conditions.Ready != nil && !*ep.Conditions.Ready) {
				continue
			}
			out[*ep.NodeName] = true
		}
	}
	return out
}
