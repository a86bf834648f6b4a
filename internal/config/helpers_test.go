package config

import (
	"fmt"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	lbv1 "github.com/lbstack/lbstack/api/v1alpha1"
)

// Helpers that build lbstack objects for the tests. Each takes the few
// fields a test usually varies and, where useful, functions that change
// the spec further.

// stackName is the name of the LoadBalancerStack made by stack.
const stackName = "lbstack"

// t0 is when the stack made by stack was created.
var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func ptr[T any](v T) *T { return &v }

func dur(s string) *metav1.Duration {
	d, err := time.ParseDuration(s)
	if err != nil {
		panic(err)
	}
	return &metav1.Duration{Duration: d}
}

// with returns v changed by mods.
func with[T any](v T, mods ...func(*T)) T {
	for _, m := range mods {
		m(&v)
	}
	return v
}

func objectMeta(name string) metav1.ObjectMeta { return metav1.ObjectMeta{Name: name} }

func pool(name string, addrs ...string) lbv1.IPAddressPool {
	p := lbv1.IPAddressPool{ObjectMeta: objectMeta(name)}
	for _, a := range addrs {
		p.Spec.Addresses = append(p.Spec.Addresses, lbv1.PoolAddress(a))
	}
	return p
}

// allocPool is a pool of 192.0.2.0/24 with the allocation set by mod.
func allocPool(name string, mod func(*lbv1.ServiceAllocation)) lbv1.IPAddressPool {
	p := pool(name, "192.0.2.0/24")
	p.Spec.Allocation = &lbv1.ServiceAllocation{}
	mod(p.Spec.Allocation)
	return p
}

// peer is an eBGP peer (64500 to 64501) at addr.
func peer(name, addr string, mods ...func(*lbv1.BGPPeerSpec)) lbv1.BGPPeer {
	p := lbv1.BGPPeer{ObjectMeta: objectMeta(name), Spec: lbv1.BGPPeerSpec{MyASN: 64500, PeerASN: 64501, PeerAddress: addr}}
	for _, m := range mods {
		m(&p.Spec)
	}
	return p
}

// onInterface makes a peer unnumbered over ifname.
func onInterface(ifname string) func(*lbv1.BGPPeerSpec) {
	return func(s *lbv1.BGPPeerSpec) { s.Interface = ifname }
}

// ibgp makes a peer internal.
func ibgp(s *lbv1.BGPPeerSpec) { s.PeerASN = s.MyASN }

func bfd(name string, mods ...func(*lbv1.BFDProfileSpec)) lbv1.BFDProfile {
	p := lbv1.BFDProfile{ObjectMeta: objectMeta(name)}
	for _, m := range mods {
		m(&p.Spec)
	}
	return p
}

// community defines aliases given as name, value pairs.
func community(name string, nameValues ...string) lbv1.Community {
	if len(nameValues)%2 != 0 {
		panic("community: odd number of name, value arguments")
	}
	c := lbv1.Community{ObjectMeta: objectMeta(name)}
	for i := 0; i < len(nameValues); i += 2 {
		c.Spec.Communities = append(c.Spec.Communities, lbv1.CommunityAlias{Name: nameValues[i], Value: lbv1.CommunityValue(nameValues[i+1])})
	}
	return c
}

func l2Adv(name string, mods ...func(*lbv1.L2AdvertisementSpec)) lbv1.L2Advertisement {
	a := lbv1.L2Advertisement{ObjectMeta: objectMeta(name)}
	for _, m := range mods {
		m(&a.Spec)
	}
	return a
}

func bgpAdv(name string, mods ...func(*lbv1.BGPAdvertisementSpec)) lbv1.BGPAdvertisement {
	a := lbv1.BGPAdvertisement{ObjectMeta: objectMeta(name)}
	for _, m := range mods {
		m(&a.Spec)
	}
	return a
}

// Common BGPAdvertisement changes.
func advPools(names ...string) func(*lbv1.BGPAdvertisementSpec) {
	return func(s *lbv1.BGPAdvertisementSpec) { s.IPAddressPools = names }
}
func advPeers(names ...string) func(*lbv1.BGPAdvertisementSpec) {
	return func(s *lbv1.BGPAdvertisementSpec) { s.Peers = names }
}
func localPref(v int64) func(*lbv1.BGPAdvertisementSpec) {
	return func(s *lbv1.BGPAdvertisementSpec) { s.LocalPref = &v }
}
func aggLen(v4, v6 int32) func(*lbv1.BGPAdvertisementSpec) {
	return func(s *lbv1.BGPAdvertisementSpec) {
		if v4 >= 0 {
			s.AggregationLength = &v4
		}
		if v6 >= 0 {
			s.AggregationLengthV6 = &v6
		}
	}
}
func communities(refs ...string) func(*lbv1.BGPAdvertisementSpec) {
	return func(s *lbv1.BGPAdvertisementSpec) {
		for _, r := range refs {
			s.Communities = append(s.Communities, lbv1.CommunityRef(r))
		}
	}
}

// stack is the LoadBalancerStack "lbstack", created at t0.
func stack(mods ...func(*lbv1.LoadBalancerStackSpec)) lbv1.LoadBalancerStack {
	return stackAt(stackName, t0, mods...)
}

// stackAt is a LoadBalancerStack created at created (zero: being created now).
func stackAt(name string, created time.Time, mods ...func(*lbv1.LoadBalancerStackSpec)) lbv1.LoadBalancerStack {
	s := lbv1.LoadBalancerStack{ObjectMeta: metav1.ObjectMeta{Name: name, UID: types.UID("uid-" + name)}}
	if !created.IsZero() {
		s.CreationTimestamp = metav1.NewTime(created)
	}
	for _, m := range mods {
		m(&s.Spec)
	}
	return s
}

// Inline turns standalone objects into the inline items of a stack.
func inlineMeta(m metav1.ObjectMeta) lbv1.InlineMeta {
	return lbv1.InlineMeta{Name: m.Name, Labels: m.Labels}
}
func inPools(ps ...lbv1.IPAddressPool) func(*lbv1.LoadBalancerStackSpec) {
	return func(s *lbv1.LoadBalancerStackSpec) {
		for _, p := range ps {
			s.Pools = append(s.Pools, lbv1.InlineIPAddressPool{InlineMeta: inlineMeta(p.ObjectMeta), IPAddressPoolSpec: p.Spec})
		}
	}
}
func inPeers(ps ...lbv1.BGPPeer) func(*lbv1.LoadBalancerStackSpec) {
	return func(s *lbv1.LoadBalancerStackSpec) {
		for _, p := range ps {
			s.BGPPeers = append(s.BGPPeers, lbv1.InlineBGPPeer{InlineMeta: inlineMeta(p.ObjectMeta), BGPPeerSpec: p.Spec})
		}
	}
}
func inBFDs(ps ...lbv1.BFDProfile) func(*lbv1.LoadBalancerStackSpec) {
	return func(s *lbv1.LoadBalancerStackSpec) {
		for _, p := range ps {
			s.BFDProfiles = append(s.BFDProfiles, lbv1.InlineBFDProfile{InlineMeta: inlineMeta(p.ObjectMeta), BFDProfileSpec: p.Spec})
		}
	}
}
func inCommunities(cs ...lbv1.Community) func(*lbv1.LoadBalancerStackSpec) {
	return func(s *lbv1.LoadBalancerStackSpec) {
		for _, c := range cs {
			s.Communities = append(s.Communities, lbv1.InlineCommunity{InlineMeta: inlineMeta(c.ObjectMeta), CommunitySpec: c.Spec})
		}
	}
}
func inL2Advs(as ...lbv1.L2Advertisement) func(*lbv1.LoadBalancerStackSpec) {
	return func(s *lbv1.LoadBalancerStackSpec) {
		for _, a := range as {
			s.L2Advertisements = append(s.L2Advertisements, lbv1.InlineL2Advertisement{InlineMeta: inlineMeta(a.ObjectMeta), L2AdvertisementSpec: a.Spec})
		}
	}
}
func inBGPAdvs(as ...lbv1.BGPAdvertisement) func(*lbv1.LoadBalancerStackSpec) {
	return func(s *lbv1.LoadBalancerStackSpec) {
		for _, a := range as {
			s.BGPAdvertisements = append(s.BGPAdvertisements, lbv1.InlineBGPAdvertisement{InlineMeta: inlineMeta(a.ObjectMeta), BGPAdvertisementSpec: a.Spec})
		}
	}
}

// ownerRefs makes an object a rendered child of a stack (controller true)
// or merely owned by it.
func ownerRefs(apiVersion, stack string, controller bool) []metav1.OwnerReference {
	return []metav1.OwnerReference{{APIVersion: apiVersion, Kind: "LoadBalancerStack", Name: stack, UID: types.UID("uid-" + stack), Controller: &controller}}
}

// kv makes a map from key, value pairs.
func kv(pairs ...string) map[string]string {
	if len(pairs)%2 != 0 {
		panic("kv: odd number of arguments")
	}
	m := map[string]string{}
	for i := 0; i < len(pairs); i += 2 {
		m[pairs[i]] = pairs[i+1]
	}
	return m
}

// labeled sets a pool's labels from key, value pairs.
func labeled(p lbv1.IPAddressPool, pairs ...string) lbv1.IPAddressPool {
	p.Labels = kv(pairs...)
	return p
}

// created sets an object's creation time to second sec of a fixed day.
func created[T any, P interface {
	*T
	SetCreationTimestamp(metav1.Time)
}](o T, sec int) T {
	P(&o).SetCreationTimestamp(metav1.NewTime(time.Date(2026, 1, 1, 0, 0, sec, 0, time.UTC)))
	return o
}

// sel is a selector matching labels given as key, value pairs.
func sel(pairs ...string) metav1.LabelSelector {
	return metav1.LabelSelector{MatchLabels: kv(pairs...)}
}

// Invalid selectors.
var (
	selInNoValues  = metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "tier", Operator: metav1.LabelSelectorOpIn}}}
	selBadOperator = metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "tier", Operator: "Equals", Values: []string{"web"}}}}
	selBadKey      = metav1.LabelSelector{MatchLabels: map[string]string{"bad key!": "x"}}
)

// objects sorts lbstack objects into an Objects.
func objects(items ...any) Objects {
	var o Objects
	for _, it := range items {
		switch it := it.(type) {
		case lbv1.LoadBalancerStack:
			o.Stacks = append(o.Stacks, it)
		case lbv1.IPAddressPool:
			o.Pools = append(o.Pools, it)
		case lbv1.L2Advertisement:
			o.L2Advertisements = append(o.L2Advertisements, it)
		case lbv1.BGPAdvertisement:
			o.BGPAdvertisements = append(o.BGPAdvertisements, it)
		case lbv1.BGPPeer:
			o.Peers = append(o.Peers, it)
		case lbv1.BFDProfile:
			o.BFDProfiles = append(o.BFDProfiles, it)
		case lbv1.Community:
			o.Communities = append(o.Communities, it)
		default:
			panic(fmt.Sprintf("objects: unexpected %T", it))
		}
	}
	return o
}

// stackCreated is the creation time of the stack stack() returns.
var stackCreated = metav1.NewTime(t0)
