package config

import (
	"fmt"
	"math"
	"net/netip"
	"sort"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/validation/field"

	lbv1 "github.com/lbstack/lbstack/api/v1alpha1"
)

// poolRange is one parsed address of a pool, for the overlap sweep.
type poolRange struct {
	r    Range
	path *field.Path
	pool string
}

func (b *builder) pool(it item[lbv1.IPAddressPoolSpec]) {
	s := it.spec
	p := &Pool{
		Name:          it.name,
		Source:        it.src,
		Labels:        labels.Set(it.labels),
		AutoAssign:    boolOr(s.AutoAssign, true),
		AvoidBuggyIPs: s.AvoidBuggyIPs,
	}
	if len(s.Addresses) == 0 {
		b.errs = append(b.errs, field.Required(it.path.Child("addresses"), "a pool needs at least one CIDR or range"))
	}
	for i, a := range s.Addresses {
		r, err := ParseRange(string(a))
		if err != nil {
			b.errs = append(b.errs, field.Invalid(it.path.Child("addresses").Index(i), string(a), err.Error()))
			continue
		}
		p.Ranges = append(p.Ranges, r)
		b.ranges = append(b.ranges, poolRange{r: r, pool: it.name, path: it.path.Child("addresses").Index(i)})
	}
	if al := s.Allocation; al != nil {
		ap := it.path.Child("allocation")
		if al.Priority != nil && *al.Priority < 0 {
			b.errs = append(b.errs, field.Invalid(ap.Child("priority"), *al.Priority, "must be 0 or more; lower numbers are tried first"))
		}
		p.Priority = al.Priority
		for i, ns := range al.Namespaces {
			for _, msg := range dnsLabelErrors(ns) {
				b.errs = append(b.errs, field.Invalid(ap.Child("namespaces").Index(i), ns, "not a namespace name: "+msg))
			}
		}
		p.Namespaces = al.Namespaces
		p.NamespaceSelectors = b.selectors(ap.Child("namespaceSelectors"), al.NamespaceSelectors)
		p.ServiceSelectors = b.selectors(ap.Child("serviceSelectors"), al.ServiceSelectors)
	}
	b.cfg.Pools[p.Name] = p
}

// poolOverlaps reports every address range that overlaps an earlier one,
// in the same pool or in another, in either family.
func (b *builder) poolOverlaps() {
	rs := b.ranges
	sort.SliceStable(rs, func(i, j int) bool {
		if rs[i].r.Is4() != rs[j].r.Is4() {
			return rs[i].r.Is4()
		}
		if rs[i].r.First != rs[j].r.First {
			return rs[i].r.First.Less(rs[j].r.First)
		}
		return rs[i].path.String() < rs[j].path.String()
	})
	for i := 1; i < len(rs); i++ {
		// The range reaching furthest among the earlier ones is the one
		// a later range can overlap; check against every earlier range
		// that still reaches it, to name each overlap.
		for j := i - 1; j >= 0; j-- {
			if rs[j].r.Is4() != rs[i].r.Is4() {
				break
			}
			if rs[j].r.Overlaps(rs[i].r) {
				if rs[j].pool == rs[i].pool {
					b.errs = append(b.errs, field.Invalid(rs[i].path, rs[i].r.String(),
						fmt.Sprintf("overlaps another address of the same pool at %s (%s); a pool's addresses must not overlap", rs[j].path, rs[j].r)))
					break
				}
				// Blame the later pool: at run time it is the one ignored.
				later, earlier := rs[i], rs[j]
				pl, pe := b.cfg.Pools[later.pool], b.cfg.Pools[earlier.pool]
				if Before(pl.Source, pl.Name, pe.Source, pe.Name) {
					later, earlier = earlier, later
				}
				b.conflict(refOf("IPAddressPool", later.pool, b.cfg.Pools[later.pool].Source), field.Invalid(later.path, later.r.String(),
					fmt.Sprintf("overlaps IPAddressPool %q at %s (%s); pools must not share addresses", earlier.pool, earlier.path, earlier.r)))
				break
			}
		}
	}
}

func (b *builder) bfdProfile(it item[lbv1.BFDProfileSpec]) {
	s := it.spec
	p := &BFDProfile{
		Name:             it.name,
		ReceiveInterval:  ms(s.ReceiveInterval, DefaultBFDInterval),
		TransmitInterval: ms(s.TransmitInterval, DefaultBFDInterval),
		PassiveMode:      boolOr(s.PassiveMode, false),
		DetectMultiplier: DefaultDetectMultiplier,
		MinimumTTL:       DefaultMinimumTTL,
	}
	interval := func(name string, v *int32) {
		if v != nil && (*v < 10 || *v > 60000) {
			b.errs = append(b.errs, field.Invalid(it.path.Child(name), *v, "must be between 10 and 60000 milliseconds"))
		}
	}
	interval("receiveInterval", s.ReceiveInterval)
	interval("transmitInterval", s.TransmitInterval)
	// The echo function is not implemented: refused rather than ignored.
	if boolOr(s.EchoMode, false) {
		b.errs = append(b.errs, field.Invalid(it.path.Child("echoMode"), true, "BFD echo is not supported: lbstack runs BFD in asynchronous mode only (control packets at transmitInterval detect a failure); remove echoMode or set it to false"))
	}
	if s.EchoInterval != nil {
		b.errs = append(b.errs, field.Invalid(it.path.Child("echoInterval"), *s.EchoInterval, "echoInterval needs echoMode, which is not supported; remove echoInterval"))
	}
	if m := s.DetectMultiplier; m != nil {
		if *m < 2 || *m > 255 {
			b.errs = append(b.errs, field.Invalid(it.path.Child("detectMultiplier"), *m, "must be between 2 and 255"))
		} else {
			p.DetectMultiplier = uint8(*m)
		}
	}
	if a := s.Authentication; a != nil {
		path := it.path.Child("authentication")
		p.Auth = &BFDAuth{Type: a.Type, KeyID: 1, KeySecret: a.KeySecret}
		switch a.Type {
		case lbv1.BFDAuthKeyedMD5, lbv1.BFDAuthMeticulousKeyedMD5, lbv1.BFDAuthKeyedSHA1, lbv1.BFDAuthMeticulousKeyedSHA1:
		default:
			b.errs = append(b.errs, field.NotSupported(path.Child("type"), a.Type, []string{string(lbv1.BFDAuthKeyedMD5), string(lbv1.BFDAuthMeticulousKeyedMD5), string(lbv1.BFDAuthKeyedSHA1), string(lbv1.BFDAuthMeticulousKeyedSHA1)}))
		}
		if id := a.KeyID; id != nil {
			if *id < 0 || *id > 255 {
				b.errs = append(b.errs, field.Invalid(path.Child("keyID"), *id, "must be between 0 and 255"))
			} else {
				p.Auth.KeyID = uint8(*id)
			}
		}
		if a.KeySecret.Name == "" {
			b.errs = append(b.errs, field.Required(path.Child("keySecret", "name"), "the Secret holding the key"))
		}
	}
	if t := s.MinimumTTL; t != nil {
		if *t < 1 || *t > 254 {
			b.errs = append(b.errs, field.Invalid(it.path.Child("minimumTtl"), *t, "must be between 1 and 254"))
		} else {
			p.MinimumTTL = uint8(*t)
		}
	}
	b.cfg.BFDProfiles[p.Name] = p
}

func (b *builder) communities(items []item[lbv1.CommunitySpec]) {
	type definition struct {
		path *field.Path
		it   item[lbv1.CommunitySpec]
	}
	defined := map[string]definition{}
	for _, it := range items {
		for i, a := range it.spec.Communities {
			p := it.path.Child("communities").Index(i)
			if a.Name == "" || strings.Contains(a.Name, ":") {
				b.errs = append(b.errs, field.Invalid(p.Child("name"), a.Name, "an alias name must be non-empty and must not contain ':'"))
				continue
			}
			if prev, dup := defined[a.Name]; dup {
				// Blame the later definition: at run time it is ignored.
				if prev.it.name == it.name || !Before(it.src, it.name, prev.it.src, prev.it.name) {
					b.conflict(refOf("Community", it.name, it.src), duplicate(p.Child("name"), a.Name,
						fmt.Sprintf("already defined at %s; an alias name must be unique across all Community objects", prev.path)))
					continue
				}
				b.conflict(refOf("Community", prev.it.name, prev.it.src), duplicate(prev.path.Child("name"), a.Name,
					fmt.Sprintf("already defined at %s; an alias name must be unique across all Community objects", p)))
				delete(b.cfg.CommunityAliases, a.Name)
				delete(b.badAliases, a.Name)
			}
			defined[a.Name] = definition{path: p, it: it}
			c, err := ParseCommunity(string(a.Value))
			if err != nil {
				b.errs = append(b.errs, field.Invalid(p.Child("value"), string(a.Value), err.Error()))
				// Advertisements using the alias are not blamed for its value.
				b.badAliases[a.Name] = true
				continue
			}
			b.cfg.CommunityAliases[a.Name] = c
		}
	}
}

type peerKey struct {
	addr netip.Addr
	// iface is the interface of an unnumbered peer (addr is then invalid).
	iface string
	port  uint16
}

// interfaceNameProblem says what makes name no Linux interface name, ""
// when nothing does.
func interfaceNameProblem(name string) string {
	switch {
	case len(name) > 15:
		return "must be at most 15 characters (a Linux interface name)"
	case name == "." || name == "..":
		return "is not an interface name"
	case strings.ContainsAny(name, "/ \t\n\x00"):
		return "must not contain '/' or white space (a Linux interface name)"
	}
	return ""
}

func (b *builder) peer(it item[lbv1.BGPPeerSpec]) {
	s, path := it.spec, it.path
	p := &Peer{Name: it.name, Source: it.src, Port: DefaultPeerPort, PasswordSecret: s.PasswordSecret, BFDProfile: s.BFDProfile}
	asn := func(name string, v int64) uint32 {
		if v < 1 || v > math.MaxUint32 {
			b.errs = append(b.errs, field.Invalid(path.Child(name), v, "must be an AS number between 1 and 4294967295"))
			return 0
		}
		return uint32(v)
	}
	p.MyASN = asn("myASN", s.MyASN)
	switch {
	case s.DynamicASN != "" && s.PeerASN != 0:
		b.errs = append(b.errs, field.Invalid(path.Child("dynamicASN"), s.DynamicASN, "set exactly one of peerASN and dynamicASN"))
	case s.DynamicASN == lbv1.DynamicASNInternal || s.DynamicASN == lbv1.DynamicASNExternal:
		p.DynamicASN = s.DynamicASN
	case s.DynamicASN != "":
		b.errs = append(b.errs, field.NotSupported(path.Child("dynamicASN"), s.DynamicASN, []string{string(lbv1.DynamicASNInternal), string(lbv1.DynamicASNExternal)}))
	case s.PeerASN == 0:
		b.errs = append(b.errs, field.Required(path.Child("peerASN"), "the router's AS number, or dynamicASN: internal or external"))
	default:
		p.PeerASN = asn("peerASN", s.PeerASN)
	}
	switch {
	case s.Interface != "" && s.PeerAddress != "":
		b.errs = append(b.errs, field.Invalid(path.Child("interface"), s.Interface, "set exactly one of peerAddress and interface"))
	case s.Interface != "":
		if why := interfaceNameProblem(s.Interface); why != "" {
			b.errs = append(b.errs, field.Invalid(path.Child("interface"), s.Interface, why))
		}
		p.Interface = s.Interface
		// What the unnumbered session cannot honour is refused, not
		// dropped on the node.
		for _, f := range []struct {
			name string
			set  bool
			why  string
		}{
			{"passwordSecret", s.PasswordSecret != nil, "the BGP library cannot key TCP MD5 to a link-local address"},
			{"bfdProfile", s.BFDProfile != "", "BFD over a link-local session is not supported yet"},
			{"sourceAddress", s.SourceAddress != "", "the session runs from the interface's link-local address"},
			{"ebgpMultiHop", boolOr(s.EBGPMultiHop, false), "the router is on the interface's link"},
		} {
			if f.set {
				b.errs = append(b.errs, field.Forbidden(path.Child(f.name), "not with interface (an unnumbered session): "+f.why))
			}
		}
	default:
		if a, err := ParseIP(s.PeerAddress); err != nil {
			b.errs = append(b.errs, field.Invalid(path.Child("peerAddress"), s.PeerAddress, addrProblem(s.PeerAddress, "an IPv4 or IPv6 address, or set interface instead for an unnumbered session")))
		} else {
			p.Address = a
		}
	}
	// A peer whose port or node selectors are invalid would clash on a
	// guessed port or on every node: it is left out of the clash check.
	clashCheck := true
	if s.PeerPort != 0 {
		if s.PeerPort < 1 || s.PeerPort > 65535 {
			b.errs = append(b.errs, field.Invalid(path.Child("peerPort"), s.PeerPort, "must be a TCP port between 1 and 65535"))
			clashCheck = false
		} else {
			p.Port = uint16(s.PeerPort)
		}
	}
	if s.SourceAddress != "" {
		if a, err := ParseIP(s.SourceAddress); err != nil {
			b.errs = append(b.errs, field.Invalid(path.Child("sourceAddress"), s.SourceAddress, addrProblem(s.SourceAddress, "an IPv4 or IPv6 address")))
		} else {
			p.SourceAddress = a
		}
	}
	if s.RouterID != "" {
		if a, err := ParseIP(s.RouterID); err != nil || !a.Is4() {
			b.errs = append(b.errs, field.Invalid(path.Child("routerID"), s.RouterID, addrProblem(s.RouterID, "an IPv4 address")))
		} else {
			p.RouterID = a
		}
	}
	// BGP carries its timers in whole seconds (RFC 4271): a fraction
	// cannot be honoured, so it is refused here rather than on the node.
	for _, t := range []struct {
		name string
		v    *metav1.Duration
	}{{"holdTime", s.HoldTime}, {"keepaliveTime", s.KeepaliveTime}, {"connectTime", s.ConnectTime}} {
		if t.v != nil && t.v.Duration%time.Second != 0 {
			b.errs = append(b.errs, field.Invalid(path.Child(t.name), t.v.Duration.String(), "must be a whole number of seconds: BGP carries its timers in seconds"))
		}
	}
	p.HoldTime = duration(s.HoldTime, DefaultHoldTime)
	if s.HoldTime != nil && p.HoldTime != 0 && (p.HoldTime < 3*time.Second || p.HoldTime > 65535*time.Second) {
		b.errs = append(b.errs, field.Invalid(path.Child("holdTime"), s.HoldTime.Duration.String(), "must be 0s or between 3s and 65535s (RFC 4271)"))
	}
	p.KeepaliveTime = duration(s.KeepaliveTime, p.HoldTime/3)
	if s.KeepaliveTime != nil {
		switch {
		case p.KeepaliveTime < 0:
			b.errs = append(b.errs, field.Invalid(path.Child("keepaliveTime"), p.KeepaliveTime.String(), "must not be negative"))
		case p.HoldTime == 0 && p.KeepaliveTime != 0:
			b.errs = append(b.errs, field.Invalid(path.Child("keepaliveTime"), p.KeepaliveTime.String(), "must be 0s when holdTime is 0s"))
		case p.HoldTime != 0 && p.KeepaliveTime >= p.HoldTime:
			b.errs = append(b.errs, field.Invalid(path.Child("keepaliveTime"), p.KeepaliveTime.String(), fmt.Sprintf("must be shorter than holdTime (%s)", p.HoldTime)))
		}
	}
	p.ConnectTime = duration(s.ConnectTime, DefaultConnectTime)
	if p.ConnectTime < time.Second || p.ConnectTime > 65535*time.Second {
		b.errs = append(b.errs, field.Invalid(path.Child("connectTime"), p.ConnectTime.String(), "must be between 1s and 65535s"))
	}
	p.EBGPMultiHop = boolOr(s.EBGPMultiHop, false)
	if p.EBGPMultiHop && p.IBGP() && (p.DynamicASN != "" || p.PeerASN != 0) {
		why := "myASN equals peerASN"
		if p.DynamicASN != "" {
			why = "dynamicASN is internal"
		}
		b.errs = append(b.errs, field.Invalid(path.Child("ebgpMultiHop"), true, "applies only to eBGP sessions; "+why+", so this is iBGP"))
	}
	if ps := s.PasswordSecret; ps != nil && ps.Name == "" {
		b.errs = append(b.errs, field.Required(path.Child("passwordSecret", "name"), "the Secret holding the password"))
	}
	if s.BFDProfile != "" {
		if _, ok := b.cfg.BFDProfiles[s.BFDProfile]; !ok {
			e := field.NotFound(path.Child("bfdProfile"), s.BFDProfile)
			e.Detail = "no BFDProfile has this name; create it, or leave bfdProfile empty for no BFD"
			b.errs = append(b.errs, e)
		}
	}
	p.GracefulRestart = boolOr(s.EnableGracefulRestart, false)
	p.DualStackAddressFamily = boolOr(s.DualStackAddressFamily, false)
	var selOK bool
	p.NodeSelectors, selOK = b.selectorsOK(path.Child("nodeSelectors"), s.NodeSelectors)
	b.cfg.Peers[p.Name] = p
	if clashCheck && selOK {
		b.peerPaths = append(b.peerPaths, peerPath{peer: p, path: path})
	}
}

// addrProblem says why s, which ParseIP refused or which is of the wrong
// family, is not what, without repeating s (the error shows it already).
func addrProblem(s, what string) string {
	a, err := netip.ParseAddr(s)
	switch {
	case err != nil:
		return "must be " + what
	case a.Zone() != "":
		return "must be " + what + " without a zone"
	case a.Is4In6():
		return "IPv4-mapped IPv6 addresses are not allowed; write the IPv4 address"
	}
	return "must be " + what
}

type peerPath struct {
	peer *Peer
	path *field.Path
}

// peerConflicts refuses two peers with the same address and port whose
// node sets overlap whatever the Node labels: one node would open two
// sessions to one router port. Two peers with one address on different
// ports are valid (as in MetalLB), but the speaker keys its sessions by
// address: a node that selects both keeps the earlier one, and a warning
// says so.
func (b *builder) peerConflicts() {
	// Keys in the order peers were built (name order), so the errors come
	// out in the same order every time.
	var keys []peerKey
	byKey := map[peerKey][]peerPath{}
	for _, pp := range b.peerPaths {
		if pp.peer.Address.IsValid() || pp.peer.Interface != "" {
			k := peerKey{pp.peer.Address, pp.peer.Interface, pp.peer.Port}
			if k.iface != "" {
				k.port = 0 // one session per interface, whatever the port
			}
			if _, ok := byKey[k]; !ok {
				keys = append(keys, k)
			}
			byKey[k] = append(byKey[k], pp)
		}
	}
	b.samePeerAddressWarnings(keys, byKey)
	for _, k := range keys {
		list := byKey[k]
		for i := 1; i < len(list); i++ {
			for j := 0; j < i; j++ {
				where, ok := nodesOverlap(list[i].peer.NodeSelectors, list[j].peer.NodeSelectors)
				if !ok {
					continue
				}
				later, earlier := list[i], list[j]
				if Before(later.peer.Source, later.peer.Name, earlier.peer.Source, earlier.peer.Name) {
					later, earlier = earlier, later
				}
				if k.iface != "" {
					b.conflict(refOf("BGPPeer", later.peer.Name, later.peer.Source), duplicate(later.path.Child("interface"), k.iface,
						fmt.Sprintf("BGPPeer %q (%s) peers over the same interface, and %s would open both sessions; one node holds one unnumbered session per interface", earlier.peer.Name, earlier.path, where)))
					break
				}
				b.conflict(refOf("BGPPeer", later.peer.Name, later.peer.Source), duplicate(later.path.Child("peerAddress"), k.addr.String(),
					fmt.Sprintf("BGPPeer %q (%s) has the same address and port %d, and %s would open both sessions; one node cannot hold two sessions to one router address and port", earlier.peer.Name, earlier.path, k.port, where)))
				break
			}
		}
	}
}

// routerIDConflicts handles peers that set different routerIDs: a node has
// one BGP identifier for all its sessions (one BGP speaker per node). When
// both peers select a common node whatever the labels, the later one is
// refused; otherwise a warning says that a node selected by both
// configures only the earlier one (speaker/plan does so). A peer without
// routerID has no preference and never clashes.
func (b *builder) routerIDConflicts() {
	for i, pp := range b.peerPaths {
		if !pp.peer.RouterID.IsValid() {
			continue
		}
		for _, qq := range b.peerPaths[:i] {
			if !qq.peer.RouterID.IsValid() || qq.peer.RouterID == pp.peer.RouterID {
				continue
			}
			later, earlier := pp, qq
			if Before(later.peer.Source, later.peer.Name, earlier.peer.Source, earlier.peer.Name) {
				later, earlier = earlier, later
			}
			if where, ok := nodesOverlap(later.peer.NodeSelectors, earlier.peer.NodeSelectors); ok {
				b.conflict(refOf("BGPPeer", later.peer.Name, later.peer.Source), field.Invalid(later.path.Child("routerID"), later.peer.RouterID.String(),
					fmt.Sprintf("BGPPeer %q (%s) sets routerID %s, and %s would open both sessions; a node has one BGP identifier for all its sessions: set the same routerID, or leave it empty on one of them", earlier.peer.Name, earlier.path, earlier.peer.RouterID, where)))
				break
			}
			b.warn(later.path.Child("routerID"), "BGPPeer %q (%s) sets routerID %s; a node has one BGP identifier for all its sessions, so a node that selects both peers configures only the one created first", earlier.peer.Name, earlier.path, earlier.peer.RouterID)
		}
	}
}

// samePeerAddressWarnings warns about peers with one address on different
// ports: whether a node selects both depends on Node labels.
func (b *builder) samePeerAddressWarnings(keys []peerKey, byKey map[peerKey][]peerPath) {
	first := map[netip.Addr]peerPath{}
	for _, k := range keys {
		if k.iface != "" {
			continue
		}
		pp := byKey[k][0]
		prev, ok := first[k.addr]
		if !ok {
			first[k.addr] = pp
			continue
		}
		if prev.peer.Port != pp.peer.Port {
			b.warn(pp.path.Child("peerPort"), "BGPPeer %q (%s) has the same address on port %d; a node holds one session per router address, so a node that selects both peers configures only the one created first", prev.peer.Name, prev.path, prev.peer.Port)
		}
	}
}

// nodesOverlap reports whether two peers' node selector lists (an empty
// list selects every node) select a common node whatever the Nodes'
// labels are — either list is empty, or both hold the same selector — and
// says which nodes. Whether lists that differ overlap depends on the
// labels, which change without admission: a node that both select keeps
// the earlier peer at run time (see speaker/plan).
func nodesOverlap(a, c []labels.Selector) (string, bool) {
	switch {
	case len(a) == 0 && len(c) == 0:
		return "every node", true
	case len(a) == 0:
		return "every node that " + selectorList(c) + " selects", true
	case len(c) == 0:
		return "every node that " + selectorList(a) + " selects", true
	}
	for _, x := range a {
		for _, y := range c {
			if x.String() == y.String() {
				return fmt.Sprintf("every node that %q selects", x.String()), true
			}
		}
	}
	return "", false
}

func selectorList(sels []labels.Selector) string {
	out := make([]string, len(sels))
	for i, s := range sels {
		out[i] = fmt.Sprintf("%q", s.String())
	}
	return strings.Join(out, " or ")
}

// MatchesAny reports whether set matches any of sels; no selectors match everything.
func MatchesAny(sels []labels.Selector, set map[string]string) bool {
	if len(sels) == 0 {
		return true
	}
	for _, s := range sels {
		if s.Matches(labels.Set(set)) {
			return true
		}
	}
	return false
}

// selectPools resolves an advertisement's pools: by name, by selector, or
// every pool when neither is given. A name with no pool is a warning.
func (b *builder) selectPools(path *field.Path, names []string, specSels []metav1.LabelSelector) []string {
	// Invalid selectors are reported and select nothing; they do not
	// turn into "every pool".
	sels, _ := b.selectorsOK(path.Child("ipAddressPoolSelectors"), specSels)
	if len(names) == 0 && len(specSels) == 0 {
		out := make([]string, 0, len(b.cfg.Pools))
		for n := range b.cfg.Pools {
			out = append(out, n)
		}
		sort.Strings(out)
		return out
	}
	set := map[string]bool{}
	for i, n := range names {
		if _, ok := b.cfg.Pools[n]; !ok {
			b.warn(path.Child("ipAddressPools").Index(i), "IPAddressPool %q does not exist; nothing is announced for it until it does", n)
			continue
		}
		set[n] = true
	}
	if len(sels) > 0 {
		for n, p := range b.cfg.Pools {
			for _, s := range sels {
				if s.Matches(p.Labels) {
					set[n] = true
				}
			}
		}
	}
	out := make([]string, 0, len(set))
	for n := range set {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

func (b *builder) l2Advertisement(it item[lbv1.L2AdvertisementSpec]) {
	s := it.spec
	a := &L2Advertisement{
		Name:             it.name,
		NodeSelectors:    b.selectors(it.path.Child("nodeSelectors"), s.NodeSelectors),
		ServiceSelectors: b.selectors(it.path.Child("serviceSelectors"), s.ServiceSelectors),
		Interfaces:       s.Interfaces,
	}
	for i, name := range s.Interfaces {
		if name == "" || len(name) > 15 || strings.ContainsAny(name, "/: \t\n") {
			b.errs = append(b.errs, field.Invalid(it.path.Child("interfaces").Index(i), name, "not a network interface name (1-15 characters, no '/', ':' or spaces)"))
		}
	}
	a.Pools = b.selectPools(it.path, s.IPAddressPools, s.IPAddressPoolSelectors)
	b.cfg.L2Advertisements = append(b.cfg.L2Advertisements, a)
}

func (b *builder) bgpAdvertisement(it item[lbv1.BGPAdvertisementSpec]) {
	s, path := it.spec, it.path
	a := &BGPAdvertisement{
		Name:                it.name,
		Source:              it.src,
		AggregationLength:   32,
		AggregationLengthV6: 128,
		NodeSelectors:       b.selectors(path.Child("nodeSelectors"), s.NodeSelectors),
		ServiceSelectors:    b.selectors(path.Child("serviceSelectors"), s.ServiceSelectors),
	}
	if v := s.AggregationLength; v != nil {
		if *v < 0 || *v > 32 {
			b.errs = append(b.errs, field.Invalid(path.Child("aggregationLength"), *v, "must be between 0 and 32"))
		} else {
			a.AggregationLength = int(*v)
		}
	}
	if v := s.AggregationLengthV6; v != nil {
		if *v < 0 || *v > 128 {
			b.errs = append(b.errs, field.Invalid(path.Child("aggregationLengthV6"), *v, "must be between 0 and 128"))
		} else {
			a.AggregationLengthV6 = int(*v)
		}
	}
	if v := s.LocalPref; v != nil {
		if *v < 0 || *v > math.MaxUint32 {
			b.errs = append(b.errs, field.Invalid(path.Child("localPref"), *v, "must be between 0 and 4294967295"))
		} else {
			lp := uint32(*v)
			a.LocalPref = &lp
		}
	}
	for i, c := range s.Communities {
		cp := path.Child("communities").Index(i)
		if IsCommunityValue(string(c)) {
			v, err := ParseCommunity(string(c))
			if err != nil {
				b.errs = append(b.errs, field.Invalid(cp, string(c), err.Error()))
				continue
			}
			a.Communities = append(a.Communities, v)
			continue
		}
		v, ok := b.cfg.CommunityAliases[string(c)]
		if !ok && b.badAliases[string(c)] {
			continue // the alias's own value is reported where it is defined
		}
		if !ok {
			b.errs = append(b.errs, field.Invalid(cp, string(c), "no Community defines this alias; define it or write the value as a:b or large:a:b:c"))
			continue
		}
		a.Communities = append(a.Communities, v)
	}
	a.Pools = b.selectPools(path, s.IPAddressPools, s.IPAddressPoolSelectors)
	// The aggregate must not cover addresses outside the pool's blocks.
	// One error per pool and family: the first range that forbids it.
	for _, name := range a.Pools {
		reported := map[string]bool{}
		for _, r := range b.cfg.Pools[name].Ranges {
			agg, fieldName := a.AggregationLength, "aggregationLength"
			if !r.Is4() {
				agg, fieldName = a.AggregationLengthV6, "aggregationLengthV6"
			}
			if need := r.MinPrefixLen(); agg < need && !reported[fieldName] {
				reported[fieldName] = true
				b.errs = append(b.errs, field.Invalid(path.Child(fieldName), agg,
					fmt.Sprintf("is shorter than IPAddressPool %q permits: its %s needs at least /%d, or the aggregate would announce addresses outside the pool", name, r, need)))
			}
		}
	}
	if len(s.Peers) > 0 {
		allEBGP, found := true, 0
		for i, n := range s.Peers {
			p, ok := b.cfg.Peers[n]
			if !ok {
				b.warn(path.Child("peers").Index(i), "BGPPeer %q does not exist; nothing is announced to it until it does", n)
				continue
			}
			found++
			if p.IBGP() {
				allEBGP = false
			}
		}
		a.Peers = s.Peers
		if a.LocalPref != nil && found > 0 && allEBGP {
			b.warn(path.Child("localPref"), "has no effect: every peer of this advertisement is eBGP, and LOCAL_PREF is only sent to iBGP peers")
		}
	} else if a.LocalPref != nil && len(b.cfg.Peers) > 0 {
		allEBGP := true
		for _, p := range b.cfg.Peers {
			if p.IBGP() {
				allEBGP = false
			}
		}
		if allEBGP {
			b.warn(path.Child("localPref"), "has no effect: every BGPPeer is eBGP, and LOCAL_PREF is only sent to iBGP peers")
		}
	}
	b.cfg.BGPAdvertisements = append(b.cfg.BGPAdvertisements, a)
	b.advPaths = append(b.advPaths, advPath{adv: a, path: path})
}

type advPath struct {
	adv  *BGPAdvertisement
	path *field.Path
}

// localPrefConflicts refuses two advertisements that would announce the
// same aggregated prefix to a common peer with different localPref.
func (b *builder) localPrefConflicts() {
	type owner struct {
		adv  *BGPAdvertisement
		path *field.Path
	}
	// Every advertisement that announces a prefix with a localPref, in
	// order: a conflict may be with any of them, not only the first.
	seen := map[netip.Prefix][]owner{}
	reported := map[[2]string]bool{}
	for _, ap := range b.advPaths {
		a := ap.adv
		if a.LocalPref == nil {
			continue
		}
		for _, name := range a.Pools {
			for _, r := range b.cfg.Pools[name].Ranges {
				agg := a.AggregationLength
				if !r.Is4() {
					agg = a.AggregationLengthV6
				}
				for _, pfx := range edgeAggregates(r, agg) {
					owners := seen[pfx]
					mine := false
					for _, prev := range owners {
						if prev.adv == a {
							mine = true
							continue
						}
						if *prev.adv.LocalPref == *a.LocalPref || !sharePeer(prev.adv.Peers, a.Peers) {
							continue
						}
						k := [2]string{prev.adv.Name, a.Name}
						if reported[k] {
							continue
						}
						reported[k] = true
						// Blame the later advertisement: at run time it is ignored.
						later, earlier := owner{a, ap.path}, prev
						if Before(a.Source, a.Name, prev.adv.Source, prev.adv.Name) {
							later, earlier = earlier, later
						}
						b.conflict(refOf("BGPAdvertisement", later.adv.Name, later.adv.Source), field.Invalid(later.path.Child("localPref"), *later.adv.LocalPref,
							fmt.Sprintf("conflicts with localPref %d of BGPAdvertisement %q (%s): both announce %s to a common peer", *earlier.adv.LocalPref, earlier.adv.Name, earlier.path, pfx)))
					}
					if !mine {
						seen[pfx] = append(owners, owner{a, ap.path})
					}
				}
			}
		}
	}
}

// edgeAggregates lists the first and the last prefix of length agg that
// announce r. They are the only ones that can be shared with another
// advertisement: two advertisements of one range share its first prefix,
// and an aggregate shared by two disjoint ranges holds addresses of both,
// so it is the first or last aggregate of each. (Pools that overlap are
// an error of their own.) Listing every aggregate instead would take
// 2^(agg-len) steps for a short CIDR.
func edgeAggregates(r Range, agg int) []netip.Prefix {
	first, _ := r.First.Prefix(agg)
	last, _ := r.Last.Prefix(agg)
	if first == last {
		return []netip.Prefix{first}
	}
	return []netip.Prefix{first, last}
}

func sharePeer(a, c []string) bool {
	if len(a) == 0 || len(c) == 0 {
		return true
	}
	for _, x := range a {
		for _, y := range c {
			if x == y {
				return true
			}
		}
	}
	return false
}
