package dataplane

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr/testr"
	"k8s.io/utils/clock"

	"github.com/lbstack/lbstack/speaker/bfd"
	"github.com/lbstack/lbstack/speaker/bgp"
)

// freeUDPPort returns a UDP port nobody listens on right now (127.0.0.1).
func freeUDPPort(t *testing.T) uint16 {
	t.Helper()
	c, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	return uint16(c.LocalAddr().(*net.UDPAddr).Port)
}

// TestBGPDriverMetricsWhileApplying reads the driver's metrics and status
// while plans that add and remove BFD sessions are applied (the metrics
// collector runs on the HTTP server's goroutines, the driver on its own;
// `go test -race` proves they share nothing unguarded), and checks that the
// metrics name each BFD session by its BGP peer and follow the last plan.
func TestBGPDriverMetricsWhileApplying(t *testing.T) {
	peer := netip.MustParseAddr("127.0.0.1")
	withBFD := BGPPlan{
		Peers: []bgp.Peer{{Name: "tor", Address: peer, Port: 1, PeerASN: 64512, LocalASN: 64512}},
		BFD:   map[string]bfd.SessionConfig{"tor": {Peer: peer, DesiredMinTx: 50 * time.Millisecond, RequiredMinRx: 50 * time.Millisecond, DetectMultiplier: 3}},
		Paths: []bgp.Path{{Prefix: netip.MustParsePrefix("198.51.100.5/32")}},
	}
	without := withBFD
	without.BFD = nil

	var statusMu sync.Mutex
	var last BGPStatus
	d := &BGPDriver{Node: "a", Log: testr.New(t), Clock: clock.RealClock{}, BFDPort: freeUDPPort(t), BFDMultihopPort: freeUDPPort(t),
		OnStatus: func(s BGPStatus) { statusMu.Lock(); last = s; statusMu.Unlock() }}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()

	stop := make(chan struct{})
	var readers sync.WaitGroup
	for range 2 {
		readers.Add(1)
		go func() {
			defer readers.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				m := d.Metrics()
				for name := range m.BFD {
					if name != "tor" {
						t.Errorf("BFD session named %q, want the BGP peer's name", name)
					}
				}
				_ = d.Readiness()
			}
		}()
	}
	rid := netip.MustParseAddr("192.0.2.1")
	for i := range 40 {
		p := without
		if i%2 == 1 {
			p = withBFD
		}
		d.Set(p, nil, rid)
		time.Sleep(2 * time.Millisecond)
	}
	close(stop)
	readers.Wait()

	// The last plan has BFD: the metrics and the status say so, by name.
	deadline := time.Now().Add(5 * time.Second)
	for {
		m := d.Metrics()
		statusMu.Lock()
		st := last
		statusMu.Unlock()
		_, bfdTor := m.BFD["tor"]
		if bfdTor && len(m.Peers) == 1 && m.Peers[0].Name == "tor" && len(st.Sessions) == 1 && st.Sessions[0].Name == "tor" && len(st.Plan.BFD) == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after the last plan: metrics %+v, status %+v", m, st)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if r := d.Readiness(); !r.Configured || !r.BFDWanted {
		t.Errorf("readiness %+v, want configured with BFD", r)
	}

	// A plan without BFD removes the session from the metrics.
	d.Set(without, nil, rid)
	for deadline := time.Now().Add(5 * time.Second); ; {
		if _, ok := d.Metrics().BFD["tor"]; !ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the BFD session outlived the plan that dropped it")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestBGPDriverResolvesUnnumberedRouter: an unnumbered peer whose router
// is not found yet is left out with the resolver's reason; the driver asks
// again every 2 s and configures the peer at the address found; while the
// router is not found again, the last address is kept.
func TestBGPDriverResolvesUnnumberedRouter(t *testing.T) {
	var mu sync.Mutex
	answer, why := netip.Addr{}, "no IPv6 link-local neighbor on interface lo yet"
	resolve := func(ifname string) (netip.Addr, error) {
		mu.Lock()
		defer mu.Unlock()
		if ifname != "lo" {
			t.Errorf("resolving %q, want lo", ifname)
		}
		if !answer.IsValid() {
			return netip.Addr{}, errors.New(why)
		}
		return answer, nil
	}
	var statusMu sync.Mutex
	var last BGPStatus
	d := &BGPDriver{Node: "a", Log: testr.New(t), Clock: clock.RealClock{}, Resolve: resolve,
		OnStatus: func(s BGPStatus) { statusMu.Lock(); last = s; statusMu.Unlock() }}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	defer func() { cancel(); <-done }()
	d.Set(BGPPlan{Peers: []bgp.Peer{{Name: "tor", Interface: "lo", PeerASN: 64512, LocalASN: 64513}}}, nil, netip.MustParseAddr("192.0.2.1"))

	wait := func(what string, ok func(BGPStatus) bool) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for {
			statusMu.Lock()
			st := last
			statusMu.Unlock()
			if ok(st) {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: status %+v", what, st)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	wait("left out with the reason", func(st BGPStatus) bool { return st.Plan.Skipped["tor"] == why && len(st.Sessions) == 0 })

	router := netip.MustParseAddr("fe80::2").WithZone("lo")
	mu.Lock()
	answer = router
	mu.Unlock()
	configured := func(st BGPStatus) bool {
		return len(st.Sessions) == 1 && st.Sessions[0].Name == "tor" && st.Sessions[0].Address == router && len(st.Plan.Skipped) == 0
	}
	wait("configured at the router found", configured)

	mu.Lock()
	answer = netip.Addr{}
	mu.Unlock()
	time.Sleep(2500 * time.Millisecond) // one more look
	wait("still configured at the last router found", configured)
}
