// Package e2e proves lbstack end to end: the real API server, the lbstack
// controller and one speaker per node as processes in network namespaces
// (test/e2e/lab), and real clients — arping, ping, ip neigh, curl — in a
// client namespace. It needs root and those commands: elsewhere it skips
// loudly, and under CI=true a missing prerequisite fails.
package e2e

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/lbstack/lbstack/internal/testenv"
	"github.com/lbstack/lbstack/speaker/dataplane"
	"github.com/lbstack/lbstack/test/e2e/lab"
)

// newCluster builds a 3-node lab cluster with the controller running, or
// skips (fails in CI) without the prerequisites.
func newCluster(t testing.TB, nodes int) *lab.Cluster {
	t.Helper()
	if err := lab.Prerequisites(); err != nil {
		testenv.Skip(t, "%v", err)
	}
	dir := t.TempDir()
	c, err := lab.NewCluster(nodes, dir)
	if err == testenv.ErrNoAssets {
		testenv.Skip(t, "%v", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if keep := os.Getenv("LBSTACK_E2E_LOGDIR"); keep != "" && (t.Failed() || os.Getenv("LBSTACK_E2E_KEEP_LOGS") != "") {
			// Every process log of the failed test, for reading at leisure.
			logs, _ := filepath.Glob(filepath.Join(dir, "*.log"))
			to := filepath.Join(keep, strings.ReplaceAll(t.Name(), "/", "_"))
			if err := os.MkdirAll(to, 0o755); err == nil {
				for _, l := range logs {
					if b, err := os.ReadFile(l); err == nil {
						_ = os.WriteFile(filepath.Join(to, filepath.Base(l)), b, 0o644)
					}
				}
				t.Logf("logs kept in %s", to)
			}
		}
		if t.Failed() {
			for _, f := range []string{"controller", "speaker-node1-1", "speaker-node2-1", "speaker-node3-1"} {
				if b, err := os.ReadFile(dir + "/" + f + ".log"); err == nil {
					t.Logf("%s log (tail):\n%s", f, tail(string(b), 3000))
				}
			}
		}
		c.Close()
	})
	if err := c.StartController(); err != nil {
		t.Fatal(err)
	}
	return c
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

func tctx(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

func lbService(name string, etpLocal bool, families ...corev1.IPFamily) *corev1.Service {
	s := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: name},
		Spec: corev1.ServiceSpec{
			Type:       corev1.ServiceTypeLoadBalancer,
			Ports:      []corev1.ServicePort{{Name: "http", Port: 80}},
			IPFamilies: families,
		},
	}
	if len(families) > 1 {
		s.Spec.IPFamilyPolicy = ptr.To(corev1.IPFamilyPolicyRequireDualStack)
	}
	if etpLocal {
		s.Spec.ExternalTrafficPolicy = corev1.ServiceExternalTrafficPolicyLocal
	}
	return s
}

// owner asks the client network who answers for ip: the MACs that answer
// ARP (IPv4), or the neighbour entry after a ping (IPv6).
func owner(t *testing.T, c *lab.Cluster, ip netip.Addr) *lab.Node {
	t.Helper()
	if ip.Is4() {
		macs, err := c.ArpingMACs(ip, 3)
		if err != nil {
			t.Fatalf("arping %s: %v", ip, err)
		}
		if len(macs) != 1 {
			t.Fatalf("arping %s: answered by %d MACs %v, want exactly one", ip, len(macs), macs)
		}
		for mac := range macs {
			return c.Lab.NodeByMAC(mac)
		}
	}
	if err := c.Ping(ip); err != nil {
		t.Fatalf("ping %s: %v", ip, err)
	}
	mac, err := c.NeighMAC(ip)
	if err != nil || mac == "" {
		t.Fatalf("no neighbour entry for %s (%v)", ip, err)
	}
	return c.Lab.NodeByMAC(mac)
}

// waitNeigh waits until the client's neighbour entry for ip points away
// from old (and at a node); it returns that node and how long it took.
func waitNeigh(ctx context.Context, c *lab.Cluster, ip netip.Addr, old *lab.Node) (*lab.Node, time.Duration, error) {
	start := time.Now()
	var now *lab.Node
	err := lab.WaitFor(ctx, 10*time.Millisecond, func() error {
		mac, err := c.NeighMAC(ip)
		if err != nil {
			return err
		}
		now = c.Lab.NodeByMAC(mac)
		if now == nil || now == old {
			return fmt.Errorf("neighbour entry %q", mac)
		}
		return nil
	})
	return now, time.Since(start), err
}

func TestLayer2(t *testing.T) {
	c := newCluster(t, 3)
	ctx := tctx(t, 4*time.Minute)
	if err := c.Apply(ctx, lab.L2Config("lab", "192.0.2.200-192.0.2.209", "2001:db8::200-2001:db8::209")...); err != nil {
		t.Fatal(err)
	}
	for _, n := range c.Lab.Nodes {
		if _, err := c.StartSpeaker(n.Name); err != nil {
			t.Fatal(err)
		}
	}
	svc := lbService("web", false, corev1.IPv4Protocol, corev1.IPv6Protocol)
	if err := c.Apply(ctx, svc); err != nil {
		t.Fatal(err)
	}
	key := client.ObjectKeyFromObject(svc)
	v4, v6, err := c.ServiceIPsOnNodes(ctx, key, 2)
	if err != nil {
		t.Fatal(err)
	}
	st, err := c.WaitAnnounced(ctx, key, func(string) bool { return true })
	if err != nil {
		t.Fatal(err)
	}
	first := c.Lab.Node(st.Nodes[0].Node)

	t.Run("exactly the owner answers ARP and NDP", func(t *testing.T) {
		if got := owner(t, c, v4); got != first {
			t.Errorf("ARP for %s answered by %v, status says %s", v4, got, first.Name)
		}
		if got := owner(t, c, v6); got != first {
			t.Errorf("NDP for %s resolved to %v, status says %s", v6, got, first.Name)
		}
		if st.Nodes[0].MAC != first.MAC || !strings.Contains(st.Nodes[0].Interface, "eth0") {
			t.Errorf("status interface %q MAC %q, want eth0 %s", st.Nodes[0].Interface, st.Nodes[0].MAC, first.MAC)
		}
	})

	t.Run("curl reaches the owner", func(t *testing.T) {
		for _, ip := range []netip.Addr{v4, v6} {
			got, err := c.Curl(ip)
			if err != nil || got != first.Name {
				t.Errorf("curl %s: %q, %v; want %s", ip, got, err, first.Name)
			}
		}
	})

	var second *lab.Node
	t.Run("kill -9 of the owner's speaker moves the address", func(t *testing.T) {
		c.Speakers[first.Name].Kill()
		var took time.Duration
		second, took, err = waitNeigh(tctx(t, 20*time.Second), c, v4, first)
		if err != nil {
			t.Fatalf("neighbour entry did not move: %v", err)
		}
		t.Logf("client's neighbour entry moved from %s to %s in %s", first.Name, second.Name, took)
		if got, err := c.Curl(v4); err != nil || got != second.Name {
			t.Errorf("curl after failover: %q, %v; want %s", got, err, second.Name)
		}
		st, err := c.WaitAnnounced(ctx, key, func(n string) bool { return n == second.Name })
		if err != nil {
			t.Fatal(err)
		}
		if st.LastMove == nil || st.LastMove.From != first.Name || st.LastMove.Reason != dataplane.MoveNodeFailed || st.LastMove.DetectionTime == nil {
			t.Errorf("last move %+v", st.LastMove)
		}
		if _, err := c.StartSpeaker(first.Name); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("failover without the API server", func(t *testing.T) {
		if second == nil {
			t.Skip("no owner")
		}
		// The returning node may take the address back (it is the
		// election's favourite); wait until the announcement settles.
		time.Sleep(2 * time.Second)
		cur := owner(t, c, v4)
		if err := c.Lab.SetHostLink(false); err != nil {
			t.Fatal(err)
		}
		defer func() { _ = c.Lab.SetHostLink(true) }()
		c.Speakers[cur.Name].Kill()
		next, took, err := waitNeigh(tctx(t, 20*time.Second), c, v4, cur)
		if err != nil {
			t.Fatalf("no failover with the API server unreachable: %v", err)
		}
		t.Logf("without the API server: %s took over from %s in %s", next.Name, cur.Name, took)
		if got, err := c.Curl(v4); err != nil || got != next.Name {
			t.Errorf("curl: %q, %v; want %s", got, err, next.Name)
		}
		if _, err := c.StartSpeaker(cur.Name); err != nil {
			t.Fatal(err)
		}
	})
}

// TestLayer2Local: with externalTrafficPolicy Local only a node with a
// ready endpoint announces, and the announcement follows the endpoints.
func TestLayer2Local(t *testing.T) {
	c := newCluster(t, 3)
	ctx := tctx(t, 3*time.Minute)
	if err := c.Apply(ctx, lab.L2Config("local", "192.0.2.220-192.0.2.229")...); err != nil {
		t.Fatal(err)
	}
	for _, n := range c.Lab.Nodes {
		if _, err := c.StartSpeaker(n.Name); err != nil {
			t.Fatal(err)
		}
	}
	svc := lbService("local", true, corev1.IPv4Protocol)
	if err := c.Apply(ctx, svc); err != nil {
		t.Fatal(err)
	}
	key := client.ObjectKeyFromObject(svc)
	ips, err := c.ServiceIPs(ctx, key, 1)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Lab.AddAddress(ips[0]); err != nil {
		t.Fatal(err)
	}
	slice := &discoveryv1.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Namespace: "default", Name: "local-1", Labels: map[string]string{discoveryv1.LabelServiceName: "local"}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Endpoints:   []discoveryv1.Endpoint{{Addresses: []string{"10.0.0.2"}, NodeName: ptr.To("node2"), Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(true)}}},
	}
	if err := c.Apply(ctx, slice); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"node2", "node3"} {
		if want == "node3" {
			slice.Endpoints[0].NodeName = ptr.To("node3")
			if err := c.Client.Update(ctx, slice); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := c.WaitAnnounced(ctx, key, func(n string) bool { return n == want }); err != nil {
			t.Fatalf("endpoint on %s: %v", want, err)
		}
		err := lab.WaitFor(tctx(t, 10*time.Second), 100*time.Millisecond, func() error {
			macs, err := c.ArpingMACs(ips[0], 2)
			if err != nil {
				return err
			}
			if len(macs) != 1 || macs[c.Lab.Node(want).MAC] == 0 {
				return fmt.Errorf("answered by %v", macs)
			}
			return nil
		})
		if err != nil {
			t.Errorf("endpoint on %s: ARP %v", want, err)
		}
	}
}
