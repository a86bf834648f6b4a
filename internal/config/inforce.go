package config

import (
	"slices"
	"sort"

	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/validation/field"

	lbv1 "github.com/lbstack/lbstack/api/v1alpha1"
)

// ItemRef names one configuration item: a standalone object (Kind and
// name), or an item inline in LoadBalancerStack Stack (Kind is the kind
// the item stands for, Name the item's name).
type ItemRef struct {
	Kind, Name string
	// Stack is set for an inline item.
	Stack string
}

// refOf is the reference of an item of kind declared at src.
func refOf(kind, name string, src Source) ItemRef {
	if src.Kind == "LoadBalancerStack" {
		return ItemRef{Kind: kind, Name: name, Stack: src.Name}
	}
	return ItemRef{Kind: kind, Name: name}
}

// String is Kind[name], or LoadBalancerStack[s].spec.<list>[name] for an
// inline item.
func (r ItemRef) String() string {
	if r.Stack != "" {
		return "LoadBalancerStack[" + r.Stack + "].spec." + inlineField[r.Kind] + "[" + r.Name + "]"
	}
	return r.Kind + "[" + r.Name + "]"
}

// inlineField is the LoadBalancerStack list that holds inline items of a kind.
var inlineField = map[string]string{
	"IPAddressPool": "pools", "BFDProfile": "bfdProfiles", "Community": "communities", "BGPPeer": "bgpPeers",
	"L2Advertisement": "l2Advertisements", "BGPAdvertisement": "bgpAdvertisements",
}

// Ignored is an item left out of the configuration in force because it
// conflicts with an earlier one (see InForce).
type Ignored struct {
	ItemRef
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
	for {
		b := build(objs)
		if len(b.errs) == 0 {
			return b.cfg, ignored, b.warnings, nil
		}
		losers := map[ItemRef]*Ignored{}
		for _, e := range b.errs {
			ref, ok := b.conflicts[e]
			if !ok {
				return nil, ignored, b.warnings, b.errs
			}
			if losers[ref] == nil {
				losers[ref] = &Ignored{ItemRef: ref}
			}
			losers[ref].Errors = append(losers[ref].Errors, e)
		}
		round := make([]Ignored, 0, len(losers))
		for ref, ig := range losers {
			var removed bool
			if objs, removed = objs.without(ref); !removed {
				return nil, ignored, b.warnings, b.errs // cannot happen; never loop
			}
			round = append(round, *ig)
		}
		sort.Slice(round, func(i, j int) bool { return round[i].String() < round[j].String() })
		ignored = append(ignored, round...)
	}
}

// Object returns the standalone object of a kind and name, or nil.
func (o *Objects) Object(kind, name string) runtime.Object {
	if k, ok := kinds[kind]; ok {
		return k.find(o, name)
	}
	return nil
}

// without returns objs without the item (sharing nothing it changes with
// objs), and whether the item was there.
func (o Objects) without(ref ItemRef) (Objects, bool) {
	k, ok := kinds[ref.Kind]
	if !ok {
		return o, false
	}
	if ref.Stack == "" {
		return o, k.drop(&o, ref.Name)
	}
	i := slices.IndexFunc(o.Stacks, func(s lbv1.LoadBalancerStack) bool { return s.Name == ref.Stack })
	if i < 0 || k.dropInline == nil {
		return o, false
	}
	o.Stacks = slices.Clone(o.Stacks)
	return o, k.dropInline(&o.Stacks[i].Spec, ref.Name)
}

// kinds are, per kind, how to find a standalone object, how to leave one
// out and how to leave out an inline item of the stack (each returns a new
// slice: nothing is changed in place).
var kinds = map[string]struct {
	find       func(o *Objects, name string) runtime.Object
	drop       func(o *Objects, name string) bool
	dropInline func(s *lbv1.LoadBalancerStackSpec, name string) bool
}{
	"LoadBalancerStack": {
		find: func(o *Objects, n string) runtime.Object { return find(o.Stacks, n) },
		drop: func(o *Objects, n string) (ok bool) { o.Stacks, ok = drop(o.Stacks, n); return ok },
	},
	"IPAddressPool": {
		find: func(o *Objects, n string) runtime.Object { return find(o.Pools, n) },
		drop: func(o *Objects, n string) (ok bool) { o.Pools, ok = drop(o.Pools, n); return ok },
		dropInline: func(s *lbv1.LoadBalancerStackSpec, n string) (ok bool) {
			s.Pools, ok = dropInline(s.Pools, n)
			return ok
		},
	},
	"L2Advertisement": {
		find: func(o *Objects, n string) runtime.Object { return find(o.L2Advertisements, n) },
		drop: func(o *Objects, n string) (ok bool) { o.L2Advertisements, ok = drop(o.L2Advertisements, n); return ok },
		dropInline: func(s *lbv1.LoadBalancerStackSpec, n string) (ok bool) {
			s.L2Advertisements, ok = dropInline(s.L2Advertisements, n)
			return ok
		},
	},
	"BGPAdvertisement": {
		find: func(o *Objects, n string) runtime.Object { return find(o.BGPAdvertisements, n) },
		drop: func(o *Objects, n string) (ok bool) {
			o.BGPAdvertisements, ok = drop(o.BGPAdvertisements, n)
			return ok
		},
		dropInline: func(s *lbv1.LoadBalancerStackSpec, n string) (ok bool) {
			s.BGPAdvertisements, ok = dropInline(s.BGPAdvertisements, n)
			return ok
		},
	},
	"BGPPeer": {
		find: func(o *Objects, n string) runtime.Object { return find(o.Peers, n) },
		drop: func(o *Objects, n string) (ok bool) { o.Peers, ok = drop(o.Peers, n); return ok },
		dropInline: func(s *lbv1.LoadBalancerStackSpec, n string) (ok bool) {
			s.BGPPeers, ok = dropInline(s.BGPPeers, n)
			return ok
		},
	},
	"BFDProfile": {
		find: func(o *Objects, n string) runtime.Object { return find(o.BFDProfiles, n) },
		drop: func(o *Objects, n string) (ok bool) { o.BFDProfiles, ok = drop(o.BFDProfiles, n); return ok },
		dropInline: func(s *lbv1.LoadBalancerStackSpec, n string) (ok bool) {
			s.BFDProfiles, ok = dropInline(s.BFDProfiles, n)
			return ok
		},
	},
	"Community": {
		find: func(o *Objects, n string) runtime.Object { return find(o.Communities, n) },
		drop: func(o *Objects, n string) (ok bool) { o.Communities, ok = drop(o.Communities, n); return ok },
		dropInline: func(s *lbv1.LoadBalancerStackSpec, n string) (ok bool) {
			s.Communities, ok = dropInline(s.Communities, n)
			return ok
		},
	},
}

// named is an lbstack object: a value type whose pointer is an API object.
type named[T any] interface {
	*T
	runtime.Object
	GetName() string
}

func find[T any, P named[T]](items []T, name string) runtime.Object {
	if i := slices.IndexFunc(items, func(o T) bool { return P(&o).GetName() == name }); i >= 0 {
		return P(&items[i])
	}
	return nil
}

// drop returns items without those named name (a new slice), and whether
// it removed any.
func drop[T any, P named[T]](items []T, name string) ([]T, bool) {
	out := slices.DeleteFunc(slices.Clone(items), func(o T) bool { return P(&o).GetName() == name })
	return out, len(out) < len(items)
}

// inlineItem is an item inline in a LoadBalancerStack.
type inlineItem[T any] interface {
	*T
	InlineName() string
}

// dropInline is drop for the inline items of a stack.
func dropInline[T any, P inlineItem[T]](items []T, name string) ([]T, bool) {
	out := slices.DeleteFunc(slices.Clone(items), func(x T) bool { return P(&x).InlineName() == name })
	return out, len(out) < len(items)
}
