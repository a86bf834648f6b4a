package webhooks

import (
	"context"
	"fmt"

	"sigs.k8s.io/controller-runtime/pkg/client"

	lbv1 "github.com/lbstack/lbstack/api/v1alpha1"
	"github.com/lbstack/lbstack/internal/config"
	"github.com/lbstack/lbstack/internal/configload"
)

// listObjects reads every lbstack configuration object and the nodes.
func listObjects(ctx context.Context, r client.Reader) (config.Objects, error) {
	return configload.List(ctx, r)
}

// replace returns items with obj in place of the item of the same name,
// or appended; with remove it returns items without that name.
func replace[T any, P interface {
	*T
	client.Object
}](items []T, obj P, remove bool) []T {
	out := make([]T, 0, len(items)+1)
	for i := range items {
		if P(&items[i]).GetName() != obj.GetName() {
			out = append(out, items[i])
		}
	}
	if !remove {
		out = append(out, *obj)
	}
	return out
}

// with returns objs with obj swapped in (or removed).
func with(objs config.Objects, obj client.Object, remove bool) config.Objects {
	switch o := obj.(type) {
	case *lbv1.LoadBalancerStack:
		objs.Stacks = replace(objs.Stacks, o, remove)
	case *lbv1.IPAddressPool:
		objs.Pools = replace(objs.Pools, o, remove)
	case *lbv1.L2Advertisement:
		objs.L2Advertisements = replace(objs.L2Advertisements, o, remove)
	case *lbv1.BGPAdvertisement:
		objs.BGPAdvertisements = replace(objs.BGPAdvertisements, o, remove)
	case *lbv1.BGPPeer:
		objs.Peers = replace(objs.Peers, o, remove)
	case *lbv1.BFDProfile:
		objs.BFDProfiles = replace(objs.BFDProfiles, o, remove)
	case *lbv1.Community:
		objs.Communities = replace(objs.Communities, o, remove)
	default:
		panic(fmt.Sprintf("webhooks: %T is not an lbstack configuration kind", obj))
	}
	return objs
}
