package migrate

import (
	"fmt"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/utils/ptr"

	lbv1 "github.com/lbstack/lbstack/api/v1alpha1"
)

// legacy converts one legacy configuration (MetalLB v0.12 and earlier):
// every layer2 pool gets an L2Advertisement of its own, every bgp pool one
// BGPAdvertisement per entry of its bgp-advertisements (or the default
// one), announced to every peer from every node, as MetalLB did.
func (c *converter) legacy(l legacyInput) {
	at := func(format string, args ...any) src {
		return src{where: l.where + " " + fmt.Sprintf(format, args...), legacy: true}
	}
	cfg := l.cfg

	bfdNames := map[string]string{}
	for i, b := range cfg.BFDProfiles {
		s := at("bfd-profiles[%d]", i)
		name := c.legacyName(s, b.Name, fmt.Sprintf("bfd-profile-%d", i), "")
		if !c.claim(kindBFD, name, s) {
			continue
		}
		bfdNames[b.Name] = name
		in := bfdInput{receive: b.ReceiveInterval, transmit: b.TransmitInterval, multiplier: b.DetectMultiplier,
			echoInterval: b.EchoInterval, minimumTTL: b.MinimumTTL}
		if b.EchoMode {
			in.echoMode = ptr.To(true)
		}
		if b.PassiveMode {
			in.passiveMode = ptr.To(true)
		}
		c.bfdProfile(s, name, nil, in)
	}

	aliases := map[string]aliasEntry{}
	if len(cfg.BGPCommunities) > 0 {
		s := src{where: l.where + " bgp-communities", legacy: true}
		name := c.unique(kindCommunity, "communities", s)
		order := sortedKeys(cfg.BGPCommunities)
		item := lbv1.InlineCommunity{InlineMeta: lbv1.InlineMeta{Name: name}}
		c.aliases(s, order, cfg.BGPCommunities, aliases, &item, len(c.comms) >= maxInlineCommunity, func(j int) string { return order[j] })
		if len(item.Communities) > 0 {
			c.comms = append(c.comms, entry[lbv1.InlineCommunity]{item: item, src: s})
		}
	}

	ibgp := false
	for i, p := range cfg.Peers {
		s := at("peers[%d]", i)
		name := c.unique(kindPeer, fmt.Sprintf("peer%d", i+1), s)
		spec := bgpPeerSpec{
			MyASN:         p.MyASN,
			PeerASN:       p.PeerASN,
			PeerAddress:   p.PeerAddress,
			SourceAddress: p.SourceAddress,
			PeerPort:      p.PeerPort,
			RouterID:      p.RouterID,
			NodeSelectors: legacySelectors(p.NodeSelectors),
			Password:      p.Password,
			BFDProfile:    p.BFDProfile,
			EBGPMultiHop:  p.EBGPMultiHop,
		}
		if n, ok := bfdNames[p.BFDProfile]; ok {
			spec.BFDProfile = n
		}
		spec.HoldTime = c.legacyDuration(s, "holdTime", p.HoldTime)
		spec.KeepaliveTime = c.legacyDuration(s, "keepaliveTime", p.KeepaliveTime)
		ibgp = ibgp || p.MyASN == p.PeerASN
		c.convertPeer(s, name, nil, peerInput{spec: spec, secretNamespace: c.opts.MetalLBNamespace})
	}

	for i, p := range cfg.Pools {
		s := at("address-pools[%d]", i)
		name := c.legacyName(s, p.Name, fmt.Sprintf("pool-%d", i), "; Services that request the pool by name (annotation metallb.universe.tf/address-pool) must name the new one, or they get an address from another pool")
		if !c.claim(kindPool, name, s) {
			continue
		}
		addrs := append([]string(nil), p.Addresses...)
		if len(p.CIDR) > 0 {
			addrs = append(addrs, p.CIDR...)
			c.add(s, "cidr", SeverityNote, "the spelling of MetalLB before v0.5 (gone in v0.6); read as addresses")
		}
		if p.ARPNetwork != "" {
			c.add(s, "arp-network", SeverityDropped, "MetalLB stopped reading it in v0.6 (layer 2 answers for the pool's addresses on every interface); lbstack has no equivalent")
		}
		c.pool(s, name, nil, ipAddressPoolSpec{Addresses: addrs, AutoAssign: p.AutoAssign, AvoidBuggyIPs: p.AvoidBuggyIPs})
		switch proto := strings.ToLower(p.Protocol); proto {
		case "layer2", "arp", "ndp":
			if proto != "layer2" {
				c.add(s, "protocol", SeverityNote, "%q is the layer 2 protocol of MetalLB before v0.5; converted as layer2", p.Protocol)
			}
			if len(p.BGPAdvertisements) > 0 {
				c.add(s, "bgp-advertisements", SeverityDropped, "a layer2 pool takes no bgp-advertisements (MetalLB refuses them); they are not converted")
			}
			adv := c.unique(kindL2, derivedName(name, "-l2"), s)
			c.l2Advertisement(s, adv, nil, l2AdvertisementSpec{IPAddressPools: []string{name}})
		case "bgp":
			advs := p.BGPAdvertisements
			if len(advs) == 0 {
				advs = []legacyBGPAdvertisement{{}} // MetalLB's default advertisement
			}
			for j, a := range advs {
				as := at("address-pools[%d].bgp-advertisements[%d]", i, j)
				if len(p.BGPAdvertisements) == 0 {
					as = s
				}
				adv := c.unique(kindBGP, derivedName(name, fmt.Sprintf("-bgp-%d", j)), as)
				if a.LocalPref == nil && ibgp {
					field := "localPref"
					if len(p.BGPAdvertisements) == 0 {
						field = "bgp-advertisements"
					}
					c.add(as, field, SeverityNote, "MetalLB's native BGP mode (the default before v0.13) sent LOCAL_PREF 0 to iBGP peers when localpref was unset; lbstack sends its library's default, 100. Set localPref: 0 on BGPAdvertisement %s if the routers must keep preferring other paths", adv)
				}
				c.bgpAdvertisement(as, adv, nil, bgpAdvertisementSpec{
					AggregationLength:   a.AggregationLength,
					AggregationLengthV6: a.AggregationLengthV6,
					Communities:         a.Communities,
					IPAddressPools:      []string{name},
				}, a.LocalPref, aliases)
			}
		default:
			why := fmt.Sprintf("%q is not a protocol MetalLB knows", p.Protocol)
			if p.Protocol == "" {
				why = "the pool has no protocol"
			}
			c.add(s, "protocol", SeverityDropped, "%s (MetalLB refuses the configuration); the pool is converted without an advertisement: add an L2Advertisement or BGPAdvertisement for it", why)
		}
	}
}

// legacyName returns name when it is a valid object name, else a
// rewritten one with a finding (hint is added to its message).
func (c *converter) legacyName(s src, name, fallback, hint string) string {
	if len(validation.IsDNS1123Subdomain(name)) == 0 {
		return name
	}
	n := sanitizeName(name)
	if n == "" {
		n = fallback
	}
	c.add(s, "name", SeverityChanged, "%q is not a valid Kubernetes object name (lower-case letters, digits, '-' and '.'); written as %q%s", name, n, hint)
	return n
}

// sanitizeName makes s a DNS-1123 subdomain as MetalLB's configmaptocrs
// does: lower case, '_' and other characters as '-', trimmed.
func sanitizeName(s string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(s) {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9', r == '-', r == '.':
			b.WriteRune(r)
		default:
			b.WriteByte('-')
		}
	}
	n := b.String()
	for strings.Contains(n, "--") {
		n = strings.ReplaceAll(n, "--", "-")
	}
	for strings.Contains(n, "..") || strings.Contains(n, ".-") || strings.Contains(n, "-.") {
		n = strings.NewReplacer("..", ".", ".-", ".", "-.", ".").Replace(n)
	}
	if len(n) > validation.DNS1123SubdomainMaxLength-16 {
		n = n[:validation.DNS1123SubdomainMaxLength-16]
	}
	return strings.Trim(n, "-.")
}

// derivedName is base+suffix, base shortened to keep the result a valid
// name.
func derivedName(base, suffix string) string {
	if over := len(base) + len(suffix) - validation.DNS1123SubdomainMaxLength; over > 0 {
		base = strings.TrimRight(base[:len(base)-over], "-.")
	}
	return base + suffix
}

// legacyDuration converts a legacy hold-time or keepalive-time.
func (c *converter) legacyDuration(s src, field string, d legacyDuration) *metav1.Duration {
	if !d.Set {
		return nil
	}
	if d.Bare {
		c.add(s, field, SeverityChanged, "%s has no unit, which MetalLB refuses (it reads Go durations such as 90s); read as %s", d.Raw, d.D)
	}
	return &metav1.Duration{Duration: d.D}
}
