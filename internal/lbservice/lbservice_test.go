package lbservice

import (
	"net/netip"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	lbv1 "github.com/lbstack/lbstack/api/v1alpha1"
	"github.com/lbstack/lbstack/internal/config"
)

func svc(ann map[string]string, mut ...func(*corev1.Service)) *corev1.Service {
	s := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "s", Annotations: ann},
		Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeLoadBalancer}}
	for _, m := range mut {
		m(s)
	}
	return s
}

func TestServes(t *testing.T) {
	cases := []struct {
		s     *corev1.Service
		class string
		want  bool
	}{
		{svc(nil), "", true},
		{svc(nil), "lbstack.io/x", false},
		{svc(nil, func(s *corev1.Service) { s.Spec.LoadBalancerClass = ptr.To("lbstack.io/x") }), "lbstack.io/x", true},
		{svc(nil, func(s *corev1.Service) { s.Spec.LoadBalancerClass = ptr.To("other") }), "", false},
		{svc(nil, func(s *corev1.Service) { s.Spec.Type = corev1.ServiceTypeNodePort }), "", false},
	}
	for i, c := range cases {
		if got := Serves(c.s, c.class); got != c.want {
			t.Errorf("case %d: Serves = %v, want %v", i, got, c.want)
		}
	}
}

func TestParseRequest(t *testing.T) {
	cases := []struct {
		ann     map[string]string
		lbIP    string
		want    []string
		pool    string
		wantErr string
	}{
		{ann: map[string]string{lbv1.AnnotationLoadBalancerIPs: "198.51.100.1, 2001:db8::1"}, want: []string{"198.51.100.1", "2001:db8::1"}},
		{lbIP: "198.51.100.2", want: []string{"198.51.100.2"}},
		{ann: map[string]string{lbv1.AnnotationAddressPool: "p"}, pool: "p"},
		{ann: map[string]string{lbv1.AnnotationLoadBalancerIPs: "198.51.100.1"}, lbIP: "198.51.100.1", wantErr: "both set"},
		{ann: map[string]string{lbv1.AnnotationLoadBalancerIPs: "198.51.100.1,198.51.100.2"}, wantErr: "two IPs of one family"},
		{ann: map[string]string{lbv1.AnnotationLoadBalancerIPs: "not-an-ip", lbv1.AnnotationAddressPool: "kept"}, pool: "kept", wantErr: "not an IP address"},
		// MetalLB's spellings mean the same (a migrated Service keeps its
		// request); spellings that disagree are refused, naming both.
		{ann: map[string]string{"metallb.universe.tf/loadBalancerIPs": "198.51.100.7", "metallb.universe.tf/address-pool": "legacy"}, want: []string{"198.51.100.7"}, pool: "legacy"},
		{ann: map[string]string{"metallb.io/loadBalancerIPs": "2001:db8::7", "metallb.io/address-pool": "current"}, want: []string{"2001:db8::7"}, pool: "current"},
		{ann: map[string]string{lbv1.AnnotationAddressPool: "p", "metallb.io/address-pool": "p", "metallb.universe.tf/address-pool": " p"}, pool: "p"},
		{ann: map[string]string{lbv1.AnnotationAddressPool: "a", "metallb.universe.tf/address-pool": "b"}, pool: "a",
			wantErr: `annotations lbstack.io/address-pool ("a") and metallb.universe.tf/address-pool ("b") disagree`},
		{ann: map[string]string{"metallb.io/loadBalancerIPs": "198.51.100.1"}, lbIP: "198.51.100.1", wantErr: "spec.loadBalancerIP and annotation metallb.io/loadBalancerIPs are both set"},
		{ann: map[string]string{"metallb.io/allow-shared-ip": "x", "metallb.universe.tf/allow-shared-ip": "y"}, wantErr: "metallb.io/allow-shared-ip"},
	}
	for i, c := range cases {
		s := svc(c.ann, func(s *corev1.Service) { s.Spec.LoadBalancerIP = c.lbIP })
		req, err := ParseRequest(s)
		if c.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), c.wantErr) {
				t.Errorf("case %d: error %v, want one containing %q", i, err, c.wantErr)
			}
		} else if err != nil {
			t.Errorf("case %d: %v", i, err)
		}
		var got []string
		for _, a := range req.IPs {
			got = append(got, a.String())
		}
		if c.wantErr == "" && !slices.Equal(got, c.want) {
			t.Errorf("case %d: IPs %v, want %v", i, got, c.want)
		}
		if req.Pool != c.pool {
			t.Errorf("case %d: pool %q, want %q", i, req.Pool, c.pool)
		}
	}
}

// TestSharingKeyFromMetalLB: MetalLB's allow-shared-ip spellings are
// sharing keys too, so two migrated Services keep sharing their IP.
func TestSharingKeyFromMetalLB(t *testing.T) {
	a := SharingOf(svc(map[string]string{"metallb.universe.tf/allow-shared-ip": "dns"}, func(s *corev1.Service) {
		s.Spec.Ports = []corev1.ServicePort{{Port: 53, Protocol: corev1.ProtocolUDP}}
	}))
	b := SharingOf(svc(map[string]string{lbv1.AnnotationAllowSharedIP: "dns"}, func(s *corev1.Service) {
		s.Spec.Ports = []corev1.ServicePort{{Port: 53, Protocol: corev1.ProtocolTCP}}
	}))
	if a.Key != "dns" {
		t.Fatalf("key %q from metallb.universe.tf/allow-shared-ip", a.Key)
	}
	if why := a.Conflict(b); why != "" {
		t.Errorf("a MetalLB-annotated and an lbstack-annotated Service with one key cannot share: %s", why)
	}
}

func TestSharingConflict(t *testing.T) {
	port := func(p int32, proto corev1.Protocol) func(*corev1.Service) {
		return func(s *corev1.Service) {
			s.Spec.Ports = append(s.Spec.Ports, corev1.ServicePort{Port: p, Protocol: proto})
		}
	}
	local := func(app string) func(*corev1.Service) {
		return func(s *corev1.Service) {
			s.Spec.ExternalTrafficPolicy = corev1.ServiceExternalTrafficPolicyLocal
			s.Spec.Selector = map[string]string{"app": app}
		}
	}
	key := func(k string) map[string]string { return map[string]string{lbv1.AnnotationAllowSharedIP: k} }
	cases := []struct {
		name string
		a, b *corev1.Service
		want string
	}{
		{"no key", svc(nil, port(80, "")), svc(nil, port(443, "")), "no common"},
		{"different keys", svc(key("a"), port(80, "")), svc(key("b"), port(443, "")), "no common"},
		{"shared", svc(key("k"), port(80, "")), svc(key("k"), port(443, "")), ""},
		{"empty protocol is TCP", svc(key("k"), port(80, "")), svc(key("k"), port(80, corev1.ProtocolTCP)), "both use port 80/TCP"},
		{"TCP and UDP on one port", svc(key("k"), port(53, corev1.ProtocolTCP)), svc(key("k"), port(53, corev1.ProtocolUDP)), ""},
		{"Local with another selector", svc(key("k"), port(80, ""), local("x")), svc(key("k"), port(443, ""), local("y")), "same selector"},
		{"Local next to Cluster", svc(key("k"), port(80, ""), local("x")), svc(key("k"), port(443, "")), "same selector"},
		{"Local with the same selector", svc(key("k"), port(80, ""), local("x")), svc(key("k"), port(443, ""), local("x")), ""},
	}
	for _, c := range cases {
		got := SharingOf(c.a).Conflict(SharingOf(c.b))
		back := SharingOf(c.b).Conflict(SharingOf(c.a))
		if (c.want == "") != (got == "") || !strings.Contains(got, c.want) {
			t.Errorf("%s: Conflict = %q, want %q", c.name, got, c.want)
		}
		if (got == "") != (back == "") {
			t.Errorf("%s: the rule is not symmetric: %q one way, %q the other", c.name, got, back)
		}
	}
}

// TestSharingDigest: the digest changes with everything the sharing rule
// reads and with nothing else; a Service without a key has none.
func TestSharingDigest(t *testing.T) {
	key := func(k string) map[string]string { return map[string]string{lbv1.AnnotationAllowSharedIP: k} }
	ports := func(ps ...corev1.ServicePort) func(*corev1.Service) {
		return func(s *corev1.Service) { s.Spec.Ports = ps }
	}
	local := func(app string) func(*corev1.Service) {
		return func(s *corev1.Service) {
			s.Spec.ExternalTrafficPolicy = corev1.ServiceExternalTrafficPolicyLocal
			s.Spec.Selector = map[string]string{"app": app}
		}
	}
	web, dns := corev1.ServicePort{Port: 80}, corev1.ServicePort{Port: 53, Protocol: corev1.ProtocolUDP}
	base := SharingOf(svc(key("k"), ports(web, dns))).Digest()
	if base == "" {
		t.Fatal("a Service with a sharing key has no digest")
	}
	if d := SharingOf(svc(nil, ports(web))).Digest(); d != "" {
		t.Errorf("a Service without a sharing key has digest %q", d)
	}
	same := map[string]*corev1.Service{
		"ports in another order":   svc(key("k"), ports(dns, web)),
		"TCP spelled out":          svc(key("k"), ports(corev1.ServicePort{Port: 80, Protocol: corev1.ProtocolTCP}, dns)),
		"a label":                  svc(key("k"), ports(web, dns), func(s *corev1.Service) { s.Labels = map[string]string{"x": "y"} }),
		"a selector under Cluster": svc(key("k"), ports(web, dns), func(s *corev1.Service) { s.Spec.Selector = map[string]string{"app": "x"} }),
	}
	for name, s := range same {
		if d := SharingOf(s).Digest(); d != base {
			t.Errorf("%s changed the digest: %s, was %s", name, d, base)
		}
	}
	differ := map[string]*corev1.Service{
		"another key":      svc(key("j"), ports(web, dns)),
		"another port":     svc(key("k"), ports(corev1.ServicePort{Port: 81}, dns)),
		"another protocol": svc(key("k"), ports(corev1.ServicePort{Port: 80, Protocol: corev1.ProtocolSCTP}, dns)),
		"a port less":      svc(key("k"), ports(web)),
		"Local":            svc(key("k"), ports(web, dns), local("x")),
	}
	seen := map[string]string{base: "base"}
	for name, s := range differ {
		d := SharingOf(s).Digest()
		if prev, ok := seen[d]; ok {
			t.Errorf("%s has the digest of %s: %s", name, prev, d)
		}
		seen[d] = name
	}
	if a, b := SharingOf(svc(key("k"), ports(web), local("x"))).Digest(), SharingOf(svc(key("k"), ports(web), local("y"))).Digest(); a == b {
		t.Errorf("Local Services with different selectors have one digest %s", a)
	}
}

func TestIngressIPsAndPoolOf(t *testing.T) {
	s := svc(nil, func(s *corev1.Service) {
		s.Status.LoadBalancer.Ingress = []corev1.LoadBalancerIngress{{IP: "::ffff:198.51.100.5"}, {Hostname: "lb.example"}, {IP: "garbage"}, {IP: "2001:db8::5"}}
	})
	got := IngressIPs(s)
	if want := []netip.Addr{netip.MustParseAddr("198.51.100.5"), netip.MustParseAddr("2001:db8::5")}; !slices.Equal(got, want) {
		t.Fatalf("IngressIPs = %v, want %v", got, want)
	}

	objs := config.Objects{Pools: []lbv1.IPAddressPool{
		{ObjectMeta: metav1.ObjectMeta{Name: "a"}, Spec: lbv1.IPAddressPoolSpec{Addresses: []lbv1.PoolAddress{"198.51.100.0/28"}}},
		{ObjectMeta: metav1.ObjectMeta{Name: "b"}, Spec: lbv1.IPAddressPoolSpec{Addresses: []lbv1.PoolAddress{"198.51.100.16/28"}}},
	}}
	cfg, _, errs := config.Build(objs)
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	for _, c := range []struct{ annotated, ip, want string }{
		{"a", "198.51.100.1", "a"},
		{"", "198.51.100.1", "a"},
		{"b", "198.51.100.1", "a"}, // the annotation names a pool that does not hold the address
		{"gone", "198.51.100.17", "b"},
		{"a", "203.0.113.1", ""},
	} {
		if got := PoolOf(cfg, c.annotated, netip.MustParseAddr(c.ip)); got != c.want {
			t.Errorf("PoolOf(%q, %s) = %q, want %q", c.annotated, c.ip, got, c.want)
		}
	}
}

// FuzzParseRequest: whatever a tenant writes into a Service's annotations
// and spec.loadBalancerIP, ParseRequest returns without panicking, and a
// request it accepts holds at most one valid address per family, each of
// which parses back to itself.
func FuzzParseRequest(f *testing.F) {
	f.Add("192.0.2.10,2001:db8::10", "", "front", "key", "")
	f.Add("", "198.51.100.7", "", "", "")
	f.Add(" 192.0.2.1 , 192.0.2.2", "", "", "", "192.0.2.1")
	f.Add("::ffff:192.0.2.1", "", "", "", "")
	f.Add("fe80::1%eth0", "", "a", "b", "c")
	f.Fuzz(func(t *testing.T, ips, specIP, pool, shared, metallbIPs string) {
		svc := &corev1.Service{}
		svc.Annotations = map[string]string{}
		for k, v := range map[string]string{lbv1.AnnotationLoadBalancerIPs: ips, lbv1.AnnotationAddressPool: pool, lbv1.AnnotationAllowSharedIP: shared, "metallb.io/loadBalancerIPs": metallbIPs} {
			if v != "" {
				svc.Annotations[k] = v
			}
		}
		svc.Spec.LoadBalancerIP = specIP
		req, err := ParseRequest(svc)
		if err != nil {
			return
		}
		seen := map[bool]bool{}
		for _, a := range req.IPs {
			if !a.IsValid() || a.Zone() != "" {
				t.Fatalf("accepted %v from %q/%q", a, ips, specIP)
			}
			if back, err := netip.ParseAddr(a.String()); err != nil || back != a {
				t.Fatalf("accepted %v, which does not parse back to itself (%v, %v)", a, back, err)
			}
			if seen[a.Is4()] {
				t.Fatalf("accepted two addresses of one family: %v", req.IPs)
			}
			seen[a.Is4()] = true
		}
		_ = SharingOf(svc)
	})
}
