package l2

import (
	"bytes"
	"encoding/binary"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mdlayher/arp"
)

func TestParseARP(t *testing.T) {
	valid := arpRequest(t, macPeer, peer4, vip4)
	mutate := func(f func(b []byte)) []byte {
		b := bytes.Clone(valid)
		f(b)
		return b
	}
	tests := map[string]struct {
		b       []byte
		wantErr bool
	}{
		"request":                    {b: valid},
		"reply":                      {b: arpBytes(t, arp.OperationReply, macPeer, peer4, mac0, vip4)},
		"Ethernet padding":           {b: append(bytes.Clone(valid), make([]byte, 18)...)},
		"empty":                      {b: nil, wantErr: true},
		"truncated":                  {b: valid[:27], wantErr: true},
		"hardware type not Ethernet": {b: mutate(func(b []byte) { b[1] = 6 }), wantErr: true},
		"protocol not IPv4":          {b: mutate(func(b []byte) { binary.BigEndian.PutUint16(b[2:4], 0x86dd) }), wantErr: true},
		"hardware length 8":          {b: mutate(func(b []byte) { b[4] = 8 }), wantErr: true},
		// arp.Packet.UnmarshalBinary would decode IPv6 addresses here.
		"protocol length 16": {b: append(mutate(func(b []byte) { b[5] = 16 }), make([]byte, 32)...), wantErr: true},
		"operation 3":        {b: mutate(func(b []byte) { b[7] = 3 }), wantErr: true},
		"operation 0":        {b: mutate(func(b []byte) { b[7] = 0 }), wantErr: true},
		"broadcast sender":   {b: mutate(func(b []byte) { copy(b[8:14], broadcastMAC()) }), wantErr: true},
		"multicast sender":   {b: mutate(func(b []byte) { copy(b[8:14], []byte{0x01, 0, 0x5e, 0, 0, 1}) }), wantErr: true},
		"zero sender":        {b: mutate(func(b []byte) { clear(b[8:14]) }), wantErr: true},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			p, err := parseARP(tc.b)
			if tc.wantErr {
				if err == nil {
					t.Fatalf("parseARP(%x) = %+v, want an error", tc.b, p)
				}
				return
			}
			if err != nil {
				t.Fatalf("parseARP: %v", err)
			}
			if p.TargetIP != vip4 || !bytes.Equal(p.SenderHardwareAddr, macPeer) {
				t.Errorf("parseARP = %+v, want target %s from %s", p, vip4, macPeer)
			}
		})
	}
}

// FuzzParseARP checks that parseARP never panics and that whatever it
// accepts is IPv4 over Ethernet, encodes back to the same bytes, and can be
// answered without panicking.
func FuzzParseARP(f *testing.F) {
	f.Add(arpRequest(f, macPeer, peer4, vip4))
	f.Add(arpBytes(f, arp.OperationReply, macPeer, vip4, broadcastMAC(), vip4))
	f.Add(append(arpRequest(f, macPeer, peer4, vip4), make([]byte, 18)...))
	f.Add([]byte{0, 1, 8, 0, 6, 16, 0, 1})
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := parseARP(b)
		if err != nil {
			return
		}
		if !p.SenderIP.Is4() || !p.TargetIP.Is4() || len(p.SenderHardwareAddr) != 6 || len(p.TargetHardwareAddr) != 6 {
			t.Fatalf("parseARP accepted %+v", p)
		}
		enc, err := p.MarshalBinary()
		if err != nil {
			t.Fatalf("MarshalBinary: %v", err)
		}
		if !bytes.Equal(enc, b[:arpPacketLen]) {
			t.Fatalf("Re-encoded %x, want %x", enc, b[:arpPacketLen])
		}
		if _, err := arp.NewPacket(arp.OperationReply, mac0, p.TargetIP, p.SenderHardwareAddr, p.SenderIP); err != nil {
			t.Fatalf("Cannot build a reply to %+v: %v", p, err)
		}
	})
}

// FuzzHandleARP feeds arbitrary payloads to the responder of an interface
// that announces vip4 and checks that whatever it sends is a reply for vip4
// with the interface's MAC.
func FuzzHandleARP(f *testing.F) {
	f.Add(arpRequest(f, macPeer, peer4, vip4))
	f.Add(arpBytes(f, arp.OperationRequest, macPeer, vip4, make(net.HardwareAddr, 6), vip4))
	f.Add(arpBytes(f, arp.OperationReply, macOther, vip4, broadcastMAC(), vip4))
	f.Add([]byte{0, 1, 8, 0, 6, 4, 0, 1})
	h := newHarness(f, Config{Gratuitous: []time.Duration{}}, ethLink("eth0", 2, mac0))
	h.a.SetOwned(map[netip.Addr]Target{vip4: {}})
	h.a.mu.RLock()
	ifc := h.a.ifaces["eth0"]
	h.a.mu.RUnlock()
	conn := h.dial.arpConn(f, "eth0")
	f.Fuzz(func(t *testing.T, b []byte) {
		before := conn.sentCount()
		h.a.handleARP(ifc, b)
		sent := conn.packets(t)[before:]
		for _, s := range sent {
			if s.p.Operation != arp.OperationReply || s.p.SenderIP != vip4 || !bytes.Equal(s.p.SenderHardwareAddr, mac0) {
				t.Fatalf("Sent %+v in answer to %x", s.p, b)
			}
		}
		h.drainConflicts()
	})
}

func TestARPResponder(t *testing.T) {
	tests := map[string]struct {
		owned     map[netip.Addr]Target
		on        string
		packet    []byte
		wantReply bool
		wantMAC   net.HardwareAddr
		stats     ProtocolStats
	}{
		"owned address, answered with the MAC of the receiving interface": {
			owned:     map[netip.Addr]Target{vip4: {}},
			on:        "eth1",
			packet:    arpRequest(t, macPeer, peer4, vip4),
			wantReply: true,
			wantMAC:   mac1,
			stats:     ProtocolStats{RequestsReceived: 1, RepliesSent: 1},
		},
		"owned address on the other interface": {
			owned:     map[netip.Addr]Target{vip4: {}},
			on:        "eth0",
			packet:    arpRequest(t, macPeer, peer4, vip4),
			wantReply: true,
			wantMAC:   mac0,
			stats:     ProtocolStats{RequestsReceived: 1, RepliesSent: 1},
		},
		"ARP probe (sender 0.0.0.0) for an owned address": {
			owned:     map[netip.Addr]Target{vip4: {}},
			on:        "eth0",
			packet:    arpRequest(t, macPeer, netip.IPv4Unspecified(), vip4),
			wantReply: true,
			wantMAC:   mac0,
			stats:     ProtocolStats{RequestsReceived: 1, RepliesSent: 1},
		},
		"address not owned": {
			owned:  map[netip.Addr]Target{vip4b: {}},
			on:     "eth0",
			packet: arpRequest(t, macPeer, peer4, vip4),
			stats:  ProtocolStats{RequestsReceived: 1},
		},
		"owned but restricted to another interface": {
			owned:  map[netip.Addr]Target{vip4: {Interfaces: []string{"eth0"}}},
			on:     "eth1",
			packet: arpRequest(t, macPeer, peer4, vip4),
			stats:  ProtocolStats{RequestsReceived: 1},
		},
		"request from one of our own MACs": {
			owned:  map[netip.Addr]Target{vip4: {}},
			on:     "eth0",
			packet: arpRequest(t, mac1, peer4, vip4),
			stats:  ProtocolStats{RequestsReceived: 1},
		},
		"reply for an owned address is not answered": {
			owned:  map[netip.Addr]Target{vip4: {}},
			on:     "eth0",
			packet: arpBytes(t, arp.OperationReply, macPeer, peer4, mac0, vip4),
		},
		"IPv4 address owned only as IPv6": {
			owned:  map[netip.Addr]Target{vip6: {}},
			on:     "eth0",
			packet: arpRequest(t, macPeer, peer4, vip4),
			stats:  ProtocolStats{RequestsReceived: 1},
		},
		"malformed": {
			owned:  map[netip.Addr]Target{vip4: {}},
			on:     "eth0",
			packet: arpRequest(t, macPeer, peer4, vip4)[:20],
			stats:  ProtocolStats{Malformed: 1},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			h := newHarness(t, Config{Gratuitous: []time.Duration{}}, ethLink("eth0", 2, mac0), ethLink("eth1", 3, mac1))
			h.a.SetOwned(tc.owned)
			conn := h.dial.arpConn(t, tc.on)
			conn.inject(t, tc.packet)

			sent := conn.packets(t)
			if !tc.wantReply {
				if len(sent) != 0 {
					t.Fatalf("Sent %d packets, want none: %+v", len(sent), sent[0].p)
				}
			} else {
				if len(sent) != 1 {
					t.Fatalf("Sent %d packets, want 1 reply", len(sent))
				}
				req, _ := parseARP(tc.packet)
				got := sent[0]
				if got.p.Operation != arp.OperationReply ||
					got.p.SenderIP != req.TargetIP || !bytes.Equal(got.p.SenderHardwareAddr, tc.wantMAC) ||
					got.p.TargetIP != req.SenderIP || !bytes.Equal(got.p.TargetHardwareAddr, req.SenderHardwareAddr) ||
					!bytes.Equal(got.dst, req.SenderHardwareAddr) {
					t.Errorf("Reply %+v to %s, want %s is-at %s to %s (%s)", got.p, got.dst, req.TargetIP, tc.wantMAC, req.SenderIP, req.SenderHardwareAddr)
				}
			}
			if got := h.a.Stats().ARP; got != tc.stats {
				t.Errorf("Stats().ARP = %+v, want %+v", got, tc.stats)
			}
		})
	}
}

// TestARPStopsAtOnceOnRelease floods the responder with requests for an
// address while the address is released, and checks that no reply for it is
// written once SetOwned has returned.
func TestARPStopsAtOnceOnRelease(t *testing.T) {
	h := newHarness(t, Config{Gratuitous: []time.Duration{}}, ethLink("eth0", 2, mac0))
	h.a.SetOwned(map[netip.Addr]Target{vip4: {}, vip4b: {}})
	conn := h.dial.arpConn(t, "eth0")

	var stop atomic.Bool
	var wg sync.WaitGroup
	wg.Go(func() {
		req := arpRequest(t, macPeer, peer4, vip4)
		for !stop.Load() {
			conn.in <- fakeFrame{payload: req}
		}
	})
	eventually(t, "replies while owned", func() bool { return conn.sentCount() >= 10 })

	h.a.SetOwned(map[netip.Addr]Target{vip4b: {}})
	releasedAt := conn.sentCount()
	// Let the flood go on for a while after the release.
	time.Sleep(20 * time.Millisecond)
	stop.Store(true)
	wg.Wait()
	conn.flush(t)

	sent := conn.packets(t)
	if len(sent) != releasedAt {
		t.Fatalf("Sent %d replies after the release returned (%d before)", len(sent)-releasedAt, releasedAt)
	}
	// Still answering for the address that stayed owned.
	conn.inject(t, arpRequest(t, macPeer, peer4, vip4b))
	if sent := conn.packets(t); len(sent) != releasedAt+1 || sent[releasedAt].p.SenderIP != vip4b {
		t.Fatalf("No reply for the address still owned")
	}
}

func TestGratuitousARP(t *testing.T) {
	h := newHarness(t, Config{}, ethLink("eth0", 2, mac0), ethLink("eth1", 3, mac1))
	h.a.SetOwned(map[netip.Addr]Target{vip4: {Interfaces: []string{"eth1"}}})
	conn := h.dial.arpConn(t, "eth1")

	// The default schedule: 0, 100 ms, 500 ms, 1 s; two packets each.
	steps := []struct {
		advance time.Duration
		want    int
	}{
		{0, 2},
		{99 * time.Millisecond, 2},
		{time.Millisecond, 4},
		{400 * time.Millisecond, 6},
		{500 * time.Millisecond, 8},
		{10 * time.Second, 8},
	}
	for _, s := range steps {
		h.clk.Step(s.advance)
		h.a.announceDue()
		if got := conn.sentCount(); got != s.want {
			t.Fatalf("At +%s: sent %d packets, want %d", h.clk.Since(epochTime), got, s.want)
		}
	}

	sent := conn.packets(t)
	for i, s := range sent {
		wantOp, wantTHA := arp.OperationRequest, make(net.HardwareAddr, 6)
		if i%2 == 1 {
			wantOp, wantTHA = arp.OperationReply, broadcastMAC()
		}
		if s.p.Operation != wantOp || s.p.SenderIP != vip4 || s.p.TargetIP != vip4 ||
			!bytes.Equal(s.p.SenderHardwareAddr, mac1) || !bytes.Equal(s.p.TargetHardwareAddr, wantTHA) ||
			!bytes.Equal(s.dst, broadcastMAC()) {
			t.Errorf("Packet %d = %+v to %s, want %s %s is-at %s to %s, target MAC %s", i, s.p, s.dst, wantOp, vip4, mac1, broadcastMAC(), wantTHA)
		}
	}
	if n := h.dial.arpConn(t, "eth0").sentCount(); n != 0 {
		t.Errorf("Sent %d packets on eth0, which the address is not announced on", n)
	}
	if got := h.a.Stats().ARP.GratuitousSent; got != 8 {
		t.Errorf("Stats().ARP.GratuitousSent = %d, want 8", got)
	}
}

func TestGratuitousOverdueStepsAreNotBurst(t *testing.T) {
	h := newHarness(t, Config{}, ethLink("eth0", 2, mac0))
	h.a.SetOwned(map[netip.Addr]Target{vip4: {}})
	h.clk.Step(time.Hour)
	h.a.announceDue()
	h.a.announceDue()
	if got := h.dial.arpConn(t, "eth0").sentCount(); got != 2 {
		t.Fatalf("Sent %d packets, want one request and one reply", got)
	}
}

func TestReleaseCancelsGratuitous(t *testing.T) {
	h := newHarness(t, Config{}, ethLink("eth0", 2, mac0))
	h.a.SetOwned(map[netip.Addr]Target{vip4: {}})
	h.a.announceDue()
	h.a.SetOwned(nil)
	for range 5 {
		h.clk.Step(time.Second)
		h.a.announceDue()
	}
	if got := h.dial.arpConn(t, "eth0").sentCount(); got != 2 {
		t.Fatalf("Sent %d packets, want only the 2 sent before the release", got)
	}
	// Owning it again starts a new schedule.
	h.a.SetOwned(map[netip.Addr]Target{vip4: {}})
	h.a.announceDue()
	if got := h.dial.arpConn(t, "eth0").sentCount(); got != 4 {
		t.Fatalf("Sent %d packets, want 2 more after owning again", got)
	}
}

// TestConflictReasserts: a packet in which another MAC claims an owned
// address starts its gratuitous schedule again, at most once per
// ReassertInterval; Reannounce ignores addresses not owned.
func TestConflictReasserts(t *testing.T) {
	h := newHarness(t, Config{Gratuitous: []time.Duration{0}}, ethLink("eth0", 2, mac0))
	h.a.SetOwned(map[netip.Addr]Target{vip4: {}})
	h.a.announceDue()
	conn := h.dial.arpConn(t, "eth0")
	if got := conn.sentCount(); got != 2 {
		t.Fatalf("Sent %d packets on gaining the address, want 2", got)
	}
	h.a.mu.RLock()
	ifc := h.a.ifaces["eth0"]
	h.a.mu.RUnlock()
	garp := arpBytes(t, arp.OperationReply, macOther, vip4, broadcastMAC(), vip4)
	for _, step := range []struct {
		advance time.Duration
		want    int
	}{
		{0, 4},                      // re-asserted at once
		{100 * time.Millisecond, 4}, // within the interval: not again
		{time.Second, 6},            // after it: again
	} {
		h.clk.Step(step.advance)
		h.a.handleARP(ifc, garp)
		h.a.announceDue()
		if got := conn.sentCount(); got != step.want {
			t.Fatalf("At +%s: sent %d packets, want %d", h.clk.Since(epochTime), got, step.want)
		}
	}
	h.drainConflicts()
	h.a.Reannounce([]netip.Addr{vip4b})
	h.a.announceDue()
	if got := conn.sentCount(); got != 6 {
		t.Errorf("Reannounce of an address not owned sent %d packets", got-6)
	}
}
