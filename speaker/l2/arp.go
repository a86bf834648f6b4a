package l2

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"

	"github.com/mdlayher/arp"
	"github.com/mdlayher/packet"
)

const (
	// arpPacketLen is the length of an ARP packet for IPv4 over Ethernet;
	// frames may carry Ethernet padding after it.
	arpPacketLen = 28
	// arpHardwareEthernet is the ARP hardware type of Ethernet.
	arpHardwareEthernet = 1
	// etherTypeIPv4 is the ARP protocol type of IPv4.
	etherTypeIPv4 = 0x0800
)

// parseARP decodes an ARP payload, accepting only IPv4-over-Ethernet
// requests and replies from a unicast sender hardware address. It never
// panics, whatever b holds.
func parseARP(b []byte) (*arp.Packet, error) {
	if len(b) < arpPacketLen {
		return nil, fmt.Errorf("ARP packet of %d bytes, want at least %d", len(b), arpPacketLen)
	}
	if ht := binary.BigEndian.Uint16(b[0:2]); ht != arpHardwareEthernet {
		return nil, fmt.Errorf("ARP hardware type %d, want Ethernet", ht)
	}
	if pt := binary.BigEndian.Uint16(b[2:4]); pt != etherTypeIPv4 {
		return nil, fmt.Errorf("ARP protocol type %#04x, want IPv4", pt)
	}
	if b[4] != 6 || b[5] != 4 {
		return nil, fmt.Errorf("ARP address lengths %d/%d, want 6/4", b[4], b[5])
	}
	op := arp.Operation(binary.BigEndian.Uint16(b[6:8]))
	if op != arp.OperationRequest && op != arp.OperationReply {
		return nil, fmt.Errorf("ARP operation %d", op)
	}
	p := new(arp.Packet)
	if err := p.UnmarshalBinary(b[:arpPacketLen]); err != nil {
		return nil, fmt.Errorf("decoding ARP packet: %w", err)
	}
	if !unicastMAC(p.SenderHardwareAddr) {
		return nil, fmt.Errorf("ARP sender hardware address %s is not unicast", p.SenderHardwareAddr)
	}
	return p, nil
}

// unicastMAC reports whether mac is a non-zero unicast Ethernet address.
func unicastMAC(mac net.HardwareAddr) bool {
	return len(mac) == 6 && mac[0]&1 == 0 && !bytes.Equal(mac, make(net.HardwareAddr, 6))
}

func broadcastMAC() net.HardwareAddr { return net.HardwareAddr{0xff, 0xff, 0xff, 0xff, 0xff, 0xff} }

// readARP answers ARP on one interface until its context ends.
func (a *Announcer) readARP(ctx context.Context, ifc *iface, conn net.PacketConn) {
	buf := make([]byte, 256)
	a.readLoop(ctx, ifc, "Reading ARP packet failed", func() error {
		n, _, err := conn.ReadFrom(buf)
		if err == nil {
			a.handleARP(ifc, buf[:n])
		}
		return err
	})
}

// readLoop calls read until ctx ends or the socket is closed; after a read
// error it logs failed and pauses. It runs as one of the Announcer's
// reader goroutines.
func (a *Announcer) readLoop(ctx context.Context, ifc *iface, failed string, read func() error) {
	defer a.wg.Done()
	for {
		err := read()
		if err == nil {
			continue
		}
		if ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
			return
		}
		a.log.Error(err, failed, "interface", ifc.name)
		if !a.pause(ctx) {
			return
		}
	}
}

// handleARP answers a request for an address announced on the interface and
// reports a packet that claims such an address for another MAC.
func (a *Announcer) handleARP(ifc *iface, b []byte) {
	p, err := parseARP(b)
	if err != nil {
		a.stats.arp.malformed.Add(1)
		a.log.V(4).Info("Ignoring malformed ARP packet", "interface", ifc.name, "reason", err.Error())
		return
	}
	if p.Operation == arp.OperationRequest {
		a.stats.arp.requests.Add(1)
	}

	conflict := false
	a.mu.RLock()
	if _, ours := a.ourMACs[string(p.SenderHardwareAddr)]; !ifc.closed && !ours {
		// Gratuitous ARP (either form) and replies carry the claimed
		// address as sender.
		_, conflict = ifc.active[p.SenderIP]
		if _, owned := ifc.active[p.TargetIP]; owned && p.Operation == arp.OperationRequest && p.SenderIP != p.TargetIP {
			a.replyARPLocked(ifc, p)
		}
	}
	a.mu.RUnlock()

	if conflict {
		a.conflict(p.SenderIP, ifc.name, ifc.mac, p.SenderHardwareAddr)
	}
}

// replyARPLocked answers req, which asks for an address announced on ifc,
// with the MAC of ifc. It is called with a.mu held (for reading at least), so
// that no reply leaves after the address stops being owned.
func (a *Announcer) replyARPLocked(ifc *iface, req *arp.Packet) {
	reply, err := arp.NewPacket(arp.OperationReply, ifc.mac, req.TargetIP, req.SenderHardwareAddr, req.SenderIP)
	if err == nil {
		err = writeARP(ifc.arp, reply, req.SenderHardwareAddr)
	}
	if err != nil {
		a.stats.arp.sendErrors.Add(1)
		a.log.Error(err, "Sending ARP reply failed", "interface", ifc.name, "ip", req.TargetIP)
		return
	}
	a.stats.arp.replies.Add(1)
	if v := a.log.V(2); v.Enabled() {
		v.Info("Answered ARP request", "interface", ifc.name, "ip", req.TargetIP, "requester", req.SenderHardwareAddr.String())
	}
}

// gratuitousARPLocked broadcasts both forms of gratuitous ARP for ip: a
// request (RFC 5227 announcement: sender and target IP are ip, target MAC
// zero) and a reply (target MAC broadcast). Some hosts update their caches
// only from one of the two.
func (a *Announcer) gratuitousARPLocked(ifc *iface, ip netip.Addr) {
	forms := []struct {
		op       arp.Operation
		targetHW net.HardwareAddr
	}{
		{arp.OperationRequest, make(net.HardwareAddr, 6)},
		{arp.OperationReply, broadcastMAC()},
	}
	for _, f := range forms {
		p, err := arp.NewPacket(f.op, ifc.mac, ip, f.targetHW, ip)
		if err == nil {
			err = writeARP(ifc.arp, p, broadcastMAC())
		}
		if err != nil {
			a.stats.arp.sendErrors.Add(1)
			a.log.Error(err, "Sending gratuitous ARP failed", "interface", ifc.name, "ip", ip, "operation", f.op.String())
			continue
		}
		a.stats.arp.gratuitous.Add(1)
	}
}

func writeARP(conn net.PacketConn, p *arp.Packet, dst net.HardwareAddr) error {
	b, err := p.MarshalBinary()
	if err != nil {
		return fmt.Errorf("encoding ARP packet: %w", err)
	}
	if _, err := conn.WriteTo(b, &packet.Addr{HardwareAddr: dst}); err != nil {
		return fmt.Errorf("writing ARP packet to %s: %w", dst, err)
	}
	return nil
}
