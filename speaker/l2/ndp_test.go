package l2

import (
	"bytes"
	"errors"
	"net"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/mdlayher/ndp"
	"golang.org/x/net/ipv6"
)

func TestNDPResponder(t *testing.T) {
	tests := map[string]struct {
		owned map[netip.Addr]Target
		on    string
		m     ndp.Message
		cm    *ipv6.ControlMessage
		src   netip.Addr
		// want is the advertisement expected, nil for none.
		want    *ndp.NeighborAdvertisement
		wantDst netip.Addr
		stats   ProtocolStats
	}{
		"owned address, answered with the MAC of the receiving interface": {
			owned:   map[netip.Addr]Target{vip6: {}},
			on:      "eth1",
			m:       solicitation(vip6, macPeer),
			cm:      hop255(),
			src:     peer6,
			want:    neighborAdvertisement(vip6, mac1, true),
			wantDst: peer6,
			stats:   ProtocolStats{RequestsReceived: 1, RepliesSent: 1},
		},
		"no control message (hop limit unknown)": {
			owned:   map[netip.Addr]Target{vip6: {}},
			on:      "eth0",
			m:       solicitation(vip6, nil),
			src:     peer6,
			want:    neighborAdvertisement(vip6, mac0, true),
			wantDst: peer6,
			stats:   ProtocolStats{RequestsReceived: 1, RepliesSent: 1},
		},
		"duplicate address detection is answered to all-nodes without Solicited": {
			owned:   map[netip.Addr]Target{vip6: {}},
			on:      "eth0",
			m:       solicitation(vip6, nil),
			cm:      hop255(),
			src:     netip.IPv6Unspecified(),
			want:    neighborAdvertisement(vip6, mac0, false),
			wantDst: allNodes,
			stats:   ProtocolStats{RequestsReceived: 1, RepliesSent: 1},
		},
		"address not owned": {
			owned: map[netip.Addr]Target{vip6c: {}},
			on:    "eth0",
			m:     solicitation(vip6, macPeer),
			cm:    hop255(),
			src:   peer6,
			stats: ProtocolStats{RequestsReceived: 1},
		},
		"owned but restricted to another interface": {
			owned: map[netip.Addr]Target{vip6: {Interfaces: []string{"eth1"}}},
			on:    "eth0",
			m:     solicitation(vip6, macPeer),
			cm:    hop255(),
			src:   peer6,
			stats: ProtocolStats{RequestsReceived: 1},
		},
		"solicitation from one of our own MACs": {
			owned: map[netip.Addr]Target{vip6: {}},
			on:    "eth0",
			m:     solicitation(vip6, mac1),
			cm:    hop255(),
			src:   peer6,
			stats: ProtocolStats{RequestsReceived: 1},
		},
		"hop limit below 255 (off-link)": {
			owned: map[netip.Addr]Target{vip6: {}},
			on:    "eth0",
			m:     solicitation(vip6, macPeer),
			cm:    &ipv6.ControlMessage{HopLimit: 254},
			src:   peer6,
			stats: ProtocolStats{Malformed: 1},
		},
		"unspecified source with a source link-layer address": {
			owned: map[netip.Addr]Target{vip6: {}},
			on:    "eth0",
			m:     solicitation(vip6, macPeer),
			cm:    hop255(),
			src:   netip.IPv6Unspecified(),
			stats: ProtocolStats{Malformed: 1},
		},
		"multicast target": {
			owned: map[netip.Addr]Target{vip6: {}},
			on:    "eth0",
			m:     solicitation(solicitedNode(vip6), macPeer),
			cm:    hop255(),
			src:   peer6,
			stats: ProtocolStats{Malformed: 1},
		},
		"broadcast source link-layer address": {
			owned: map[netip.Addr]Target{vip6: {}},
			on:    "eth0",
			m:     solicitation(vip6, broadcastMAC()),
			cm:    hop255(),
			src:   peer6,
			stats: ProtocolStats{Malformed: 1},
		},
		"router solicitation is ignored": {
			owned: map[netip.Addr]Target{vip6: {}},
			on:    "eth0",
			m:     &ndp.RouterSolicitation{},
			cm:    hop255(),
			src:   peer6,
		},
		"advertisement for an owned address is not answered": {
			owned: map[netip.Addr]Target{vip6: {}},
			on:    "eth0",
			m:     neighborAdvertisement(vip6, mac0, true),
			cm:    hop255(),
			src:   peer6,
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			h := newHarness(t, Config{Gratuitous: []time.Duration{}}, ethLink("eth0", 2, mac0), ethLink("eth1", 3, mac1))
			h.a.SetOwned(tc.owned)
			conn := h.dial.ndpConn(t, tc.on)
			conn.inject(t, tc.m, tc.cm, tc.src)

			sent := conn.messages()
			if tc.want == nil {
				if len(sent) != 0 {
					t.Fatalf("Sent %d messages, want none: %+v", len(sent), sent[0].m)
				}
			} else {
				if len(sent) != 1 {
					t.Fatalf("Sent %d messages, want 1 advertisement", len(sent))
				}
				checkNA(t, sent[0], tc.want, tc.wantDst)
			}
			if got := h.a.Stats().NDP; got != tc.stats {
				t.Errorf("Stats().NDP = %+v, want %+v", got, tc.stats)
			}
		})
	}
}

func checkNA(t *testing.T, got sentNDP, want *ndp.NeighborAdvertisement, wantDst netip.Addr) {
	t.Helper()
	na, ok := got.m.(*ndp.NeighborAdvertisement)
	if !ok {
		t.Fatalf("Sent %T, want a Neighbor Advertisement", got.m)
	}
	tll := linkLayerAddr(na.Options, ndp.Target)
	if na.Router || na.Solicited != want.Solicited || !na.Override || na.TargetAddress != want.TargetAddress ||
		len(na.Options) != 1 || !bytes.Equal(tll, linkLayerAddr(want.Options, ndp.Target)) || got.dst != wantDst {
		t.Errorf("Sent %+v (target link-layer address %s) to %s, want %+v with %s to %s",
			na, tll, got.dst, want, linkLayerAddr(want.Options, ndp.Target), wantDst)
	}
}

// FuzzHandleNDP feeds arbitrary ICMPv6 bytes, as the socket reads them,
// to the responder of an interface that announces vip6 and checks that
// whatever it sends is an advertisement for vip6 with the interface's MAC.
func FuzzHandleNDP(f *testing.F) {
	for _, m := range []ndp.Message{
		solicitation(vip6, macPeer),
		solicitation(vip6, nil),
		solicitation(vip6c, macPeer),
		neighborAdvertisement(vip6, macOther, false),
		&ndp.RouterSolicitation{},
	} {
		b, err := ndp.MarshalMessage(m)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b, uint8(255), false)
		f.Add(b, uint8(255), true)
	}
	h := newHarness(f, Config{Gratuitous: []time.Duration{}}, ethLink("eth0", 2, mac0))
	h.a.SetOwned(map[netip.Addr]Target{vip6: {}})
	h.a.mu.RLock()
	ifc := h.a.ifaces["eth0"]
	h.a.mu.RUnlock()
	conn := h.dial.ndpConn(f, "eth0")
	f.Fuzz(func(t *testing.T, b []byte, hopLimit uint8, dad bool) {
		src := peer6
		if dad {
			src = netip.IPv6Unspecified()
		}
		before := len(conn.messages())
		h.a.handleNDPBytes(ifc, b, &ipv6.ControlMessage{HopLimit: int(hopLimit)}, src)
		for _, s := range conn.messages()[before:] {
			na, ok := s.m.(*ndp.NeighborAdvertisement)
			if !ok || na.TargetAddress != vip6 || !na.Override || !bytes.Equal(linkLayerAddr(na.Options, ndp.Target), mac0) {
				t.Fatalf("Sent %+v in answer to %x", s.m, b)
			}
		}
		h.drainConflicts()
	})
}

// TestMalformedNDPIsCountedAndSkipped: messages that do not parse are
// counted and dropped at once; the next solicitation is answered.
func TestMalformedNDPIsCountedAndSkipped(t *testing.T) {
	h := newHarness(t, Config{Gratuitous: []time.Duration{}}, ethLink("eth0", 2, mac0))
	h.a.SetOwned(map[netip.Addr]Target{vip6: {}})
	conn := h.dial.ndpConn(t, "eth0")
	good, err := ndp.MarshalMessage(solicitation(vip6, macPeer))
	if err != nil {
		t.Fatal(err)
	}
	badOption := slices.Clone(good)
	badOption[len(badOption)-7] = 0 // option length 0 (RFC 4861 7.1.1)
	for _, b := range [][]byte{good[:10], {135}, badOption, {136, 0, 0, 0, 0xe0}} {
		conn.injectRaw(t, b, hop255(), peer6)
	}
	if got := h.a.Stats().NDP.Malformed; got != 4 {
		t.Errorf("Stats().NDP.Malformed = %d, want 4", got)
	}
	start := time.Now()
	conn.injectRaw(t, good, hop255(), peer6)
	if got := len(conn.messages()); got != 1 {
		t.Fatalf("sent %d messages after a good solicitation, want 1", got)
	}
	if took := time.Since(start); took >= readErrorPause {
		t.Errorf("answering after malformed messages took %s: the reader paused", took)
	}
}

func TestUnsolicitedNeighborAdvertisement(t *testing.T) {
	h := newHarness(t, Config{Gratuitous: []time.Duration{0, 100 * time.Millisecond}}, ethLink("eth0", 2, mac0))
	h.a.SetOwned(map[netip.Addr]Target{vip6: {}, vip4: {}})
	h.a.announceDue()
	h.clk.Step(100 * time.Millisecond)
	h.a.announceDue()

	sent := h.dial.ndpConn(t, "eth0").messages()
	if len(sent) != 2 {
		t.Fatalf("Sent %d messages, want 2", len(sent))
	}
	for _, s := range sent {
		checkNA(t, s, neighborAdvertisement(vip6, mac0, false), allNodes)
	}
	if got := h.a.Stats().NDP.GratuitousSent; got != 2 {
		t.Errorf("Stats().NDP.GratuitousSent = %d, want 2", got)
	}
	// The IPv4 address went out as ARP only.
	if got := h.dial.arpConn(t, "eth0").sentCount(); got != 4 {
		t.Errorf("Sent %d ARP packets, want 4", got)
	}
}

func TestSolicitedNodeGroups(t *testing.T) {
	h := newHarness(t, Config{}, ethLink("eth0", 2, mac0))
	conn := h.dial.ndpConn(t, "eth0")
	g := solicitedNode(vip6)
	gc := solicitedNode(vip6c)
	if solicitedNode(vip6b) != g {
		t.Fatalf("Test addresses %s and %s should share a solicited-node group", vip6, vip6b)
	}

	steps := []struct {
		owned   []netip.Addr
		want    []netip.Addr
		wantOps []string
	}{
		{owned: []netip.Addr{vip4}, want: nil, wantOps: nil},
		{owned: []netip.Addr{vip6, vip6b}, want: []netip.Addr{g}, wantOps: []string{"join " + g.String()}},
		{owned: []netip.Addr{vip6, vip6b, vip6c}, want: []netip.Addr{g, gc}, wantOps: []string{"join " + g.String(), "join " + gc.String()}},
		// The group stays joined while an address needs it.
		{owned: []netip.Addr{vip6b}, want: []netip.Addr{g}, wantOps: []string{"join " + g.String(), "join " + gc.String(), "leave " + gc.String()}},
		{owned: nil, want: nil, wantOps: []string{"join " + g.String(), "join " + gc.String(), "leave " + gc.String(), "leave " + g.String()}},
	}
	for i, s := range steps {
		owned := map[netip.Addr]Target{}
		for _, ip := range s.owned {
			owned[ip] = Target{}
		}
		h.a.SetOwned(owned)
		if got := conn.joined(); !slices.Equal(got, s.want) {
			t.Errorf("Step %d: joined %v, want %v", i, got, s.want)
		}
		conn.mu.Lock()
		ops := slices.Clone(conn.ops)
		conn.mu.Unlock()
		if !slices.Equal(ops, s.wantOps) {
			t.Errorf("Step %d: operations %v, want %v", i, ops, s.wantOps)
		}
	}
}

func TestSolicitedNodeJoinRetried(t *testing.T) {
	h := newHarness(t, Config{}, ethLink("eth0", 2, mac0))
	conn := h.dial.ndpConn(t, "eth0")
	conn.setJoinErr(errors.New("no buffer space"))
	h.a.SetOwned(map[netip.Addr]Target{vip6: {}})
	if got := conn.joined(); len(got) != 0 {
		t.Fatalf("Joined %v despite the error", got)
	}
	conn.setJoinErr(nil)
	h.a.Rescan()
	if got := conn.joined(); !slices.Equal(got, []netip.Addr{solicitedNode(vip6)}) {
		t.Fatalf("Joined %v after the rescan, want the group of %s", got, vip6)
	}
}

func TestConflictDetection(t *testing.T) {
	tests := map[string]struct {
		owned map[netip.Addr]Target
		arp   []byte
		ndp   ndp.Message
		want  []conflictEvent
	}{
		"gratuitous ARP request from another MAC": {
			owned: map[netip.Addr]Target{vip4: {}},
			arp:   arpRequest(t, macOther, vip4, vip4),
			want:  []conflictEvent{{ip: vip4, ifname: "eth0", ourMAC: mac0.String(), theirMAC: macOther.String()}},
		},
		"gratuitous ARP reply from another MAC": {
			owned: map[netip.Addr]Target{vip4: {}},
			arp:   arpBytes(t, 2, macOther, vip4, broadcastMAC(), vip4),
			want:  []conflictEvent{{ip: vip4, ifname: "eth0", ourMAC: mac0.String(), theirMAC: macOther.String()}},
		},
		"ARP reply from another MAC": {
			owned: map[netip.Addr]Target{vip4: {}},
			arp:   arpBytes(t, 2, macOther, vip4, macPeer, peer4),
			want:  []conflictEvent{{ip: vip4, ifname: "eth0", ourMAC: mac0.String(), theirMAC: macOther.String()}},
		},
		"gratuitous ARP from our other interface": {
			owned: map[netip.Addr]Target{vip4: {}},
			arp:   arpRequest(t, mac1, vip4, vip4),
		},
		"gratuitous ARP for an address not owned": {
			owned: map[netip.Addr]Target{vip4b: {}},
			arp:   arpRequest(t, macOther, vip4, vip4),
		},
		"gratuitous ARP for an address announced only on another interface": {
			owned: map[netip.Addr]Target{vip4: {Interfaces: []string{"eth1"}}},
			arp:   arpRequest(t, macOther, vip4, vip4),
		},
		"Neighbor Advertisement from another MAC": {
			owned: map[netip.Addr]Target{vip6: {}},
			ndp:   neighborAdvertisement(vip6, macOther, false),
			want:  []conflictEvent{{ip: vip6, ifname: "eth0", ourMAC: mac0.String(), theirMAC: macOther.String()}},
		},
		"Neighbor Advertisement from our other interface": {
			owned: map[netip.Addr]Target{vip6: {}},
			ndp:   neighborAdvertisement(vip6, mac1, false),
		},
		"Neighbor Advertisement without target link-layer address": {
			owned: map[netip.Addr]Target{vip6: {}},
			ndp:   &ndp.NeighborAdvertisement{Override: true, TargetAddress: vip6},
		},
		"Neighbor Advertisement for an address not owned": {
			owned: map[netip.Addr]Target{vip6c: {}},
			ndp:   neighborAdvertisement(vip6, macOther, false),
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			h := newHarness(t, Config{Gratuitous: []time.Duration{}}, ethLink("eth0", 2, mac0), ethLink("eth1", 3, mac1))
			h.a.SetOwned(tc.owned)
			if tc.arp != nil {
				h.dial.arpConn(t, "eth0").inject(t, tc.arp)
			} else {
				h.dial.ndpConn(t, "eth0").inject(t, tc.ndp, hop255(), peer6)
			}
			if got := h.drainConflicts(); !slices.Equal(got, tc.want) {
				t.Errorf("Conflicts %+v, want %+v", got, tc.want)
			}
			st := h.a.Stats()
			if got := int(st.ARP.Conflicts + st.NDP.Conflicts); got != len(tc.want) {
				t.Errorf("Conflict counters %d, want %d", got, len(tc.want))
			}
			if n := h.dial.arpConn(t, "eth0").sentCount() + len(h.dial.ndpConn(t, "eth0").messages()); n != 0 {
				t.Errorf("Sent %d packets in answer to a claim", n)
			}
		})
	}
}

func TestConflictRateLimit(t *testing.T) {
	h := newHarness(t, Config{Gratuitous: []time.Duration{}, ConflictInterval: 10 * time.Second}, ethLink("eth0", 2, mac0))
	h.a.SetOwned(map[netip.Addr]Target{vip4: {}, vip4b: {}})
	conn := h.dial.arpConn(t, "eth0")
	claim := func(mac net.HardwareAddr, ip netip.Addr) { conn.inject(t, arpRequest(t, mac, ip, ip)) }

	for range 5 {
		claim(macOther, vip4)
	}
	if got := len(h.drainConflicts()); got != 1 {
		t.Fatalf("Storm of 5 claims reported %d times, want once", got)
	}
	claim(macPeer, vip4)
	claim(macOther, vip4b)
	if got := len(h.drainConflicts()); got != 2 {
		t.Fatalf("Claims by another MAC and for another address reported %d times, want 2", got)
	}
	h.clk.Step(9 * time.Second)
	claim(macOther, vip4)
	if got := len(h.drainConflicts()); got != 0 {
		t.Fatalf("Claim within the window reported %d times", got)
	}
	h.clk.Step(time.Second)
	claim(macOther, vip4)
	if got := len(h.drainConflicts()); got != 1 {
		t.Fatalf("Claim after the window reported %d times, want once", got)
	}
	if got := h.a.Stats().ARP.Conflicts; got != 9 {
		t.Errorf("Stats().ARP.Conflicts = %d, want every claim (9)", got)
	}
}

// TestConflictStormOfSpoofedMACs: a storm of spoofed MACs claiming one
// address is reported for a few of them only, every claim still counted;
// another address is unaffected, and the window ends the suppression.
func TestConflictStormOfSpoofedMACs(t *testing.T) {
	h := newHarness(t, Config{Gratuitous: []time.Duration{}, ConflictInterval: 10 * time.Second}, ethLink("eth0", 2, mac0))
	h.a.SetOwned(map[netip.Addr]Target{vip4: {}, vip4b: {}})
	conn := h.dial.arpConn(t, "eth0")
	spoofed := func(i int) net.HardwareAddr { return net.HardwareAddr{0x02, 0xdd, 0, 0, byte(i >> 8), byte(i)} }
	for i := range 50 {
		conn.inject(t, arpRequest(t, spoofed(i), vip4, vip4))
	}
	if got := len(h.drainConflicts()); got != maxConflictMACsPerAddress {
		t.Fatalf("50 spoofed MACs claiming %s were reported %d times, want %d", vip4, got, maxConflictMACsPerAddress)
	}
	st := h.a.Stats()
	if st.ARP.Conflicts != 50 || st.ConflictsSuppressed != 50-maxConflictMACsPerAddress {
		t.Errorf("Stats: %d conflicts, %d suppressed; want 50 and %d", st.ARP.Conflicts, st.ConflictsSuppressed, 50-maxConflictMACsPerAddress)
	}
	conn.inject(t, arpRequest(t, spoofed(999), vip4b, vip4b))
	if got := len(h.drainConflicts()); got != 1 {
		t.Fatalf("a claim for another address was reported %d times, want once", got)
	}
	h.clk.Step(10 * time.Second)
	h.a.pruneConflicts()
	conn.inject(t, arpRequest(t, spoofed(1000), vip4, vip4))
	if got := len(h.drainConflicts()); got != 1 {
		t.Fatalf("a new MAC after the window was reported %d times, want once", got)
	}
}

func TestConflictRateLimitIsBounded(t *testing.T) {
	h := newHarness(t, Config{Gratuitous: []time.Duration{}, ConflictInterval: time.Minute}, ethLink("eth0", 2, mac0))
	// More addresses × MACs than the rate limit remembers.
	owned := map[netip.Addr]Target{}
	var addrs []netip.Addr
	for _, p := range []string{"198.51.100.0/24", "203.0.113.0/24"} {
		for a := netip.MustParsePrefix(p).Addr(); netip.MustParsePrefix(p).Contains(a); a = a.Next() {
			owned[a] = Target{}
			addrs = append(addrs, a)
		}
	}
	h.a.SetOwned(owned)
	h.a.mu.RLock()
	ifc := h.a.ifaces["eth0"]
	h.a.mu.RUnlock()
	for i, ip := range addrs {
		for m := range maxConflictMACsPerAddress {
			mac := net.HardwareAddr{0x02, 0xcc, 0, byte(m), byte(i >> 8), byte(i)}
			h.a.handleARP(ifc, arpRequest(t, mac, ip, ip))
			h.drainConflicts()
		}
	}
	h.a.conflictMu.Lock()
	n := len(h.a.conflictSeen)
	h.a.conflictMu.Unlock()
	if n > maxConflictKeys {
		t.Fatalf("Rate limit remembers %d keys, want at most %d", n, maxConflictKeys)
	}
	h.clk.Step(time.Minute)
	h.a.pruneConflicts()
	h.a.conflictMu.Lock()
	n = len(h.a.conflictSeen)
	h.a.conflictMu.Unlock()
	if n != 0 {
		t.Fatalf("Rate limit remembers %d keys after the window, want 0", n)
	}
}
