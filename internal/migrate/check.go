package migrate

import (
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"sigs.k8s.io/controller-runtime/pkg/client"

	lbv1 "github.com/lbstack/lbstack/api/v1alpha1"
	"github.com/lbstack/lbstack/internal/config"
)

// Inline bounds of a LoadBalancerStack's lists (api/v1alpha1); items
// beyond them become standalone objects.
const (
	maxInlinePools = 32
	maxInlinePeers = 256
	maxInlineL2    = 256
	maxInlineBGP   = 64
)

// stackLists maps the stack's list fields to their kinds.
var stackLists = map[string]string{
	"pools": kindPool, "bgpPeers": kindPeer, "bfdProfiles": kindBFD,
	"communities": kindCommunity, "l2Advertisements": kindL2, "bgpAdvertisements": kindBGP,
}

var (
	inlinePath     = regexp.MustCompile(`^LoadBalancerStack\[[^\]]*\]\.spec\.([A-Za-z0-9]+)\[(\d+)\](.*)$`)
	standalonePath = regexp.MustCompile(`^(IPAddressPool|BGPPeer|BFDProfile|Community|L2Advertisement|BGPAdvertisement)\[([^\]]*)\]\.spec(.*)$`)
)

func nameOf[T any](t *T) string { return any(t).(interface{ InlineName() string }).InlineName() }

func sortEntries[T any](l []entry[T]) {
	sort.SliceStable(l, func(i, j int) bool { return nameOf(&l[i].item) < nameOf(&l[j].item) })
}

func typeMeta(kind string) metav1.TypeMeta {
	return metav1.TypeMeta{APIVersion: lbv1.GroupVersion.String(), Kind: kind}
}

// render builds the stack, the objects config.Build validates (the stack
// and the standalone overflow objects) and the overflow objects.
func (c *converter) render() (*lbv1.LoadBalancerStack, config.Objects, []client.Object) {
	stack := &lbv1.LoadBalancerStack{
		TypeMeta:   typeMeta("LoadBalancerStack"),
		ObjectMeta: metav1.ObjectMeta{Name: c.opts.Name},
		Spec:       lbv1.LoadBalancerStackSpec{LoadBalancerClass: c.opts.LoadBalancerClass},
	}
	var objs config.Objects
	var extra []client.Object
	meta := func(m lbv1.InlineMeta) metav1.ObjectMeta { return metav1.ObjectMeta{Name: m.Name, Labels: m.Labels} }
	for i, e := range c.pools {
		if i < maxInlinePools {
			stack.Spec.Pools = append(stack.Spec.Pools, e.item)
			continue
		}
		o := &lbv1.IPAddressPool{TypeMeta: typeMeta(kindPool), ObjectMeta: meta(e.item.InlineMeta), Spec: e.item.IPAddressPoolSpec}
		objs.Pools = append(objs.Pools, *o)
		extra = append(extra, o)
	}
	for i, e := range c.peers {
		if i < maxInlinePeers {
			stack.Spec.BGPPeers = append(stack.Spec.BGPPeers, e.item)
			continue
		}
		o := &lbv1.BGPPeer{TypeMeta: typeMeta(kindPeer), ObjectMeta: meta(e.item.InlineMeta), Spec: e.item.BGPPeerSpec}
		objs.Peers = append(objs.Peers, *o)
		extra = append(extra, o)
	}
	for _, e := range c.bfds {
		stack.Spec.BFDProfiles = append(stack.Spec.BFDProfiles, e.item)
	}
	for _, e := range c.comms {
		stack.Spec.Communities = append(stack.Spec.Communities, e.item)
	}
	for i, e := range c.l2s {
		if i < maxInlineL2 {
			stack.Spec.L2Advertisements = append(stack.Spec.L2Advertisements, e.item)
			continue
		}
		o := &lbv1.L2Advertisement{TypeMeta: typeMeta(kindL2), ObjectMeta: meta(e.item.InlineMeta), Spec: e.item.L2AdvertisementSpec}
		objs.L2Advertisements = append(objs.L2Advertisements, *o)
		extra = append(extra, o)
	}
	for i, e := range c.bgps {
		if i < maxInlineBGP {
			stack.Spec.BGPAdvertisements = append(stack.Spec.BGPAdvertisements, e.item)
			continue
		}
		o := &lbv1.BGPAdvertisement{TypeMeta: typeMeta(kindBGP), ObjectMeta: meta(e.item.InlineMeta), Spec: e.item.BGPAdvertisementSpec}
		objs.BGPAdvertisements = append(objs.BGPAdvertisements, *o)
		extra = append(extra, o)
	}
	objs.Stacks = []lbv1.LoadBalancerStack{*stack}
	return stack, objs, extra
}

// settle makes the converted configuration valid: it runs config.Build,
// lbstack's one validity function, and leaves out what it refuses (a
// field where that is enough, else the item), with a finding each, until
// Build accepts it. Then it turns Build's warnings into notes.
func (c *converter) settle() error {
	sortEntries(c.pools)
	sortEntries(c.peers)
	sortEntries(c.bfds)
	sortEntries(c.comms)
	sortEntries(c.l2s)
	sortEntries(c.bgps)
	if len(c.bfds) > maxInlineBFD {
		for _, e := range c.bfds[maxInlineBFD:] {
			c.add(e.src, "", SeverityDropped, "a stack holds at most %d BFD profiles; this one is left out, and the peers that use it run without BFD", maxInlineBFD)
		}
		c.bfds = c.bfds[:maxInlineBFD]
	}
	// Each round removes at least one field or item, so this ends.
	for {
		_, objs, _ := c.render()
		cfg, warnings, errs := config.Build(objs)
		if len(errs) == 0 {
			c.warnings(warnings)
			c.familyNotes(cfg)
			c.overflowNotes()
			return nil
		}
		if !c.repair(errs) {
			return fmt.Errorf("the converted configuration is invalid and cannot be repaired (a bug in the conversion): %w", errs.ToAggregate())
		}
	}
}

// locate finds the item a Build field path is about: its kind, its index
// in the converter's list, and the rest of the path (".addresses[0]").
func (c *converter) locate(path string) (kind string, index int, rest string, ok bool) {
	if m := inlinePath.FindStringSubmatch(path); m != nil {
		kind, ok = stackLists[m[1]]
		index, _ = strconv.Atoi(m[2])
		return kind, index, m[3], ok && index < c.length(kind)
	}
	if m := standalonePath.FindStringSubmatch(path); m != nil {
		index = c.indexOf(m[1], m[2])
		return m[1], index, m[3], index >= 0
	}
	return "", 0, "", false
}

func (c *converter) length(kind string) int {
	switch kind {
	case kindPool:
		return len(c.pools)
	case kindPeer:
		return len(c.peers)
	case kindBFD:
		return len(c.bfds)
	case kindCommunity:
		return len(c.comms)
	case kindL2:
		return len(c.l2s)
	case kindBGP:
		return len(c.bgps)
	}
	return 0
}

func indexByName[T any](l []entry[T], name string) int {
	for i := range l {
		if nameOf(&l[i].item) == name {
			return i
		}
	}
	return -1
}

func (c *converter) indexOf(kind, name string) int {
	switch kind {
	case kindPool:
		return indexByName(c.pools, name)
	case kindPeer:
		return indexByName(c.peers, name)
	case kindBFD:
		return indexByName(c.bfds, name)
	case kindCommunity:
		return indexByName(c.comms, name)
	case kindL2:
		return indexByName(c.l2s, name)
	case kindBGP:
		return indexByName(c.bgps, name)
	}
	return -1
}

func (c *converter) srcOf(kind string, i int) src {
	switch kind {
	case kindPool:
		return c.pools[i].src
	case kindPeer:
		return c.peers[i].src
	case kindBFD:
		return c.bfds[i].src
	case kindCommunity:
		return c.comms[i].src
	case kindL2:
		return c.l2s[i].src
	}
	return c.bgps[i].src
}

// metallbField spells a field path of an lbstack item as MetalLB's field
// ("allocation" is MetalLB's "serviceAllocation"; the rest share names).
func metallbField(kind, rest string) string {
	f := strings.TrimPrefix(rest, ".")
	if kind == kindPool && strings.HasPrefix(f, "allocation") {
		f = "serviceAllocation" + strings.TrimPrefix(f, "allocation")
	}
	return f
}

var communityIndex = regexp.MustCompile(`^\.communities\[(\d+)\]$`)

// repair leaves out what errs blame; false when an error names nothing
// the conversion wrote.
func (c *converter) repair(errs field.ErrorList) bool {
	type key struct {
		kind  string
		index int
	}
	remove := map[key]*field.Error{}
	clearField := map[key]map[string]*field.Error{}
	dropCommunity := map[key]map[int]*field.Error{}
	for _, e := range errs {
		kind, i, rest, ok := c.locate(e.Field)
		if !ok {
			return false
		}
		k := key{kind, i}
		switch {
		case kind == kindBGP && (rest == ".localPref" || rest == ".aggregationLength" || rest == ".aggregationLengthV6"),
			kind == kindPeer && (rest == ".routerID" || rest == ".bfdProfile"):
			if clearField[k] == nil {
				clearField[k] = map[string]*field.Error{}
			}
			clearField[k][rest] = e
		case kind == kindBGP && communityIndex.MatchString(rest):
			j, _ := strconv.Atoi(communityIndex.FindStringSubmatch(rest)[1])
			if dropCommunity[k] == nil {
				dropCommunity[k] = map[int]*field.Error{}
			}
			dropCommunity[k][j] = e
		default:
			if remove[k] == nil {
				remove[k] = e
			}
		}
	}
	changed := len(remove) > 0
	for k, fields := range clearField {
		if remove[k] != nil {
			continue
		}
		s := c.srcOf(k.kind, k.index)
		for _, rest := range sortedKeys(fields) {
			e := fields[rest]
			set := false
			switch rest {
			case ".localPref":
				set, c.bgps[k.index].item.LocalPref = c.bgps[k.index].item.LocalPref != nil, nil
			case ".aggregationLength":
				set, c.bgps[k.index].item.AggregationLength = c.bgps[k.index].item.AggregationLength != nil, nil
			case ".aggregationLengthV6":
				set, c.bgps[k.index].item.AggregationLengthV6 = c.bgps[k.index].item.AggregationLengthV6 != nil, nil
			case ".routerID":
				set, c.peers[k.index].item.RouterID = c.peers[k.index].item.RouterID != "", ""
			case ".bfdProfile":
				set, c.peers[k.index].item.BFDProfile = c.peers[k.index].item.BFDProfile != "", ""
			}
			if !set {
				continue // the default is refused too: nothing left to drop here
			}
			changed = true
			c.add(s, metallbField(k.kind, rest), SeverityDropped, "lbstack refuses it, so it is left out (its default applies): %s", e.ErrorBody())
		}
	}
	for k, idx := range dropCommunity {
		if remove[k] != nil {
			continue
		}
		s := c.srcOf(k.kind, k.index)
		js := make([]int, 0, len(idx))
		for j := range idx {
			js = append(js, j)
		}
		sort.Sort(sort.Reverse(sort.IntSlice(js)))
		a := &c.bgps[k.index].item
		for _, j := range js {
			if j < len(a.Communities) {
				changed = true
				c.add(s, "communities", SeverityDropped, "lbstack refuses %s, so it is left out: %s", a.Communities[j], idx[j].ErrorBody())
				a.Communities = append(a.Communities[:j], a.Communities[j+1:]...)
			}
		}
	}
	keys := make([]key, 0, len(remove))
	for k := range remove {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		if keys[i].kind != keys[j].kind {
			return keys[i].kind < keys[j].kind
		}
		return keys[i].index > keys[j].index // from the end, so indexes stay right
	})
	for _, k := range keys {
		e := remove[k]
		_, _, rest, _ := c.locate(e.Field)
		c.add(c.srcOf(k.kind, k.index), metallbField(k.kind, rest), SeverityDropped, "lbstack refuses this %s, so it is left out: %s", k.kind, e.ErrorBody())
		switch k.kind {
		case kindPool:
			c.pools = append(c.pools[:k.index], c.pools[k.index+1:]...)
		case kindPeer:
			c.peers = append(c.peers[:k.index], c.peers[k.index+1:]...)
		case kindBFD:
			c.bfds = append(c.bfds[:k.index], c.bfds[k.index+1:]...)
		case kindCommunity:
			c.comms = append(c.comms[:k.index], c.comms[k.index+1:]...)
		case kindL2:
			c.l2s = append(c.l2s[:k.index], c.l2s[k.index+1:]...)
		case kindBGP:
			c.bgps = append(c.bgps[:k.index], c.bgps[k.index+1:]...)
		}
	}
	return changed
}

// warnings turns config.Build's warnings into notes on the items they
// are about.
func (c *converter) warnings(ws config.Warnings) {
	for _, w := range ws {
		path, msg, _ := strings.Cut(w, ": ")
		kind, i, rest, ok := c.locate(path)
		if !ok {
			c.findings = append(c.findings, Finding{Object: "LoadBalancerStack " + c.opts.Name, Severity: SeverityNote, Message: "lbstack warns: " + w})
			continue
		}
		c.add(c.srcOf(kind, i), metallbField(kind, rest), SeverityNote, "lbstack warns: %s", msg)
	}
}

// familyNotes notes the peers that would have carried the other address
// family in MetalLB's FRR mode before v0.15.
func (c *converter) familyNotes(cfg *config.Config) {
	for _, e := range c.peers {
		p := cfg.Peers[e.item.Name]
		if p == nil || p.Interface != "" || p.DualStackAddressFamily || !p.Address.IsValid() {
			continue
		}
		other := map[string]bool{}
		for _, a := range cfg.BGPAdvertisements {
			if a.Peers != nil && !contains(a.Peers, p.Name) {
				continue
			}
			for _, name := range a.Pools {
				for _, r := range cfg.Pools[name].Ranges {
					if r.Is4() != p.Address.Is4() {
						other[name] = true
					}
				}
			}
		}
		if len(other) == 0 {
			continue
		}
		fam := "IPv6"
		if !p.Address.Is4() {
			fam = "IPv4"
		}
		c.add(e.src, "dualStackAddressFamily", SeverityNote, "the %s addresses of pool %s are not announced over this %s session: lbstack, like MetalLB since v0.15, carries each family only over sessions of that family. MetalLB's FRR mode before v0.15 also sent them over this session unless disableMP was set; set dualStackAddressFamily: true to keep that",
			fam, strings.Join(sortedKeys(other), ", "), map[bool]string{true: "IPv4", false: "IPv6"}[p.Address.Is4()])
	}
}

func contains(l []string, s string) bool {
	for _, x := range l {
		if x == s {
			return true
		}
	}
	return false
}

// overflowNotes says which items are written as standalone objects.
func (c *converter) overflowNotes() {
	note := func(s src, kind string, max int) {
		c.add(s, "", SeverityChanged, "a stack holds at most %d items of this kind, so it is written as a standalone %s after the stack (apply both; the stack does not own it)", max, kind)
	}
	for i, e := range c.pools {
		if i >= maxInlinePools {
			note(e.src, kindPool, maxInlinePools)
		}
	}
	for i, e := range c.peers {
		if i >= maxInlinePeers {
			note(e.src, kindPeer, maxInlinePeers)
		}
	}
	for i, e := range c.l2s {
		if i >= maxInlineL2 {
			note(e.src, kindL2, maxInlineL2)
		}
	}
	for i, e := range c.bgps {
		if i >= maxInlineBGP {
			note(e.src, kindBGP, maxInlineBGP)
		}
	}
}
