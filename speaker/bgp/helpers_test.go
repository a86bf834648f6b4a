package bgp

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	api "github.com/osrg/gobgp/v3/api"
	"github.com/osrg/gobgp/v3/pkg/apiutil"
	"github.com/osrg/gobgp/v3/pkg/packet/bgp"
	"github.com/osrg/gobgp/v3/pkg/server"

	"github.com/go-logr/logr"
	"github.com/go-logr/logr/funcr"
)

// Timeouts are generous: the tests must pass on a loaded 2-core machine.
// gobgp's first connection attempt waits 1–2 s, and a session that went
// down waits 5 s before reconnecting.
const (
	waitUp   = 30 * time.Second
	waitLong = 45 * time.Second
	// settle is how long a test waits to be sure that nothing more
	// happens.
	settle = 1500 * time.Millisecond
)

// eventually polls cond until it returns true or timeout passes.
func eventually(t *testing.T, timeout time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		ok, detail := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("Timed out after %v waiting for %s: %s", timeout, what, detail)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// logCapture records every log line, at every verbosity.
type logCapture struct {
	mu    sync.Mutex
	lines []string
}

func (c *logCapture) logger() logr.Logger {
	return funcr.New(func(prefix, args string) {
		c.mu.Lock()
		defer c.mu.Unlock()
		c.lines = append(c.lines, prefix+" "+args)
	}, funcr.Options{Verbosity: 10})
}

func (c *logCapture) all() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return strings.Join(c.lines, "\n")
}

// dumpOnFailure prints the log when the test failed. Only the test's own
// goroutine may call t.Log, so the lines are collected until then.
func (c *logCapture) dumpOnFailure(t *testing.T) {
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("Speaker log:\n%s", c.all())
		}
	})
}

func freePort(t *testing.T, addr string) uint16 {
	t.Helper()
	l, err := net.Listen("tcp", net.JoinHostPort(addr, "0"))
	if err != nil {
		t.Fatalf("Finding a free port on %s: %v", addr, err)
	}
	defer l.Close()
	return uint16(l.Addr().(*net.TCPAddr).Port)
}

// router is the other side: a plain gobgp server with passive neighbors.
type router struct {
	t    *testing.T
	s    *server.BgpServer
	addr netip.Addr
	port uint16
	asn  uint32

	mu     sync.Mutex
	events []routeEvent
}

// routeEvent is a best path change seen by a router.
type routeEvent struct {
	prefix   string
	withdraw bool
}

func newRouter(t *testing.T, addr string, asn uint32, routerID string) *router {
	t.Helper()
	return startRouter(t, addr, asn, routerID, false)
}

// newWatchingRouter also records best path changes for takeEvents. Only
// for tests that never re-create a session: gobgp v3.37 has a data race
// between a table watch and a reconnecting neighbor.
func newWatchingRouter(t *testing.T, addr string, asn uint32, routerID string) *router {
	t.Helper()
	return startRouter(t, addr, asn, routerID, true)
}

func startRouter(t *testing.T, addr string, asn uint32, routerID string, watch bool) *router {
	t.Helper()
	r := &router{t: t, addr: netip.MustParseAddr(addr), port: freePort(t, addr), asn: asn}
	r.s = server.NewBgpServer(server.LoggerOption(newLogAdapter(logr.Discard(), nil)))
	go r.s.Serve()
	ctx := context.Background()
	err := r.s.StartBgp(ctx, &api.StartBgpRequest{Global: &api.Global{
		Asn: asn, RouterId: routerID, ListenPort: int32(r.port), ListenAddresses: []string{addr},
	}})
	if err != nil {
		t.Fatalf("Starting router %s: %v", addr, err)
	}
	watchCtx, cancel := context.WithCancel(ctx)
	t.Cleanup(func() {
		cancel()
		_ = r.s.StopBgp(context.Background(), &api.StopBgpRequest{})
	})
	if !watch {
		return r
	}
	err = r.s.WatchEvent(watchCtx, &api.WatchEventRequest{Table: &api.WatchEventRequest_Table{
		Filters: []*api.WatchEventRequest_Table_Filter{{Type: api.WatchEventRequest_Table_Filter_BEST}},
	}}, func(resp *api.WatchEventResponse) {
		for _, p := range resp.GetTable().GetPaths() {
			nlri, err := apiutil.GetNativeNlri(p)
			if err != nil {
				continue
			}
			r.mu.Lock()
			r.events = append(r.events, routeEvent{prefix: nlri.String(), withdraw: p.GetIsWithdraw()})
			r.mu.Unlock()
		}
	})
	if err != nil {
		t.Fatalf("Watching router %s: %v", addr, err)
	}
	return r
}

type neighborOpts struct {
	password        string
	gracefulRestart bool
}

// addNeighbor adds the speaker as a passive neighbor with both families.
func (r *router) addNeighbor(addr string, asn uint32, o neighborOpts) {
	r.t.Helper()
	var afs []*api.AfiSafi
	for _, f := range []*api.Family{familyIPv4(), familyIPv6()} {
		afs = append(afs, &api.AfiSafi{
			Config:            &api.AfiSafiConfig{Family: f, Enabled: true},
			MpGracefulRestart: &api.MpGracefulRestart{Config: &api.MpGracefulRestartConfig{Enabled: o.gracefulRestart}},
		})
	}
	p := &api.Peer{
		Conf:      &api.PeerConf{NeighborAddress: addr, PeerAsn: asn, AuthPassword: o.password},
		Transport: &api.Transport{PassiveMode: true},
		AfiSafis:  afs,
	}
	if o.gracefulRestart {
		p.GracefulRestart = &api.GracefulRestart{Enabled: true, RestartTime: 120}
	}
	if err := r.s.AddPeer(context.Background(), &api.AddPeerRequest{Peer: p}); err != nil {
		r.t.Fatalf("Adding neighbor %s to router %v: %v", addr, r.addr, err)
	}
}

// neighbor returns the router's view of its neighbor.
func (r *router) neighbor(addr string) *api.Peer {
	r.t.Helper()
	var out *api.Peer
	err := r.s.ListPeer(context.Background(), &api.ListPeerRequest{Address: addr, EnableAdvertised: true}, func(p *api.Peer) { out = p })
	if err != nil || out == nil {
		r.t.Fatalf("Listing neighbor %s of router %v: %v", addr, r.addr, err)
	}
	return out
}

func (r *router) established(addr string) bool {
	return r.neighbor(addr).GetState().GetSessionState() == api.PeerState_ESTABLISHED
}

func (r *router) receivedUpdates(addr string) uint64 {
	return r.neighbor(addr).GetState().GetMessages().GetReceived().GetUpdate()
}

// route is a path in a router's RIB, reduced to what the tests check.
type route struct {
	NextHop     string
	LocalPref   *uint32
	Communities []uint32
	Large       [][3]uint32
	ASPath      string
}

// routes returns the router's global RIB by prefix.
func (r *router) routes() map[string]route {
	r.t.Helper()
	out := map[string]route{}
	for _, fam := range []*api.Family{familyIPv4(), familyIPv6()} {
		err := r.s.ListPath(context.Background(), &api.ListPathRequest{TableType: api.TableType_GLOBAL, Family: fam}, func(d *api.Destination) {
			for _, p := range d.GetPaths() {
				if !p.GetBest() {
					continue
				}
				attrs, err := apiutil.GetNativePathAttributes(p)
				if err != nil {
					r.t.Errorf("Decoding path %s: %v", d.GetPrefix(), err)
					return
				}
				var rt route
				for _, a := range attrs {
					switch a := a.(type) {
					case *bgp.PathAttributeNextHop:
						rt.NextHop = a.Value.String()
					case *bgp.PathAttributeMpReachNLRI:
						rt.NextHop = a.Nexthop.String()
					case *bgp.PathAttributeLocalPref:
						v := a.Value
						rt.LocalPref = &v
					case *bgp.PathAttributeCommunities:
						rt.Communities = slices.Clone(a.Value)
					case *bgp.PathAttributeLargeCommunities:
						for _, lc := range a.Values {
							rt.Large = append(rt.Large, [3]uint32{lc.ASN, lc.LocalData1, lc.LocalData2})
						}
					case *bgp.PathAttributeAsPath:
						var segs []string
						for _, seg := range a.Value {
							segs = append(segs, seg.String())
						}
						rt.ASPath = strings.Join(segs, " ")
					}
				}
				out[d.GetPrefix()] = rt
			}
		})
		if err != nil {
			r.t.Fatalf("Listing routes of router %v: %v", r.addr, err)
		}
	}
	return out
}

func (r *router) prefixes() []string {
	rs := r.routes()
	out := make([]string, 0, len(rs))
	for p := range rs {
		out = append(out, p)
	}
	slices.Sort(out)
	return out
}

// waitPrefixes waits until the router's RIB holds exactly these prefixes.
func (r *router) waitPrefixes(want ...string) {
	r.t.Helper()
	slices.Sort(want)
	eventually(r.t, waitUp, fmt.Sprintf("router %v to have %v", r.addr, want), func() (bool, string) {
		got := r.prefixes()
		return slices.Equal(got, want), fmt.Sprintf("has %v", got)
	})
}

// takeEvents returns and clears the best path changes seen so far.
func (r *router) takeEvents() []routeEvent {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := r.events
	r.events = nil
	return out
}

// withdrawals are the prefixes withdrawn in events.
func withdrawals(events []routeEvent) []string {
	var out []string
	for _, e := range events {
		if e.withdraw {
			out = append(out, e.prefix)
		}
	}
	return out
}

// startSpeaker creates a Speaker and runs it until the test ends.
func startSpeaker(t *testing.T, cfg Config) *Speaker {
	t.Helper()
	s, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	runSpeaker(t, s)
	return s
}

// runSpeaker runs s until the test ends.
func runSpeaker(t *testing.T, s *Speaker) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(waitUp):
			t.Errorf("Run did not return after its context ended")
		}
	})
}

func peerStatusOf(s *Speaker, name string) (PeerStatus, bool) {
	for _, p := range s.Peers() {
		if p.Name == name {
			return p, true
		}
	}
	return PeerStatus{}, false
}

// waitPeerUp waits until the speaker reports the session established.
func waitPeerUp(t *testing.T, s *Speaker, name string) PeerStatus {
	t.Helper()
	var st PeerStatus
	eventually(t, waitUp, "session "+name+" to be established", func() (bool, string) {
		var ok bool
		st, ok = peerStatusOf(s, name)
		return ok && st.Up, fmt.Sprintf("%+v", st)
	})
	return st
}

// collectEvents drains the speaker's events into a list as they come.
type eventLog struct {
	mu     sync.Mutex
	events []PeerEvent
}

func collectEvents(t *testing.T, s *Speaker) *eventLog {
	l := &eventLog{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	t.Cleanup(func() { cancel(); <-done })
	go func() {
		defer close(done)
		for {
			select {
			case <-ctx.Done():
				return
			case ev := <-s.Events():
				l.mu.Lock()
				l.events = append(l.events, ev)
				l.mu.Unlock()
			}
		}
	}()
	return l
}

func (l *eventLog) of(name string) []PeerEvent {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []PeerEvent
	for _, ev := range l.events {
		if ev.Name == name {
			out = append(out, ev)
		}
	}
	return out
}

func u32(v uint32) *uint32 { return &v }

func community(asn, v uint16) uint32 { return uint32(asn)<<16 | uint32(v) }

// originate makes the router announce prefix itself.
func (r *router) originate(prefix string) {
	r.t.Helper()
	pfx := netip.MustParsePrefix(prefix)
	p, err := apiPath(pfx, attrs{nextHop: r.addr}, nil, time.Now())
	if err != nil {
		r.t.Fatal(err)
	}
	if _, err := r.s.AddPath(context.Background(), &api.AddPathRequest{TableType: api.TableType_GLOBAL, Path: p}); err != nil {
		r.t.Fatalf("Router %v announcing %s: %v", r.addr, prefix, err)
	}
}
