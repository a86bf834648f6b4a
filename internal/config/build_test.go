package config

import (
	"fmt"
	"maps"
	"math"
	"math/big"
	"math/rand/v2"
	"net/netip"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/validation/field"

	lbv1 "github.com/lbstack/lbstack/api/v1alpha1"
)

// Spec changes used by several cases.
func holdTime(s string) func(*lbv1.BGPPeerSpec) {
	return func(p *lbv1.BGPPeerSpec) { p.HoldTime = dur(s) }
}
func keepalive(s string) func(*lbv1.BGPPeerSpec) {
	return func(p *lbv1.BGPPeerSpec) { p.KeepaliveTime = dur(s) }
}
func peerNodes(sels ...metav1.LabelSelector) func(*lbv1.BGPPeerSpec) {
	return func(p *lbv1.BGPPeerSpec) { p.NodeSelectors = sels }
}
func interfaces(names ...string) func(*lbv1.L2AdvertisementSpec) {
	return func(s *lbv1.L2AdvertisementSpec) { s.Interfaces = names }
}

// TestBuildRejects gives Build one mistake at a time and checks that it
// is the only error, at the right field, with a useful message.
func TestBuildRejects(t *testing.T) {
	later := t0.Add(time.Hour)
	cases := map[string]struct {
		objs Objects
		// field is the exact path of the one error; msg is part of err.Error().
		field, msg string
	}{
		// IPAddressPool addresses.
		"pool: invalid CIDR": {
			objs:  objects(pool("a", "192.0.2.300/24")),
			field: "IPAddressPool[a].spec.addresses[0]", msg: `not a CIDR: "192.0.2.300" is not an IP address`,
		},
		"pool: IPv4 prefix length too long": {
			objs:  objects(pool("a", "192.0.2.0/33")),
			field: "IPAddressPool[a].spec.addresses[0]", msg: `the prefix length "33" must be a number from 0 to 32`,
		},
		"pool: IPv6 prefix length too long": {
			objs:  objects(pool("a", "2001:db8::/129")),
			field: "IPAddressPool[a].spec.addresses[0]", msg: `the prefix length "129" must be a number from 0 to 128`,
		},
		"pool: IPv4 host bits set": {
			objs:  objects(pool("a", "192.0.2.0/24", "198.51.100.1/24")),
			field: "IPAddressPool[a].spec.addresses[1]", msg: "bits are set after the prefix length; did you mean 198.51.100.0/24?",
		},
		"pool: IPv6 host bits set": {
			objs:  objects(pool("a", "2001:db8::1/64")),
			field: "IPAddressPool[a].spec.addresses[0]", msg: "did you mean 2001:db8::/64?",
		},
		"pool: single address": {
			objs:  objects(pool("a", "192.0.2.1")),
			field: "IPAddressPool[a].spec.addresses[0]", msg: "a single address is written as a CIDR; did you mean 192.0.2.1/32?",
		},
		"pool: invalid range start": {
			objs:  objects(pool("a", "first-192.0.2.5")),
			field: "IPAddressPool[a].spec.addresses[0]", msg: `range start: "first" is not an IP address`,
		},
		"pool: invalid range end": {
			objs:  objects(pool("a", "192.0.2.1-192.0.2")),
			field: "IPAddressPool[a].spec.addresses[0]", msg: `range end: "192.0.2" is not an IP address`,
		},
		"pool: mixed-family range": {
			objs:  objects(pool("a", "192.0.2.1-2001:db8::1")),
			field: "IPAddressPool[a].spec.addresses[0]", msg: "a range must not mix IPv4 and IPv6",
		},
		"pool: IPv4 range starts after its end": {
			objs:  objects(pool("a", "192.0.2.20-192.0.2.10")),
			field: "IPAddressPool[a].spec.addresses[0]", msg: "range starts at 192.0.2.20, after its end 192.0.2.10",
		},
		"pool: IPv6 range starts after its end": {
			objs:  objects(pool("a", "2001:db8::20-2001:db8::1f")),
			field: "IPAddressPool[a].spec.addresses[0]", msg: "range starts at 2001:db8::20, after its end 2001:db8::1f",
		},
		"pool: IPv4-mapped IPv6 CIDR": {
			objs:  objects(pool("a", "::ffff:192.0.2.0/120")),
			field: "IPAddressPool[a].spec.addresses[0]", msg: "IPv4-mapped IPv6 addresses are not allowed; write the IPv4 address",
		},
		"pool: IPv4-mapped IPv6 range": {
			objs:  objects(pool("a", "::ffff:192.0.2.1-::ffff:192.0.2.9")),
			field: "IPAddressPool[a].spec.addresses[0]", msg: `range start: "::ffff:192.0.2.1": IPv4-mapped IPv6 addresses are not allowed`,
		},
		"pool: CIDR with a zone": {
			objs:  objects(pool("a", "fe80::%eth0/64")),
			field: "IPAddressPool[a].spec.addresses[0]", msg: "an address must not have a zone",
		},
		"pool: empty address": {
			objs:  objects(pool("a", "192.0.2.0/24", "")),
			field: "IPAddressPool[a].spec.addresses[1]", msg: "empty address",
		},
		"pool: no addresses": {
			objs:  objects(pool("a")),
			field: "IPAddressPool[a].spec.addresses", msg: "Required value: a pool needs at least one CIDR or range",
		},

		// Overlapping pools.
		"overlap: within one pool": {
			objs:  objects(pool("a", "192.0.2.0/24", "192.0.2.128/25")),
			field: "IPAddressPool[a].spec.addresses[1]", msg: "overlaps another address of the same pool at IPAddressPool[a].spec.addresses[0] (192.0.2.0/24); a pool's addresses must not overlap",
		},
		"overlap: same address twice": {
			objs:  objects(pool("a", "2001:db8::/64", "2001:db8::/64")),
			field: "IPAddressPool[a].spec.addresses[1]", msg: "overlaps another address of the same pool at IPAddressPool[a].spec.addresses[0]",
		},
		"overlap: two IPv4 pools": {
			objs:  objects(pool("a", "192.0.2.0/24"), pool("b", "198.51.100.0/24", "192.0.2.250-192.0.2.255")),
			field: "IPAddressPool[b].spec.addresses[1]", msg: `overlaps IPAddressPool "a" at IPAddressPool[a].spec.addresses[0] (192.0.2.0/24); pools must not share addresses`,
		},
		"overlap: range reaching into a later CIDR": {
			objs:  objects(pool("a", "192.0.2.0-192.0.2.128"), pool("b", "192.0.2.128/25")),
			field: "IPAddressPool[b].spec.addresses[0]", msg: `overlaps IPAddressPool "a" at IPAddressPool[a].spec.addresses[0] (192.0.2.0-192.0.2.128)`,
		},
		"overlap: two IPv6 pools": {
			objs:  objects(pool("a", "192.0.2.0/24", "2001:db8::/48"), pool("b", "192.0.3.0/24", "2001:db8:0:ff::10-2001:db8:0:ff::20")),
			field: "IPAddressPool[b].spec.addresses[1]", msg: `overlaps IPAddressPool "a" at IPAddressPool[a].spec.addresses[1] (2001:db8::/48)`,
		},
		"overlap: standalone and inline pools": {
			objs:  objects(created(pool("a", "10.0.0.0/16"), 0), stack(inPools(pool("b", "10.0.5.0/24")))),
			field: "LoadBalancerStack[lbstack].spec.pools[0].addresses[0]", msg: `overlaps IPAddressPool "a" at IPAddressPool[a].spec.addresses[0] (10.0.0.0/16)`,
		},
		"overlap: the pool not yet created is blamed": {
			objs:  objects(pool("a", "10.0.0.0/16"), stack(inPools(pool("b", "10.0.5.0/24")))),
			field: "IPAddressPool[a].spec.addresses[0]", msg: `overlaps IPAddressPool "b" at LoadBalancerStack[lbstack].spec.pools[0].addresses[0] (10.0.5.0/24)`,
		},

		// IPAddressPool allocation.
		"pool: bad namespace name": {
			objs:  objects(allocPool("a", func(al *lbv1.ServiceAllocation) { al.Namespaces = []string{"web", "Prod_NS"} })),
			field: "IPAddressPool[a].spec.allocation.namespaces[1]", msg: "not a namespace name: a lowercase RFC 1123 label",
		},
		"pool: negative priority": {
			objs:  objects(allocPool("a", func(al *lbv1.ServiceAllocation) { al.Priority = ptr(int32(-1)) })),
			field: "IPAddressPool[a].spec.allocation.priority", msg: "must be 0 or more; lower numbers are tried first",
		},
		"pool: service selector In without values": {
			objs: objects(allocPool("a", func(al *lbv1.ServiceAllocation) {
				al.ServiceSelectors = []metav1.LabelSelector{sel("app", "web"), selInNoValues}
			})),
			field: "IPAddressPool[a].spec.allocation.serviceSelectors[1].matchExpressions[0].values", msg: "must be specified when `operator` is 'In' or 'NotIn'",
		},
		"pool: namespace selector with a bad key": {
			objs:  objects(allocPool("a", func(al *lbv1.ServiceAllocation) { al.NamespaceSelectors = []metav1.LabelSelector{selBadKey} })),
			field: "IPAddressPool[a].spec.allocation.namespaceSelectors[0].matchLabels", msg: `Invalid value: "bad key!": name part must consist of alphanumeric characters`,
		},

		// BGPPeer.
		"peer: myASN 0": {
			objs:  objects(peer("a", "192.0.2.1", func(s *lbv1.BGPPeerSpec) { s.MyASN = 0 })),
			field: "BGPPeer[a].spec.myASN", msg: "Invalid value: 0: must be an AS number between 1 and 4294967295",
		},
		"peer: myASN above 2^32-1": {
			objs:  objects(peer("a", "192.0.2.1", func(s *lbv1.BGPPeerSpec) { s.MyASN = math.MaxUint32 + 1 })),
			field: "BGPPeer[a].spec.myASN", msg: "Invalid value: 4294967296: must be an AS number",
		},
		"peer: peerASN 0": {
			objs:  objects(peer("a", "192.0.2.1", func(s *lbv1.BGPPeerSpec) { s.PeerASN = 0 })),
			field: "BGPPeer[a].spec.peerASN", msg: "Required value: the router's AS number, or dynamicASN: internal or external",
		},
		"peer: peerASN and dynamicASN": {
			objs:  objects(peer("a", "192.0.2.1", func(s *lbv1.BGPPeerSpec) { s.DynamicASN = lbv1.DynamicASNExternal })),
			field: "BGPPeer[a].spec.dynamicASN", msg: "set exactly one of peerASN and dynamicASN",
		},
		"peer: dynamicASN internal with ebgpMultiHop": {
			objs: objects(peer("a", "192.0.2.1", func(s *lbv1.BGPPeerSpec) {
				s.PeerASN, s.DynamicASN, s.EBGPMultiHop = 0, lbv1.DynamicASNInternal, ptr(true)
			})),
			field: "BGPPeer[a].spec.ebgpMultiHop", msg: "dynamicASN is internal, so this is iBGP",
		},
		"peer: dynamicASN of another kind": {
			objs:  objects(peer("a", "192.0.2.1", func(s *lbv1.BGPPeerSpec) { s.PeerASN, s.DynamicASN = 0, "sometimes" })),
			field: "BGPPeer[a].spec.dynamicASN", msg: "Unsupported value",
		},
		"peer: peerASN above 2^32-1": {
			objs:  objects(peer("a", "192.0.2.1", func(s *lbv1.BGPPeerSpec) { s.PeerASN = math.MaxUint32 + 1 })),
			field: "BGPPeer[a].spec.peerASN", msg: "must be an AS number between 1 and 4294967295",
		},
		"peer: bad peerAddress": {
			objs:  objects(peer("a", "192.0.2.256")),
			field: "BGPPeer[a].spec.peerAddress", msg: `Invalid value: "192.0.2.256": must be an IPv4 or IPv6 address`,
		},
		"peer: empty peerAddress": {
			objs:  objects(peer("a", "")),
			field: "BGPPeer[a].spec.peerAddress", msg: "must be an IPv4 or IPv6 address",
		},
		"peer: IPv4-mapped peerAddress": {
			objs:  objects(peer("a", "::ffff:192.0.2.1")),
			field: "BGPPeer[a].spec.peerAddress", msg: "IPv4-mapped IPv6 addresses are not allowed; write the IPv4 address",
		},
		"peer: bad sourceAddress": {
			objs:  objects(peer("a", "192.0.2.1", func(s *lbv1.BGPPeerSpec) { s.SourceAddress = "10.0.0.x" })),
			field: "BGPPeer[a].spec.sourceAddress", msg: `Invalid value: "10.0.0.x": must be an IPv4 or IPv6 address`,
		},
		"peer: sourceAddress with a zone": {
			objs:  objects(peer("a", "fe80::1", func(s *lbv1.BGPPeerSpec) { s.SourceAddress = "fe80::2%eth0" })),
			field: "BGPPeer[a].spec.sourceAddress", msg: "must be an IPv4 or IPv6 address without a zone",
		},
		"peer: IPv6 routerID": {
			objs:  objects(peer("a", "192.0.2.1", func(s *lbv1.BGPPeerSpec) { s.RouterID = "2001:db8::1" })),
			field: "BGPPeer[a].spec.routerID", msg: `Invalid value: "2001:db8::1": must be an IPv4 address`,
		},
		"peer: garbage routerID": {
			objs:  objects(peer("a", "192.0.2.1", func(s *lbv1.BGPPeerSpec) { s.RouterID = "router-1" })),
			field: "BGPPeer[a].spec.routerID", msg: "must be an IPv4 address",
		},
		"peer: port above 65535": {
			objs:  objects(peer("a", "192.0.2.1", func(s *lbv1.BGPPeerSpec) { s.PeerPort = 65536 })),
			field: "BGPPeer[a].spec.peerPort", msg: "Invalid value: 65536: must be a TCP port between 1 and 65535",
		},
		"peer: negative port": {
			objs:  objects(peer("a", "192.0.2.1", func(s *lbv1.BGPPeerSpec) { s.PeerPort = -1 })),
			field: "BGPPeer[a].spec.peerPort", msg: "must be a TCP port between 1 and 65535",
		},
		"peer: holdTime 1s": {
			objs:  objects(peer("a", "192.0.2.1", holdTime("1s"))),
			field: "BGPPeer[a].spec.holdTime", msg: `Invalid value: "1s": must be 0s or between 3s and 65535s (RFC 4271)`,
		},
		"peer: holdTime 2s": {
			objs:  objects(peer("a", "192.0.2.1", holdTime("2s"))),
			field: "BGPPeer[a].spec.holdTime", msg: "must be 0s or between 3s and 65535s",
		},
		"peer: holdTime above 65535s": {
			objs:  objects(peer("a", "192.0.2.1", holdTime("65536s"))),
			field: "BGPPeer[a].spec.holdTime", msg: "must be 0s or between 3s and 65535s",
		},
		"peer: keepalive equal to hold": {
			objs:  objects(peer("a", "192.0.2.1", holdTime("30s"), keepalive("30s"))),
			field: "BGPPeer[a].spec.keepaliveTime", msg: "must be shorter than holdTime (30s)",
		},
		"peer: keepalive longer than the default hold": {
			objs:  objects(peer("a", "192.0.2.1", keepalive("2m"))),
			field: "BGPPeer[a].spec.keepaliveTime", msg: "must be shorter than holdTime (1m30s)",
		},
		"peer: keepalive with hold 0": {
			objs:  objects(peer("a", "192.0.2.1", holdTime("0s"), keepalive("10s"))),
			field: "BGPPeer[a].spec.keepaliveTime", msg: "must be 0s when holdTime is 0s",
		},
		"peer: negative keepalive": {
			objs:  objects(peer("a", "192.0.2.1", keepalive("-1s"))),
			field: "BGPPeer[a].spec.keepaliveTime", msg: "must not be negative",
		},
		"peer: connectTime 0": {
			objs:  objects(peer("a", "192.0.2.1", func(s *lbv1.BGPPeerSpec) { s.ConnectTime = dur("0s") })),
			field: "BGPPeer[a].spec.connectTime", msg: `Invalid value: "0s": must be between 1s and 65535s`,
		},
		"peer: ebgpMultiHop on iBGP": {
			objs:  objects(peer("a", "192.0.2.1", ibgp, func(s *lbv1.BGPPeerSpec) { s.EBGPMultiHop = ptr(true) })),
			field: "BGPPeer[a].spec.ebgpMultiHop", msg: "applies only to eBGP sessions; myASN equals peerASN, so this is iBGP",
		},
		"peer: bfdProfile does not exist": {
			objs:  objects(bfd("slow"), peer("a", "192.0.2.1", func(s *lbv1.BGPPeerSpec) { s.BFDProfile = "fast" })),
			field: "BGPPeer[a].spec.bfdProfile", msg: `Not found: "fast": no BFDProfile has this name`,
		},
		"peer: passwordSecret without a name": {
			objs:  objects(peer("a", "192.0.2.1", func(s *lbv1.BGPPeerSpec) { s.PasswordSecret = &lbv1.SecretReference{Key: "password"} })),
			field: "BGPPeer[a].spec.passwordSecret.name", msg: "Required value: the Secret holding the password",
		},
		"peer: node selector with a bad operator": {
			objs:  objects(peer("a", "192.0.2.1", peerNodes(selBadOperator))),
			field: "BGPPeer[a].spec.nodeSelectors[0].matchExpressions[0].operator", msg: `Invalid value: "Equals": not a valid selector operator`,
		},
		"peer: holdTime not whole seconds": {
			objs:  objects(peer("a", "192.0.2.1", holdTime("4500ms"))),
			field: "BGPPeer[a].spec.holdTime", msg: `Invalid value: "4.5s": must be a whole number of seconds`,
		},
		"peer: keepaliveTime not whole seconds": {
			objs:  objects(peer("a", "192.0.2.1", keepalive("2500ms"))),
			field: "BGPPeer[a].spec.keepaliveTime", msg: "must be a whole number of seconds",
		},
		"peer: connectTime not whole seconds": {
			objs:  objects(peer("a", "192.0.2.1", func(s *lbv1.BGPPeerSpec) { s.ConnectTime = &metav1.Duration{Duration: 1500 * time.Millisecond} })),
			field: "BGPPeer[a].spec.connectTime", msg: "must be a whole number of seconds",
		},
		"peer: inline holdTime 2s": {
			objs:  objects(stack(inPeers(peer("tor", "192.0.2.1", holdTime("2s"))))),
			field: "LoadBalancerStack[lbstack].spec.bgpPeers[0].holdTime", msg: "must be 0s or between 3s and 65535s",
		},

		// Unnumbered peers (interface).
		"peers: interface and peerAddress": {
			objs:  objects(peer("a", "192.0.2.1", onInterface("eth1"))),
			field: "BGPPeer[a].spec.interface", msg: "set exactly one of peerAddress and interface",
		},
		"peers: neither interface nor peerAddress": {
			objs:  objects(peer("a", "")),
			field: "BGPPeer[a].spec.peerAddress", msg: "or set interface instead for an unnumbered session",
		},
		"peers: interface with a password": {
			objs:  objects(peer("a", "", onInterface("eth1"), func(s *lbv1.BGPPeerSpec) { s.PasswordSecret = &lbv1.SecretReference{Name: "pw"} })),
			field: "BGPPeer[a].spec.passwordSecret", msg: "not with interface (an unnumbered session): the BGP library cannot key TCP MD5 to a link-local address",
		},
		"peers: interface with a BFD profile": {
			objs:  objects(bfd("fast"), peer("a", "", onInterface("eth1"), func(s *lbv1.BGPPeerSpec) { s.BFDProfile = "fast" })),
			field: "BGPPeer[a].spec.bfdProfile", msg: "not with interface",
		},
		"peers: interface with ebgpMultiHop": {
			objs:  objects(peer("a", "", onInterface("eth1"), func(s *lbv1.BGPPeerSpec) { s.EBGPMultiHop = ptr(true) })),
			field: "BGPPeer[a].spec.ebgpMultiHop", msg: "not with interface",
		},
		"peers: interface name with a slash": {
			objs:  objects(peer("a", "", onInterface("eth/1"))),
			field: "BGPPeer[a].spec.interface", msg: "must not contain '/'",
		},
		"peers: one interface, every node": {
			objs:  objects(peer("a", "", onInterface("eth1")), peer("b", "", onInterface("eth1"), func(s *lbv1.BGPPeerSpec) { s.PeerPort = 1179 })),
			field: "BGPPeer[b].spec.interface", msg: `BGPPeer "a" (BGPPeer[a].spec) peers over the same interface, and every node would open both sessions`,
		},

		// Two peers with one address and port.
		"peers: same address, neither has node selectors": {
			objs:  objects(peer("a", "192.0.2.1"), peer("b", "192.0.2.1", ibgp)),
			field: "BGPPeer[b].spec.peerAddress", msg: `Duplicate value: "192.0.2.1": BGPPeer "a" (BGPPeer[a].spec) has the same address and port 179, and every node would open both sessions`,
		},
		"peers: same address and port, one has node selectors": {
			objs: objects(peer("a", "2001:db8::1", func(s *lbv1.BGPPeerSpec) { s.PeerPort = 1179 }),
				peer("b", "2001:db8::1", peerNodes(sel("rack", "a")), func(s *lbv1.BGPPeerSpec) { s.PeerPort = 1179 })),
			field: "BGPPeer[b].spec.peerAddress", msg: `BGPPeer "a" (BGPPeer[a].spec) has the same address and port 1179`,
		},
		"peers: same address, the same node selector": {
			objs: objects(peer("a", "192.0.2.1", peerNodes(sel("rack", "a"))),
				peer("b", "192.0.2.1", peerNodes(sel("rack", "b"), sel("rack", "a")))),
			field: "BGPPeer[b].spec.peerAddress", msg: `and every node that "rack=a" selects would open both sessions`,
		},
		"peers: same address, the later peer is blamed": {
			objs:  objects(created(peer("a", "192.0.2.1"), 2), created(peer("b", "192.0.2.1"), 1)),
			field: "BGPPeer[a].spec.peerAddress", msg: `BGPPeer "b" (BGPPeer[b].spec) has the same address and port 179`,
		},
		"peers: different routerIDs on every node": {
			objs: objects(peer("a", "192.0.2.1", func(s *lbv1.BGPPeerSpec) { s.RouterID = "10.0.0.1" }),
				peer("b", "192.0.2.2", func(s *lbv1.BGPPeerSpec) { s.RouterID = "10.0.0.2" })),
			field: "BGPPeer[b].spec.routerID", msg: `BGPPeer "a" (BGPPeer[a].spec) sets routerID 10.0.0.1, and every node would open both sessions; a node has one BGP identifier for all its sessions`,
		},
		"peers: different routerIDs, the later peer is blamed": {
			objs: objects(created(peer("a", "192.0.2.1", func(s *lbv1.BGPPeerSpec) { s.RouterID = "10.0.0.1" }), 2),
				created(peer("b", "192.0.2.2", peerNodes(sel("rack", "a")), func(s *lbv1.BGPPeerSpec) { s.RouterID = "10.0.0.2" }), 1)),
			field: "BGPPeer[a].spec.routerID", msg: `BGPPeer "b" (BGPPeer[b].spec) sets routerID 10.0.0.2, and every node that "rack=a" selects would open both sessions`,
		},
		"peers: a bad node selector is not also a clash": {
			objs:  objects(peer("a", "192.0.2.1"), peer("b", "192.0.2.1", peerNodes(selInNoValues))),
			field: "BGPPeer[b].spec.nodeSelectors[0].matchExpressions[0].values", msg: "must be specified",
		},
		"peers: a bad port is not also a clash": {
			objs:  objects(peer("a", "192.0.2.1"), peer("b", "192.0.2.1", func(s *lbv1.BGPPeerSpec) { s.PeerPort = 70000 })),
			field: "BGPPeer[b].spec.peerPort", msg: "must be a TCP port between 1 and 65535",
		},
		"peers: inline and standalone with one address": {
			objs:  objects(stack(inPeers(peer("a", "192.0.2.1"))), peer("b", "192.0.2.1")),
			field: "BGPPeer[b].spec.peerAddress", msg: `BGPPeer "a" (LoadBalancerStack[lbstack].spec.bgpPeers[0]) has the same address`,
		},

		// BFDProfile.
		"bfd: receiveInterval 9": {
			objs:  objects(bfd("b", func(s *lbv1.BFDProfileSpec) { s.ReceiveInterval = ptr(int32(9)) })),
			field: "BFDProfile[b].spec.receiveInterval", msg: "Invalid value: 9: must be between 10 and 60000 milliseconds",
		},
		"bfd: receiveInterval 60001": {
			objs:  objects(bfd("b", func(s *lbv1.BFDProfileSpec) { s.ReceiveInterval = ptr(int32(60001)) })),
			field: "BFDProfile[b].spec.receiveInterval", msg: "must be between 10 and 60000 milliseconds",
		},
		"bfd: transmitInterval 9": {
			objs:  objects(bfd("b", func(s *lbv1.BFDProfileSpec) { s.TransmitInterval = ptr(int32(9)) })),
			field: "BFDProfile[b].spec.transmitInterval", msg: "must be between 10 and 60000 milliseconds",
		},
		"bfd: transmitInterval 60001": {
			objs:  objects(bfd("b", func(s *lbv1.BFDProfileSpec) { s.TransmitInterval = ptr(int32(60001)) })),
			field: "BFDProfile[b].spec.transmitInterval", msg: "must be between 10 and 60000 milliseconds",
		},
		"bfd: echoMode true": {
			objs:  objects(bfd("b", func(s *lbv1.BFDProfileSpec) { s.EchoMode = ptr(true) })),
			field: "BFDProfile[b].spec.echoMode", msg: "BFD echo is not supported",
		},
		"bfd: echoInterval": {
			objs:  objects(bfd("b", func(s *lbv1.BFDProfileSpec) { s.EchoMode, s.EchoInterval = ptr(false), ptr(int32(50)) })),
			field: "BFDProfile[b].spec.echoInterval", msg: "echoInterval needs echoMode, which is not supported",
		},
		"bfd: detectMultiplier 1": {
			objs:  objects(bfd("b", func(s *lbv1.BFDProfileSpec) { s.DetectMultiplier = ptr(int32(1)) })),
			field: "BFDProfile[b].spec.detectMultiplier", msg: "Invalid value: 1: must be between 2 and 255",
		},
		"bfd: detectMultiplier 256": {
			objs:  objects(bfd("b", func(s *lbv1.BFDProfileSpec) { s.DetectMultiplier = ptr(int32(256)) })),
			field: "BFDProfile[b].spec.detectMultiplier", msg: "must be between 2 and 255",
		},
		"bfd: minimumTtl 0": {
			objs:  objects(bfd("b", func(s *lbv1.BFDProfileSpec) { s.MinimumTTL = ptr(int32(0)) })),
			field: "BFDProfile[b].spec.minimumTtl", msg: "Invalid value: 0: must be between 1 and 254",
		},
		"bfd: minimumTtl 255": {
			objs:  objects(bfd("b", func(s *lbv1.BFDProfileSpec) { s.MinimumTTL = ptr(int32(255)) })),
			field: "BFDProfile[b].spec.minimumTtl", msg: "must be between 1 and 254",
		},
		"bfd: inline detectMultiplier 1": {
			objs:  objects(stack(inBFDs(bfd("b", func(s *lbv1.BFDProfileSpec) { s.DetectMultiplier = ptr(int32(1)) })))),
			field: "LoadBalancerStack[lbstack].spec.bfdProfiles[0].detectMultiplier", msg: "must be between 2 and 255",
		},

		// Community aliases.
		"community: standard ASN part above 65535": {
			objs:  objects(community("c", "gold", "65536:1")),
			field: "Community[c].spec.communities[0].value", msg: `ASN part "65536" is out of range 0-65535`,
		},
		"community: standard value part above 65535": {
			objs:  objects(community("c", "gold", "65000:100", "silver", "1:65536")),
			field: "Community[c].spec.communities[1].value", msg: `value part "65536" is out of range 0-65535`,
		},
		"community: large global part above 2^32-1": {
			objs:  objects(community("c", "gold", "large:4294967296:1:1")),
			field: "Community[c].spec.communities[0].value", msg: `part 1 "4294967296" is out of range 0-4294967295`,
		},
		"community: large local part above 2^32-1": {
			objs:  objects(community("c", "gold", "large:1:2:4294967296")),
			field: "Community[c].spec.communities[0].value", msg: `part 3 "4294967296" is out of range 0-4294967295`,
		},
		"community: three standard parts": {
			objs:  objects(community("c", "gold", "1:2:3")),
			field: "Community[c].spec.communities[0].value", msg: `must be a:b (numbers 0-65535) or large:a:b:c (numbers 0-4294967295)`,
		},
		"community: large with two parts": {
			objs:  objects(community("c", "gold", "large:1:2")),
			field: "Community[c].spec.communities[0].value", msg: "must be a:b (numbers 0-65535) or large:a:b:c",
		},
		"community: negative number": {
			objs:  objects(community("c", "gold", "-1:5")),
			field: "Community[c].spec.communities[0].value", msg: `ASN part "-1" is not a number`,
		},
		"community: empty value part": {
			objs:  objects(community("c", "gold", "65000:")),
			field: "Community[c].spec.communities[0].value", msg: `value part "" is not a number`,
		},
		"community: alias value without a colon": {
			objs:  objects(community("c", "gold", "no-export")),
			field: "Community[c].spec.communities[0].value", msg: "must be a:b (numbers 0-65535) or large:a:b:c",
		},
		"community: alias name with a colon": {
			objs:  objects(community("c", "no:export", "65535:65281")),
			field: "Community[c].spec.communities[0].name", msg: `Invalid value: "no:export": an alias name must be non-empty and must not contain ':'`,
		},
		"community: empty alias name": {
			objs:  objects(community("c", "", "65535:65281")),
			field: "Community[c].spec.communities[0].name", msg: "an alias name must be non-empty",
		},
		"community: alias defined by two Community objects": {
			objs:  objects(community("a", "gold", "65000:1"), community("b", "silver", "65000:2", "gold", "65000:3")),
			field: "Community[b].spec.communities[1].name", msg: `Duplicate value: "gold": already defined at Community[a].spec.communities[0]; an alias name must be unique across all Community objects`,
		},
		"community: alias defined inline and standalone": {
			objs:  objects(stack(inCommunities(community("c", "gold", "65000:1"))), community("zz", "gold", "65000:1")),
			field: "Community[zz].spec.communities[0].name", msg: "already defined at LoadBalancerStack[lbstack].spec.communities[0].communities[0]",
		},

		// BGPAdvertisement communities.
		"bgp advertisement: undefined alias": {
			objs:  objects(community("c", "gold", "65000:1"), bgpAdv("a", communities("gold", "silver"))),
			field: "BGPAdvertisement[a].spec.communities[1]", msg: `Invalid value: "silver": no Community defines this alias; define it or write the value as a:b or large:a:b:c`,
		},
		"bgp advertisement: standard community out of range": {
			objs:  objects(bgpAdv("a", communities("65000:65536"))),
			field: "BGPAdvertisement[a].spec.communities[0]", msg: `value part "65536" is out of range 0-65535`,
		},
		"bgp advertisement: malformed large community": {
			objs:  objects(bgpAdv("a", communities("large:1:2:x"))),
			field: "BGPAdvertisement[a].spec.communities[0]", msg: `part 3 "x" is not a number`,
		},

		// BGPAdvertisement aggregation.
		"aggregation: shorter than an IPv4 CIDR": {
			objs:  objects(pool("p", "192.0.2.0/24"), bgpAdv("a", aggLen(16, -1))),
			field: "BGPAdvertisement[a].spec.aggregationLength", msg: `Invalid value: 16: is shorter than IPAddressPool "p" permits: its 192.0.2.0/24 needs at least /24`,
		},
		"aggregation: shorter than an IPv6 CIDR": {
			objs:  objects(pool("p", "192.0.2.0/24", "2001:db8::/64"), bgpAdv("a", advPools("p"), aggLen(24, 48))),
			field: "BGPAdvertisement[a].spec.aggregationLengthV6", msg: `Invalid value: 48: is shorter than IPAddressPool "p" permits: its 2001:db8::/64 needs at least /64`,
		},
		"aggregation: shorter than a range's largest block": {
			objs:  objects(pool("p", "192.0.2.1-192.0.2.6"), bgpAdv("a", aggLen(30, -1))),
			field: "BGPAdvertisement[a].spec.aggregationLength", msg: "its 192.0.2.1-192.0.2.6 needs at least /31",
		},
		"aggregation: shorter than a range that is a whole /24": {
			objs:  objects(pool("p", "192.0.2.0-192.0.2.255"), bgpAdv("a", aggLen(23, -1))),
			field: "BGPAdvertisement[a].spec.aggregationLength", msg: "its 192.0.2.0-192.0.2.255 needs at least /24",
		},
		"aggregation: shorter than an IPv6 range's largest block": {
			objs:  objects(pool("p", "2001:db8::1-2001:db8::ff"), bgpAdv("a", aggLen(-1, 120))),
			field: "BGPAdvertisement[a].spec.aggregationLengthV6", msg: "its 2001:db8::1-2001:db8::ff needs at least /121",
		},
		"aggregation: pool chosen by selector": {
			objs: objects(labeled(pool("p", "192.0.2.0/26"), "announce", "bgp"), pool("q", "198.51.100.0/24"),
				bgpAdv("a", aggLen(25, -1), func(s *lbv1.BGPAdvertisementSpec) {
					s.IPAddressPoolSelectors = []metav1.LabelSelector{sel("announce", "bgp")}
				})),
			field: "BGPAdvertisement[a].spec.aggregationLength", msg: `IPAddressPool "p" permits: its 192.0.2.0/26 needs at least /26`,
		},
		"aggregation: length 33": {
			objs:  objects(bgpAdv("a", aggLen(33, -1))),
			field: "BGPAdvertisement[a].spec.aggregationLength", msg: "Invalid value: 33: must be between 0 and 32",
		},
		"aggregation: negative length": {
			objs:  objects(bgpAdv("a", func(s *lbv1.BGPAdvertisementSpec) { s.AggregationLength = ptr(int32(-1)) })),
			field: "BGPAdvertisement[a].spec.aggregationLength", msg: "must be between 0 and 32",
		},
		"aggregation: IPv6 length 129": {
			objs:  objects(bgpAdv("a", aggLen(-1, 129))),
			field: "BGPAdvertisement[a].spec.aggregationLengthV6", msg: "Invalid value: 129: must be between 0 and 128",
		},
		"aggregation: inline advertisement": {
			objs:  objects(stack(inPools(pool("p", "192.0.2.0/24")), inBGPAdvs(bgpAdv("a", aggLen(20, -1))))),
			field: "LoadBalancerStack[lbstack].spec.bgpAdvertisements[0].aggregationLength", msg: `is shorter than IPAddressPool "p" permits`,
		},

		// BGPAdvertisement localPref.
		"localPref: negative": {
			objs:  objects(bgpAdv("a", localPref(-1))),
			field: "BGPAdvertisement[a].spec.localPref", msg: "Invalid value: -1: must be between 0 and 4294967295",
		},
		"localPref: above 2^32-1": {
			objs:  objects(bgpAdv("a", localPref(math.MaxUint32+1))),
			field: "BGPAdvertisement[a].spec.localPref", msg: "must be between 0 and 4294967295",
		},
		"localPref: two advertisements of one pool": {
			objs:  objects(pool("p", "192.0.2.0/24"), bgpAdv("a", localPref(100)), bgpAdv("b", advPools("p"), localPref(200))),
			field: "BGPAdvertisement[b].spec.localPref", msg: `Invalid value: 200: conflicts with localPref 100 of BGPAdvertisement "a" (BGPAdvertisement[a].spec): both announce 192.0.2.0/32 to a common peer`,
		},
		"localPref: two pools aggregated to one prefix": {
			// a's range ends in 192.0.2.128/26, where b's range starts.
			objs: objects(pool("p1", "192.0.2.0-192.0.2.129"), pool("p2", "192.0.2.130-192.0.2.255"),
				bgpAdv("a", advPools("p1"), aggLen(26, -1), localPref(100)),
				bgpAdv("b", advPools("p2"), aggLen(26, -1), localPref(200))),
			field: "BGPAdvertisement[b].spec.localPref", msg: `conflicts with localPref 100 of BGPAdvertisement "a" (BGPAdvertisement[a].spec): both announce 192.0.2.128/26`,
		},
		"localPref: two pools aggregated to one prefix after 4096 others": {
			// 10.0.0.0/14 alone is 4096 /26 prefixes; the shared one comes after.
			objs: objects(pool("p1", "10.0.0.0-10.4.0.129"), pool("p2", "10.4.0.130-10.4.0.255"),
				bgpAdv("a", advPools("p1"), aggLen(26, -1), localPref(100)),
				bgpAdv("b", advPools("p2"), aggLen(26, -1), localPref(200))),
			field: "BGPAdvertisement[b].spec.localPref", msg: "both announce 10.4.0.128/26 to a common peer",
		},
		"localPref: IPv6 prefix shared with a common peer": {
			objs: objects(pool("p", "2001:db8::/120"), peer("x", "192.0.2.1", ibgp), peer("y", "192.0.2.2", ibgp),
				bgpAdv("a", aggLen(-1, 120), advPeers("x"), localPref(100)),
				bgpAdv("b", aggLen(-1, 120), advPeers("y", "x"), localPref(200))),
			field: "BGPAdvertisement[b].spec.localPref", msg: "both announce 2001:db8::/120",
		},
		"localPref: conflict with the second of three advertisements": {
			// a and b go to disjoint peers; c conflicts with b, not with a.
			objs: objects(pool("p", "192.0.2.0/24"), peer("x", "192.0.2.1", ibgp), peer("y", "192.0.2.2", ibgp),
				bgpAdv("a", advPeers("x"), localPref(100)),
				bgpAdv("b", advPeers("y"), localPref(200)),
				bgpAdv("c", advPeers("y"), localPref(300))),
			field: "BGPAdvertisement[c].spec.localPref", msg: `conflicts with localPref 200 of BGPAdvertisement "b"`,
		},

		// Advertisement selectors.
		"bgp advertisement: pool selector In without values": {
			objs:  objects(bgpAdv("a", func(s *lbv1.BGPAdvertisementSpec) { s.IPAddressPoolSelectors = []metav1.LabelSelector{selInNoValues} })),
			field: "BGPAdvertisement[a].spec.ipAddressPoolSelectors[0].matchExpressions[0].values", msg: "Required value: must be specified when `operator` is 'In' or 'NotIn'",
		},
		"bgp advertisement: a bad pool selector selects no pool": {
			// Not every pool, which would also make aggregationLength 24 wrong.
			objs: objects(pool("p", "192.0.2.0/28"), bgpAdv("a", aggLen(24, -1), func(s *lbv1.BGPAdvertisementSpec) {
				s.IPAddressPoolSelectors = []metav1.LabelSelector{selBadOperator}
			})),
			field: "BGPAdvertisement[a].spec.ipAddressPoolSelectors[0].matchExpressions[0].operator", msg: "not a valid selector operator",
		},
		"bgp advertisement: node selector with a bad key": {
			objs:  objects(bgpAdv("a", func(s *lbv1.BGPAdvertisementSpec) { s.NodeSelectors = []metav1.LabelSelector{selBadKey} })),
			field: "BGPAdvertisement[a].spec.nodeSelectors[0].matchLabels", msg: "name part must consist of alphanumeric characters",
		},
		"l2 advertisement: node selector In without values": {
			objs:  objects(l2Adv("a", func(s *lbv1.L2AdvertisementSpec) { s.NodeSelectors = []metav1.LabelSelector{selInNoValues} })),
			field: "L2Advertisement[a].spec.nodeSelectors[0].matchExpressions[0].values", msg: "must be specified when `operator` is 'In' or 'NotIn'",
		},
		"l2 advertisement: service selector with a bad operator": {
			objs:  objects(l2Adv("a", func(s *lbv1.L2AdvertisementSpec) { s.ServiceSelectors = []metav1.LabelSelector{selBadOperator} })),
			field: "L2Advertisement[a].spec.serviceSelectors[0].matchExpressions[0].operator", msg: "not a valid selector operator",
		},

		// L2Advertisement interfaces.
		"l2 advertisement: interface alias with a colon": {
			objs:  objects(l2Adv("a", interfaces("eth0", "eth0:1"))),
			field: "L2Advertisement[a].spec.interfaces[1]", msg: `Invalid value: "eth0:1": not a network interface name (1-15 characters, no '/', ':' or spaces)`,
		},
		"l2 advertisement: empty interface name": {
			objs:  objects(l2Adv("a", interfaces(""))),
			field: "L2Advertisement[a].spec.interfaces[0]", msg: "not a network interface name",
		},
		"l2 advertisement: interface name of 16 characters": {
			objs:  objects(l2Adv("a", interfaces("enp0s31f6.10000x"))),
			field: "L2Advertisement[a].spec.interfaces[0]", msg: "not a network interface name (1-15 characters",
		},
		"l2 advertisement: interface name with a space": {
			objs:  objects(l2Adv("a", interfaces("eth 0"))),
			field: "L2Advertisement[a].spec.interfaces[0]", msg: "not a network interface name",
		},
		"l2 advertisement: inline interface name with a slash": {
			objs:  objects(stack(inL2Advs(l2Adv("a", interfaces("bond0", "eth/1"))))),
			field: "LoadBalancerStack[lbstack].spec.l2Advertisements[0].interfaces[1]", msg: "not a network interface name",
		},

		// LoadBalancerStack.
		"stack: two stacks, the newer named first": {
			// Nothing inside the refused stack is checked.
			objs:  objects(stackAt("a", later, inPools(pool("p", "192.0.2.1/24"))), stackAt("b", t0)),
			field: "LoadBalancerStack[a]", msg: `Forbidden: only one LoadBalancerStack may exist in a cluster and "b" is already in force`,
		},
		"stack: a stack being created beside an existing one": {
			objs:  objects(stackAt("b", t0), stackAt("a", time.Time{})),
			field: "LoadBalancerStack[a]", msg: `"b" is already in force; put the configuration into it, or into standalone objects`,
		},
		"stack: two stacks created together": {
			objs:  objects(stackAt("b", t0), stackAt("a", t0)),
			field: "LoadBalancerStack[b]", msg: `"a" is already in force`,
		},
		"stack: inline pool named like a standalone pool": {
			objs:  objects(pool("a", "10.0.0.0/24"), stack(inPools(pool("b", "10.1.0.0/24"), pool("a", "10.2.0.0/24")))),
			field: "LoadBalancerStack[lbstack].spec.pools[1].name", msg: `Duplicate value: "a": a standalone IPAddressPool of this name already exists and is not owned by this stack; rename the item or delete the standalone object`,
		},
		"stack: inline peer named like a standalone peer": {
			objs:  objects(peer("tor", "192.0.2.1"), stack(inPeers(peer("tor", "192.0.2.2")))),
			field: "LoadBalancerStack[lbstack].spec.bgpPeers[0].name", msg: "a standalone BGPPeer of this name already exists",
		},
		"stack: inline BFD profile named like a standalone one": {
			objs:  objects(bfd("fast"), stack(inBFDs(bfd("fast")))),
			field: "LoadBalancerStack[lbstack].spec.bfdProfiles[0].name", msg: "a standalone BFDProfile of this name already exists",
		},
		"stack: inline L2Advertisement named like a standalone one": {
			objs:  objects(l2Adv("all"), stack(inL2Advs(l2Adv("all")))),
			field: "LoadBalancerStack[lbstack].spec.l2Advertisements[0].name", msg: "a standalone L2Advertisement of this name already exists",
		},
		"stack: standalone pool owned but not controlled by the stack": {
			objs: objects(with(pool("a", "10.0.0.0/24"), func(p *lbv1.IPAddressPool) { p.OwnerReferences = ownerRefs("lbstack.io/v1alpha1", stackName, false) }),
				stack(inPools(pool("a", "10.0.0.0/24")))),
			field: "LoadBalancerStack[lbstack].spec.pools[0].name", msg: "a standalone IPAddressPool of this name already exists",
		},
		"stack: standalone pool controlled by another group's LoadBalancerStack": {
			objs: objects(with(pool("a", "10.0.0.0/24"), func(p *lbv1.IPAddressPool) { p.OwnerReferences = ownerRefs("example.com/v1", stackName, true) }),
				stack(inPools(pool("a", "10.0.0.0/24")))),
			field: "LoadBalancerStack[lbstack].spec.pools[0].name", msg: "a standalone IPAddressPool of this name already exists",
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			cfg, _, errs := Build(tc.objs)
			if cfg != nil {
				t.Errorf("Build returned a Config along with errors")
			}
			if len(errs) != 1 {
				t.Fatalf("want exactly one error at %s, got %d:\n%s", tc.field, len(errs), errorLines(errs))
			}
			if errs[0].Field != tc.field {
				t.Errorf("error at %q, want %q:\n%s", errs[0].Field, tc.field, errs[0])
			}
			if !strings.Contains(errs[0].Error(), tc.msg) {
				t.Errorf("error\n  %s\ndoes not contain\n  %s", errs[0], tc.msg)
			}
		})
	}
	if len(cases) < 60 {
		t.Errorf("only %d bad inputs", len(cases))
	}
}

func errorLines(errs field.ErrorList) string {
	var b strings.Builder
	for _, e := range errs {
		b.WriteString("  " + e.Error() + "\n")
	}
	return b.String()
}

// TestBuildDocExamples keeps the examples in the package comment true.
func TestBuildDocExamples(t *testing.T) {
	for _, tc := range []struct {
		objs Objects
		want string
	}{{
		objs: objects(pool("prod", "198.51.100.0/24", "192.0.2.128/25"), pool("test", "192.0.2.0/24")),
		want: `IPAddressPool[test].spec.addresses[0]: Invalid value: "192.0.2.0/24": overlaps IPAddressPool "prod" at IPAddressPool[prod].spec.addresses[1] (192.0.2.128/25); pools must not share addresses`,
	}, {
		objs: objects(stack(inPeers(peer("tor", "192.0.2.1", holdTime("2s"))))),
		want: `LoadBalancerStack[lbstack].spec.bgpPeers[0].holdTime: Invalid value: "2s": must be 0s or between 3s and 65535s (RFC 4271)`,
	}} {
		_, _, errs := Build(tc.objs)
		if len(errs) != 1 || errs[0].Error() != tc.want {
			t.Errorf("got\n%swant\n  %s", errorLines(errs), tc.want)
		}
	}
}

// mustBuild builds objs and fails the test on any error or unexpected warning.
func mustBuild(t *testing.T, objs Objects) *Config {
	t.Helper()
	cfg, warnings, errs := Build(objs)
	if len(errs) > 0 {
		t.Fatalf("Build: unexpected errors:\n%s", errorLines(errs))
	}
	if len(warnings) > 0 {
		t.Errorf("Build: unexpected warnings:\n  %s", strings.Join(warnings, "\n  "))
	}
	if cfg == nil {
		t.Fatal("Build returned no Config and no errors")
	}
	return cfg
}

func mustRange(t *testing.T, s string) Range {
	t.Helper()
	r, err := ParseRange(s)
	if err != nil {
		t.Fatalf("ParseRange(%q): %v", s, err)
	}
	return r
}

func check[T any](t *testing.T, what string, got, want T) {
	t.Helper()
	if !reflect.DeepEqual(got, want) {
		t.Errorf("%s = %v, want %v", what, got, want)
	}
}

func matches(sels []labels.Selector, pairs ...string) bool { return MatchesAny(sels, kv(pairs...)) }

func TestBuildNothing(t *testing.T) {
	cfg := mustBuild(t, Objects{})
	check(t, "Stack", cfg.Stack, "")
	check(t, "len(Pools)", len(cfg.Pools), 0)
}

// TestBuildLayer2 is a realistic layer 2 configuration of standalone objects.
func TestBuildLayer2(t *testing.T) {
	prod := labeled(pool("prod", "192.0.2.0/25", "2001:db8:1::/120"), "env", "prod")
	prod.Spec.Allocation = &lbv1.ServiceAllocation{
		Priority:         ptr(int32(10)),
		Namespaces:       []string{"web", "api"},
		ServiceSelectors: []metav1.LabelSelector{sel("tier", "frontend")},
	}
	test := labeled(pool("test", "192.0.2.128-192.0.2.200"), "env", "test")
	test.Spec.AutoAssign = ptr(false)
	test.Spec.AvoidBuggyIPs = true

	cfg := mustBuild(t, objects(prod, test,
		l2Adv("all"),
		l2Adv("prod-edge", interfaces("eth0", "bond0.100"), func(s *lbv1.L2AdvertisementSpec) {
			s.IPAddressPoolSelectors = []metav1.LabelSelector{sel("env", "prod")}
			s.NodeSelectors = []metav1.LabelSelector{sel("role", "edge")}
		}),
		l2Adv("test-only", func(s *lbv1.L2AdvertisementSpec) { s.IPAddressPools = []string{"test"} }),
	))

	check(t, "Stack", cfg.Stack, "")
	check(t, "pools", slices.Sorted(maps.Keys(cfg.Pools)), []string{"prod", "test"})
	p := cfg.Pools["prod"]
	check(t, "prod.Source", p.Source, Source{Kind: "IPAddressPool", Name: "prod"})
	check(t, "prod.Ranges", p.Ranges, []Range{mustRange(t, "192.0.2.0/25"), mustRange(t, "2001:db8:1::/120")})
	check(t, "prod.AutoAssign", p.AutoAssign, true)
	check(t, "prod.Priority", *p.Priority, int32(10))
	check(t, "prod.Namespaces", p.Namespaces, []string{"web", "api"})
	check(t, "prod.Size(IPv4)", p.Size(true), big.NewInt(128))
	check(t, "prod.Size(IPv6)", p.Size(false), big.NewInt(256))
	check(t, "prod serves tier=frontend", matches(p.ServiceSelectors, "tier", "frontend"), true)
	check(t, "prod serves tier=backend", matches(p.ServiceSelectors, "tier", "backend"), false)
	check(t, "prod.Contains(192.0.2.127)", p.Contains(netip.MustParseAddr("192.0.2.127")), true)
	check(t, "prod.Contains(192.0.2.128)", p.Contains(netip.MustParseAddr("192.0.2.128")), false)

	q := cfg.Pools["test"]
	check(t, "test.AutoAssign", q.AutoAssign, false)
	check(t, "test.AvoidBuggyIPs", q.AvoidBuggyIPs, true)
	check(t, "test.Priority", q.Priority, (*int32)(nil))
	check(t, "test.Size(IPv4)", q.Size(true), big.NewInt(73))
	check(t, "test.Size(IPv6)", q.Size(false), big.NewInt(0))
	check(t, "test.Labels", q.Labels, labels.Set{"env": "test"})

	var names [][]string
	for _, a := range cfg.L2Advertisements {
		names = append(names, append([]string{a.Name}, a.Pools...))
	}
	check(t, "L2Advertisements and their pools", names, [][]string{{"all", "prod", "test"}, {"prod-edge", "prod"}, {"test-only", "test"}})
	edge := cfg.L2Advertisements[1]
	check(t, "prod-edge.Interfaces", edge.Interfaces, []string{"eth0", "bond0.100"})
	check(t, "prod-edge on role=edge", matches(edge.NodeSelectors, "role", "edge"), true)
	check(t, "prod-edge on role=worker", matches(edge.NodeSelectors, "role", "worker"), false)
	check(t, "all on any node", matches(cfg.L2Advertisements[0].NodeSelectors, "role", "worker"), true)
}

// TestBuildBGP is a realistic BGP configuration: a stack with inline
// items, its rendered children (which Build skips), and standalone objects.
func TestBuildBGP(t *testing.T) {
	pubV4 := labeled(pool("public-v4", "198.51.100.0/24"), "announce", "bgp")
	pubV6 := labeled(pool("public-v6", "2001:db8:100::/120"), "announce", "bgp")
	torA := peer("tor-a", "10.0.0.1", ibgp, peerNodes(sel("rack", "a")), func(s *lbv1.BGPPeerSpec) {
		s.MyASN, s.PeerASN = 64512, 64512
		s.BFDProfile = "default-bfd"
	})
	torB := peer("tor-b", "2001:db8::1", func(s *lbv1.BGPPeerSpec) {
		s.MyASN, s.PeerASN = 64512, 65000
		s.PeerPort = 1179
		s.HoldTime = dur("9s")
		s.EBGPMultiHop = ptr(true)
		s.EnableGracefulRestart = ptr(true)
		s.DualStackAddressFamily = ptr(true)
		s.RouterID = "10.0.0.100"
		s.SourceAddress = "2001:db8::100"
		s.PasswordSecret = &lbv1.SecretReference{Name: "tor-b-md5", Key: "password"}
		s.BFDProfile = "fast"
	})
	fast := bfd("fast", func(s *lbv1.BFDProfileSpec) {
		s.ReceiveInterval, s.TransmitInterval = ptr(int32(100)), ptr(int32(150))
		s.DetectMultiplier = ptr(int32(5))
		s.EchoMode = ptr(false) // as MetalLB profiles spell it out
		s.MinimumTTL = ptr(int32(1))
	})
	public := bgpAdv("public", aggLen(32, -1), communities("no-export", "65000:100", "large:64512:1:2"), localPref(150), advPeers("tor-a"),
		func(s *lbv1.BGPAdvertisementSpec) {
			s.IPAddressPoolSelectors = []metav1.LabelSelector{sel("announce", "bgp")}
		})
	lbs := stack(inPools(pubV4, pubV6), inPeers(torA, torB), inBFDs(fast),
		inCommunities(community("well-known", "no-export", "65535:65281", "no-advertise", "65535:65282")),
		inBGPAdvs(public),
		func(s *lbv1.LoadBalancerStackSpec) { s.LoadBalancerClass = "lbstack.io/lb" })

	// The operator's rendered children, identical to the inline items.
	child := func(m *metav1.ObjectMeta) { m.OwnerReferences = ownerRefs("lbstack.io/v1alpha1", stackName, true) }
	childPool := with(pubV4, func(p *lbv1.IPAddressPool) { child(&p.ObjectMeta) })
	childPeer := with(torA, func(p *lbv1.BGPPeer) { child(&p.ObjectMeta) })
	childAdv := with(public, func(a *lbv1.BGPAdvertisement) { child(&a.ObjectMeta) })

	cfg := mustBuild(t, objects(lbs, childPool, childPeer, childAdv,
		bfd("default-bfd"),
		community("site", "site-a", "64512:10"),
		pool("internal", "10.96.0.0/28", "fd00:10::/124"),
		bgpAdv("internal", advPools("internal"), aggLen(28, 124), communities("site-a", "no-advertise")),
	))

	check(t, "Stack", cfg.Stack, "lbstack")
	check(t, "LoadBalancerClass", cfg.LoadBalancerClass, "lbstack.io/lb")
	check(t, "pools", slices.Sorted(maps.Keys(cfg.Pools)), []string{"internal", "public-v4", "public-v6"})
	check(t, "public-v4.Source", cfg.Pools["public-v4"].Source, Source{Kind: "LoadBalancerStack", Name: "lbstack", Owner: "uid-lbstack", Created: stackCreated})
	check(t, "internal.Source", cfg.Pools["internal"].Source, Source{Kind: "IPAddressPool", Name: "internal"})
	check(t, "internal.AutoAssign", cfg.Pools["internal"].AutoAssign, true)
	check(t, "internal.Size(IPv4)", cfg.Pools["internal"].Size(true), big.NewInt(16))
	check(t, "internal.Size(IPv6)", cfg.Pools["internal"].Size(false), big.NewInt(16))

	a := cfg.Peers["tor-a"]
	check(t, "tor-a", *a, Peer{
		Name: "tor-a", Source: Source{Kind: "LoadBalancerStack", Name: "lbstack", Owner: "uid-lbstack", Created: stackCreated},
		MyASN: 64512, PeerASN: 64512, Address: netip.MustParseAddr("10.0.0.1"),
		Port: 179, HoldTime: 90 * time.Second, KeepaliveTime: 30 * time.Second, ConnectTime: 5 * time.Second,
		BFDProfile: "default-bfd", NodeSelectors: a.NodeSelectors,
	})
	check(t, "tor-a.IBGP", a.IBGP(), true)
	check(t, "tor-a on rack=a", matches(a.NodeSelectors, "rack", "a"), true)
	check(t, "tor-a on rack=b", matches(a.NodeSelectors, "rack", "b"), false)
	b := cfg.Peers["tor-b"]
	check(t, "tor-b", *b, Peer{
		Name: "tor-b", Source: a.Source,
		MyASN: 64512, PeerASN: 65000, Address: netip.MustParseAddr("2001:db8::1"), Port: 1179,
		SourceAddress: netip.MustParseAddr("2001:db8::100"), RouterID: netip.MustParseAddr("10.0.0.100"),
		HoldTime: 9 * time.Second, KeepaliveTime: 3 * time.Second, ConnectTime: 5 * time.Second,
		EBGPMultiHop: true, PasswordSecret: &lbv1.SecretReference{Name: "tor-b-md5", Key: "password"},
		BFDProfile: "fast", GracefulRestart: true, NodeSelectors: []labels.Selector{}, DualStackAddressFamily: true,
	})
	check(t, "tor-b.IBGP", b.IBGP(), false)

	check(t, "default-bfd", *cfg.BFDProfiles["default-bfd"], BFDProfile{
		Name: "default-bfd", ReceiveInterval: 300 * time.Millisecond, TransmitInterval: 300 * time.Millisecond,
		DetectMultiplier: 3, MinimumTTL: 254,
	})
	check(t, "fast", *cfg.BFDProfiles["fast"], BFDProfile{
		Name: "fast", ReceiveInterval: 100 * time.Millisecond, TransmitInterval: 150 * time.Millisecond,
		DetectMultiplier: 5, MinimumTTL: 1,
	})

	noExport, noAdvertise := Community{Standard: 0xffffff01}, Community{Standard: 0xffffff02}
	siteA := Community{Standard: 64512<<16 | 10}
	check(t, "CommunityAliases", cfg.CommunityAliases, map[string]Community{"no-export": noExport, "no-advertise": noAdvertise, "site-a": siteA})

	if len(cfg.BGPAdvertisements) != 2 {
		t.Fatalf("%d BGPAdvertisements, want 2", len(cfg.BGPAdvertisements))
	}
	in, pub := cfg.BGPAdvertisements[0], cfg.BGPAdvertisements[1]
	check(t, "BGPAdvertisement names", []string{in.Name, pub.Name}, []string{"internal", "public"})
	check(t, "internal.Pools", in.Pools, []string{"internal"})
	check(t, "internal aggregation", []int{in.AggregationLength, in.AggregationLengthV6}, []int{28, 124})
	check(t, "internal.Communities", in.Communities, []Community{siteA, noAdvertise})
	check(t, "internal.Peers", in.Peers, []string(nil))
	check(t, "internal.LocalPref", in.LocalPref, (*uint32)(nil))
	check(t, "public.Pools", pub.Pools, []string{"public-v4", "public-v6"})
	check(t, "public aggregation", []int{pub.AggregationLength, pub.AggregationLengthV6}, []int{32, 128})
	check(t, "public.Communities", pub.Communities, []Community{noExport, {Standard: 65000<<16 | 100}, {Large: true, Global: 64512, Local1: 1, Local2: 2}})
	check(t, "public.LocalPref", *pub.LocalPref, uint32(150))
	check(t, "public.Peers", pub.Peers, []string{"tor-a"})
}

// TestBuildSkipsStackChildren: a standalone object whose controller is a
// LoadBalancerStack is the stack's rendered copy of an inline item, so it
// is neither a duplicate of the item nor overlaps it.
func TestBuildSkipsStackChildren(t *testing.T) {
	p := pool("p", "192.0.2.0/24")
	pr := peer("tor", "192.0.2.1")
	bf := bfd("fast")
	c := community("c", "gold", "65000:1")
	l2 := l2Adv("l2")
	bg := bgpAdv("bgp", communities("gold"))
	lbs := stack(inPools(p), inPeers(pr), inBFDs(bf), inCommunities(c), inL2Advs(l2), inBGPAdvs(bg))

	refs := ownerRefs("lbstack.io/v1alpha1", stackName, true)
	p.OwnerReferences, pr.OwnerReferences, bf.OwnerReferences = refs, refs, refs
	c.OwnerReferences, l2.OwnerReferences, bg.OwnerReferences = refs, refs, refs
	// The child's spec may lag behind the stack; the inline item is the truth.
	p.Spec.Addresses = []lbv1.PoolAddress{"192.0.2.0/25"}

	cfg := mustBuild(t, objects(lbs, p, pr, bf, c, l2, bg))
	check(t, "pool", cfg.Pools["p"].Ranges, []Range{mustRange(t, "192.0.2.0/24")})
	check(t, "pool source", cfg.Pools["p"].Source.Kind, "LoadBalancerStack")
	check(t, "L2Advertisements", len(cfg.L2Advertisements), 1)
	check(t, "BGPAdvertisements", len(cfg.BGPAdvertisements), 1)
}

// TestBuildAccepts holds configurations that are close to an error but valid.
func TestBuildAccepts(t *testing.T) {
	cases := map[string]Objects{
		// Validity never depends on Node labels: a node that both select
		// keeps the earlier peer at run time.
		"peers with one address and different node selectors": objects(
			peer("a", "192.0.2.1", peerNodes(sel("rack", "a"))), peer("b", "192.0.2.1", peerNodes(sel("rack", "b"), sel("role", "edge")))),
		"peers with one address in both families": objects(
			peer("a", "192.0.2.1"), peer("b", "2001:db8::1")),
		"holdTime 0 and keepalive 0": objects(peer("a", "192.0.2.1", holdTime("0s"), keepalive("0s"))),
		"holdTime 3s and 65535s":     objects(peer("a", "192.0.2.1", holdTime("3s")), peer("b", "192.0.2.2", holdTime("65535s"))),
		"BFD bounds": objects(bfd("b", func(s *lbv1.BFDProfileSpec) {
			s.ReceiveInterval, s.TransmitInterval = ptr(int32(10)), ptr(int32(60000))
			s.DetectMultiplier, s.MinimumTTL = ptr(int32(255)), ptr(int32(254))
		})),
		"ASN bounds": objects(peer("a", "192.0.2.1", func(s *lbv1.BGPPeerSpec) { s.MyASN, s.PeerASN = 1, math.MaxUint32 })),
		"aggregation equal to the range's largest block": objects(
			pool("p", "192.0.2.1-192.0.2.6", "2001:db8::/64"), bgpAdv("a", aggLen(31, 64))),
		"aggregation of a whole /24 range": objects(pool("p", "192.0.2.0-192.0.2.255"), bgpAdv("a", aggLen(24, -1))),
		"localPref differs on disjoint peers": objects(
			pool("p", "192.0.2.0/24"), peer("x", "192.0.2.1", ibgp), peer("y", "192.0.2.2", ibgp),
			bgpAdv("a", advPeers("x"), localPref(100)), bgpAdv("b", advPeers("y"), localPref(200))),
		"localPref differs on different aggregation lengths": objects(
			pool("p", "192.0.2.0/24"), bgpAdv("a", localPref(100)), bgpAdv("b", aggLen(24, -1), localPref(200))),
		"localPref equal on one prefix": objects(
			pool("p", "192.0.2.0/24"), bgpAdv("a", localPref(100)), bgpAdv("b", localPref(100))),
		"localPref on pools that do not share an aggregate": objects(
			pool("p1", "192.0.2.0/25"), pool("p2", "192.0.2.128/25"),
			bgpAdv("a", advPools("p1"), aggLen(25, -1), localPref(100)), bgpAdv("b", advPools("p2"), aggLen(25, -1), localPref(200))),
		"adjacent pools": objects(pool("a", "192.0.2.0-192.0.2.127"), pool("b", "192.0.2.128/25"), pool("c", "::/0"), pool("d", "0.0.0.0/1")),
		"community bounds and leading zeros": objects(community("c", "zero", "0:0", "max", "65535:65535", "large", "large:4294967295:0:4294967295", "padded", "0065000:01"),
			bgpAdv("a", communities("zero", "max", "large", "padded", "1:2", "large:1:2:3"))),
	}
	for name, objs := range cases {
		t.Run(name, func(t *testing.T) { mustBuild(t, objs) })
	}
}

// TestBuildWarnings: references to pools or peers that do not exist yet,
// and a localPref that cannot take effect, are warnings, not errors.
func TestBuildWarnings(t *testing.T) {
	cases := map[string]struct {
		objs Objects
		want []string
	}{
		"L2Advertisement names a missing pool": {
			objs: objects(pool("a", "192.0.2.0/24"), l2Adv("l2", func(s *lbv1.L2AdvertisementSpec) { s.IPAddressPools = []string{"a", "b"} })),
			want: []string{`L2Advertisement[l2].spec.ipAddressPools[1]: IPAddressPool "b" does not exist; nothing is announced for it until it does`},
		},
		"BGPAdvertisement names a missing pool": {
			objs: objects(stack(inBGPAdvs(bgpAdv("adv", advPools("gone"))))),
			want: []string{`LoadBalancerStack[lbstack].spec.bgpAdvertisements[0].ipAddressPools[0]: IPAddressPool "gone" does not exist`},
		},
		"peers with one address and different ports": {
			objs: objects(peer("a", "192.0.2.1"), peer("b", "192.0.2.1", func(s *lbv1.BGPPeerSpec) { s.PeerPort = 1179 })),
			want: []string{`BGPPeer[b].spec.peerPort: BGPPeer "a" (BGPPeer[a].spec) has the same address on port 179; a node holds one session per router address, so a node that selects both peers configures only the one created first`},
		},
		"peers with different routerIDs and different node selectors": {
			objs: objects(peer("a", "192.0.2.1", peerNodes(sel("rack", "a")), func(s *lbv1.BGPPeerSpec) { s.RouterID = "10.0.0.1" }),
				peer("b", "192.0.2.2", peerNodes(sel("rack", "b")), func(s *lbv1.BGPPeerSpec) { s.RouterID = "10.0.0.2" }),
				// No routerID: no preference, no warning.
				peer("c", "192.0.2.3", func(s *lbv1.BGPPeerSpec) { s.RouterID = "" })),
			want: []string{`BGPPeer[b].spec.routerID: BGPPeer "a" (BGPPeer[a].spec) sets routerID 10.0.0.1; a node has one BGP identifier for all its sessions, so a node that selects both peers configures only the one created first`},
		},
		"BGPAdvertisement names a missing peer": {
			objs: objects(peer("x", "192.0.2.1"), bgpAdv("adv", advPeers("x", "y"))),
			want: []string{`BGPAdvertisement[adv].spec.peers[1]: BGPPeer "y" does not exist; nothing is announced to it until it does`},
		},
		"localPref to eBGP peers only": {
			objs: objects(peer("x", "192.0.2.1"), peer("y", "192.0.2.2"), peer("z", "192.0.2.3", ibgp), bgpAdv("adv", advPeers("x", "y"), localPref(100))),
			want: []string{"BGPAdvertisement[adv].spec.localPref: has no effect: every peer of this advertisement is eBGP, and LOCAL_PREF is only sent to iBGP peers"},
		},
		"localPref when every peer is eBGP": {
			objs: objects(peer("x", "192.0.2.1"), bgpAdv("adv", localPref(100))),
			want: []string{"BGPAdvertisement[adv].spec.localPref: has no effect: every BGPPeer is eBGP"},
		},
		"localPref to a missing peer": {
			// Only the missing peer: nothing is known about its ASN.
			objs: objects(peer("x", "192.0.2.1"), bgpAdv("adv", advPeers("y"), localPref(100))),
			want: []string{`BGPAdvertisement[adv].spec.peers[0]: BGPPeer "y" does not exist`},
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			cfg, warnings, errs := Build(tc.objs)
			if len(errs) > 0 || cfg == nil {
				t.Fatalf("unexpected errors:\n%s", errorLines(errs))
			}
			if len(warnings) != len(tc.want) {
				t.Fatalf("got warnings\n  %s\nwant %d", strings.Join(warnings, "\n  "), len(tc.want))
			}
			for i, w := range tc.want {
				if !strings.HasPrefix(warnings[i], w) {
					t.Errorf("warning\n  %s\ndoes not start with\n  %s", warnings[i], w)
				}
			}
		})
	}
}

// TestBuildReportsEveryError: one Build call reports every problem.
func TestBuildReportsEveryError(t *testing.T) {
	_, _, errs := Build(objects(
		pool("dual", "192.0.2.0/24", "2001:db8::/64"),
		bgpAdv("adv", aggLen(16, 48)),
		peer("p", "192.0.2.1", holdTime("2s"), func(s *lbv1.BGPPeerSpec) { s.MyASN = 0 }),
	))
	var got []string
	for _, e := range errs {
		got = append(got, e.Field)
	}
	check(t, "error fields", got, []string{
		"BGPPeer[p].spec.myASN",
		"BGPPeer[p].spec.holdTime",
		"BGPAdvertisement[adv].spec.aggregationLength",
		"BGPAdvertisement[adv].spec.aggregationLengthV6",
	})
}

// TestBuildAliasWithBadValue: an advertisement using an alias whose value
// is invalid is not blamed; the alias is.
func TestBuildAliasWithBadValue(t *testing.T) {
	_, _, errs := Build(objects(community("c", "gold", "65536:1"), bgpAdv("adv", communities("gold"))))
	if len(errs) != 1 || errs[0].Field != "Community[c].spec.communities[0].value" {
		t.Errorf("want one error at Community[c].spec.communities[0].value, got:\n%s", errorLines(errs))
	}
}

// TestBuildIsDeterministic: the same objects give the same errors in the
// same order, which the webhooks rely on to compare before and after.
func TestBuildIsDeterministic(t *testing.T) {
	var items []any
	for i, addr := range []string{"192.0.2.1", "192.0.2.2", "192.0.2.3", "2001:db8::1", "2001:db8::2"} {
		items = append(items, peer(fmt.Sprintf("a%d", i), addr), peer(fmt.Sprintf("b%d", i), addr))
	}
	items = append(items, pool("p", "192.0.2.0/24"), pool("q", "192.0.2.0/25"), pool("r", "192.0.2.64/26"),
		bgpAdv("x", localPref(1)), bgpAdv("y", localPref(2)), bgpAdv("z", localPref(3)))
	objs := objects(items...)
	_, _, first := Build(objs)
	if len(first) < 5 {
		t.Fatalf("expected many errors, got:\n%s", errorLines(first))
	}
	for range 20 {
		_, _, errs := Build(objs)
		if errorLines(errs) != errorLines(first) {
			t.Fatalf("errors differ between runs:\n%s\nand\n%s", errorLines(first), errorLines(errs))
		}
	}
}

// TestLocalPrefConflictsMatchBruteForce compares the localPref conflicts
// Build reports for random pools and advertisements with every aggregate
// of every range compared with every other.
func TestLocalPrefConflictsMatchBruteForce(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	base := netip.MustParseAddr("192.0.2.0").As4()
	addr := func(i int) netip.Addr { return netip.AddrFrom4([4]byte{base[0], base[1], base[2], byte(i)}) }
	for iter := range 500 {
		// Disjoint ranges of 192.0.2.0/24, dealt to up to three pools.
		cuts := []int{0, 256}
		for range 1 + rng.IntN(5) {
			cuts = append(cuts, rng.IntN(256))
		}
		slices.Sort(cuts)
		cuts = slices.Compact(cuts)
		pools := map[string][]string{}
		for i := 0; i+1 < len(cuts); i++ {
			if rng.IntN(4) == 0 {
				continue
			}
			name := fmt.Sprintf("p%d", rng.IntN(3))
			pools[name] = append(pools[name], addr(cuts[i]).String()+"-"+addr(cuts[i+1]-1).String())
		}
		var items []any
		for name, addrs := range pools {
			items = append(items, pool(name, addrs...))
		}
		poolNames := slices.Sorted(maps.Keys(pools))
		if len(poolNames) == 0 {
			continue
		}

		type adv struct {
			name      string
			pools     []string
			agg       int
			localPref int64
		}
		var advs []adv
		for i := range 2 + rng.IntN(3) {
			a := adv{name: fmt.Sprintf("a%d", i), agg: 24 + rng.IntN(9), localPref: int64(100 * (1 + rng.IntN(3)))}
			for _, p := range poolNames {
				if rng.IntN(2) == 0 {
					a.pools = append(a.pools, p)
				}
			}
			if len(a.pools) == 0 {
				a.pools = poolNames[:1]
			}
			advs = append(advs, a)
			items = append(items, bgpAdv(a.name, advPools(a.pools...), aggLen(int32(a.agg), -1), localPref(a.localPref)))
		}

		// Every aggregate of every range, the slow way.
		prefixes := func(a adv) map[netip.Prefix]bool {
			out := map[netip.Prefix]bool{}
			for _, p := range a.pools {
				for _, s := range pools[p] {
					r := mustRange(t, s)
					for x := r.First; ; x = x.Next() {
						pfx, _ := x.Prefix(a.agg)
						out[pfx] = true
						if x == r.Last {
							break
						}
					}
				}
			}
			return out
		}
		var want []string
		for j := range advs {
			pj := prefixes(advs[j])
			for i := range j {
				if advs[i].localPref == advs[j].localPref {
					continue
				}
				for pfx := range prefixes(advs[i]) {
					if pj[pfx] {
						want = append(want, advs[j].name+" conflicts with "+advs[i].name)
						break
					}
				}
			}
		}

		_, _, errs := Build(objects(items...))
		var got []string
		for _, e := range errs {
			if before, after, ok := strings.Cut(e.Field, ".spec.localPref"); ok && after == "" {
				other := strings.Split(e.Detail, `"`)[1]
				got = append(got, strings.TrimSuffix(strings.TrimPrefix(before, "BGPAdvertisement["), "]")+" conflicts with "+other)
			}
		}
		slices.Sort(got)
		slices.Sort(want)
		if !slices.Equal(got, want) {
			t.Fatalf("iteration %d: pools %v, advertisements %+v:\ngot  %q\nwant %q\nerrors:\n%s", iter, pools, advs, got, want, errorLines(errs))
		}
	}
}
