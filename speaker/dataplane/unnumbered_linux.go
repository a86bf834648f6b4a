package dataplane

import (
	"fmt"
	"net"
	"net/netip"
	"slices"

	"github.com/vishvananda/netlink"
)

// usableStates are the neighbor states of an entry that stands for a host
// on the link (not INCOMPLETE, FAILED or NOARP).
const usableStates = netlink.NUD_REACHABLE | netlink.NUD_STALE | netlink.NUD_DELAY | netlink.NUD_PROBE | netlink.NUD_PERMANENT

// linkLocalNeighbors lists the usable link-local neighbors on ifi (this
// node's own addresses left out), sorted.
func linkLocalNeighbors(ifi *net.Interface) ([]neighbor, error) {
	neighs, err := netlink.NeighList(ifi.Index, netlink.FAMILY_V6)
	if err != nil {
		return nil, fmt.Errorf("reading the neighbor table of %s: %w", ifi.Name, err)
	}
	var own []netip.Addr
	if addrs, err := ifi.Addrs(); err == nil {
		for _, a := range addrs {
			if p, err := netip.ParsePrefix(a.String()); err == nil {
				own = append(own, p.Addr())
			}
		}
	}
	var out []neighbor
	for _, n := range neighs {
		a, ok := netip.AddrFromSlice(n.IP)
		if !ok || !a.Is6() || !a.IsLinkLocalUnicast() || n.State&usableStates == 0 || slices.Contains(own, a) {
			continue
		}
		out = append(out, neighbor{addr: a.WithZone(ifi.Name), router: n.Flags&netlink.NTF_ROUTER != 0})
	}
	slices.SortFunc(out, func(a, b neighbor) int { return a.addr.Compare(b.addr) })
	return slices.CompactFunc(out, func(a, b neighbor) bool { return a.addr == b.addr }), nil
}
