package e2e

import (
	"context"
	"crypto/rand"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	lbv1 "github.com/lbstack/lbstack/api/v1alpha1"
	"github.com/lbstack/lbstack/test/e2e/lab"
)

// These tests judge layer 2 through faults from the client's side: arping
// from the client namespace, sampled continuously (one request per sample,
// every answer to it counted), and the HTTP probe (a fresh connection every
// 5 ms, answered with the name of the node that received it).

// arpSample is one ARP request from the client and the MACs that answered.
type arpSample struct {
	at   time.Time
	ip   netip.Addr
	macs []string
}

// arpSampler sends one ARP request at a time for each address in turn, from
// the client, until stopped.
type arpSampler struct {
	mu      sync.Mutex
	samples []arpSample
	stop    chan struct{}
	done    chan struct{}
}

func sampleARP(t testing.TB, c *lab.Cluster, ips ...netip.Addr) *arpSampler {
	s := &arpSampler{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(s.done)
		for i := 0; ; i++ {
			select {
			case <-s.stop:
				return
			default:
			}
			ip := ips[i%len(ips)]
			at := time.Now()
			macs, err := c.Lab.ArpingOnce(ip, 100*time.Millisecond)
			if err != nil {
				t.Logf("arping %s: %v", ip, err)
				time.Sleep(50 * time.Millisecond)
				continue
			}
			s.mu.Lock()
			s.samples = append(s.samples, arpSample{at: at, ip: ip, macs: macs})
			s.mu.Unlock()
		}
	}()
	t.Cleanup(s.Stop)
	return s
}

// Stop ends the sampling.
func (s *arpSampler) Stop() {
	select {
	case <-s.stop:
	default:
		close(s.stop)
	}
	<-s.done
}

// between returns the samples taken in [from, to).
func (s *arpSampler) between(from, to time.Time) []arpSample {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []arpSample
	for _, x := range s.samples {
		if !x.at.Before(from) && x.at.Before(to) {
			out = append(out, x)
		}
	}
	return out
}

// doubles returns the samples answered by more than one MAC.
func doubles(samples []arpSample) []arpSample {
	var out []arpSample
	for _, x := range samples {
		if len(x.macs) > 1 {
			out = append(out, x)
		}
	}
	return out
}

func (x arpSample) String() string {
	return fmt.Sprintf("%s %s answered by %v", x.at.Format("15:04:05.000"), x.ip, x.macs)
}

// l2Fixture is a 3-node lab with speakers, n layer-2 Services (one IPv4
// address each, on every node's lo), the HTTP probe and an ARP sampler.
type l2Fixture struct {
	c     *lab.Cluster
	ips   []netip.Addr
	urls  []string
	probe *lab.Probe
	arp   *arpSampler
	args  []string
}

func newL2Fixture(t testing.TB, name, pool string, services int, args ...string) *l2Fixture {
	t.Helper()
	c := newCluster(t, 3)
	ctx := tctx(t, 2*time.Minute)
	if err := c.Apply(ctx, lab.L2Config(name, pool)...); err != nil {
		t.Fatal(err)
	}
	for _, n := range c.Lab.Nodes {
		if _, err := c.StartSpeaker(n.Name, args...); err != nil {
			t.Fatal(err)
		}
	}
	f := &l2Fixture{c: c, args: args}
	for i := range services {
		svc := lbService(fmt.Sprintf("%s-%d", name, i), false, corev1.IPv4Protocol)
		if err := c.Apply(ctx, svc); err != nil {
			t.Fatal(err)
		}
		key := client.ObjectKeyFromObject(svc)
		v4, _, err := c.ServiceIPsOnNodes(ctx, key, 1)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.WaitAnnounced(ctx, key, func(string) bool { return true }); err != nil {
			t.Fatal(err)
		}
		f.ips = append(f.ips, v4)
		f.urls = append(f.urls, "http://"+v4.String()+"/")
	}
	p, err := lab.StartProbe(c.Lab, t.TempDir(), f.urls...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Stop)
	if err := p.WaitUp(tctx(t, 30*time.Second), f.urls...); err != nil {
		t.Fatal(err)
	}
	f.probe = p
	f.arp = sampleARP(t, c, f.ips...)
	return f
}

// owner returns the node whose MAC alone answers ARP for ip, waiting up to
// 10 s for exactly one to answer.
func (f *l2Fixture) owner(t testing.TB, ip netip.Addr) *lab.Node {
	t.Helper()
	var n *lab.Node
	err := lab.WaitFor(tctx(t, 10*time.Second), 50*time.Millisecond, func() error {
		macs, err := f.c.Lab.ArpingOnce(ip, 100*time.Millisecond)
		if err != nil {
			return err
		}
		if len(macs) != 1 {
			return fmt.Errorf("answered by %v", macs)
		}
		if n = f.c.Lab.NodeByMAC(macs[0]); n == nil {
			return fmt.Errorf("answered by %s, no node's MAC", macs[0])
		}
		return nil
	})
	if err != nil {
		t.Fatalf("who answers for %s: %v", ip, err)
	}
	return n
}

// answeredBy waits until the probe reaches url at a node other than not,
// and returns that node's name.
func (f *l2Fixture) answeredBy(t testing.TB, url string, since time.Time, not string) string {
	t.Helper()
	var got string
	err := lab.WaitFor(tctx(t, 15*time.Second), 20*time.Millisecond, func() error {
		at, ok := f.probe.FirstAnswer(url, since, func(n string) bool { return n != not && n != "" })
		if !ok {
			return fmt.Errorf("not answered by another node than %s yet", not)
		}
		got = f.probe.NodeAt(url, at)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return got
}

// checkOneMAC fails for every sample in [from, to) answered by more than one
// MAC, or (want non-nil) by another MAC than want's for ip.
func (f *l2Fixture) checkOneMAC(t *testing.T, what string, from, to time.Time, want map[netip.Addr]*lab.Node) {
	t.Helper()
	samples := f.arp.between(from, to)
	if len(samples) == 0 {
		t.Errorf("%s: no ARP sample between %s and %s", what, from.Format("15:04:05.000"), to.Format("15:04:05.000"))
	}
	for _, x := range samples {
		switch {
		case len(x.macs) > 1:
			t.Errorf("%s: %s", what, x)
		case len(x.macs) == 0:
			t.Errorf("%s: %s: no answer", what, x)
		case want != nil && want[x.ip] != nil && !strings.EqualFold(x.macs[0], want[x.ip].MAC):
			t.Errorf("%s: %s, want only %s (%s)", what, x, want[x.ip].Name, want[x.ip].MAC)
		}
	}
}

// TestL2SpeakerRestarts restarts the owner's speaker 20 times, alternately
// killed (crash loop) and stopped (rolling update), each time starting it
// again at once. Through all of it the client never gets two answers to one
// ARP request, and each restart moves the address at most once: a stopped
// speaker's address goes to another node, which keeps it when the speaker is
// back; a killed one's goes to another node too unless the restarted
// speaker was back before the others declared it dead, when it keeps it —
// never away and back.
func TestL2SpeakerRestarts(t *testing.T) {
	f := newL2Fixture(t, "restart", "192.0.2.160-192.0.2.169", 1)
	ip, url := f.ips[0], f.urls[0]
	start := time.Now()
	for i := range 20 {
		owner := f.owner(t, ip)
		sig := syscall.SIGKILL
		if i%2 == 1 {
			sig = syscall.SIGTERM
		}
		at := time.Now()
		f.restartSpeaker(t, owner, sig)
		var next string
		if sig == syscall.SIGTERM {
			// A speaker that leaves says goodbye: another node takes over.
			next = f.answeredBy(t, url, at, owner.Name)
		}
		// The restarted speaker joins and must not take the address back.
		waitLog(t, f.c.Speakers[owner.Name], "Joined: electing", 15*time.Second)
		time.Sleep(time.Second)
		now := f.owner(t, ip)
		if next != "" && now.Name != next {
			t.Fatalf("restart %d (%s of %s): the address moved to %s, then to %s once the speaker was back (two moves)", i+1, sig, owner.Name, next, now.Name)
		}
		// A killed speaker started again at once may be back before the
		// others declare it dead (missed heartbeats, about 0.4 s): then
		// nobody saw it fail and it keeps its address once it has joined.
		// Either way the address moves at most once: the answering MAC
		// changes at most once.
		var silent, macs []string
		for _, x := range f.arp.between(at, time.Now()) {
			if len(x.macs) == 0 {
				silent = append(silent, x.at.Format("05.000"))
				continue
			}
			if len(macs) == 0 || !strings.EqualFold(macs[len(macs)-1], x.macs[0]) {
				macs = append(macs, x.macs[0])
			}
		}
		if len(macs) > 2 || len(macs) == 2 && !strings.EqualFold(macs[0], owner.MAC) {
			t.Fatalf("restart %d (%s of %s): the answering MAC went %v (%s is %s): more than one move", i+1, sig, owner.Name, macs, owner.Name, owner.MAC)
		}
		next = now.Name
		t.Logf("restart %d at %s: %s of %s's speaker; %s has the address after it, without a second move; probe gaps %v; unanswered ARP samples at %v",
			i+1, at.Format("15:04:05.000"), sig, owner.Name, next, f.probe.Gaps(url, at, time.Now()), silent)
	}
	if d := doubles(f.arp.between(start, time.Now())); len(d) > 0 {
		t.Errorf("%d ARP samples during 20 restarts answered by two MACs: %v", len(d), d)
	}
	t.Logf("%d ARP samples during 20 restarts, %d answered by two MACs", len(f.arp.between(start, time.Now())), len(doubles(f.arp.between(start, time.Now()))))
}

// restartSpeaker stops node's speaker with sig and starts it again at once.
func (f *l2Fixture) restartSpeaker(t testing.TB, node *lab.Node, sig syscall.Signal) {
	t.Helper()
	p := f.c.Speakers[node.Name]
	if err := p.Signal(sig); err != nil {
		t.Fatal(err)
	}
	<-p.Done()
	if sig == syscall.SIGTERM {
		// A stopping speaker closes its sockets before it says goodbye:
		// the others take over when they hear it.
		b, _ := os.ReadFile(p.Log)
		released, left := strings.Index(string(b), "Stopped layer 2 announcer"), strings.Index(string(b), "Leaving the cluster")
		if released < 0 || left < 0 || left < released {
			t.Errorf("%s said goodbye before it stopped answering (or did neither): log tail:\n%s", p.Name, p.Tail(2000))
		}
	}
	if _, err := f.c.StartSpeaker(node.Name, f.args...); err != nil {
		t.Fatal(err)
	}
}

// waitLog waits until p's log contains s.
func waitLog(t testing.TB, p *lab.Proc, s string, timeout time.Duration) {
	t.Helper()
	err := lab.WaitFor(tctx(t, timeout), 50*time.Millisecond, func() error {
		if b, _ := os.ReadFile(p.Log); !strings.Contains(string(b), s) {
			return fmt.Errorf("%s has not logged %q", p.Name, s)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("%v; log tail:\n%s", err, p.Tail(2000))
	}
}

// TestL2PartitionHeal cuts the owner off silently (its bridge port
// detached, its link keeps carrier) ten times, for 1 s or for 6 s (long
// enough for memberlist to drop it), and heals it. Another node takes over
// while it is cut off; within 1 s of the heal exactly one node answers, and
// from then on the answers do not move.
func TestL2PartitionHeal(t *testing.T) {
	f := newL2Fixture(t, "heal", "192.0.2.170-192.0.2.179", 1)
	ip, url := f.ips[0], f.urls[0]
	for i := range 10 {
		owner := f.owner(t, ip)
		hold := time.Second
		if i%2 == 1 {
			hold = 6 * time.Second
		}
		cut := time.Now()
		if err := f.c.Lab.Cut(owner, true); err != nil {
			t.Fatal(err)
		}
		next := f.answeredBy(t, url, cut, owner.Name)
		time.Sleep(time.Until(cut.Add(hold)))
		healed := time.Now()
		if err := f.c.Lab.Cut(owner, false); err != nil {
			t.Fatal(err)
		}
		time.Sleep(4 * time.Second)
		winner := f.owner(t, ip)
		f.checkOneMAC(t, fmt.Sprintf("trial %d, from 1 s after the heal", i+1), healed.Add(time.Second), time.Now(), map[netip.Addr]*lab.Node{ip: winner})
		if moved := f.probe.NodesBetween(url, healed.Add(time.Second), time.Now()); len(moved) > 1 {
			t.Errorf("trial %d: from 1 s after the heal the probe was answered by %v (flapping)", i+1, moved)
		}
		t.Logf("trial %d: %s cut off for %s; %s took over; after the heal %s answers (doubles right after the heal: %d)",
			i+1, owner.Name, hold, next, winner.Name, len(doubles(f.arp.between(healed, healed.Add(time.Second)))))
	}
}

// TestL2OneWayLoss drops the memberlist packets in one direction only,
// inside one node's namespace, both ways round: the others stop hearing the
// owner (it still hears them), then the owner stops hearing the others.
// Each address is answered by exactly one node once the detection time and
// the hand-over have passed, and stays so when the path heals.
func TestL2OneWayLoss(t *testing.T) {
	f := newL2Fixture(t, "oneway", "192.0.2.180-192.0.2.189", 4)
	for _, dir := range []struct {
		name, rule string
	}{
		{"the others stop hearing the owner", "OUTPUT -p udp --dport 7946"},
		{"the owner stops hearing the others", "INPUT -p udp --sport 7946"},
	} {
		t.Run(dir.name, func(t *testing.T) {
			owner := f.owner(t, f.ips[0])
			rule := strings.Fields(dir.rule)
			if err := f.c.Lab.Run(owner.NS, append(append([]string{"iptables", "-w", "-A"}, rule...), "-j", "DROP")...); err != nil {
				t.Fatal(err)
			}
			dropped := time.Now()
			time.Sleep(4 * time.Second)
			want := map[netip.Addr]*lab.Node{}
			for _, ip := range f.ips {
				want[ip] = f.owner(t, ip)
			}
			// Detection (0.4 s) plus the hand-over (two heartbeat
			// intervals and a claims exchange) are well under 2 s.
			f.checkOneMAC(t, "2 s after the drop", dropped.Add(2*time.Second), time.Now(), want)
			if err := f.c.Lab.Run(owner.NS, append(append([]string{"iptables", "-w", "-D"}, rule...), "-j", "DROP")...); err != nil {
				t.Fatal(err)
			}
			healed := time.Now()
			time.Sleep(3 * time.Second)
			f.checkOneMAC(t, "after the path healed", healed, time.Now(), nil)
			var owners []string
			for _, ip := range f.ips {
				owners = append(owners, ip.String()+"→"+want[ip].Name)
			}
			t.Logf("%s of %s: %v; doubles in the first 2 s: %d", dir.name, owner.Name, owners, len(doubles(f.arp.between(dropped, dropped.Add(2*time.Second)))))
		})
	}
}

// TestL2KeyMismatch restarts one speaker with another memberlist key: it
// cannot join the others. It waits the join timeout, then gives up every
// address another node answers for, so that each address keeps exactly
// one answering node, and it says why.
func TestL2KeyMismatch(t *testing.T) {
	f := newL2Fixture(t, "key", "192.0.2.190-192.0.2.199", 3)
	// A stack (with no inline configuration: the standalone objects stay
	// in force) for the speakers to report their membership problems in.
	if err := f.c.Apply(tctx(t, time.Minute), &lbv1.LoadBalancerStack{ObjectMeta: metav1.ObjectMeta{Name: "lbstack"}}); err != nil {
		t.Fatal(err)
	}
	want := map[netip.Addr]*lab.Node{}
	for _, ip := range f.ips {
		want[ip] = f.owner(t, ip)
	}
	// Restart a node that owns something, with a key of its own.
	odd := want[f.ips[0]]
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		t.Fatal(err)
	}
	keyFile := filepath.Join(t.TempDir(), "other.key")
	if err := os.WriteFile(keyFile, key, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := f.c.Speakers[odd.Name].Stop(10 * time.Second); err != nil {
		t.Fatal(err)
	}
	p, err := f.c.StartSpeaker(odd.Name, append(slices.Clone(f.args), "--memberlist-key-file", keyFile)...)
	if err != nil {
		t.Fatal(err)
	}
	waitLog(t, p, "Joined: electing", 20*time.Second)
	waitLog(t, p, "different memberlist key", 20*time.Second)
	settled := time.Now().Add(2 * time.Second)
	time.Sleep(5 * time.Second)
	for _, ip := range f.ips {
		if w := want[ip]; w == odd {
			want[ip] = nil // moved when odd stopped: any single other node
		}
	}
	f.checkOneMAC(t, "with one speaker on another key", settled, time.Now(), want)
	for _, x := range f.arp.between(settled, time.Now()) {
		if len(x.macs) == 1 && strings.EqualFold(x.macs[0], odd.MAC) {
			t.Errorf("%s: the speaker that cannot join the others answers", x)
			break
		}
	}
	// The odd speaker says so in the stack's status, for kubectl users.
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	for {
		var stacks lbv1.LoadBalancerStackList
		if err := f.c.Client.List(ctx, &stacks); err != nil {
			t.Fatal(err)
		}
		var reported []lbv1.SpeakerProblem
		for _, s := range stacks.Items {
			reported = append(reported, s.Status.SpeakerProblems...)
		}
		if slices.ContainsFunc(reported, func(p lbv1.SpeakerProblem) bool {
			return p.Node == odd.Name && p.Reason == lbv1.SpeakerMembershipKeyMismatch
		}) {
			break
		}
		select {
		case <-ctx.Done():
			t.Fatalf("no MembershipKeyMismatch entry for %s in the stack's status.speakerProblems: %+v", odd.Name, reported)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// cutAPI drops (cut) or restores the traffic between node and the test API
// server, inside the node's namespace: membership, ARP and the probe's
// traffic go on.
func (f *l2Fixture) cutAPI(t testing.TB, node *lab.Node, cut bool) {
	t.Helper()
	op := "-D"
	if cut {
		op = "-I"
	}
	for _, rule := range [][]string{{"OUTPUT", "-d", lab.HostIPv4.String()}, {"INPUT", "-s", lab.HostIPv4.String()}} {
		if err := f.c.Lab.Run(node.NS, append(append([]string{"iptables", "-w", op}, rule...), "-j", "DROP")...); err != nil {
			t.Fatal(err)
		}
	}
}

// TestL2APICut cuts the owner off from the API server only: its links,
// membership and data plane stay up. Past the stale bound (the speakers'
// default --api-stale-after, 3 s) it withdraws: another node takes the
// address over with the reason APIUnreachable, the clients' connections go
// on (the old node forwards until they follow the gratuitous ARP), and no
// ARP request is answered twice. When the cut heals the node announces
// again and the address stays where it went. Then a node is cut off and
// the Service it announces deleted at once: the address stops being
// answered once the node withdraws, not when the cut ends.
func TestL2APICut(t *testing.T) {
	f := newL2Fixture(t, "apicut", "192.0.2.210-192.0.2.219", 2)
	ctx := tctx(t, 3*time.Minute)
	ip, url := f.ips[0], f.urls[0]
	owner := f.owner(t, ip)
	cut := time.Now()
	f.cutAPI(t, owner, true)
	healed := false
	defer func() {
		if !healed {
			f.cutAPI(t, owner, false)
		}
	}()
	next := f.answeredBy(t, url, cut, owner.Name)
	tookOver, _ := f.probe.FirstAnswer(url, cut, func(n string) bool { return n == next })
	key := client.ObjectKey{Namespace: "default", Name: "apicut-0"}
	st, err := f.c.WaitAnnounced(ctx, key, func(n string) bool { return n == next })
	if err != nil {
		t.Fatal(err)
	}
	if st.LastMove == nil || st.LastMove.Reason != "APIUnreachable" || st.LastMove.From != owner.Name {
		t.Errorf("lastMove %+v, want from %s with reason APIUnreachable", st.LastMove, owner.Name)
	}
	waitLog(t, f.c.Speakers[owner.Name], "Withdrawing", 5*time.Second)
	if d := doubles(f.arp.between(cut, time.Now())); len(d) > 0 {
		t.Errorf("ARP answered by two MACs during the withdrawal: %v", d)
	}
	gaps := f.probe.Gaps(url, cut, time.Now())
	for _, g := range gaps {
		if g > time.Second {
			t.Errorf("the probe of %s was down for %s during the withdrawal (gaps %v): the cut node's data plane should forward until the clients follow", url, g, gaps)
		}
	}
	t.Logf("%s cut off from the API server; %s answered the probe %s after the cut; probe gaps %v", owner.Name, next, tookOver.Sub(cut).Round(time.Millisecond), gaps)

	f.cutAPI(t, owner, false)
	healed = true
	heal := time.Now()
	waitLog(t, f.c.Speakers[owner.Name], "Announcing again", 30*time.Second)
	time.Sleep(2 * time.Second)
	if now := f.owner(t, ip); now.Name != next {
		t.Errorf("after the heal %s answers for %s, want %s (no move back)", now.Name, ip, next)
	}
	f.checkOneMAC(t, "after the heal", heal, time.Now(), nil)
	t.Logf("%s announces again %s after the heal", owner.Name, time.Since(heal).Round(time.Millisecond))

	// A deletion the cut node cannot see.
	ip1 := f.ips[1]
	owner1 := f.owner(t, ip1)
	cut = time.Now()
	f.cutAPI(t, owner1, true)
	defer f.cutAPI(t, owner1, false)
	svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "apicut-1"}}
	if err := f.c.Client.Delete(ctx, svc); err != nil {
		t.Fatal(err)
	}
	var silentAt time.Time
	err = lab.WaitFor(tctx(t, 20*time.Second), 100*time.Millisecond, func() error {
		macs, err := f.c.Lab.ArpingOnce(ip1, 200*time.Millisecond)
		if err != nil {
			return err
		}
		if len(macs) > 0 {
			return fmt.Errorf("%s of the deleted Service answered by %v", ip1, macs)
		}
		silentAt = time.Now()
		return nil
	})
	if err != nil {
		t.Fatalf("%v: the node cut off from the API server still announces a deleted Service", err)
	}
	t.Logf("Service deleted while its node %s was cut off from the API server: its address answered until %s after the cut", owner1.Name, silentAt.Sub(cut).Round(time.Millisecond))
}
