package plan

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"

	"k8s.io/apimachinery/pkg/labels"

	lbv1 "github.com/lbstack/lbstack/api/v1alpha1"
	"github.com/lbstack/lbstack/internal/config"
	"github.com/lbstack/lbstack/internal/lbservice"
	"github.com/lbstack/lbstack/speaker/bfd"
	"github.com/lbstack/lbstack/speaker/bgp"
	"github.com/lbstack/lbstack/speaker/dataplane"
)

// BGPPlan is this node's BGP plan for the data plane, and what only the
// Kubernetes side can resolve: the peers' password Secrets.
type BGPPlan struct {
	dataplane.BGPPlan
	// Passwords are the password Secrets of the peers that have one.
	Passwords map[string]lbv1.SecretReference
	// BFDKeys are the key Secrets of the BFD sessions (BFD has their
	// type and key ID) with authentication, by peer name.
	BFDKeys map[string]lbv1.SecretReference
	// RouterID is the BGP identifier the node's peers ask for: the routerID
	// of the earliest peer that sets one (a later peer setting another is
	// Skipped). The zero Addr means none does: the node's IPv4 address.
	RouterID netip.Addr
}

// BGP computes the BGP plan of node self. A Service address is
// advertised from self when a BGPAdvertisement covers its pool and the
// Service and selects self, self is not excluded or NetworkUnavailable,
// and — for externalTrafficPolicy: Local — self has a ready endpoint (so
// the node withdraws when its last endpoint goes). The advertisement's
// aggregation length, local preference, communities and peers go into the
// path; paths for the same prefix from several advertisements are merged
// by speaker/bgp.
func BGP(cfg *config.Config, services []ServiceState, nodes []NodeState, self string) BGPPlan {
	plan := BGPPlan{
		BGPPlan: dataplane.BGPPlan{BFD: map[string]bfd.SessionConfig{}, Services: map[netip.Prefix][]dataplane.ServiceRef{},
			// A peer with the address of an earlier peer (config.Before)
			// that also selects this node: admission cannot refuse that,
			// as it depends on Node labels.
			Skipped: map[string]string{}},
		Passwords: map[string]lbv1.SecretReference{},
		BFDKeys:   map[string]lbv1.SecretReference{},
	}
	if cfg == nil {
		return plan
	}
	var me *NodeState
	for i := range nodes {
		if nodes[i].Name == self {
			me = &nodes[i]
		}
	}
	if me == nil {
		return plan
	}
	// Earliest first, so that of two peers with one address (the speaker
	// holds one session per router address) the earlier one is kept on
	// every node that selects both.
	names := make([]string, 0, len(cfg.Peers))
	for n := range cfg.Peers {
		names = append(names, n)
	}
	slices.SortFunc(names, func(a, b string) int {
		if config.Before(cfg.Peers[a].Source, a, cfg.Peers[b].Source, b) {
			return -1
		}
		return 1
	})
	// Sessions by router address, or by interface for unnumbered ones.
	taken := map[string]string{}
	var ridFrom string // the peer that set plan.RouterID
	for _, n := range names {
		p := cfg.Peers[n]
		if !anySelects(p.NodeSelectors, me.Labels) {
			continue
		}
		key := p.Address.String()
		if p.Interface != "" {
			key = "interface " + p.Interface
		}
		if first, dup := taken[key]; dup {
			what := fmt.Sprintf("address (%s)", p.Address)
			if p.Interface != "" {
				what = fmt.Sprintf("interface (%s)", p.Interface)
			}
			plan.Skipped[p.Name] = fmt.Sprintf("BGPPeer %q, created earlier, has the same %s and also selects node %s; one node cannot hold two sessions to one router", first, what, self)
			continue
		}
		if p.RouterID.IsValid() {
			if plan.RouterID.IsValid() && p.RouterID != plan.RouterID {
				plan.Skipped[p.Name] = fmt.Sprintf("BGPPeer %q, created earlier, sets routerID %s for node %s and this peer sets %s; a node has one BGP identifier for all its sessions", ridFrom, plan.RouterID, self, p.RouterID)
				continue
			}
			plan.RouterID, ridFrom = p.RouterID, p.Name
		}
		taken[key] = p.Name
		plan.Peers = append(plan.Peers, bgp.Peer{
			Name: p.Name, Address: p.Address, Interface: p.Interface, Port: p.Port, LocalASN: p.MyASN, PeerASN: p.PeerASN, DynamicASN: bgp.DynamicASN(p.DynamicASN),
			SourceAddress: p.SourceAddress, EBGPMultiHop: p.EBGPMultiHop,
			HoldTime: p.HoldTime, KeepaliveTime: p.KeepaliveTime, ConnectTime: p.ConnectTime,
			GracefulRestart: p.GracefulRestart, DualStack: p.DualStackAddressFamily,
		})
		if p.PasswordSecret != nil {
			plan.Passwords[p.Name] = *p.PasswordSecret
		}
		if p.BFDProfile != "" {
			if prof, ok := cfg.BFDProfiles[p.BFDProfile]; ok {
				// A peer that is not directly connected runs multi-hop
				// BFD (RFC 5883), which honours the profile's minimumTtl;
				// single-hop BFD needs TTL 255 and could never come up.
				plan.BFD[p.Name] = bfd.SessionConfig{Peer: p.Address, Local: p.SourceAddress, DesiredMinTx: prof.TransmitInterval,
					RequiredMinRx: prof.ReceiveInterval, DetectMultiplier: prof.DetectMultiplier, Passive: prof.PassiveMode,
					Multihop: p.EBGPMultiHop, MinTTL: prof.MinimumTTL}
				if a := prof.Auth; a != nil {
					cfg := plan.BFD[p.Name]
					cfg.Auth = bfd.Auth{Type: bfdAuthTypes[a.Type], KeyID: a.KeyID}
					plan.BFD[p.Name] = cfg
					plan.BFDKeys[p.Name] = a.KeySecret
				}
			}
		}
	}
	if len(plan.Peers) == 0 || me.Excluded || me.NetworkUnavailable {
		return plan
	}
	covers := newCoverage(services)
	for i := range services {
		s := &services[i]
		if s.Local && !s.EndpointNodes[self] {
			continue
		}
		for _, ip := range s.IPs {
			pool := lbservice.PoolOf(cfg, s.Pool, ip)
			if pool == "" {
				continue
			}
			for _, a := range cfg.BGPAdvertisements {
				if !slices.Contains(a.Pools, pool) || !anySelects(a.ServiceSelectors, s.Labels) || !anySelects(a.NodeSelectors, me.Labels) {
					continue
				}
				bits := a.AggregationLength
				if ip.Is6() {
					bits = a.AggregationLengthV6
				}
				if bits <= 0 || bits > ip.BitLen() {
					bits = ip.BitLen()
				}
				prefix := netip.PrefixFrom(ip, bits).Masked()
				// An aggregate of an advertisement that selects Services
				// must not attract the traffic of a Service it does not
				// select: while it would cover one, the selected Services
				// get their host routes instead.
				if len(a.ServiceSelectors) > 0 && bits < ip.BitLen() && covers.unselected(a, prefix) {
					prefix = netip.PrefixFrom(ip, ip.BitLen())
				}
				path := bgp.Path{Prefix: prefix, LocalPref: a.LocalPref, Peers: slices.Clone(a.Peers)}
				for _, c := range a.Communities {
					if c.Large {
						path.LargeCommunities = append(path.LargeCommunities, [3]uint32{c.Global, c.Local1, c.Local2})
					} else {
						path.Communities = append(path.Communities, c.Standard)
					}
				}
				plan.Paths = append(plan.Paths, path)
				if ref := dataplane.ServiceRef(s.Key); !slices.Contains(plan.Services[prefix], ref) {
					plan.Services[prefix] = append(plan.Services[prefix], ref)
				}
			}
		}
	}
	slices.SortStableFunc(plan.Paths, func(a, b bgp.Path) int {
		if c := a.Prefix.Addr().Compare(b.Prefix.Addr()); c != 0 {
			return c
		}
		return a.Prefix.Bits() - b.Prefix.Bits()
	})
	for p := range plan.Services {
		slices.SortFunc(plan.Services[p], func(a, b dataplane.ServiceRef) int { return strings.Compare(a.String(), b.String()) })
	}
	return plan
}

// bfdAuthTypes maps the API's BFD authentication types to the wire's.
var bfdAuthTypes = map[lbv1.BFDAuthenticationType]bfd.AuthType{
	lbv1.BFDAuthKeyedMD5:            bfd.AuthKeyedMD5,
	lbv1.BFDAuthMeticulousKeyedMD5:  bfd.AuthMeticulousKeyedMD5,
	lbv1.BFDAuthKeyedSHA1:           bfd.AuthKeyedSHA1,
	lbv1.BFDAuthMeticulousKeyedSHA1: bfd.AuthMeticulousKeyedSHA1,
}

// coverage answers whether a prefix holds the address of a Service an
// advertisement does not select.
type coverage struct {
	// addrs are every Service address, sorted, with the Service's labels.
	addrs []addrLabels
	memo  map[coverKey]bool
}

type addrLabels struct {
	ip     netip.Addr
	labels labels.Set
}

type coverKey struct {
	adv    *config.BGPAdvertisement
	prefix netip.Prefix
}

func newCoverage(services []ServiceState) *coverage {
	c := &coverage{memo: map[coverKey]bool{}}
	for i := range services {
		for _, ip := range services[i].IPs {
			c.addrs = append(c.addrs, addrLabels{ip, services[i].Labels})
		}
	}
	slices.SortFunc(c.addrs, func(a, b addrLabels) int { return a.ip.Compare(b.ip) })
	return c
}

// unselected reports whether prefix holds the address of a Service that
// a does not select.
func (c *coverage) unselected(a *config.BGPAdvertisement, prefix netip.Prefix) bool {
	k := coverKey{a, prefix}
	if v, ok := c.memo[k]; ok {
		return v
	}
	first := prefix.Masked().Addr()
	i, _ := slices.BinarySearchFunc(c.addrs, first, func(x addrLabels, t netip.Addr) int { return x.ip.Compare(t) })
	v := false
	for ; i < len(c.addrs) && prefix.Contains(c.addrs[i].ip); i++ {
		if !anySelects(a.ServiceSelectors, c.addrs[i].labels) {
			v = true
			break
		}
	}
	c.memo[k] = v
	return v
}

// Skip leaves the peer name out of the plan (its session, its BFD session
// and its password) with the reason why.
func (p *BGPPlan) Skip(name, why string) {
	p.Peers = slices.DeleteFunc(p.Peers, func(x bgp.Peer) bool { return x.Name == name })
	delete(p.BFD, name)
	delete(p.Passwords, name)
	delete(p.BFDKeys, name)
	if p.Skipped == nil {
		p.Skipped = map[string]string{}
	}
	p.Skipped[name] = why
}

// RouterID returns the BGP router ID of the node: the one its peers set
// (BGPPlan.RouterID), else self, the node's IPv4 address. A node has one
// BGP identifier for all its sessions.
func RouterID(p BGPPlan, self netip.Addr) netip.Addr {
	if p.RouterID.IsValid() {
		return p.RouterID
	}
	return self
}
