package speaker

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	clocktesting "k8s.io/utils/clock/testing"
	"sigs.k8s.io/controller-runtime/pkg/client"

	lbv1 "github.com/lbstack/lbstack/api/v1alpha1"
	"github.com/lbstack/lbstack/internal/config"
	"github.com/lbstack/lbstack/internal/testenv"
	"github.com/lbstack/lbstack/speaker/bgp"
	"github.com/lbstack/lbstack/speaker/dataplane"
	"github.com/lbstack/lbstack/speaker/plan"
)

// TestBGPReporterNamesPeersTheNodeLeftOut: a peer the node leaves out (it
// cannot be configured, or another peer with its address selects the
// node) gets this node's status entry NotConfigured with the reason,
// beside the working peer's Established entry; the entry goes when the
// node no longer has the peer.
func TestBGPReporterNamesPeersTheNodeLeftOut(t *testing.T) {
	env := testenv.StartT(t, testenv.Options{})
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	for _, name := range []string{"good", "bad"} {
		p := &lbv1.BGPPeer{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: lbv1.BGPPeerSpec{MyASN: 64500, PeerASN: 64501, PeerAddress: "192.0.2.1"}}
		if err := env.Client.Create(ctx, p); err != nil {
			t.Fatal(err)
		}
	}
	rec := events.NewFakeRecorder(10)
	r := &BGPReporter{Client: env.Client, Recorder: rec, Node: "n1", Clock: clocktesting.NewFakeClock(time.Unix(1_800_000_000, 0))}
	r.Status(dataplane.BGPStatus{}) // as the driver's first report
	done := make(chan struct{})
	go func() { defer close(done); _ = r.Run(ctx) }()
	defer func() { cancel(); <-done }()

	why := `BGPPeer "good", created earlier, has the same address (192.0.2.1) and also selects node n1`
	r.Status(dataplane.BGPStatus{
		Sessions: []dataplane.PeerSession{{PeerStatus: bgp.PeerStatus{Name: "good", State: "established", Up: true}}},
		Plan:     dataplane.BGPPlan{Skipped: map[string]string{"bad": why}},
	})
	entry := func(name string) (*lbv1.BGPNodeSession, error) {
		var p lbv1.BGPPeer
		if err := env.Client.Get(ctx, client.ObjectKey{Name: name}, &p); err != nil {
			return nil, err
		}
		if len(p.Status.Nodes) == 0 {
			return nil, nil
		}
		if len(p.Status.Nodes) > 1 || p.Status.Nodes[0].Node != "n1" {
			return nil, fmt.Errorf("entries %+v", p.Status.Nodes)
		}
		return &p.Status.Nodes[0], nil
	}
	waitFor(t, ctx, "the left-out peer's entry and the working peer's", func() error {
		bad, err := entry("bad")
		if err != nil || bad == nil || bad.State != lbv1.BGPSessionNotConfigured || bad.LastError != why {
			return fmt.Errorf("bad: %+v (%v)", bad, err)
		}
		good, err := entry("good")
		if err != nil || good == nil || good.State != lbv1.BGPSessionEstablished {
			return fmt.Errorf("good: %+v (%v)", good, err)
		}
		return nil
	})

	select {
	case ev := <-rec.Events:
		if !strings.Contains(ev, ReasonPeerSkipped) || !strings.Contains(ev, why) {
			t.Errorf("event %q, want %s naming the reason", ev, ReasonPeerSkipped)
		}
	case <-ctx.Done():
		t.Fatal("no PeerSkipped event")
	}

	// The node drops the peer (deleted, or no longer selecting it).
	r.Status(dataplane.BGPStatus{
		Sessions:       []dataplane.PeerSession{{PeerStatus: bgp.PeerStatus{Name: "good", State: "established", Up: true}}},
		PlanGeneration: 1,
	})

	waitFor(t, ctx, "the left-out peer's entry removed", func() error {
		if bad, err := entry("bad"); err != nil || bad != nil {
			return fmt.Errorf("bad: %+v (%v)", bad, err)
		}
		return nil
	})
}

// TestBGPServiceEntriesHaveOneWriter: the bgp entries of a Service (one
// per advertising node, with its established peers) are written by one
// speaker, not by every advertising node: two nodes' reporters over 12
// Services write each Service once between them. When a node's speaker
// is no longer live, the other takes over the Services it wrote and
// removes its entries, keeping each remaining node's since.
func TestBGPServiceEntriesHaveOneWriter(t *testing.T) {
	env := testenv.StartT(t, testenv.Options{})
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	cfg, _, errs := config.Build(config.Objects{
		Pools:             []lbv1.IPAddressPool{{ObjectMeta: metav1.ObjectMeta{Name: "bgp"}, Spec: lbv1.IPAddressPoolSpec{Addresses: []lbv1.PoolAddress{"198.51.100.0/28"}}}},
		BGPAdvertisements: []lbv1.BGPAdvertisement{{ObjectMeta: metav1.ObjectMeta{Name: "all"}, Spec: lbv1.BGPAdvertisementSpec{IPAddressPools: []string{"bgp"}}}},
		Peers: []lbv1.BGPPeer{
			{ObjectMeta: metav1.ObjectMeta{Name: "r1"}, Spec: lbv1.BGPPeerSpec{MyASN: 64500, PeerASN: 64501, PeerAddress: "192.0.2.1"}},
			{ObjectMeta: metav1.ObjectMeta{Name: "r2"}, Spec: lbv1.BGPPeerSpec{MyASN: 64500, PeerASN: 64501, PeerAddress: "192.0.2.2"}},
		},
	})
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	var services []plan.ServiceState
	for i := range 12 {
		svc := createLBService(t, ctx, env.Client, fmt.Sprintf("s%d", i))
		addr := netip.MustParseAddr(fmt.Sprintf("198.51.100.%d", i+1))
		svc.Status.LoadBalancer.Ingress = []corev1.LoadBalancerIngress{{IP: addr.String()}}
		if err := env.Client.Status().Update(ctx, svc); err != nil {
			t.Fatal(err)
		}
		services = append(services, plan.ServiceState{Key: client.ObjectKeyFromObject(svc), IPs: []netip.Addr{addr}})
	}
	nodes := []plan.NodeState{{Name: "n1"}, {Name: "n2"}}
	// n1 has both sessions up, n2 only r2 (as their BGPPeer entries say).
	view := BGPView{Config: cfg, Services: services, Nodes: nodes,
		Established: map[string]map[string]bool{"n1": {"r1": true, "r2": true}, "n2": {"r2": true}}}
	sessions := map[string][]string{"n1": {"r1", "r2"}, "n2": {"r2"}}

	var liveMu sync.Mutex
	live := []string{"n1", "n2"}
	reporters := map[string]*BGPReporter{}
	var wg sync.WaitGroup
	runCtx := map[string]context.CancelFunc{}
	for _, node := range []string{"n1", "n2"} {
		r := &BGPReporter{Client: env.Client, Recorder: events.NewFakeRecorder(100), Node: node, Clock: clocktesting.NewFakeClock(time.Unix(1_800_000_000, 0)),
			MinInterval: 10 * time.Millisecond,
			Live: func() []string {
				liveMu.Lock()
				defer liveMu.Unlock()
				return slices.Clone(live)
			}}
		var st dataplane.BGPStatus
		for _, p := range sessions[node] {
			st.Sessions = append(st.Sessions, dataplane.PeerSession{PeerStatus: bgp.PeerStatus{Name: p, State: "established", Up: true}})
		}
		r.Status(st)
		r.View(view)
		reporters[node] = r
		rctx, rcancel := context.WithCancel(ctx)
		runCtx[node] = rcancel
		wg.Go(func() { _ = r.Run(rctx) })
	}
	defer func() { cancel(); wg.Wait() }()

	entries := func(svc types.NamespacedName) ([]lbv1.AnnouncingNode, error) {
		var a lbv1.ServiceAnnouncement
		if err := env.Client.Get(ctx, svc, &a); err != nil {
			return nil, err
		}
		return a.Status.Nodes, nil
	}
	waitFor(t, ctx, "every Service's entries of both nodes", func() error {
		for _, s := range services {
			got, err := entries(s.Key)
			if err != nil {
				return err
			}
			if len(got) != 2 || got[0].Node != "n1" || got[1].Node != "n2" ||
				!slices.Equal(got[0].Peers, []string{"r1", "r2"}) || !slices.Equal(got[1].Peers, []string{"r2"}) {
				return fmt.Errorf("%s: %+v", s.Key, got)
			}
		}
		return nil
	})
	w1, w2 := reporters["n1"].writes.Load(), reporters["n2"].writes.Load()
	if w1+w2 != uint64(len(services)) || w1 == 0 || w2 == 0 {
		t.Fatalf("writes n1 %d + n2 %d, want %d between them (each Service once, by one writer)", w1, w2, len(services))
	}
	since := map[types.NamespacedName]metav1.Time{}
	for _, s := range services {
		got, err := entries(s.Key)
		if err != nil {
			t.Fatal(err)
		}
		since[s.Key] = got[0].Since
	}

	// n2's speaker goes: n1 writes every Service, without n2's entries.
	runCtx["n2"]()
	liveMu.Lock()
	live = []string{"n1"}
	liveMu.Unlock()
	reporters["n1"].Clock.(*clocktesting.FakeClock).Step(time.Minute)
	waitFor(t, ctx, "n2's entries removed", func() error {
		for _, s := range services {
			got, err := entries(s.Key)
			if err != nil {
				return err
			}
			if len(got) != 1 || got[0].Node != "n1" {
				return fmt.Errorf("%s: %+v", s.Key, got)
			}
			if was := since[s.Key]; !got[0].Since.Equal(&was) {
				return fmt.Errorf("%s: n1's since changed from %s to %s", s.Key, was, got[0].Since)
			}
		}
		return nil
	})
}

// createLBService creates the Service default/name of type LoadBalancer.
func createLBService(t *testing.T, ctx context.Context, c client.Client, name string) *corev1.Service {
	t.Helper()
	svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: name},
		Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeLoadBalancer, Ports: []corev1.ServicePort{{Port: 80}}}}
	if err := c.Create(ctx, svc); err != nil {
		t.Fatal(err)
	}
	return svc
}

// waitFor polls check until it returns nil or ctx ends.
func waitFor(t *testing.T, ctx context.Context, what string, check func() error) {
	t.Helper()
	var err error
	for ctx.Err() == nil {
		if err = check(); err == nil {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("timed out waiting for %s: %v", what, err)
}
