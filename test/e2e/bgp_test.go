package e2e

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	lbv1 "github.com/lbstack/lbstack/api/v1alpha1"
	"github.com/lbstack/lbstack/internal/testenv"
	"github.com/lbstack/lbstack/test/e2e/lab"
)

const labASN = 64500

// bgpConfig is a pool announced over BGP (iBGP, AS 64500) to the lab
// router over IPv4 and IPv6 sessions, with local preference, communities
// and, when bfd is set, a 100 ms × 3 BFD profile.
func bgpConfig(bfd, gracefulRestart bool) []client.Object {
	objs := []client.Object{
		&lbv1.IPAddressPool{ObjectMeta: metav1.ObjectMeta{Name: "bgp"}, Spec: lbv1.IPAddressPoolSpec{Addresses: []lbv1.PoolAddress{"203.0.113.0/28", "2001:db8:1::/124"}}},
		&lbv1.BGPAdvertisement{ObjectMeta: metav1.ObjectMeta{Name: "bgp"}, Spec: lbv1.BGPAdvertisementSpec{
			IPAddressPools: []string{"bgp"}, LocalPref: ptr.To[int64](150), Communities: []lbv1.CommunityRef{"64500:100", "large:64500:7:9"}}},
	}
	profile := ""
	if bfd {
		profile = "fast"
		objs = append(objs, &lbv1.BFDProfile{ObjectMeta: metav1.ObjectMeta{Name: "fast"}, Spec: lbv1.BFDProfileSpec{
			ReceiveInterval: ptr.To[int32](100), TransmitInterval: ptr.To[int32](100), DetectMultiplier: ptr.To[int32](3)}})
	}
	for name, addr := range map[string]netip.Addr{"router4": lab.RouterIPv4, "router6": lab.RouterIPv6} {
		objs = append(objs, &lbv1.BGPPeer{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: lbv1.BGPPeerSpec{
			MyASN: labASN, PeerASN: labASN, PeerAddress: addr.String(), BFDProfile: profile,
			HoldTime: &metav1.Duration{Duration: 9 * time.Second}, KeepaliveTime: &metav1.Duration{Duration: 3 * time.Second},
			ConnectTime: &metav1.Duration{Duration: 2 * time.Second}, EnableGracefulRestart: ptr.To(gracefulRestart)}})
	}
	return objs
}

func birdNeighbors(c *lab.Cluster, bfd bool) []lab.BirdNeighbor {
	var out []lab.BirdNeighbor
	for _, n := range c.Lab.Nodes {
		out = append(out,
			lab.BirdNeighbor{Name: n.Name + "_v4", Address: n.IPv4, ASN: labASN, BFD: bfd},
			lab.BirdNeighbor{Name: n.Name + "_v6", Address: n.IPv6, ASN: labASN, BFD: bfd})
	}
	return out
}

// waitHops waits until the router's kernel route to prefix has exactly the
// wanted next hops.
func waitHops(ctx context.Context, b *lab.Bird, prefix netip.Prefix, want ...netip.Addr) error {
	slices.SortFunc(want, func(a, b netip.Addr) int { return a.Compare(b) })
	return lab.WaitFor(ctx, 20*time.Millisecond, func() error {
		hops, err := b.NextHops(prefix)
		if err != nil {
			return err
		}
		slices.SortFunc(hops, func(a, b netip.Addr) int { return a.Compare(b) })
		if !slices.Equal(hops, want) {
			return fmt.Errorf("next hops of %s: %v, want %v", prefix, hops, want)
		}
		return nil
	})
}

func hostPrefix(ip netip.Addr) netip.Prefix { return netip.PrefixFrom(ip, ip.BitLen()) }

func startBGPCluster(t *testing.T, bfd, gr bool) (*lab.Cluster, *lab.Bird) {
	c := newCluster(t, 2)
	ctx := tctx(t, time.Minute)
	bird, err := c.Lab.StartRouter(lab.BirdConfig{ASN: labASN, Neighbors: birdNeighbors(c, bfd), BFDInterval: 100, GracefulRestart: gr})
	if err != nil {
		testenv.Skip(t, "BIRD: %v", err)
	}
	if err := c.Apply(ctx, bgpConfig(bfd, gr)...); err != nil {
		t.Fatal(err)
	}
	for _, n := range c.Lab.Nodes {
		// Metrics on the node's loopback (each node is its own namespace),
		// plain HTTP: the lab has no scraper identity.
		if _, err := c.StartSpeaker(n.Name, "--metrics-bind-address=127.0.0.1:7474", "--metrics-secure=false"); err != nil {
			t.Fatal(err)
		}
	}
	return c, bird
}

func TestBGP(t *testing.T) {
	c, bird := startBGPCluster(t, true, false)
	ctx := tctx(t, 4*time.Minute)
	ips := webService(t, ctx, c)
	n1, n2 := c.Lab.Nodes[0], c.Lab.Nodes[1]

	t.Run("ECMP: the router's kernel route has both nodes as next hops, IPv4 and IPv6", func(t *testing.T) {
		for _, ip := range ips {
			want := []netip.Addr{n1.IPv4, n2.IPv4}
			if ip.Is6() {
				want = []netip.Addr{n1.IPv6, n2.IPv6}
			}
			if err := waitHops(tctx(t, time.Minute), bird, hostPrefix(ip), want...); err != nil {
				out, _ := bird.Birdc("show protocols")
				t.Fatalf("%v\n%s", err, out)
			}
		}
	})

	t.Run("local preference and communities reach the router", func(t *testing.T) {
		out, err := bird.Birdc("show route all " + hostPrefix(ips[0]).String())
		if err != nil {
			t.Fatal(err)
		}
		for _, want := range []string{"BGP.local_pref: 150", "(64500,100)", "(64500, 7, 9)"} {
			if !strings.Contains(out, want) {
				t.Errorf("birdc show route all lacks %q:\n%s", want, out)
			}
		}
	})

	t.Run("status: sessions per node in BGPPeer, nodes and peers in ServiceAnnouncement", func(t *testing.T) {
		err := lab.WaitFor(tctx(t, 30*time.Second), 100*time.Millisecond, func() error {
			var p lbv1.BGPPeer
			if err := c.Client.Get(ctx, client.ObjectKey{Name: "router4"}, &p); err != nil {
				return err
			}
			if len(p.Status.Nodes) != 2 {
				return fmt.Errorf("sessions %+v", p.Status.Nodes)
			}
			// The "Nodes Up" column, counted by the controller.
			if p.Status.Established != 2 {
				return fmt.Errorf("status.established = %d, want 2", p.Status.Established)
			}
			for _, s := range p.Status.Nodes {
				if s.State != lbv1.BGPSessionEstablished || s.BFDState != "Up" || s.PrefixesAdvertised < 1 {
					return fmt.Errorf("session %+v", s)
				}
			}
			st, err := c.Announcement(ctx, client.ObjectKey{Namespace: "default", Name: "web"})
			if err != nil {
				return err
			}
			if len(st.Nodes) != 2 || st.Protocol != lbv1.ProtocolBGP || !slices.Contains(st.Nodes[0].Peers, "router4") {
				return fmt.Errorf("announcement %+v", st)
			}
			return nil
		})
		if err != nil {
			t.Error(err)
		}
	})

	t.Run("metrics: sessions, updates, prefixes, BFD", func(t *testing.T) {
		out, err := c.Lab.Output(n1.NS, "curl", "-sS", "http://127.0.0.1:7474/metrics")
		if err != nil {
			t.Fatal(err)
		}
		for _, want := range []string{
			`lbstack_speaker_bgp_session_up{peer="router4"} 1`,
			`lbstack_speaker_bgp_session_up{peer="router6"} 1`,
			`lbstack_speaker_bfd_session_up{peer="router4"} 1`,
			`lbstack_speaker_bgp_prefixes_advertised{peer="router4"}`,
			`lbstack_speaker_bgp_updates_sent_total{peer="router4"}`,
			`lbstack_speaker_bfd_transitions_total{peer="router4"}`,
			`lbstack_speaker_members 2`,
		} {
			if !strings.Contains(out, want) {
				t.Errorf("metrics lack %s", want)
			}
		}
	})

	t.Run("kill -9 with BFD: the route drops to one next hop within a second", func(t *testing.T) {
		start := time.Now()
		c.Speakers[n1.Name].Kill()
		if err := waitHops(tctx(t, 20*time.Second), bird, hostPrefix(ips[0]), n2.IPv4); err != nil {
			t.Fatal(err)
		}
		took := time.Since(start)
		t.Logf("route withdrawn from %s %s after SIGKILL", n1.Name, took)
		if took > 3*time.Second {
			t.Errorf("withdrawal took %s: BFD did not act (hold time is 9 s)", took)
		}
		if _, err := c.StartSpeaker(n1.Name); err != nil {
			t.Fatal(err)
		}
		if err := waitHops(tctx(t, time.Minute), bird, hostPrefix(ips[0]), n1.IPv4, n2.IPv4); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("a frozen speaker (SIGSTOP, no TCP close): BFD withdraws well before the 9 s hold time", func(t *testing.T) {
		p := c.Speakers[n1.Name]
		start := time.Now()
		if err := p.Signal(syscall.SIGSTOP); err != nil {
			t.Fatal(err)
		}
		defer func() { _ = p.Signal(syscall.SIGCONT) }()
		if err := waitHops(tctx(t, 20*time.Second), bird, hostPrefix(ips[0]), n2.IPv4); err != nil {
			t.Fatal(err)
		}
		took := time.Since(start)
		t.Logf("BFD withdrew the frozen %s after %s", n1.Name, took)
		if took > 2*time.Second {
			t.Errorf("withdrawal took %s: BFD (100 ms x 3) did not act", took)
		}
		_ = p.Signal(syscall.SIGCONT)
		if err := waitHops(tctx(t, time.Minute), bird, hostPrefix(ips[0]), n1.IPv4, n2.IPv4); err != nil {
			t.Fatalf("not back after SIGCONT: %v", err)
		}
	})

	t.Run("externalTrafficPolicy Local: only nodes with endpoints advertise", func(t *testing.T) {
		local := lbService("local", true, corev1.IPv4Protocol)
		if err := c.Apply(ctx, local); err != nil {
			t.Fatal(err)
		}
		lips, err := c.ServiceIPs(ctx, client.ObjectKeyFromObject(local), 1)
		if err != nil {
			t.Fatal(err)
		}
		slice := &discoveryv1.EndpointSlice{
			ObjectMeta:  metav1.ObjectMeta{Namespace: "default", Name: "local-1", Labels: map[string]string{discoveryv1.LabelServiceName: "local"}},
			AddressType: discoveryv1.AddressTypeIPv4,
			Endpoints: []discoveryv1.Endpoint{
				{Addresses: []string{"10.0.0.2"}, NodeName: ptr.To(n1.Name), Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(true)}},
				{Addresses: []string{"10.0.0.3"}, NodeName: ptr.To(n2.Name), Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(true)}},
			},
		}
		if err := c.Apply(ctx, slice); err != nil {
			t.Fatal(err)
		}
		if err := waitHops(tctx(t, time.Minute), bird, hostPrefix(lips[0]), n1.IPv4, n2.IPv4); err != nil {
			t.Fatal(err)
		}
		slice.Endpoints[1].Conditions.Ready = ptr.To(false)
		if err := c.Client.Update(ctx, slice); err != nil {
			t.Fatal(err)
		}
		if err := waitHops(tctx(t, 30*time.Second), bird, hostPrefix(lips[0]), n1.IPv4); err != nil {
			t.Fatalf("%s still advertises without a ready endpoint: %v", n2.Name, err)
		}
	})
}

// TestBGPGracefulRestart: with graceful restart the router keeps a
// restarting speaker's route (stale) until it is back.
func TestBGPGracefulRestart(t *testing.T) {
	c, bird := startBGPCluster(t, false, true)
	ctx := tctx(t, 3*time.Minute)
	svc := lbService("gr", false, corev1.IPv4Protocol)
	if err := c.Apply(ctx, svc); err != nil {
		t.Fatal(err)
	}
	ips, err := c.ServiceIPs(ctx, client.ObjectKeyFromObject(svc), 1)
	if err != nil {
		t.Fatal(err)
	}
	n1, n2 := c.Lab.Nodes[0], c.Lab.Nodes[1]
	prefix := hostPrefix(ips[0])
	if err := waitHops(tctx(t, time.Minute), bird, prefix, n1.IPv4, n2.IPv4); err != nil {
		t.Fatal(err)
	}
	c.Speakers[n1.Name].Kill()
	// For a few seconds (the speaker restarting) both next hops stay.
	deadline := time.Now().Add(3 * time.Second)
	for time.Now().Before(deadline) {
		hops, err := bird.NextHops(prefix)
		if err != nil {
			t.Fatal(err)
		}
		if len(hops) != 2 {
			out, _ := bird.Birdc("show protocols all " + n1.Name + "_v4")
			t.Fatalf("route lost a next hop while %s restarts: %v\n%s", n1.Name, hops, out)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if _, err := c.StartSpeaker(n1.Name); err != nil {
		t.Fatal(err)
	}
	err = lab.WaitFor(tctx(t, time.Minute), 200*time.Millisecond, func() error {
		out, err := bird.Birdc("show protocols " + n1.Name + "_v4")
		if err != nil {
			return err
		}
		if !strings.Contains(out, "Established") {
			return fmt.Errorf("session not back: %s", out)
		}
		return waitHops(tctx(t, time.Second), bird, prefix, n1.IPv4, n2.IPv4)
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestBGPPassword: TCP MD5 from the referenced Secret. While the Secret is
// missing the node leaves the peer out (NotConfigured, naming the Secret)
// rather than opening the session without a password; once it appears the
// session comes up with it; a rotated wrong password takes the session
// down within the refresh interval, without touching the BGPPeer.
func TestBGPPassword(t *testing.T) {
	c := newCluster(t, 1)
	ctx := tctx(t, 4*time.Minute)
	n := c.Lab.Nodes[0]
	bird, err := c.Lab.StartRouter(lab.BirdConfig{ASN: labASN, Neighbors: []lab.BirdNeighbor{{Name: "right", Address: n.IPv4, ASN: labASN, Password: "s3cret-md5"}}})
	if err != nil {
		testenv.Skip(t, "BIRD: %v", err)
	}
	if err := c.Apply(ctx,
		&lbv1.IPAddressPool{ObjectMeta: metav1.ObjectMeta{Name: "bgp"}, Spec: lbv1.IPAddressPoolSpec{Addresses: []lbv1.PoolAddress{"203.0.113.0/28"}}},
		&lbv1.BGPAdvertisement{ObjectMeta: metav1.ObjectMeta{Name: "bgp"}},
		&lbv1.BGPPeer{ObjectMeta: metav1.ObjectMeta{Name: "router"}, Spec: lbv1.BGPPeerSpec{MyASN: labASN, PeerASN: labASN, PeerAddress: lab.RouterIPv4.String(),
			ConnectTime:    &metav1.Duration{Duration: 2 * time.Second},
			PasswordSecret: &lbv1.SecretReference{Name: "md5", Namespace: "default", Key: "password"}}},
	); err != nil {
		t.Fatal(err)
	}
	if _, err := c.StartSpeaker(n.Name, "--namespace=default"); err != nil {
		t.Fatal(err)
	}
	session := func(timeout time.Duration, want lbv1.BGPSessionState, errWant string) error {
		return lab.WaitFor(tctx(t, timeout), 200*time.Millisecond, func() error {
			var p lbv1.BGPPeer
			if err := c.Client.Get(ctx, client.ObjectKey{Name: "router"}, &p); err != nil {
				return err
			}
			if len(p.Status.Nodes) != 1 || p.Status.Nodes[0].State != want || !strings.Contains(p.Status.Nodes[0].LastError, errWant) {
				return fmt.Errorf("sessions %+v", p.Status.Nodes)
			}
			return nil
		})
	}
	if err := session(time.Minute, lbv1.BGPSessionNotConfigured, "password Secret default/md5 does not exist"); err != nil {
		t.Fatalf("missing Secret: %v", err)
	}
	if out, _ := bird.Birdc("show protocols right"); strings.Contains(out, "Established") {
		t.Fatalf("a session without its password Secret was established: %s", out)
	}

	secret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "md5"}, Data: map[string][]byte{"password": []byte("s3cret-md5")}}
	if err := c.Apply(ctx, secret); err != nil {
		t.Fatal(err)
	}
	if err := session(time.Minute, lbv1.BGPSessionEstablished, ""); err != nil {
		out, _ := bird.Birdc("show protocols all right")
		t.Fatalf("right password: %v\n%s", err, out)
	}
	// A wrong password, rotated in the Secret alone: the session goes
	// down and stays down.
	secret.Data["password"] = []byte("wrong")
	if err := c.Client.Update(ctx, secret); err != nil {
		t.Fatal(err)
	}
	err = lab.WaitFor(tctx(t, 2*time.Minute), 200*time.Millisecond, func() error {
		out, err := bird.Birdc("show protocols right")
		if err != nil {
			return err
		}
		if strings.Contains(out, "Established") {
			return fmt.Errorf("still established: %s", out)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(5 * time.Second)
	if out, _ := bird.Birdc("show protocols right"); strings.Contains(out, "Established") {
		t.Fatalf("a wrong password established a session: %s", out)
	}
	var p lbv1.BGPPeer
	if err := c.Client.Get(ctx, client.ObjectKey{Name: "router"}, &p); err != nil {
		t.Fatal(err)
	}
	if len(p.Status.Nodes) != 1 || p.Status.Nodes[0].State == lbv1.BGPSessionEstablished {
		t.Errorf("status after a wrong password: %+v", p.Status.Nodes)
	}
	t.Logf("status with a wrong password: %+v", p.Status.Nodes)
}

// TestBGPPeerIsolationAndMultihopBFD: an eBGP multi-hop peer runs
// multi-hop BFD (RFC 5883) with BIRD and comes Up; then two peers the node
// cannot configure are added — one at the same router address on another
// port, one whose password Secret does not exist. Each gets a
// NotConfigured entry naming the reason for the node, and the good
// session stays Established with its routes, without a flap.
func TestBGPPeerIsolationAndMultihopBFD(t *testing.T) {
	c := newCluster(t, 1)
	ctx := tctx(t, 4*time.Minute)
	n := c.Lab.Nodes[0]
	const nodeASN = 64501
	bird, err := c.Lab.StartRouter(lab.BirdConfig{ASN: labASN, BFDInterval: 100,
		Neighbors: []lab.BirdNeighbor{{Name: "mh", Address: n.IPv4, ASN: nodeASN, BFD: true, Multihop: true}}})
	if err != nil {
		testenv.Skip(t, "BIRD: %v", err)
	}
	timers := func(s *lbv1.BGPPeerSpec) {
		s.HoldTime, s.KeepaliveTime = &metav1.Duration{Duration: 9 * time.Second}, &metav1.Duration{Duration: 3 * time.Second}
		s.ConnectTime = &metav1.Duration{Duration: 2 * time.Second}
	}
	good := &lbv1.BGPPeer{ObjectMeta: metav1.ObjectMeta{Name: "good"}, Spec: lbv1.BGPPeerSpec{MyASN: nodeASN, PeerASN: labASN,
		PeerAddress: lab.RouterIPv4.String(), EBGPMultiHop: ptr.To(true), BFDProfile: "multihop"}}
	timers(&good.Spec)
	if err := c.Apply(ctx,
		&lbv1.IPAddressPool{ObjectMeta: metav1.ObjectMeta{Name: "bgp"}, Spec: lbv1.IPAddressPoolSpec{Addresses: []lbv1.PoolAddress{"203.0.113.0/28"}}},
		&lbv1.BGPAdvertisement{ObjectMeta: metav1.ObjectMeta{Name: "bgp"}},
		// BIRD sends multi-hop BFD with TTL 64: minimumTtl at most that.
		&lbv1.BFDProfile{ObjectMeta: metav1.ObjectMeta{Name: "multihop"}, Spec: lbv1.BFDProfileSpec{
			ReceiveInterval: ptr.To[int32](100), TransmitInterval: ptr.To[int32](100), DetectMultiplier: ptr.To[int32](3), MinimumTTL: ptr.To[int32](60)}},
		good,
	); err != nil {
		t.Fatal(err)
	}
	if _, err := c.StartSpeaker(n.Name); err != nil {
		t.Fatal(err)
	}
	svc := lbService("web", false, corev1.IPv4Protocol)
	if err := c.Apply(ctx, svc); err != nil {
		t.Fatal(err)
	}
	ips, err := c.ServiceIPs(ctx, client.ObjectKeyFromObject(svc), 1)
	if err != nil {
		t.Fatal(err)
	}
	entry := func(p *lbv1.BGPPeer) (lbv1.BGPNodeSession, bool) {
		for _, s := range p.Status.Nodes {
			if s.Node == n.Name {
				return s, true
			}
		}
		return lbv1.BGPNodeSession{}, false
	}
	var up lbv1.BGPNodeSession
	err = lab.WaitFor(tctx(t, time.Minute), 100*time.Millisecond, func() error {
		var p lbv1.BGPPeer
		if err := c.Client.Get(ctx, client.ObjectKey{Name: "good"}, &p); err != nil {
			return err
		}
		s, ok := entry(&p)
		if !ok || s.State != lbv1.BGPSessionEstablished || s.BFDState != "Up" {
			return fmt.Errorf("good: %+v", p.Status.Nodes)
		}
		up = s
		out, err := bird.Birdc("show bfd sessions")
		if err != nil || !strings.Contains(out, n.IPv4.String()) || !strings.Contains(out, "Up") {
			return fmt.Errorf("BIRD's BFD sessions: %v\n%s", err, out)
		}
		return waitHops(tctx(t, time.Second), bird, hostPrefix(ips[0]), n.IPv4)
	})
	if err != nil {
		out, _ := bird.Birdc("show protocols all mh")
		bfdOut, _ := bird.Birdc("show bfd sessions")
		t.Fatalf("multi-hop session with BFD: %v\n%s\n%s", err, out, bfdOut)
	}

	// Two peers the node cannot configure.
	badPort := &lbv1.BGPPeer{ObjectMeta: metav1.ObjectMeta{Name: "same-address-other-port"}, Spec: lbv1.BGPPeerSpec{MyASN: nodeASN, PeerASN: labASN,
		PeerAddress: lab.RouterIPv4.String(), PeerPort: 1179, EBGPMultiHop: ptr.To(true)}}
	noSecret := &lbv1.BGPPeer{ObjectMeta: metav1.ObjectMeta{Name: "no-secret"}, Spec: lbv1.BGPPeerSpec{MyASN: nodeASN, PeerASN: labASN,
		PeerAddress: lab.RouterIPv6.String(), PasswordSecret: &lbv1.SecretReference{Name: "absent", Namespace: "default"}}}
	if err := c.Apply(ctx, badPort, noSecret); err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]string{badPort.Name: `BGPPeer "good", created earlier, has the same address`, noSecret.Name: "Secret default/absent does not exist"} {
		err := lab.WaitFor(tctx(t, 30*time.Second), 100*time.Millisecond, func() error {
			var p lbv1.BGPPeer
			if err := c.Client.Get(ctx, client.ObjectKey{Name: name}, &p); err != nil {
				return err
			}
			if s, ok := entry(&p); !ok || s.State != lbv1.BGPSessionNotConfigured || !strings.Contains(s.LastError, want) {
				return fmt.Errorf("%s: %+v", name, p.Status.Nodes)
			}
			return nil
		})
		if err != nil {
			t.Error(err)
		}
	}
	// The good session never flapped and still carries the route.
	var p lbv1.BGPPeer
	if err := c.Client.Get(ctx, client.ObjectKey{Name: "good"}, &p); err != nil {
		t.Fatal(err)
	}
	if s, _ := entry(&p); s.State != lbv1.BGPSessionEstablished || !s.LastTransitionTime.Equal(&up.LastTransitionTime) || s.BFDState != "Up" {
		t.Errorf("good session after the broken peers: %+v, was %+v", s, up)
	}
	if err := waitHops(tctx(t, time.Second), bird, hostPrefix(ips[0]), n.IPv4); err != nil {
		t.Error(err)
	}
	if out, _ := bird.Birdc("show protocols mh"); !strings.Contains(out, "Established") {
		t.Errorf("BIRD: %s", out)
	}
}

// TestBFDAuthentication: a BFD profile with meticulous keyed SHA1 and the
// key from a Secret comes Up with BIRD configured with the same key; when
// the Secret's key changes (BIRD keeps the old one) the session goes down,
// and so does the BGP session behind it.
func TestBFDAuthentication(t *testing.T) {
	c := newCluster(t, 1)
	ctx := tctx(t, 4*time.Minute)
	n := c.Lab.Nodes[0]
	const key = "bfd-shared-key-20byt" // 20 bytes, the longest SHA1 key
	bird, err := c.Lab.StartRouter(lab.BirdConfig{ASN: labASN, BFDInterval: 100, BFDAuth: "meticulous keyed sha1", BFDKey: key, BFDKeyID: 9,
		Neighbors: []lab.BirdNeighbor{{Name: "n4", Address: n.IPv4, ASN: labASN, BFD: true}}})
	if err != nil {
		testenv.Skip(t, "BIRD: %v", err)
	}
	secret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "bfd-key"}, Type: corev1.SecretTypeOpaque, Data: map[string][]byte{"key": []byte(key)}}
	if err := c.Apply(ctx, secret,
		&lbv1.IPAddressPool{ObjectMeta: metav1.ObjectMeta{Name: "bgp"}, Spec: lbv1.IPAddressPoolSpec{Addresses: []lbv1.PoolAddress{"203.0.113.0/28"}}},
		&lbv1.BGPAdvertisement{ObjectMeta: metav1.ObjectMeta{Name: "bgp"}},
		&lbv1.BFDProfile{ObjectMeta: metav1.ObjectMeta{Name: "signed"}, Spec: lbv1.BFDProfileSpec{
			ReceiveInterval: ptr.To[int32](100), TransmitInterval: ptr.To[int32](100), DetectMultiplier: ptr.To[int32](3),
			Authentication: &lbv1.BFDAuthentication{Type: lbv1.BFDAuthMeticulousKeyedSHA1, KeyID: ptr.To[int32](9),
				KeySecret: lbv1.SecretReference{Name: "bfd-key", Namespace: "default", Key: "key"}}}},
		&lbv1.BGPPeer{ObjectMeta: metav1.ObjectMeta{Name: "router"}, Spec: lbv1.BGPPeerSpec{MyASN: labASN, PeerASN: labASN, PeerAddress: lab.RouterIPv4.String(),
			BFDProfile: "signed", ConnectTime: &metav1.Duration{Duration: 2 * time.Second}}},
	); err != nil {
		t.Fatal(err)
	}
	if _, err := c.StartSpeaker(n.Name, "--namespace=default"); err != nil {
		t.Fatal(err)
	}
	state := func(p *lbv1.BGPPeer) (lbv1.BGPNodeSession, bool) {
		if len(p.Status.Nodes) != 1 {
			return lbv1.BGPNodeSession{}, false
		}
		return p.Status.Nodes[0], true
	}
	err = lab.WaitFor(tctx(t, time.Minute), 100*time.Millisecond, func() error {
		var p lbv1.BGPPeer
		if err := c.Client.Get(ctx, client.ObjectKey{Name: "router"}, &p); err != nil {
			return err
		}
		if s, ok := state(&p); !ok || s.State != lbv1.BGPSessionEstablished || s.BFDState != "Up" {
			return fmt.Errorf("router: %+v", p.Status.Nodes)
		}
		out, err := bird.Birdc("show bfd sessions")
		if err != nil || !strings.Contains(out, n.IPv4.String()) || !strings.Contains(out, "Up") {
			return fmt.Errorf("BIRD's BFD sessions: %v\n%s", err, out)
		}
		return nil
	})
	if err != nil {
		out, _ := bird.Birdc("show bfd sessions")
		t.Fatalf("signed BFD with the same key: %v\n%s", err, out)
	}
	// Another key on our side: BIRD drops our packets, and we drop its.
	secret.Data["key"] = []byte("another-key")
	if err := c.Client.Update(ctx, secret); err != nil {
		t.Fatal(err)
	}
	err = lab.WaitFor(tctx(t, 2*time.Minute), 200*time.Millisecond, func() error {
		out, err := bird.Birdc("show bfd sessions")
		if err != nil {
			return err
		}
		if strings.Contains(out, "Up") {
			return fmt.Errorf("BIRD's BFD session still Up:\n%s", out)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	err = lab.WaitFor(tctx(t, 30*time.Second), 200*time.Millisecond, func() error {
		var p lbv1.BGPPeer
		if err := c.Client.Get(ctx, client.ObjectKey{Name: "router"}, &p); err != nil {
			return err
		}
		if s, ok := state(&p); !ok || s.BFDState == "Up" || s.State == lbv1.BGPSessionEstablished {
			return fmt.Errorf("router with mismatched keys: %+v", p.Status.Nodes)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestBGPLocalASNAndDynamicASN: one node peers with BIRD (AS 64500) over
// IPv4 as AS 64501 and over IPv6 as AS 64502 — a local ASN per peer —
// the IPv6 peer without a peerASN (dynamicASN: external); both sessions
// come up with their routes. Switched to dynamicASN: internal, the IPv6
// session is refused after OPEN with the reason in its status.
func TestBGPLocalASNAndDynamicASN(t *testing.T) {
	c := newCluster(t, 1)
	ctx := tctx(t, 4*time.Minute)
	n := c.Lab.Nodes[0]
	bird, err := c.Lab.StartRouter(lab.BirdConfig{ASN: labASN, Neighbors: []lab.BirdNeighbor{
		{Name: "v4", Address: n.IPv4, ASN: 64501}, {Name: "v6", Address: n.IPv6, ASN: 64502}}})
	if err != nil {
		testenv.Skip(t, "BIRD: %v", err)
	}
	fast := func(s *lbv1.BGPPeerSpec) {
		s.HoldTime, s.KeepaliveTime = &metav1.Duration{Duration: 9 * time.Second}, &metav1.Duration{Duration: 3 * time.Second}
		s.ConnectTime = &metav1.Duration{Duration: 2 * time.Second}
	}
	v4 := &lbv1.BGPPeer{ObjectMeta: metav1.ObjectMeta{Name: "v4"}, Spec: lbv1.BGPPeerSpec{MyASN: 64501, PeerASN: labASN, PeerAddress: lab.RouterIPv4.String()}}
	v6 := &lbv1.BGPPeer{ObjectMeta: metav1.ObjectMeta{Name: "v6"}, Spec: lbv1.BGPPeerSpec{MyASN: 64502, DynamicASN: lbv1.DynamicASNExternal, PeerAddress: lab.RouterIPv6.String()}}
	fast(&v4.Spec)
	fast(&v6.Spec)
	ips := dualStackWeb(t, ctx, c, n, v4, v6)
	for _, ip := range ips {
		hop := n.IPv4
		if ip.Is6() {
			hop = n.IPv6
		}
		if err := waitHops(tctx(t, time.Minute), bird, hostPrefix(ip), hop); err != nil {
			out, _ := bird.Birdc("show protocols all")
			t.Fatalf("%s: %v\n%s", ip, err, out)
		}
	}
	out, _ := bird.Birdc("show protocols all v6")
	if !strings.Contains(out, "Neighbor AS:      64502") {
		t.Errorf("BIRD's v6 session does not see AS 64502:\n%s", out)
	}

	// Internal only: BIRD's AS 64500 is not ours (64502).
	if err := c.Client.Get(ctx, client.ObjectKeyFromObject(v6), v6); err != nil {
		t.Fatal(err)
	}
	v6.Spec.DynamicASN = lbv1.DynamicASNInternal
	if err := c.Client.Update(ctx, v6); err != nil {
		t.Fatal(err)
	}
	err = lab.WaitFor(tctx(t, time.Minute), 200*time.Millisecond, func() error {
		var p lbv1.BGPPeer
		if err := c.Client.Get(ctx, client.ObjectKeyFromObject(v6), &p); err != nil {
			return err
		}
		if len(p.Status.Nodes) != 1 || p.Status.Nodes[0].State == lbv1.BGPSessionEstablished ||
			!strings.Contains(p.Status.Nodes[0].LastError, "the router's AS 64500 is not ours (64502), and dynamicASN is internal") {
			return fmt.Errorf("v6: %+v", p.Status.Nodes)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, ip := range ips {
		if ip.Is6() {
			if err := waitHops(tctx(t, 30*time.Second), bird, hostPrefix(ip)); err != nil {
				t.Errorf("the refused session's route stayed: %v", err)
			}
		}
	}
}

// dualStackWeb applies a dual-stack BGP pool advertised to every peer,
// with peers, starts node n's speaker, creates the dual-stack Service
// web and returns its addresses.
func dualStackWeb(t *testing.T, ctx context.Context, c *lab.Cluster, n *lab.Node, peers ...client.Object) []netip.Addr {
	t.Helper()
	objs := append([]client.Object{
		&lbv1.IPAddressPool{ObjectMeta: metav1.ObjectMeta{Name: "bgp"}, Spec: lbv1.IPAddressPoolSpec{Addresses: []lbv1.PoolAddress{"203.0.113.0/28", "2001:db8:1::/124"}}},
		&lbv1.BGPAdvertisement{ObjectMeta: metav1.ObjectMeta{Name: "bgp"}}}, peers...)
	if err := c.Apply(ctx, objs...); err != nil {
		t.Fatal(err)
	}
	if _, err := c.StartSpeaker(n.Name); err != nil {
		t.Fatal(err)
	}
	return webService(t, ctx, c)
}

// webService creates the dual-stack Service web and returns its addresses.
func webService(t *testing.T, ctx context.Context, c *lab.Cluster) []netip.Addr {
	t.Helper()
	svc := lbService("web", false, corev1.IPv4Protocol, corev1.IPv6Protocol)
	if err := c.Apply(ctx, svc); err != nil {
		t.Fatal(err)
	}
	ips, err := c.ServiceIPs(ctx, client.ObjectKeyFromObject(svc), 2)
	if err != nil {
		t.Fatal(err)
	}
	return ips
}

// TestBGPUnnumbered: a BGPPeer with interface instead of peerAddress peers
// over the node's point-to-point link with the router there, found as the
// link's IPv6 link-local neighbor (BIRD accepts any link-local address on
// the interface: a dynamic neighbor range). The one session carries the
// Service's IPv4 and IPv6 addresses with the node's link-local next hop;
// admission refuses what the unnumbered session cannot honour and a
// second peer on the same interface.
func TestBGPUnnumbered(t *testing.T) {
	c := newCluster(t, 1)
	ctx := tctx(t, 3*time.Minute)
	n := c.Lab.Nodes[0]
	bird, err := c.Lab.StartRouter(lab.BirdConfig{ASN: labASN, Unnumbered: []lab.BirdUnnumbered{{Name: "ul", Interface: "ul0", ASN: 64510}}})
	if err != nil {
		testenv.Skip(t, "BIRD: %v", err)
	}
	nodeLL, routerLL := netip.MustParseAddr("fe80::1"), netip.MustParseAddr("fe80::2")
	if err := c.Lab.PointToPoint(n.NS, bird.NS, "ul0", nodeLL, routerLL); err != nil {
		t.Fatal(err)
	}
	peer := &lbv1.BGPPeer{ObjectMeta: metav1.ObjectMeta{Name: "unnumbered"}, Spec: lbv1.BGPPeerSpec{MyASN: 64510, PeerASN: labASN, Interface: "ul0",
		HoldTime: &metav1.Duration{Duration: 9 * time.Second}, KeepaliveTime: &metav1.Duration{Duration: 3 * time.Second},
		ConnectTime: &metav1.Duration{Duration: 2 * time.Second}}}
	ips := dualStackWeb(t, ctx, c, n, peer)
	for _, ip := range ips {
		err := lab.WaitFor(tctx(t, time.Minute), 100*time.Millisecond, func() error {
			out, err := bird.Birdc("show route for " + ip.String() + " all")
			if err != nil {
				return err
			}
			if !strings.Contains(out, nodeLL.String()) || !strings.Contains(out, "BGP.as_path: 64510") {
				return fmt.Errorf("%s: no route from the node's link-local address:\n%s", ip, out)
			}
			return nil
		})
		if err != nil {
			out, _ := bird.Birdc("show protocols all")
			var p lbv1.BGPPeer
			_ = c.Client.Get(ctx, client.ObjectKeyFromObject(peer), &p)
			t.Fatalf("%v\n%s\npeer status: %+v", err, out, p.Status)
		}
	}
	err = lab.WaitFor(tctx(t, 30*time.Second), 100*time.Millisecond, func() error {
		var p lbv1.BGPPeer
		if err := c.Client.Get(ctx, client.ObjectKeyFromObject(peer), &p); err != nil {
			return err
		}
		if len(p.Status.Nodes) != 1 || p.Status.Nodes[0].State != lbv1.BGPSessionEstablished || p.Status.Nodes[0].PrefixesAdvertised != 2 {
			return fmt.Errorf("status %+v", p.Status.Nodes)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}

	// A second peer on the interface: admission refuses it; one that got
	// in anyway (the lab runs no webhook) is left out by the configuration
	// in force on every node, and the first session stays up meanwhile.
	again := &lbv1.BGPPeer{ObjectMeta: metav1.ObjectMeta{Name: "again"}, Spec: lbv1.BGPPeerSpec{MyASN: 64510, PeerASN: labASN, Interface: "ul0"}}
	if err := c.Apply(ctx, again); err != nil {
		t.Fatal(err)
	}
	for range 25 {
		time.Sleep(200 * time.Millisecond)
		var p lbv1.BGPPeer
		if err := c.Client.Get(ctx, client.ObjectKeyFromObject(again), &p); err != nil {
			t.Fatal(err)
		}
		if len(p.Status.Nodes) > 0 {
			t.Fatalf("the second peer on ul0 got a session: %+v", p.Status.Nodes)
		}
		if out, _ := bird.Birdc("show protocols"); strings.Count(out, "Established") != 1 {
			t.Fatalf("BIRD's sessions:\n%s", out)
		}
	}

	// Refused by the CRD, naming the field.
	for _, tc := range []struct {
		name string
		spec lbv1.BGPPeerSpec
		want string
	}{
		{"both", lbv1.BGPPeerSpec{MyASN: 64510, PeerASN: labASN, Interface: "ul1", PeerAddress: "192.0.2.1"}, "set exactly one of peerAddress and interface"},
		{"neither", lbv1.BGPPeerSpec{MyASN: 64510, PeerASN: labASN}, "set exactly one of peerAddress and interface"},
		{"password", lbv1.BGPPeerSpec{MyASN: 64510, PeerASN: labASN, Interface: "ul1", PasswordSecret: &lbv1.SecretReference{Name: "pw"}}, "spec.interface"},
	} {
		p := &lbv1.BGPPeer{ObjectMeta: metav1.ObjectMeta{Name: "refused-" + tc.name}, Spec: tc.spec}
		err := c.Client.Create(ctx, p)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: created (%v), want refused with %q", tc.name, err, tc.want)
		}
	}
}
