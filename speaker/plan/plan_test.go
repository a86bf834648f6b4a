package plan

import (
	"net/netip"
	"testing"

	"github.com/google/go-cmp/cmp"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"

	lbv1 "github.com/lbstack/lbstack/api/v1alpha1"
	"github.com/lbstack/lbstack/internal/config"
)

func mustConfig(t *testing.T, objs config.Objects) *config.Config {
	t.Helper()
	cfg, _, errs := config.Build(objs)
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	return cfg
}

func planConfig(t *testing.T) *config.Config {
	return mustConfig(t, config.Objects{
		Pools: []lbv1.IPAddressPool{
			{ObjectMeta: metav1.ObjectMeta{Name: "l2"}, Spec: lbv1.IPAddressPoolSpec{Addresses: []lbv1.PoolAddress{"192.0.2.0/28", "2001:db8::/120"}}},
			{ObjectMeta: metav1.ObjectMeta{Name: "edge"}, Spec: lbv1.IPAddressPoolSpec{Addresses: []lbv1.PoolAddress{"192.0.2.16/28"}}},
			{ObjectMeta: metav1.ObjectMeta{Name: "bgp-only"}, Spec: lbv1.IPAddressPoolSpec{Addresses: []lbv1.PoolAddress{"198.51.100.0/28"}}},
		},
		L2Advertisements: []lbv1.L2Advertisement{
			{ObjectMeta: metav1.ObjectMeta{Name: "all"}, Spec: lbv1.L2AdvertisementSpec{IPAddressPools: []string{"l2"}}},
			{ObjectMeta: metav1.ObjectMeta{Name: "edge"}, Spec: lbv1.L2AdvertisementSpec{
				IPAddressPools: []string{"edge"},
				NodeSelectors:  []metav1.LabelSelector{{MatchLabels: map[string]string{"edge": "true"}}},
				Interfaces:     []string{"eth1"},
			}},
			{ObjectMeta: metav1.ObjectMeta{Name: "edge-web"}, Spec: lbv1.L2AdvertisementSpec{
				IPAddressPools:   []string{"edge"},
				ServiceSelectors: []metav1.LabelSelector{{MatchLabels: map[string]string{"app": "web"}}},
				Interfaces:       []string{"eth2"},
			}},
		},
	})
}

func ip(s string) netip.Addr { return netip.MustParseAddr(s) }

func svc(name string, ips ...string) ServiceState {
	s := ServiceState{Key: types.NamespacedName{Namespace: "ns", Name: name}}
	for _, a := range ips {
		s.IPs = append(s.IPs, ip(a))
	}
	return s
}

func planNodes() []NodeState {
	return []NodeState{
		{Name: "a", Labels: labels.Set{"edge": "true"}},
		{Name: "b"},
		{Name: "c", Excluded: true},
		{Name: "d", NetworkUnavailable: true},
		{Name: "e", Labels: labels.Set{"edge": "true"}},
	}
}

// TestPlanL2Eligibility is the eligibility matrix: advertisement pools,
// node selectors, service selectors, exclusion, NetworkUnavailable,
// externalTrafficPolicy Local and interfaces.
func TestPlanL2Eligibility(t *testing.T) {
	cfg := planConfig(t)
	cases := map[string]struct {
		svc  ServiceState
		want map[string][]string // nil: not announced over layer 2
	}{
		"every node of the advertisement": {svc("s", "192.0.2.1"), map[string][]string{"a": nil, "b": nil, "e": nil}},
		"ipv6 too":                        {svc("s", "2001:db8::5"), map[string][]string{"a": nil, "b": nil, "e": nil}},
		"node selector and interface":     {svc("s", "192.0.2.17"), map[string][]string{"a": {"eth1"}, "e": {"eth1"}}},
		"service selector adds an advertisement": {
			func() ServiceState { s := svc("s", "192.0.2.17"); s.Labels = labels.Set{"app": "web"}; return s }(),
			map[string][]string{"a": {"eth1", "eth2"}, "b": {"eth2"}, "e": {"eth1", "eth2"}},
		},
		"ETP Local follows the endpoints": {
			func() ServiceState {
				s := svc("s", "192.0.2.1")
				s.Local, s.EndpointNodes = true, map[string]bool{"b": true, "c": true}
				return s
			}(),
			map[string][]string{"b": nil},
		},
		"ETP Local without endpoints": {
			func() ServiceState { s := svc("s", "192.0.2.1"); s.Local = true; return s }(),
			map[string][]string{},
		},
		"pool without L2 advertisement": {svc("s", "198.51.100.1"), nil},
		"address in no pool":            {svc("s", "203.0.113.1"), nil},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			groups := L2(cfg, []ServiceState{tc.svc}, planNodes())
			if tc.want == nil {
				if len(groups) != 0 {
					t.Fatalf("announced: %+v", groups)
				}
				return
			}
			if len(groups) != 1 {
				t.Fatalf("%d groups", len(groups))
			}
			if d := cmp.Diff(tc.want, groups[0].Candidates); d != "" {
				t.Errorf("candidates (-want +got):\n%s", d)
			}
		})
	}
}

// TestPlanL2SharedAddressesGroup: Services sharing an address are joined
// (transitively) into one group, elected by its lowest address, with the
// nodes eligible for all of them.
func TestPlanL2SharedAddressesGroup(t *testing.T) {
	cfg := planConfig(t)
	local := svc("local", "192.0.2.2")
	local.Local, local.EndpointNodes = true, map[string]bool{"e": true}
	groups := L2(cfg, []ServiceState{
		svc("dual", "192.0.2.3", "2001:db8::3"),
		svc("v6-sharer", "2001:db8::3"),
		svc("alone", "192.0.2.9"),
		svc("cluster", "192.0.2.2"),
		local,
	}, planNodes())
	if len(groups) != 3 {
		t.Fatalf("want 3 groups, got %+v", groups)
	}
	want := []struct {
		key      string
		ips      int
		services int
		nodes    []string
	}{
		{"192.0.2.2", 1, 2, []string{"e"}},
		{"192.0.2.3", 2, 2, []string{"a", "b", "e"}},
		{"192.0.2.9", 1, 1, []string{"a", "b", "e"}},
	}
	for i, w := range want {
		g := groups[i]
		if g.Key != ip(w.key) || len(g.IPs) != w.ips || len(g.Services) != w.services || !cmp.Equal(g.CandidateNames(), w.nodes) {
			t.Errorf("group %d: key %s ips %v services %v nodes %v; want %+v", i, g.Key, g.IPs, g.Services, g.CandidateNames(), w)
		}
	}
}

func TestPlanL2Deterministic(t *testing.T) {
	cfg := planConfig(t)
	svcs := []ServiceState{svc("x", "192.0.2.5", "2001:db8::9"), svc("y", "2001:db8::9"), svc("z", "192.0.2.6")}
	first := L2(cfg, svcs, planNodes())
	for range 20 {
		if d := cmp.Diff(first, L2(cfg, svcs, planNodes()), cmp.Comparer(func(a, b netip.Addr) bool { return a == b })); d != "" {
			t.Fatalf("plan differs between runs:\n%s", d)
		}
	}
}
