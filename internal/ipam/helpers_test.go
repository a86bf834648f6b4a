package ipam

import (
	"errors"
	"math/big"
	"net/netip"
	"slices"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

	lbv1 "github.com/lbstack/lbstack/api/v1alpha1"
	"github.com/lbstack/lbstack/internal/config"
	"github.com/lbstack/lbstack/internal/lbservice"
)

// Helpers that build pools (through the real configuration parser) and
// Services for the tests.

func ptr[T any](v T) *T { return &v }

// poolOpt changes a pool's spec.
type poolOpt func(*lbv1.IPAddressPoolSpec)

func pool(name string, addrs []string, opts ...poolOpt) lbv1.IPAddressPool {
	p := lbv1.IPAddressPool{ObjectMeta: metav1.ObjectMeta{Name: name}}
	for _, a := range addrs {
		p.Spec.Addresses = append(p.Spec.Addresses, lbv1.PoolAddress(a))
	}
	for _, o := range opts {
		o(&p.Spec)
	}
	return p
}

func allocation(s *lbv1.IPAddressPoolSpec) *lbv1.ServiceAllocation {
	if s.Allocation == nil {
		s.Allocation = &lbv1.ServiceAllocation{}
	}
	return s.Allocation
}

func noAutoAssign(s *lbv1.IPAddressPoolSpec) { s.AutoAssign = ptr(false) }
func avoidBuggy(s *lbv1.IPAddressPoolSpec)   { s.AvoidBuggyIPs = true }

func priority(n int32) poolOpt {
	return func(s *lbv1.IPAddressPoolSpec) { allocation(s).Priority = ptr(n) }
}

func namespaces(ns ...string) poolOpt {
	return func(s *lbv1.IPAddressPoolSpec) { allocation(s).Namespaces = ns }
}

func namespaceSelector(k, v string) poolOpt {
	return func(s *lbv1.IPAddressPoolSpec) {
		a := allocation(s)
		a.NamespaceSelectors = append(a.NamespaceSelectors, metav1.LabelSelector{MatchLabels: map[string]string{k: v}})
	}
}

func serviceSelector(k, v string) poolOpt {
	return func(s *lbv1.IPAddressPoolSpec) {
		a := allocation(s)
		a.ServiceSelectors = append(a.ServiceSelectors, metav1.LabelSelector{MatchLabels: map[string]string{k: v}})
	}
}

// mustConfig builds a configuration of pools with config.Build.
func mustConfig(t testing.TB, pools ...lbv1.IPAddressPool) *config.Config {
	t.Helper()
	cfg, _, errs := config.Build(config.Objects{Pools: pools})
	if len(errs) > 0 {
		t.Fatalf("config.Build: %v", errs.ToAggregate())
	}
	return cfg
}

// newAllocator returns an allocator configured with pools.
func newAllocator(t testing.TB, pools ...lbv1.IPAddressPool) *Allocator {
	t.Helper()
	a := New()
	a.SetConfig(mustConfig(t, pools...))
	return a
}

// svcOpt changes a Service.
type svcOpt func(*Service)

// svc is a single-stack IPv4 Service with key "namespace/name", port 80/TCP,
// externalTrafficPolicy Cluster, no request.
func svc(key string, opts ...svcOpt) Service {
	ns, _, _ := strings.Cut(key, "/")
	s := Service{Key: key, Namespace: ns, IPv4First: true, Sharing: lbservice.Sharing{Ports: []lbservice.Port{{Port: 80, Protocol: "TCP"}}}}
	for _, o := range opts {
		o(&s)
	}
	return s
}

func wantIPs(ips ...string) svcOpt {
	return func(s *Service) { s.Request.IPs = addrs(ips...) }
}
func wantPool(p string) svcOpt     { return func(s *Service) { s.Request.Pool = p } }
func sharing(k string) svcOpt      { return func(s *Service) { s.Sharing.Key = k } }
func backend(b string) svcOpt      { return func(s *Service) { s.Sharing.Backend = b } }
func policy(p FamilyPolicy) svcOpt { return func(s *Service) { s.Policy = p } }
func v6First(s *Service)           { s.IPv4First = false }

func ports(ps ...lbservice.Port) svcOpt {
	return func(s *Service) { s.Sharing.Ports = ps }
}
func tcp(n int32) lbservice.Port { return lbservice.Port{Port: n, Protocol: "TCP"} }
func udp(n int32) lbservice.Port { return lbservice.Port{Port: n, Protocol: "UDP"} }

func svcLabels(kv ...string) svcOpt {
	return func(s *Service) { s.Labels = kvSet(kv) }
}
func nsLabels(kv ...string) svcOpt {
	return func(s *Service) { s.NamespaceLabels = kvSet(kv) }
}

func kvSet(kv []string) labels.Set {
	out := labels.Set{}
	for i := 0; i+1 < len(kv); i += 2 {
		out[kv[i]] = kv[i+1]
	}
	return out
}

func addr(s string) netip.Addr { return netip.MustParseAddr(s) }

func addrs(ss ...string) []netip.Addr {
	if len(ss) == 0 {
		return nil
	}
	out := make([]netip.Addr, len(ss))
	for i, s := range ss {
		out[i] = addr(s)
	}
	return out
}

func mustAssign(t testing.TB, a *Allocator, s Service) Result {
	t.Helper()
	res, err := a.Assign(s)
	if err != nil {
		t.Fatalf("Assign(%s): %v", s.Key, err)
	}
	return res
}

func ipStrings(ips []netip.Addr) []string {
	out := make([]string, len(ips))
	for i, ip := range ips {
		out[i] = ip.String()
	}
	return out
}

// errCheck describes the error a case expects; nil expects success.
type errCheck func(error) bool

// errAs expects an error of type T (checked with errors.As), matching
// every given condition.
func errAs[T error](conds ...func(T) bool) errCheck {
	return func(err error) bool {
		var target T
		if !errors.As(err, &target) {
			return false
		}
		for _, c := range conds {
			if !c(target) {
				return false
			}
		}
		return true
	}
}

// errText expects any error whose message contains s.
func errText(s string) errCheck {
	return func(err error) bool { return err != nil && strings.Contains(err.Error(), s) }
}

func inUseBy(holder string, reason string) errCheck {
	return errAs(func(e *IPInUseError) bool {
		return e.Holder == holder && strings.Contains(e.Reason, reason)
	})
}

func notInPool(ip, pool string) errCheck {
	return errAs(func(e *NotInPoolError) bool { return e.IP == addr(ip) && e.Pool == pool })
}

func notAllowed(pool string) errCheck {
	return errAs(func(e *NotAllowedError) bool { return e.Pool == pool })
}

func poolNotFound(pool string) errCheck {
	return errAs(func(e *PoolNotFoundError) bool { return e.Pool == pool })
}

func exhausted(pools ...string) errCheck {
	return errAs(func(e *PoolExhaustedError) bool { return slices.Equal(e.Pools, pools) })
}

var noPool = errAs[*NoPoolError]()

// checkResult compares an Assign outcome with the expectation.
func checkResult(t *testing.T, res Result, err error, ips []string, pool string, wantErr errCheck) {
	t.Helper()
	if wantErr != nil {
		if err == nil {
			t.Fatalf("Assign = %s from %q, want an error", ipStrings(res.IPs), res.Pool)
		}
		if !wantErr(err) {
			t.Fatalf("Assign error = %T %v, not the expected one", err, err)
		}
		if len(res.IPs) != 0 || res.Pool != "" {
			t.Errorf("Assign returned %v with an error", res)
		}
		return
	}
	if err != nil {
		t.Fatalf("Assign: %T %v", err, err)
	}
	if got := ipStrings(res.IPs); !slices.Equal(got, ips) {
		t.Errorf("Assign IPs = %v, want %v", got, ips)
	}
	if res.Pool != pool {
		t.Errorf("Assign pool = %q, want %q", res.Pool, pool)
	}
}

func bigPow2(n uint) *big.Int { return new(big.Int).Lsh(big.NewInt(1), n) }

func bigSub(a *big.Int, n int64) *big.Int { return new(big.Int).Sub(a, big.NewInt(n)) }

// checkUsage compares a pool's usage with the expected counts; avail4 and
// avail6 nil mean the family is absent.
func checkUsage(t testing.TB, a *Allocator, p string, assigned4, assigned6 int64, avail4, avail6 *big.Int) {
	t.Helper()
	u, ok := a.Usage(p)
	if !ok {
		t.Fatalf("Usage(%q): no such pool", p)
	}
	if u.Assigned4 != assigned4 || u.Assigned6 != assigned6 {
		t.Errorf("Usage(%q) assigned = %d IPv4, %d IPv6; want %d, %d", p, u.Assigned4, u.Assigned6, assigned4, assigned6)
	}
	if u.Has4 != (avail4 != nil) || u.Has6 != (avail6 != nil) {
		t.Errorf("Usage(%q) Has4=%v Has6=%v, want %v %v", p, u.Has4, u.Has6, avail4 != nil, avail6 != nil)
	}
	if avail4 != nil && u.Available4.Cmp(avail4) != 0 {
		t.Errorf("Usage(%q) available IPv4 = %s, want %s", p, u.Available4, avail4)
	}
	if avail6 != nil && u.Available6.Cmp(avail6) != 0 {
		t.Errorf("Usage(%q) available IPv6 = %s, want %s", p, u.Available6, avail6)
	}
}
