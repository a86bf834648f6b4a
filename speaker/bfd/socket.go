package bfd

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"syscall"

	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"
)

// DefaultPort is the UDP destination port of single-hop BFD Control
// packets (RFC 5881 §4).
const DefaultPort = 3784

// MultihopPort is the UDP destination port of multi-hop BFD Control
// packets (RFC 5883 §5).
const MultihopPort = 4784

// The source port range of single-hop BFD (RFC 5881 §4).
const (
	MinSourcePort = 49152
	MaxSourcePort = 65535
)

// gtsmTTL is the TTL (hop limit) of every packet we send and of every
// packet we accept (RFC 5881 §5, the Generalized TTL Security Mechanism).
const gtsmTTL = 255

// tosNetworkControl is the IP precedence "Internetwork Control" (DSCP CS6),
// which BIRD uses for BFD as well.
const tosNetworkControl = 0xc0

// readBufferSize holds any BFD packet (64 bytes with the longest
// authentication section) with room to spare.
const readBufferSize = 512

// listener receives Control packets for one address family on the BFD
// port, with the received TTL and the arrival interface.
type listener struct {
	// multihop: the listener is on the multi-hop port.
	multihop bool
	conn     *net.UDPConn
	p4       *ipv4.PacketConn
	p6       *ipv6.PacketConn
}

func listen(addr netip.AddrPort) (*listener, error) {
	network := "udp4"
	if addr.Addr().Is6() {
		network = "udp6"
	}
	// "udp6" on a wildcard address sets IPV6_V6ONLY: IPv4 arrives on the
	// IPv4 socket, with an IPv4 TTL.
	conn, err := net.ListenUDP(network, net.UDPAddrFromAddrPort(addr))
	if err != nil {
		return nil, fmt.Errorf("listening on %s: %w", addr, err)
	}
	l := &listener{conn: conn}
	if network == "udp4" {
		l.p4 = ipv4.NewPacketConn(conn)
		err = l.p4.SetControlMessage(ipv4.FlagTTL|ipv4.FlagInterface, true)
	} else {
		l.p6 = ipv6.NewPacketConn(conn)
		err = l.p6.SetControlMessage(ipv6.FlagHopLimit|ipv6.FlagInterface, true)
	}
	if err != nil {
		_ = conn.Close()
		return nil, fmt.Errorf("asking for the TTL of packets on %s: %w", addr, err)
	}
	return l, nil
}

func (l *listener) is4() bool { return l.p4 != nil }

func (l *listener) addr() netip.AddrPort {
	return l.conn.LocalAddr().(*net.UDPAddr).AddrPort()
}

// read returns one datagram's length, its TTL or hop limit (-1 if the
// kernel gave none), the index of the interface it arrived on (0 if
// unknown) and its source.
func (l *listener) read(b []byte) (n, ttl, ifindex int, src netip.AddrPort, err error) {
	var from net.Addr
	ttl = -1
	if l.p4 != nil {
		var cm *ipv4.ControlMessage
		n, cm, from, err = l.p4.ReadFrom(b)
		if cm != nil {
			ttl, ifindex = cm.TTL, cm.IfIndex
		}
	} else {
		var cm *ipv6.ControlMessage
		n, cm, from, err = l.p6.ReadFrom(b)
		if cm != nil {
			ttl, ifindex = cm.HopLimit, cm.IfIndex
		}
	}
	if ua, ok := from.(*net.UDPAddr); ok {
		src = ua.AddrPort()
	}
	return n, ttl, ifindex, src, err
}

func (l *listener) close() error { return l.conn.Close() }

// sender sends one session's Control packets from its own source port in
// MinSourcePort..MaxSourcePort with TTL 255.
type sender struct {
	conn *net.UDPConn
	p4   *ipv4.PacketConn
	p6   *ipv6.PacketConn
}

// openSender binds a UDP socket on local (an unspecified address lets the
// kernel choose the source) at the first free port of the BFD source range
// from first on, and sets TTL 255 and the network-control TOS.
func openSender(local netip.Addr, first uint16) (*sender, error) {
	network := "udp4"
	if local.Is6() {
		network = "udp6"
	}
	const count = MaxSourcePort - MinSourcePort + 1
	first = max(first, MinSourcePort)
	var conn *net.UDPConn
	for i := range count {
		port := MinSourcePort + (int(first)-MinSourcePort+i)%count
		c, err := net.ListenUDP(network, net.UDPAddrFromAddrPort(netip.AddrPortFrom(local, uint16(port))))
		if errors.Is(err, syscall.EADDRINUSE) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("binding a BFD source port on %s: %w", local, err)
		}
		conn = c
		break
	}
	if conn == nil {
		return nil, fmt.Errorf("binding a BFD source port on %s: every port from %d to %d is in use", local, MinSourcePort, MaxSourcePort)
	}
	s := &sender{conn: conn}
	var err error
	if network == "udp4" {
		s.p4 = ipv4.NewPacketConn(conn)
		err = errors.Join(s.p4.SetTTL(gtsmTTL), s.p4.SetTOS(tosNetworkControl))
	} else {
		s.p6 = ipv6.NewPacketConn(conn)
		err = errors.Join(s.p6.SetHopLimit(gtsmTTL), s.p6.SetTrafficClass(tosNetworkControl))
	}
	if err != nil {
		_ = conn.Close()
		return nil, fmt.Errorf("setting TTL 255 on %s: %w", conn.LocalAddr(), err)
	}
	return s, nil
}

// send sends b to dst, through the interface ifindex if it is not 0.
func (s *sender) send(b []byte, dst netip.AddrPort, ifindex int) error {
	if ifindex == 0 {
		_, err := s.conn.WriteToUDPAddrPort(b, dst)
		return err
	}
	ua := net.UDPAddrFromAddrPort(dst)
	var err error
	if s.p4 != nil {
		_, err = s.p4.WriteTo(b, &ipv4.ControlMessage{IfIndex: ifindex}, ua)
	} else {
		_, err = s.p6.WriteTo(b, &ipv6.ControlMessage{HopLimit: gtsmTTL, IfIndex: ifindex}, ua)
	}
	return err
}

func (s *sender) localAddr() netip.AddrPort {
	return s.conn.LocalAddr().(*net.UDPAddr).AddrPort()
}

func (s *sender) close() error { return s.conn.Close() }
