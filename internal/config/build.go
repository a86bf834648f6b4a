package config

import (
	"fmt"
	"net/netip"
	"sort"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	metav1validation "k8s.io/apimachinery/pkg/apis/meta/v1/validation"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"

	lbv1 "github.com/lbstack/lbstack/api/v1alpha1"
)

// Warnings are problems that do not make the configuration invalid; the
// webhooks return them to kubectl as "Warning:" lines.
type Warnings []string

// Defaults applied where a field is unset.
const (
	DefaultPeerPort         = 179
	DefaultHoldTime         = 90 * time.Second
	DefaultConnectTime      = 5 * time.Second
	DefaultBFDInterval      = 300 * time.Millisecond
	DefaultDetectMultiplier = 3
	DefaultMinimumTTL       = 254
)

// ObjectPath is the root of the field paths of a standalone object, Kind[name].
func ObjectPath(kind, name string) *field.Path { return field.NewPath(kind).Key(name) }

// item is one configuration item, standalone or inline, with where it came from.
type item[T any] struct {
	name   string
	labels map[string]string
	spec   *T
	// path leads to the item's spec fields: Kind[name].spec or
	// LoadBalancerStack[s].spec.pools[i].
	path *field.Path
	src  Source
}

type builder struct {
	objs Objects
	errs field.ErrorList
	// conflicts are the errors that blame the later of two items that
	// cannot both be in force (overlapping pools, one peer address on
	// the same nodes, ...), with that item: at run time it is ignored.
	conflicts map[*field.Error]ItemRef
	warnings  Warnings
	cfg       *Config

	// badAliases are community aliases defined with an invalid value.
	badAliases map[string]bool

	ranges    []poolRange
	peerPaths []peerPath
	advPaths  []advPath
}

// Build validates everything in objs together and returns the typed
// configuration, the warnings, and every error found. The Config is nil
// when there is an error.
func Build(objs Objects) (*Config, Warnings, field.ErrorList) {
	b := build(objs)
	if len(b.errs) > 0 {
		return nil, b.warnings, b.errs
	}
	return b.cfg, b.warnings, nil
}

func build(objs Objects) *builder {
	b := &builder{objs: objs, badAliases: map[string]bool{}, conflicts: map[*field.Error]ItemRef{}, cfg: &Config{
		Pools:            map[string]*Pool{},
		Peers:            map[string]*Peer{},
		BFDProfiles:      map[string]*BFDProfile{},
		CommunityAliases: map[string]Community{},
	}}
	stack := b.stack()

	pools := collect(b, stack, "IPAddressPool", "pools", objs.Pools,
		func(o *lbv1.IPAddressPool) *lbv1.IPAddressPoolSpec { return &o.Spec },
		func(s *lbv1.LoadBalancerStack) []inline[lbv1.IPAddressPoolSpec] {
			return inlines(s.Spec.Pools, func(i *lbv1.InlineIPAddressPool) (lbv1.InlineMeta, *lbv1.IPAddressPoolSpec) {
				return i.InlineMeta, &i.IPAddressPoolSpec
			})
		})
	bfds := collect(b, stack, "BFDProfile", "bfdProfiles", objs.BFDProfiles,
		func(o *lbv1.BFDProfile) *lbv1.BFDProfileSpec { return &o.Spec },
		func(s *lbv1.LoadBalancerStack) []inline[lbv1.BFDProfileSpec] {
			return inlines(s.Spec.BFDProfiles, func(i *lbv1.InlineBFDProfile) (lbv1.InlineMeta, *lbv1.BFDProfileSpec) {
				return i.InlineMeta, &i.BFDProfileSpec
			})
		})
	comms := collect(b, stack, "Community", "communities", objs.Communities,
		func(o *lbv1.Community) *lbv1.CommunitySpec { return &o.Spec },
		func(s *lbv1.LoadBalancerStack) []inline[lbv1.CommunitySpec] {
			return inlines(s.Spec.Communities, func(i *lbv1.InlineCommunity) (lbv1.InlineMeta, *lbv1.CommunitySpec) {
				return i.InlineMeta, &i.CommunitySpec
			})
		})
	peers := collect(b, stack, "BGPPeer", "bgpPeers", objs.Peers,
		func(o *lbv1.BGPPeer) *lbv1.BGPPeerSpec { return &o.Spec },
		func(s *lbv1.LoadBalancerStack) []inline[lbv1.BGPPeerSpec] {
			return inlines(s.Spec.BGPPeers, func(i *lbv1.InlineBGPPeer) (lbv1.InlineMeta, *lbv1.BGPPeerSpec) {
				return i.InlineMeta, &i.BGPPeerSpec
			})
		})
	l2s := collect(b, stack, "L2Advertisement", "l2Advertisements", objs.L2Advertisements,
		func(o *lbv1.L2Advertisement) *lbv1.L2AdvertisementSpec { return &o.Spec },
		func(s *lbv1.LoadBalancerStack) []inline[lbv1.L2AdvertisementSpec] {
			return inlines(s.Spec.L2Advertisements, func(i *lbv1.InlineL2Advertisement) (lbv1.InlineMeta, *lbv1.L2AdvertisementSpec) {
				return i.InlineMeta, &i.L2AdvertisementSpec
			})
		})
	bgps := collect(b, stack, "BGPAdvertisement", "bgpAdvertisements", objs.BGPAdvertisements,
		func(o *lbv1.BGPAdvertisement) *lbv1.BGPAdvertisementSpec { return &o.Spec },
		func(s *lbv1.LoadBalancerStack) []inline[lbv1.BGPAdvertisementSpec] {
			return inlines(s.Spec.BGPAdvertisements, func(i *lbv1.InlineBGPAdvertisement) (lbv1.InlineMeta, *lbv1.BGPAdvertisementSpec) {
				return i.InlineMeta, &i.BGPAdvertisementSpec
			})
		})

	for _, p := range pools {
		b.pool(p)
	}
	b.poolOverlaps()
	for _, p := range bfds {
		b.bfdProfile(p)
	}
	b.communities(comms)
	for _, p := range peers {
		b.peer(p)
	}
	b.peerConflicts()
	b.routerIDConflicts()
	for _, a := range l2s {
		b.l2Advertisement(a)
	}
	for _, a := range bgps {
		b.bgpAdvertisement(a)
	}
	b.localPrefConflicts()
	return b
}

// conflict records err as a conflict that blames later, the later of two
// items.
func (b *builder) conflict(later ItemRef, err *field.Error) {
	b.errs = append(b.errs, err)
	b.conflicts[err] = later
}

// stack picks the LoadBalancerStack in force. Every other stack is an
// error, because only one may exist.
func (b *builder) stack() *lbv1.LoadBalancerStack {
	s := StackInForce(b.objs.Stacks)
	if s == nil {
		return nil
	}
	for i := range b.objs.Stacks {
		if o := &b.objs.Stacks[i]; o != s {
			b.conflict(ItemRef{Kind: "LoadBalancerStack", Name: o.Name}, field.Forbidden(ObjectPath("LoadBalancerStack", o.Name),
				fmt.Sprintf("only one LoadBalancerStack may exist in a cluster and %q is already in force; put the configuration into it, or into standalone objects", s.Name)))
		}
	}
	b.cfg.Stack = s.Name
	b.cfg.LoadBalancerClass = s.Spec.LoadBalancerClass
	return s
}

// StackInForce returns the LoadBalancerStack in force among stacks: the
// oldest, then by name; a stack not yet created (zero time, the one being
// admitted) comes last. It returns nil for none.
func StackInForce(stacks []lbv1.LoadBalancerStack) *lbv1.LoadBalancerStack {
	var best *lbv1.LoadBalancerStack
	for i := range stacks {
		s := &stacks[i]
		if best == nil || stackBefore(s, best) {
			best = s
		}
	}
	return best
}

func stackBefore(a, b *lbv1.LoadBalancerStack) bool {
	ta, tb := a.CreationTimestamp, b.CreationTimestamp
	if !ta.Equal(&tb) {
		if ta.IsZero() || tb.IsZero() {
			return tb.IsZero()
		}
		return ta.Before(&tb)
	}
	return a.Name < b.Name
}

type inline[T any] struct {
	meta lbv1.InlineMeta
	spec *T
}

func inlines[I, T any](items []I, get func(*I) (lbv1.InlineMeta, *T)) []inline[T] {
	out := make([]inline[T], len(items))
	for i := range items {
		out[i].meta, out[i].spec = get(&items[i])
	}
	return out
}

// OwnedByStack reports whether a standalone object is a LoadBalancerStack's
// rendered child: its controller reference is a LoadBalancerStack.
// Children are skipped: the stack's inline list is the truth, and the
// operator keeps the children in line with it.
func OwnedByStack(m *metav1.ObjectMeta) bool { return StackController(m) != nil }

// StackController returns the controller reference of o when it names a
// LoadBalancerStack (o is a rendered child), or nil.
func StackController(o metav1.Object) *metav1.OwnerReference {
	r := metav1.GetControllerOfNoCopy(o)
	if r == nil || r.Kind != "LoadBalancerStack" || !strings.HasPrefix(r.APIVersion, lbv1.GroupVersion.Group+"/") {
		return nil
	}
	return r
}

// collect merges the stack's inline items of one kind with the standalone
// objects of that kind, in name order.
func collect[O any, T any](b *builder, stack *lbv1.LoadBalancerStack, kind, stackField string, objs []O,
	spec func(*O) *T, fromStack func(*lbv1.LoadBalancerStack) []inline[T]) []item[T] {
	var out []item[T]
	standalone := map[string]bool{}
	for i := range objs {
		o := &objs[i]
		m := meta(o)
		if OwnedByStack(m) {
			continue
		}
		standalone[m.Name] = true
		out = append(out, item[T]{name: m.Name, labels: m.Labels, spec: spec(o),
			path: ObjectPath(kind, m.Name).Child("spec"), src: Source{Kind: kind, Name: m.Name, Created: m.CreationTimestamp}})
	}
	if stack != nil {
		base := ObjectPath("LoadBalancerStack", stack.Name).Child("spec", stackField)
		for i, in := range fromStack(stack) {
			p := base.Index(i)
			if standalone[in.meta.Name] {
				b.conflict(ItemRef{Kind: kind, Name: in.meta.Name, Stack: stack.Name}, duplicate(p.Child("name"), in.meta.Name,
					fmt.Sprintf("a standalone %s of this name already exists and is not owned by this stack; rename the item or delete the standalone object", kind)))
				continue
			}
			out = append(out, item[T]{name: in.meta.Name, labels: in.meta.Labels, spec: in.spec, path: p,
				src: Source{Kind: "LoadBalancerStack", Name: stack.Name, Owner: stack.UID, Created: stack.CreationTimestamp}})
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].name < out[j].name })
	return out
}

func meta(o any) *metav1.ObjectMeta {
	switch o := o.(type) {
	case *lbv1.IPAddressPool:
		return &o.ObjectMeta
	case *lbv1.BFDProfile:
		return &o.ObjectMeta
	case *lbv1.Community:
		return &o.ObjectMeta
	case *lbv1.BGPPeer:
		return &o.ObjectMeta
	case *lbv1.L2Advertisement:
		return &o.ObjectMeta
	case *lbv1.BGPAdvertisement:
		return &o.ObjectMeta
	}
	panic(fmt.Sprintf("config: no metadata for %T", o))
}

// selectors converts label selectors, reporting each invalid one at the
// field that is wrong (matchLabels, matchExpressions[i].operator, ...).
func (b *builder) selectors(p *field.Path, in []metav1.LabelSelector) []labels.Selector {
	out, _ := b.selectorsOK(p, in)
	return out
}

// selectorsOK is selectors that also reports whether every selector was valid.
func (b *builder) selectorsOK(p *field.Path, in []metav1.LabelSelector) ([]labels.Selector, bool) {
	out := make([]labels.Selector, 0, len(in))
	for i := range in {
		if errs := metav1validation.ValidateLabelSelector(&in[i], metav1validation.LabelSelectorValidationOptions{}, p.Index(i)); len(errs) > 0 {
			b.errs = append(b.errs, errs...)
			continue
		}
		s, err := metav1.LabelSelectorAsSelector(&in[i])
		if err != nil {
			b.errs = append(b.errs, field.Invalid(p.Index(i), field.OmitValueType{}, err.Error()))
			continue
		}
		out = append(out, s)
	}
	return out, len(out) == len(in)
}

// duplicate is field.Duplicate with an explanation: field.Duplicate's
// second argument is the duplicated value, not a message.
func duplicate(p *field.Path, value any, detail string) *field.Error {
	e := field.Duplicate(p, value)
	e.Detail = detail
	return e
}

func (b *builder) warn(p *field.Path, format string, args ...any) {
	b.warnings = append(b.warnings, p.String()+": "+fmt.Sprintf(format, args...))
}

func dnsLabelErrors(name string) []string { return validation.IsDNS1123Label(name) }

// duration returns d's value or def when unset.
func duration(d *metav1.Duration, def time.Duration) time.Duration {
	if d == nil {
		return def
	}
	return d.Duration
}

func ms(v *int32, def time.Duration) time.Duration {
	if v == nil {
		return def
	}
	return time.Duration(*v) * time.Millisecond
}

func boolOr(v *bool, def bool) bool {
	if v == nil {
		return def
	}
	return *v
}

func addrString(a netip.Addr) string {
	if !a.IsValid() {
		return ""
	}
	return a.String()
}
