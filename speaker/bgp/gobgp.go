package bgp

import (
	"fmt"
	"net/netip"
	"strings"
	"time"

	api "github.com/osrg/gobgp/v3/api"
	"github.com/osrg/gobgp/v3/pkg/apiutil"
	"github.com/osrg/gobgp/v3/pkg/packet/bgp"
)

// This file converts our types to gobgp's API structs. Nothing here talks
// to the server.

const (
	// gracefulRestartTime is the restart time we advertise, in seconds.
	gracefulRestartTime = 120
	// importPolicyName is the global import policy that keeps routes
	// learned from routers out of the RIB.
	importPolicyName = "lbstack-import"
	// exportPolicyName is the global export policy that holds every
	// peer's statements.
	exportPolicyName = "lbstack-export"
	// globalRIB names the global RIB in policy assignments.
	globalRIB = "global"
	// disableCommunication is the shutdown communication (RFC 8203) sent
	// with SetPeerDown.
	disableCommunication = "lbstack: session shut down"
)

func familyIPv4() *api.Family {
	return &api.Family{Afi: api.Family_AFI_IP, Safi: api.Family_SAFI_UNICAST}
}
func familyIPv6() *api.Family {
	return &api.Family{Afi: api.Family_AFI_IP6, Safi: api.Family_SAFI_UNICAST}
}

// Names of a peer's policy objects. They use the peer's id, never reused,
// rather than its name, so a re-created peer never meets stale objects.
func statementName(id uint32, what string) string { return fmt.Sprintf("lbstack-peer-%d-%s", id, what) }
func neighborSetName(id uint32) string            { return fmt.Sprintf("lbstack-peer-%d", id) }
func prefixSetName(id uint32, v6 bool) string {
	if v6 {
		return fmt.Sprintf("lbstack-peer-%d-v6", id)
	}
	return fmt.Sprintf("lbstack-peer-%d-v4", id)
}
func markerSetName(id uint32) string { return fmt.Sprintf("lbstack-peer-%d-withdraw", id) }

func seconds(d time.Duration) uint64 { return uint64(d / time.Second) }

// apiPeer builds the neighbor for p.
func apiPeer(p Peer, globalASN uint32, adminDown bool) *api.Peer {
	v4, v6 := p.families()
	var afs []*api.AfiSafi
	for _, f := range []struct {
		on  bool
		fam func() *api.Family
	}{{v4, familyIPv4}, {v6, familyIPv6}} {
		if !f.on {
			continue
		}
		afs = append(afs, &api.AfiSafi{
			Config:            &api.AfiSafiConfig{Family: f.fam(), Enabled: true},
			MpGracefulRestart: &api.MpGracefulRestart{Config: &api.MpGracefulRestartConfig{Enabled: p.GracefulRestart}},
		})
	}
	out := &api.Peer{
		Conf: &api.PeerConf{
			NeighborAddress: p.Address.String(),
			PeerAsn:         p.PeerASN,
			LocalAsn:        p.localASN(globalASN),
			AuthPassword:    p.Password,
			AdminDown:       adminDown,
			Description:     p.Name,
		},
		Transport: &api.Transport{RemotePort: uint32(p.Port)},
		Timers: &api.Timers{Config: &api.TimersConfig{
			HoldTime:          seconds(p.HoldTime),
			KeepaliveInterval: seconds(p.KeepaliveTime),
			ConnectRetry:      seconds(p.ConnectTime),
		}},
		AfiSafis: afs,
	}
	switch {
	case p.SourceAddress.IsValid():
		out.Transport.LocalAddress = p.SourceAddress.String()
	case p.Interface != "":
		// gobgp would pick the interface's link-local address with its
		// zone, which it then cannot parse: the next hop it sends becomes
		// the zero address (routers drop the routes). Unspecified makes
		// it take the session's address from the socket.
		out.Transport.LocalAddress = "::"
	}
	if p.EBGPMultiHop {
		out.EbgpMultihop = &api.EbgpMultihop{Enabled: true, MultihopTtl: 255}
	}
	if p.GracefulRestart {
		out.GracefulRestart = &api.GracefulRestart{Enabled: true, RestartTime: gracefulRestartTime}
	}
	return out
}

// apiPrefixSet is a prefix set matching exactly these prefixes.
func apiPrefixSet(name string, prefixes []netip.Prefix) *api.DefinedSet {
	ps := make([]*api.Prefix, 0, len(prefixes))
	for _, p := range prefixes {
		ps = append(ps, &api.Prefix{IpPrefix: p.String(), MaskLengthMin: uint32(p.Bits()), MaskLengthMax: uint32(p.Bits())})
	}
	return &api.DefinedSet{DefinedType: api.DefinedType_PREFIX, Name: name, Prefixes: ps}
}

func markerString(id uint32) string {
	return fmt.Sprintf("%d:%d:%d", markerGlobalAdmin, markerLocal1, id)
}

// apiMarkerSet matches the withdraw marker of the peer with this id.
func apiMarkerSet(id uint32) *api.DefinedSet {
	return &api.DefinedSet{DefinedType: api.DefinedType_LARGE_COMMUNITY, Name: markerSetName(id), List: []string{markerString(id)}}
}

// apiNeighborSet matches the peer with this id and address.
func apiNeighborSet(id uint32, addr netip.Addr) *api.DefinedSet {
	return &api.DefinedSet{DefinedType: api.DefinedType_NEIGHBOR, Name: neighborSetName(id), List: []string{netip.PrefixFrom(addr, addr.BitLen()).String()}}
}

// peerSets are the defined sets of the peer with this id, the neighbor
// set first; only their types and names matter for deletion.
func peerSets(id uint32, addr netip.Addr, v4, v6 []netip.Prefix) []*api.DefinedSet {
	return []*api.DefinedSet{
		apiNeighborSet(id, addr),
		apiPrefixSet(prefixSetName(id, false), v4),
		apiPrefixSet(prefixSetName(id, true), v6),
		apiMarkerSet(id),
	}
}

// apiPeerStatements are the statements of the peer with this id in the
// global export policy; see the package doc.
func apiPeerStatements(id uint32) []*api.Statement {
	strip := &api.CommunityAction{
		Type:        api.CommunityAction_REMOVE,
		Communities: []string{fmt.Sprintf("^%d:%d:[0-9]+$", markerGlobalAdmin, markerLocal1)},
	}
	neighbor := &api.MatchSet{Type: api.MatchSet_ANY, Name: neighborSetName(id)}
	return []*api.Statement{
		{
			Name: statementName(id, "withdraw"),
			Conditions: &api.Conditions{
				NeighborSet:       neighbor,
				LargeCommunitySet: &api.MatchSet{Type: api.MatchSet_ANY, Name: markerSetName(id)},
			},
			Actions: &api.Actions{RouteAction: api.RouteAction_REJECT},
		},
		{
			Name: statementName(id, "v4"),
			Conditions: &api.Conditions{
				NeighborSet: neighbor,
				PrefixSet:   &api.MatchSet{Type: api.MatchSet_ANY, Name: prefixSetName(id, false)},
			},
			Actions: &api.Actions{RouteAction: api.RouteAction_ACCEPT, LargeCommunity: strip},
		},
		{
			Name: statementName(id, "v6"),
			Conditions: &api.Conditions{
				NeighborSet: neighbor,
				PrefixSet:   &api.MatchSet{Type: api.MatchSet_ANY, Name: prefixSetName(id, true)},
			},
			Actions: &api.Actions{RouteAction: api.RouteAction_ACCEPT, LargeCommunity: strip},
		},
	}
}

// apiImportPolicy accepts locally originated paths only.
func apiImportPolicy() *api.Policy {
	return &api.Policy{Name: importPolicyName, Statements: []*api.Statement{{
		Name:       importPolicyName + "-local",
		Conditions: &api.Conditions{RouteType: api.Conditions_ROUTE_TYPE_LOCAL},
		Actions:    &api.Actions{RouteAction: api.RouteAction_ACCEPT},
	}}}
}

// apiPath builds the global path of prefix with a, plus the withdraw
// markers of the peers with these ids.
func apiPath(prefix netip.Prefix, a attrs, markers []uint32, age time.Time) (*api.Path, error) {
	var nlri bgp.AddrPrefixInterface
	pattrs := []bgp.PathAttributeInterface{bgp.NewPathAttributeOrigin(bgp.BGP_ORIGIN_ATTR_TYPE_IGP)}
	if prefix.Addr().Is4() {
		nlri = bgp.NewIPAddrPrefix(uint8(prefix.Bits()), prefix.Addr().String())
		nh := "0.0.0.0"
		if a.nextHop.IsValid() {
			nh = a.nextHop.String()
		}
		pattrs = append(pattrs, bgp.NewPathAttributeNextHop(nh))
	} else {
		nlri = bgp.NewIPv6AddrPrefix(uint8(prefix.Bits()), prefix.Addr().String())
		nh := "::"
		if a.nextHop.IsValid() {
			nh = a.nextHop.String()
		}
		pattrs = append(pattrs, bgp.NewPathAttributeMpReachNLRI(nh, []bgp.AddrPrefixInterface{nlri}))
	}
	if a.hasLocalPref {
		pattrs = append(pattrs, bgp.NewPathAttributeLocalPref(a.localPref))
	}
	if len(a.communities) > 0 {
		pattrs = append(pattrs, bgp.NewPathAttributeCommunities(a.communities))
	}
	if len(a.large) > 0 || len(markers) > 0 {
		lcs := make([]*bgp.LargeCommunity, 0, len(a.large)+len(markers))
		for _, lc := range a.large {
			lcs = append(lcs, bgp.NewLargeCommunity(lc[0], lc[1], lc[2]))
		}
		for _, id := range markers {
			lcs = append(lcs, bgp.NewLargeCommunity(markerGlobalAdmin, markerLocal1, id))
		}
		pattrs = append(pattrs, bgp.NewPathAttributeLargeCommunities(lcs))
	}
	p, err := apiutil.NewPath(nlri, false, pattrs, age)
	if err != nil {
		return nil, fmt.Errorf("encoding path %v: %w", prefix, err)
	}
	return p, nil
}

// stateName is gobgp's session state in lower case.
func stateName(s api.PeerState_SessionState) string {
	return strings.ToLower(s.String())
}
