package membership

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"log"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-logr/logr"
	"github.com/hashicorp/memberlist"
	"k8s.io/utils/clock"
)

// Defaults for Config fields left zero, and limits.
const (
	// DefaultPort is the memberlist port (TCP and UDP) the speaker uses.
	DefaultPort = 7946
	// DefaultHeartbeatInterval is how often a node heartbeats its peers.
	DefaultHeartbeatInterval = 100 * time.Millisecond
	// DefaultMissedHeartbeats is how many heartbeats in a row a peer may
	// miss before it is declared dead.
	DefaultMissedHeartbeats = 4
	// DefaultMaxPeers bounds the number of peers a node watches.
	DefaultMaxPeers = 64
	// DefaultProbeInterval is the interval of memberlist's own probes.
	DefaultProbeInterval = time.Second
	// DefaultProbeTimeout is the timeout of memberlist's own probes.
	DefaultProbeTimeout = 500 * time.Millisecond
	// MaxMetaSize is the longest metadata SetMeta accepts.
	MaxMetaSize = memberlist.MetaMaxSize
)

const (
	// checksPerInterval is how often per heartbeat interval the detector
	// judges; it bounds the detection delay past the timeout to a quarter
	// of an interval.
	checksPerInterval = 4
	// minHeartbeatInterval keeps the check period at 2.5 ms or more.
	minHeartbeatInterval = 10 * time.Millisecond
	// replyTimeouts: a node heartbeats a peer that watches it for this many
	// detection timeouts after the peer's last request (4 s by default), so
	// that a lossy path towards it does not turn into silence back.
	replyTimeouts = 10
	// goodbyeHold is how long a goodbye is honoured when memberlist never
	// reports the node gone and no newer heartbeat arrives.
	goodbyeHold = 30 * time.Second
	// leaveTimeout bounds the wait for memberlist to gossip our leave.
	leaveTimeout = 2 * time.Second
	// metaTimeout bounds the wait for memberlist to gossip new metadata.
	metaTimeout = 2 * time.Second
	// gossipInterval is memberlist's gossip interval (its default is 200 ms):
	// leaves and metadata spread faster. Gossip only sends when something
	// is queued, so an idle cluster pays nothing for it.
	gossipInterval = 100 * time.Millisecond
	// suspectHold is how many heartbeat intervals a peer that was dead to
	// this node and is back must keep saying it has declared this node dead
	// before Member.SuspectsUs reports it: a partition that heals clears
	// the mark within one interval on both sides, a path that loses
	// heartbeats in one direction only does not. From a peer heard all
	// along, the mark counts at once.
	suspectHold = 2
	// claimRetry is how long, in heartbeat intervals, a claims request
	// waits for its answer before it is sent again.
	claimRetry = 5
	// reviveWindow is how long a peer that memberlist dropped as failed
	// still gets heartbeats (marked "suspects you"), so that when a
	// partition heals both sides notice within one interval and memberlist
	// is joined again at once instead of at the next join retry.
	reviveWindow = 2 * time.Minute
	// rejoinEvery bounds how often a heartbeat from a peer memberlist has
	// dropped makes this node join it again.
	rejoinEvery = time.Second
	// foreignReport is how often undecryptable traffic is reported.
	foreignReport = 30 * time.Second
	// tcpTimeout bounds memberlist's TCP connects and push/pulls.
	tcpTimeout = 2 * time.Second
	// clusterLabel is prefixed to (and, with a key, authenticated in) every
	// memberlist packet, so that lbstack never merges with another memberlist
	// cluster on the same port, such as MetalLB's speakers.
	clusterLabel = "lbstack"
)

// ErrNotRunning is returned by methods that need the network when Run has not
// started the node yet or has already stopped it.
var ErrNotRunning = errors.New("membership is not running")

// Config configures a Membership. Zero fields take the defaults above.
type Config struct {
	// NodeName is this node's memberlist name: the Kubernetes node name.
	// Required, at most 253 bytes.
	NodeName string
	// BindAddr is the IP address to listen on: the node IP ("127.0.0.1" in
	// tests). Empty means all addresses ("0.0.0.0").
	BindAddr string
	// BindPort is the TCP and UDP port to listen on; the speaker passes
	// DefaultPort. Zero lets the system choose a free port (tests).
	BindPort int
	// AdvertiseAddr is the IP address other members reach this node at, if
	// not BindAddr (memberlist picks one when BindAddr is "0.0.0.0").
	AdvertiseAddr string
	// SecretKey, if set, encrypts and authenticates all traffic (memberlist
	// gossip and the heartbeats) with AES-GCM. It must be 16, 24 or 32 bytes
	// long, the same on every node. Never log it.
	SecretKey []byte
	// HeartbeatInterval is how often this node heartbeats the peers it
	// watches and the peers that watch it. Default 100 ms, minimum 10 ms.
	HeartbeatInterval time.Duration
	// MissedHeartbeats is how many heartbeats in a row a watched peer may
	// miss before it is declared dead. Default 4, minimum 2.
	MissedHeartbeats int
	// MaxPeers is the most peers this node watches. Default 64.
	MaxPeers int
	// ProbeInterval and ProbeTimeout tune memberlist's own failure
	// detection, which still decides for peers that are not watched.
	// Defaults 1 s and 500 ms; the timeout must be shorter than the interval.
	ProbeInterval time.Duration
	ProbeTimeout  time.Duration
	// Clock drives the heartbeats and the failure detector. Default
	// clock.RealClock{}. memberlist's own timers always use real time.
	Clock clock.WithTicker
	// Log receives this package's and memberlist's logs.
	Log logr.Logger
	// OnForeign, if set, is called (at most once per 30 s, not holding any
	// lock of this package) when packets arrive that this node cannot
	// decrypt: a speaker that uses another key, which can never join this
	// node's cluster. detail is memberlist's message, naming the sender.
	OnForeign func(detail string)
}

// withDefaults returns c with zero fields set to their defaults, or an error
// listing every invalid field.
func (c Config) withDefaults() (Config, error) {
	if c.BindAddr == "" {
		c.BindAddr = "0.0.0.0"
	}
	if c.HeartbeatInterval == 0 {
		c.HeartbeatInterval = DefaultHeartbeatInterval
	}
	if c.MissedHeartbeats == 0 {
		c.MissedHeartbeats = DefaultMissedHeartbeats
	}
	if c.MaxPeers == 0 {
		c.MaxPeers = DefaultMaxPeers
	}
	if c.ProbeInterval == 0 {
		c.ProbeInterval = DefaultProbeInterval
	}
	if c.ProbeTimeout == 0 {
		c.ProbeTimeout = DefaultProbeTimeout
	}
	if c.Clock == nil {
		c.Clock = clock.RealClock{}
	}

	var errs []error
	if c.NodeName == "" || len(c.NodeName) > maxNameLen {
		errs = append(errs, fmt.Errorf("NodeName must be 1 to %d bytes long, not %d", maxNameLen, len(c.NodeName)))
	}
	if _, err := netip.ParseAddr(c.BindAddr); err != nil {
		errs = append(errs, fmt.Errorf("BindAddr: %w", err))
	}
	if c.BindPort < 0 || c.BindPort > 65535 {
		errs = append(errs, fmt.Errorf("BindPort %d is out of range", c.BindPort))
	}
	if c.AdvertiseAddr != "" {
		if _, err := netip.ParseAddr(c.AdvertiseAddr); err != nil {
			errs = append(errs, fmt.Errorf("AdvertiseAddr: %w", err))
		}
	}
	switch len(c.SecretKey) {
	case 0, 16, 24, 32:
	default:
		// The length only: never the key.
		errs = append(errs, fmt.Errorf("SecretKey must be 16, 24 or 32 bytes long, not %d", len(c.SecretKey)))
	}
	if c.HeartbeatInterval < minHeartbeatInterval {
		errs = append(errs, fmt.Errorf("HeartbeatInterval %s is shorter than %s", c.HeartbeatInterval, minHeartbeatInterval))
	}
	if c.MissedHeartbeats < 2 {
		errs = append(errs, fmt.Errorf("MissedHeartbeats must be at least 2, not %d", c.MissedHeartbeats))
	}
	if c.MaxPeers < 1 {
		errs = append(errs, fmt.Errorf("MaxPeers must be positive, not %d", c.MaxPeers))
	}
	if c.ProbeInterval <= 0 || c.ProbeTimeout <= 0 || c.ProbeTimeout >= c.ProbeInterval {
		errs = append(errs, fmt.Errorf("ProbeTimeout %s must be positive and shorter than ProbeInterval %s", c.ProbeTimeout, c.ProbeInterval))
	}
	if err := errors.Join(errs...); err != nil {
		return Config{}, fmt.Errorf("invalid membership config: %w", err)
	}
	return c, nil
}

// Member is a live member of the cluster.
type Member struct {
	// Name is the member's node name.
	Name string
	// Addr is the IP address the member is reached at.
	Addr netip.Addr
	// Meta is the member's metadata (see SetMeta); nil if it set none.
	Meta []byte
	// SuspectsUs: for at least two heartbeat intervals, this member's
	// heartbeats have said it declared this node dead, though this node
	// hears it: the path towards it loses heartbeats in one direction.
	SuspectsUs bool
}

// Membership is one node's view of the cluster. Create it with New, then call
// Run; the other methods are safe for concurrent use.
type Membership struct {
	cfg     Config
	log     logr.Logger
	changed chan struct{}
	started chan struct{} // closed once Run has started memberlist, or failed to

	ran     atomic.Bool
	noLeave atomic.Bool // tests: stop as if crashed, without saying goodbye
	// dropFrom (tests) drops this package's messages from the named
	// senders: a path that loses packets in one direction.
	dropFrom atomic.Pointer[func(name string) bool]

	// mu guards what follows. It is never held while calling memberlist,
	// because memberlist calls our events with its own node lock held.
	mu       sync.Mutex
	ml       *memberlist.Memberlist // nil unless running
	meta     []byte
	watched  map[string]bool       // nil: every member
	members  map[string]memberInfo // memberlist's alive members, self included
	eligible map[string]bool       // peers watched now
	watchers map[string]time.Time  // peers that asked for heartbeats, and when they last did
	goodbyes map[string]goodbye    // peers that said they are leaving
	departed map[string]Departure  // how peers stopped being live, until they come back
	det      *Detector
	epoch    uint64
	seq      uint64

	// Claims: this node's, and the last known of each peer.
	claims     claimSet
	peerClaims map[string]claimSet
	claimReq   map[string]claimAsk  // when claims were last asked of a peer
	sending    map[string]bool      // claims being sent to a peer (TCP)
	suspects   map[string]suspicion // peers whose heartbeats say they declared us dead
	lost       map[string]lostPeer  // peers memberlist dropped as failed
	rejoinAt   map[string]time.Time // when a lost peer was last joined again
	revivedAt  map[string]time.Time // when a peer dead to us was last heard again
	lastHB     map[string]time.Time // when a peer's last heartbeat arrived

	// keyring holds the memberlist keys (nil without encryption): the
	// primary encrypts, all decrypt.
	keyring *memberlist.Keyring

	// broadcasts gossips this node's claims digest (msgDigest).
	broadcasts *memberlist.TransmitLimitedQueue

	sentPackets, sentBytes, sentStreams atomic.Uint64
	declaredDead                        atomic.Uint64 // members declared dead by heartbeat
	overruled                           atomic.Uint64 // memberlist failures overruled by heartbeats

	foreign     atomic.Uint64 // undecryptable packets and streams
	foreignMu   sync.Mutex
	foreignLast time.Time
}

// foreignPacket counts a packet or stream this node could not decrypt and
// says so, at most once per 30 s.
func (m *Membership) foreignPacket(detail string) {
	m.foreign.Add(1)
	now := m.cfg.Clock.Now()
	m.foreignMu.Lock()
	report := m.foreignLast.IsZero() || now.Sub(m.foreignLast) >= foreignReport
	if report {
		m.foreignLast = now
	}
	m.foreignMu.Unlock()
	if !report {
		return
	}
	m.log.Info("Receiving memberlist traffic this node cannot decrypt: another speaker uses a different memberlist key (or is not lbstack) and cannot join this node's cluster", "detail", detail)
	if m.cfg.OnForeign != nil {
		m.cfg.OnForeign(detail)
	}
}

// maxKeys is how many keys SetKey keeps: the new primary and the previous
// ones, which still decrypt what speakers not yet rotated send.
const maxKeys = 3

// SetKey makes key (16, 24 or 32 bytes) the key this node encrypts with, and
// keeps decrypting with the previous ones (up to two): a key rotation. Every
// running speaker rotates when its key file changes, so old and new speakers
// understand each other throughout a roll-out; a node started without a key
// cannot start encrypting (an error). Setting the current key does nothing.
func (m *Membership) SetKey(key []byte) error {
	switch len(key) {
	case 16, 24, 32:
	default:
		return fmt.Errorf("a memberlist key must be 16, 24 or 32 bytes long, not %d", len(key))
	}
	m.mu.Lock()
	kr := m.keyring
	m.mu.Unlock()
	if kr == nil {
		return errors.New("memberlist runs without encryption (no key at start, or not running): restart the speaker to use a key")
	}
	if bytes.Equal(kr.GetPrimaryKey(), key) {
		return nil
	}
	if err := kr.AddKey(key); err != nil {
		return err
	}
	if err := kr.UseKey(key); err != nil {
		return err
	}
	// Drop the oldest keys beyond maxKeys (GetKeys lists the primary
	// first, then the others in the order they were added).
	keys := kr.GetKeys()
	for i := len(keys) - 1; i >= maxKeys; i-- {
		_ = kr.RemoveKey(keys[i])
	}
	m.log.Info("Rotated the memberlist key: encrypting with the new key, still decrypting with the previous ones", "keys", min(len(keys), maxKeys))
	return nil
}

// Traffic returns what this node has sent since it started: UDP packets
// and their bytes (heartbeats, memberlist's probes and gossip; encrypted
// sizes), and TCP connections opened (joins, push/pulls, claims).
func (m *Membership) Traffic() (packets, bytes, streams uint64) {
	return m.sentPackets.Load(), m.sentBytes.Load(), m.sentStreams.Load()
}

// countingTransport is memberlist's network transport, counting what it
// sends.
type countingTransport struct {
	*memberlist.NetTransport
	m *Membership
}

func (t *countingTransport) WriteTo(b []byte, addr string) (time.Time, error) {
	return t.WriteToAddress(b, memberlist.Address{Addr: addr})
}

func (t *countingTransport) WriteToAddress(b []byte, a memberlist.Address) (time.Time, error) {
	t.m.sentPackets.Add(1)
	t.m.sentBytes.Add(uint64(len(b)))
	return t.NetTransport.WriteToAddress(b, a)
}

func (t *countingTransport) DialAddressTimeout(a memberlist.Address, timeout time.Duration) (net.Conn, error) {
	t.m.sentStreams.Add(1)
	return t.NetTransport.DialAddressTimeout(a, timeout)
}

// newNetTransport opens memberlist's UDP and TCP listeners on addr:port;
// with port 0 it retries a few times (the kernel's free UDP port may be
// taken for TCP), as memberlist does.
func newNetTransport(addr string, port int, logger *log.Logger) (*memberlist.NetTransport, error) {
	var err error
	for range 10 {
		var nt *memberlist.NetTransport
		if nt, err = memberlist.NewNetTransport(&memberlist.NetTransportConfig{BindAddrs: []string{addr}, BindPort: port, Logger: logger}); err == nil {
			return nt, nil
		}
		if port != 0 || !strings.Contains(err.Error(), "address already in use") {
			break
		}
	}
	return nil, err
}

// Foreign returns how many packets and streams arrived that this node could
// not decrypt (see Config.OnForeign).
func (m *Membership) Foreign() uint64 { return m.foreign.Load() }

// claimSet is one node's claims: the election keys of the addresses it
// announces, versioned within the node's epoch.
type claimSet struct {
	epoch, version uint64
	keys           []Claim // sorted by key
	digest         uint64
}

// newer reports whether c supersedes o.
func (c claimSet) newer(o claimSet) bool {
	return c.epoch > o.epoch || c.epoch == o.epoch && c.version > o.version
}

func digestOf(claims []Claim) uint64 {
	h := fnv.New64a()
	for _, c := range claims {
		b := c.Key.AsSlice()
		h.Write([]byte{byte(len(b))})
		h.Write(b)
		h.Write([]byte{byte(c.Gen >> 24), byte(c.Gen >> 16), byte(c.Gen >> 8), byte(c.Gen), byte(c.View >> 8), byte(c.View)})
	}
	return h.Sum64()
}

// Claim is one address group a node announces. When two nodes announce a
// key (a partition healed), every node decides between them from their
// claims alone.
type Claim struct {
	// Key is the group's election key.
	Key netip.Addr
	// Gen is the claim's generation: one more than the newest claim of the
	// key the claimer knew of when it took the group (1 for a group that
	// had no owner). Of two claims, the one taken over later is newer.
	Gen uint32
	// View is the fewest candidates (the claimer included) the claimer saw
	// live while it held the group: a node cut off from the others holds
	// with a view of 1, the side that took over with more.
	View uint16
}

// Claimant is a member that claims a key.
type Claimant struct {
	Node string
	// Gen and View are those of its Claim.
	Gen  uint32
	View uint16
}

func compareClaims(a, b Claim) int { return a.Key.Compare(b.Key) }

// claimAsk is the last request for a peer's claims: when, and the digest
// its heartbeat carried then.
type claimAsk struct {
	at     time.Time
	digest uint64
}

type suspicion struct {
	since, last time.Time // first and latest marked heartbeat
	confirmed   bool
}

type lostPeer struct {
	addr netip.AddrPort
	at   time.Time
}

type memberInfo struct {
	addr netip.AddrPort
	meta []byte
}

type goodbye struct {
	epoch, seq uint64
	at         time.Time
}

// New validates cfg and returns a Membership. It opens no socket and starts
// nothing: Run does.
func New(cfg Config) (*Membership, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	cfg.SecretKey = bytes.Clone(cfg.SecretKey)
	return &Membership{
		cfg:      cfg,
		log:      cfg.Log.WithValues("node", cfg.NodeName),
		changed:  make(chan struct{}, 1),
		started:  make(chan struct{}),
		members:  make(map[string]memberInfo),
		eligible: make(map[string]bool),
		watchers: make(map[string]time.Time),
		goodbyes: make(map[string]goodbye),
		departed: make(map[string]Departure),
		det:      NewDetector(cfg.HeartbeatInterval, cfg.MissedHeartbeats),

		claims:     claimSet{digest: digestOf(nil)},
		peerClaims: make(map[string]claimSet),
		claimReq:   make(map[string]claimAsk),
		sending:    make(map[string]bool),
		suspects:   make(map[string]suspicion),
		lost:       make(map[string]lostPeer),
		rejoinAt:   make(map[string]time.Time),
		revivedAt:  make(map[string]time.Time),
		lastHB:     make(map[string]time.Time),
	}, nil
}

// Run starts memberlist on the configured address, heartbeats and judges
// peers until ctx is done, then leaves the cluster and shuts down. To leave,
// it tells every member directly that it is leaving, so that they drop it
// within milliseconds, and has memberlist gossip the leave (waiting up to
// 2 s for that). Run returns an error if memberlist cannot start or shut
// down; it may be called once.
func (m *Membership) Run(ctx context.Context) error {
	if !m.ran.CompareAndSwap(false, true) {
		return errors.New("membership: Run called twice")
	}
	ml, err := m.start()
	close(m.started)
	if err != nil {
		return err
	}
	m.signal()

	checkEvery := m.cfg.HeartbeatInterval / checksPerInterval
	ticker := m.cfg.Clock.NewTicker(checkEvery)
	defer ticker.Stop()
	lastSent := m.cfg.Clock.Now()
	m.heartbeat(ml, lastSent)
	for {
		select {
		case <-ctx.Done():
			return m.stop(ml)
		case <-ticker.C():
			now := m.cfg.Clock.Now()
			m.check(now)
			// A tick may come early or late; send once per interval.
			if now.Sub(lastSent) >= m.cfg.HeartbeatInterval-checkEvery/2 {
				m.heartbeat(ml, now)
				lastSent = now
			}
		}
	}
}

func (m *Membership) start() (*memberlist.Memberlist, error) {
	c := memberlist.DefaultLANConfig()
	c.Name = m.cfg.NodeName
	c.BindAddr = m.cfg.BindAddr
	c.BindPort = m.cfg.BindPort
	c.AdvertiseAddr = m.cfg.AdvertiseAddr
	c.AdvertisePort = m.cfg.BindPort
	if len(m.cfg.SecretKey) > 0 {
		kr, err := memberlist.NewKeyring(nil, m.cfg.SecretKey)
		if err != nil {
			return nil, fmt.Errorf("memberlist key: %w", err)
		}
		m.mu.Lock()
		m.keyring = kr
		m.mu.Unlock()
		c.Keyring = kr
	}
	c.Label = clusterLabel
	c.ProbeInterval = m.cfg.ProbeInterval
	c.ProbeTimeout = m.cfg.ProbeTimeout
	c.GossipInterval = gossipInterval
	// A LAN answers a TCP connect in milliseconds; memberlist's 10 s
	// default would hold a join (and a claims transfer) up that long.
	c.TCPTimeout = tcpTimeout
	// Heartbeats are a few dozen bytes: compressing them costs CPU and
	// makes them longer.
	c.EnableCompression = false
	c.Delegate = delegate{m}
	c.Events = events{m}
	c.Logger = newStdLogger(m.log.WithName("memberlist"), m.foreignPacket)

	m.mu.Lock()
	m.epoch = uint64(m.cfg.Clock.Now().UnixNano())
	m.claims.epoch = m.epoch
	m.mu.Unlock()

	// Our own transport, to count what this node sends.
	nt, err := newNetTransport(m.cfg.BindAddr, m.cfg.BindPort, c.Logger)
	if err != nil {
		return nil, fmt.Errorf("starting memberlist on %s: %w", netJoin(m.cfg.BindAddr, m.cfg.BindPort), err)
	}
	c.Transport = &countingTransport{NetTransport: nt, m: m}
	if c.BindPort == 0 {
		c.BindPort = nt.GetAutoBindPort()
		c.AdvertisePort = c.BindPort
	}
	m.log.Info("Starting memberlist", "bindAddr", m.cfg.BindAddr, "bindPort", c.BindPort, "encrypted", len(m.cfg.SecretKey) > 0)
	ml, err := memberlist.Create(c)
	if err != nil {
		_ = nt.Shutdown()
		return nil, fmt.Errorf("starting memberlist on %s: %w", netJoin(m.cfg.BindAddr, m.cfg.BindPort), err)
	}
	m.mu.Lock()
	m.ml = ml
	m.broadcasts = &memberlist.TransmitLimitedQueue{NumNodes: ml.NumMembers, RetransmitMult: c.RetransmitMult}
	m.queueDigestLocked()
	m.mu.Unlock()
	return ml, nil
}

func (m *Membership) stop(ml *memberlist.Memberlist) error {
	m.mu.Lock()
	m.ml = nil
	bye := message{typ: msgLeave, epoch: m.epoch, seq: m.seq + 1, name: m.cfg.NodeName}.appendTo(nil)
	var peers []memberlist.Address
	for name, info := range m.members {
		if name != m.cfg.NodeName {
			peers = append(peers, memberlist.Address{Addr: info.addr.String(), Name: name})
		}
	}
	m.mu.Unlock()
	m.signal()

	if !m.noLeave.Load() {
		m.log.Info("Leaving the cluster", "members", len(peers))
		for _, p := range peers {
			if err := ml.SendToAddress(p, bye); err != nil {
				m.log.V(1).Info("Sending goodbye failed", "member", p.Name, "err", err)
			}
		}
		if err := ml.Leave(leaveTimeout); err != nil {
			m.log.Info("Leave not confirmed by gossip", "err", err)
		}
	}
	if err := ml.Shutdown(); err != nil {
		return fmt.Errorf("shutting down memberlist: %w", err)
	}
	m.log.Info("Stopped memberlist")
	return nil
}

// heartbeat recomputes the watched peers and sends one round of heartbeats.
func (m *Membership) heartbeat(ml *memberlist.Memberlist, now time.Time) {
	type target struct {
		addr     memberlist.Address
		watching bool
		suspects bool
	}
	var targets []target
	var ask []memberlist.Address

	m.mu.Lock()
	self := m.cfg.NodeName
	candidates := make([]string, 0, len(m.members))
	for name := range m.members {
		if m.watched == nil || m.watched[name] {
			candidates = append(candidates, name)
		}
	}
	eligible := make(map[string]bool)
	for _, name := range selectPeers(self, candidates, m.cfg.MaxPeers) {
		eligible[name] = true
	}
	for name := range m.eligible {
		// A peer no longer watched is no longer judged — but one already
		// declared dead stays dead until memberlist drops it or a
		// heartbeat from it arrives: forgetting it would make a dead
		// peer live again.
		if !eligible[name] && !m.det.Dead(name) {
			m.det.Forget(name)
		}
	}
	// A peer newly watched that this node heard lately (marked heartbeats
	// to a peer it took for dead, replies while it watched it before) is
	// judged from that heartbeat on: a node that has just joined and now
	// watches an owner would otherwise not judge it until a heartbeat
	// arrives, and an owner dying in that moment would be noticed only by
	// memberlist, seconds later.
	timeout := time.Duration(m.cfg.MissedHeartbeats) * m.cfg.HeartbeatInterval
	for name := range eligible {
		if lh, ok := m.lastHB[name]; ok && !m.eligible[name] && !m.det.Tracked(name) && now.Sub(lh) <= timeout {
			m.det.Heard(name, lh)
		}
	}
	m.eligible = eligible
	replyWindow := replyTimeouts * time.Duration(m.cfg.MissedHeartbeats) * m.cfg.HeartbeatInterval
	for name, at := range m.watchers {
		if now.Sub(at) > replyWindow {
			delete(m.watchers, name)
		}
	}
	for name, g := range m.goodbyes {
		if now.Sub(g.at) > goodbyeHold {
			delete(m.goodbyes, name)
		}
	}
	retry := claimRetry * m.cfg.HeartbeatInterval
	for name, info := range m.members {
		if name == self {
			continue
		}
		addr := memberlist.Address{Addr: info.addr.String(), Name: name}
		if _, ok := m.peerClaims[name]; !ok && m.liveLocked(name) && now.Sub(m.claimReq[name].at) >= retry {
			// A member known from gossip only: ask for its claims.
			m.claimReq[name] = claimAsk{at: now}
			ask = append(ask, addr)
		}
		_, watcher := m.watchers[name]
		// A peer declared dead keeps getting heartbeats, marked: when the
		// path heals it notices at once, and while only our direction
		// works it learns that we cannot hear it.
		dead := m.det.Dead(name)
		// A peer that says it cannot hear us gets heartbeats too, though
		// we do not watch it: it may have stopped watching us after it
		// declared us dead, and only a heartbeat from us revives us there.
		_, suspectsUs := m.suspects[name]
		if !eligible[name] && !watcher && !dead && !suspectsUs {
			continue
		}
		targets = append(targets, target{addr: addr, watching: eligible[name], suspects: dead})
	}
	for name, p := range m.lost {
		if now.Sub(p.at) > reviveWindow {
			delete(m.lost, name)
			continue
		}
		if _, ok := m.members[name]; !ok {
			targets = append(targets, target{addr: memberlist.Address{Addr: p.addr.String(), Name: name}, suspects: true})
		}
	}
	m.seq++
	msg := message{typ: msgHeartbeat, epoch: m.epoch, seq: m.seq, name: self,
		hasDigest: true, digest: m.claims.digest}
	req := message{typ: msgClaimsRequest, epoch: m.epoch, seq: m.seq, name: self}.appendTo(nil)
	m.mu.Unlock()

	bufs := map[[2]bool][]byte{}
	for _, t := range targets {
		k := [2]bool{t.watching, t.suspects}
		buf, ok := bufs[k]
		if !ok {
			msg.watching, msg.suspectsYou = t.watching, t.suspects
			buf = msg.appendTo(nil)
			bufs[k] = buf
		}
		if err := ml.SendToAddress(t.addr, buf); err != nil {
			m.log.V(1).Info("Sending heartbeat failed", "member", t.addr.Name, "err", err)
		}
	}
	for _, a := range ask {
		if ap, err := netip.ParseAddrPort(a.Addr); err == nil {
			m.askClaims(a.Name, ap, req)
		}
	}
}

// check runs the failure detector.
func (m *Membership) check(now time.Time) {
	m.mu.Lock()
	dead := m.det.Check(now)
	m.declaredDead.Add(uint64(len(dead)))
	for _, name := range dead {
		m.departed[name] = Departure{LastHeard: m.det.LastHeard(name), At: now}
		// What it claimed is unknown from now on: when it is back, its
		// claims are asked for again rather than believed from before.
		delete(m.peerClaims, name)
	}
	var suspecting []string
	expired := false
	for name, s := range m.suspects {
		if now.Sub(s.last) > 2*suspectHold*m.cfg.HeartbeatInterval {
			// No marked heartbeat lately: the peer hears us again (and
			// stopped heartbeating us), or is gone.
			delete(m.suspects, name)
			expired = expired || s.confirmed
			continue
		}
		if !s.confirmed && now.Sub(s.since) >= suspectHold*m.cfg.HeartbeatInterval {
			s.confirmed = true
			m.suspects[name] = s
			suspecting = append(suspecting, name)
		}
	}
	m.mu.Unlock()
	for _, name := range dead {
		m.log.Info("Declaring member dead: missed heartbeats", "member", name)
	}
	for _, name := range suspecting {
		m.log.Info("Member hears no heartbeats from this node, though this node hears it", "member", name)
	}
	if len(dead) > 0 || len(suspecting) > 0 || expired {
		m.signal()
	}
}

// receive handles a message from another member.
func (m *Membership) receive(b []byte) {
	msg, err := decodeMessage(b)
	if err != nil {
		m.log.V(1).Info("Ignoring malformed message", "err", err)
		return
	}
	if msg.name == m.cfg.NodeName {
		return
	}
	if drop := m.dropFrom.Load(); drop != nil && (*drop)(msg.name) {
		return
	}
	now := m.cfg.Clock.Now()
	var changed, revived, back bool
	var rejoin, askClaims netip.AddrPort
	m.mu.Lock()
	switch msg.typ {
	case msgClaimsRequest:
		addr, ok := m.addrOfLocked(msg.name)
		m.mu.Unlock()
		if ok {
			m.sendClaims(msg.name, addr)
		}
		return
	case msgClaims:
		changed = m.storeClaimsLocked(msg)
	case msgDigest:
		askClaims = m.askIfStaleLocked(msg, now)
	case msgHeartbeat:
		if _, member := m.members[msg.name]; !member {
			if p, ok := m.lost[msg.name]; ok && now.Sub(m.rejoinAt[msg.name]) >= rejoinEvery {
				// memberlist dropped it as failed; it is back.
				m.rejoinAt[msg.name] = now
				rejoin = p.addr
			}
		}
		hold := suspectHold * m.cfg.HeartbeatInterval
		prevHB, heardBefore := m.lastHB[msg.name]
		m.lastHB[msg.name] = now
		if msg.suspectsYou {
			if sp, ok := m.suspects[msg.name]; ok {
				sp.last = now
				m.suspects[msg.name] = sp
			} else {
				// A peer this node has heard all along (its previous
				// heartbeat came within the hold, and it is neither dead
				// to us nor just back) that says it cannot hear us:
				// one-way loss, believed at once. Right after a heal both
				// sides say it for an interval: then it must last.
				_, member := m.members[msg.name]
				steady := member && heardBefore && now.Sub(prevHB) <= hold && !m.det.Dead(msg.name) && now.Sub(m.revivedAt[msg.name]) > hold
				m.suspects[msg.name] = suspicion{since: now, last: now, confirmed: steady}
				if steady {
					changed = true
					m.log.Info("Member hears no heartbeats from this node, though this node hears it", "member", msg.name)
				}
			}
		} else if s, ok := m.suspects[msg.name]; ok {
			delete(m.suspects, msg.name)
			changed = changed || s.confirmed
		}
		if msg.hasDigest {
			askClaims = m.askIfStaleLocked(msg, now)
		}
		if g, ok := m.goodbyes[msg.name]; ok {
			if msg.epoch == g.epoch && msg.seq <= g.seq {
				// Sent before its goodbye and delivered after it
				// (memberlist hands user messages over newest first).
				m.mu.Unlock()
				return
			}
			delete(m.goodbyes, msg.name)
			back = true
		}
		if msg.watching {
			m.watchers[msg.name] = now
		}
		if m.eligible[msg.name] {
			revived = m.det.Heard(msg.name, now)
		} else if m.det.Dead(msg.name) {
			// Declared dead while watched, alive after all: not watched
			// now, so memberlist judges it from here on.
			m.det.Forget(msg.name)
			revived = true
		}
		if back || revived {
			delete(m.departed, msg.name)
			m.revivedAt[msg.name] = now
		}
		changed = changed || back || revived
	case msgLeave:
		m.goodbyes[msg.name] = goodbye{epoch: msg.epoch, seq: msg.seq, at: now}
		m.departed[msg.name] = Departure{Graceful: true, LastHeard: m.det.LastHeard(msg.name), At: now}
		m.det.Forget(msg.name)
		delete(m.watchers, msg.name)
		delete(m.lost, msg.name)
		delete(m.suspects, msg.name)
		delete(m.peerClaims, msg.name)
		changed = true
	}
	m.mu.Unlock()

	if rejoin.IsValid() {
		m.log.Info("Heartbeat from a member memberlist had dropped: joining it again", "member", msg.name, "addr", rejoin.String())
		go func() {
			if _, err := m.Join([]string{rejoin.String()}); err != nil && !errors.Is(err, ErrNotRunning) {
				m.log.V(1).Info("Joining again failed", "member", msg.name, "err", err)
			}
		}()
	}
	if askClaims.IsValid() {
		m.askClaims(msg.name, askClaims, message{typ: msgClaimsRequest, name: m.cfg.NodeName}.appendTo(nil))
	}

	switch {
	case msg.typ == msgLeave:
		m.log.Info("Member is leaving", "member", msg.name)
	case back:
		m.log.Info("Member is back after leaving", "member", msg.name)
	case revived:
		m.log.Info("Member alive again: heartbeat received", "member", msg.name)
	}
	if changed {
		m.signal()
	}
}

func (m *Membership) signal() {
	select {
	case m.changed <- struct{}{}:
	default:
	}
}

// Join contacts the given members ("host:port", or "host" for the configured
// port) and exchanges state with them, so that this node joins their cluster
// and learns every member they know. Addresses of nodes that are already live
// members are skipped, so the caller may pass the whole node list each time
// it changes. Join returns how many it contacted; it fails only if it
// contacted none. It blocks while connecting (memberlist's TCP timeout is
// 10 s), and returns ErrNotRunning if Run has not started the node.
func (m *Membership) Join(addrs []string) (int, error) {
	m.mu.Lock()
	ml := m.ml
	known := make(map[netip.AddrPort]bool, len(m.members))
	for _, info := range m.members {
		known[info.addr] = true
	}
	port := m.members[m.cfg.NodeName].addr.Port()
	m.mu.Unlock()
	if ml == nil {
		return 0, ErrNotRunning
	}

	var todo []string
	for _, a := range addrs {
		if ap, ok := parseAddrPort(a, port); ok && known[ap] {
			continue
		}
		todo = append(todo, a)
	}
	if len(todo) == 0 {
		return 0, nil
	}
	m.log.V(1).Info("Joining members", "addrs", todo)
	// One at a time, memberlist would wait out the connect timeout of every
	// unreachable node before trying the next: join them all at once.
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		n    int
		errs []error
	)
	for _, a := range todo {
		wg.Go(func() {
			k, err := ml.Join([]string{a})
			mu.Lock()
			defer mu.Unlock()
			n += k
			if err != nil {
				errs = append(errs, err)
			}
		})
	}
	wg.Wait()
	if n == 0 {
		return 0, fmt.Errorf("joining %s: %w", strings.Join(todo, ", "), errors.Join(errs...))
	}
	return n, nil
}

// Live returns the live members, this node included, sorted by name: the
// members memberlist considers alive, minus those the heartbeat detector has
// declared dead and those that said they are leaving. It returns nil when the
// node is not running.
func (m *Membership) Live() []Member {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.ml == nil {
		return nil
	}
	live := make([]Member, 0, len(m.members))
	for name, info := range m.members {
		if !m.liveLocked(name) {
			continue
		}
		live = append(live, Member{Name: name, Addr: info.addr.Addr(), Meta: bytes.Clone(info.meta),
			SuspectsUs: m.suspects[name].confirmed,
		})
	}
	slices.SortFunc(live, func(a, b Member) int { return strings.Compare(a.Name, b.Name) })
	return live
}

// Changed returns a channel that receives a value whenever Live may have
// changed: a member joined, left, failed, came back or changed its
// metadata, and when Run starts or stops. It holds at most one value, so
// several changes arrive as one; the receiver then reads Live.
func (m *Membership) Changed() <-chan struct{} {
	return m.changed
}

// Departure tells how a member stopped being live.
type Departure struct {
	// Graceful: the member said goodbye (its speaker stopped) rather than
	// failing.
	Graceful bool
	// LastHeard is when its last heartbeat arrived; zero if this node was
	// not watching it.
	LastHeard time.Time
	// At is when this node noticed.
	At time.Time
}

// Departure returns how name stopped being live, if it did and has not come
// back. The speaker uses it to explain why an address moved, and how long
// the failure took to notice.
func (m *Membership) Departure(name string) (Departure, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	d, ok := m.departed[name]
	return d, ok
}

// SetMeta sets this node's metadata, at most MaxMetaSize bytes, that other
// members see in Member.Meta; the speaker uses it to say, for instance, that
// its announcing interface lost carrier. Before Run, it only records the
// metadata, which Run then announces. While running, it blocks until memberlist
// has gossiped the change, for up to 2 s; on timeout it returns an error, and
// memberlist still spreads the change with its periodic state exchange.
func (m *Membership) SetMeta(meta []byte) error {
	if len(meta) > MaxMetaSize {
		return fmt.Errorf("metadata of %d bytes exceeds the limit of %d", len(meta), MaxMetaSize)
	}
	m.mu.Lock()
	m.meta = bytes.Clone(meta)
	ml := m.ml
	m.mu.Unlock()
	if ml == nil {
		return nil
	}
	if err := ml.UpdateNode(metaTimeout); err != nil {
		return fmt.Errorf("gossiping metadata: %w", err)
	}
	return nil
}

// SetWatched sets the peers this node watches with heartbeats: those whose
// failure it must notice within a second, typically the nodes that could
// take over its addresses and whose addresses it could take over. Names
// that are not members are ignored, and at most MaxPeers are watched (see the
// package documentation for which). nil restores the default, every member;
// an empty slice watches none (the node still answers the peers that watch
// it). The change applies from the next heartbeat.
func (m *Membership) SetWatched(names []string) {
	var watched map[string]bool
	if names != nil {
		watched = make(map[string]bool, len(names))
		for _, n := range names {
			watched[n] = true
		}
	}
	m.mu.Lock()
	m.watched = watched
	m.mu.Unlock()
}

// SetClaims sets the address groups this node announces (one claim per
// election key; with duplicates the first is kept). Every member learns them
// (gossip and heartbeats carry their digest; a member whose copy differs
// asks for them) and Claims reports them on every node, so that a node
// coming back does not take what another announces, and two nodes that both
// announce a key after a partition heals see each other.
func (m *Membership) SetClaims(claims []Claim) {
	claims = slices.Clone(claims)
	slices.SortStableFunc(claims, compareClaims)
	claims = slices.CompactFunc(claims, func(a, b Claim) bool { return a.Key == b.Key })
	m.mu.Lock()
	defer m.mu.Unlock()
	if slices.Equal(claims, m.claims.keys) {
		return
	}
	m.claims.keys = claims
	m.claims.version++
	m.claims.digest = digestOf(claims)
	m.queueDigestLocked()
}

// queueDigestLocked gossips this node's current claims digest, replacing
// any older one still queued.
func (m *Membership) queueDigestLocked() {
	if m.broadcasts == nil {
		return
	}
	msg := message{typ: msgDigest, epoch: m.claims.epoch, seq: m.claims.version, name: m.cfg.NodeName, digest: m.claims.digest}
	m.broadcasts.QueueBroadcast(digestBroadcast(msg.appendTo(nil)))
}

// digestBroadcast is a queued msgDigest; a newer one from this node
// invalidates it.
type digestBroadcast []byte

func (b digestBroadcast) Invalidates(other memberlist.Broadcast) bool {
	_, ok := other.(digestBroadcast)
	return ok
}
func (b digestBroadcast) Message() []byte { return b }
func (b digestBroadcast) Finished()       {}

// Claims returns, for each election key some live member other than this
// node claims, those members, sorted by name.
func (m *Membership) Claims() map[netip.Addr][]Claimant {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := map[netip.Addr][]Claimant{}
	for name, c := range m.peerClaims {
		if !m.liveLocked(name) {
			continue
		}
		for _, k := range c.keys {
			out[k.Key] = append(out[k.Key], Claimant{Node: name, Gen: k.Gen, View: k.View})
		}
	}
	for _, cs := range out {
		slices.SortFunc(cs, func(a, b Claimant) int { return strings.Compare(a.Node, b.Node) })
	}
	return out
}

// Settled reports whether this node has joined at least one other member
// and knows the claims of every live member.
func (m *Membership) Settled() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	others := 0
	for name := range m.members {
		if name == m.cfg.NodeName || !m.liveLocked(name) {
			continue
		}
		others++
		if _, ok := m.peerClaims[name]; !ok {
			return false
		}
	}
	return others > 0
}

func (m *Membership) liveLocked(name string) bool {
	if _, ok := m.members[name]; !ok || m.ml == nil {
		return false
	}
	_, left := m.goodbyes[name]
	return !left && !m.det.Dead(name)
}

// askIfStaleLocked returns where to ask for the sender's claims when msg
// (a heartbeat or a msgDigest) shows that the copy here is stale, unless the
// same digest was asked for recently; an invalid address otherwise.
func (m *Membership) askIfStaleLocked(msg message, now time.Time) netip.AddrPort {
	c, ok := m.peerClaims[msg.name]
	if ok && (c.epoch > msg.epoch || c.epoch == msg.epoch && c.digest == msg.digest) {
		return netip.AddrPort{}
	}
	if msg.typ == msgDigest && ok && c.epoch == msg.epoch && c.version >= msg.seq {
		return netip.AddrPort{}
	}
	ask := m.claimReq[msg.name]
	if ask.digest == msg.digest && now.Sub(ask.at) < claimRetry*m.cfg.HeartbeatInterval {
		return netip.AddrPort{}
	}
	addr, found := m.addrOfLocked(msg.name)
	if !found {
		return netip.AddrPort{}
	}
	m.claimReq[msg.name] = claimAsk{at: now, digest: msg.digest}
	return addr
}

// storeClaimsLocked keeps msg's claims if they are newer than those known,
// and reports whether they changed anything.
func (m *Membership) storeClaimsLocked(msg message) bool {
	c := claimSet{epoch: msg.epoch, version: msg.seq, keys: msg.claims}
	slices.SortStableFunc(c.keys, compareClaims)
	c.digest = digestOf(c.keys)
	old, ok := m.peerClaims[msg.name]
	if ok && !c.newer(old) {
		return false
	}
	m.peerClaims[msg.name] = c
	return !ok || old.digest != c.digest
}

// claimsMessage encodes this node's claims.
func (m *Membership) claimsMessage() []byte {
	m.mu.Lock()
	defer m.mu.Unlock()
	return message{typ: msgClaims, epoch: m.claims.epoch, seq: m.claims.version,
		name: m.cfg.NodeName, claims: m.claims.keys}.appendTo(nil)
}

// addrOfLocked returns where name is reached: its member address, or the
// last one of a member memberlist dropped.
func (m *Membership) addrOfLocked(name string) (netip.AddrPort, bool) {
	if info, ok := m.members[name]; ok {
		return info.addr, true
	}
	if p, ok := m.lost[name]; ok {
		return p.addr, true
	}
	return netip.AddrPort{}, false
}

// sendClaims sends this node's claims to name over TCP, in the background.
func (m *Membership) sendClaims(name string, addr netip.AddrPort) {
	m.sendReliable("claims/"+name, name, addr, m.claimsMessage)
}

// askClaims asks name for its claims over TCP, in the background: the
// request and the answer take TCP so that a path that loses datagrams in
// one direction (the very case claims must get through) still carries them.
func (m *Membership) askClaims(name string, addr netip.AddrPort, req []byte) {
	// One request per peer at a time, except that a request stuck on a
	// connect (the peer was unreachable) does not hold up the next one.
	m.mu.Lock()
	key := fmt.Sprintf("ask/%s/%d", name, m.claimReq[name].digest)
	m.mu.Unlock()
	m.sendReliable(key, name, addr, func() []byte { return req })
}

// sendReliable sends the message msg returns to name over TCP in the
// background, one send per key at a time.
func (m *Membership) sendReliable(key, name string, addr netip.AddrPort, msg func() []byte) {
	m.mu.Lock()
	ml := m.ml
	if ml == nil || m.sending[key] {
		m.mu.Unlock()
		return
	}
	m.sending[key] = true
	m.mu.Unlock()
	go func() {
		defer func() {
			m.mu.Lock()
			delete(m.sending, key)
			m.mu.Unlock()
		}()
		to := &memberlist.Node{Name: name, Addr: net.IP(addr.Addr().AsSlice()), Port: addr.Port()}
		if err := ml.SendReliable(to, msg()); err != nil {
			m.log.V(1).Info("Sending to member failed", "member", name, "message", key, "err", err)
		}
	}()
}

// delegate receives memberlist's user messages and supplies our metadata.
type delegate struct{ m *Membership }

func (d delegate) NodeMeta(limit int) []byte {
	d.m.mu.Lock()
	defer d.m.mu.Unlock()
	if len(d.m.meta) > limit {
		return nil
	}
	return bytes.Clone(d.m.meta)
}

func (d delegate) NotifyMsg(b []byte)              { d.m.receive(b) }
func (d delegate) GetBroadcasts(_, _ int) [][]byte { return nil }

// LocalState hands memberlist's push/pull (at every join, and every 30 s
// with one random member) this node's claims.
func (d delegate) LocalState(bool) []byte { return d.m.claimsMessage() }

// MergeRemoteState takes the claims of the member on the other side of a
// push/pull.
func (d delegate) MergeRemoteState(b []byte, _ bool) {
	msg, err := decodeMessage(b)
	if err != nil || msg.typ != msgClaims {
		return
	}
	d.m.mu.Lock()
	changed := msg.name != d.m.cfg.NodeName && d.m.storeClaimsLocked(msg)
	d.m.mu.Unlock()
	if changed {
		d.m.signal()
	}
}

// events follows memberlist's view of the members. memberlist calls it with
// its node lock held: it copies what it needs and never calls memberlist.
type events struct{ m *Membership }

func (e events) NotifyJoin(n *memberlist.Node)   { e.m.memberUp(n, true) }
func (e events) NotifyUpdate(n *memberlist.Node) { e.m.memberUp(n, false) }
func (e events) NotifyLeave(n *memberlist.Node)  { e.m.memberDown(n) }

func (m *Membership) memberUp(n *memberlist.Node, joined bool) {
	addr, _ := netip.AddrFromSlice(n.Addr)
	info := memberInfo{addr: netip.AddrPortFrom(addr.Unmap(), n.Port)}
	if len(n.Meta) > 0 {
		info.meta = bytes.Clone(n.Meta)
	}
	m.mu.Lock()
	m.members[n.Name] = info
	if joined {
		// Back after memberlist saw it leave or fail.
		delete(m.goodbyes, n.Name)
		delete(m.departed, n.Name)
		delete(m.lost, n.Name)
		m.revivedAt[n.Name] = m.cfg.Clock.Now()
	}
	m.mu.Unlock()
	if n.Name != m.cfg.NodeName {
		if joined {
			m.log.Info("Member joined", "member", n.Name, "addr", info.addr.String())
		} else {
			m.log.V(1).Info("Member updated", "member", n.Name)
		}
	}
	m.signal()
}

func (m *Membership) memberDown(n *memberlist.Node) {
	m.mu.Lock()
	now := m.cfg.Clock.Now()
	if hb, ok := m.lastHB[n.Name]; ok && n.State != memberlist.StateLeft && n.Name != m.cfg.NodeName &&
		now.Sub(hb) < time.Duration(m.cfg.MissedHeartbeats)*m.cfg.HeartbeatInterval && !m.det.Dead(n.Name) {
		if info, member := m.members[n.Name]; member {
			// memberlist's verdict contradicts a heartbeat that arrived
			// within the detection time: a "dead" gossiped by a node that
			// was cut off and has just healed, or memberlist's slower
			// probes losing a race. The heartbeats decide (they declare
			// it dead when they stop); memberlist is joined again with it
			// so that it learns the member is alive (the member refutes).
			ml := m.ml
			m.mu.Unlock()
			m.overruled.Add(1)
			m.log.Info("memberlist reports a member failed, but its heartbeats arrive: keeping it", "member", n.Name, "lastHeartbeat", now.Sub(hb).Round(time.Millisecond))
			if ml != nil {
				go func() {
					if _, err := ml.Join([]string{info.addr.String()}); err != nil {
						m.log.V(1).Info("Joining a member memberlist reported failed", "member", n.Name, "err", err)
					}
				}()
			}
			return
		}
	}
	if _, ok := m.departed[n.Name]; !ok {
		m.departed[n.Name] = Departure{Graceful: n.State == memberlist.StateLeft, LastHeard: m.det.LastHeard(n.Name), At: now}
	}
	if info, ok := m.members[n.Name]; ok && n.State != memberlist.StateLeft && n.Name != m.cfg.NodeName {
		m.lost[n.Name] = lostPeer{addr: info.addr, at: now}
	} else {
		delete(m.lost, n.Name)
	}
	delete(m.peerClaims, n.Name)
	delete(m.revivedAt, n.Name)
	delete(m.lastHB, n.Name)
	delete(m.suspects, n.Name)
	delete(m.members, n.Name)
	delete(m.eligible, n.Name)
	delete(m.watchers, n.Name)
	delete(m.goodbyes, n.Name)
	m.det.Forget(n.Name)
	m.mu.Unlock()
	if n.Name != m.cfg.NodeName {
		m.log.Info("Member left or failed", "member", n.Name)
	}
	m.signal()
}

// parseAddrPort parses "ip:port", or "ip" with the given port.
func parseAddrPort(s string, port uint16) (netip.AddrPort, bool) {
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()), true
	}
	if a, err := netip.ParseAddr(s); err == nil {
		return netip.AddrPortFrom(a.Unmap(), port), true
	}
	return netip.AddrPort{}, false
}

func netJoin(host string, port int) string {
	return net.JoinHostPort(host, strconv.Itoa(port))
}
