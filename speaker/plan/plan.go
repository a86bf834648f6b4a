package plan

import (
	"net/netip"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"

	lbv1 "github.com/lbstack/lbstack/api/v1alpha1"
	"github.com/lbstack/lbstack/internal/config"
	"github.com/lbstack/lbstack/internal/lbservice"
	"github.com/lbstack/lbstack/speaker/dataplane"
)

// ServiceState is what the speaker needs to know of one Service: its
// assigned addresses and what decides which nodes may announce them.
type ServiceState struct {
	Key types.NamespacedName
	// IPs are the addresses in status.loadBalancer.ingress.
	IPs []netip.Addr
	// Labels are the Service's labels (advertisements' serviceSelectors).
	Labels labels.Set
	// Pool is the pool the controller assigned from (annotation), "" if unknown.
	Pool string
	// Local is externalTrafficPolicy: Local — only nodes with a ready
	// endpoint may announce.
	Local bool
	// EndpointNodes are the nodes with a ready endpoint of the Service.
	EndpointNodes map[string]bool
}

// NodeState is what decides whether a node may announce at all.
type NodeState struct {
	Name   string
	Labels labels.Set
	// Excluded: labelled node.kubernetes.io/exclude-from-external-load-balancers.
	Excluded bool
	// NetworkUnavailable: the node's NetworkUnavailable condition is true.
	NetworkUnavailable bool
}

// NodeOf reduces a Node to what eligibility needs.
func NodeOf(n *corev1.Node) NodeState {
	st := NodeState{Name: n.Name, Labels: labels.Set(n.Labels)}
	_, st.Excluded = n.Labels[lbv1.LabelExcludeFromExternalLoadBalancers]
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeNetworkUnavailable && c.Status == corev1.ConditionTrue {
			st.NetworkUnavailable = true
		}
	}
	return st
}

// L2 computes the layer-2 groups: which addresses are announced over
// ARP/NDP, and which nodes may announce each. It is pure: every speaker
// computes the same plan from the same objects, and the election over the
// live members then picks one owner per group.
//
// A node is a candidate for a Service's address when an L2Advertisement
// covers the address's pool and the Service and selects the node, the node
// is not excluded (label node.kubernetes.io/exclude-from-external-load-balancers)
// or NetworkUnavailable, and — for externalTrafficPolicy: Local — has a
// ready endpoint of the Service. For an address shared by several Services
// the candidates are the nodes eligible for all of them (or, if none is,
// for any of them, so the address is still answered).
func L2(cfg *config.Config, services []ServiceState, nodes []NodeState) []dataplane.L2Group {
	if cfg == nil {
		return nil
	}
	type perIP struct {
		services []dataplane.ServiceRef
		eligible []map[string][]string // one per Service
	}
	ips := map[netip.Addr]*perIP{}
	uf := newUnionFind()
	for i := range services {
		s := &services[i]
		var first netip.Addr
		for _, ip := range s.IPs {
			el, ok := eligibleL2(cfg, s, ip, nodes)
			if !ok {
				continue // not announced over layer 2
			}
			p := ips[ip]
			if p == nil {
				p = &perIP{}
				ips[ip] = p
			}
			p.services = append(p.services, dataplane.ServiceRef(s.Key))
			p.eligible = append(p.eligible, el)
			uf.add(ip)
			if first.IsValid() {
				uf.union(first, ip)
			} else {
				first = ip
			}
		}
	}
	groups := map[netip.Addr]*dataplane.L2Group{}
	var eligibleOf = map[netip.Addr][]map[string][]string{}
	for ip, p := range ips {
		root := uf.find(ip)
		g := groups[root]
		if g == nil {
			g = &dataplane.L2Group{}
			groups[root] = g
		}
		g.IPs = append(g.IPs, ip)
		g.Services = append(g.Services, p.services...)
		eligibleOf[root] = append(eligibleOf[root], p.eligible...)
	}
	out := make([]dataplane.L2Group, 0, len(groups))
	for root, g := range groups {
		slices.SortFunc(g.IPs, func(a, b netip.Addr) int { return a.Compare(b) })
		g.Key = g.IPs[0]
		slices.SortFunc(g.Services, func(a, b dataplane.ServiceRef) int { return strings.Compare(a.String(), b.String()) })
		g.Services = slices.Compact(g.Services)
		g.Candidates = combine(eligibleOf[root])
		out = append(out, *g)
	}
	slices.SortFunc(out, func(a, b dataplane.L2Group) int { return a.Key.Compare(b.Key) })
	return out
}

// combine intersects the eligible sets (interfaces merged), falling back
// to their union when the intersection is empty.
func combine(sets []map[string][]string) map[string][]string {
	inter := map[string][]string{}
	for n, ifs := range sets[0] {
		inter[n] = ifs
	}
	for _, s := range sets[1:] {
		for n := range inter {
			ifs, ok := s[n]
			if !ok {
				delete(inter, n)
				continue
			}
			inter[n] = mergeInterfaces(inter[n], ifs)
		}
	}
	if len(inter) > 0 {
		return inter
	}
	union := map[string][]string{}
	for _, s := range sets {
		for n, ifs := range s {
			if prev, ok := union[n]; ok {
				union[n] = mergeInterfaces(prev, ifs)
			} else {
				union[n] = ifs
			}
		}
	}
	return union
}

// mergeInterfaces unites two interface lists; nil means "all" and wins.
func mergeInterfaces(a, b []string) []string {
	if a == nil || b == nil {
		return nil
	}
	out := append(slices.Clone(a), b...)
	slices.Sort(out)
	return slices.Compact(out)
}

// eligibleL2 returns the nodes that may announce ip of s over layer 2,
// with their interfaces; ok is false when no L2Advertisement covers it.
func eligibleL2(cfg *config.Config, s *ServiceState, ip netip.Addr, nodes []NodeState) (map[string][]string, bool) {
	pool := lbservice.PoolOf(cfg, s.Pool, ip)
	if pool == "" {
		return nil, false
	}
	var advs []*config.L2Advertisement
	for _, a := range cfg.L2Advertisements {
		if slices.Contains(a.Pools, pool) && anySelects(a.ServiceSelectors, s.Labels) {
			advs = append(advs, a)
		}
	}
	if len(advs) == 0 {
		return nil, false
	}
	out := map[string][]string{}
	for _, n := range nodes {
		if n.Excluded || n.NetworkUnavailable || (s.Local && !s.EndpointNodes[n.Name]) {
			continue
		}
		var ifs []string
		matched, all := false, false
		for _, a := range advs {
			if !anySelects(a.NodeSelectors, n.Labels) {
				continue
			}
			matched = true
			if len(a.Interfaces) == 0 {
				all = true
			}
			ifs = append(ifs, a.Interfaces...)
		}
		if !matched {
			continue
		}
		if all {
			out[n.Name] = nil
		} else {
			slices.Sort(ifs)
			out[n.Name] = slices.Compact(ifs)
		}
	}
	return out, true
}

// anySelects: no selectors select everything; otherwise one must match.
func anySelects(sels []labels.Selector, set labels.Set) bool {
	if len(sels) == 0 {
		return true
	}
	for _, s := range sels {
		if s.Matches(set) {
			return true
		}
	}
	return false
}

// unionFind joins addresses that must be announced together.
type unionFind struct{ parent map[netip.Addr]netip.Addr }

func newUnionFind() *unionFind { return &unionFind{parent: map[netip.Addr]netip.Addr{}} }

func (u *unionFind) add(a netip.Addr) {
	if _, ok := u.parent[a]; !ok {
		u.parent[a] = a
	}
}

func (u *unionFind) find(a netip.Addr) netip.Addr {
	for u.parent[a] != a {
		u.parent[a] = u.parent[u.parent[a]]
		a = u.parent[a]
	}
	return a
}

func (u *unionFind) union(a, b netip.Addr) {
	ra, rb := u.find(a), u.find(b)
	if ra == rb {
		return
	}
	// The lower address becomes the root, so roots are deterministic.
	if rb.Less(ra) {
		ra, rb = rb, ra
	}
	u.parent[rb] = ra
}
