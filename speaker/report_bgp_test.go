package speaker

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/events"
	clocktesting "k8s.io/utils/clock/testing"
	"sigs.k8s.io/controller-runtime/pkg/client"

	lbv1 "github.com/lbstack/lbstack/api/v1alpha1"
	"github.com/lbstack/lbstack/internal/testenv"
	"github.com/lbstack/lbstack/speaker/bgp"
	"github.com/lbstack/lbstack/speaker/dataplane"
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
