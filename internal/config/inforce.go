package config

import (
	"regexp"
	"slices"
	"sort"
	"strconv"

	"k8s.io/apimachinery/pkg/util/validation/field"

	lbv1 "github.com/lbstack/lbstack/api/v1alpha1"
)

// Ignored is an item left out of the configuration in force because it
// conflicts with an earlier one (see InForce).
type Ignored struct {
	// Kind and Name name the standalone object; for an item inline in the
	// LoadBalancerStack, Kind is LoadBalancerStack and Name the stack's.
	Kind, Name string
	// Item is the ignored item's path: Kind[name], or
	// LoadBalancerStack[s].spec.<list>[i] for an inline item.
	Item string
	// Errors say what it conflicts with.
	Errors field.ErrorList
}

// InForce builds the configuration the controller and the speakers act
// on. Admission refuses every error (Build), but two objects admitted at
// the same moment can each pass the webhook without seeing the other
// (overlapping pools, one peer address on the same nodes, one community
// alias, two stacks). Such a conflict must not invalidate the whole
// configuration: the later item (Before: created later, then by name) is
// left out and returned in ignored, and the rest is built again, the same
// way on every node. Any other error makes the configuration invalid, as
// Build does: the callers then keep the last valid configuration.
func InForce(objs Objects) (cfg *Config, ignored []Ignored, warnings Warnings, errs field.ErrorList) {
	// Each round removes at least one item, so this ends.
	for {
		b := build(objs)
		if len(b.errs) == 0 {
			return b.cfg, ignored, b.warnings, nil
		}
		var units []unit
		for _, e := range b.errs {
			u, ok := unitOf(e.Field, b.cfg.Stack)
			if !ok || !b.conflicts[e] {
				return nil, ignored, b.warnings, b.errs
			}
			units = append(units, u)
		}
		// Standalone objects all at once; inline items one per round, as
		// removing one shifts the indexes in the other errors' paths.
		losers := map[string]*Ignored{}
		inline := ""
		for i, u := range units {
			if u.list != "" && inline != "" && u.item != inline {
				continue
			}
			if losers[u.item] == nil {
				ig := &Ignored{Kind: u.kind, Name: u.name, Item: u.item}
				if u.list != "" {
					inline = u.item
					// Named by the item's name: its index changes as
					// items before it are left out.
					ig.Item = "LoadBalancerStack[" + u.name + "].spec." + u.list + "[" + inlineName(objs, u) + "]"
				}
				losers[u.item] = ig
				objs = u.remove(objs)
			}
			losers[u.item].Errors = append(losers[u.item].Errors, b.errs[i])
		}
		round := make([]Ignored, 0, len(losers))
		for _, ig := range losers {
			round = append(round, *ig)
		}
		sort.Slice(round, func(i, j int) bool { return round[i].Item < round[j].Item })
		ignored = append(ignored, round...)
	}
}

// unit is an item that can be left out: a standalone object, a stack
// that is not in force, or one item inline in the stack in force.
type unit struct {
	kind, name, item string
	list             string // the stack's list for an inline item
	index            int
}

var unitPath = regexp.MustCompile(`^(\w+)\[([^\]]+)\](?:\.spec\.(pools|bfdProfiles|communities|bgpPeers|l2Advertisements|bgpAdvertisements)\[(\d+)\])?`)

// unitOf finds the item an error's field path blames; ok is false for an
// error about the stack in force itself.
func unitOf(path, stackInForce string) (unit, bool) {
	m := unitPath.FindStringSubmatch(path)
	if m == nil {
		return unit{}, false
	}
	u := unit{kind: m[1], name: m[2], item: m[1] + "[" + m[2] + "]"}
	if u.kind != "LoadBalancerStack" || u.name != stackInForce {
		return u, true
	}
	if m[3] == "" {
		return unit{}, false
	}
	u.list, u.index = m[3], mustAtoi(m[4])
	u.item = m[0]
	return u, true
}

func mustAtoi(s string) int {
	n, _ := strconv.Atoi(s)
	return n
}

// remove returns objs without the unit, sharing nothing it changes with
// objs.
func (u unit) remove(objs Objects) Objects {
	drop := func(name string) bool { return name == u.name }
	switch u.kind {
	case "IPAddressPool":
		objs.Pools = slices.DeleteFunc(slices.Clone(objs.Pools), func(o lbv1.IPAddressPool) bool { return drop(o.Name) })
	case "L2Advertisement":
		objs.L2Advertisements = slices.DeleteFunc(slices.Clone(objs.L2Advertisements), func(o lbv1.L2Advertisement) bool { return drop(o.Name) })
	case "BGPAdvertisement":
		objs.BGPAdvertisements = slices.DeleteFunc(slices.Clone(objs.BGPAdvertisements), func(o lbv1.BGPAdvertisement) bool { return drop(o.Name) })
	case "BGPPeer":
		objs.Peers = slices.DeleteFunc(slices.Clone(objs.Peers), func(o lbv1.BGPPeer) bool { return drop(o.Name) })
	case "BFDProfile":
		objs.BFDProfiles = slices.DeleteFunc(slices.Clone(objs.BFDProfiles), func(o lbv1.BFDProfile) bool { return drop(o.Name) })
	case "Community":
		objs.Communities = slices.DeleteFunc(slices.Clone(objs.Communities), func(o lbv1.Community) bool { return drop(o.Name) })
	case "LoadBalancerStack":
		if u.list == "" {
			objs.Stacks = slices.DeleteFunc(slices.Clone(objs.Stacks), func(o lbv1.LoadBalancerStack) bool { return drop(o.Name) })
			return objs
		}
		stacks := slices.Clone(objs.Stacks)
		for i := range stacks {
			if stacks[i].Name == u.name {
				s := stacks[i].DeepCopy()
				u.drop(&s.Spec)
				stacks[i] = *s
			}
		}
		objs.Stacks = stacks
	}
	return objs
}

// drop removes the inline item from the stack's list.
func (u unit) drop(s *lbv1.LoadBalancerStackSpec) {
	if l, ok := inlineLists(s)[u.list]; ok && u.index < len(l.names) {
		l.drop(u.index)
	}
}

// inlineName returns the name of the inline item u points at.
func inlineName(objs Objects, u unit) string {
	for i := range objs.Stacks {
		if objs.Stacks[i].Name != u.name {
			continue
		}
		if l, ok := inlineLists(&objs.Stacks[i].Spec)[u.list]; ok && u.index < len(l.names) {
			return l.names[u.index]
		}
	}
	return strconv.Itoa(u.index)
}

// inlineList is one of a stack's lists of inline items: their names, and
// how to remove one.
type inlineList struct {
	names []string
	drop  func(i int)
}

func listOf[T any](items *[]T, meta func(*T) lbv1.InlineMeta) inlineList {
	l := inlineList{drop: func(i int) { *items = slices.Delete(*items, i, i+1) }}
	for i := range *items {
		l.names = append(l.names, meta(&(*items)[i]).Name)
	}
	return l
}

// inlineLists are the stack's lists of inline items by field name.
func inlineLists(s *lbv1.LoadBalancerStackSpec) map[string]inlineList {
	return map[string]inlineList{
		"pools":             listOf(&s.Pools, func(x *lbv1.InlineIPAddressPool) lbv1.InlineMeta { return x.InlineMeta }),
		"bfdProfiles":       listOf(&s.BFDProfiles, func(x *lbv1.InlineBFDProfile) lbv1.InlineMeta { return x.InlineMeta }),
		"communities":       listOf(&s.Communities, func(x *lbv1.InlineCommunity) lbv1.InlineMeta { return x.InlineMeta }),
		"bgpPeers":          listOf(&s.BGPPeers, func(x *lbv1.InlineBGPPeer) lbv1.InlineMeta { return x.InlineMeta }),
		"l2Advertisements":  listOf(&s.L2Advertisements, func(x *lbv1.InlineL2Advertisement) lbv1.InlineMeta { return x.InlineMeta }),
		"bgpAdvertisements": listOf(&s.BGPAdvertisements, func(x *lbv1.InlineBGPAdvertisement) lbv1.InlineMeta { return x.InlineMeta }),
	}
}
