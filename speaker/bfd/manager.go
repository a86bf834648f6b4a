package bfd

import (
	"cmp"
	"context"
	"crypto/sha1" //nolint:gosec // only its digest size
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/go-logr/logr"
	"k8s.io/utils/clock"
)

// ManagerConfig configures a Manager.
type ManagerConfig struct {
	// ListenAddr is the address the Control packet listener binds. The zero
	// Addr listens on every address, with one IPv4 and one IPv6 socket (the
	// IPv6 one is skipped if the kernel has no IPv6); an address listens on
	// that address, and only its family can have sessions.
	ListenAddr netip.Addr
	// Port is the UDP port to listen on; 0 means DefaultPort.
	Port uint16
	// PeerPort is the UDP port packets are sent to; 0 means DefaultPort.
	// Only tests that run several managers on one host change it.
	PeerPort uint16
	// Multihop also listens on the multi-hop port, so that sessions with
	// SessionConfig.Multihop can be added (RFC 5883).
	Multihop bool
	// MultihopPort and PeerMultihopPort are the multi-hop counterparts of
	// Port and PeerPort; 0 means MultihopPort.
	MultihopPort, PeerMultihopPort uint16
	// Clock decides every timer; nil means the real clock.
	Clock clock.Clock
	// Rand draws discriminators, source ports and transmit jitter; nil
	// means math/rand/v2's global source.
	Rand Rand
	Log  logr.Logger
}

// Counters are the Manager's packet counters since it was created.
type Counters struct {
	// Received counts datagrams read from the listeners.
	Received uint64
	// BadTTL counts datagrams dropped for their TTL or hop limit: other
	// than 255 on the single-hop port, below the session's MinTTL on the
	// multi-hop port.
	BadTTL uint64
	// Malformed counts datagrams dropped by Unmarshal as invalid.
	Malformed uint64
	// NoSession counts valid packets that matched no session: unknown
	// discriminator or peer, or the peer's packet on another interface.
	NoSession uint64
	// Rejected counts packets a session discarded, and packets with
	// authentication.
	Rejected uint64
	// Sent and SendErrors count our transmissions.
	Sent       uint64
	SendErrors uint64
}

type counters struct {
	received, badTTL, malformed, noSession, rejected, sent, sendErrors atomic.Uint64
}

// Manager runs single-hop and multi-hop BFD sessions (RFC 5880, RFC 5881,
// RFC 5883) over UDP: it owns a listener per address family on the BFD
// port (and on the multi-hop port with ManagerConfig.Multihop), a sending socket per
// session, and one goroutine that drives every session's timers. Create
// it with NewManager, add sessions, and call Run.
type Manager struct {
	log       logr.Logger
	clock     clock.Clock
	peerPort  uint16
	peerMH    uint16
	listeners []*listener
	// wake tells Run that a session's deadline may have moved earlier.
	wake chan struct{}
	// done is closed when Run has returned.
	done chan struct{}

	stats counters

	mu       sync.Mutex
	rand     Rand // only under mu: a *rand.Rand is not safe for concurrent use
	sessions map[netip.Addr]*entry
	byDiscr  map[uint32]*entry
	subs     map[*subscriber]struct{}
	running  bool
	stopped  bool
}

type entry struct {
	key      netip.Addr // Peer without zone
	cfg      SessionConfig
	sess     *Session
	tx       *sender
	dst      netip.AddrPort
	ifindex  int // of cfg.Interface once resolved
	removing bool
}

// NewManager binds the listeners, so that a port in use or a missing
// permission is reported now. Run closes them; a Manager that is never run
// keeps them until the process exits.
func NewManager(cfg ManagerConfig) (*Manager, error) {
	m := &Manager{
		log:      cfg.Log,
		clock:    cfg.Clock,
		rand:     cfg.Rand,
		peerPort: cmp.Or(cfg.PeerPort, DefaultPort),
		peerMH:   cmp.Or(cfg.PeerMultihopPort, MultihopPort),
		wake:     make(chan struct{}, 1),
		done:     make(chan struct{}),
		sessions: map[netip.Addr]*entry{},
		byDiscr:  map[uint32]*entry{},
		subs:     map[*subscriber]struct{}{},
	}
	if m.clock == nil {
		m.clock = clock.RealClock{}
	}
	if m.rand == nil {
		m.rand = globalRand{}
	}
	if err := m.bind(cfg.ListenAddr, cmp.Or(cfg.Port, DefaultPort), false); err != nil {
		return nil, err
	}
	if cfg.Multihop {
		if err := m.bind(cfg.ListenAddr, cmp.Or(cfg.MultihopPort, MultihopPort), true); err != nil {
			for _, l := range m.listeners {
				_ = l.close()
			}
			return nil, err
		}
	}
	return m, nil
}

// bind adds the listeners on port: one on addr, or without it one IPv4 and
// one IPv6 listener (the IPv6 one skipped if the kernel has no IPv6).
func (m *Manager) bind(addr netip.Addr, port uint16, multihop bool) error {
	if addr.IsValid() {
		l, err := listen(netip.AddrPortFrom(addr.Unmap(), port))
		if err != nil {
			return err
		}
		l.multihop = multihop
		m.listeners = append(m.listeners, l)
		return nil
	}
	l4, err := listen(netip.AddrPortFrom(netip.IPv4Unspecified(), port))
	if err != nil {
		return err
	}
	l4.multihop = multihop
	m.listeners = append(m.listeners, l4)
	l6, err := listen(netip.AddrPortFrom(netip.IPv6Unspecified(), port))
	switch {
	case errors.Is(err, syscall.EAFNOSUPPORT) || errors.Is(err, syscall.EADDRNOTAVAIL):
		m.log.Info("Listening for BFD on IPv4 only: the kernel has no IPv6", "error", err.Error(), "port", port)
	case err != nil:
		_ = l4.close()
		m.listeners = m.listeners[:len(m.listeners)-1]
		return err
	default:
		l6.multihop = multihop
		m.listeners = append(m.listeners, l6)
	}
	return nil
}

// ListenAddrs returns the addresses the listeners are bound to.
func (m *Manager) ListenAddrs() []netip.AddrPort {
	addrs := make([]netip.AddrPort, 0, len(m.listeners))
	for _, l := range m.listeners {
		addrs = append(addrs, l.addr())
	}
	return addrs
}

// Run drives the sessions until ctx is done, then closes every socket and
// forgets the sessions without telling the peers (they detect the loss as
// a failure; call RemoveSession first for an orderly AdminDown). It returns nil after ctx
// is done, or the error that made a listener fail. A Manager runs once.
func (m *Manager) Run(ctx context.Context) error {
	m.mu.Lock()
	if m.running || m.stopped {
		m.mu.Unlock()
		return errors.New("BFD manager already ran")
	}
	m.running = true
	m.mu.Unlock()

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	errc := make(chan error, len(m.listeners))
	var wg sync.WaitGroup
	for _, l := range m.listeners {
		wg.Go(func() {
			if err := m.readLoop(l); err != nil {
				errc <- err
				cancel()
			}
		})
	}
	m.log.Info("Running BFD", "listen", m.ListenAddrs())
	m.timerLoop(ctx)

	m.mu.Lock()
	m.stopped = true
	for _, e := range m.sessions {
		_ = e.tx.close()
	}
	clear(m.sessions)
	clear(m.byDiscr)
	m.mu.Unlock()
	for _, l := range m.listeners {
		_ = l.close()
	}
	wg.Wait()
	close(m.done)
	select {
	case err := <-errc:
		return err
	default:
		return nil
	}
}

// AddSession starts a session with cfg.Peer, or updates the existing one:
// new timers, detect multiplier or passive role take effect through a Poll
// Sequence without resetting the session, and a new Local or Interface
// moves it to a new sending socket. It is idempotent, and revives a
// session that RemoveSession is still taking down.
func (m *Manager) AddSession(cfg SessionConfig) error {
	cfg, err := cfg.normalize()
	if err != nil {
		return fmt.Errorf("adding BFD session: %w", err)
	}
	key := cfg.Peer.WithZone("")
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.stopped {
		return fmt.Errorf("adding BFD session with %s: the manager has stopped", key)
	}
	if !slices.ContainsFunc(m.listeners, func(l *listener) bool { return l.is4() == key.Is4() && l.multihop == cfg.Multihop }) {
		if cfg.Multihop {
			return fmt.Errorf("adding multi-hop BFD session with %s: no multi-hop listener for its address family", key)
		}
		return fmt.Errorf("adding BFD session with %s: no listener for its address family", key)
	}
	log := m.log.WithValues("peer", key)
	if e, ok := m.sessions[key]; ok {
		if e.cfg == cfg && !e.removing {
			return nil
		}
		log.Info("Updating BFD session", "desiredMinTx", cfg.DesiredMinTx, "requiredMinRx", cfg.RequiredMinRx, "detectMultiplier", cfg.DetectMultiplier, "passive", cfg.Passive)
		if cfg.Local != e.cfg.Local || cfg.Interface != e.cfg.Interface || cfg.Peer != e.cfg.Peer || cfg.Multihop != e.cfg.Multihop {
			tx, err := m.openSender(cfg)
			if err != nil {
				return fmt.Errorf("updating BFD session with %s: %w", key, err)
			}
			_ = e.tx.close()
			e.tx, e.dst, e.ifindex = tx, m.destination(cfg), 0
		}
		if e.removing {
			e.removing = false
			m.handleLocked(e, e.sess.AdminUp())
		}
		out, err := e.sess.Reconfigure(cfg)
		if err != nil {
			return fmt.Errorf("updating BFD session with %s: %w", key, err)
		}
		e.cfg = cfg
		m.handleLocked(e, out)
		m.poke()
		return nil
	}
	log.Info("Adding BFD session", "desiredMinTx", cfg.DesiredMinTx, "requiredMinRx", cfg.RequiredMinRx, "detectMultiplier", cfg.DetectMultiplier, "passive", cfg.Passive)
	sess, err := NewSession(cfg, m.newDiscriminator(), m.clock, m.rand)
	if err != nil {
		return fmt.Errorf("adding BFD session with %s: %w", key, err)
	}
	tx, err := m.openSender(cfg)
	if err != nil {
		return fmt.Errorf("adding BFD session with %s: %w", key, err)
	}
	e := &entry{key: key, cfg: cfg, sess: sess, tx: tx, dst: m.destination(cfg)}
	m.sessions[key] = e
	m.byDiscr[sess.LocalDiscriminator()] = e
	m.poke()
	return nil
}

// RemoveSession takes the session with peer administratively down: it
// sends AdminDown packets for a while (see Session.AdminDown) and is then
// dropped. It returns at once, and does nothing for an unknown peer.
func (m *Manager) RemoveSession(peer netip.Addr) error {
	key := peer.Unmap().WithZone("")
	m.mu.Lock()
	defer m.mu.Unlock()
	e, ok := m.sessions[key]
	if !ok || e.removing {
		return nil
	}
	m.log.Info("Removing BFD session", "peer", key)
	e.removing = true
	m.handleLocked(e, e.sess.AdminDown())
	if !m.running || e.sess.Done() {
		m.dropLocked(e)
	}
	m.poke()
	return nil
}

// Subscribe returns a channel of every state change from now on, in order.
// Changes queue without bound until read; the channel is closed when ctx
// is done, or when Run has returned and the queue is drained. Cancel ctx
// when you stop reading.
func (m *Manager) Subscribe(ctx context.Context) <-chan StateChange {
	s := &subscriber{ch: make(chan StateChange), notify: make(chan struct{}, 1)}
	m.mu.Lock()
	m.subs[s] = struct{}{}
	m.mu.Unlock()
	go func() {
		defer close(s.ch)
		defer func() {
			m.mu.Lock()
			delete(m.subs, s)
			m.mu.Unlock()
		}()
		s.forward(ctx, m.done)
	}()
	return s.ch
}

// Sessions returns the status of every session, ordered by peer.
func (m *Manager) Sessions() []SessionStatus {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]SessionStatus, 0, len(m.sessions))
	for _, e := range m.sessions {
		st := e.sess.Status()
		st.Peer = e.cfg.Peer
		st.Local = e.tx.localAddr().Addr()
		st.Interface = e.cfg.Interface
		out = append(out, st)
	}
	slices.SortFunc(out, func(a, b SessionStatus) int { return a.Peer.Compare(b.Peer) })
	return out
}

// Counters returns the packet counters.
func (m *Manager) Counters() Counters {
	return Counters{
		Received:   m.stats.received.Load(),
		BadTTL:     m.stats.badTTL.Load(),
		Malformed:  m.stats.malformed.Load(),
		NoSession:  m.stats.noSession.Load(),
		Rejected:   m.stats.rejected.Load(),
		Sent:       m.stats.sent.Load(),
		SendErrors: m.stats.sendErrors.Load(),
	}
}

// timerLoop ticks every session whose deadline has passed, then sleeps
// until the next deadline or a wake-up, until ctx is done.
func (m *Manager) timerLoop(ctx context.Context) {
	for {
		next := m.tick()
		var (
			timer  clock.Timer
			expiry <-chan time.Time
		)
		if !next.IsZero() {
			timer = m.clock.NewTimer(max(0, next.Sub(m.clock.Now())))
			expiry = timer.C()
		}
		select {
		case <-ctx.Done():
		case <-expiry:
		case <-m.wake:
		}
		if timer != nil {
			timer.Stop()
		}
		if ctx.Err() != nil {
			return
		}
	}
}

// tick runs the sessions' due timers, drops the sessions that finished
// their AdminDown, and returns the earliest remaining deadline.
func (m *Manager) tick() time.Time {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.clock.Now()
	var next time.Time
	for _, e := range m.sessions {
		if d := e.sess.Deadline(); !d.IsZero() && !now.Before(d) {
			m.handleLocked(e, e.sess.Tick())
		}
		if e.removing && e.sess.Done() {
			m.dropLocked(e)
			continue
		}
		if d := e.sess.Deadline(); !d.IsZero() && (next.IsZero() || d.Before(next)) {
			next = d
		}
	}
	return next
}

// readLoop handles the listener's datagrams until it is closed.
func (m *Manager) readLoop(l *listener) error {
	buf := make([]byte, readBufferSize)
	for {
		n, ttl, ifindex, src, err := l.read(buf)
		if errors.Is(err, net.ErrClosed) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("reading BFD packets on %s: %w", l.addr(), err)
		}
		m.handlePacket(buf[:n], ttl, ifindex, src, l.multihop)
	}
}

// handlePacket checks, decodes and demultiplexes one datagram (RFC 5881 §5,
// RFC 5880 §6.8.6). Whatever is wrong with it is counted, and it is
// dropped.
func (m *Manager) handlePacket(b []byte, ttl, ifindex int, src netip.AddrPort, multihop bool) {
	m.stats.received.Add(1)
	// Only the drop branches log: no logger is built for a good packet.
	drop := func(msg string, kv ...any) { m.log.V(1).Info(msg, append([]any{"peer", src}, kv...)...) }
	if !multihop && ttl != gtsmTTL {
		m.stats.badTTL.Add(1)
		drop("Dropping BFD packet: TTL is not 255", "ttl", ttl)
		return
	}
	p, err := Unmarshal(b)
	if err != nil {
		if errors.Is(err, ErrAuthUnsupported) {
			m.stats.rejected.Add(1)
		} else {
			m.stats.malformed.Add(1)
		}
		drop("Dropping BFD packet", "error", err.Error())
		return
	}
	peer := src.Addr().Unmap().WithZone("")
	m.mu.Lock()
	defer m.mu.Unlock()
	var e *entry
	if p.YourDiscriminator != 0 {
		e = m.byDiscr[p.YourDiscriminator]
		if e != nil && e.key != peer {
			e = nil
		}
	} else {
		e = m.sessions[peer]
	}
	if e != nil && e.cfg.Multihop != multihop {
		e = nil
	}
	if e == nil || (!multihop && !m.onInterfaceLocked(e, ifindex)) {
		m.stats.noSession.Add(1)
		drop("Dropping BFD packet: no session", "yourDiscriminator", p.YourDiscriminator, "ifindex", ifindex)
		return
	}
	// The digest needs the raw bytes (RFC 5880 §6.7.3): checked here, the
	// rest of the authentication (type, key ID, sequence) by the session.
	if p.AuthPresent && e.cfg.Auth.Type == p.AuthType && !e.cfg.Auth.verify(b[:HeaderLen+authHeaderLen+p.AuthType.digestLen()]) {
		m.stats.rejected.Add(1)
		drop("Dropping BFD packet: authentication digest does not match", "authType", p.AuthType.String(), "keyID", p.AuthKeyID)
		return
	}
	if multihop && ttl < int(e.cfg.MinTTL) {
		m.stats.badTTL.Add(1)
		drop("Dropping multi-hop BFD packet: TTL below the session's minimum", "ttl", ttl, "minTTL", e.cfg.MinTTL)
		return
	}
	out, err := e.sess.Receive(&p)
	if err != nil {
		m.stats.rejected.Add(1)
		drop("Dropping BFD packet", "error", err.Error())
		return
	}
	m.handleLocked(e, out)
	m.poke()
}

// onInterfaceLocked reports whether a packet that arrived on ifindex may
// belong to e, resolving e's interface name again when the index differs
// (the interface may have been recreated).
func (m *Manager) onInterfaceLocked(e *entry, ifindex int) bool {
	if e.cfg.Interface == "" || ifindex == 0 || ifindex == e.ifindex {
		return true
	}
	ifi, err := net.InterfaceByName(e.cfg.Interface)
	if err != nil {
		return false
	}
	e.ifindex = ifi.Index
	return ifindex == e.ifindex
}

// handleLocked reports a session's state change and sends its packet.
// Sending under the lock keeps each session's packets in the order the
// session made them: a stale Down overtaking an Init would take the peer
// down again.
func (m *Manager) handleLocked(e *entry, out Output) {
	if c := out.Change; c != nil {
		kv := []any{"peer", e.key, "old", c.Old.String(), "new", c.New.String(), "diag", c.Diag.String(), "remoteState", c.RemoteState.String()}
		if c.Diag == DiagControlDetectionTimeExpired {
			kv = append(kv, "sinceLastPacket", c.At.Sub(e.sess.Status().LastReceived).String())
		}
		m.log.Info("BFD session changed state", kv...)
		for s := range m.subs {
			s.push(*c)
		}
	}
	if out.Packet == nil {
		return
	}
	var b []byte
	var err error
	if out.Packet.AuthPresent {
		b, err = out.Packet.AppendSigned(make([]byte, 0, HeaderLen+authHeaderLen+sha1.Size), e.cfg.Auth)
	} else {
		b, err = out.Packet.Marshal()
	}
	if err != nil {
		// Sessions only build packets that encode.
		m.log.Error(err, "Encoding BFD packet", "peer", e.key)
		return
	}
	if e.cfg.Interface != "" && e.ifindex == 0 {
		if ifi, err := net.InterfaceByName(e.cfg.Interface); err == nil {
			e.ifindex = ifi.Index
		}
	}
	if err := e.tx.send(b, e.dst, e.ifindex); err != nil {
		m.stats.sendErrors.Add(1)
		m.log.V(1).Info("Sending BFD packet failed", "peer", e.dst, "error", err.Error())
		return
	}
	m.stats.sent.Add(1)
}

func (m *Manager) dropLocked(e *entry) {
	m.log.Info("Dropping BFD session", "peer", e.key)
	_ = e.tx.close()
	delete(m.sessions, e.key)
	delete(m.byDiscr, e.sess.LocalDiscriminator())
}

func (m *Manager) poke() {
	select {
	case m.wake <- struct{}{}:
	default:
	}
}

// newDiscriminator returns a random nonzero discriminator no session uses
// (RFC 5880 §6.8.1).
func (m *Manager) newDiscriminator() uint32 {
	for {
		d := m.rand.Uint32()
		if _, used := m.byDiscr[d]; d != 0 && !used {
			return d
		}
	}
}

func (m *Manager) openSender(cfg SessionConfig) (*sender, error) {
	local := cfg.Local
	switch {
	case !local.IsValid() && cfg.Peer.Is4():
		local = netip.IPv4Unspecified()
	case !local.IsValid():
		local = netip.IPv6Unspecified()
	case local.Is6() && local.IsLinkLocalUnicast() && local.Zone() == "":
		local = local.WithZone(cfg.Interface)
	}
	first := MinSourcePort + m.rand.Int64N(MaxSourcePort-MinSourcePort+1)
	return openSender(local, uint16(first))
}

// destination is where cfg's packets go: the link-local peer gets the
// session's interface as its zone if it has none.
func (m *Manager) destination(cfg SessionConfig) netip.AddrPort {
	peer := cfg.Peer
	if peer.Is6() && peer.IsLinkLocalUnicast() && peer.Zone() == "" && cfg.Interface != "" {
		peer = peer.WithZone(cfg.Interface)
	}
	if cfg.Multihop {
		return netip.AddrPortFrom(peer, m.peerMH)
	}
	return netip.AddrPortFrom(peer, m.peerPort)
}

// subscriber queues state changes for one Subscribe channel.
type subscriber struct {
	ch     chan StateChange
	notify chan struct{}
	mu     sync.Mutex
	queue  []StateChange
}

func (s *subscriber) push(c StateChange) {
	s.mu.Lock()
	s.queue = append(s.queue, c)
	s.mu.Unlock()
	select {
	case s.notify <- struct{}{}:
	default:
	}
}

func (s *subscriber) pop() (StateChange, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.queue) == 0 {
		return StateChange{}, false
	}
	c := s.queue[0]
	s.queue[0] = StateChange{}
	s.queue = s.queue[1:]
	return c, true
}

// forward delivers queued changes until ctx is done, or until stopped is
// closed and the queue is empty.
func (s *subscriber) forward(ctx context.Context, stopped <-chan struct{}) {
	for {
		c, ok := s.pop()
		if !ok {
			select {
			case <-ctx.Done():
				return
			case <-stopped:
				if c, ok = s.pop(); !ok {
					return
				}
			case <-s.notify:
				continue
			}
		}
		select {
		case s.ch <- c:
		case <-ctx.Done():
			return
		}
	}
}

// globalRand is math/rand/v2's goroutine-safe global source.
type globalRand struct{}

func (globalRand) Int64N(n int64) int64 { return rand.Int64N(n) }
func (globalRand) Uint32() uint32       { return rand.Uint32() }
