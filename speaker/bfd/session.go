package bfd

import (
	"errors"
	"fmt"
	"net/netip"
	"time"

	"k8s.io/utils/clock"
)

// Defaults for the zero values of SessionConfig; they match metallb's
// BFDProfile defaults.
const (
	DefaultDesiredMinTx     = 300 * time.Millisecond
	DefaultRequiredMinRx    = 300 * time.Millisecond
	DefaultDetectMultiplier = 3
)

// SlowTxInterval is the least Desired Min TX Interval a session advertises
// and uses while it is not Up (RFC 5880 §6.8.3).
const SlowTxInterval = time.Second

// AdminDownPackets is how many AdminDown Control packets a session sends at
// least, over at least the peer's Detection Time, before it falls silent
// (RFC 5880 §6.8.16).
const AdminDownPackets = 3

// remoteMinRxInitial is the initial bfd.RemoteMinRxInterval (RFC 5880 §6.8.1).
const remoteMinRxInitial = time.Microsecond

// ErrDiscriminatorMismatch is wrapped by Session.Receive's error for a packet
// whose Your Discriminator names another session.
var ErrDiscriminatorMismatch = errors.New("your discriminator does not match the session")

// ErrUnexpectedSender is wrapped by Session.Receive's error for a packet
// that reaches an Up session without both discriminators it learned: Your
// Discriminator must be ours and My Discriminator the peer's. Such a
// packet, a forged Down from any on-link host say, cannot take the session
// (and the BGP session behind it) down; a peer that really restarted is
// heard again after one Detection Time, when the session has gone Down and
// forgotten the old discriminator.
var ErrUnexpectedSender = errors.New("packet does not carry the discriminators of the Up session")

// Rand is the randomness a session and a manager need: jitter for transmit
// intervals, discriminators and source ports. *math/rand/v2.Rand satisfies
// it; a Rand given to a Manager is only used under the Manager's lock.
type Rand interface {
	// Int64N returns a number in [0, n); n > 0.
	Int64N(n int64) int64
	// Uint32 returns a uniformly distributed 32-bit number.
	Uint32() uint32
}

// SessionConfig asks for a single-hop BFD session with one peer.
type SessionConfig struct {
	// Peer is the neighbour's address; IPv4-mapped IPv6 addresses are
	// unmapped. A session is identified by Peer without its zone.
	Peer netip.Addr
	// Local, if valid, is the source address of our packets. It must be of
	// Peer's family. The zero Addr lets the kernel choose.
	Local netip.Addr
	// Interface, if set, is the interface the peer is reached through:
	// packets to the peer leave through it, packets from the peer arriving
	// elsewhere are dropped, and it is the zone of a link-local IPv6 Peer
	// that has none.
	Interface string
	// DesiredMinTx is the interval at which we would like to send; 0 means
	// DefaultDesiredMinTx. While the session is not Up at least
	// SlowTxInterval is used.
	DesiredMinTx time.Duration
	// RequiredMinRx is the shortest interval at which we can receive; 0
	// means DefaultRequiredMinRx.
	RequiredMinRx time.Duration
	// DetectMultiplier is how many intervals without a packet the peer
	// allows before declaring us down; 0 means DefaultDetectMultiplier.
	DetectMultiplier uint8
	// Passive sessions send nothing until the peer has sent a packet
	// (RFC 5880 §6.1).
	Passive bool
	// Multihop runs the session over several hops (RFC 5883): packets go
	// to port MultihopPort, are sent with TTL 255 as single-hop ones, and
	// are accepted with any TTL from MinTTL on instead of exactly 255. For
	// a peer that is not directly connected (an ebgpMultiHop BGP peer).
	Multihop bool
	// Auth, if its Type is not AuthNone, signs every packet we send and
	// requires every packet from the peer to carry the same type and key
	// ID, a valid digest and a sequence number in the window of RFC 5880
	// §6.7.3 (§6.7.4 for SHA1).
	Auth Auth
	// MinTTL is the least TTL (hop limit) a multi-hop session accepts on
	// the peer's packets; 0 means DefaultMinTTL. Single-hop sessions always
	// require 255 (RFC 5881 §5) and ignore it.
	MinTTL uint8
}

// DefaultMinTTL is the least TTL a multi-hop session accepts by default:
// a peer one router away that sends with TTL 255 (as FRR does). A peer
// that sends with its system default TTL (BIRD: 64) needs a lower MinTTL.
const DefaultMinTTL = 254

// normalize returns cfg with defaults applied and Peer and Local unmapped,
// or an error that names the first invalid field.
func (cfg SessionConfig) normalize() (SessionConfig, error) {
	cfg.Peer = cfg.Peer.Unmap()
	cfg.Local = cfg.Local.Unmap()
	if cfg.DesiredMinTx == 0 {
		cfg.DesiredMinTx = DefaultDesiredMinTx
	}
	if cfg.RequiredMinRx == 0 {
		cfg.RequiredMinRx = DefaultRequiredMinRx
	}
	if cfg.DetectMultiplier == 0 {
		cfg.DetectMultiplier = DefaultDetectMultiplier
	}
	if cfg.MinTTL == 0 {
		cfg.MinTTL = DefaultMinTTL
	}
	if !cfg.Multihop {
		cfg.MinTTL = gtsmTTL
	}
	cfg.DesiredMinTx = cfg.DesiredMinTx.Truncate(time.Microsecond)
	cfg.RequiredMinRx = cfg.RequiredMinRx.Truncate(time.Microsecond)
	switch {
	case !cfg.Peer.IsValid():
		return cfg, errors.New("peer address is missing")
	case cfg.Peer.IsUnspecified() || cfg.Peer.IsMulticast():
		return cfg, fmt.Errorf("peer address %s is not a unicast address", cfg.Peer)
	case cfg.Local.IsValid() && cfg.Local.Is4() != cfg.Peer.Is4():
		return cfg, fmt.Errorf("local address %s and peer address %s are of different families", cfg.Local, cfg.Peer)
	case cfg.DesiredMinTx < time.Microsecond || cfg.DesiredMinTx > MaxInterval:
		return cfg, fmt.Errorf("desired min TX interval %s is outside 1µs..%s", cfg.DesiredMinTx, MaxInterval)
	case cfg.RequiredMinRx < time.Microsecond || cfg.RequiredMinRx > MaxInterval:
		return cfg, fmt.Errorf("required min RX interval %s is outside 1µs..%s", cfg.RequiredMinRx, MaxInterval)
	}
	if err := cfg.Auth.validate(); err != nil {
		return cfg, fmt.Errorf("authentication: %w", err)
	}
	return cfg, nil
}

// StateChange reports a transition of a session's local state.
type StateChange struct {
	Peer     netip.Addr
	Old, New State
	// Diag is the local diagnostic after the change: why the session went
	// Down or AdminDown, DiagNone when it came Up.
	Diag Diag
	// RemoteState is the peer's state as last received. New == StateDown
	// with RemoteState == StateAdminDown means the peer took the session
	// down administratively; RFC 5882 §3.2 says a client SHOULD NOT take
	// that as a failure of the path.
	RemoteState State
	At          time.Time
}

// SessionStatus is a snapshot of a session for display and metrics.
type SessionStatus struct {
	Peer      netip.Addr
	Local     netip.Addr
	Interface string

	State       State
	RemoteState State
	Diag        Diag
	RemoteDiag  Diag

	LocalDiscriminator  uint32
	RemoteDiscriminator uint32

	// DesiredMinTx and RequiredMinRx are the values we advertise.
	DesiredMinTx  time.Duration
	RequiredMinRx time.Duration
	// RemoteDesiredMinTx and RemoteRequiredMinRx are the peer's, as last
	// received.
	RemoteDesiredMinTx  time.Duration
	RemoteRequiredMinRx time.Duration
	// TxInterval is the negotiated interval between our packets before
	// jitter; DetectionTime is how long we wait for the peer's.
	TxInterval    time.Duration
	DetectionTime time.Duration

	DetectMultiplier       uint8
	RemoteDetectMultiplier uint8
	// PollActive is true while a Poll Sequence awaits the peer's Final.
	PollActive bool
	Passive    bool

	// Transitions counts changes of State since the session was created.
	Transitions uint64
	LastChange  time.Time

	PacketsSent     uint64
	PacketsReceived uint64
	// LastReceived is when the peer's last valid packet arrived.
	LastReceived time.Time
}

// Output is what a Session asks of its caller after an input.
type Output struct {
	// Packet, if not nil, must be sent to the peer now.
	Packet *ControlPacket
	// Change, if not nil, reports a change of the local state.
	Change *StateChange
}

// Session is the RFC 5880 asynchronous-mode state machine of one BFD
// session, without I/O: its caller feeds it received packets, timer expiry
// (Tick, when Deadline has passed) and administrative commands, and sends
// the packets it returns. Every decision reads the injected clock and
// random source, so tests drive it deterministically. Demand mode and the
// Echo function are not implemented (we never set D and always advertise a
// Required Min Echo RX Interval of 0), but a peer in Demand mode is
// honoured. A Session is not safe for concurrent use.
type Session struct {
	clock clock.PassiveClock
	rand  Rand
	peer  netip.Addr

	// Configuration.
	passive    bool
	detectMult uint8
	cfgTx      time.Duration
	cfgRx      time.Duration

	// RFC 5880 §6.8.1 state variables.
	state            State
	diag             Diag
	localDiscr       uint32
	remoteDiscr      uint32
	remoteState      State
	remoteDiag       Diag
	remoteDemand     bool
	remoteMinRx      time.Duration
	remoteMinTx      time.Duration
	remoteDetectMult uint8

	// Authentication (RFC 5880 §6.8.1): the key, the next sequence number
	// we send and the last one received.
	auth         Auth
	xmitSeq      uint32
	rcvAuthSeq   uint32
	authSeqKnown bool

	// advTx and advRx are bfd.DesiredMinTxInterval and
	// bfd.RequiredMinRxInterval: what we advertise. effTx and effRx are the
	// values in use for our transmit interval and for the detection time;
	// they lag behind the advertised ones while a Poll Sequence confirms a
	// change that would otherwise cause a false detection (§6.8.3).
	advTx, advRx time.Duration
	effTx, effRx time.Duration
	// pollActive: we set P until a packet with F arrives. pollPending: the
	// advertised values changed again during the sequence, so another must
	// follow it.
	pollActive  bool
	pollPending bool

	detectDeadline time.Time // zero: no detection timer
	lastRx         time.Time
	nextTx         time.Time

	adminDownSince time.Time
	adminDownHold  time.Duration
	adminDownSent  int

	transitions uint64
	lastChange  time.Time
	sent        uint64
	received    uint64
}

// NewSession returns a session in state Down. localDiscr must be nonzero
// and unique among the caller's sessions. Unless cfg.Passive, its first
// packet is due at once.
func NewSession(cfg SessionConfig, localDiscr uint32, clk clock.PassiveClock, rnd Rand) (*Session, error) {
	cfg, err := cfg.normalize()
	if err != nil {
		return nil, err
	}
	if localDiscr == 0 {
		return nil, errors.New("local discriminator is zero")
	}
	now := clk.Now()
	s := &Session{
		clock:       clk,
		rand:        rnd,
		peer:        cfg.Peer,
		passive:     cfg.Passive,
		detectMult:  cfg.DetectMultiplier,
		cfgTx:       cfg.DesiredMinTx,
		cfgRx:       cfg.RequiredMinRx,
		state:       StateDown,
		localDiscr:  localDiscr,
		remoteState: StateDown,
		remoteMinRx: remoteMinRxInitial,
		nextTx:      now,
		lastChange:  now,
		auth:        cfg.Auth,
		xmitSeq:     rnd.Uint32(),
	}
	s.advTx, s.advRx = s.wantedTimers()
	s.effTx, s.effRx = s.advTx, s.advRx
	return s, nil
}

// Reconfigure applies new timers, detect multiplier and passive role to a
// running session without resetting it. A change of the advertised
// intervals starts a Poll Sequence whose first packet is returned.
func (s *Session) Reconfigure(cfg SessionConfig) (Output, error) {
	cfg, err := cfg.normalize()
	if err != nil {
		return Output{}, err
	}
	if cfg.Peer.WithZone("") != s.peer.WithZone("") {
		return Output{}, fmt.Errorf("reconfiguring the session with %s for peer %s", s.peer, cfg.Peer)
	}
	s.passive = cfg.Passive
	s.detectMult = cfg.DetectMultiplier
	s.cfgTx, s.cfgRx = cfg.DesiredMinTx, cfg.RequiredMinRx
	if cfg.Auth != s.auth {
		s.auth, s.authSeqKnown = cfg.Auth, false
	}
	var out Output
	if s.updateTimers() && s.canTransmit(s.clock.Now()) {
		out.Packet = s.transmit(s.clock.Now(), false)
	}
	return out, nil
}

// checkAuth applies the authentication checks of RFC 5880 §6.8.6 that
// need session state: the packet carries authentication exactly when the
// session has it, of its type and key ID, with a sequence number in the
// window; the digest was checked by the caller, which has the raw bytes.
func (s *Session) checkAuth(p *ControlPacket) error {
	switch {
	case s.auth.Type == AuthNone && p.AuthPresent:
		return fmt.Errorf("packet from discriminator %d carries %s authentication, the session has none: %w", p.MyDiscriminator, p.AuthType, ErrAuthFailed)
	case s.auth.Type == AuthNone:
		return nil
	case !p.AuthPresent:
		return fmt.Errorf("packet from discriminator %d without authentication: %w", p.MyDiscriminator, ErrAuthFailed)
	case p.AuthType != s.auth.Type || p.AuthKeyID != s.auth.KeyID:
		return fmt.Errorf("packet from discriminator %d with %s key %d, want %s key %d: %w", p.MyDiscriminator, p.AuthType, p.AuthKeyID, s.auth.Type, s.auth.KeyID, ErrAuthFailed)
	}
	if s.authSeqKnown {
		d := p.AuthSeq - s.rcvAuthSeq // circular
		low := uint32(0)
		if s.auth.Type.Meticulous() {
			low = 1
		}
		if d < low || d > 3*uint32(p.DetectMult) {
			return fmt.Errorf("packet from discriminator %d with sequence number %d, expected %d to %d: %w", p.MyDiscriminator, p.AuthSeq, s.rcvAuthSeq+low, s.rcvAuthSeq+3*uint32(p.DetectMult), ErrAuthFailed)
		}
	}
	return nil
}

// LocalDiscriminator returns the session's My Discriminator.
func (s *Session) LocalDiscriminator() uint32 { return s.localDiscr }

// State returns the local session state.
func (s *Session) State() State { return s.state }

// Receive processes a Control packet from the peer (RFC 5880 §6.8.6). The
// caller has already selected this session by Your Discriminator or, when
// it is zero, by the peer's address and interface. An error means the
// packet was discarded.
func (s *Session) Receive(p *ControlPacket) (Output, error) {
	if err := p.Validate(); err != nil {
		return Output{}, err
	}
	if err := s.checkAuth(p); err != nil {
		return Output{}, err
	}
	if p.YourDiscriminator != 0 && p.YourDiscriminator != s.localDiscr {
		return Output{}, fmt.Errorf("packet for discriminator %d at session %d: %w", p.YourDiscriminator, s.localDiscr, ErrDiscriminatorMismatch)
	}
	if s.state == StateUp && (p.YourDiscriminator != s.localDiscr || p.MyDiscriminator != s.remoteDiscr) {
		return Output{}, fmt.Errorf("packet from discriminator %d for %d at session %d (peer %d): %w",
			p.MyDiscriminator, p.YourDiscriminator, s.localDiscr, s.remoteDiscr, ErrUnexpectedSender)
	}
	now := s.clock.Now()
	if s.auth.Type != AuthNone {
		s.rcvAuthSeq, s.authSeqKnown = p.AuthSeq, true
	}
	s.received++
	s.lastRx = now
	s.remoteDiscr = p.MyDiscriminator
	s.remoteState = p.State
	s.remoteDiag = p.Diag
	s.remoteDemand = p.Demand
	s.remoteMinRx = p.RequiredMinRxInterval
	s.remoteMinTx = p.DesiredMinTxInterval
	s.remoteDetectMult = p.DetectMult
	if p.Final && s.pollActive {
		s.terminatePoll()
	}
	var out Output
	if s.state == StateAdminDown {
		return out, nil
	}
	s.detectDeadline = now.Add(s.detectionTime())

	next, diag := s.state, DiagNone
	switch {
	case p.State == StateAdminDown:
		if s.state != StateDown {
			next, diag = StateDown, DiagNeighborSignaledDown
		}
	case s.state == StateDown:
		switch p.State {
		case StateDown:
			next = StateInit
		case StateInit:
			next = StateUp
		}
	case s.state == StateInit:
		if p.State == StateInit || p.State == StateUp {
			next = StateUp
		}
	case s.state == StateUp:
		if p.State == StateDown {
			next, diag = StateDown, DiagNeighborSignaledDown
		}
	}
	if next != s.state {
		out.Change = s.setState(now, next, diag)
	}
	// Answer a Poll at once, and tell the peer of our new state at once
	// rather than at the next periodic transmission.
	if (p.Poll || out.Change != nil) && s.canTransmit(now) {
		out.Packet = s.transmit(now, p.Poll)
	} else {
		s.clampNextTx()
	}
	return out, nil
}

// Tick handles the timers that are due at the clock's current time: the
// detection timer (the session goes Down with diag 1 if it was Init or Up)
// and periodic transmission. Call it when Deadline has passed; early calls
// are harmless.
func (s *Session) Tick() Output {
	now := s.clock.Now()
	var out Output
	if s.state != StateAdminDown && !s.detectDeadline.IsZero() && !now.Before(s.detectDeadline) {
		s.detectDeadline = time.Time{}
		// §6.8.1: without a packet for a Detection Time the remote
		// discriminator is forgotten; the rest returns to its initial
		// values as BIRD does.
		s.remoteDiscr = 0
		s.authSeqKnown = false
		s.remoteState = StateDown
		s.remoteDemand = false
		s.remoteMinRx = remoteMinRxInitial
		s.remoteMinTx = 0
		s.remoteDetectMult = 0
		s.pollActive, s.pollPending = false, false
		if s.state == StateInit || s.state == StateUp {
			out.Change = s.setState(now, StateDown, DiagControlDetectionTimeExpired)
		}
		// No Poll can complete without a peer: use what we advertise.
		s.effTx, s.effRx = s.advTx, s.advRx
	}
	if (out.Change != nil && s.canTransmit(now)) || (s.periodic(now) && !now.Before(s.nextTx)) {
		out.Packet = s.transmit(now, false)
	}
	return out
}

// Deadline returns when Tick must next be called, or the zero time if no
// timer runs.
func (s *Session) Deadline() time.Time {
	var d time.Time
	if s.periodic(s.clock.Now()) {
		d = s.nextTx
	}
	if s.state != StateAdminDown && !s.detectDeadline.IsZero() && (d.IsZero() || s.detectDeadline.Before(d)) {
		d = s.detectDeadline
	}
	return d
}

// AdminDown takes the session administratively down with DiagAdminDown
// (RFC 5880 §6.8.16). It keeps sending AdminDown packets, at least
// AdminDownPackets of them and for at least the peer's Detection Time,
// and then falls silent; Done reports when.
func (s *Session) AdminDown() Output {
	if s.state == StateAdminDown {
		return Output{}
	}
	now := s.clock.Now()
	// The peer's Detection Time for us, before we slow down.
	hold := time.Duration(s.detectMult) * s.txInterval()
	s.pollActive, s.pollPending = false, false
	out := Output{Change: s.setState(now, StateAdminDown, DiagAdminDown)}
	s.detectDeadline = time.Time{}
	s.adminDownSince, s.adminDownHold, s.adminDownSent = now, hold, 0
	if s.canTransmit(now) {
		out.Packet = s.transmit(now, false)
	}
	return out
}

// AdminUp returns an administratively down session to Down, keeping its
// diagnostic, and restarts transmission.
func (s *Session) AdminUp() Output {
	if s.state != StateAdminDown {
		return Output{}
	}
	now := s.clock.Now()
	out := Output{Change: s.setState(now, StateDown, s.diag)}
	if s.canTransmit(now) {
		out.Packet = s.transmit(now, false)
	}
	return out
}

// Done reports whether the session is AdminDown and has sent all the
// AdminDown packets it owes the peer; it can then be discarded.
func (s *Session) Done() bool {
	return s.state == StateAdminDown && s.adminDone(s.clock.Now())
}

// Status returns a snapshot of the session. Local and Interface are left
// to the caller.
func (s *Session) Status() SessionStatus {
	return SessionStatus{
		Peer:                   s.peer,
		State:                  s.state,
		RemoteState:            s.remoteState,
		Diag:                   s.diag,
		RemoteDiag:             s.remoteDiag,
		LocalDiscriminator:     s.localDiscr,
		RemoteDiscriminator:    s.remoteDiscr,
		DesiredMinTx:           s.advTx,
		RequiredMinRx:          s.advRx,
		RemoteDesiredMinTx:     s.remoteMinTx,
		RemoteRequiredMinRx:    s.remoteMinRx,
		TxInterval:             s.txInterval(),
		DetectionTime:          s.detectionTime(),
		DetectMultiplier:       s.detectMult,
		RemoteDetectMultiplier: s.remoteDetectMult,
		PollActive:             s.pollActive,
		Passive:                s.passive,
		Transitions:            s.transitions,
		LastChange:             s.lastChange,
		PacketsSent:            s.sent,
		PacketsReceived:        s.received,
		LastReceived:           s.lastRx,
	}
}

func (s *Session) setState(now time.Time, next State, diag Diag) *StateChange {
	old := s.state
	s.state, s.diag = next, diag
	s.transitions++
	s.lastChange = now
	s.updateTimers()
	return &StateChange{Peer: s.peer, Old: old, New: next, Diag: diag, RemoteState: s.remoteState, At: now}
}

// wantedTimers returns the intervals to advertise in the current state.
func (s *Session) wantedTimers() (tx, rx time.Duration) {
	tx = s.cfgTx
	if s.state != StateUp {
		tx = max(tx, SlowTxInterval)
	}
	return tx, s.cfgRx
}

// updateTimers brings the advertised intervals in line with the state and
// configuration and reports whether a Poll Sequence started (§6.8.3).
func (s *Session) updateTimers() bool {
	tx, rx := s.wantedTimers()
	if tx == s.advTx && rx == s.advRx {
		return false
	}
	s.advTx, s.advRx = tx, rx
	// A shorter TX interval or a longer detection time is safe at once;
	// the others wait for the peer's Final while Up.
	if s.state != StateUp || tx < s.effTx {
		s.effTx = tx
	}
	if s.state != StateUp || rx > s.effRx {
		s.effRx = rx
	}
	// Like BIRD, no Poll without a peer to answer it, nor from AdminDown.
	if s.remoteDiscr == 0 || s.state == StateAdminDown {
		s.effTx, s.effRx = tx, rx
		s.pollActive, s.pollPending = false, false
		return false
	}
	if s.pollActive {
		s.pollPending = true
		return false
	}
	s.pollActive = true
	return true
}

func (s *Session) terminatePoll() {
	if s.pollPending {
		// The peer confirmed older values; confirm the current ones.
		s.pollPending = false
		return
	}
	s.pollActive = false
	s.effTx, s.effRx = s.advTx, s.advRx
}

// txInterval is the negotiated transmit interval before jitter (§6.8.2).
func (s *Session) txInterval() time.Duration {
	return max(s.effTx, s.remoteMinRx)
}

// detectionTime is the asynchronous-mode Detection Time (§6.8.4).
func (s *Session) detectionTime() time.Duration {
	return time.Duration(s.remoteDetectMult) * max(s.effRx, s.remoteMinTx)
}

// jitter reduces an interval by 0–25%, or by 10–25% when the detect
// multiplier is 1 (§6.8.7).
func (s *Session) jitter(d time.Duration) time.Duration {
	lo, hi := time.Duration(0), d/4
	if s.detectMult == 1 {
		lo = (d + 9) / 10
	}
	if hi <= lo {
		return d - lo
	}
	return d - lo - time.Duration(s.rand.Int64N(int64(hi-lo)+1))
}

// canTransmit reports whether we may send at all (§6.8.7, §6.8.16).
func (s *Session) canTransmit(now time.Time) bool {
	if s.passive && s.remoteDiscr == 0 {
		return false
	}
	return s.state != StateAdminDown || !s.adminDone(now)
}

// periodic reports whether periodic transmission runs (§6.8.7).
func (s *Session) periodic(now time.Time) bool {
	if !s.canTransmit(now) || s.remoteMinRx == 0 {
		return false
	}
	demand := s.remoteDemand && s.state == StateUp && s.remoteState == StateUp
	return !demand || s.pollActive
}

func (s *Session) adminDone(now time.Time) bool {
	if (s.passive && s.remoteDiscr == 0) || s.remoteMinRx == 0 {
		return true
	}
	return s.adminDownSent >= AdminDownPackets && !now.Before(s.adminDownSince.Add(s.adminDownHold))
}

// transmit builds our next Control packet (§6.8.7) and restarts the
// periodic interval from now.
func (s *Session) transmit(now time.Time, final bool) *ControlPacket {
	p := &ControlPacket{
		Diag:                  s.diag,
		State:                 s.state,
		Final:                 final,
		Poll:                  !final && s.pollActive,
		DetectMult:            s.detectMult,
		MyDiscriminator:       s.localDiscr,
		YourDiscriminator:     s.remoteDiscr,
		DesiredMinTxInterval:  s.advTx,
		RequiredMinRxInterval: s.advRx,
	}
	if s.auth.Type != AuthNone {
		// Every packet gets the next number: required for the meticulous
		// types, allowed for the others (§6.7.3), and it keeps a replayed
		// packet from standing in for a fresh one.
		p.AuthPresent, p.AuthType, p.AuthKeyID, p.AuthSeq = true, s.auth.Type, s.auth.KeyID, s.xmitSeq
		s.xmitSeq++
	}
	s.sent++
	if s.state == StateAdminDown {
		s.adminDownSent++
	}
	s.nextTx = now.Add(s.jitter(s.txInterval()))
	return p
}

// clampNextTx brings the next periodic transmission forward when the
// interval has shrunk, so that the peer's shorter Detection Time is met.
func (s *Session) clampNextTx() {
	latest := s.clock.Now().Add(s.txInterval())
	if s.nextTx.After(latest) {
		s.nextTx = s.clock.Now().Add(s.jitter(s.txInterval()))
	}
}
