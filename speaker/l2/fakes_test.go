package l2

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/go-logr/logr/testr"
	"github.com/mdlayher/arp"
	"github.com/mdlayher/ndp"
	"github.com/mdlayher/packet"
	"golang.org/x/net/ipv6"
	clocktesting "k8s.io/utils/clock/testing"
)

// waitTimeout bounds every wait on the goroutines of the announcer; the
// waits return as soon as the condition holds.
const waitTimeout = 10 * time.Second

var (
	mac0     = net.HardwareAddr{0x02, 0, 0, 0, 0, 0x10}
	mac1     = net.HardwareAddr{0x02, 0, 0, 0, 0, 0x11}
	macPeer  = net.HardwareAddr{0x02, 0, 0, 0, 0, 0xaa}
	macOther = net.HardwareAddr{0x02, 0, 0, 0, 0, 0xbb}

	vip4      = netip.MustParseAddr("192.0.2.10")
	vip4b     = netip.MustParseAddr("192.0.2.11")
	peer4     = netip.MustParseAddr("192.0.2.1")
	vip6      = netip.MustParseAddr("2001:db8::10")
	vip6b     = netip.MustParseAddr("2001:db8::1:0:10") // same solicited-node group as vip6
	vip6c     = netip.MustParseAddr("2001:db8::20")
	peer6     = netip.MustParseAddr("fe80::aa")
	allNodes  = netip.IPv6LinkLocalAllNodes()
	epochTime = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
)

const upFlags = net.FlagUp | net.FlagBroadcast | net.FlagMulticast | net.FlagRunning

func ethLink(name string, index int, mac net.HardwareAddr) link {
	return link{name: name, index: index, mtu: 1500, mac: mac, flags: upFlags}
}

// eventually polls cond until it holds or waitTimeout passes.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("Timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// fakePacketConn is an in-memory ARP socket: the test injects payloads and
// reads what the announcer wrote.
type fakePacketConn struct {
	in     chan fakeFrame
	closed chan struct{}
	once   sync.Once

	mu   sync.Mutex
	sent []sentFrame
}

type fakeFrame struct {
	payload []byte
	// barrier, when set, is closed by ReadFrom instead of returning a
	// frame: by then every earlier frame has been handled.
	barrier chan struct{}
}

type sentFrame struct {
	payload []byte
	dst     net.HardwareAddr
}

func newFakePacketConn() *fakePacketConn {
	return &fakePacketConn{in: make(chan fakeFrame), closed: make(chan struct{})}
}

func (c *fakePacketConn) ReadFrom(b []byte) (int, net.Addr, error) {
	for {
		select {
		case <-c.closed:
			return 0, nil, net.ErrClosed
		case f := <-c.in:
			if f.barrier != nil {
				close(f.barrier)
				continue
			}
			return copy(b, f.payload), &packet.Addr{HardwareAddr: macPeer}, nil
		}
	}
}

func (c *fakePacketConn) WriteTo(b []byte, addr net.Addr) (int, error) {
	select {
	case <-c.closed:
		return 0, net.ErrClosed
	default:
	}
	pa, ok := addr.(*packet.Addr)
	if !ok {
		return 0, errors.New("not a *packet.Addr")
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.sent = append(c.sent, sentFrame{payload: slices.Clone(b), dst: slices.Clone(pa.HardwareAddr)})
	return len(b), nil
}

func (c *fakePacketConn) Close() error {
	c.once.Do(func() { close(c.closed) })
	return nil
}

func (c *fakePacketConn) isClosed() bool {
	select {
	case <-c.closed:
		return true
	default:
		return false
	}
}

func (c *fakePacketConn) LocalAddr() net.Addr              { return &packet.Addr{} }
func (c *fakePacketConn) SetDeadline(time.Time) error      { return nil }
func (c *fakePacketConn) SetReadDeadline(time.Time) error  { return nil }
func (c *fakePacketConn) SetWriteDeadline(time.Time) error { return nil }

// inject hands b to the reader and waits until it has been handled.
func (c *fakePacketConn) inject(t testing.TB, b []byte) {
	t.Helper()
	c.send(t, fakeFrame{payload: b})
	c.flush(t)
}

func (c *fakePacketConn) send(t testing.TB, f fakeFrame) {
	t.Helper()
	select {
	case c.in <- f:
	case <-time.After(waitTimeout):
		t.Fatal("Timed out handing a frame to the ARP reader")
	}
}

func (c *fakePacketConn) flush(t testing.TB) {
	t.Helper()
	done := make(chan struct{})
	c.send(t, fakeFrame{barrier: done})
	<-done
}

// packets decodes what was written.
func (c *fakePacketConn) packets(t testing.TB) []sentARP {
	t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]sentARP, 0, len(c.sent))
	for _, s := range c.sent {
		p := new(arp.Packet)
		if err := p.UnmarshalBinary(s.payload); err != nil {
			t.Fatalf("Announcer wrote an undecodable ARP packet %x: %v", s.payload, err)
		}
		out = append(out, sentARP{p: p, dst: s.dst})
	}
	return out
}

func (c *fakePacketConn) sentCount() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.sent)
}

type sentARP struct {
	p   *arp.Packet
	dst net.HardwareAddr
}

// fakeNDPConn is an in-memory NDP socket.
type fakeNDPConn struct {
	in     chan ndpIn
	closed chan struct{}
	once   sync.Once

	mu      sync.Mutex
	sent    []sentNDP
	groups  map[netip.Addr]bool
	ops     []string
	joinErr error
}

type ndpIn struct {
	m       ndp.Message
	raw     []byte // the bytes on the wire, instead of m
	cm      *ipv6.ControlMessage
	src     netip.Addr
	barrier chan struct{}
}

type sentNDP struct {
	m   ndp.Message
	dst netip.Addr
}

func newFakeNDPConn() *fakeNDPConn {
	return &fakeNDPConn{in: make(chan ndpIn), closed: make(chan struct{}), groups: map[netip.Addr]bool{}}
}

func (c *fakeNDPConn) ReadRaw(b []byte) (int, *ipv6.ControlMessage, netip.Addr, error) {
	for {
		select {
		case <-c.closed:
			return 0, nil, netip.Addr{}, net.ErrClosed
		case in := <-c.in:
			if in.barrier != nil {
				close(in.barrier)
				continue
			}
			raw := in.raw
			if raw == nil {
				var err error
				if raw, err = ndp.MarshalMessage(in.m); err != nil {
					return 0, nil, netip.Addr{}, err
				}
			}
			return copy(b, raw), in.cm, in.src, nil
		}
	}
}

func (c *fakeNDPConn) WriteTo(m ndp.Message, _ *ipv6.ControlMessage, dst netip.Addr) error {
	select {
	case <-c.closed:
		return net.ErrClosed
	default:
	}
	// Round-trip through the wire format, as the real socket would.
	b, err := ndp.MarshalMessage(m)
	if err != nil {
		return err
	}
	parsed, err := ndp.ParseMessage(b)
	if err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.sent = append(c.sent, sentNDP{m: parsed, dst: dst})
	return nil
}

func (c *fakeNDPConn) JoinGroup(g netip.Addr) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.joinErr != nil {
		return c.joinErr
	}
	c.groups[g] = true
	c.ops = append(c.ops, "join "+g.String())
	return nil
}

func (c *fakeNDPConn) LeaveGroup(g netip.Addr) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.groups, g)
	c.ops = append(c.ops, "leave "+g.String())
	return nil
}

func (c *fakeNDPConn) Close() error {
	c.once.Do(func() { close(c.closed) })
	return nil
}

func (c *fakeNDPConn) isClosed() bool {
	select {
	case <-c.closed:
		return true
	default:
		return false
	}
}

func (c *fakeNDPConn) send(t testing.TB, in ndpIn) {
	t.Helper()
	select {
	case c.in <- in:
	case <-time.After(waitTimeout):
		t.Fatal("Timed out handing a message to the NDP reader")
	}
}

// inject hands a message to the reader and waits until it has been handled.
func (c *fakeNDPConn) inject(t testing.TB, m ndp.Message, cm *ipv6.ControlMessage, src netip.Addr) {
	t.Helper()
	c.injectIn(t, ndpIn{m: m, cm: cm, src: src})
}

// injectRaw hands bytes off the wire to the reader and waits until they
// have been handled.
func (c *fakeNDPConn) injectRaw(t testing.TB, b []byte, cm *ipv6.ControlMessage, src netip.Addr) {
	t.Helper()
	c.injectIn(t, ndpIn{raw: b, cm: cm, src: src})
}

func (c *fakeNDPConn) injectIn(t testing.TB, in ndpIn) {
	t.Helper()
	c.send(t, in)
	done := make(chan struct{})
	c.send(t, ndpIn{barrier: done})
	<-done
}

func (c *fakeNDPConn) messages() []sentNDP {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.sent)
}

func (c *fakeNDPConn) joined() []netip.Addr {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []netip.Addr
	for g := range c.groups {
		out = append(out, g)
	}
	slices.SortFunc(out, netip.Addr.Compare)
	return out
}

func (c *fakeNDPConn) setJoinErr(err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.joinErr = err
}

// fakeLinks is a settable list of interfaces.
type fakeLinks struct {
	mu  sync.Mutex
	all []link
	err error
}

func (f *fakeLinks) links() ([]link, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.all), f.err
}

func (f *fakeLinks) set(links ...link) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.all = links
}

// fakeDialer hands out fake sockets and remembers them by interface.
type fakeDialer struct {
	mu     sync.Mutex
	arp    map[string][]*fakePacketConn
	ndp    map[string][]*fakeNDPConn
	ndpErr map[string]error
	arpErr map[string]error
}

func newFakeDialer() *fakeDialer {
	return &fakeDialer{arp: map[string][]*fakePacketConn{}, ndp: map[string][]*fakeNDPConn{}, ndpErr: map[string]error{}, arpErr: map[string]error{}}
}

func (d *fakeDialer) dialARP(l link) (net.PacketConn, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.arpErr[l.name]; err != nil {
		return nil, err
	}
	c := newFakePacketConn()
	d.arp[l.name] = append(d.arp[l.name], c)
	return c, nil
}

func (d *fakeDialer) dialNDP(l link) (ndpConn, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.ndpErr[l.name]; err != nil {
		return nil, err
	}
	c := newFakeNDPConn()
	d.ndp[l.name] = append(d.ndp[l.name], c)
	return c, nil
}

func (d *fakeDialer) setNDPErr(name string, err error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.ndpErr[name] = err
}

func (d *fakeDialer) setARPErr(name string, err error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.arpErr[name] = err
}

// arpConn returns the latest ARP socket opened on name.
func (d *fakeDialer) arpConn(t testing.TB, name string) *fakePacketConn {
	t.Helper()
	d.mu.Lock()
	defer d.mu.Unlock()
	cs := d.arp[name]
	if len(cs) == 0 {
		t.Fatalf("No ARP socket opened on %s", name)
	}
	return cs[len(cs)-1]
}

// ndpConn returns the latest NDP socket opened on name.
func (d *fakeDialer) ndpConn(t testing.TB, name string) *fakeNDPConn {
	t.Helper()
	d.mu.Lock()
	defer d.mu.Unlock()
	cs := d.ndp[name]
	if len(cs) == 0 {
		t.Fatalf("No NDP socket opened on %s", name)
	}
	return cs[len(cs)-1]
}

func (d *fakeDialer) opened(name string) (arps, ndps int) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.arp[name]), len(d.ndp[name])
}

type conflictEvent struct {
	ip       netip.Addr
	ifname   string
	ourMAC   string
	theirMAC string
}

// harness is an Announcer on fake interfaces and sockets, started without
// its Run loop: tests drive rescans and the gratuitous schedule by hand with
// a fake clock.
type harness struct {
	clk       *clocktesting.FakeClock
	links     *fakeLinks
	dial      *fakeDialer
	a         *Announcer
	conflicts chan conflictEvent
	health    chan Health
}

func newHarness(t testing.TB, cfg Config, links ...link) *harness {
	t.Helper()
	h := &harness{
		clk:       clocktesting.NewFakeClock(epochTime),
		links:     &fakeLinks{all: links},
		dial:      newFakeDialer(),
		conflicts: make(chan conflictEvent, 100),
		health:    make(chan Health, 100),
	}
	// A fuzz target must not log through *testing.F.
	if _, fuzzing := t.(*testing.F); fuzzing {
		cfg.Logger = logr.Discard()
	} else {
		cfg.Logger = testr.NewWithInterface(t, testr.Options{Verbosity: 1})
	}
	cfg.Clock = h.clk
	cfg.OnConflict = func(ip netip.Addr, ifname string, ourMAC, theirMAC net.HardwareAddr) {
		h.conflicts <- conflictEvent{ip: ip, ifname: ifname, ourMAC: ourMAC.String(), theirMAC: theirMAC.String()}
	}
	cfg.OnHealth = func(hl Health) { h.health <- hl }
	a, err := newAnnouncer(cfg, h.links, h.dial)
	if err != nil {
		t.Fatalf("newAnnouncer: %v", err)
	}
	h.a = a
	ctx, cancel := context.WithCancel(context.Background())
	if err := a.start(ctx); err != nil {
		t.Fatalf("start: %v", err)
	}
	t.Cleanup(func() {
		cancel()
		a.stop()
	})
	return h
}

func (h *harness) drainConflicts() []conflictEvent {
	var out []conflictEvent
	for {
		select {
		case c := <-h.conflicts:
			out = append(out, c)
		default:
			return out
		}
	}
}

func (h *harness) lastHealth(t testing.TB) (Health, bool) {
	t.Helper()
	var last Health
	got := false
	for {
		select {
		case hl := <-h.health:
			last, got = hl, true
		default:
			return last, got
		}
	}
}

// arpRequest encodes a request from (mac, ip) for target.
func arpRequest(t testing.TB, mac net.HardwareAddr, ip, target netip.Addr) []byte {
	t.Helper()
	return arpBytes(t, arp.OperationRequest, mac, ip, make(net.HardwareAddr, 6), target)
}

func arpBytes(t testing.TB, op arp.Operation, srcHW net.HardwareAddr, srcIP netip.Addr, dstHW net.HardwareAddr, dstIP netip.Addr) []byte {
	t.Helper()
	p, err := arp.NewPacket(op, srcHW, srcIP, dstHW, dstIP)
	if err != nil {
		t.Fatalf("arp.NewPacket: %v", err)
	}
	b, err := p.MarshalBinary()
	if err != nil {
		t.Fatalf("MarshalBinary: %v", err)
	}
	return b
}

func solicitation(target netip.Addr, sll net.HardwareAddr) *ndp.NeighborSolicitation {
	ns := &ndp.NeighborSolicitation{TargetAddress: target}
	if sll != nil {
		ns.Options = []ndp.Option{&ndp.LinkLayerAddress{Direction: ndp.Source, Addr: sll}}
	}
	return ns
}

func hop255() *ipv6.ControlMessage { return &ipv6.ControlMessage{HopLimit: ndp.HopLimit} }
