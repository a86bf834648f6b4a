// Command hostile is an on-link attacker: from the client namespace it
// sends lbstack's speakers malformed and forged ARP, NDP, BFD and memberlist
// traffic at a bounded rate and count, from and to documentation addresses
// only, and prints one JSON line per kind with what it sent. The lab's
// hostile-input test (test/e2e) runs it and judges the speakers from
// outside.
//
// Kinds:
//
//	arp-malformed  ARP frames that fail validation: truncated, wrong
//	               hardware/protocol types and lengths, unknown operations
//	arp-spoof      well-formed ARP: gratuitous replies claiming -vip4 from
//	               random MACs (a conflict storm) and requests for it
//	ndp-malformed  Neighbor Solicitations that RFC 4861 says to drop: bad
//	               checksum, hop limit below 255, zero-length or truncated
//	               options, non-zero code, truncated messages
//	ndp-spoof      well-formed Neighbor Advertisements claiming -vip6 from
//	               random MACs, and solicitations for it
//	bfd            datagrams to the BFD port of every target: random bytes,
//	               bad versions, lengths, multipliers and discriminators,
//	               garbage authentication, TTL below 255
//	memberlist-udp random and message-shaped datagrams to port 7946
//	memberlist-tcp connections to port 7946 sending random bytes, a
//	               huge length, or nothing at all
package main

import (
	"crypto/rand"
	"encoding/binary"
	"encoding/json"
	"flag"
	"fmt"
	mrand "math/rand/v2"
	"net"
	"net/netip"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/mdlayher/packet"
	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"
	"golang.org/x/sys/unix"
)

// Result is the line printed for one kind.
type Result struct {
	Kind       string `json:"kind"`
	Sent       int    `json:"sent"`
	Errors     int    `json:"errors"`
	FirstError string `json:"firstError,omitempty"`
}

var allKinds = []string{"arp-malformed", "arp-spoof", "ndp-malformed", "ndp-spoof", "bfd", "memberlist-udp", "memberlist-tcp"}

// documentation are the only networks hostile sends to or from.
var documentation = []netip.Prefix{
	netip.MustParsePrefix("192.0.2.0/24"), netip.MustParsePrefix("198.51.100.0/24"),
	netip.MustParsePrefix("203.0.113.0/24"), netip.MustParsePrefix("2001:db8::/32"),
}

func documentationAddr(a netip.Addr) bool {
	return slices.ContainsFunc(documentation, func(p netip.Prefix) bool { return p.Contains(a.Unmap()) })
}

type config struct {
	ifi     *net.Interface
	src4    netip.Addr
	src6    netip.Addr
	vip4    netip.Addr
	vip6    netip.Addr
	targets []netip.Addr
	// mlTargets are the memberlist addresses.
	mlTargets []netip.Addr
	rate      int
	count     int
}

func main() {
	iface := flag.String("iface", "eth0", "interface on the speakers' segment")
	src4 := flag.String("src4", "", "this host's IPv4 address (documentation range)")
	src6 := flag.String("src6", "", "this host's IPv6 address (documentation range)")
	vip4 := flag.String("vip4", "", "an IPv4 Service address the speakers announce")
	vip6 := flag.String("vip6", "", "an IPv6 Service address the speakers announce")
	targets := flag.String("targets", "", "comma-separated node addresses (BFD)")
	mlTargets := flag.String("memberlist-targets", "", "comma-separated addresses the speakers' memberlist binds (default: -targets)")
	kinds := flag.String("kinds", strings.Join(allKinds, ","), "comma-separated kinds to send")
	rate := flag.Int("rate", 500, "packets (or connections) per second, per kind")
	count := flag.Int("count", 2000, "packets (or connections) per kind")
	flag.Parse()
	if *rate <= 0 || *rate > 20000 || *count <= 0 || *count > 1000000 {
		fail("-rate must be in 1..20000 and -count in 1..1000000")
	}
	ifi, err := net.InterfaceByName(*iface)
	if err != nil {
		fail("%v", err)
	}
	cfg := config{ifi: ifi, rate: *rate, count: *count}
	for _, a := range []struct {
		flag string
		into *netip.Addr
		v    string
	}{{"src4", &cfg.src4, *src4}, {"src6", &cfg.src6, *src6}, {"vip4", &cfg.vip4, *vip4}, {"vip6", &cfg.vip6, *vip6}} {
		if a.v == "" {
			continue
		}
		addr, err := netip.ParseAddr(a.v)
		if err != nil || !documentationAddr(addr) {
			fail("-%s %q: not a documentation address", a.flag, a.v)
		}
		*a.into = addr
	}
	cfg.targets = addrList("targets", *targets)
	cfg.mlTargets = cfg.targets
	if *mlTargets != "" {
		cfg.mlTargets = addrList("memberlist-targets", *mlTargets)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	enc := json.NewEncoder(os.Stdout)
	for _, k := range strings.Split(*kinds, ",") {
		send := senders[k]
		if send == nil {
			fail("unknown kind %q (kinds: %s)", k, strings.Join(allKinds, ", "))
		}
		wg.Go(func() {
			r := Result{Kind: k}
			send(&cfg, &r)
			mu.Lock()
			defer mu.Unlock()
			_ = enc.Encode(r)
		})
	}
	wg.Wait()
}

// addrList parses a comma-separated list of documentation addresses.
func addrList(flagName, list string) []netip.Addr {
	var out []netip.Addr
	for _, t := range strings.Split(list, ",") {
		if t == "" {
			continue
		}
		addr, err := netip.ParseAddr(t)
		if err != nil || !documentationAddr(addr) {
			fail("-%s %q: not a documentation address", flagName, t)
		}
		out = append(out, addr)
	}
	return out
}

func fail(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "hostile: "+format+"\n", args...)
	os.Exit(2)
}

func (r *Result) record(err error) {
	if err != nil {
		r.Errors++
		if r.FirstError == "" {
			r.FirstError = err.Error()
		}
		return
	}
	r.Sent++
}

// paced calls send count times, rate per second, in 10 ms batches.
func paced(rate, count int, send func(i int)) {
	const tick = 10 * time.Millisecond
	perTick := max(1, rate/int(time.Second/tick))
	t := time.NewTicker(tick)
	defer t.Stop()
	for i := 0; i < count; {
		for j := 0; j < perTick && i < count; j++ {
			send(i)
			i++
		}
		<-t.C
	}
}

var senders = map[string]func(*config, *Result){
	"arp-malformed":  arpMalformed,
	"arp-spoof":      arpSpoof,
	"ndp-malformed":  ndpMalformed,
	"ndp-spoof":      ndpSpoof,
	"bfd":            bfdGarbage,
	"memberlist-udp": memberlistUDP,
	"memberlist-tcp": memberlistTCP,
}

// --- Ethernet ---

var broadcast = net.HardwareAddr{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}

// randomMAC is a random unicast, locally administered MAC.
func (c *config) randomMAC() net.HardwareAddr {
	m := make(net.HardwareAddr, 6)
	_, _ = rand.Read(m)
	m[0] = m[0]&0xfc | 0x02
	return m
}

func (c *config) randomBytes(min, max int) []byte {
	b := make([]byte, min+mrand.IntN(max-min+1))
	_, _ = rand.Read(b)
	return b
}

func frame(dst, src net.HardwareAddr, etherType uint16, payload []byte) []byte {
	b := make([]byte, 14, 14+len(payload))
	copy(b[0:6], dst)
	copy(b[6:12], src)
	binary.BigEndian.PutUint16(b[12:14], etherType)
	return append(b, payload...)
}

// rawSender sends whole Ethernet frames on the interface.
func rawSender(c *config, r *Result) (func(dst net.HardwareAddr, f []byte), func()) {
	conn, err := packet.Listen(c.ifi, packet.Raw, unix.ETH_P_ALL, nil)
	if err != nil {
		r.record(err)
		return nil, nil
	}
	return func(dst net.HardwareAddr, f []byte) {
		_, err := conn.WriteTo(f, &packet.Addr{HardwareAddr: dst})
		r.record(err)
	}, func() { _ = conn.Close() }
}

// rawFlood sends count frames at rate through a raw socket, fn building and
// sending the i-th; without what it needs (ok false) it records why.
func rawFlood(c *config, r *Result, ok bool, needs string, fn func(send func(net.HardwareAddr, []byte), i int)) {
	if !ok {
		r.record(fmt.Errorf("%s needs %s", r.Kind, needs))
		return
	}
	send, done := rawSender(c, r)
	if send == nil {
		return
	}
	defer done()
	paced(c.rate, c.count, func(i int) { fn(send, i) })
}

// --- ARP ---

func arpPayload(op uint16, sha net.HardwareAddr, spa netip.Addr, tha net.HardwareAddr, tpa netip.Addr) []byte {
	b := make([]byte, 28)
	binary.BigEndian.PutUint16(b[0:2], 1)      // Ethernet
	binary.BigEndian.PutUint16(b[2:4], 0x0800) // IPv4
	b[4], b[5] = 6, 4
	binary.BigEndian.PutUint16(b[6:8], op)
	copy(b[8:14], sha)
	s := spa.As4()
	copy(b[14:18], s[:])
	copy(b[18:24], tha)
	t := tpa.As4()
	copy(b[24:28], t[:])
	return b
}

func arpMalformed(c *config, r *Result) {
	rawFlood(c, r, c.vip4.IsValid() && c.src4.IsValid(), "-vip4 and -src4", func(send func(net.HardwareAddr, []byte), i int) {
		mac := c.randomMAC()
		p := arpPayload(1, mac, c.src4, make(net.HardwareAddr, 6), c.vip4)
		switch i % 7 {
		case 0: // truncated
			p = p[:mrand.IntN(28)]
		case 1: // IEEE 802 hardware
			binary.BigEndian.PutUint16(p[0:2], 6)
		case 2: // addresses longer than the packet
			p[4], p[5] = 16, 16
		case 3: // unknown operation
			binary.BigEndian.PutUint16(p[6:8], uint16(3+mrand.IntN(0xfff0)))
		case 4: // IPv6 as the protocol
			binary.BigEndian.PutUint16(p[2:4], 0x86dd)
			p[5] = 16
		case 5: // zero lengths
			p[4], p[5] = 0, 0
		case 6: // random bytes
			p = c.randomBytes(0, 64)
		}
		send(broadcast, frame(broadcast, mac, 0x0806, p))
	})
}

func arpSpoof(c *config, r *Result) {
	rawFlood(c, r, c.vip4.IsValid(), "-vip4", func(send func(net.HardwareAddr, []byte), i int) {
		mac := c.randomMAC()
		if i%2 == 0 { // gratuitous reply: "vip4 is at mac"
			send(broadcast, frame(broadcast, mac, 0x0806, arpPayload(2, mac, c.vip4, broadcast, c.vip4)))
			return
		}
		// who has vip4? from a random documentation address
		spa := netip.AddrFrom4([4]byte{192, 0, 2, byte(150 + mrand.IntN(40))})
		send(broadcast, frame(broadcast, mac, 0x0806, arpPayload(1, mac, spa, make(net.HardwareAddr, 6), c.vip4)))
	})
}

// --- NDP ---

func solicitedNode(a netip.Addr) (netip.Addr, net.HardwareAddr) {
	b := a.As16()
	m := netip.AddrFrom16([16]byte{0xff, 0x02, 10: 0, 11: 1, 12: 0xff, 13: b[13], 14: b[14], 15: b[15]})
	return m, net.HardwareAddr{0x33, 0x33, 0xff, b[13], b[14], b[15]}
}

func icmp6Checksum(src, dst netip.Addr, msg []byte) uint16 {
	var sum uint32
	s, d := src.As16(), dst.As16()
	add := func(b []byte) {
		for i := 0; i+1 < len(b); i += 2 {
			sum += uint32(binary.BigEndian.Uint16(b[i:]))
		}
		if len(b)%2 == 1 {
			sum += uint32(b[len(b)-1]) << 8
		}
	}
	add(s[:])
	add(d[:])
	var l [8]byte
	binary.BigEndian.PutUint32(l[0:4], uint32(len(msg)))
	l[7] = 58
	add(l[:])
	add(msg)
	for sum>>16 != 0 {
		sum = sum&0xffff + sum>>16
	}
	return ^uint16(sum)
}

// ipv6Packet wraps an ICMPv6 message; payloadLen < 0 means the real length.
func ipv6Packet(src, dst netip.Addr, hopLimit uint8, payloadLen int, icmp []byte) []byte {
	h := make([]byte, 40, 40+len(icmp))
	h[0] = 0x60
	if payloadLen < 0 {
		payloadLen = len(icmp)
	}
	binary.BigEndian.PutUint16(h[4:6], uint16(payloadLen))
	h[6] = 58
	h[7] = hopLimit
	s, d := src.As16(), dst.As16()
	copy(h[8:24], s[:])
	copy(h[24:40], d[:])
	return append(h, icmp...)
}

// ndpMessage is an NS (135) or NA (136) for target with one link-layer
// address option (type 1 source, 2 target), checksummed.
func ndpMessage(typ uint8, flags uint8, target netip.Addr, optType uint8, mac net.HardwareAddr, src, dst netip.Addr) []byte {
	m := make([]byte, 24, 32)
	m[0] = typ
	m[4] = flags
	t := target.As16()
	copy(m[8:24], t[:])
	m = append(m, optType, 1)
	m = append(m, mac...)
	binary.BigEndian.PutUint16(m[2:4], icmp6Checksum(src, dst, m))
	return m
}

func ndpMalformed(c *config, r *Result) {
	dst, dstMAC := solicitedNode(c.vip6)
	rawFlood(c, r, c.vip6.IsValid() && c.src6.IsValid(), "-vip6 and -src6", func(send func(net.HardwareAddr, []byte), i int) {
		mac := c.randomMAC()
		m := ndpMessage(135, 0, c.vip6, 1, mac, c.src6, dst)
		hop, plen := uint8(255), -1
		switch i % 8 {
		case 0: // bad checksum
			m[2] ^= 0xff
		case 1: // hop limit below 255: not from a neighbour
			hop = uint8(1 + mrand.IntN(254))
		case 2: // option of length zero (RFC 4861 7.1.1: drop)
			m[25] = 0
			binary.BigEndian.PutUint16(m[2:4], 0)
			binary.BigEndian.PutUint16(m[2:4], icmp6Checksum(c.src6, dst, m))
		case 3: // shorter than a solicitation
			m = m[:mrand.IntN(24)]
		case 4: // option longer than the message
			m[25] = 8
			binary.BigEndian.PutUint16(m[2:4], 0)
			binary.BigEndian.PutUint16(m[2:4], icmp6Checksum(c.src6, dst, m))
		case 5: // non-zero code
			m[1] = uint8(1 + mrand.IntN(255))
			binary.BigEndian.PutUint16(m[2:4], 0)
			binary.BigEndian.PutUint16(m[2:4], icmp6Checksum(c.src6, dst, m))
		case 6: // IPv6 payload length beyond the frame
			plen = len(m) + 200
		case 7: // random ICMPv6 body with the NS type
			m = c.randomBytes(4, 64)
			m[0] = 135
		}
		send(dstMAC, frame(dstMAC, mac, 0x86dd, ipv6Packet(c.src6, dst, hop, plen, m)))
	})
}

func ndpSpoof(c *config, r *Result) {
	allNodes := netip.MustParseAddr("ff02::1")
	allNodesMAC := net.HardwareAddr{0x33, 0x33, 0, 0, 0, 1}
	sn, snMAC := solicitedNode(c.vip6)
	rawFlood(c, r, c.vip6.IsValid() && c.src6.IsValid(), "-vip6 and -src6", func(send func(net.HardwareAddr, []byte), i int) {
		mac := c.randomMAC()
		if i%2 == 0 { // unsolicited advertisement with override: "vip6 is at mac"
			m := ndpMessage(136, 0x20, c.vip6, 2, mac, c.vip6, allNodes)
			send(allNodesMAC, frame(allNodesMAC, mac, 0x86dd, ipv6Packet(c.vip6, allNodes, 255, -1, m)))
			return
		}
		m := ndpMessage(135, 0, c.vip6, 1, mac, c.src6, sn)
		send(snMAC, frame(snMAC, mac, 0x86dd, ipv6Packet(c.src6, sn, 255, -1, m)))
	})
}

// --- BFD ---

// bfdControl is a BFD control packet (RFC 5880 4.1).
func bfdControl(version, state uint8, mult uint8, length uint8, myDisc, yourDisc uint32, flags uint8) []byte {
	b := make([]byte, 24)
	b[0] = version<<5 | 0
	b[1] = state<<6 | flags
	b[2] = mult
	b[3] = length
	binary.BigEndian.PutUint32(b[4:8], myDisc)
	binary.BigEndian.PutUint32(b[8:12], yourDisc)
	binary.BigEndian.PutUint32(b[12:16], 100000)
	binary.BigEndian.PutUint32(b[16:20], 100000)
	return b
}

func bfdGarbage(c *config, r *Result) {
	if len(c.targets) == 0 {
		r.record(fmt.Errorf("bfd needs -targets"))
		return
	}
	type sock struct {
		conn *net.UDPConn
		ttl  func(int) error
	}
	socks := map[bool]sock{}
	for _, v4 := range []bool{true, false} {
		network, laddr := "udp4", &net.UDPAddr{IP: c.src4.AsSlice(), Port: 49152 + mrand.IntN(16383)}
		if !v4 {
			network, laddr = "udp6", &net.UDPAddr{IP: c.src6.AsSlice(), Port: 49152 + mrand.IntN(16383)}
		}
		if (v4 && !c.src4.IsValid()) || (!v4 && !c.src6.IsValid()) {
			continue
		}
		conn, err := net.ListenUDP(network, laddr)
		if err != nil {
			r.record(err)
			continue
		}
		defer conn.Close()
		s := sock{conn: conn}
		if v4 {
			s.ttl = ipv4.NewConn(conn).SetTTL
		} else {
			s.ttl = ipv6.NewConn(conn).SetHopLimit
		}
		socks[v4] = s
	}
	paced(c.rate, c.count, func(i int) {
		t := c.targets[i%len(c.targets)]
		s, ok := socks[t.Is4()]
		if !ok {
			return
		}
		ttl := 255
		var p []byte
		switch i % 10 {
		case 0:
			p = c.randomBytes(0, 64)
		case 1: // wrong version
			p = bfdControl(uint8(2+mrand.IntN(6)), 1, 3, 24, mrand.Uint32()|1, 0, 0)
		case 2: // length says more than was sent
			p = bfdControl(1, 1, 3, 24, mrand.Uint32()|1, 0, 0)[:20]
		case 3: // length beyond the datagram
			p = bfdControl(1, 1, 3, 255, mrand.Uint32()|1, 0, 0)
		case 4: // detect multiplier zero
			p = bfdControl(1, 1, 0, 24, mrand.Uint32()|1, 0, 0)
		case 5: // my discriminator zero
			p = bfdControl(1, 1, 3, 24, 0, 0, 0)
		case 6: // well-formed, for no session we know
			p = bfdControl(1, uint8(mrand.IntN(4)), 3, 24, mrand.Uint32()|1, mrand.Uint32()|1, 0)
		case 7: // authentication present and garbage
			p = append(bfdControl(1, 1, 3, 24+uint8(mrand.IntN(28)), mrand.Uint32()|1, 0, 0x04), c.randomBytes(0, 28)...)
		case 8: // sent with a TTL a neighbour never has
			p = bfdControl(1, 1, 3, 24, mrand.Uint32()|1, 0, 0)
			ttl = 1 + mrand.IntN(254)
		case 9: // multipoint bit
			p = bfdControl(1, 3, 3, 24, mrand.Uint32()|1, mrand.Uint32()|1, 0x01)
		}
		if err := s.ttl(ttl); err != nil {
			r.record(err)
			return
		}
		_, err := s.conn.WriteToUDP(p, &net.UDPAddr{IP: t.AsSlice(), Port: 3784})
		r.record(err)
	})
}

// --- memberlist ---

func memberlistUDP(c *config, r *Result) {
	if len(c.mlTargets) == 0 {
		r.record(fmt.Errorf("memberlist-udp needs -memberlist-targets or -targets"))
		return
	}
	conns := map[bool]*net.UDPConn{}
	for _, v4 := range []bool{true, false} {
		network := "udp4"
		if !v4 {
			network = "udp6"
		}
		conn, err := net.ListenUDP(network, nil)
		if err != nil {
			continue
		}
		defer conn.Close()
		conns[v4] = conn
	}
	paced(c.rate, c.count, func(i int) {
		t := c.mlTargets[i%len(c.mlTargets)]
		conn := conns[t.Is4()]
		if conn == nil {
			return
		}
		var p []byte
		switch i % 4 {
		case 0: // random
			p = c.randomBytes(1, 1400)
		case 1: // a message type byte, then garbage
			p = append([]byte{byte(mrand.IntN(16))}, c.randomBytes(0, 200)...)
		case 2: // "encrypted", with a version byte and too little
			p = append([]byte{9, byte(mrand.IntN(3))}, c.randomBytes(0, 40)...)
		case 3: // compound message claiming many parts
			p = append([]byte{7, 255}, c.randomBytes(0, 100)...)
		}
		_, err := conn.WriteToUDP(p, &net.UDPAddr{IP: t.AsSlice(), Port: 7946})
		r.record(err)
	})
}

func memberlistTCP(c *config, r *Result) {
	if len(c.mlTargets) == 0 {
		r.record(fmt.Errorf("memberlist-tcp needs -memberlist-targets or -targets"))
		return
	}
	var wg sync.WaitGroup
	held := make(chan struct{}, 64) // at most 64 idle connections at once
	var mu sync.Mutex
	paced(c.rate, c.count, func(i int) {
		t := c.mlTargets[i%len(c.mlTargets)]
		addr := netip.AddrPortFrom(t, 7946).String()
		mode := i % 3
		if mode == 2 {
			select {
			case held <- struct{}{}:
			default:
				mode = 0
			}
		}
		wg.Go(func() {
			conn, err := net.DialTimeout("tcp", addr, time.Second)
			mu.Lock()
			r.record(err)
			mu.Unlock()
			if err != nil {
				if mode == 2 {
					<-held
				}
				return
			}
			defer conn.Close()
			_ = conn.SetDeadline(time.Now().Add(3 * time.Second))
			switch mode {
			case 0: // random bytes
				_, _ = conn.Write(c.randomBytes(1, 4096))
			case 1: // a stream header claiming a huge encrypted message
				b := []byte{9, 0xff, 0xff, 0xff, 0xff}
				_, _ = conn.Write(append(b, c.randomBytes(0, 64)...))
			case 2: // nothing: hold the connection open
				time.Sleep(2 * time.Second)
				<-held
			}
		})
	})
	wg.Wait()
}
