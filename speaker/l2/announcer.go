package l2

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/go-logr/logr"
	"k8s.io/utils/clock"
)

const (
	// DefaultRescanInterval is how often interfaces are listed again when
	// Config.RescanInterval is zero. It bounds how late a new interface is
	// used and how late carrier loss is reported (see Announcer.Rescan to
	// react to link events sooner).
	DefaultRescanInterval = time.Second
	// DefaultConflictInterval is the window within which a conflict for the
	// same address and foreign MAC is reported once.
	DefaultConflictInterval = 30 * time.Second
	// DefaultReassertInterval is the default Config.ReassertInterval.
	DefaultReassertInterval = time.Second
	// maxConflictKeys bounds the memory of the conflict rate limit under a
	// storm of spoofed MAC addresses; further keys are not reported until
	// old ones expire.
	maxConflictKeys = 1024
	// maxConflictMACsPerAddress bounds how many foreign MACs claiming one
	// address are reported within the conflict interval.
	maxConflictMACsPerAddress = 4
	// readErrorPause is the pause after a failed socket read, so a
	// persistent error does not spin.
	readErrorPause = 100 * time.Millisecond
)

// DefaultGratuitous returns the offsets, from the moment an address starts
// being announced on an interface, at which gratuitous ARP (request and reply
// form) or an unsolicited Neighbor Advertisement is sent when
// Config.Gratuitous is nil: at once, so that failover takes effect as soon as
// the packet arrives; at 100 ms, in case the first was lost while a switch
// port or a busy host was still catching up; at 500 ms and 1 s for slower
// neighbours and caches that ignored the first ones.
func DefaultGratuitous() []time.Duration {
	return []time.Duration{0, 100 * time.Millisecond, 500 * time.Millisecond, time.Second}
}

// Target says where an owned address may be announced.
type Target struct {
	// Interfaces restricts the announcement to these interfaces, by name.
	// Empty means every eligible interface.
	Interfaces []string
}

func (t Target) allows(ifname string) bool {
	return len(t.Interfaces) == 0 || slices.Contains(t.Interfaces, ifname)
}

// Health is the data-plane state of the eligible interfaces: those that are
// administratively up, not loopback, have an Ethernet MAC address, are not
// enslaved to a bond or bridge and are not NOARP.
type Health struct {
	// Running are the eligible interfaces with carrier (IFF_RUNNING), sorted.
	Running []string
	// NoCarrier are the eligible interfaces without carrier, sorted. They
	// keep their sockets but nothing announced on them reaches the network.
	NoCarrier []string
}

// IsRunning reports whether the named interface is eligible and has carrier.
func (h Health) IsRunning(ifname string) bool {
	_, ok := slices.BinarySearch(h.Running, ifname)
	return ok
}

func (h Health) equal(o Health) bool {
	return slices.Equal(h.Running, o.Running) && slices.Equal(h.NoCarrier, o.NoCarrier)
}

// Config configures an Announcer. The zero value is usable.
type Config struct {
	// Logger receives the logs. The zero value discards them.
	Logger logr.Logger
	// Clock drives rescans, the gratuitous schedule and the conflict rate
	// limit. Defaults to the real clock.
	Clock clock.WithTicker
	// RescanInterval is how often interfaces are listed again. Defaults to
	// DefaultRescanInterval.
	RescanInterval time.Duration
	// Gratuitous are the offsets at which gratuitous ARP / unsolicited NA
	// are sent after an address starts being announced on an interface
	// (also when the interface regains carrier). nil means
	// DefaultGratuitous(); an empty non-nil slice sends none. Offsets must
	// be non-negative and in increasing order.
	Gratuitous []time.Duration
	// ConflictInterval is the window within which a conflict for the same
	// address and foreign MAC is reported once. Defaults to
	// DefaultConflictInterval.
	ConflictInterval time.Duration
	// SkipInterface, if set, excludes interfaces by name on top of the
	// built-in rules, for example pod veths.
	SkipInterface func(ifname string) bool
	// ReassertInterval is the least time between two re-announcements of
	// an address that a packet from another MAC claims: on such a packet
	// the address's gratuitous schedule starts again. Default
	// DefaultReassertInterval.
	ReassertInterval time.Duration
	// OnConflict is called when a host with another MAC claims an address
	// announced on ifname: a gratuitous ARP or ARP reply from it, or a
	// Neighbor Advertisement with its MAC as target link-layer address.
	// It is called at most once per address and foreign MAC within
	// ConflictInterval, from a packet-reading goroutine: it must not block
	// and must not call Rescan.
	OnConflict func(ip netip.Addr, ifname string, ourMAC, theirMAC net.HardwareAddr)
	// OnHealth is called with the health of the eligible interfaces after
	// the first scan of each Run and whenever it changes, from the goroutine
	// that scans (Run's, or the caller of Rescan). It must not call Rescan.
	OnHealth func(Health)
}

// Announcer answers ARP and NDP for the addresses this node owns, on every
// eligible interface. Create it with New and start it with Run; SetOwned may
// be called at any time, before or during Run.
type Announcer struct {
	log              logr.Logger
	clock            clock.WithTicker
	rescanInterval   time.Duration
	gratuitous       []time.Duration
	skipInterface    func(string) bool
	onConflict       func(netip.Addr, string, net.HardwareAddr, net.HardwareAddr)
	onHealth         func(Health)
	links            linkSource
	dial             dialer
	conflictInterval time.Duration
	reassertInterval time.Duration

	stats counters
	// wake tells Run that announcements were scheduled.
	wake chan struct{}
	// wg counts the socket readers.
	wg sync.WaitGroup

	// scanMu serialises scans and the end of Run; it is taken before mu.
	scanMu sync.Mutex

	// mu guards what follows. Readers hold it (for reading) from the
	// ownership check to the end of the reply, so that once SetOwned has
	// returned no reply for a released address is sent.
	mu sync.RWMutex
	// runCtx is the context of the current Run, nil when not running; the
	// socket readers are started under it.
	runCtx context.Context
	owned  map[netip.Addr]Target
	ifaces map[string]*iface
	// ourMACs are the MAC addresses of every interface of the node (as
	// strings), eligible or not.
	ourMACs        map[string]struct{}
	health         Health
	healthReported bool
	// scanned is true once the current Run has scanned the interfaces.
	scanned bool

	conflictMu   sync.Mutex
	conflictSeen map[conflictKey]time.Time
	conflictMACs map[netip.Addr]int // keys of conflictSeen per address
	reasserted   map[netip.Addr]time.Time
}

// New returns an Announcer that uses real sockets (which need CAP_NET_RAW)
// and the interfaces of the node's network namespace.
func New(cfg Config) (*Announcer, error) {
	return newAnnouncer(cfg, newOSLinks(), osDialer{})
}

func newAnnouncer(cfg Config, links linkSource, dial dialer) (*Announcer, error) {
	a := &Announcer{
		log:              cfg.Logger,
		clock:            cfg.Clock,
		rescanInterval:   cfg.RescanInterval,
		gratuitous:       slices.Clone(cfg.Gratuitous),
		skipInterface:    cfg.SkipInterface,
		onConflict:       cfg.OnConflict,
		onHealth:         cfg.OnHealth,
		conflictInterval: cfg.ConflictInterval,
		links:            links,
		dial:             dial,
		wake:             make(chan struct{}, 1),
		owned:            map[netip.Addr]Target{},
		ifaces:           map[string]*iface{},
		ourMACs:          map[string]struct{}{},
		conflictSeen:     map[conflictKey]time.Time{},
		conflictMACs:     map[netip.Addr]int{},
		reasserted:       map[netip.Addr]time.Time{},
		reassertInterval: cfg.ReassertInterval,
	}
	if a.reassertInterval == 0 {
		a.reassertInterval = DefaultReassertInterval
	}
	if a.clock == nil {
		a.clock = clock.RealClock{}
	}
	if a.rescanInterval == 0 {
		a.rescanInterval = DefaultRescanInterval
	}
	if a.conflictInterval == 0 {
		a.conflictInterval = DefaultConflictInterval
	}
	if cfg.Gratuitous == nil {
		a.gratuitous = DefaultGratuitous()
	}
	var errs []error
	if a.rescanInterval < 0 {
		errs = append(errs, fmt.Errorf("rescan interval %s is negative", a.rescanInterval))
	}
	if a.conflictInterval < 0 {
		errs = append(errs, fmt.Errorf("conflict interval %s is negative", a.conflictInterval))
	}
	for i, d := range a.gratuitous {
		if d < 0 || (i > 0 && d <= a.gratuitous[i-1]) {
			errs = append(errs, fmt.Errorf("gratuitous schedule %v: offsets must be non-negative and increasing", a.gratuitous))
			break
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("configuring layer 2 announcer: %w", err)
	}
	return a, nil
}

// Run opens sockets on the eligible interfaces, answers ARP and NDP on them,
// rescans the interfaces periodically and sends the scheduled gratuitous
// announcements, until ctx ends. It then closes every socket and returns nil.
// It returns an error only if the Announcer is already running.
func (a *Announcer) Run(ctx context.Context) error {
	if err := a.start(ctx); err != nil {
		return err
	}
	defer a.stop()

	ticker := a.clock.NewTicker(a.rescanInterval)
	defer ticker.Stop()
	timer := a.clock.NewTimer(time.Hour)
	stopTimer(timer)
	defer timer.Stop()

	for {
		if next := a.announceDue(); next.IsZero() {
			stopTimer(timer)
		} else {
			stopTimer(timer)
			timer.Reset(next.Sub(a.clock.Now()))
		}
		select {
		case <-ctx.Done():
			return nil
		case <-ticker.C():
			a.scan()
			a.pruneConflicts()
		case <-a.wake:
		case <-timer.C():
		}
	}
}

// stopTimer stops t and drains its channel, so that a Reset starts clean
// whatever the clock implementation.
func stopTimer(t clock.Timer) {
	if !t.Stop() {
		select {
		case <-t.C():
		default:
		}
	}
}

// start marks the Announcer as running under ctx and does the first scan.
func (a *Announcer) start(ctx context.Context) error {
	a.mu.Lock()
	if a.runCtx != nil {
		a.mu.Unlock()
		return errors.New("layer 2 announcer is already running")
	}
	a.runCtx = ctx
	a.mu.Unlock()
	a.log.Info("Starting layer 2 announcer", "rescanInterval", a.rescanInterval, "gratuitous", a.gratuitous)
	a.scan()
	return nil
}

// stop closes every socket and waits for the readers.
func (a *Announcer) stop() {
	a.scanMu.Lock()
	defer a.scanMu.Unlock()
	a.mu.Lock()
	closing := make([]*iface, 0, len(a.ifaces))
	for _, ifc := range a.ifaces {
		closing = append(closing, a.removeIfaceLocked(ifc))
	}
	a.runCtx = nil
	a.health = Health{}
	a.healthReported = false
	a.scanned = false
	a.mu.Unlock()
	a.closeIfaces(closing)
	a.wg.Wait()
	a.log.Info("Stopped layer 2 announcer")
}

// pause waits a little after a read error; it reports false if ctx ended.
func (a *Announcer) pause(ctx context.Context) bool {
	t := a.clock.NewTimer(readErrorPause)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C():
		return true
	}
}

// SetOwned sets the addresses this node owns and where each may be
// announced. It may be called as often as wanted: it only acts on the
// difference with the previous call. Addresses that are no longer owned are
// no longer answered for once SetOwned returns; newly owned ones are
// answered for at once and announced with gratuitous ARP / unsolicited NA on
// the schedule of Config.Gratuitous (while Run runs). Invalid, unspecified,
// loopback and multicast addresses are ignored.
func (a *Announcer) SetOwned(owned map[netip.Addr]Target) {
	next := make(map[netip.Addr]Target, len(owned))
	for ip, t := range owned {
		ip = ip.Unmap().WithZone("")
		if !ip.IsValid() || ip.IsUnspecified() || ip.IsLoopback() || ip.IsMulticast() {
			a.log.Info("Ignoring address that cannot be announced", "ip", ip)
			continue
		}
		next[ip] = Target{Interfaces: slices.Clone(t.Interfaces)}
	}

	var released, gained []netip.Addr
	a.mu.Lock()
	for ip := range a.owned {
		if _, ok := next[ip]; !ok {
			released = append(released, ip)
		}
	}
	for ip := range next {
		if _, ok := a.owned[ip]; !ok {
			gained = append(gained, ip)
		}
	}
	a.owned = next
	scheduled := a.reconcileLocked(a.clock.Now())
	a.mu.Unlock()

	if scheduled {
		a.wakeRun()
	}
	for _, ip := range released {
		a.log.Info("Released address", "ip", ip)
	}
	for _, ip := range gained {
		a.log.Info("Owning address", "ip", ip, "interfaces", next[ip].Interfaces)
	}
}

func (a *Announcer) wakeRun() {
	select {
	case a.wake <- struct{}{}:
	default:
	}
}

// Rescan lists the interfaces again now, instead of waiting for the next
// periodic rescan: it opens sockets on new eligible interfaces, closes those
// of interfaces that went away, down or into a bond or bridge, and reports
// carrier changes. It returns when done. It does nothing unless Run runs.
func (a *Announcer) Rescan() {
	a.scan()
}

// Health returns the health of the eligible interfaces as of the last scan.
func (a *Announcer) Health() Health {
	a.mu.RLock()
	defer a.mu.RUnlock()
	return Health{Running: slices.Clone(a.health.Running), NoCarrier: slices.Clone(a.health.NoCarrier)}
}

// Announcing returns, for each owned address, the interfaces it is announced
// on (sorted). An owned address missing from the result is announced
// nowhere: no eligible interface is allowed by its Target, or the sockets for
// its family could not be opened.
func (a *Announcer) Announcing() map[netip.Addr][]string {
	a.mu.RLock()
	defer a.mu.RUnlock()
	out := map[netip.Addr][]string{}
	for name, ifc := range a.ifaces {
		for ip := range ifc.active {
			out[ip] = append(out[ip], name)
		}
	}
	for _, names := range out {
		slices.Sort(names)
	}
	return out
}
