package ipam

import (
	"fmt"
	"math/big"
	"math/rand"
	"net/netip"
	"slices"
	"strings"
	"testing"

	lbv1 "github.com/lbstack/lbstack/api/v1alpha1"
	"github.com/lbstack/lbstack/internal/lbservice"
)

// assignCase assigns the Services in before (each must succeed), then svc,
// and compares the outcome.
type assignCase struct {
	pools    []lbv1.IPAddressPool
	before   []Service
	svc      Service
	wantIPs  []string
	wantPool string
	wantErr  errCheck
}

func runAssignCases(t *testing.T, cases map[string]assignCase) {
	t.Helper()
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			a := newAllocator(t, tc.pools...)
			for _, s := range tc.before {
				mustAssign(t, a, s)
			}
			res, err := a.Assign(tc.svc)
			checkResult(t, res, err, tc.wantIPs, tc.wantPool, tc.wantErr)
			got, ok := a.Assigned(tc.svc.Key)
			if tc.wantErr != nil {
				if ok {
					t.Errorf("Assigned(%s) = %v after a failed first Assign", tc.svc.Key, got)
				}
				return
			}
			if !ok || !slices.Equal(got.IPs, res.IPs) || got.Pool != res.Pool {
				t.Errorf("Assigned(%s) = %v, %v; want %v", tc.svc.Key, got, ok, res)
			}
			for _, ip := range res.IPs {
				if h := a.Holders(ip); !slices.Contains(h, tc.svc.Key) {
					t.Errorf("Holders(%s) = %v, want it to include %s", ip, h, tc.svc.Key)
				}
			}
		})
	}
}

var (
	v4Pool   = pool("v4", []string{"192.0.2.0/24"})
	v6Pool   = pool("v6", []string{"2001:db8::/64"})
	dualPool = pool("dual", []string{"198.51.100.0/24", "2001:db8:1::/64"})
)

func TestRequestedIPs(t *testing.T) {
	other := pool("other", []string{"203.0.113.0/24"})
	runAssignCases(t, map[string]assignCase{
		"in a pool": {
			pools:   []lbv1.IPAddressPool{v4Pool},
			svc:     svc("ns/a", wantIPs("192.0.2.10")),
			wantIPs: []string{"192.0.2.10"}, wantPool: "v4",
		},
		"in no pool": {
			pools:   []lbv1.IPAddressPool{v4Pool},
			svc:     svc("ns/a", wantIPs("198.18.0.1")),
			wantErr: notInPool("198.18.0.1", ""),
		},
		"in another pool than the requested one": {
			pools:   []lbv1.IPAddressPool{v4Pool, other},
			svc:     svc("ns/a", wantIPs("203.0.113.5"), wantPool("v4")),
			wantErr: notInPool("203.0.113.5", "v4"),
		},
		"in the requested pool": {
			pools:   []lbv1.IPAddressPool{v4Pool, other},
			svc:     svc("ns/a", wantIPs("203.0.113.5"), wantPool("other")),
			wantIPs: []string{"203.0.113.5"}, wantPool: "other",
		},
		"held by another Service without a sharing key": {
			pools:   []lbv1.IPAddressPool{v4Pool},
			before:  []Service{svc("ns/a", wantIPs("192.0.2.10"), ports(tcp(80)))},
			svc:     svc("ns/b", wantIPs("192.0.2.10"), ports(tcp(443))),
			wantErr: inUseBy("ns/a", "allow-shared-ip"),
		},
		"held by another Service, only the requester has a key": {
			pools:   []lbv1.IPAddressPool{v4Pool},
			before:  []Service{svc("ns/a", wantIPs("192.0.2.10"), ports(tcp(80)))},
			svc:     svc("ns/b", wantIPs("192.0.2.10"), ports(tcp(443)), sharing("k")),
			wantErr: inUseBy("ns/a", "allow-shared-ip"),
		},
		"held by an automatically assigned Service": {
			pools:   []lbv1.IPAddressPool{v4Pool},
			before:  []Service{svc("ns/a")},
			svc:     svc("ns/b", wantIPs("192.0.2.0")),
			wantErr: inUseBy("ns/a", ""),
		},
		"shared with a compatible key": {
			pools:   []lbv1.IPAddressPool{v4Pool},
			before:  []Service{svc("ns/a", wantIPs("192.0.2.10"), ports(tcp(80)), sharing("k"))},
			svc:     svc("ns/b", wantIPs("192.0.2.10"), ports(tcp(443)), sharing("k")),
			wantIPs: []string{"192.0.2.10"}, wantPool: "v4",
		},
		"shared, same port number with another protocol": {
			pools:   []lbv1.IPAddressPool{v4Pool},
			before:  []Service{svc("ns/a", wantIPs("192.0.2.10"), ports(tcp(53)), sharing("k"))},
			svc:     svc("ns/b", wantIPs("192.0.2.10"), ports(udp(53)), sharing("k")),
			wantIPs: []string{"192.0.2.10"}, wantPool: "v4",
		},
		"shared key but a port clash": {
			pools:   []lbv1.IPAddressPool{v4Pool},
			before:  []Service{svc("ns/a", wantIPs("192.0.2.10"), ports(tcp(80), tcp(443)), sharing("k"))},
			svc:     svc("ns/b", wantIPs("192.0.2.10"), ports(tcp(8080), tcp(443)), sharing("k")),
			wantErr: inUseBy("ns/a", "443/TCP"),
		},
		"shared key, Local backends differ": {
			pools:   []lbv1.IPAddressPool{v4Pool},
			before:  []Service{svc("ns/a", wantIPs("192.0.2.10"), ports(tcp(80)), sharing("k"), backend("local:app=a"))},
			svc:     svc("ns/b", wantIPs("192.0.2.10"), ports(tcp(443)), sharing("k"), backend("local:app=b")),
			wantErr: inUseBy("ns/a", "externalTrafficPolicy Local"),
		},
		"shared key, Local and Cluster": {
			pools:   []lbv1.IPAddressPool{v4Pool},
			before:  []Service{svc("ns/a", wantIPs("192.0.2.10"), ports(tcp(80)), sharing("k"))},
			svc:     svc("ns/b", wantIPs("192.0.2.10"), ports(tcp(443)), sharing("k"), backend("local:app=b")),
			wantErr: inUseBy("ns/a", "externalTrafficPolicy Local"),
		},
		"shared key, same Local backends": {
			pools:   []lbv1.IPAddressPool{v4Pool},
			before:  []Service{svc("ns/a", wantIPs("192.0.2.10"), ports(tcp(80)), sharing("k"), backend("local:app=a"))},
			svc:     svc("ns/b", wantIPs("192.0.2.10"), ports(tcp(443)), sharing("k"), backend("local:app=a")),
			wantIPs: []string{"192.0.2.10"}, wantPool: "v4",
		},
		"different keys": {
			pools:   []lbv1.IPAddressPool{v4Pool},
			before:  []Service{svc("ns/a", wantIPs("192.0.2.10"), ports(tcp(80)), sharing("k1"))},
			svc:     svc("ns/b", wantIPs("192.0.2.10"), ports(tcp(443)), sharing("k2")),
			wantErr: inUseBy("ns/a", "allow-shared-ip"),
		},
		"in a pool whose selectors exclude the Service": {
			pools:   []lbv1.IPAddressPool{pool("team", []string{"192.0.2.0/24"}, namespaces("team"))},
			svc:     svc("ns/a", wantIPs("192.0.2.10")),
			wantErr: notAllowed("team"),
		},
		"in a pool whose selectors include the Service": {
			pools:   []lbv1.IPAddressPool{pool("team", []string{"192.0.2.0/24"}, namespaces("team"))},
			svc:     svc("team/a", wantIPs("192.0.2.10")),
			wantIPs: []string{"192.0.2.10"}, wantPool: "team",
		},
		"in a pool without autoAssign": {
			pools:   []lbv1.IPAddressPool{pool("manual", []string{"192.0.2.0/24"}, noAutoAssign)},
			svc:     svc("ns/a", wantIPs("192.0.2.10")),
			wantIPs: []string{"192.0.2.10"}, wantPool: "manual",
		},
		"an address avoidBuggyIPs skips, requested explicitly": {
			pools:   []lbv1.IPAddressPool{pool("p", []string{"192.0.2.0/24"}, avoidBuggy)},
			svc:     svc("ns/a", wantIPs("192.0.2.255")),
			wantIPs: []string{"192.0.2.255"}, wantPool: "p",
		},
		"both families, dual-stack required": {
			pools:   []lbv1.IPAddressPool{dualPool},
			svc:     svc("ns/a", wantIPs("198.51.100.7", "2001:db8:1::7"), policy(RequireDualStack)),
			wantIPs: []string{"198.51.100.7", "2001:db8:1::7"}, wantPool: "dual",
		},
		"both families, dual-stack preferred": {
			pools:   []lbv1.IPAddressPool{dualPool},
			svc:     svc("ns/a", wantIPs("198.51.100.7", "2001:db8:1::7"), policy(PreferDualStack)),
			wantIPs: []string{"198.51.100.7", "2001:db8:1::7"}, wantPool: "dual",
		},
		"one family, dual-stack preferred": {
			pools:   []lbv1.IPAddressPool{dualPool},
			svc:     svc("ns/a", wantIPs("198.51.100.7"), policy(PreferDualStack)),
			wantIPs: []string{"198.51.100.7"}, wantPool: "dual",
		},
		"one family, dual-stack required": {
			pools:   []lbv1.IPAddressPool{dualPool},
			svc:     svc("ns/a", wantIPs("198.51.100.7"), policy(RequireDualStack)),
			wantErr: errText("RequireDualStack"),
		},
		"both families in different pools": {
			pools:   []lbv1.IPAddressPool{v4Pool, v6Pool},
			svc:     svc("ns/a", wantIPs("192.0.2.1", "2001:db8::1"), policy(RequireDualStack)),
			wantErr: errText("different pools"),
		},
		"IPv6 for a single-stack IPv4 Service": {
			pools:   []lbv1.IPAddressPool{dualPool},
			svc:     svc("ns/a", wantIPs("2001:db8:1::7")),
			wantErr: errText("IPv6"),
		},
		"IPv4 for a single-stack IPv6 Service": {
			pools:   []lbv1.IPAddressPool{dualPool},
			svc:     svc("ns/a", wantIPs("198.51.100.7"), v6First),
			wantErr: errText("IPv4"),
		},
		"both families for a single-stack Service": {
			pools:   []lbv1.IPAddressPool{dualPool},
			svc:     svc("ns/a", wantIPs("198.51.100.7", "2001:db8:1::7")),
			wantErr: errText("IPv6"),
		},
	})
}

func TestRequestedPool(t *testing.T) {
	small := pool("small", []string{"198.18.0.0/31"})
	runAssignCases(t, map[string]assignCase{
		"exists": {
			pools:   []lbv1.IPAddressPool{v4Pool, v6Pool, dualPool},
			svc:     svc("ns/a", wantPool("dual")),
			wantIPs: []string{"198.51.100.0"}, wantPool: "dual",
		},
		"missing": {
			pools:   []lbv1.IPAddressPool{v4Pool},
			svc:     svc("ns/a", wantPool("nope")),
			wantErr: poolNotFound("nope"),
		},
		"not allowed by its namespaces": {
			pools:   []lbv1.IPAddressPool{v4Pool, pool("team", []string{"203.0.113.0/24"}, namespaces("team"))},
			svc:     svc("ns/a", wantPool("team")),
			wantErr: notAllowed("team"),
		},
		"not allowed by its Service selector": {
			pools:   []lbv1.IPAddressPool{pool("web", []string{"203.0.113.0/24"}, serviceSelector("tier", "web"))},
			svc:     svc("ns/a", wantPool("web"), svcLabels("tier", "db")),
			wantErr: notAllowed("web"),
		},
		"allowed by its namespace selector": {
			pools:   []lbv1.IPAddressPool{pool("prod", []string{"203.0.113.0/24"}, namespaceSelector("env", "prod"))},
			svc:     svc("ns/a", wantPool("prod"), nsLabels("env", "prod")),
			wantIPs: []string{"203.0.113.0"}, wantPool: "prod",
		},
		"autoAssign false still usable on request": {
			pools:   []lbv1.IPAddressPool{v4Pool, pool("manual", []string{"203.0.113.0/24"}, noAutoAssign)},
			svc:     svc("ns/a", wantPool("manual")),
			wantIPs: []string{"203.0.113.0"}, wantPool: "manual",
		},
		"lacks the Service's family": {
			pools:   []lbv1.IPAddressPool{v4Pool, v6Pool},
			svc:     svc("ns/a", wantPool("v4"), v6First),
			wantErr: noPool,
		},
		"lacks a required family": {
			pools:   []lbv1.IPAddressPool{v4Pool, v6Pool},
			svc:     svc("ns/a", wantPool("v4"), policy(RequireDualStack)),
			wantErr: noPool,
		},
		"single-stack pool for a dual-stack preferring Service": {
			pools:   []lbv1.IPAddressPool{v4Pool, dualPool},
			svc:     svc("ns/a", wantPool("v4"), policy(PreferDualStack)),
			wantIPs: []string{"192.0.2.0"}, wantPool: "v4",
		},
		"exhausted, other pools are not used": {
			pools:   []lbv1.IPAddressPool{small, v4Pool},
			before:  []Service{svc("ns/x", wantPool("small")), svc("ns/y", wantPool("small"))},
			svc:     svc("ns/a", wantPool("small")),
			wantErr: exhausted("small"),
		},
	})
}

func TestPoolChoice(t *testing.T) {
	general := pool("general", []string{"192.0.2.0/24"}, priority(0))
	runAssignCases(t, map[string]assignCase{
		"selector pool before a pool without selectors, whatever the priority": {
			pools:   []lbv1.IPAddressPool{general, pool("team", []string{"203.0.113.0/24"}, namespaces("team"), priority(100))},
			svc:     svc("team/a"),
			wantIPs: []string{"203.0.113.0"}, wantPool: "team",
		},
		"selector pool that does not match is skipped": {
			pools:   []lbv1.IPAddressPool{general, pool("team", []string{"203.0.113.0/24"}, namespaces("team"))},
			svc:     svc("other/a"),
			wantIPs: []string{"192.0.2.0"}, wantPool: "general",
		},
		"matching selector pools by priority": {
			pools: []lbv1.IPAddressPool{
				pool("a-ten", []string{"203.0.113.0/26"}, namespaces("team"), priority(10)),
				pool("b-five", []string{"203.0.113.64/26"}, namespaces("team"), priority(5)),
			},
			svc:     svc("team/a"),
			wantIPs: []string{"203.0.113.64"}, wantPool: "b-five",
		},
		"unset priority after every set one": {
			pools: []lbv1.IPAddressPool{
				pool("a-unset", []string{"203.0.113.0/26"}, namespaces("team")),
				pool("z-high", []string{"203.0.113.64/26"}, namespaces("team"), priority(1000000)),
			},
			svc:     svc("team/a"),
			wantIPs: []string{"203.0.113.64"}, wantPool: "z-high",
		},
		"equal priority by name": {
			pools: []lbv1.IPAddressPool{
				pool("beta", []string{"203.0.113.0/26"}, namespaces("team"), priority(3)),
				pool("alpha", []string{"203.0.113.64/26"}, namespaces("team"), priority(3)),
			},
			svc:     svc("team/a"),
			wantIPs: []string{"203.0.113.64"}, wantPool: "alpha",
		},
		"unset priority by name": {
			pools: []lbv1.IPAddressPool{
				pool("beta", []string{"203.0.113.0/26"}),
				pool("alpha", []string{"203.0.113.64/26"}),
			},
			svc:     svc("ns/a"),
			wantIPs: []string{"203.0.113.64"}, wantPool: "alpha",
		},
		"pools without selectors by priority": {
			pools: []lbv1.IPAddressPool{
				pool("alpha", []string{"203.0.113.0/26"}),
				pool("beta", []string{"203.0.113.64/26"}, priority(7)),
			},
			svc:     svc("ns/a"),
			wantIPs: []string{"203.0.113.64"}, wantPool: "beta",
		},
		"Service selector": {
			pools:   []lbv1.IPAddressPool{general, pool("web", []string{"203.0.113.0/24"}, serviceSelector("tier", "web"))},
			svc:     svc("ns/a", svcLabels("tier", "web")),
			wantIPs: []string{"203.0.113.0"}, wantPool: "web",
		},
		"Service selector, other labels": {
			pools:   []lbv1.IPAddressPool{general, pool("web", []string{"203.0.113.0/24"}, serviceSelector("tier", "web"))},
			svc:     svc("ns/a", svcLabels("tier", "db")),
			wantIPs: []string{"192.0.2.0"}, wantPool: "general",
		},
		"namespace selector": {
			pools:   []lbv1.IPAddressPool{general, pool("prod", []string{"203.0.113.0/24"}, namespaceSelector("env", "prod"))},
			svc:     svc("ns/a", nsLabels("env", "prod")),
			wantIPs: []string{"203.0.113.0"}, wantPool: "prod",
		},
		"namespace and Service selectors must both match": {
			pools: []lbv1.IPAddressPool{general,
				pool("prodweb", []string{"203.0.113.0/24"}, namespaces("prod"), serviceSelector("tier", "web"))},
			svc:     svc("prod/a", svcLabels("tier", "db")),
			wantIPs: []string{"192.0.2.0"}, wantPool: "general",
		},
		"only a selector pool that does not match": {
			pools:   []lbv1.IPAddressPool{pool("team", []string{"203.0.113.0/24"}, namespaces("team"))},
			svc:     svc("ns/a"),
			wantErr: noPool,
		},
		"exhausted selector pool falls back": {
			pools:   []lbv1.IPAddressPool{general, pool("team", []string{"203.0.113.0/32"}, namespaces("team"))},
			before:  []Service{svc("team/x")},
			svc:     svc("team/a"),
			wantIPs: []string{"192.0.2.0"}, wantPool: "general",
		},
		"autoAssign false is never picked": {
			pools:   []lbv1.IPAddressPool{pool("manual", []string{"203.0.113.0/24"}, noAutoAssign, priority(0)), pool("z", []string{"192.0.2.0/24"})},
			svc:     svc("ns/a"),
			wantIPs: []string{"192.0.2.0"}, wantPool: "z",
		},
		"autoAssign false with matching selectors is never picked": {
			pools:   []lbv1.IPAddressPool{pool("manual", []string{"203.0.113.0/24"}, noAutoAssign, namespaces("ns")), pool("z", []string{"192.0.2.0/24"})},
			svc:     svc("ns/a"),
			wantIPs: []string{"192.0.2.0"}, wantPool: "z",
		},
		"only autoAssign false pools": {
			pools:   []lbv1.IPAddressPool{pool("manual", []string{"203.0.113.0/24"}, noAutoAssign)},
			svc:     svc("ns/a"),
			wantErr: noPool,
		},
		"every candidate exhausted": {
			pools: []lbv1.IPAddressPool{
				pool("one", []string{"192.0.2.1/32"}, priority(1)),
				pool("two", []string{"192.0.2.2/32"}, priority(2)),
			},
			before:  []Service{svc("ns/x"), svc("ns/y")},
			svc:     svc("ns/a"),
			wantErr: exhausted("one", "two"),
		},
	})
}

func TestAvoidBuggyIPs(t *testing.T) {
	t.Run("a /24 never yields .0 or .255", func(t *testing.T) {
		a := newAllocator(t, pool("p", []string{"192.0.2.0/24"}, avoidBuggy))
		checkUsage(t, a, "p", 0, 0, big.NewInt(254), nil)
		seen := map[netip.Addr]bool{}
		for i := range 254 {
			res := mustAssign(t, a, svc(fmt.Sprintf("ns/s%d", i)))
			ip := res.IPs[0]
			if b := ip.As4()[3]; b == 0 || b == 255 {
				t.Fatalf("got %s", ip)
			}
			if seen[ip] {
				t.Fatalf("%s assigned twice", ip)
			}
			seen[ip] = true
		}
		_, err := a.Assign(svc("ns/last"))
		if !exhausted("p")(err) {
			t.Fatalf("Assign in a full pool: %v", err)
		}
		checkUsage(t, a, "p", 254, 0, big.NewInt(0), nil)
	})
	t.Run("a range of only .255 and .0 is exhausted at once", func(t *testing.T) {
		a := newAllocator(t, pool("p", []string{"192.0.2.255-192.0.3.0"}, avoidBuggy))
		checkUsage(t, a, "p", 0, 0, big.NewInt(0), nil)
		_, err := a.Assign(svc("ns/a"))
		if !exhausted("p")(err) {
			t.Fatalf("Assign: %v, want the pool exhausted", err)
		}
		// Requested explicitly, the address is handed out but does not
		// count as used capacity.
		mustAssign(t, a, svc("ns/b", wantIPs("192.0.3.0")))
		checkUsage(t, a, "p", 0, 0, big.NewInt(0), nil)
	})
	t.Run("without avoidBuggyIPs the same range has two addresses", func(t *testing.T) {
		a := newAllocator(t, pool("p", []string{"192.0.2.255-192.0.3.0"}))
		checkUsage(t, a, "p", 0, 0, big.NewInt(2), nil)
		checkResult(t, mustAssign(t, a, svc("ns/a")), nil, []string{"192.0.2.255"}, "p", nil)
		checkResult(t, mustAssign(t, a, svc("ns/b")), nil, []string{"192.0.3.0"}, "p", nil)
		checkUsage(t, a, "p", 2, 0, big.NewInt(0), nil)
	})
	t.Run("Usage excludes them in every range", func(t *testing.T) {
		// 10.0.0.250-10.0.2.5: 268 addresses, of which .255 .0 .255 .0 skipped.
		a := newAllocator(t, pool("p", []string{"10.0.0.250-10.0.2.5", "10.1.0.0/23", "2001:db8::/126"}, avoidBuggy))
		checkUsage(t, a, "p", 0, 0, big.NewInt(268-4+512-4), big.NewInt(4))
	})
	t.Run("IPv6 addresses are never skipped", func(t *testing.T) {
		a := newAllocator(t, pool("p", []string{"2001:db8::ff-2001:db8::100"}, avoidBuggy))
		checkResult(t, mustAssign(t, a, svc("ns/a", v6First)), nil, []string{"2001:db8::ff"}, "p", nil)
		checkResult(t, mustAssign(t, a, svc("ns/b", v6First)), nil, []string{"2001:db8::100"}, "p", nil)
	})
	t.Run("a released buggy address is not reused", func(t *testing.T) {
		a := newAllocator(t, pool("p", []string{"192.0.2.254-192.0.3.1"}, avoidBuggy))
		mustAssign(t, a, svc("ns/req", wantIPs("192.0.2.255")))
		a.Release("ns/req")
		checkResult(t, mustAssign(t, a, svc("ns/a")), nil, []string{"192.0.2.254"}, "p", nil)
		checkResult(t, mustAssign(t, a, svc("ns/b")), nil, []string{"192.0.3.1"}, "p", nil)
		_, err := a.Assign(svc("ns/c"))
		if !exhausted("p")(err) {
			t.Fatalf("Assign: %v, want the pool exhausted", err)
		}
	})
}

func TestDualStack(t *testing.T) {
	pools := map[string]lbv1.IPAddressPool{
		"v4":   pool("p", []string{"192.0.2.0/24"}),
		"v6":   pool("p", []string{"2001:db8::/64"}),
		"dual": pool("p", []string{"192.0.2.0/24", "2001:db8::/64"}),
	}
	const v4, v6 = "192.0.2.0", "2001:db8::"
	type want struct {
		v4First, v6First []string // nil: NoPoolError
	}
	expect := map[FamilyPolicy]map[string]want{
		SingleStack: {
			"v4":   {[]string{v4}, nil},
			"v6":   {nil, []string{v6}},
			"dual": {[]string{v4}, []string{v6}},
		},
		PreferDualStack: {
			"v4":   {[]string{v4}, nil},
			"v6":   {nil, []string{v6}},
			"dual": {[]string{v4, v6}, []string{v6, v4}},
		},
		RequireDualStack: {
			"v4":   {nil, nil},
			"v6":   {nil, nil},
			"dual": {[]string{v4, v6}, []string{v6, v4}},
		},
	}
	policyNames := map[FamilyPolicy]string{SingleStack: "SingleStack", PreferDualStack: "PreferDualStack", RequireDualStack: "RequireDualStack"}
	cases := map[string]assignCase{}
	for pol, byPool := range expect {
		for poolKind, w := range byPool {
			for _, first := range []bool{true, false} {
				ips, name := w.v4First, "IPv4First"
				if !first {
					ips, name = w.v6First, "IPv6First"
				}
				s := svc("ns/a", policy(pol))
				s.IPv4First = first
				tc := assignCase{pools: []lbv1.IPAddressPool{pools[poolKind]}, svc: s, wantIPs: ips, wantPool: "p"}
				if ips == nil {
					tc.wantErr, tc.wantPool = noPool, ""
				}
				cases[fmt.Sprintf("%s/%s pool/%s", policyNames[pol], poolKind, name)] = tc
			}
		}
	}
	// Pools of one family each: a dual-stack preferring Service gets its
	// first family only; one requiring dual stack gets nothing.
	split := []lbv1.IPAddressPool{pool("a4", []string{"192.0.2.0/24"}), pool("b6", []string{"2001:db8::/64"})}
	cases["PreferDualStack/one pool per family"] = assignCase{pools: split, svc: svc("ns/a", policy(PreferDualStack)), wantIPs: []string{v4}, wantPool: "a4"}
	cases["PreferDualStack/one pool per family/IPv6First"] = assignCase{pools: split, svc: svc("ns/a", policy(PreferDualStack), v6First), wantIPs: []string{v6}, wantPool: "b6"}
	cases["RequireDualStack/one pool per family"] = assignCase{pools: split, svc: svc("ns/a", policy(RequireDualStack)), wantErr: noPool}
	// A pool offering both families wins over a higher priority single-family one.
	cases["PreferDualStack/dual pool over a higher priority IPv4 pool"] = assignCase{
		pools:   []lbv1.IPAddressPool{pool("a4", []string{"192.0.2.0/24"}, priority(0)), pool("dual", []string{"198.51.100.0/24", "2001:db8::/64"}, priority(9))},
		svc:     svc("ns/a", policy(PreferDualStack)),
		wantIPs: []string{"198.51.100.0", v6}, wantPool: "dual",
	}
	// Dual pool exhausted in IPv6: a preferring Service falls back to IPv4.
	cases["PreferDualStack/IPv6 exhausted"] = assignCase{
		pools:   []lbv1.IPAddressPool{pool("dual", []string{"192.0.2.0/30", "2001:db8::/128"})},
		before:  []Service{svc("ns/x", policy(RequireDualStack))},
		svc:     svc("ns/a", policy(PreferDualStack)),
		wantIPs: []string{"192.0.2.1"}, wantPool: "dual",
	}
	cases["RequireDualStack/IPv6 exhausted"] = assignCase{
		pools:   []lbv1.IPAddressPool{pool("dual", []string{"192.0.2.0/30", "2001:db8::/128"})},
		before:  []Service{svc("ns/x", policy(RequireDualStack))},
		svc:     svc("ns/a", policy(RequireDualStack)),
		wantErr: exhausted("dual"),
	}
	runAssignCases(t, cases)
}

// TestFailedDualStackLeaksNothing: a dual-stack attempt that finds one
// family but not the other must not use up the address it found.
func TestFailedDualStackLeaksNothing(t *testing.T) {
	a := newAllocator(t, pool("dual", []string{"192.0.2.0/30", "2001:db8::/127"}))
	mustAssign(t, a, svc("ns/x", policy(RequireDualStack)))
	mustAssign(t, a, svc("ns/y", policy(RequireDualStack)))
	for i := range 5 {
		if _, err := a.Assign(svc(fmt.Sprintf("ns/req%d", i), policy(RequireDualStack))); !exhausted("dual")(err) {
			t.Fatalf("Assign: %v, want the pool exhausted", err)
		}
		if _, err := a.Assign(svc(fmt.Sprintf("ns/pref%d", i), policy(PreferDualStack), v6First)); !exhausted("dual")(err) {
			t.Fatalf("Assign: %v, want the pool exhausted", err)
		}
	}
	checkUsage(t, a, "dual", 2, 2, big.NewInt(2), big.NewInt(0))
	checkResult(t, mustAssign(t, a, svc("ns/a")), nil, []string{"192.0.2.2"}, "dual", nil)
	checkResult(t, mustAssign(t, a, svc("ns/b", policy(PreferDualStack))), nil, []string{"192.0.2.3"}, "dual", nil)
}

func TestSharingMatrix(t *testing.T) {
	keys := map[string][2]string{"same key": {"k", "k"}, "different keys": {"k", "l"}, "no key": {"", ""}, "one key": {"k", ""}}
	portSets := map[string][2][]lbservice.Port{
		"no clash": {{tcp(80)}, {tcp(443), udp(80)}},
		"clash":    {{tcp(80), tcp(8080)}, {tcp(443), tcp(8080)}},
	}
	backends := map[string][2]string{
		"both Cluster":      {"", ""},
		"same Local":        {"local:app=x", "local:app=x"},
		"different Local":   {"local:app=x", "local:app=y"},
		"Cluster and Local": {"", "local:app=y"},
		"Local and Cluster": {"local:app=x", ""},
	}
	for kn, k := range keys {
		for pn, p := range portSets {
			for bn, b := range backends {
				share := k[0] != "" && k[0] == k[1] && pn == "no clash" && (b[0] == b[1])
				first := svc("ns/first", sharing(k[0]), ports(p[0]...), backend(b[0]))
				second := svc("ns/second", sharing(k[1]), ports(p[1]...), backend(b[1]))
				t.Run(kn+"/"+pn+"/"+bn+"/requested", func(t *testing.T) {
					a := newAllocator(t, pool("p", []string{"192.0.2.0/30"}))
					first, second := first, second
					first.Request.IPs = addrs("192.0.2.1")
					second.Request.IPs = addrs("192.0.2.1")
					mustAssign(t, a, first)
					res, err := a.Assign(second)
					if share {
						checkResult(t, res, err, []string{"192.0.2.1"}, "p", nil)
						if h := a.Holders(addr("192.0.2.1")); len(h) != 2 {
							t.Errorf("Holders = %v", h)
						}
						checkUsage(t, a, "p", 1, 0, big.NewInt(3), nil)
						return
					}
					checkResult(t, res, err, nil, "", inUseBy("ns/first", ""))
				})
				t.Run(kn+"/"+pn+"/"+bn+"/automatic", func(t *testing.T) {
					a := newAllocator(t, pool("p", []string{"192.0.2.0/30"}))
					mustAssign(t, a, first)
					want := "192.0.2.1"
					if share {
						want = "192.0.2.0"
					}
					checkResult(t, mustAssign(t, a, second), nil, []string{want}, "p", nil)
				})
			}
		}
	}
}

func TestSharingAmongMany(t *testing.T) {
	a := newAllocator(t, pool("p", []string{"192.0.2.0/29"}))
	// Three Services with one key and distinct ports share one address.
	for i := range 3 {
		res := mustAssign(t, a, svc(fmt.Sprintf("ns/s%d", i), sharing("k"), ports(tcp(int32(80+i)))))
		checkResult(t, res, nil, []string{"192.0.2.0"}, "p", nil)
	}
	// A fourth clashes with one of them and gets a new address; a fifth
	// that clashes with none joins the first address.
	checkResult(t, mustAssign(t, a, svc("ns/s3", sharing("k"), ports(tcp(81)))), nil, []string{"192.0.2.1"}, "p", nil)
	checkResult(t, mustAssign(t, a, svc("ns/s4", sharing("k"), ports(tcp(90)))), nil, []string{"192.0.2.0"}, "p", nil)
	// A sixth clashing with the first address but not the second joins the second.
	checkResult(t, mustAssign(t, a, svc("ns/s5", sharing("k"), ports(tcp(80)))), nil, []string{"192.0.2.1"}, "p", nil)
	checkUsage(t, a, "p", 2, 0, big.NewInt(6), nil)
	if h := a.Holders(addr("192.0.2.0")); !slices.Equal(sorted(h), []string{"ns/s0", "ns/s1", "ns/s2", "ns/s4"}) {
		t.Errorf("Holders = %v", h)
	}
	// Sharing a dual-stack pair.
	b := newAllocator(t, pool("dual", []string{"192.0.2.0/30", "2001:db8::/126"}))
	r1 := mustAssign(t, b, svc("ns/a", sharing("k"), policy(RequireDualStack), ports(tcp(80))))
	r2 := mustAssign(t, b, svc("ns/b", sharing("k"), policy(RequireDualStack), ports(tcp(443))))
	if !slices.Equal(r1.IPs, r2.IPs) {
		t.Errorf("dual-stack sharing: %v and %v", r1.IPs, r2.IPs)
	}
	checkUsage(t, b, "dual", 1, 1, big.NewInt(3), big.NewInt(3))
	// Releasing one holder keeps the address for the others.
	b.Release("ns/a")
	if h := b.Holders(r1.IPs[0]); !slices.Equal(h, []string{"ns/b"}) {
		t.Errorf("Holders after Release = %v", h)
	}
	checkUsage(t, b, "dual", 1, 1, big.NewInt(3), big.NewInt(3))
}

func sorted(s []string) []string {
	s = slices.Clone(s)
	slices.Sort(s)
	return s
}

func TestKeepCurrent(t *testing.T) {
	tests := map[string]func(t *testing.T){
		"Assign twice gives the same addresses": func(t *testing.T) {
			a := newAllocator(t, dualPool)
			s := svc("ns/a", policy(PreferDualStack))
			r1 := mustAssign(t, a, s)
			mustAssign(t, a, svc("ns/b", policy(PreferDualStack)))
			r2 := mustAssign(t, a, s)
			if !slices.Equal(r1.IPs, r2.IPs) || r1.Pool != r2.Pool {
				t.Errorf("second Assign = %v, first %v", r2, r1)
			}
		},
		"a higher priority pool appearing does not move it": func(t *testing.T) {
			a := newAllocator(t, v4Pool)
			r1 := mustAssign(t, a, svc("ns/a"))
			a.SetConfig(mustConfig(t, v4Pool, pool("first", []string{"203.0.113.0/24"}, priority(0))))
			r2 := mustAssign(t, a, svc("ns/a"))
			checkResult(t, r2, nil, ipStrings(r1.IPs), "v4", nil)
		},
		"changing ports compatibly keeps the shared address": func(t *testing.T) {
			a := newAllocator(t, pool("p", []string{"192.0.2.0/30"}))
			mustAssign(t, a, svc("ns/a", sharing("k"), ports(tcp(80))))
			checkResult(t, mustAssign(t, a, svc("ns/b", sharing("k"), ports(tcp(443)))), nil, []string{"192.0.2.0"}, "p", nil)
			checkResult(t, mustAssign(t, a, svc("ns/b", sharing("k"), ports(tcp(8443), udp(80)))), nil, []string{"192.0.2.0"}, "p", nil)
			// The new ports count: a third Service may not take 8443 there.
			checkResult(t, mustAssign(t, a, svc("ns/c", sharing("k"), ports(tcp(8443)))), nil, []string{"192.0.2.1"}, "p", nil)
		},
		"changing ports to clash moves it": func(t *testing.T) {
			a := newAllocator(t, pool("p", []string{"192.0.2.0/30"}))
			mustAssign(t, a, svc("ns/a", sharing("k"), ports(tcp(80))))
			mustAssign(t, a, svc("ns/b", sharing("k"), ports(tcp(443))))
			checkResult(t, mustAssign(t, a, svc("ns/b", sharing("k"), ports(tcp(80)))), nil, []string{"192.0.2.1"}, "p", nil)
			if h := a.Holders(addr("192.0.2.0")); !slices.Equal(h, []string{"ns/a"}) {
				t.Errorf("Holders(.0) = %v", h)
			}
		},
		"requesting a different pool moves it": func(t *testing.T) {
			a := newAllocator(t, v4Pool, pool("other", []string{"203.0.113.0/24"}))
			r1 := mustAssign(t, a, svc("ns/a"))
			checkResult(t, r1, nil, []string{"203.0.113.0"}, "other", nil)
			checkResult(t, mustAssign(t, a, svc("ns/a", wantPool("v4"))), nil, []string{"192.0.2.0"}, "v4", nil)
			checkUsage(t, a, "other", 0, 0, big.NewInt(256), nil)
			checkUsage(t, a, "v4", 1, 0, big.NewInt(255), nil)
			if h := a.Holders(addr("203.0.113.0")); len(h) != 0 {
				t.Errorf("old address still held by %v", h)
			}
		},
		"requesting its own pool keeps it": func(t *testing.T) {
			a := newAllocator(t, v4Pool, pool("other", []string{"203.0.113.0/24"}))
			mustAssign(t, a, svc("ns/x"))
			r1 := mustAssign(t, a, svc("ns/a"))
			checkResult(t, mustAssign(t, a, svc("ns/a", wantPool(r1.Pool))), nil, ipStrings(r1.IPs), r1.Pool, nil)
		},
		"requesting its own address keeps it": func(t *testing.T) {
			a := newAllocator(t, v4Pool)
			mustAssign(t, a, svc("ns/x"))
			r1 := mustAssign(t, a, svc("ns/a"))
			checkResult(t, mustAssign(t, a, svc("ns/a", wantIPs(r1.IPs[0].String()))), nil, ipStrings(r1.IPs), "v4", nil)
		},
		"requesting another address moves it": func(t *testing.T) {
			a := newAllocator(t, v4Pool)
			mustAssign(t, a, svc("ns/a"))
			checkResult(t, mustAssign(t, a, svc("ns/a", wantIPs("192.0.2.77"))), nil, []string{"192.0.2.77"}, "v4", nil)
			checkUsage(t, a, "v4", 1, 0, big.NewInt(255), nil)
		},
		"a failed move keeps the current addresses": func(t *testing.T) {
			a := newAllocator(t, v4Pool)
			mustAssign(t, a, svc("ns/a"))
			if _, err := a.Assign(svc("ns/a", wantPool("nope"))); !poolNotFound("nope")(err) {
				t.Fatalf("Assign: %v", err)
			}
			if r, ok := a.Assigned("ns/a"); !ok || !slices.Equal(ipStrings(r.IPs), []string{"192.0.2.0"}) {
				t.Errorf("Assigned = %v, %v", r, ok)
			}
		},
		"switching the family moves it": func(t *testing.T) {
			a := newAllocator(t, dualPool)
			mustAssign(t, a, svc("ns/a"))
			checkResult(t, mustAssign(t, a, svc("ns/a", v6First)), nil, []string{"2001:db8:1::"}, "dual", nil)
			checkUsage(t, a, "dual", 0, 1, big.NewInt(256), bigSub(bigPow2(64), 1))
		},
		"becoming single-stack drops the other family": func(t *testing.T) {
			a := newAllocator(t, dualPool)
			mustAssign(t, a, svc("ns/x"))
			checkResult(t, mustAssign(t, a, svc("ns/a", policy(PreferDualStack))), nil, []string{"198.51.100.1", "2001:db8:1::"}, "dual", nil)
			res := mustAssign(t, a, svc("ns/a", policy(SingleStack)))
			if len(res.IPs) != 1 || !res.IPs[0].Is4() || res.Pool != "dual" {
				t.Errorf("Assign = %v, want one IPv4 address from dual", res)
			}
			checkUsage(t, a, "dual", 2, 0, big.NewInt(254), bigPow2(64))
		},
		"a dual-stack preferring Service is not moved to gain a family": func(t *testing.T) {
			a := newAllocator(t, v4Pool)
			r1 := mustAssign(t, a, svc("ns/a", policy(PreferDualStack)))
			a.SetConfig(mustConfig(t, v4Pool, v6Pool))
			checkResult(t, mustAssign(t, a, svc("ns/a", policy(PreferDualStack))), nil, ipStrings(r1.IPs), "v4", nil)
		},
		"a Service changed so that its pool's selectors exclude it moves": func(t *testing.T) {
			a := newAllocator(t, pool("web", []string{"203.0.113.0/24"}, serviceSelector("tier", "web")), v4Pool)
			checkResult(t, mustAssign(t, a, svc("ns/a", svcLabels("tier", "web"))), nil, []string{"203.0.113.0"}, "web", nil)
			checkResult(t, mustAssign(t, a, svc("ns/a", svcLabels("tier", "db"))), nil, []string{"192.0.2.0"}, "v4", nil)
			// With the pool requested, the change is refused, and the
			// Service keeps what it has.
			mustAssign(t, a, svc("ns/b", svcLabels("tier", "web"), wantPool("web")))
			_, err := a.Assign(svc("ns/b", svcLabels("tier", "db"), wantPool("web")))
			if !notAllowed("web")(err) {
				t.Fatalf("Assign: %v", err)
			}
			if r, _ := a.Assigned("ns/b"); r.Pool != "web" {
				t.Errorf("Assigned = %v", r)
			}
		},
		"a configuration change alone never moves it": func(t *testing.T) {
			a := newAllocator(t, pool("web", []string{"203.0.113.0/24"}), v4Pool)
			s := svc("ns/a", wantPool("web"))
			r1 := mustAssign(t, a, s)
			// The pool now selects other Services and has lost autoAssign.
			a.SetConfig(mustConfig(t, pool("web", []string{"203.0.113.0/24"}, serviceSelector("tier", "web"), noAutoAssign), v4Pool))
			checkResult(t, mustAssign(t, a, s), nil, ipStrings(r1.IPs), "web", nil)
		},
	}
	for name, f := range tests {
		t.Run(name, f)
	}
}

func TestExhaustion(t *testing.T) {
	a := newAllocator(t, pool("p", []string{"192.0.2.0/30"}))
	var got []string
	for i := range 4 {
		res := mustAssign(t, a, svc(fmt.Sprintf("ns/s%d", i)))
		got = append(got, ipStrings(res.IPs)...)
	}
	if want := []string{"192.0.2.0", "192.0.2.1", "192.0.2.2", "192.0.2.3"}; !slices.Equal(got, want) {
		t.Fatalf("assigned %v, want %v", got, want)
	}
	checkUsage(t, a, "p", 4, 0, big.NewInt(0), nil)
	for range 3 {
		_, err := a.Assign(svc("ns/s4"))
		if !exhausted("p")(err) {
			t.Fatalf("fifth Assign: %v, want PoolExhaustedError", err)
		}
		if !strings.Contains(err.Error(), "p") {
			t.Errorf("error %q does not name the pool", err)
		}
	}
	if _, ok := a.Assigned("ns/s4"); ok {
		t.Errorf("failed Service has an assignment")
	}
	a.Release("ns/s2")
	checkUsage(t, a, "p", 3, 0, big.NewInt(1), nil)
	checkResult(t, mustAssign(t, a, svc("ns/s4")), nil, []string{"192.0.2.2"}, "p", nil)
	checkUsage(t, a, "p", 4, 0, big.NewInt(0), nil)
}

func TestReleaseAndReuse(t *testing.T) {
	a := newAllocator(t, pool("p", []string{"192.0.2.0/29"}))
	for i := range 5 {
		mustAssign(t, a, svc(fmt.Sprintf("ns/s%d", i)))
	}
	a.Release("ns/unknown") // no-op
	a.Release("ns/s1")
	a.Release("ns/s1") // twice is harmless
	a.Release("ns/s3")
	if _, ok := a.Assigned("ns/s1"); ok {
		t.Errorf("released Service still assigned")
	}
	for _, ip := range []string{"192.0.2.1", "192.0.2.3"} {
		if h := a.Holders(addr(ip)); h != nil {
			t.Errorf("Holders(%s) = %v after Release", ip, h)
		}
	}
	checkUsage(t, a, "p", 3, 0, big.NewInt(5), nil)
	// Released addresses come back before new ones.
	var got []string
	for i := 5; i < 8; i++ {
		got = append(got, ipStrings(mustAssign(t, a, svc(fmt.Sprintf("ns/s%d", i))).IPs)...)
	}
	slices.Sort(got)
	if want := []string{"192.0.2.1", "192.0.2.3", "192.0.2.5"}; !slices.Equal(got, want) {
		t.Errorf("after Release got %v, want %v", got, want)
	}
	checkUsage(t, a, "p", 6, 0, big.NewInt(2), nil)
	// A requested address freed by Release can be handed out automatically.
	b := newAllocator(t, pool("p", []string{"192.0.2.0/31"}))
	mustAssign(t, b, svc("ns/req", wantIPs("192.0.2.0")))
	checkResult(t, mustAssign(t, b, svc("ns/a")), nil, []string{"192.0.2.1"}, "p", nil)
	b.Release("ns/req")
	checkResult(t, mustAssign(t, b, svc("ns/b")), nil, []string{"192.0.2.0"}, "p", nil)
}

func TestSetConfigShrink(t *testing.T) {
	a := newAllocator(t, pool("p", []string{"192.0.2.0/29", "2001:db8::/125"}))
	for i := range 6 {
		mustAssign(t, a, svc(fmt.Sprintf("ns/s%d", i), policy(RequireDualStack)))
	}
	if o := a.Orphans(); len(o) != 0 {
		t.Fatalf("Orphans = %v before shrinking", o)
	}
	shrunk := mustConfig(t, pool("p", []string{"192.0.2.0/30", "2001:db8::/125"}))
	a.SetConfig(shrunk)
	o := a.Orphans()
	want := map[string][]string{"ns/s4": {"192.0.2.4"}, "ns/s5": {"192.0.2.5"}}
	if len(o) != len(want) {
		t.Fatalf("Orphans = %v, want %v", o, want)
	}
	for k, ips := range want {
		if !slices.Equal(ipStrings(o[k]), ips) {
			t.Errorf("Orphans[%s] = %v, want %v", k, o[k], ips)
		}
	}
	for i := range 6 {
		r, ok := a.Assigned(fmt.Sprintf("ns/s%d", i))
		wantIPs := []string{fmt.Sprintf("192.0.2.%d", i), addr(fmt.Sprintf("2001:db8::%x", i)).String()}
		if !ok || !slices.Equal(ipStrings(r.IPs), wantIPs) {
			t.Errorf("Assigned(s%d) = %v, %v; want %v kept", i, r, ok, wantIPs)
		}
	}
	checkUsage(t, a, "p", 4, 6, big.NewInt(0), big.NewInt(2))
	// Reconciling the unchanged Services keeps their addresses, orphaned or not.
	for i := range 6 {
		res := mustAssign(t, a, svc(fmt.Sprintf("ns/s%d", i), policy(RequireDualStack)))
		if got := ipStrings(res.IPs)[0]; got != fmt.Sprintf("192.0.2.%d", i) {
			t.Errorf("Assign(s%d) after shrinking = %v", i, res.IPs)
		}
	}
	if len(a.Orphans()) != 2 {
		t.Errorf("Orphans = %v after Assign", a.Orphans())
	}
	// No new Service gets an orphaned address.
	if _, err := a.Assign(svc("ns/new")); !exhausted("p")(err) {
		t.Errorf("Assign in the shrunk pool: %v", err)
	}
	// A changed orphan moves when it can; here the pool is full.
	if _, err := a.Assign(svc("ns/s5", policy(RequireDualStack), ports(tcp(81)), svcLabels("x", "y"))); !exhausted("p")(err) {
		t.Errorf("Assign of a changed orphan: %v", err)
	}
	a.Release("ns/s0")
	checkResult(t, mustAssign(t, a, svc("ns/s5", policy(RequireDualStack), svcLabels("x", "y"))), nil,
		[]string{"192.0.2.0", "2001:db8::"}, "p", nil)
	if o := a.Orphans(); len(o) != 1 || len(o["ns/s4"]) != 1 {
		t.Errorf("Orphans = %v", o)
	}
	// Releasing an orphan frees nothing in the pool.
	a.Release("ns/s4")
	checkUsage(t, a, "p", 4, 4, big.NewInt(0), big.NewInt(4))
	// Growing the pool again gives room for more.
	a.SetConfig(mustConfig(t, pool("p", []string{"192.0.2.0/29", "2001:db8::/125"})))
	checkUsage(t, a, "p", 4, 4, big.NewInt(4), big.NewInt(4))
	// An address that was an orphan counts again once the pool covers it.
	if err := a.Restore(svc("ns/old"), addrs("192.0.2.12")); err != nil {
		t.Fatal(err)
	}
	a.SetConfig(mustConfig(t, pool("p", []string{"192.0.2.0/28", "2001:db8::/125"})))
	checkUsage(t, a, "p", 5, 4, big.NewInt(11), big.NewInt(4))
	if o := a.Orphans(); len(o) != 0 {
		t.Errorf("Orphans = %v", o)
	}
	// Deleting the pool orphans everything.
	a.SetConfig(mustConfig(t, pool("q", []string{"203.0.113.0/24"})))
	if o := a.Orphans(); len(o) != 5 {
		t.Errorf("Orphans after deleting the pool = %v", o)
	}
	if _, ok := a.Usage("p"); ok {
		t.Errorf("Usage of a deleted pool")
	}
	checkUsage(t, a, "q", 0, 0, big.NewInt(256), nil)
}

func TestUsageExact(t *testing.T) {
	t.Run("IPv6 /48", func(t *testing.T) {
		a := newAllocator(t, pool("p", []string{"2001:db8::/48"}))
		checkUsage(t, a, "p", 0, 0, nil, bigPow2(80))
		for i := range 1000 {
			mustAssign(t, a, svc(fmt.Sprintf("ns/s%d", i), v6First))
		}
		checkUsage(t, a, "p", 0, 1000, nil, bigSub(bigPow2(80), 1000))
	})
	t.Run("IPv6 /64", func(t *testing.T) {
		a := newAllocator(t, pool("p", []string{"2001:db8::/64"}))
		checkUsage(t, a, "p", 0, 0, nil, bigPow2(64))
		const n = 777
		for i := range n {
			mustAssign(t, a, svc(fmt.Sprintf("ns/s%d", i), v6First))
		}
		checkUsage(t, a, "p", 0, n, nil, bigSub(bigPow2(64), n))
		for i := range 100 {
			a.Release(fmt.Sprintf("ns/s%d", i))
		}
		checkUsage(t, a, "p", 0, n-100, nil, bigSub(bigPow2(64), n-100))
	})
	t.Run("the whole IPv6 space", func(t *testing.T) {
		a := newAllocator(t, pool("p", []string{"::/0"}))
		mustAssign(t, a, svc("ns/a", v6First))
		checkUsage(t, a, "p", 0, 1, nil, bigSub(bigPow2(128), 1))
	})
	t.Run("dual-stack ranges", func(t *testing.T) {
		a := newAllocator(t, pool("p", []string{"192.0.2.10-192.0.2.19", "198.51.100.0/25", "2001:db8::/64", "2001:db8:1::1-2001:db8:1::3"}))
		mustAssign(t, a, svc("ns/a", policy(RequireDualStack)))
		mustAssign(t, a, svc("ns/b", wantIPs("198.51.100.5")))
		checkUsage(t, a, "p", 2, 1, big.NewInt(10+128-2), new(big.Int).Add(bigPow2(64), big.NewInt(3-1)))
	})
	t.Run("unknown pool", func(t *testing.T) {
		a := newAllocator(t, v4Pool)
		if _, ok := a.Usage("nope"); ok {
			t.Errorf("Usage of a missing pool")
		}
	})
}

func TestRestore(t *testing.T) {
	pools := []lbv1.IPAddressPool{
		pool("a", []string{"192.0.2.0/28", "2001:db8::/64"}),
		pool("team", []string{"198.51.100.0/29"}, namespaces("team"), priority(1)),
		pool("manual", []string{"203.0.113.0/28"}, noAutoAssign),
	}
	var services []Service
	for i := range 12 {
		ns := "ns"
		if i%4 == 0 {
			ns = "team"
		}
		opts := []svcOpt{ports(tcp(int32(80 + i)))}
		switch i % 6 {
		case 1:
			opts = append(opts, policy(PreferDualStack))
		case 2:
			opts = append(opts, v6First)
		case 3:
			opts = append(opts, sharing("k"))
		case 4:
			opts = append(opts, wantPool("manual"))
		case 5:
			opts = append(opts, wantIPs("192.0.2.9"), sharing("k"))
		}
		services = append(services, svc(fmt.Sprintf("%s/s%d", ns, i), opts...))
	}
	a := newAllocator(t, pools...)
	// Churn first, so that the cursors and free lists are not trivial.
	for i, s := range services {
		mustAssign(t, a, s)
		if i%3 == 0 {
			a.Release(s.Key)
		}
	}
	for _, s := range services {
		mustAssign(t, a, s)
	}
	want := map[string]Result{}
	for _, s := range services {
		r, _ := a.Assigned(s.Key)
		want[s.Key] = r
	}
	for seed := range int64(20) {
		rng := rand.New(rand.NewSource(seed))
		b := New()
		b.SetConfig(mustConfig(t, pools...))
		for _, i := range rng.Perm(len(services)) {
			s := services[i]
			if err := b.Restore(s, want[s.Key].IPs); err != nil {
				t.Fatalf("seed %d: Restore(%s): %v", seed, s.Key, err)
			}
		}
		for _, p := range []string{"a", "team", "manual"} {
			u1, _ := a.Usage(p)
			u2, _ := b.Usage(p)
			if u1.Assigned4 != u2.Assigned4 || u1.Assigned6 != u2.Assigned6 {
				t.Errorf("seed %d: Usage(%s) after Restore = %+v, before %+v", seed, p, u2, u1)
			}
		}
		for _, i := range rng.Perm(len(services)) {
			s := services[i]
			res := mustAssign(t, b, s)
			if !slices.Equal(res.IPs, want[s.Key].IPs) || res.Pool != want[s.Key].Pool {
				t.Errorf("seed %d: Assign(%s) after Restore = %v, want %v", seed, s.Key, res, want[s.Key])
			}
		}
		// New Services get fresh addresses, never a restored one.
		for i := range 3 {
			res := mustAssign(t, b, svc(fmt.Sprintf("ns/new%d", i)))
			for k, r := range want {
				if slices.Contains(r.IPs, res.IPs[0]) {
					t.Errorf("seed %d: new Service got %s held by %s", seed, res.IPs[0], k)
				}
			}
		}
	}
}

func TestRestoreConflicts(t *testing.T) {
	a := newAllocator(t, v4Pool)
	if err := a.Restore(svc("ns/a", ports(tcp(80))), addrs("192.0.2.5")); err != nil {
		t.Fatal(err)
	}
	err := a.Restore(svc("ns/b", ports(tcp(443))), addrs("192.0.2.5"))
	if !inUseBy("ns/a", "")(err) {
		t.Fatalf("Restore of a held address: %v", err)
	}
	if _, ok := a.Assigned("ns/b"); ok {
		t.Errorf("conflicting Restore recorded")
	}
	// Compatible sharers restore fine, and an address in no pool is
	// recorded as an orphan.
	a2 := newAllocator(t, v4Pool)
	for _, s := range []Service{svc("ns/a", sharing("k"), ports(tcp(80))), svc("ns/b", sharing("k"), ports(tcp(443)))} {
		if err := a2.Restore(s, addrs("192.0.2.5")); err != nil {
			t.Fatal(err)
		}
	}
	if err := a2.Restore(svc("ns/c"), addrs("10.9.9.9")); err != nil {
		t.Fatal(err)
	}
	checkUsage(t, a2, "v4", 1, 0, big.NewInt(255), nil)
	if o := a2.Orphans(); len(o) != 1 || !slices.Equal(ipStrings(o["ns/c"]), []string{"10.9.9.9"}) {
		t.Errorf("Orphans = %v", o)
	}
	// Restoring again replaces the earlier record.
	if err := a2.Restore(svc("ns/c"), addrs("192.0.2.6")); err != nil {
		t.Fatal(err)
	}
	if o := a2.Orphans(); len(o) != 0 {
		t.Errorf("Orphans = %v", o)
	}
	checkUsage(t, a2, "v4", 2, 0, big.NewInt(254), nil)
	// A restored address whose Service now requests something else moves.
	if err := a2.Restore(svc("ns/d"), addrs("192.0.2.7")); err != nil {
		t.Fatal(err)
	}
	checkResult(t, mustAssign(t, a2, svc("ns/d", wantIPs("192.0.2.8"))), nil, []string{"192.0.2.8"}, "v4", nil)
	// A restored IPv6 address of a Service that is single-stack IPv4 moves.
	a3 := newAllocator(t, dualPool)
	if err := a3.Restore(svc("ns/e"), addrs("2001:db8:1::9")); err != nil {
		t.Fatal(err)
	}
	checkResult(t, mustAssign(t, a3, svc("ns/e")), nil, []string{"198.51.100.0"}, "dual", nil)
}

func TestOrphanKeptUntilChanged(t *testing.T) {
	grown := pool("p", []string{"192.0.2.0/29", "2001:db8::/126"})
	shrunk := pool("p", []string{"192.0.2.0/30", "2001:db8::/126"})
	other := pool("q", []string{"203.0.113.0/24"})
	tests := map[string]struct {
		change  Service
		wantIPs []string
		wantErr errCheck
	}{
		"unchanged":             {change: svc("ns/a"), wantIPs: []string{"192.0.2.4"}},
		"other ports":           {change: svc("ns/a", ports(tcp(8080))), wantIPs: []string{"192.0.2.4"}},
		"other labels":          {change: svc("ns/a", svcLabels("x", "y")), wantIPs: []string{"192.0.2.4"}},
		"requests its address":  {change: svc("ns/a", wantIPs("192.0.2.4")), wantIPs: []string{"192.0.2.4"}},
		"requests another IP":   {change: svc("ns/a", wantIPs("192.0.2.5")), wantErr: notInPool("192.0.2.5", "")},
		"requests another pool": {change: svc("ns/a", wantPool("q")), wantIPs: []string{"203.0.113.0"}},
		"becomes IPv6":          {change: svc("ns/a", v6First), wantIPs: []string{"2001:db8::"}},
		"requires dual stack":   {change: svc("ns/a", policy(RequireDualStack)), wantErr: exhausted("p")},
		"prefers dual stack":    {change: svc("ns/a", policy(PreferDualStack)), wantIPs: []string{"192.0.2.4"}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			a := newAllocator(t, grown, other)
			for i := range 4 {
				mustAssign(t, a, svc(fmt.Sprintf("ns/s%d", i)))
			}
			checkResult(t, mustAssign(t, a, svc("ns/a")), nil, []string{"192.0.2.4"}, "p", nil)
			a.SetConfig(mustConfig(t, shrunk, other))
			res, err := a.Assign(tc.change)
			if tc.wantErr != nil {
				checkResult(t, res, err, nil, "", tc.wantErr)
				// The Service keeps what it had.
				if r, _ := a.Assigned("ns/a"); !slices.Equal(ipStrings(r.IPs), []string{"192.0.2.4"}) {
					t.Errorf("Assigned after a failed change = %v", r)
				}
				return
			}
			if err != nil {
				t.Fatalf("Assign: %v", err)
			}
			if got := ipStrings(res.IPs); !slices.Equal(got, tc.wantIPs) {
				t.Errorf("Assign = %v, want %v", got, tc.wantIPs)
			}
			orphaned := tc.wantIPs[0] == "192.0.2.4"
			if o := a.Orphans(); (len(o["ns/a"]) > 0) != orphaned {
				t.Errorf("Orphans = %v", o)
			}
		})
	}
}
