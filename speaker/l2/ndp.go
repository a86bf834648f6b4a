package l2

import (
	"context"
	"net"
	"net/netip"

	"github.com/mdlayher/ndp"
	"golang.org/x/net/ipv6"
)

// maxNDPMessage is the read buffer of an NDP socket: the largest jumbo
// frame's payload; a longer message is truncated and then malformed.
const maxNDPMessage = 9000

// readNDP answers NDP on one interface until its context ends.
func (a *Announcer) readNDP(ctx context.Context, ifc *iface, conn ndpConn) {
	b := make([]byte, maxNDPMessage)
	a.readLoop(ctx, ifc, "Reading NDP message failed", func() error {
		n, cm, src, err := conn.ReadRaw(b)
		if err == nil {
			a.handleNDPBytes(ifc, b[:n], cm, src)
		}
		return err
	})
}

// handleNDPBytes parses an ICMPv6 message (the socket lets only Neighbor
// Solicitations and Advertisements through) and handles it; one that does
// not parse is counted as malformed and dropped.
func (a *Announcer) handleNDPBytes(ifc *iface, b []byte, cm *ipv6.ControlMessage, src netip.Addr) {
	m, err := ndp.ParseMessage(b)
	if err != nil {
		a.stats.ndp.malformed.Add(1)
		a.log.V(4).Info("Ignoring malformed NDP message", "interface", ifc.name, "reason", err.Error())
		return
	}
	a.handleNDP(ifc, m, cm, src)
}

// handleNDP answers a Neighbor Solicitation for an address announced on the
// interface and reports a Neighbor Advertisement that claims such an address
// for another MAC. Messages that fail the validity checks of RFC 4861 7.1
// that can be made at this layer are dropped.
func (a *Announcer) handleNDP(ifc *iface, m ndp.Message, cm *ipv6.ControlMessage, src netip.Addr) {
	if cm != nil && cm.HopLimit != ndp.HopLimit {
		a.stats.ndp.malformed.Add(1)
		a.log.V(4).Info("Ignoring NDP message with a hop limit other than 255", "interface", ifc.name, "hopLimit", cm.HopLimit)
		return
	}
	switch m := m.(type) {
	case *ndp.NeighborSolicitation:
		a.handleSolicitation(ifc, m, src)
	case *ndp.NeighborAdvertisement:
		a.handleAdvertisement(ifc, m)
	}
}

func (a *Announcer) handleSolicitation(ifc *iface, ns *ndp.NeighborSolicitation, src netip.Addr) {
	dad := src.WithZone("").IsUnspecified()
	sll := linkLayerAddr(ns.Options, ndp.Source)
	switch {
	case !ns.TargetAddress.Is6() || ns.TargetAddress.Is4In6() || ns.TargetAddress.IsMulticast():
		a.stats.ndp.malformed.Add(1)
		return
	case dad && sll != nil:
		// RFC 4861 7.1.1: no source link-layer address option when
		// the source is unspecified.
		a.stats.ndp.malformed.Add(1)
		return
	case sll != nil && !unicastMAC(sll):
		a.stats.ndp.malformed.Add(1)
		return
	}
	a.stats.ndp.requests.Add(1)

	a.mu.RLock()
	defer a.mu.RUnlock()
	if ifc.closed {
		return
	}
	if _, ours := a.ourMACs[string(sll)]; sll != nil && ours {
		return
	}
	if _, owned := ifc.active[ns.TargetAddress]; !owned {
		return
	}
	// RFC 4861 7.2.4: a solicitation from the unspecified address (duplicate
	// address detection) is answered to all-nodes, without Solicited.
	dst := src
	if dad {
		dst = netip.IPv6LinkLocalAllNodes()
	}
	na := neighborAdvertisement(ns.TargetAddress, ifc.mac, !dad)
	if err := ifc.ndp.WriteTo(na, nil, dst); err != nil {
		a.stats.ndp.sendErrors.Add(1)
		a.log.Error(err, "Sending Neighbor Advertisement failed", "interface", ifc.name, "ip", ns.TargetAddress)
		return
	}
	a.stats.ndp.replies.Add(1)
	a.log.V(2).Info("Answered Neighbor Solicitation", "interface", ifc.name, "ip", ns.TargetAddress, "requester", src)
}

func (a *Announcer) handleAdvertisement(ifc *iface, na *ndp.NeighborAdvertisement) {
	if !na.TargetAddress.Is6() || na.TargetAddress.IsMulticast() {
		a.stats.ndp.malformed.Add(1)
		return
	}
	// Without a target link-layer address the claimant is unknown.
	tll := linkLayerAddr(na.Options, ndp.Target)
	if tll == nil {
		return
	}
	a.mu.RLock()
	_, ours := a.ourMACs[string(tll)]
	_, owned := ifc.active[na.TargetAddress]
	closed := ifc.closed
	a.mu.RUnlock()
	if !closed && owned && !ours {
		a.conflict(na.TargetAddress, ifc.name, ifc.mac, tll)
	}
}

// gratuitousNDPLocked sends an unsolicited Neighbor Advertisement for ip to
// all-nodes with Override set, so that neighbours replace the cached MAC
// (RFC 4861 7.2.6).
func (a *Announcer) gratuitousNDPLocked(ifc *iface, ip netip.Addr) {
	if err := ifc.ndp.WriteTo(neighborAdvertisement(ip, ifc.mac, false), nil, netip.IPv6LinkLocalAllNodes()); err != nil {
		a.stats.ndp.sendErrors.Add(1)
		a.log.Error(err, "Sending unsolicited Neighbor Advertisement failed", "interface", ifc.name, "ip", ip)
		return
	}
	a.stats.ndp.gratuitous.Add(1)
}

func neighborAdvertisement(target netip.Addr, mac net.HardwareAddr, solicited bool) *ndp.NeighborAdvertisement {
	return &ndp.NeighborAdvertisement{
		Solicited:     solicited,
		Override:      true,
		TargetAddress: target,
		Options: []ndp.Option{
			&ndp.LinkLayerAddress{Direction: ndp.Target, Addr: mac},
		},
	}
}

// linkLayerAddr returns the first link-layer address option of direction d.
func linkLayerAddr(opts []ndp.Option, d ndp.Direction) net.HardwareAddr {
	for _, o := range opts {
		if lla, ok := o.(*ndp.LinkLayerAddress); ok && lla.Direction == d {
			return lla.Addr
		}
	}
	return nil
}

// solicitedNode returns the solicited-node multicast group of an IPv6
// address.
func solicitedNode(ip netip.Addr) netip.Addr {
	g, err := ndp.SolicitedNodeMulticast(ip)
	if err != nil {
		// Only IPv6 addresses reach here.
		return netip.Addr{}
	}
	return g
}
