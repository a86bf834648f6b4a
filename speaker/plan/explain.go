package plan

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"

	"github.com/lbstack/lbstack/internal/config"
	"github.com/lbstack/lbstack/internal/lbservice"
	"github.com/lbstack/lbstack/speaker/bgp"
)

// Explanation says, for one address, which configuration covers it and
// which nodes may announce it, with the reason for every node that may
// not. It is computed by the same rules as L2 and BGP, so what it says is
// what the speakers do; `kubectl lbstack explain-ip` prints it.
type Explanation struct {
	// IP is the address explained.
	IP netip.Addr
	// Pool is the pool the address belongs to ("" when none holds it).
	Pool string
	// Services are the Services holding the address, sorted.
	Services []string
	// L2Advertisements and BGPAdvertisements are the advertisements that
	// cover the pool and select at least one of the Services.
	L2Advertisements  []string
	BGPAdvertisements []string
	// ElectionKey is the address the layer-2 election ranks nodes for: the
	// lowest address of the group the address is announced with (the
	// addresses of one Service, and of Services sharing one, move together).
	ElectionKey netip.Addr
	// L2 has one verdict per node for layer 2 (empty when no
	// L2Advertisement covers the address, or no Service holds it); BGP
	// likewise.
	L2, BGP []NodeVerdict
}

// NodeVerdict is whether one node may announce an address, and why.
type NodeVerdict struct {
	Node string
	// Eligible: the node is a candidate (layer 2: the election picks one
	// live candidate; BGP: every eligible node advertises).
	Eligible bool
	// Interfaces are the layer-2 interfaces it would answer on (nil: all).
	Interfaces []string
	// Peers are the BGP peers it would advertise to.
	Peers []string
	// Reason says why the node is not eligible ("" when it is).
	Reason string
}

// Explain explains ip given every Service holding it (services may hold
// other Services too: only those with ip are considered), the nodes and
// the configuration.
func Explain(cfg *config.Config, services []ServiceState, ip netip.Addr, nodes []NodeState) Explanation {
	ex := Explanation{IP: ip}
	if cfg == nil {
		return ex
	}
	var holders []ServiceState
	for _, s := range services {
		if slices.Contains(s.IPs, ip) {
			holders = append(holders, s)
			ex.Services = append(ex.Services, s.Key.String())
		}
	}
	slices.Sort(ex.Services)
	annotated := ""
	if len(holders) > 0 {
		annotated = holders[0].Pool
	}
	ex.Pool = lbservice.PoolOf(cfg, annotated, ip)
	if ex.Pool == "" {
		return ex
	}
	selectsAny := func(sels func(i int) bool) bool {
		if len(holders) == 0 {
			return true // nobody holds it yet: any advertisement of the pool
		}
		for i := range holders {
			if sels(i) {
				return true
			}
		}
		return false
	}
	var l2 []*config.L2Advertisement
	for _, a := range cfg.L2Advertisements {
		if slices.Contains(a.Pools, ex.Pool) && selectsAny(func(i int) bool { return anySelects(a.ServiceSelectors, holders[i].Labels) }) {
			l2 = append(l2, a)
			ex.L2Advertisements = append(ex.L2Advertisements, a.Name)
		}
	}
	var bgpAdvs []*config.BGPAdvertisement
	for _, a := range cfg.BGPAdvertisements {
		if slices.Contains(a.Pools, ex.Pool) && selectsAny(func(i int) bool { return anySelects(a.ServiceSelectors, holders[i].Labels) }) {
			bgpAdvs = append(bgpAdvs, a)
			ex.BGPAdvertisements = append(ex.BGPAdvertisements, a.Name)
		}
	}
	if len(holders) == 0 {
		return ex // nothing to announce: no node verdicts
	}
	if len(l2) > 0 {
		ex.ElectionKey = ip
		var cands map[string][]string
		for _, g := range L2(cfg, services, nodes) {
			if slices.Contains(g.IPs, ip) {
				ex.ElectionKey, cands = g.Key, g.Candidates
			}
		}
		for _, n := range nodes {
			v := NodeVerdict{Node: n.Name}
			if ifs, ok := cands[n.Name]; ok {
				v.Eligible, v.Interfaces = true, ifs
			} else {
				v.Reason = l2Reason(l2, holders, n)
			}
			ex.L2 = append(ex.L2, v)
		}
	}
	if len(bgpAdvs) > 0 {
		for _, n := range nodes {
			v := NodeVerdict{Node: n.Name}
			p := BGP(cfg, holders, nodes, n.Name)
			for _, path := range p.Paths {
				if path.Prefix.Contains(ip) {
					v.Eligible = true
					peers := path.Peers
					if peers == nil {
						for _, peer := range p.Peers {
							peers = append(peers, peer.Name)
						}
					}
					v.Peers = append(v.Peers, peers...)
				}
			}
			// Only the peers this node holds a session with.
			v.Peers = slices.DeleteFunc(v.Peers, func(name string) bool {
				return !slices.ContainsFunc(p.Peers, func(peer bgp.Peer) bool { return peer.Name == name })
			})
			slices.Sort(v.Peers)
			v.Peers = slices.Compact(v.Peers)
			if v.Eligible && len(v.Peers) == 0 {
				v.Eligible = false
				v.Reason = "its advertisements name only peers it has no session with"
			}
			if !v.Eligible && v.Reason == "" {
				v.Reason = bgpReason(cfg, bgpAdvs, holders, n, p)
			}
			ex.BGP = append(ex.BGP, v)
		}
	}
	return ex
}

// nodeBlock is why a node may not announce anything at all, "" if none.
func nodeBlock(n NodeState) string {
	switch {
	case n.Excluded:
		return "labelled node.kubernetes.io/exclude-from-external-load-balancers"
	case n.NetworkUnavailable:
		return "its NetworkUnavailable condition is True"
	}
	return ""
}

// localBlock is why a node may not announce for externalTrafficPolicy
// Local Services, "" if it has a ready endpoint of one.
func localBlock(holders []ServiceState, node string) string {
	var local []string
	for _, s := range holders {
		if !s.Local {
			return ""
		}
		if s.EndpointNodes[node] {
			return ""
		}
		local = append(local, s.Key.String())
	}
	if len(local) == 0 {
		return ""
	}
	return fmt.Sprintf("externalTrafficPolicy Local and no ready endpoint of %s on the node", strings.Join(local, ", "))
}

func l2Reason(advs []*config.L2Advertisement, holders []ServiceState, n NodeState) string {
	if r := nodeBlock(n); r != "" {
		return r
	}
	if r := localBlock(holders, n.Name); r != "" {
		return r
	}
	if !slices.ContainsFunc(advs, func(a *config.L2Advertisement) bool { return anySelects(a.NodeSelectors, n.Labels) }) {
		return "no L2Advertisement covering the address selects the node (nodeSelectors)"
	}
	return "not eligible for every Service sharing the address (the candidates are the nodes eligible for all of them)"
}

func bgpReason(cfg *config.Config, advs []*config.BGPAdvertisement, holders []ServiceState, n NodeState, p BGPPlan) string {
	if r := nodeBlock(n); r != "" {
		return r
	}
	if len(p.Peers) == 0 {
		if len(p.Skipped) > 0 {
			var why []string
			for name, r := range p.Skipped {
				why = append(why, name+": "+r)
			}
			slices.Sort(why)
			return "no BGP session: " + strings.Join(why, "; ")
		}
		return "no BGPPeer selects the node (nodeSelectors)"
	}
	if r := localBlock(holders, n.Name); r != "" {
		return r
	}
	if !slices.ContainsFunc(advs, func(a *config.BGPAdvertisement) bool { return anySelects(a.NodeSelectors, n.Labels) }) {
		return "no BGPAdvertisement covering the address selects the node (nodeSelectors)"
	}
	return "no BGPAdvertisement covering the address reaches a peer of the node"
}
