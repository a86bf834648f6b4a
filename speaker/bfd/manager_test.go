package bfd_test

import (
	"context"
	"errors"
	"math/rand/v2"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/go-logr/logr/testr"
	"golang.org/x/net/ipv4"

	"github.com/lbstack/lbstack/speaker/bfd"
)

// Generous bounds: the machine running the tests may be loaded.
const (
	upTimeout   = 10 * time.Second
	downTimeout = 5 * time.Second
)

// freePort returns a UDP port that is free on every one of addrs now and
// below the BFD source range, so our own sending sockets cannot take it.
func freePort(t testing.TB, addrs ...netip.Addr) uint16 {
	t.Helper()
	for range 100 {
		c, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(addrs[0], 0)))
		if err != nil {
			t.Fatalf("finding a free port: %v", err)
		}
		port := c.LocalAddr().(*net.UDPAddr).AddrPort().Port()
		conns := []*net.UDPConn{c}
		ok := port < bfd.MinSourcePort
		for _, a := range addrs[1:] {
			if !ok {
				break
			}
			c2, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(a, port)))
			if err != nil {
				ok = false
				break
			}
			conns = append(conns, c2)
		}
		for _, c := range conns {
			_ = c.Close()
		}
		if ok {
			return port
		}
	}
	t.Fatal("no free port")
	return 0
}

type node struct {
	m      *bfd.Manager
	events <-chan bfd.StateChange
	cancel context.CancelFunc
	done   chan error
}

func startManager(t testing.TB, cfg bfd.ManagerConfig) *node {
	t.Helper()
	if cfg.Log.GetSink() == nil {
		cfg.Log = logFor(t)
	}
	m, err := bfd.NewManager(cfg)
	if err != nil {
		t.Fatalf("NewManager(%+v) error = %v", cfg, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	n := &node{m: m, events: m.Subscribe(ctx), cancel: cancel, done: make(chan error, 1)}
	go func() { n.done <- m.Run(ctx) }()
	t.Cleanup(func() { n.stop(t) })
	return n
}

func logFor(t testing.TB) logr.Logger {
	if tt, ok := t.(*testing.T); ok {
		return testr.New(tt)
	}
	return logr.Discard()
}

// stop stops the manager as a crash would, and waits for Run to return.
func (n *node) stop(t testing.TB) {
	t.Helper()
	if n.cancel == nil {
		return
	}
	n.cancel()
	n.cancel = nil
	select {
	case err := <-n.done:
		if err != nil {
			t.Errorf("Run() error = %v", err)
		}
	case <-time.After(downTimeout):
		t.Error("Run() did not return")
	}
}

// drain discards the changes queued so far, so that waitFor sees only
// what follows.
func (n *node) drain() {
	for {
		select {
		case <-n.events:
		case <-time.After(10 * time.Millisecond):
			return
		}
	}
}

// waitFor returns the first change to state want for peer.
func (n *node) waitFor(t testing.TB, peer netip.Addr, want bfd.State, timeout time.Duration) bfd.StateChange {
	t.Helper()
	deadline := time.After(timeout)
	for {
		select {
		case c, ok := <-n.events:
			if !ok {
				t.Fatalf("events closed while waiting for %s to go %s", peer, want)
			}
			if c.Peer == peer && c.New == want {
				return c
			}
		case <-deadline:
			t.Fatalf("%s did not go %s within %s; sessions %+v", peer, want, timeout, n.m.Sessions())
		}
	}
}

var (
	lo1 = netip.MustParseAddr("127.0.0.1")
	lo2 = netip.MustParseAddr("127.0.0.2")
	lo6 = netip.MustParseAddr("::1")
)

// pair starts two managers that see each other over loopback, with a
// session each, and waits for both sessions to come Up.
type pairConfig struct {
	addrA, addrB netip.Addr
	session      bfd.SessionConfig // Peer and Local are filled in
	passiveB     bool
}

func startPair(t testing.TB, pc pairConfig) (a, b *node) {
	t.Helper()
	var portA, portB uint16
	if pc.addrA == pc.addrB {
		portA = freePort(t, pc.addrA)
		for portB = freePort(t, pc.addrB); portB == portA; portB = freePort(t, pc.addrB) {
		}
	} else {
		portA = freePort(t, pc.addrA, pc.addrB)
		portB = portA
	}
	ca := bfd.ManagerConfig{ListenAddr: pc.addrA, Port: portA, PeerPort: portB}
	cb := bfd.ManagerConfig{ListenAddr: pc.addrB, Port: portB, PeerPort: portA}
	if pc.session.Multihop {
		// Multi-hop listeners on other ports than the single-hop ones:
		// a packet on the wrong port must not reach the session.
		addrs := []netip.Addr{pc.addrA, pc.addrB}
		if pc.addrA == pc.addrB {
			addrs = addrs[:1]
		}
		mhA := freePort(t, addrs...)
		for mhA == portA || mhA == portB {
			mhA = freePort(t, addrs...)
		}
		mhB := mhA
		if pc.addrA == pc.addrB {
			for mhB = freePort(t, pc.addrB); mhB == mhA || mhB == portA || mhB == portB; mhB = freePort(t, pc.addrB) {
			}
		}
		ca.Multihop, ca.MultihopPort, ca.PeerMultihopPort = true, mhA, mhB
		cb.Multihop, cb.MultihopPort, cb.PeerMultihopPort = true, mhB, mhA
	}
	a = startManager(t, ca)
	b = startManager(t, cb)
	cfgA, cfgB := pc.session, pc.session
	cfgA.Peer, cfgA.Local = pc.addrB, pc.addrA
	cfgB.Peer, cfgB.Local, cfgB.Passive = pc.addrA, pc.addrB, pc.passiveB
	if err := a.m.AddSession(cfgA); err != nil {
		t.Fatalf("A: AddSession() error = %v", err)
	}
	if err := b.m.AddSession(cfgB); err != nil {
		t.Fatalf("B: AddSession() error = %v", err)
	}
	a.waitFor(t, pc.addrB, bfd.StateUp, upTimeout)
	b.waitFor(t, pc.addrA, bfd.StateUp, upTimeout)
	// Until the Poll Sequences that follow Up complete, a side may still
	// hold the other's idle 1 s interval and take seconds to detect.
	for _, n := range []*node{a, b} {
		waitSessions(t, n.m, func(st bfd.SessionStatus) bool {
			return st.State == bfd.StateUp && !st.PollActive && st.RemoteDesiredMinTx == pc.session.DesiredMinTx
		})
	}
	return a, b
}

// waitSessions waits until the only session of m satisfies ok.
func waitSessions(t testing.TB, m *bfd.Manager, ok func(bfd.SessionStatus) bool) {
	t.Helper()
	deadline := time.Now().Add(upTimeout)
	for {
		st := onlySession(t, m)
		if ok(st) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("session did not settle: %+v", st)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func fastSession() bfd.SessionConfig {
	return bfd.SessionConfig{DesiredMinTx: 50 * time.Millisecond, RequiredMinRx: 50 * time.Millisecond, DetectMultiplier: 3}
}

func multihop(cfg bfd.SessionConfig, minTTL uint8) bfd.SessionConfig {
	cfg.Multihop, cfg.MinTTL = true, minTTL
	return cfg
}

func onlySession(t testing.TB, m *bfd.Manager) bfd.SessionStatus {
	t.Helper()
	ss := m.Sessions()
	if len(ss) != 1 {
		t.Fatalf("Sessions() = %+v, want one", ss)
	}
	return ss[0]
}

func TestManagersComeUpAndDetectFailure(t *testing.T) {
	tests := map[string]pairConfig{
		"IPv4":            {addrA: lo1, addrB: lo2, session: fastSession()},
		"IPv6":            {addrA: lo6, addrB: lo6, session: fastSession()},
		"IPv4, B passive": {addrA: lo1, addrB: lo2, session: fastSession(), passiveB: true},
		"IPv4, multi-hop": {addrA: lo1, addrB: lo2, session: multihop(fastSession(), 0)},
		"IPv6, multi-hop": {addrA: lo6, addrB: lo6, session: multihop(fastSession(), 0)},
	}
	for name, pc := range tests {
		t.Run(name, func(t *testing.T) {
			a, b := startPair(t, pc)
			sa, sb := onlySession(t, a.m), onlySession(t, b.m)
			if sa.RemoteDiscriminator != sb.LocalDiscriminator || sb.RemoteDiscriminator != sa.LocalDiscriminator {
				t.Errorf("discriminators do not pair: A %+v, B %+v", sa, sb)
			}
			if sa.Local != pc.addrA || sa.Peer != pc.addrB {
				t.Errorf("A: local %s peer %s, want %s and %s", sa.Local, sa.Peer, pc.addrA, pc.addrB)
			}

			a.drain()
			if st := onlySession(t, a.m); st.State != bfd.StateUp {
				t.Fatalf("A before the stop: %+v, want Up", st)
			}
			b.stop(t)
			start := time.Now()
			c := a.waitFor(t, pc.addrB, bfd.StateDown, downTimeout)
			elapsed := time.Since(start)
			if c.Diag != bfd.DiagControlDetectionTimeExpired || c.Old != bfd.StateUp {
				t.Errorf("change = %+v, want Up to Down with diag 1", c)
			}
			// 3 × 50 ms after the last packet; allow for a loaded machine.
			if elapsed > 2*time.Second {
				t.Errorf("detection took %s, want about 150ms", elapsed)
			}
			t.Logf("detected the loss of the peer after %s", elapsed)
			if got := a.m.Counters(); got.Malformed+got.BadTTL+got.NoSession+got.Rejected+got.SendErrors != 0 {
				t.Errorf("Counters() = %+v, want no drops or errors", got)
			}
		})
	}
}

func TestManagerRemoveSession(t *testing.T) {
	a, b := startPair(t, pairConfig{addrA: lo1, addrB: lo2, session: fastSession()})
	if err := a.m.RemoveSession(lo2); err != nil {
		t.Fatalf("RemoveSession() error = %v", err)
	}
	c := a.waitFor(t, lo2, bfd.StateAdminDown, downTimeout)
	if c.Diag != bfd.DiagAdminDown {
		t.Errorf("A: change = %+v, want diag 7", c)
	}
	c = b.waitFor(t, lo1, bfd.StateDown, downTimeout)
	if c.Diag != bfd.DiagNeighborSignaledDown || c.RemoteState != bfd.StateAdminDown {
		t.Errorf("B: change = %+v, want diag 3 with the peer AdminDown", c)
	}
	deadline := time.Now().Add(10 * time.Second)
	for len(a.m.Sessions()) != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("A still has %+v", a.m.Sessions())
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err := a.m.RemoveSession(lo2); err != nil {
		t.Errorf("second RemoveSession() error = %v", err)
	}
	// B stays Down: A no longer answers.
	if st := onlySession(t, b.m); st.State == bfd.StateUp {
		t.Errorf("B: %+v, want not Up", st)
	}
}

func TestManagerRemoveThenAddRevives(t *testing.T) {
	a, b := startPair(t, pairConfig{addrA: lo1, addrB: lo2, session: fastSession()})
	before := onlySession(t, a.m).LocalDiscriminator
	if err := a.m.RemoveSession(lo2); err != nil {
		t.Fatal(err)
	}
	a.waitFor(t, lo2, bfd.StateAdminDown, downTimeout)
	cfg := fastSession()
	cfg.Peer, cfg.Local = lo2, lo1
	if err := a.m.AddSession(cfg); err != nil {
		t.Fatalf("AddSession() error = %v", err)
	}
	a.waitFor(t, lo2, bfd.StateUp, upTimeout)
	b.waitFor(t, lo1, bfd.StateUp, upTimeout)
	if after := onlySession(t, a.m).LocalDiscriminator; after != before {
		t.Logf("session replaced: discriminator %#x, was %#x", after, before)
	}
}

func TestManagerTimerChangeKeepsSessionUp(t *testing.T) {
	stalls := watchStalls(t)
	// A multiplier of 10 rides out a test process stalled by a loaded
	// machine; the timers still change under a Poll Sequence.
	session := fastSession()
	session.DetectMultiplier = 10
	a, b := startPair(t, pairConfig{addrA: lo1, addrB: lo2, session: session})
	transitions := map[*node]uint64{a: onlySession(t, a.m).Transitions, b: onlySession(t, b.m).Transitions}
	cfg := session
	cfg.Peer, cfg.Local = lo2, lo1
	cfg.DesiredMinTx, cfg.RequiredMinRx = 200*time.Millisecond, 150*time.Millisecond
	if err := a.m.AddSession(cfg); err != nil {
		t.Fatalf("AddSession() error = %v", err)
	}
	if err := a.m.AddSession(cfg); err != nil {
		t.Fatalf("repeated AddSession() error = %v", err)
	}
	waitSessions(t, a.m, func(st bfd.SessionStatus) bool {
		return !st.PollActive && st.TxInterval == 200*time.Millisecond && st.DetectionTime == 10*150*time.Millisecond
	})
	waitSessions(t, b.m, func(st bfd.SessionStatus) bool {
		return st.RemoteDesiredMinTx == 200*time.Millisecond && st.TxInterval == 150*time.Millisecond && st.DetectionTime == 10*200*time.Millisecond
	})
	// Run at the new timers for a while; nothing may flap.
	time.Sleep(time.Second)
	for name, n := range map[string]*node{"A": a, "B": b} {
		select {
		case c := <-n.events:
			t.Errorf("%s: unexpected change %+v", name, c)
		default:
		}
		if st := onlySession(t, n.m); st.State != bfd.StateUp || st.Transitions != transitions[n] {
			t.Errorf("%s: %+v, want still Up after %d transitions", name, st, transitions[n])
		}
	}
	if t.Failed() {
		t.Logf("the test process stalled for up to %s", stalls())
	}
}

// watchStalls measures the longest time a 5 ms ticker went unserved, to
// tell a flap caused by a stalled test process (a loaded machine) from a
// protocol bug. Call the returned function for the figure so far.
func watchStalls(t *testing.T) func() time.Duration {
	var (
		mu      sync.Mutex
		longest time.Duration
	)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		ticker := time.NewTicker(5 * time.Millisecond)
		defer ticker.Stop()
		last := time.Now()
		for {
			select {
			case <-ctx.Done():
				return
			case now := <-ticker.C:
				mu.Lock()
				longest = max(longest, now.Sub(last))
				mu.Unlock()
				last = now
			}
		}
	}()
	t.Cleanup(func() { cancel(); <-done })
	return func() time.Duration {
		mu.Lock()
		defer mu.Unlock()
		return longest
	}
}

// TestManagerWire looks at what the manager sends, as BIRD would see it:
// UDP to the BFD port from a source port in 49152–65535 with TTL 255.
func TestManagerWire(t *testing.T) {
	peerConn, err := net.ListenUDP("udp4", net.UDPAddrFromAddrPort(netip.AddrPortFrom(lo2, 0)))
	if err != nil {
		t.Fatal(err)
	}
	defer peerConn.Close()
	pc := ipv4.NewPacketConn(peerConn)
	if err := pc.SetControlMessage(ipv4.FlagTTL, true); err != nil {
		t.Fatal(err)
	}
	n := startManager(t, bfd.ManagerConfig{ListenAddr: lo1, Port: freePort(t, lo1), PeerPort: peerConn.LocalAddr().(*net.UDPAddr).AddrPort().Port()})
	if err := n.m.AddSession(bfd.SessionConfig{Peer: lo2, DesiredMinTx: 100 * time.Millisecond}); err != nil {
		t.Fatal(err)
	}
	_ = peerConn.SetReadDeadline(time.Now().Add(upTimeout))
	buf := make([]byte, 512)
	nb, cm, src, err := pc.ReadFrom(buf)
	if err != nil {
		t.Fatalf("reading the manager's packet: %v", err)
	}
	from := src.(*net.UDPAddr).AddrPort()
	if from.Port() < bfd.MinSourcePort {
		t.Errorf("source port %d, want 49152–65535", from.Port())
	}
	if cm == nil || cm.TTL != 255 {
		t.Errorf("control message %+v, want TTL 255", cm)
	}
	p, err := bfd.Unmarshal(buf[:nb])
	if err != nil {
		t.Fatalf("Unmarshal() error = %v", err)
	}
	if p.State != bfd.StateDown || p.YourDiscriminator != 0 || p.DesiredMinTxInterval != time.Second || p.DetectMult != bfd.DefaultDetectMultiplier || p.RequiredMinEchoRxInterval != 0 {
		t.Errorf("first packet %+v, want Down, no discriminator, 1s idle TX, no echo", p)
	}
	// A second source port, for a second session, differs.
	if err := n.m.AddSession(bfd.SessionConfig{Peer: netip.MustParseAddr("127.0.0.3")}); err != nil {
		t.Fatal(err)
	}
	if ss := n.m.Sessions(); len(ss) != 2 {
		t.Fatalf("Sessions() = %+v, want two", ss)
	}
}

// TestManagerDropsBadPackets feeds the listener garbage and wrong packets
// and checks that each is counted and dropped while the manager runs on.
func TestManagerDropsBadPackets(t *testing.T) {
	port := freePort(t, lo1)
	n := startManager(t, bfd.ManagerConfig{ListenAddr: lo1, Port: port, PeerPort: freePort(t, lo2)})
	if err := n.m.AddSession(bfd.SessionConfig{Peer: lo2}); err != nil {
		t.Fatal(err)
	}
	dst := net.UDPAddrFromAddrPort(netip.AddrPortFrom(lo1, port))
	sendWithTTL := func(t *testing.T, src netip.Addr, ttl int, b []byte) {
		t.Helper()
		c, err := net.ListenUDP("udp4", net.UDPAddrFromAddrPort(netip.AddrPortFrom(src, 0)))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if err := ipv4.NewConn(c).SetTTL(ttl); err != nil {
			t.Fatal(err)
		}
		if _, err := c.WriteToUDP(b, dst); err != nil {
			t.Fatal(err)
		}
	}
	valid := func(p bfd.ControlPacket) []byte {
		b, err := p.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	hello := bfd.ControlPacket{State: bfd.StateDown, DetectMult: 3, MyDiscriminator: 77, DesiredMinTxInterval: time.Second, RequiredMinRxInterval: time.Second}
	wrongDiscr := hello
	wrongDiscr.YourDiscriminator = 12345

	rnd := rand.New(rand.NewPCG(7, 8))
	var garbage [][]byte
	for range 200 {
		b := make([]byte, rnd.IntN(80))
		for i := range b {
			b[i] = byte(rnd.Uint32())
		}
		if _, err := bfd.Unmarshal(b); err != nil && errors.Is(err, bfd.ErrInvalidPacket) {
			garbage = append(garbage, b)
		}
	}
	garbage = append(garbage, hexBytes(t, "20 70 03 18 11223344 00000000 000f4240 000186a0 00000000"), nil)

	for _, b := range garbage {
		sendWithTTL(t, lo2, 255, b)
	}
	sendWithTTL(t, lo2, 64, valid(hello))
	sendWithTTL(t, lo2, 254, valid(hello))
	sendWithTTL(t, lo2, 255, hexBytes(t, "20 44 03 1d 11223344 00000000 000f4240 000186a0 00000000 01 05 01 61 62"))
	sendWithTTL(t, lo2, 255, valid(wrongDiscr))
	sendWithTTL(t, netip.MustParseAddr("127.0.0.9"), 255, valid(hello))

	want := bfd.Counters{
		Received:  uint64(len(garbage)) + 5,
		Malformed: uint64(len(garbage)),
		BadTTL:    2,
		Rejected:  1,
		NoSession: 2,
	}
	deadline := time.Now().Add(downTimeout)
	for {
		got := n.m.Counters()
		got.Sent, got.SendErrors = 0, 0
		if got == want {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("Counters() = %+v, want %+v", got, want)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if st := onlySession(t, n.m); st.State != bfd.StateDown || st.PacketsReceived != 0 {
		t.Errorf("session after bad packets: %+v, want Down and untouched", st)
	}
	// The one valid packet from the right peer still works.
	sendWithTTL(t, lo2, 255, valid(hello))
	n.waitFor(t, lo2, bfd.StateInit, downTimeout)
}

func TestManagerAddSessionErrors(t *testing.T) {
	n := startManager(t, bfd.ManagerConfig{ListenAddr: lo1, Port: freePort(t, lo1)})
	tests := map[string]bfd.SessionConfig{
		"no peer":                   {},
		"IPv6 peer on IPv4":         {Peer: lo6},
		"local address not ours":    {Peer: lo2, Local: netip.MustParseAddr("192.0.2.77")},
		"interval beyond the field": {Peer: lo2, DesiredMinTx: 3 * time.Hour},
	}
	for name, cfg := range tests {
		t.Run(name, func(t *testing.T) {
			if err := n.m.AddSession(cfg); err == nil {
				t.Fatal("AddSession() error = nil")
			}
			if ss := n.m.Sessions(); len(ss) != 0 {
				t.Errorf("Sessions() = %+v, want none", ss)
			}
		})
	}
	if err := n.m.RemoveSession(lo2); err != nil {
		t.Errorf("RemoveSession() of an unknown peer: %v", err)
	}
	n.stop(t)
	if err := n.m.AddSession(bfd.SessionConfig{Peer: lo2}); err == nil {
		t.Error("AddSession() after Run returned: error = nil")
	}
	if err := n.m.Run(context.Background()); err == nil {
		t.Error("second Run() error = nil")
	}
	if _, ok := <-n.events; ok {
		t.Error("events still open after Run returned")
	}
}

func TestNewManagerPortInUse(t *testing.T) {
	c, err := net.ListenUDP("udp4", net.UDPAddrFromAddrPort(netip.AddrPortFrom(lo1, 0)))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	port := c.LocalAddr().(*net.UDPAddr).AddrPort().Port()
	if _, err := bfd.NewManager(bfd.ManagerConfig{ListenAddr: lo1, Port: port}); err == nil {
		t.Fatal("NewManager() on a port in use: error = nil")
	}
}

// BenchmarkDetectionTime measures how long a manager takes to notice that
// its peer stopped, with BIRD's timers from the interop setup (100 ms, ×3).
// Expect 200–300 ms: 3 × 100 ms after the last packet, which left up to
// one interval before the stop.
func BenchmarkDetectionTime(b *testing.B) {
	port := freePort(b, lo1, lo2)
	a := startManager(b, bfd.ManagerConfig{ListenAddr: lo1, Port: port, PeerPort: port, Log: logr.Discard()})
	session := bfd.SessionConfig{DesiredMinTx: 100 * time.Millisecond, RequiredMinRx: 100 * time.Millisecond, DetectMultiplier: 3}
	cfgA := session
	cfgA.Peer, cfgA.Local = lo2, lo1
	if err := a.m.AddSession(cfgA); err != nil {
		b.Fatal(err)
	}
	var (
		total, worst time.Duration
		runs         int
	)
	for b.Loop() {
		b.StopTimer()
		peer := startManager(b, bfd.ManagerConfig{ListenAddr: lo2, Port: port, PeerPort: port, Log: logr.Discard()})
		cfgB := session
		cfgB.Peer, cfgB.Local = lo1, lo2
		if err := peer.m.AddSession(cfgB); err != nil {
			b.Fatal(err)
		}
		a.waitFor(b, lo2, bfd.StateUp, upTimeout)
		// Let the Poll Sequence settle and the timers reach 100 ms.
		time.Sleep(500 * time.Millisecond)
		a.drain()
		b.StartTimer()
		peer.stop(b)
		start := time.Now()
		a.waitFor(b, lo2, bfd.StateDown, downTimeout)
		d := time.Since(start)
		total += d
		worst = max(worst, d)
		runs++
	}
	b.ReportMetric(float64(total.Microseconds())/1000/float64(runs), "ms/detect")
	b.ReportMetric(float64(worst.Microseconds())/1000, "ms/worst")
}

// TestManagerMultihopTTL: a multi-hop session accepts the peer's packets
// from its MinTTL on and drops the rest as BadTTL; its packets on the
// single-hop port, or a single-hop packet on the multi-hop port, reach no
// session.
func TestManagerMultihopTTL(t *testing.T) {
	a, b := startPair(t, pairConfig{addrA: lo1, addrB: lo2, session: multihop(fastSession(), 0)})
	sa, sb := onlySession(t, a.m), onlySession(t, b.m)
	// Single-hop listeners come first.
	addrs := a.m.ListenAddrs()
	if len(addrs) != 2 {
		t.Fatalf("A listens on %v, want a single-hop and a multi-hop port", addrs)
	}
	shPort, mhPort := addrs[0].Port(), addrs[1].Port()
	// B's Down, as B would send it, with TTL 64: below the minimum 254.
	down := bfd.ControlPacket{State: bfd.StateDown, DetectMult: 3, MyDiscriminator: sb.LocalDiscriminator, YourDiscriminator: sa.LocalDiscriminator,
		DesiredMinTxInterval: time.Second, RequiredMinRxInterval: time.Second}
	raw, err := down.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	send := func(port uint16, ttl int) {
		t.Helper()
		c, err := net.DialUDP("udp4", &net.UDPAddr{IP: lo2.AsSlice()}, &net.UDPAddr{IP: lo1.AsSlice(), Port: int(port)})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if err := ipv4.NewConn(c).SetTTL(ttl); err != nil {
			t.Fatal(err)
		}
		if _, err := c.Write(raw); err != nil {
			t.Fatal(err)
		}
	}
	before := a.m.Counters()
	send(mhPort, 64)
	send(shPort, 255)
	deadline := time.Now().Add(downTimeout)
	for {
		got := a.m.Counters()
		if got.BadTTL == before.BadTTL+1 && got.NoSession == before.NoSession+1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("counters %+v after %+v: want one more BadTTL and one more NoSession", got, before)
		}
		time.Sleep(5 * time.Millisecond)
	}
	if st := onlySession(t, a.m); st.State != bfd.StateUp {
		t.Fatalf("A after the dropped packets: %+v, want Up", st)
	}
}

// TestManagerAuthentication: two managers with the same key (meticulous
// keyed SHA1) come Up; a peer signing with another key is dropped as
// Rejected and never brings the session Up.
func TestManagerAuthentication(t *testing.T) {
	key := bfd.Auth{Type: bfd.AuthMeticulousKeyedSHA1, KeyID: 3, Key: "twenty-byte-key-1234"}
	withKey := func(a bfd.Auth) bfd.SessionConfig {
		cfg := fastSession()
		cfg.Auth = a
		return cfg
	}
	a, b := startPair(t, pairConfig{addrA: lo1, addrB: lo2, session: withKey(key)})
	if got := a.m.Counters(); got.Rejected != 0 {
		t.Errorf("counters with matching keys: %+v", got)
	}
	// B switches to another key: A drops its packets and goes Down.
	wrong := key
	wrong.Key = "another-key"
	cfg := withKey(wrong)
	cfg.Peer, cfg.Local = lo1, lo2
	if err := b.m.AddSession(cfg); err != nil {
		t.Fatal(err)
	}
	a.waitFor(t, lo2, bfd.StateDown, downTimeout)
	deadline := time.Now().Add(downTimeout)
	for a.m.Counters().Rejected == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("no packet rejected: %+v", a.m.Counters())
		}
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(2 * time.Second)
	if st := onlySession(t, a.m); st.State == bfd.StateUp {
		t.Fatalf("A came Up with a peer using another key: %+v", st)
	}
}
