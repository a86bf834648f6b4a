// Package configload reads the lbstack configuration objects from the API
// server (or a cache) for config.Build.
package configload

import (
	"context"
	"fmt"

	"sigs.k8s.io/controller-runtime/pkg/client"

	lbv1 "github.com/lbstack/lbstack/api/v1alpha1"
	"github.com/lbstack/lbstack/internal/config"
)

// List reads every lbstack configuration object: the input of
// config.Build (validity never depends on Nodes, so they are not read).
func List(ctx context.Context, r client.Reader) (config.Objects, error) {
	var (
		objs   config.Objects
		stacks lbv1.LoadBalancerStackList
		pools  lbv1.IPAddressPoolList
		l2s    lbv1.L2AdvertisementList
		bgps   lbv1.BGPAdvertisementList
		peers  lbv1.BGPPeerList
		bfds   lbv1.BFDProfileList
		comms  lbv1.CommunityList
	)
	for _, l := range []client.ObjectList{&stacks, &pools, &l2s, &bgps, &peers, &bfds, &comms} {
		if err := r.List(ctx, l); err != nil {
			return objs, fmt.Errorf("listing %T: %w", l, err)
		}
	}
	objs.Stacks, objs.Pools, objs.L2Advertisements, objs.BGPAdvertisements = stacks.Items, pools.Items, l2s.Items, bgps.Items
	objs.Peers, objs.BFDProfiles, objs.Communities = peers.Items, bfds.Items, comms.Items
	return objs, nil
}
