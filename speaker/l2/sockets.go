package l2

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"syscall"

	"github.com/mdlayher/ndp"
	"github.com/mdlayher/packet"
	"golang.org/x/net/ipv6"
)

// etherTypeARP is the EtherType of ARP.
const etherTypeARP = 0x0806

// ndpConn is an NDP socket bound to one interface; *ndp.Conn implements it.
type ndpConn interface {
	// ReadRaw reads one ICMPv6 message, unparsed, into b (as *ndp.Conn
	// does): the Announcer parses it, so that a malformed message is
	// counted rather than silently skipped.
	ReadRaw(b []byte) (int, *ipv6.ControlMessage, netip.Addr, error)
	WriteTo(m ndp.Message, cm *ipv6.ControlMessage, dst netip.Addr) error
	JoinGroup(group netip.Addr) error
	LeaveGroup(group netip.Addr) error
	Close() error
}

// dialer opens the per-interface sockets.
//
// The ARP socket is a net.PacketConn that carries ARP payloads (no Ethernet
// header) and addresses peers with *packet.Addr: in production an AF_PACKET
// SOCK_DGRAM socket bound to the ARP EtherType, so the kernel builds the
// Ethernet header with the interface's own MAC as source.
type dialer interface {
	dialARP(l link) (net.PacketConn, error)
	dialNDP(l link) (ndpConn, error)
}

// osDialer opens real sockets; it needs CAP_NET_RAW.
type osDialer struct{}

func (osDialer) dialARP(l link) (net.PacketConn, error) {
	c, err := packet.Listen(l.netInterface(), packet.Datagram, etherTypeARP, nil)
	if err != nil {
		return nil, fmt.Errorf("opening ARP socket on %s: %w", l.name, err)
	}
	return c, nil
}

// errNoLinkLocal says that an interface has no IPv6 link-local address to
// bind an NDP socket to.
var errNoLinkLocal = errors.New("no IPv6 link-local address")

// ndpNotApplicable reports whether err, from dialNDP, means that the
// interface has no NDP to answer yet rather than that the socket failed:
// it has no IPv6 link-local address (IPv6 disabled, no carrier yet), or the
// address cannot be bound to (still tentative during duplicate address
// detection, or just removed).
func ndpNotApplicable(err error) bool {
	return errors.Is(err, errNoLinkLocal) || errors.Is(err, syscall.EADDRNOTAVAIL)
}

// dialNDP opens a raw ICMPv6 socket bound to the link-local address of the
// interface (which also binds it to the interface), lets only Neighbor
// Solicitations and Advertisements through, and asks for the hop limit of
// received packets so that off-link NDP can be dropped (RFC 4861 7.1).
func (osDialer) dialNDP(l link) (ndpConn, error) {
	ifi := l.netInterface()
	addrs, err := ifi.Addrs()
	if err != nil {
		return nil, fmt.Errorf("listing the addresses of %s: %w", l.name, err)
	}
	if !hasLinkLocal(addrs) {
		return nil, fmt.Errorf("opening NDP socket on %s: %w", l.name, errNoLinkLocal)
	}
	c, _, err := ndp.Listen(ifi, ndp.LinkLocal)
	if err != nil {
		return nil, fmt.Errorf("opening NDP socket on %s: %w", l.name, err)
	}
	var f ipv6.ICMPFilter
	f.SetAll(true)
	f.Accept(ipv6.ICMPTypeNeighborSolicitation)
	f.Accept(ipv6.ICMPTypeNeighborAdvertisement)
	if err := c.SetICMPFilter(&f); err != nil {
		return nil, errors.Join(fmt.Errorf("setting ICMPv6 filter on %s: %w", l.name, err), c.Close())
	}
	if err := c.SetControlMessage(ipv6.FlagHopLimit, true); err != nil {
		return nil, errors.Join(fmt.Errorf("asking for the hop limit on %s: %w", l.name, err), c.Close())
	}
	return c, nil
}

// hasLinkLocal reports whether addrs hold an IPv6 link-local unicast address.
func hasLinkLocal(addrs []net.Addr) bool {
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok {
			if ip, ok := netip.AddrFromSlice(n.IP); ok && ip.Is6() && !ip.Is4In6() && ip.IsLinkLocalUnicast() {
				return true
			}
		}
	}
	return false
}
