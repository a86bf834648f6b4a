package migrate

import (
	"fmt"
	"math"
	"net/netip"
	"regexp"
	"sort"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/utils/ptr"

	lbv1 "github.com/lbstack/lbstack/api/v1alpha1"
	"github.com/lbstack/lbstack/internal/config"
)

// Kinds of the stack's lists, as config.Build names them.
const (
	kindPool      = "IPAddressPool"
	kindPeer      = "BGPPeer"
	kindBFD       = "BFDProfile"
	kindCommunity = "Community"
	kindL2        = "L2Advertisement"
	kindBGP       = "BGPAdvertisement"
)

// Bounds of the CRDs that the conversion must respect (see api/v1alpha1).
const (
	maxPoolAddresses    = 64
	maxAdvCommunities   = 32
	maxAliasesPerObject = 128
	maxInlineBFD        = 64
	maxInlineCommunity  = 16
	maxInterfaceLength  = 15
	maxKeepalive        = 21845 * time.Second
	maxBGPTimer         = 65535 * time.Second
	maxPriority         = 1000000
)

var (
	// aliasName is a Community alias name lbstack accepts.
	aliasName = regexp.MustCompile(`^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$`)
	// peerInterface is a BGPPeer interface lbstack accepts.
	peerInterface = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_.:@-]*$`)
)

// entry is one item of the stack with the MetalLB input it came from.
type entry[T any] struct {
	item T
	src  src
}

// src is where an item came from, for findings.
type src struct {
	// where is the finding's Object.
	where string
	// legacy is set for items of a legacy ConfigMap: fields are spelled
	// as its keys.
	legacy bool
}

// legacyKeyOf spells MetalLB's CR field names as the legacy keys.
var legacyKeyOf = map[string]string{
	"myASN": "my-asn", "peerASN": "peer-asn", "peerAddress": "peer-address", "sourceAddress": "source-address",
	"peerPort": "peer-port", "holdTime": "hold-time", "keepaliveTime": "keepalive-time", "routerID": "router-id",
	"nodeSelectors": "node-selectors", "bfdProfile": "bfd-profile", "ebgpMultiHop": "ebgp-multihop",
	"autoAssign": "auto-assign", "avoidBuggyIPs": "avoid-buggy-ips", "aggregationLength": "aggregation-length",
	"aggregationLengthV6": "aggregation-length-v6", "localPref": "localpref", "receiveInterval": "receive-interval",
	"transmitInterval": "transmit-interval", "detectMultiplier": "detect-multiplier", "echoInterval": "echo-interval",
	"echoMode": "echo-mode", "passiveMode": "passive-mode", "minimumTtl": "minimum-ttl",
}

// field spells a MetalLB CR field name (camelCase, relative to spec) as
// the input does: "spec.vrf", or the legacy key "ebgp-multihop".
func (s src) field(name string) string {
	if name == "" {
		return ""
	}
	if !s.legacy {
		return "spec." + name
	}
	head, rest, _ := strings.Cut(name, ".")
	idx := ""
	if i := strings.Index(head, "["); i >= 0 {
		head, idx = head[:i], head[i:]
	}
	if k, ok := legacyKeyOf[head]; ok {
		head = k
	}
	if rest != "" {
		return head + idx + "." + rest
	}
	return head + idx
}

// aliasEntry is a community alias of one source (the Community objects,
// or one legacy configuration's bgp-communities).
type aliasEntry struct {
	// value is the community, written canonically.
	value string
	// kept is set when the stack defines the alias under its name, so
	// advertisements can keep referring to it; otherwise references
	// are replaced by the value.
	kept bool
}

type converter struct {
	opts     Options
	findings []Finding

	pools []entry[lbv1.InlineIPAddressPool]
	peers []entry[lbv1.InlineBGPPeer]
	bfds  []entry[lbv1.InlineBFDProfile]
	comms []entry[lbv1.InlineCommunity]
	l2s   []entry[lbv1.InlineL2Advertisement]
	bgps  []entry[lbv1.InlineBGPAdvertisement]

	secrets []*corev1.Secret

	// names taken, per kind: name -> the finding Object that took it.
	names map[string]map[string]string
	// stackAliases are the aliases the stack defines: name -> value.
	stackAliases map[string]string
}

func newConverter(opts Options) *converter {
	return &converter{opts: opts, names: map[string]map[string]string{}, stackAliases: map[string]string{}}
}

func (c *converter) add(s src, field string, sev Severity, format string, args ...any) {
	c.findings = append(c.findings, Finding{Object: s.where, Field: s.field(field), Severity: sev, Message: fmt.Sprintf(format, args...)})
}

// claim reserves name for kind; false when an earlier item has it (a
// finding says so).
func (c *converter) claim(kind, name string, s src) bool {
	if errs := validation.IsDNS1123Subdomain(name); len(errs) > 0 {
		c.add(s, "", SeverityDropped, "%q is not a valid Kubernetes object name (%s), so no MetalLB object could have had it; it is left out", name, strings.Join(errs, "; "))
		return false
	}
	taken := c.names[kind]
	if taken == nil {
		taken = map[string]string{}
		c.names[kind] = taken
	}
	if prev, ok := taken[name]; ok {
		c.add(s, "", SeverityDropped, "a %s named %q already comes from %s, and names are unique in lbstack (its kinds are cluster-scoped); this one is left out: rename one of them in MetalLB and convert again", kind, name, prev)
		return false
	}
	taken[name] = s.where
	return true
}

// unique returns base, or base-2, base-3, ... for a generated name that
// an earlier item took, and claims it.
func (c *converter) unique(kind, base string, s src) string {
	name := base
	for i := 2; c.names[kind][name] != ""; i++ {
		name = fmt.Sprintf("%s-%d", base, i)
	}
	c.claim(kind, name, s)
	return name
}

// convert converts everything in, custom resources first (their names
// are the users'), then legacy configurations.
func (c *converter) convert(in *Input) {
	crAliases := c.communityObjects(sortObjects(in.communities))
	for _, o := range sortObjects(in.bfds) {
		s := src{where: o.Where}
		if c.claim(kindBFD, o.Meta.Name, s) {
			c.bfdProfile(s, o.Meta.Name, labelsOf(c, s, o.Meta.Labels), bfdFromCR(o.Spec))
		}
	}
	pools := sortObjects(in.pools)
	for _, o := range pools {
		s := src{where: o.Where}
		if c.claim(kindPool, o.Meta.Name, s) {
			c.pool(s, o.Meta.Name, labelsOf(c, s, o.Meta.Labels), o.Spec)
		}
	}
	for _, o := range sortObjects(in.peers) {
		s := src{where: o.Where}
		if c.claim(kindPeer, o.Meta.Name, s) {
			ns := o.Meta.Namespace
			if ns == "" {
				ns = c.opts.MetalLBNamespace
			}
			c.peer(s, o.Meta.Name, labelsOf(c, s, o.Meta.Labels), o.Spec, ns)
		}
	}
	l2s := sortObjects(in.l2s)
	for _, o := range l2s {
		s := src{where: o.Where}
		if c.claim(kindL2, o.Meta.Name, s) {
			c.l2Advertisement(s, o.Meta.Name, labelsOf(c, s, o.Meta.Labels), o.Spec)
		}
	}
	bgps := sortObjects(in.bgps)
	for _, o := range bgps {
		s := src{where: o.Where}
		if c.claim(kindBGP, o.Meta.Name, s) {
			c.bgpAdvertisement(s, o.Meta.Name, labelsOf(c, s, o.Meta.Labels), o.Spec, nil, crAliases)
		}
	}
	unannounced(c, pools, l2s, bgps)
	legacy := append([]legacyInput(nil), in.legacy...)
	sort.SliceStable(legacy, func(i, j int) bool { return legacy[i].where < legacy[j].where })
	for _, l := range legacy {
		c.legacy(l)
	}
	c.poolPriorities()
}

// sortObjects orders objects by name (then namespace and origin), so the
// output does not depend on the input's order.
func sortObjects[S any](objs []object[S]) []object[S] {
	out := append([]object[S](nil), objs...)
	sort.SliceStable(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if a.Meta.Name != b.Meta.Name {
			return a.Meta.Name < b.Meta.Name
		}
		if a.Meta.Namespace != b.Meta.Namespace {
			return a.Meta.Namespace < b.Meta.Namespace
		}
		return a.Where < b.Where
	})
	return out
}

// labelsOf keeps the labels an object may carry (pool labels matter to
// ipAddressPoolSelectors); an invalid one is dropped with a finding.
func labelsOf(c *converter, s src, in map[string]string) map[string]string {
	var out map[string]string
	for _, k := range sortedKeys(in) {
		v := in[k]
		errs := append(validation.IsQualifiedName(k), validation.IsValidLabelValue(v)...)
		if len(errs) > 0 {
			c.findings = append(c.findings, Finding{Object: s.where, Field: "metadata.labels[" + k + "]", Severity: SeverityDropped,
				Message: fmt.Sprintf("not a valid label: %s", strings.Join(errs, "; "))})
			continue
		}
		if out == nil {
			out = map[string]string{}
		}
		out[k] = v
	}
	return out
}

// communityObjects converts the Community objects and returns their
// aliases.
func (c *converter) communityObjects(objs []object[communitySpec]) map[string]aliasEntry {
	aliases := map[string]aliasEntry{}
	for i, o := range objs {
		s := src{where: o.Where}
		if !c.claim(kindCommunity, o.Meta.Name, s) {
			continue
		}
		in := make(map[string]string, len(o.Spec.Communities))
		var order []string
		for j, a := range o.Spec.Communities {
			if _, dup := in[a.Name]; dup {
				c.add(s, fmt.Sprintf("communities[%d]", j), SeverityDropped, "alias %q is defined twice in this object; the first definition is kept", a.Name)
				continue
			}
			in[a.Name] = a.Value
			order = append(order, a.Name)
		}
		item := lbv1.InlineCommunity{InlineMeta: lbv1.InlineMeta{Name: o.Meta.Name, Labels: labelsOf(c, s, o.Meta.Labels)}}
		c.aliases(s, order, in, aliases, &item, i >= maxInlineCommunity, func(j int) string { return fmt.Sprintf("communities[%d]", j) })
		if len(item.Communities) == 0 {
			c.add(s, "", SeverityNote, "defines no alias lbstack can keep (see the other findings), so no Community is written; the advertisements that used its aliases carry their values")
			continue
		}
		c.comms = append(c.comms, entry[lbv1.InlineCommunity]{item: item, src: s})
	}
	return aliases
}

// aliases converts the aliases named in order (name -> value in values)
// into item, recording each in table. full means the stack can hold no
// more Community items, so the aliases are only recorded and
// advertisements carry their values.
func (c *converter) aliases(s src, order []string, values map[string]string, table map[string]aliasEntry, item *lbv1.InlineCommunity, full bool, fieldOf func(int) string) {
	for j, name := range order {
		f := fieldOf(j)
		if _, dup := table[name]; dup {
			c.add(s, f, SeverityDropped, "alias %q is already defined by an earlier Community; MetalLB refuses duplicates too, and this definition is left out", name)
			continue
		}
		v, err := config.ParseCommunity(strings.TrimSpace(values[name]))
		if err != nil {
			c.add(s, f, SeverityDropped, "the value %q of alias %q is not a community: %v; the alias is left out, and so is each use of it", values[name], name, err)
			continue
		}
		value := v.String()
		if value != values[name] {
			c.add(s, f, SeverityChanged, "the value of alias %q is written as %s", name, value)
		}
		e := aliasEntry{value: value}
		switch prev, defined := c.stackAliases[name]; {
		case full:
			c.add(s, f, SeverityChanged, "the stack holds at most %d Community items, so alias %q is not defined; each advertisement that uses it carries the value %s instead", maxInlineCommunity, name, value)
		case len(item.Communities) >= maxAliasesPerObject:
			c.add(s, f, SeverityChanged, "a Community holds at most %d aliases, so alias %q is not defined; each advertisement that uses it carries the value %s instead", maxAliasesPerObject, name, value)
		case len(name) > 63 || !aliasName.MatchString(name):
			c.add(s, f, SeverityChanged, "%q is not an alias name lbstack accepts (letters, digits, '-', '_' and '.', starting and ending with a letter or digit, at most 63 characters); each advertisement that uses it carries the value %s instead", name, value)
		case defined && prev != value:
			c.add(s, f, SeverityChanged, "alias %q already stands for %s in another Community; each advertisement of this configuration that uses it carries the value %s instead", name, prev, value)
		case defined:
			e.kept = true // the same alias, already defined
		default:
			e.kept = true
			c.stackAliases[name] = value
			item.Communities = append(item.Communities, lbv1.CommunityAlias{Name: name, Value: lbv1.CommunityValue(value)})
		}
		table[name] = e
	}
}

// bfdInput is a BFD profile in either format.
type bfdInput struct {
	receive, transmit, multiplier, echoInterval, minimumTTL *uint32
	echoMode, passiveMode                                   *bool
}

func bfdFromCR(s bfdProfileSpec) bfdInput {
	return bfdInput{receive: s.ReceiveInterval, transmit: s.TransmitInterval, multiplier: s.DetectMultiplier,
		echoInterval: s.EchoInterval, minimumTTL: s.MinimumTTL, echoMode: s.EchoMode, passiveMode: s.PassiveMode}
}

func (c *converter) bfdProfile(s src, name string, lbls map[string]string, b bfdInput) {
	int32p := func(field string, v *uint32) *int32 {
		if v == nil {
			return nil
		}
		if *v > math.MaxInt32 {
			c.add(s, field, SeverityDropped, "%d is out of range; lbstack's default applies", *v)
			return nil
		}
		return ptr.To(int32(*v))
	}
	p := lbv1.InlineBFDProfile{InlineMeta: lbv1.InlineMeta{Name: name, Labels: lbls}, BFDProfileSpec: lbv1.BFDProfileSpec{
		ReceiveInterval:  int32p("receiveInterval", b.receive),
		TransmitInterval: int32p("transmitInterval", b.transmit),
		DetectMultiplier: int32p("detectMultiplier", b.multiplier),
		MinimumTTL:       int32p("minimumTtl", b.minimumTTL),
		PassiveMode:      b.passiveMode,
	}}
	echo := b.echoMode != nil && *b.echoMode
	if echo {
		c.add(s, "echoMode", SeverityDropped, "lbstack does not implement BFD echo: the session runs in asynchronous mode, so failures are detected by control packets at transmitInterval × detectMultiplier instead of by echo packets; lower transmitInterval if you relied on echo for speed, and switch echo off on the router for this session")
	} else if b.echoMode != nil {
		p.EchoMode = ptr.To(false)
	}
	if b.echoInterval != nil {
		why := "it has no effect without echoMode"
		if echo {
			why = "echo is not implemented (see echoMode)"
		}
		c.add(s, "echoInterval", SeverityDropped, "lbstack refuses echoInterval: %s", why)
	}
	c.bfds = append(c.bfds, entry[lbv1.InlineBFDProfile]{item: p, src: s})
}

// pool converts an IPAddressPool spec (the legacy format fills one too).
func (c *converter) pool(s src, name string, lbls map[string]string, spec ipAddressPoolSpec) {
	p := lbv1.InlineIPAddressPool{InlineMeta: lbv1.InlineMeta{Name: name, Labels: lbls}, IPAddressPoolSpec: lbv1.IPAddressPoolSpec{
		AutoAssign:    spec.AutoAssign,
		AvoidBuggyIPs: spec.AvoidBuggyIPs,
	}}
	seen := map[string]bool{}
	for i, a := range spec.Addresses {
		f := fmt.Sprintf("addresses[%d]", i)
		n, changed := normalizeAddress(a)
		if changed != "" {
			c.add(s, f, SeverityChanged, "%s", changed)
		}
		if seen[n] {
			c.add(s, f, SeverityNote, "%s is listed twice; written once", n)
			continue
		}
		seen[n] = true
		if len(p.Addresses) == maxPoolAddresses {
			c.add(s, f, SeverityDropped, "an lbstack pool holds at most %d addresses (CIDRs or ranges), so %s is left out: merge adjacent ranges, or move the rest into a second pool (Services holding these addresses keep them, as addresses outside every pool)", maxPoolAddresses, n)
			continue
		}
		p.Addresses = append(p.Addresses, lbv1.PoolAddress(n))
	}
	if al := spec.ServiceAllocation; al != nil {
		out := &lbv1.ServiceAllocation{
			Namespaces:         al.Namespaces,
			NamespaceSelectors: al.NamespaceSelectors,
			ServiceSelectors:   al.ServiceSelectors,
		}
		switch {
		case al.Priority > 0:
			out.Priority = ptr.To(int32(min(al.Priority, math.MaxInt32)))
		case al.Priority < 0:
			c.add(s, "serviceAllocation.priority", SeverityDropped, "a negative priority has no defined order in MetalLB; the pool is tried after those with a priority")
		}
		out.Namespaces = limit(c, s, "serviceAllocation.namespaces", dedupe(c, s, "serviceAllocation.namespaces", out.Namespaces), 256)
		out.NamespaceSelectors = limit(c, s, "serviceAllocation.namespaceSelectors", out.NamespaceSelectors, 32)
		out.ServiceSelectors = limit(c, s, "serviceAllocation.serviceSelectors", out.ServiceSelectors, 32)
		if out.Priority != nil || len(out.Namespaces)+len(out.NamespaceSelectors)+len(out.ServiceSelectors) > 0 {
			p.Allocation = out
		}
	}
	c.pools = append(c.pools, entry[lbv1.InlineIPAddressPool]{item: p, src: s})
}

// poolPriorities keeps the order of MetalLB's pool priorities when one is
// beyond lbstack's bound, by numbering them 1, 2, 3, ...
func (c *converter) poolPriorities() {
	var ps []int32
	over := false
	for _, e := range c.pools {
		if al := e.item.Allocation; al != nil && al.Priority != nil {
			ps = append(ps, *al.Priority)
			over = over || *al.Priority > maxPriority
		}
	}
	if !over {
		return
	}
	sort.Slice(ps, func(i, j int) bool { return ps[i] < ps[j] })
	rank := map[int32]int32{}
	for _, v := range ps {
		if _, ok := rank[v]; !ok {
			rank[v] = int32(len(rank) + 1)
		}
	}
	for i := range c.pools {
		e := &c.pools[i]
		if al := e.item.Allocation; al != nil && al.Priority != nil {
			old := *al.Priority
			al.Priority = ptr.To(rank[old])
			c.add(e.src, "serviceAllocation.priority", SeverityChanged, "lbstack's priorities go up to %d, so all pool priorities are renumbered in their order: %d is written as %d", maxPriority, old, rank[old])
		}
	}
}

// normalizeAddress writes a pool address as lbstack reads it, and says
// what changed when the meaning is MetalLB's but the text is not lbstack's.
func normalizeAddress(a string) (string, string) {
	t := strings.TrimSpace(a)
	if strings.Contains(t, "/") {
		p, err := netip.ParsePrefix(t)
		if err != nil || p.Masked() == p {
			return t, ""
		}
		return p.Masked().String(), fmt.Sprintf("%s has bits set after its prefix length; MetalLB used the network %s, which lbstack requires to be written so", t, p.Masked())
	}
	if first, last, ok := strings.Cut(t, "-"); ok {
		return strings.TrimSpace(first) + "-" + strings.TrimSpace(last), ""
	}
	return t, ""
}

// dedupe removes repeated values of a list that lbstack holds as a set.
func dedupe(c *converter, s src, field string, in []string) []string {
	if len(in) == 0 {
		return in
	}
	seen := map[string]bool{}
	out := make([]string, 0, len(in))
	for _, v := range in {
		if seen[v] {
			c.add(s, field, SeverityNote, "%q is listed twice; written once", v)
			continue
		}
		seen[v] = true
		out = append(out, v)
	}
	return out
}

// limit keeps the first max items of a list bounded by the CRD; the rest
// narrows the selection (fewer nodes, pools, peers or interfaces), which
// a finding says.
func limit[T any](c *converter, s src, field string, in []T, n int) []T {
	if len(in) <= n {
		return in
	}
	c.add(s, field, SeverityDropped, "lbstack holds at most %d items here; the %d after them are left out", n, len(in)-n)
	return in[:n]
}

// peerInput is a BGP peer in either format, with its timers already read.
type peerInput struct {
	spec bgpPeerSpec
	// deriveHold: when only keepaliveTime is set, MetalLB's custom
	// resources derive holdTime as three times it (the legacy format
	// keeps the 90s default).
	deriveHold bool
	// secretNamespace is where MetalLB's password Secret lives.
	secretNamespace string
}

func (c *converter) peer(s src, name string, lbls map[string]string, spec bgpPeerSpec, secretNamespace string) {
	c.convertPeer(s, name, lbls, peerInput{spec: spec, deriveHold: true, secretNamespace: secretNamespace})
}

func (c *converter) convertPeer(s src, name string, lbls map[string]string, in peerInput) {
	m := in.spec
	p := lbv1.InlineBGPPeer{InlineMeta: lbv1.InlineMeta{Name: name, Labels: lbls}, BGPPeerSpec: lbv1.BGPPeerSpec{
		MyASN:         int64(m.MyASN),
		PeerASN:       int64(m.PeerASN),
		DynamicASN:    lbv1.DynamicASNMode(m.DynamicASN),
		PeerAddress:   strings.TrimSpace(m.PeerAddress),
		Interface:     m.Interface,
		PeerPort:      int32(m.PeerPort),
		SourceAddress: strings.TrimSpace(m.SourceAddress),
		NodeSelectors: limit(c, s, "nodeSelectors", m.NodeSelectors, 32),
		BFDProfile:    m.BFDProfile,
	}}
	if m.LocalASN != 0 {
		p.MyASN = int64(m.LocalASN)
		c.add(s, "localASN", SeverityChanged, "written as myASN: %d. lbstack runs each session with its own ASN, so the router sees AS %d, as with MetalLB's local-as (no-prepend replace-as); myASN %d is not used on this session", m.LocalASN, m.LocalASN, m.MyASN)
	}
	if m.Interface != "" && (len(m.Interface) > maxInterfaceLength || !peerInterface.MatchString(m.Interface)) {
		c.add(s, "interface", SeverityDropped, "%q is not a network interface name lbstack accepts (at most %d characters: letters, digits, '_', '.', ':', '@', '-'), so this unnumbered peer is left out", m.Interface, maxInterfaceLength)
		return
	}
	if r := strings.TrimSpace(m.RouterID); r != "" {
		if a, err := netip.ParseAddr(r); err != nil || !a.Is4() {
			c.add(s, "routerID", SeverityDropped, "%q is not an IPv4 address, which a BGP identifier must be in lbstack; the node's default identifier is used", r)
		} else {
			p.RouterID = r
		}
	}
	if m.VRF != "" {
		c.add(s, "vrf", SeverityDropped, "lbstack does not support VRF peering (see docs/bgp.md): the session is opened from the default VRF (the main routing table). If the router %s is reachable only through VRF %q, this session will not establish: remove the peer or make the router reachable in the default VRF", orIface(m), m.VRF)
	}
	if m.DisableMP {
		c.add(s, "disableMP", SeverityChanged, "lbstack, like MetalLB since v0.15 (which deprecated disableMP), carries each address family only over sessions of that family unless dualStackAddressFamily is set: what disableMP asked for is the default")
	}
	if m.DualStackAddressFamily {
		p.DualStackAddressFamily = ptr.To(true)
	}
	if m.EnableGracefulRestart {
		p.EnableGracefulRestart = ptr.To(true)
	}
	ibgp := m.DynamicASN == string(lbv1.DynamicASNInternal) || (m.DynamicASN == "" && p.MyASN == int64(m.PeerASN))
	if m.EBGPMultiHop {
		if ibgp {
			c.add(s, "ebgpMultiHop", SeverityDropped, "applies to eBGP sessions only, and this session is iBGP (MetalLB refuses it too)")
		} else {
			p.EBGPMultiHop = ptr.To(true)
		}
	}
	c.timers(s, &p.BGPPeerSpec, in)
	if p.BFDProfile != "" && c.names[kindBFD][p.BFDProfile] == "" {
		c.add(s, "bfdProfile", SeverityDropped, "no BFDProfile %q is converted (MetalLB refuses the reference too); the session runs without BFD", p.BFDProfile)
		p.BFDProfile = ""
	}
	if p.Interface == "" {
		c.password(s, name, &p.BGPPeerSpec, in)
	} else {
		// An unnumbered session takes none of these in lbstack.
		for _, f := range []struct {
			name, why string
			set       bool
			clear     func()
		}{
			{"password", "the BGP library cannot key TCP MD5 to a link-local address; the session runs without a password (configure the router to match)", m.Password != "", func() {}},
			{"passwordSecret", "the BGP library cannot key TCP MD5 to a link-local address; the session runs without a password (configure the router to match)", m.PasswordSecret != nil && m.PasswordSecret.Name != "", func() {}},
			{"bfdProfile", "BFD on link-local sessions is not implemented; the session runs without BFD", p.BFDProfile != "", func() { p.BFDProfile = "" }},
			{"sourceAddress", "the session runs from the interface's link-local address", p.SourceAddress != "", func() { p.SourceAddress = "" }},
			{"ebgpMultiHop", "the router is on the interface's link", p.EBGPMultiHop != nil, func() { p.EBGPMultiHop = nil }},
		} {
			if f.set {
				c.add(s, f.name, SeverityDropped, "lbstack refuses it on an unnumbered session (interface): %s", f.why)
				f.clear()
			}
		}
	}
	c.peers = append(c.peers, entry[lbv1.InlineBGPPeer]{item: p, src: s})
}

func orIface(m bgpPeerSpec) string {
	if m.PeerAddress != "" {
		return m.PeerAddress
	}
	return "on " + m.Interface
}

// timers converts hold, keepalive and connect time, which lbstack takes in
// whole seconds, keepalive shorter than hold.
func (c *converter) timers(s src, p *lbv1.BGPPeerSpec, in peerInput) {
	whole := func(field string, d *metav1.Duration) *time.Duration {
		if d == nil {
			return nil
		}
		v := d.Duration.Truncate(time.Second)
		if v != d.Duration {
			c.add(s, field, SeverityChanged, "BGP carries timers in whole seconds, as MetalLB sent it: %s is written as %s", d.Duration, v)
		}
		return &v
	}
	hold := whole("holdTime", in.spec.HoldTime)
	keep := whole("keepaliveTime", in.spec.KeepaliveTime)
	conn := whole("connectTime", in.spec.ConnectTime)
	if hold == nil && keep != nil && in.deriveHold {
		h := 3 * *keep
		hold = &h
		c.add(s, "keepaliveTime", SeverityNote, "MetalLB derives the hold time as three times keepaliveTime; holdTime: %s is written out, since lbstack's default is 90s", h)
	}
	if hold != nil {
		switch h := *hold; {
		case h != 0 && h < 3*time.Second:
			c.add(s, "holdTime", SeverityDropped, "%s is neither 0s nor 3s or more (RFC 4271; MetalLB refuses it too); the default 90s applies", h)
			hold = nil
		case h > maxBGPTimer:
			c.add(s, "holdTime", SeverityDropped, "%s is beyond BGP's 65535s; the default 90s applies", h)
			hold = nil
		case h == 0:
			c.add(s, "holdTime", SeverityNote, "0s sends no keepalives and never times the session out. A MetalLB v1beta1 BGPPeer without holdTime reads back as 0s; if the peer had no holdTime, remove it here for the 90s default")
		}
	}
	if keep != nil {
		h := config.DefaultHoldTime
		if hold != nil {
			h = *hold
		}
		switch k := *keep; {
		case h == 0 && k != 0:
			c.add(s, "keepaliveTime", SeverityDropped, "%s with hold time 0s: no keepalives are sent without a hold time (MetalLB refuses it too)", k)
			keep = nil
		case h != 0 && k >= h:
			c.add(s, "keepaliveTime", SeverityDropped, "%s is not shorter than the hold time %s, which lbstack requires; the default, a third of the hold time (%s), applies", k, h, h/3)
			keep = nil
		case k > maxKeepalive:
			c.add(s, "keepaliveTime", SeverityDropped, "%s is beyond the longest keepalive of a 65535s hold time; the default, a third of the hold time, applies", k)
			keep = nil
		}
	}
	if conn != nil && (*conn < time.Second || *conn > maxBGPTimer) {
		c.add(s, "connectTime", SeverityDropped, "%s is not between 1s and 65535s (MetalLB refuses it too); the default 5s applies", *conn)
		conn = nil
	}
	dur := func(d *time.Duration) *metav1.Duration {
		if d == nil {
			return nil
		}
		return &metav1.Duration{Duration: *d}
	}
	p.HoldTime, p.KeepaliveTime, p.ConnectTime = dur(hold), dur(keep), dur(conn)
}

// password carries the session's TCP MD5 password: a MetalLB Secret is
// referred to where it is; a plain-text password goes into a generated
// Secret, since lbstack reads passwords only from Secrets.
func (c *converter) password(s src, name string, p *lbv1.BGPPeerSpec, in peerInput) {
	m := in.spec
	if ref := m.PasswordSecret; ref != nil && ref.Name != "" {
		if m.Password != "" {
			c.add(s, "password", SeverityDropped, "both password and passwordSecret are set (MetalLB refuses that); passwordSecret is kept")
		}
		ns := in.secretNamespace
		if ref.Namespace != "" && ref.Namespace != ns {
			c.add(s, "passwordSecret.namespace", SeverityNote, "MetalLB reads the Secret from its own namespace %s, not %s; lbstack is pointed at %s/%s", ns, ref.Namespace, ns, ref.Name)
		}
		p.PasswordSecret = &lbv1.SecretReference{Name: ref.Name, Namespace: ns, Key: corev1.BasicAuthPasswordKey}
		c.add(s, "passwordSecret", SeverityNote, "lbstack reads the password from Secret %s/%s (key %q), where MetalLB keeps it: copy the Secret to %s and change passwordSecret before you delete MetalLB's namespace, or the session loses its password", ns, ref.Name, corev1.BasicAuthPasswordKey, c.opts.SecretNamespace)
		return
	}
	if m.Password == "" {
		return
	}
	secret := secretName(name)
	c.secrets = append(c.secrets, &corev1.Secret{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Secret"},
		ObjectMeta: metav1.ObjectMeta{Name: secret, Namespace: c.opts.SecretNamespace},
		Type:       corev1.SecretTypeOpaque,
		StringData: map[string]string{corev1.BasicAuthPasswordKey: m.Password},
	})
	p.PasswordSecret = &lbv1.SecretReference{Name: secret, Namespace: c.opts.SecretNamespace, Key: corev1.BasicAuthPasswordKey}
	c.add(s, "password", SeverityChanged, "lbstack reads TCP MD5 passwords from Secrets only: the password is written to the Secret %s/%s that follows the stack, and passwordSecret refers to it. The output holds the password in clear text: keep it out of version control, or create the Secret yourself and drop it from the output", c.opts.SecretNamespace, secret)
}

// secretName names the Secret generated for a peer's password.
func secretName(peer string) string {
	const suffix = "-bgp-password"
	if len(peer)+len(suffix) > validation.DNS1123SubdomainMaxLength {
		peer = strings.TrimRight(peer[:validation.DNS1123SubdomainMaxLength-len(suffix)], "-.")
	}
	return peer + suffix
}

func (c *converter) l2Advertisement(s src, name string, lbls map[string]string, m l2AdvertisementSpec) {
	a := lbv1.InlineL2Advertisement{InlineMeta: lbv1.InlineMeta{Name: name, Labels: lbls}, L2AdvertisementSpec: lbv1.L2AdvertisementSpec{
		IPAddressPools:         limit(c, s, "ipAddressPools", dedupe(c, s, "ipAddressPools", m.IPAddressPools), 256),
		IPAddressPoolSelectors: limit(c, s, "ipAddressPoolSelectors", m.IPAddressPoolSelectors, 32),
		NodeSelectors:          limit(c, s, "nodeSelectors", m.NodeSelectors, 32),
		ServiceSelectors:       limit(c, s, "serviceSelectors", m.ServiceSelectors, 32),
	}}
	for i, n := range dedupe(c, s, "interfaces", m.Interfaces) {
		if n == "" || len(n) > maxInterfaceLength || strings.ContainsAny(n, "/: \t\n\r\v\f") {
			c.add(s, fmt.Sprintf("interfaces[%d]", i), SeverityDropped, "%q is not a network interface name (1-15 characters, no '/', ':' or spaces), so MetalLB announced on no such interface; it is left out", n)
			continue
		}
		a.Interfaces = append(a.Interfaces, n)
	}
	if len(m.Interfaces) > 0 && len(a.Interfaces) == 0 {
		c.add(s, "interfaces", SeverityDropped, "none of the interfaces is a valid name, so MetalLB announced on none; the advertisement is left out (without interfaces it would announce on all)")
		return
	}
	a.Interfaces = limit(c, s, "interfaces", a.Interfaces, 64)
	if len(m.PreferredNodeSelectors) > 0 {
		c.add(s, "preferredNodeSelectors", SeverityDropped, "lbstack has no weighted node preference: each address goes to a node chosen by a hash among the eligible nodes, and stays there while that node is healthy. Restrict the eligible nodes with nodeSelectors if some nodes must not announce")
	}
	c.l2s = append(c.l2s, entry[lbv1.InlineL2Advertisement]{item: a, src: s})
}

// bgpAdvertisement converts a BGPAdvertisement; localPref, when not nil,
// is the legacy format's (where 0 is a value, not "unset"), and aliases
// resolves community aliases.
func (c *converter) bgpAdvertisement(s src, name string, lbls map[string]string, m bgpAdvertisementSpec, localPref *uint32, aliases map[string]aliasEntry) {
	a := lbv1.InlineBGPAdvertisement{InlineMeta: lbv1.InlineMeta{Name: name, Labels: lbls}, BGPAdvertisementSpec: lbv1.BGPAdvertisementSpec{
		AggregationLength:      m.AggregationLength,
		AggregationLengthV6:    m.AggregationLengthV6,
		IPAddressPools:         limit(c, s, "ipAddressPools", dedupe(c, s, "ipAddressPools", m.IPAddressPools), 256),
		IPAddressPoolSelectors: limit(c, s, "ipAddressPoolSelectors", m.IPAddressPoolSelectors, 32),
		NodeSelectors:          limit(c, s, "nodeSelectors", m.NodeSelectors, 32),
		Peers:                  limit(c, s, "peers", dedupe(c, s, "peers", m.Peers), 256),
		ServiceSelectors:       limit(c, s, "serviceSelectors", m.ServiceSelectors, 32),
	}}
	switch {
	case localPref != nil:
		a.LocalPref = ptr.To(int64(*localPref))
	case m.LocalPref != 0:
		a.LocalPref = ptr.To(int64(m.LocalPref))
	}
	seen := map[string]bool{}
	for i, ref := range m.Communities {
		f := fmt.Sprintf("communities[%d]", i)
		ref = strings.TrimSpace(ref)
		var out, value string
		if al, ok := aliases[ref]; ok {
			out, value = al.value, al.value
			if al.kept {
				out = ref
			}
		} else {
			v, err := config.ParseCommunity(ref)
			if err != nil {
				if !strings.Contains(ref, ":") {
					c.add(s, f, SeverityDropped, "no Community defines the alias %q (MetalLB refuses the advertisement too); the advertisement is converted without it", ref)
				} else {
					c.add(s, f, SeverityDropped, "%q is not a community: %v", ref, err)
				}
				continue
			}
			out = v.String()
			value = out
			if out != ref {
				c.add(s, f, SeverityChanged, "written as %s", out)
			}
		}
		if seen[value] {
			c.add(s, f, SeverityNote, "%s repeats a community of this advertisement (by value); written once", ref)
			continue
		}
		seen[value] = true
		if len(a.Communities) == maxAdvCommunities {
			c.add(s, f, SeverityDropped, "an lbstack advertisement carries at most %d communities; %s is left out", maxAdvCommunities, out)
			continue
		}
		a.Communities = append(a.Communities, lbv1.CommunityRef(out))
	}
	c.bgps = append(c.bgps, entry[lbv1.InlineBGPAdvertisement]{item: a, src: s})
}

// unannounced notes the IPAddressPools that no advertisement selects.
func unannounced(c *converter, pools []object[ipAddressPoolSpec], l2s []object[l2AdvertisementSpec], bgps []object[bgpAdvertisementSpec]) {
	type adv struct {
		pools []string
		sels  []metav1.LabelSelector
	}
	var advs []adv
	for _, a := range l2s {
		advs = append(advs, adv{a.Spec.IPAddressPools, a.Spec.IPAddressPoolSelectors})
	}
	for _, a := range bgps {
		advs = append(advs, adv{a.Spec.IPAddressPools, a.Spec.IPAddressPoolSelectors})
	}
	for _, p := range pools {
		announced := false
		for _, a := range advs {
			if selectsPool(a.pools, a.sels, p.Meta.Name, p.Meta.Labels) {
				announced = true
				break
			}
		}
		if !announced {
			c.findings = append(c.findings, Finding{Object: p.Where, Severity: SeverityNote,
				Message: "no L2Advertisement or BGPAdvertisement selects this pool, so MetalLB does not announce it either; it is converted as it is (lbstack assigns its addresses and nothing announces them): add an advertisement if it should be announced"})
		}
	}
}

func selectsPool(names []string, sels []metav1.LabelSelector, pool string, lbls map[string]string) bool {
	if len(names) == 0 && len(sels) == 0 {
		return true
	}
	for _, n := range names {
		if n == pool {
			return true
		}
	}
	for i := range sels {
		if s, err := metav1.LabelSelectorAsSelector(&sels[i]); err == nil && s.Matches(labels.Set(lbls)) {
			return true
		}
	}
	return false
}
