package dataplane

import (
	"fmt"
	"net"
	"net/netip"
	"time"

	"golang.org/x/net/icmp"
	"golang.org/x/net/ipv6"
)

// LinkLocalNeighbor finds the router of an unnumbered BGP session: the one
// IPv6 link-local neighbor on interface ifname in the kernel's neighbor
// table (a neighbor flagged as a router wins over others). When there is
// none yet it pings all nodes on the link (each answering host first
// solicits this node's address, which enters it in the table) and looks
// again for up to 300 ms. A link with several candidates is refused: an
// unnumbered session needs a point-to-point link.
func LinkLocalNeighbor(ifname string) (netip.Addr, error) {
	ifi, err := net.InterfaceByName(ifname)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("interface %s: %w", ifname, err)
	}
	found, err := linkLocalNeighbors(ifi)
	if err == nil && len(found) == 0 {
		pingAllNodes(ifi)
		for range 3 {
			time.Sleep(100 * time.Millisecond)
			if found, err = linkLocalNeighbors(ifi); err != nil || len(found) > 0 {
				break
			}
		}
	}
	if err != nil {
		return netip.Addr{}, err
	}
	switch len(found) {
	case 0:
		return netip.Addr{}, fmt.Errorf("no IPv6 link-local neighbor on interface %s yet (the router must answer on the link)", ifname)
	case 1:
		return found[0].addr, nil
	}
	var routers []netip.Addr
	var all []string
	for _, n := range found {
		all = append(all, n.addr.String())
		if n.router {
			routers = append(routers, n.addr)
		}
	}
	if len(routers) == 1 {
		return routers[0], nil
	}
	return netip.Addr{}, fmt.Errorf("several IPv6 link-local neighbors on interface %s (%v); an unnumbered session needs a point-to-point link", ifname, all)
}

type neighbor struct {
	addr   netip.Addr
	router bool
}

// pingAllNodes sends one ICMPv6 echo request to ff02::1 on ifi (best
// effort: errors are for the caller's "no neighbor" to report).
func pingAllNodes(ifi *net.Interface) {
	c, err := icmp.ListenPacket("ip6:ipv6-icmp", "::")
	if err != nil {
		return
	}
	defer c.Close()
	msg := icmp.Message{Type: ipv6.ICMPTypeEchoRequest, Body: &icmp.Echo{ID: 0x1b5, Seq: 1, Data: []byte("lbstack")}}
	b, err := msg.Marshal(nil)
	if err != nil {
		return
	}
	_ = c.SetWriteDeadline(time.Now().Add(time.Second))
	_, _ = c.WriteTo(b, &net.IPAddr{IP: net.ParseIP("ff02::1"), Zone: ifi.Name})
}
