package plan

import (
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/utils/ptr"

	lbv1 "github.com/lbstack/lbstack/api/v1alpha1"
	"github.com/lbstack/lbstack/internal/config"
	"github.com/lbstack/lbstack/speaker/bgp"
)

func bgpConfig(t *testing.T) *config.Config {
	return mustConfig(t, config.Objects{
		Pools: []lbv1.IPAddressPool{
			{ObjectMeta: metav1.ObjectMeta{Name: "v4"}, Spec: lbv1.IPAddressPoolSpec{Addresses: []lbv1.PoolAddress{"198.51.100.0/24"}}},
			{ObjectMeta: metav1.ObjectMeta{Name: "v6"}, Spec: lbv1.IPAddressPoolSpec{Addresses: []lbv1.PoolAddress{"2001:db8:1::/64"}}},
			{ObjectMeta: metav1.ObjectMeta{Name: "l2only"}, Spec: lbv1.IPAddressPoolSpec{Addresses: []lbv1.PoolAddress{"192.0.2.0/28"}}},
		},
		BFDProfiles: []lbv1.BFDProfile{{ObjectMeta: metav1.ObjectMeta{Name: "fast"}, Spec: lbv1.BFDProfileSpec{ReceiveInterval: ptr.To[int32](100), TransmitInterval: ptr.To[int32](100), DetectMultiplier: ptr.To[int32](3)}}},
		Peers: []lbv1.BGPPeer{
			{ObjectMeta: metav1.ObjectMeta{Name: "tor"}, Spec: lbv1.BGPPeerSpec{MyASN: 64500, PeerASN: 64500, PeerAddress: "203.0.113.1", BFDProfile: "fast",
				PasswordSecret: &lbv1.SecretReference{Name: "md5", Key: "password"}}},
			{ObjectMeta: metav1.ObjectMeta{Name: "edge"}, Spec: lbv1.BGPPeerSpec{MyASN: 64500, PeerASN: 64501, PeerAddress: "203.0.113.2",
				NodeSelectors: []metav1.LabelSelector{{MatchLabels: map[string]string{"edge": "true"}}}}},
		},
		BGPAdvertisements: []lbv1.BGPAdvertisement{
			{ObjectMeta: metav1.ObjectMeta{Name: "hosts"}, Spec: lbv1.BGPAdvertisementSpec{IPAddressPools: []string{"v4", "v6"}, LocalPref: ptr.To[int64](150), Communities: []lbv1.CommunityRef{"64500:100", "large:64500:1:2"}}},
			{ObjectMeta: metav1.ObjectMeta{Name: "aggregate"}, Spec: lbv1.BGPAdvertisementSpec{IPAddressPools: []string{"v4"}, AggregationLength: ptr.To[int32](24), Peers: []string{"edge"},
				NodeSelectors: []metav1.LabelSelector{{MatchLabels: map[string]string{"edge": "true"}}}}},
		},
	})
}

func TestPlanBGP(t *testing.T) {
	cfg := bgpConfig(t)
	nodes := []NodeState{{Name: "a", Labels: labels.Set{"edge": "true"}}, {Name: "b"}, {Name: "x", Excluded: true}}
	local := svc("local", "198.51.100.7")
	local.Local, local.EndpointNodes = true, map[string]bool{"b": true}
	services := []ServiceState{svc("web", "198.51.100.5", "2001:db8:1::5"), local, svc("l2", "192.0.2.3")}

	a := BGP(cfg, services, nodes, "a")
	if got := peerNames(a); !slices.Equal(got, []string{"edge", "tor"}) {
		t.Errorf("a peers %v", got)
	}
	torBFD, hasTor := a.BFD["tor"]
	_, hasEdge := a.BFD["edge"]
	if a.Passwords["tor"].Name != "md5" || !hasTor || hasEdge {
		t.Errorf("passwords %v bfd %v", a.Passwords, a.BFD)
	}
	if i := slices.IndexFunc(a.Peers, func(p bgp.Peer) bool { return p.Name == "tor" }); i < 0 || torBFD.Peer != a.Peers[i].Address || torBFD.DetectMultiplier == 0 {
		t.Errorf("tor's BFD session %+v does not follow its peer and profile", torBFD)
	}
	want := []string{"198.51.100.0/24", "198.51.100.5/32", "2001:db8:1::5/128"}
	if got := prefixes(a); !slices.Equal(got, want) {
		t.Errorf("a advertises %v, want %v (local Service without endpoint on a, layer-2 pool)", got, want)
	}
	for _, p := range a.Paths {
		switch p.Prefix.String() {
		case "198.51.100.5/32":
			if p.LocalPref == nil || *p.LocalPref != 150 || !slices.Equal(p.Communities, []uint32{64500<<16 | 100}) || len(p.LargeCommunities) != 1 || len(p.Peers) != 0 {
				t.Errorf("host path %+v", p)
			}
		case "198.51.100.0/24":
			if !slices.Equal(p.Peers, []string{"edge"}) {
				t.Errorf("aggregate path %+v", p)
			}
		}
	}

	b := BGP(cfg, services, nodes, "b")
	if got := peerNames(b); !slices.Equal(got, []string{"tor"}) {
		t.Errorf("b peers %v", got)
	}
	want = []string{"198.51.100.5/32", "198.51.100.7/32", "2001:db8:1::5/128"}
	if got := prefixes(b); !slices.Equal(got, want) {
		t.Errorf("b advertises %v, want %v", got, want)
	}
	if svcs := b.Services[netip.MustParsePrefix("198.51.100.7/32")]; len(svcs) != 1 || svcs[0].Name != "local" {
		t.Errorf("services of the local prefix: %v", svcs)
	}

	if x := BGP(cfg, services, nodes, "x"); len(x.Paths) != 0 || len(x.Peers) != 1 {
		t.Errorf("an excluded node keeps its sessions but advertises nothing: %+v", x)
	}
	if y := BGP(cfg, services, nodes, "unknown"); len(y.Peers) != 0 {
		t.Errorf("an unknown node has sessions: %+v", y.Peers)
	}
}

func peerNames(p BGPPlan) []string {
	var out []string
	for _, x := range p.Peers {
		out = append(out, x.Name)
	}
	return out
}

func prefixes(p BGPPlan) []string {
	var out []string
	for _, x := range p.Paths {
		if s := x.Prefix.String(); !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	return out
}

// TestPlanBGPResolvesOnePeerAddressPerNode: two peers with one address and
// port whose node selectors differ are valid (validity never depends on
// Node labels); a node that both select keeps the earlier one and says
// which it skipped, a node that one selects keeps that one.
func TestPlanBGPResolvesOnePeerAddressPerNode(t *testing.T) {
	at := func(sec int) metav1.Time { return metav1.NewTime(time.Date(2026, 1, 1, 0, 0, sec, 0, time.UTC)) }
	cfg := mustConfig(t, config.Objects{
		Peers: []lbv1.BGPPeer{
			{ObjectMeta: metav1.ObjectMeta{Name: "a-later", CreationTimestamp: at(2)}, Spec: lbv1.BGPPeerSpec{MyASN: 64500, PeerASN: 64501, PeerAddress: "203.0.113.1",
				NodeSelectors: []metav1.LabelSelector{{MatchLabels: map[string]string{"rack": "a"}}}}},
			{ObjectMeta: metav1.ObjectMeta{Name: "z-earlier", CreationTimestamp: at(1)}, Spec: lbv1.BGPPeerSpec{MyASN: 64500, PeerASN: 64501, PeerAddress: "203.0.113.1",
				NodeSelectors: []metav1.LabelSelector{{MatchLabels: map[string]string{"edge": "true"}}}}},
		},
	})
	nodes := []NodeState{{Name: "both", Labels: labels.Set{"rack": "a", "edge": "true"}}, {Name: "rack-a", Labels: labels.Set{"rack": "a"}}}
	both := BGP(cfg, nil, nodes, "both")
	if got := peerNames(both); !slices.Equal(got, []string{"z-earlier"}) {
		t.Errorf("node both configures %v, want only the earlier peer", got)
	}
	if why := both.Skipped["a-later"]; !strings.Contains(why, `"z-earlier"`) || !strings.Contains(why, "203.0.113.1") {
		t.Errorf("the skipped peer's reason %q does not name the earlier peer and the address", why)
	}
	rackA := BGP(cfg, nil, nodes, "rack-a")
	if got := peerNames(rackA); !slices.Equal(got, []string{"a-later"}) || len(rackA.Skipped) != 0 {
		t.Errorf("node rack-a configures %v (skipped %v), want a-later", got, rackA.Skipped)
	}
}

// TestPlanBGPOneSessionPerInterface: unnumbered peers are told apart by
// interface (they have no address): two on one interface that select one
// node leave the later out there; two on different interfaces both run.
func TestPlanBGPOneSessionPerInterface(t *testing.T) {
	at := func(sec int) metav1.Time { return metav1.NewTime(time.Date(2026, 1, 1, 0, 0, sec, 0, time.UTC)) }
	unnumbered := func(name, ifname string, sec int, sel map[string]string) lbv1.BGPPeer {
		return lbv1.BGPPeer{ObjectMeta: metav1.ObjectMeta{Name: name, CreationTimestamp: at(sec)}, Spec: lbv1.BGPPeerSpec{MyASN: 64500, PeerASN: 64501, Interface: ifname,
			NodeSelectors: []metav1.LabelSelector{{MatchLabels: sel}}}}
	}
	cfg := mustConfig(t, config.Objects{Peers: []lbv1.BGPPeer{
		unnumbered("a-later", "eth1", 2, map[string]string{"rack": "a"}),
		unnumbered("z-earlier", "eth1", 1, map[string]string{"edge": "true"}),
		unnumbered("other", "eth2", 3, map[string]string{"edge": "true"}),
	}})
	p := BGP(cfg, nil, []NodeState{{Name: "n", Labels: labels.Set{"rack": "a", "edge": "true"}}}, "n")
	if got := peerNames(p); !slices.Equal(got, []string{"z-earlier", "other"}) {
		t.Errorf("configures %v, want z-earlier and other (earliest first)", got)
	}
	if why := p.Skipped["a-later"]; !strings.Contains(why, `"z-earlier"`) || !strings.Contains(why, "interface (eth1)") {
		t.Errorf("the skipped peer's reason %q does not name the earlier peer and the interface", why)
	}
	for _, peer := range p.Peers {
		if peer.Address.IsValid() || peer.Interface == "" {
			t.Errorf("peer %s: address %v, interface %q; want the interface alone (the node finds the router)", peer.Name, peer.Address, peer.Interface)
		}
	}
}

// TestPlanBGPOneRouterIDPerNode: a node has one BGP identifier. A peer
// without routerID has no preference; of two that set different ones, a
// node selecting both keeps the earlier and skips the later, naming both.
func TestPlanBGPOneRouterIDPerNode(t *testing.T) {
	at := func(sec int) metav1.Time { return metav1.NewTime(time.Date(2026, 1, 1, 0, 0, sec, 0, time.UTC)) }
	rack := func(v string) []metav1.LabelSelector {
		return []metav1.LabelSelector{{MatchLabels: map[string]string{"rack": v}}}
	}
	cfg := mustConfig(t, config.Objects{
		Peers: []lbv1.BGPPeer{
			{ObjectMeta: metav1.ObjectMeta{Name: "plain", CreationTimestamp: at(0)}, Spec: lbv1.BGPPeerSpec{MyASN: 64500, PeerASN: 64501, PeerAddress: "203.0.113.1"}},
			{ObjectMeta: metav1.ObjectMeta{Name: "b-later", CreationTimestamp: at(2)}, Spec: lbv1.BGPPeerSpec{MyASN: 64500, PeerASN: 64501, PeerAddress: "203.0.113.2",
				RouterID: "10.0.0.2", NodeSelectors: rack("a")}},
			{ObjectMeta: metav1.ObjectMeta{Name: "z-earlier", CreationTimestamp: at(1)}, Spec: lbv1.BGPPeerSpec{MyASN: 64500, PeerASN: 64501, PeerAddress: "203.0.113.3",
				RouterID: "10.0.0.1", NodeSelectors: rack("b")}},
		},
	})
	self := netip.MustParseAddr("192.0.2.10")
	nodes := []NodeState{{Name: "none", Labels: labels.Set{}}, {Name: "a", Labels: labels.Set{"rack": "a"}}, {Name: "ab", Labels: labels.Set{"rack": "b"}}}
	// A node whose peers set nothing uses its own address.
	if p := BGP(cfg, nil, nodes, "none"); RouterID(p, self) != self || len(p.Skipped) != 0 {
		t.Errorf("node none: router ID %v, skipped %v; want %v and nothing skipped", RouterID(p, self), p.Skipped, self)
	}
	// A peer without routerID shares the node's one with a peer that sets it.
	if p := BGP(cfg, nil, nodes, "a"); RouterID(p, self) != netip.MustParseAddr("10.0.0.2") || !slices.Equal(peerNames(p), []string{"plain", "b-later"}) {
		t.Errorf("node a: router ID %v, peers %v", RouterID(p, self), peerNames(p))
	}
	// A node selected by both keeps the earlier.
	nodes[2].Labels = labels.Set{"rack": "b"}
	cfg.Peers["b-later"].NodeSelectors = cfg.Peers["z-earlier"].NodeSelectors
	p := BGP(cfg, nil, nodes, "ab")
	if RouterID(p, self) != netip.MustParseAddr("10.0.0.1") || slices.Contains(peerNames(p), "b-later") {
		t.Errorf("node ab: router ID %v, peers %v; want 10.0.0.1 without b-later", RouterID(p, self), peerNames(p))
	}
	if why := p.Skipped["b-later"]; !strings.Contains(why, `"z-earlier"`) || !strings.Contains(why, "10.0.0.2") || !strings.Contains(why, "10.0.0.1") {
		t.Errorf("skip reason %q does not name the earlier peer and both router IDs", why)
	}
}

// TestPlanBGPSelectedAggregateCoversNoOtherService: an advertisement with
// serviceSelectors announces its aggregate only while the aggregate holds
// no address of a Service it does not select; otherwise the selected
// Services get host routes, so the aggregate never draws the traffic of
// an unselected Service.
func TestPlanBGPSelectedAggregateCoversNoOtherService(t *testing.T) {
	cfg := mustConfig(t, config.Objects{
		Pools: []lbv1.IPAddressPool{{ObjectMeta: metav1.ObjectMeta{Name: "p"}, Spec: lbv1.IPAddressPoolSpec{Addresses: []lbv1.PoolAddress{"198.51.100.0/24"}}}},
		Peers: []lbv1.BGPPeer{{ObjectMeta: metav1.ObjectMeta{Name: "tor"}, Spec: lbv1.BGPPeerSpec{MyASN: 64500, PeerASN: 64501, PeerAddress: "203.0.113.1"}}},
		BGPAdvertisements: []lbv1.BGPAdvertisement{{ObjectMeta: metav1.ObjectMeta{Name: "public"}, Spec: lbv1.BGPAdvertisementSpec{
			IPAddressPools: []string{"p"}, AggregationLength: ptr.To[int32](28),
			ServiceSelectors: []metav1.LabelSelector{{MatchLabels: map[string]string{"expose": "public"}}}}}},
	})
	public := func(name, ip string) ServiceState {
		s := svc(name, ip)
		s.Labels = labels.Set{"expose": "public"}
		return s
	}
	nodes := []NodeState{{Name: "a"}}
	// 198.51.100.0/28 holds only selected Services; .16/28 also an
	// unselected one.
	services := []ServiceState{public("web", "198.51.100.1"), public("api", "198.51.100.2"), public("shop", "198.51.100.17"), svc("internal", "198.51.100.20")}
	got := prefixes(BGP(cfg, services, nodes, "a"))
	if want := []string{"198.51.100.0/28", "198.51.100.17/32"}; !slices.Equal(got, want) {
		t.Errorf("prefixes %v, want %v (the internal Service's /28 stays unannounced)", got, want)
	}
	// The unselected Service goes: the aggregate comes back.
	got = prefixes(BGP(cfg, services[:3], nodes, "a"))
	if want := []string{"198.51.100.0/28", "198.51.100.16/28"}; !slices.Equal(got, want) {
		t.Errorf("prefixes %v, want %v", got, want)
	}
}
