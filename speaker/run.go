package speaker

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"os"
	"runtime/debug"
	"strings"
	"sync"
	"time"

	"github.com/go-logr/logr"
	"golang.org/x/sync/errgroup"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	crmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"

	"github.com/lbstack/lbstack/internal/cli"
	"github.com/lbstack/lbstack/speaker/dataplane"
	"github.com/lbstack/lbstack/speaker/l2"
	"github.com/lbstack/lbstack/speaker/membership"
)

// Options configure a speaker.
type Options struct {
	Manager cli.ManagerOptions
	// NodeName is the node this speaker runs on.
	NodeName string
	// Namespace is where lbstack runs (the BGP password Secrets default to it).
	Namespace string
	// BindAddr and Port are memberlist's address and port.
	BindAddr string
	Port     int
	// KeyFile holds the memberlist encryption key (the operator's Secret).
	KeyFile string
	// Failure detection.
	HeartbeatInterval time.Duration
	MissedHeartbeats  int
	ProbeInterval     time.Duration
	ProbeTimeout      time.Duration
	// JoinTimeout bounds how long a starting speaker waits to join the
	// others before it announces on its own (see Core.JoinTimeout).
	JoinTimeout time.Duration
	// BFDPort is the local BFD port (3784; tests change it).
	BFDPort uint16
	// SkipInterfaces are interface name prefixes never used for layer 2
	// (pod veths and tunnels of common CNIs).
	SkipInterfaces []string
	// APIStaleAfter bounds how long a speaker that cannot reach the API
	// server announces from its last view while another speaker reaches
	// it (see APIView and dataplane.Core.API); 0 disables withdrawing.
	APIStaleAfter time.Duration
}

// DefaultJoinTimeout is the default Options.JoinTimeout: a few memberlist
// connection attempts, well under a container restart's back-off.
const DefaultJoinTimeout = 5 * time.Second

// DefaultSkipInterfaces are interface name prefixes of pod and tunnel
// interfaces of common CNIs, never used to announce.
var DefaultSkipInterfaces = []string{"veth", "cali", "lxc", "cilium_", "flannel", "vxlan", "tunl", "kube-ipvs", "docker", "cni", "genev", "nodelocaldns", "weave", "vethwe", "datapath", "tap"}

// AddFlags registers the speaker's flags.
func (o *Options) AddFlags(fs *flag.FlagSet) {
	o.Manager.AddFlags(fs, ":7474", ":7475", false)
	fs.StringVar(&o.NodeName, "node-name", "", "name of the node this speaker runs on (from the downward API spec.nodeName)")
	fs.StringVar(&o.Namespace, "namespace", "", "namespace lbstack runs in")
	fs.StringVar(&o.BindAddr, "memberlist-bind-address", "", "address memberlist listens on: the node's IP (empty: all)")
	fs.IntVar(&o.Port, "memberlist-bind-port", 7946, "memberlist TCP and UDP port")
	fs.StringVar(&o.KeyFile, "memberlist-key-file", "", "file holding the memberlist encryption key (16, 24 or 32 bytes); empty: no encryption")
	fs.DurationVar(&o.HeartbeatInterval, "heartbeat-interval", membership.DefaultHeartbeatInterval, "interval of the direct heartbeats between speakers")
	fs.IntVar(&o.MissedHeartbeats, "missed-heartbeats", membership.DefaultMissedHeartbeats, "heartbeats a speaker may miss before the others take over its addresses")
	fs.DurationVar(&o.ProbeInterval, "probe-interval", membership.DefaultProbeInterval, "memberlist probe interval")
	fs.DurationVar(&o.ProbeTimeout, "probe-timeout", membership.DefaultProbeTimeout, "memberlist probe timeout")
	fs.DurationVar(&o.JoinTimeout, "join-timeout", DefaultJoinTimeout, "how long a starting speaker waits to join the other speakers (and learn what they announce) before it announces on its own, when none answers")
	fs.DurationVar(&o.APIStaleAfter, "api-stale-after", DefaultAPIStaleAfter, "how long a speaker that cannot reach the API server goes on announcing from its last view while another speaker reaches it; then it withdraws (layer 2 addresses go to the others, BGP paths are withdrawn) until its view has caught up. 0: never withdraw")
	fs.Func("bfd-port", "local UDP port for BFD control packets (default 3784)", func(v string) error {
		var p uint16
		if _, err := fmt.Sscan(v, &p); err != nil {
			return fmt.Errorf("--bfd-port %q: %w", v, err)
		}
		o.BFDPort = p
		return nil
	})
	o.SkipInterfaces = DefaultSkipInterfaces
	fs.Func("skip-interfaces", "comma-separated interface name prefixes never used for layer 2 (default: common CNI pod and tunnel interfaces)", func(s string) error {
		o.SkipInterfaces = nil
		for _, p := range strings.Split(s, ",") {
			if p = strings.TrimSpace(p); p != "" {
				o.SkipInterfaces = append(o.SkipInterfaces, p)
			}
		}
		return nil
	})
}

// speakerGCPercent is the speaker's GOGC unless the environment sets one.
const speakerGCPercent = 50

// Run runs a speaker until ctx ends. On the way out it stops answering and
// leaves the membership at once, so the others take over in tens of
// milliseconds.
func Run(ctx context.Context, o Options, log logr.Logger) error {
	if o.NodeName == "" {
		return errors.New("--node-name is required")
	}
	log = log.WithValues("node", o.NodeName)
	ctx = ctrl.LoggerInto(ctx, log)
	if os.Getenv("GOGC") == "" {
		// The speaker's heap is mostly long-lived (the cached Services, the
		// plan, gobgp's tables): half the default headroom keeps its
		// footprint near its live heap for a little more GC work, which
		// the spaced passes keep small. GOGC overrides it.
		debug.SetGCPercent(speakerGCPercent)
	}
	var key []byte
	if o.KeyFile != "" {
		b, err := os.ReadFile(o.KeyFile)
		if err != nil {
			return fmt.Errorf("reading the memberlist key: %w", err)
		}
		key = b
	} else {
		log.Info("No memberlist key: speaker traffic is not encrypted")
	}
	cfg, err := o.Manager.RESTConfig()
	if err != nil {
		return err
	}
	var fallback *cli.APIFallback
	if o.Manager.Kubeconfig == "" {
		// In a Pod: dial the API server's own addresses while the
		// kubernetes Service has no endpoints (after an API server
		// restart), rather than stay blind to deletions.
		if u, err := url.Parse(cfg.Host); err == nil && u.Host != "" {
			fallback = &cli.APIFallback{Host: u.Host, Log: log.WithName("api-fallback")}
			cfg.Dial = fallback.DialContext
		}
	}
	mgr, err := o.Manager.NewManager(cfg, func(mo *manager.Options) {
		mo.LeaderElection = false
		// managedFields are half of a cached Service and never read here.
		mo.Cache.DefaultTransform = cache.TransformStripManagedFields()
	})
	if err != nil {
		return err
	}
	clk := clock.RealClock{}

	reporter := &Reporter{Client: mgr.GetClient(), Recorder: mgr.GetEventRecorder("lbstack-speaker"), Node: o.NodeName, Clock: clk}
	mem, err := membership.New(membership.Config{
		NodeName: o.NodeName, BindAddr: o.BindAddr, BindPort: o.Port, SecretKey: key,
		HeartbeatInterval: o.HeartbeatInterval, MissedHeartbeats: o.MissedHeartbeats,
		ProbeInterval: o.ProbeInterval, ProbeTimeout: o.ProbeTimeout,
		Log:       log.WithName("membership"),
		OnForeign: reporter.Foreign,
	})
	if err != nil {
		return err
	}
	var (
		groupsMu sync.Mutex
		groups   []dataplane.L2Group
		met      *metrics
	)
	servicesOf := func(ip netip.Addr) []dataplane.ServiceRef {
		groupsMu.Lock()
		defer groupsMu.Unlock()
		for _, g := range groups {
			for _, a := range g.IPs {
				if a == ip {
					return g.Services
				}
			}
		}
		return nil
	}
	core := &dataplane.Core{Node: o.NodeName, Members: mem, Departures: mem, Clock: clk, Log: log.WithName("election"),
		JoinTimeout: o.JoinTimeout, JoinGrace: time.Duration(o.MissedHeartbeats+2) * o.HeartbeatInterval}
	healthCh := make(chan l2.Health, 1)
	selfCh := make(chan dataplane.SelfMeta, 1)
	var (
		selfMu sync.Mutex
		self   dataplane.SelfMeta
	)
	publishSelf := func(change func(*dataplane.SelfMeta)) {
		selfMu.Lock()
		change(&self)
		s := self
		selfMu.Unlock()
		dataplane.OfferLatest(selfCh, s)
	}
	ann, err := l2.New(l2.Config{
		Logger: log.WithName("l2"),
		SkipInterface: func(name string) bool {
			for _, p := range o.SkipInterfaces {
				if strings.HasPrefix(name, p) {
					return true
				}
			}
			return false
		},
		OnConflict: func(ip netip.Addr, ifname string, ours, theirs net.HardwareAddr) {
			log.Info("Another host answers for an address this node announces", "ip", ip, "interface", ifname, "ourMAC", ours.String(), "theirMAC", theirs.String())
			if met != nil {
				met.conflicts.Inc()
			}
			core.Conflict(ip)
			reporter.Conflict(ip, ifname, ours, theirs, servicesOf(ip))
		},
		OnHealth: func(h l2.Health) { dataplane.OfferLatest(healthCh, h) },
	})
	if err != nil {
		return err
	}
	bgpReporter := &BGPReporter{Client: mgr.GetClient(), Recorder: mgr.GetEventRecorder("lbstack-speaker"), Node: o.NodeName, Clock: clk,
		Reader: mgr.GetAPIReader(), Isolated: core.Isolated,
		Live: func() []string {
			var names []string
			for _, m := range mem.Live() {
				names = append(names, m.Name)
			}
			return names
		}}
	driver := &dataplane.BGPDriver{Node: o.NodeName, Log: log, Clock: clk, BFDPort: o.BFDPort, OnEvent: bgpReporter.Event, OnStatus: bgpReporter.Status}
	met, err = newMetrics(crmetrics.Registry, ann.Stats, driver.Metrics, func() (uint64, bool) { return mem.Foreign(), core.Isolated() },
		func() uint64 { return reporter.events.dropped.Load() + bgpReporter.events.dropped.Load() },
		func() (uint64, uint64) { return reporter.writes.Load(), bgpReporter.writes.Load() })
	if err != nil {
		return err
	}
	core.L2 = ann
	reporter.Interfaces = func(ip netip.Addr) []string { return ann.Announcing()[ip] }
	core.OnMove = func(m dataplane.Move) {
		met.handovers.WithLabelValues(m.Reason).Inc()
		reporter.Moved(m)
	}
	core.OnOwned = func(gs []dataplane.L2Group) {
		n := 0
		for _, g := range gs {
			n += len(g.IPs)
		}
		met.owned.Set(float64(n))
		met.members.Set(float64(len(mem.Live())))
		groupsMu.Lock()
		groups = gs
		groupsMu.Unlock()
		reporter.Owned(gs)
	}
	peers := make(chan []string, 1)
	watcher := &Watcher{
		Client: mgr.GetClient(), Node: o.NodeName, MemberlistPort: o.Port, Clock: clk,
		MinInterval: 50 * time.Millisecond,
		OnSnapshot:  core.SetSnapshot,
		OnPeers:     func(p []string) { dataplane.OfferLatest(peers, p) },
	}
	gate := &dataplane.BGPGate{Apply: driver.Set}
	watcher.OnBGP = gate.Plan
	watcher.OnBGPView = bgpReporter.View
	watcher.Secrets = mgr.GetAPIReader()
	watcher.Cache = mgr.GetCache()
	watcher.Namespace = o.Namespace
	if err := watcher.SetupWithManager(mgr); err != nil {
		return err
	}
	memReporter := &MembershipReporter{Client: mgr.GetClient(), Node: o.NodeName, Clock: clk,
		Facts: func() MembershipFacts {
			expected := watcher.ExpectedPeers()
			return MembershipFacts{Stack: watcher.StackName(), Isolated: core.Isolated(), Expected: len(expected),
				Missing: missingPeers(expected, mem.Live()), Undecryptable: mem.Foreign()}
		}}
	readiness := &Readiness{
		Log:   log.WithName("readiness"),
		Clock: clk,
		State: func() ReadinessState {
			return ReadinessState{
				ConfigSynced: watcher.Synced(),
				L2:           ann.Sockets(),
				BGP:          driver.Readiness(),
				Self:         o.NodeName,
				Live:         mem.Live(),
				Expected:     watcher.ExpectedPeers(),
				Joined:       core.Joined(),
				KeyMismatch:  memReporter.KeyMismatch(),
			}
		},
	}
	for _, name := range ReadinessChecks {
		if err := mgr.AddReadyzCheck(name, readiness.Checker(name)); err != nil {
			return fmt.Errorf("adding readiness check %s: %w", name, err)
		}
	}

	var view *APIView
	if o.APIStaleAfter > 0 {
		check, err := ReadyzCheck(cfg, mgr.GetHTTPClient())
		if err != nil {
			return err
		}
		view = &APIView{Check: check, Clock: clk, StaleAfter: o.APIStaleAfter,
			OnChange: func(st dataplane.APIState) {
				if st.Fresh {
					met.apiFresh.Set(1)
				} else {
					met.apiFresh.Set(0)
				}
				publishSelf(func(s *dataplane.SelfMeta) { s.Fresh = st.Fresh })
				core.APIChanged()
			}}
		core.API = view.State
		core.PeerFreshFor = 2 * o.APIStaleAfter
		core.ConfirmFor = o.APIStaleAfter / 3
		core.OnWithdrawn = func(w bool) {
			gate.SetWithdrawn(w)
			publishSelf(func(s *dataplane.SelfMeta) { s.Withdrawn = w })
			if w {
				met.withdrawn.Set(1)
				met.withdrawals.Inc()
			} else {
				met.withdrawn.Set(0)
			}
		}
	}

	// The data plane runs under its own context: it must outlive the API
	// connection and stop only when the speaker does.
	g, gctx := errgroup.WithContext(ctx)
	// The goodbye goes out only once the announcer has closed its sockets:
	// a peer takes an address over the moment it hears it, and a goodbye
	// sent first would leave both nodes answering for a moment.
	annDone := make(chan struct{})
	memCtx, stopMem := context.WithCancel(context.WithoutCancel(gctx))
	go func() {
		<-gctx.Done()
		<-annDone
		stopMem()
	}()
	g.Go(func() error { return mem.Run(memCtx) })
	g.Go(func() error { defer close(annDone); return ann.Run(gctx) })
	g.Go(func() error { return core.Run(gctx) })
	g.Go(func() error { return reporter.Run(gctx) })
	g.Go(func() error { return driver.Run(gctx) })
	g.Go(func() error { return bgpReporter.Run(gctx) })
	g.Go(func() error { return readiness.Run(gctx) })
	g.Go(func() error { return memReporter.Run(gctx) })
	g.Go(func() error { dataplane.JoinLoop(gctx, clk, mem, peers, log); return nil })
	if o.KeyFile != "" {
		g.Go(func() error { dataplane.WatchKey(gctx, clk, o.KeyFile, key, mem, log); return nil })
	}
	g.Go(func() error { dataplane.PublishMeta(gctx, healthCh, selfCh, mem, log); return nil })
	if view != nil {
		g.Go(func() error { view.Run(gctx); return nil })
	}
	if fallback != nil {
		g.Go(func() error { fallback.Run(gctx, mgr.GetCache(), cli.DefaultAPIFallbackRefresh); return nil })
	}
	g.Go(func() error {
		if err := mgr.Start(gctx); err != nil {
			return fmt.Errorf("running manager: %w", err)
		}
		return nil
	})
	log.Info("Starting speaker", "memberlistPort", o.Port, "heartbeatInterval", o.HeartbeatInterval, "missedHeartbeats", o.MissedHeartbeats)
	return g.Wait()
}
