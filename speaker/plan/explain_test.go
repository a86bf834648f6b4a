package plan

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestExplainAgreesWithL2: Explain's eligible nodes are exactly plan.L2's
// candidates, and every other node has the reason that rules it out.
func TestExplainAgreesWithL2(t *testing.T) {
	cfg := planConfig(t)
	local := svc("local", "192.0.2.17")
	local.Local, local.EndpointNodes = true, map[string]bool{"e": true}
	cases := map[string]struct {
		svc     ServiceState
		ip      string
		reasons map[string]string // node → reason; absent: eligible
	}{
		"all nodes but excluded and network unavailable": {svc("s", "192.0.2.1"), "192.0.2.1", map[string]string{
			"c": "labelled node.kubernetes.io/exclude-from-external-load-balancers",
			"d": "its NetworkUnavailable condition is True",
		}},
		"node selector": {svc("s", "192.0.2.17"), "192.0.2.17", map[string]string{
			"b": "no L2Advertisement covering the address selects the node (nodeSelectors)",
			"c": "labelled node.kubernetes.io/exclude-from-external-load-balancers",
			"d": "its NetworkUnavailable condition is True",
		}},
		"externalTrafficPolicy Local": {local, "192.0.2.17", map[string]string{
			"a": "externalTrafficPolicy Local and no ready endpoint of ns/local on the node",
			"b": "externalTrafficPolicy Local and no ready endpoint of ns/local on the node",
			"c": "labelled node.kubernetes.io/exclude-from-external-load-balancers",
			"d": "its NetworkUnavailable condition is True",
		}},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			services := []ServiceState{tc.svc, svc("other", "192.0.2.2")}
			ex := Explain(cfg, services, ip(tc.ip), planNodes())
			got := map[string]string{}
			eligible := map[string][]string{}
			for _, v := range ex.L2 {
				if v.Eligible {
					eligible[v.Node] = v.Interfaces
					if v.Reason != "" {
						t.Errorf("eligible node %s has a reason %q", v.Node, v.Reason)
					}
				} else {
					got[v.Node] = v.Reason
				}
			}
			if diff := cmp.Diff(tc.reasons, got); diff != "" {
				t.Errorf("reasons (-want +got):\n%s", diff)
			}
			var cands map[string][]string
			for _, g := range L2(cfg, services, planNodes()) {
				for _, a := range g.IPs {
					if a == ip(tc.ip) {
						cands = g.Candidates
					}
				}
			}
			if diff := cmp.Diff(cands, eligible); diff != "" {
				t.Errorf("eligible nodes differ from plan.L2's candidates (-L2 +Explain):\n%s", diff)
			}
			if ex.Pool == "" || len(ex.Services) != 1 || len(ex.L2Advertisements) == 0 || ex.ElectionKey != ip(tc.ip) {
				t.Errorf("explanation %+v", ex)
			}
		})
	}
}

// TestExplainNobody: an address in no pool, or held by no Service, has no
// node verdicts.
func TestExplainNobody(t *testing.T) {
	cfg := planConfig(t)
	if ex := Explain(cfg, nil, ip("203.0.113.1"), planNodes()); ex.Pool != "" || len(ex.L2) != 0 {
		t.Errorf("no pool: %+v", ex)
	}
	if ex := Explain(cfg, nil, ip("192.0.2.3"), planNodes()); ex.Pool != "l2" || len(ex.L2) != 0 || len(ex.Services) != 0 {
		t.Errorf("free address: %+v", ex)
	}
	if ex := Explain(nil, nil, ip("192.0.2.3"), planNodes()); ex.Pool != "" {
		t.Errorf("no configuration: %+v", ex)
	}
}
