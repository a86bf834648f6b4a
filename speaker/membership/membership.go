package membership

import (
	"bytes"
	"context"
	"errors"
	"fmt"
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
	c.SecretKey = m.cfg.SecretKey
	c.Label = clusterLabel
	c.ProbeInterval = m.cfg.ProbeInterval
	c.ProbeTimeout = m.cfg.ProbeTimeout
	c.GossipInterval = gossipInterval
	// Heartbeats are a few dozen bytes: compressing them costs CPU and
	// makes them longer.
	c.EnableCompression = false
	c.Delegate = delegate{m}
	c.Events = events{m}
	c.Logger = newStdLogger(m.log.WithName("memberlist"))

	m.mu.Lock()
	m.epoch = uint64(m.cfg.Clock.Now().UnixNano())
	m.mu.Unlock()

	m.log.Info("Starting memberlist", "bindAddr", m.cfg.BindAddr, "bindPort", m.cfg.BindPort, "encrypted", len(m.cfg.SecretKey) > 0)
	ml, err := memberlist.Create(c)
	if err != nil {
		return nil, fmt.Errorf("starting memberlist on %s: %w", netJoin(m.cfg.BindAddr, m.cfg.BindPort), err)
	}
	m.mu.Lock()
	m.ml = ml
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
	}
	var targets []target

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
	for name, info := range m.members {
		_, watcher := m.watchers[name]
		if name == self || !eligible[name] && !watcher {
			continue
		}
		targets = append(targets, target{
			addr:     memberlist.Address{Addr: info.addr.String(), Name: name},
			watching: eligible[name],
		})
	}
	m.seq++
	msg := message{typ: msgHeartbeat, epoch: m.epoch, seq: m.seq, name: self}
	m.mu.Unlock()

	replying := msg.appendTo(nil)
	msg.watching = true
	watching := msg.appendTo(nil)
	for _, t := range targets {
		buf := replying
		if t.watching {
			buf = watching
		}
		if err := ml.SendToAddress(t.addr, buf); err != nil {
			m.log.V(1).Info("Sending heartbeat failed", "member", t.addr.Name, "err", err)
		}
	}
}

// check runs the failure detector.
func (m *Membership) check(now time.Time) {
	m.mu.Lock()
	dead := m.det.Check(now)
	for _, name := range dead {
		m.departed[name] = Departure{LastHeard: m.det.LastHeard(name), At: now}
	}
	m.mu.Unlock()
	for _, name := range dead {
		m.log.Info("Declaring member dead: missed heartbeats", "member", name)
	}
	if len(dead) > 0 {
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
	now := m.cfg.Clock.Now()
	var changed, revived, back bool
	m.mu.Lock()
	switch msg.typ {
	case msgHeartbeat:
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
		}
		changed = back || revived
	case msgLeave:
		m.goodbyes[msg.name] = goodbye{epoch: msg.epoch, seq: msg.seq, at: now}
		m.departed[msg.name] = Departure{Graceful: true, LastHeard: m.det.LastHeard(msg.name), At: now}
		m.det.Forget(msg.name)
		delete(m.watchers, msg.name)
		changed = true
	}
	m.mu.Unlock()

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
	n, err := ml.Join(todo)
	if err != nil {
		return n, fmt.Errorf("joining %s: %w", strings.Join(todo, ", "), err)
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
		if _, left := m.goodbyes[name]; left || m.det.Dead(name) {
			continue
		}
		live = append(live, Member{Name: name, Addr: info.addr.Addr(), Meta: bytes.Clone(info.meta)})
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

func (d delegate) NotifyMsg(b []byte)                { d.m.receive(b) }
func (d delegate) GetBroadcasts(_, _ int) [][]byte   { return nil }
func (d delegate) LocalState(bool) []byte            { return nil }
func (d delegate) MergeRemoteState(_ []byte, _ bool) {}

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
	if _, ok := m.departed[n.Name]; !ok {
		m.departed[n.Name] = Departure{Graceful: n.State == memberlist.StateLeft, LastHeard: m.det.LastHeard(n.Name), At: m.cfg.Clock.Now()}
	}
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
