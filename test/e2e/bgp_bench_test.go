package e2e

import (
	"bufio"
	"context"
	"fmt"
	"net/netip"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	lbv1 "github.com/lbstack/lbstack/api/v1alpha1"
	"github.com/lbstack/lbstack/test/e2e/lab"
)

// routeWatch follows the router's kernel table (ip monitor route) and
// records when each prefix first had the wanted number of next hops.
type routeWatch struct {
	mu    sync.Mutex
	hops  int
	seen  map[netip.Addr]time.Time
	count map[netip.Addr]int
}

func watchRoutes(b testing.TB, c *lab.Cluster, bird *lab.Bird, hops int) *routeWatch {
	w := &routeWatch{hops: hops, seen: map[netip.Addr]time.Time{}, count: map[netip.Addr]int{}}
	out, err := c.Lab.Stream(bird.NS, "ip", "monitor", "route")
	if err != nil {
		b.Fatal(err)
	}
	go func() {
		s := bufio.NewScanner(out)
		var cur netip.Addr
		var at time.Time
		for s.Scan() {
			line := s.Text()
			now := time.Now()
			if strings.HasPrefix(line, "\t") || strings.HasPrefix(line, " ") {
				if cur.IsValid() && strings.Contains(line, "nexthop") {
					w.add(cur, 1, at)
				}
				continue
			}
			f := strings.Fields(line)
			if len(f) == 0 {
				continue
			}
			if f[0] == "Deleted" && len(f) > 1 {
				if a, err := netip.ParseAddr(strings.Split(f[1], "/")[0]); err == nil {
					w.mu.Lock()
					w.count[a] = 0
					w.mu.Unlock()
				}
				cur = netip.Addr{}
				continue
			}
			a, err := netip.ParseAddr(strings.Split(f[0], "/")[0])
			if err != nil {
				cur = netip.Addr{}
				continue
			}
			cur, at = a, now
			w.mu.Lock()
			w.count[a] = 0
			w.mu.Unlock()
			if strings.Contains(line, " via ") {
				w.add(a, 1, now)
			}
		}
	}()
	return w
}

func (w *routeWatch) add(a netip.Addr, n int, at time.Time) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.count[a] += n
	if _, ok := w.seen[a]; !ok && w.count[a] >= w.hops {
		w.seen[a] = at
	}
}

func (w *routeWatch) when(a netip.Addr) (time.Time, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	t, ok := w.seen[a]
	return t, ok
}

func (w *routeWatch) complete() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.seen)
}

// assigned watches Services and records when each got its address.
func assignedTimes(b testing.TB, c *lab.Cluster) (func(netip.Addr) (time.Time, bool), func() map[client.ObjectKey]netip.Addr) {
	cl, err := client.NewWithWatch(c.Env.Config, client.Options{Scheme: c.Client.Scheme()})
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	b.Cleanup(cancel)
	wi, err := cl.Watch(ctx, &corev1.ServiceList{})
	if err != nil {
		b.Fatal(err)
	}
	var mu sync.Mutex
	times := map[netip.Addr]time.Time{}
	keys := map[client.ObjectKey]netip.Addr{}
	go func() {
		for ev := range wi.ResultChan() {
			if ev.Type != watch.Added && ev.Type != watch.Modified {
				continue
			}
			svc, ok := ev.Object.(*corev1.Service)
			if !ok {
				continue
			}
			now := time.Now()
			for _, in := range svc.Status.LoadBalancer.Ingress {
				if a, err := netip.ParseAddr(in.IP); err == nil {
					mu.Lock()
					if _, seen := times[a]; !seen {
						times[a] = now
						keys[client.ObjectKeyFromObject(svc)] = a
					}
					mu.Unlock()
				}
			}
		}
	}()
	return func(a netip.Addr) (time.Time, bool) {
			mu.Lock()
			defer mu.Unlock()
			t, ok := times[a]
			return t, ok
		}, func() map[client.ObjectKey]netip.Addr {
			mu.Lock()
			defer mu.Unlock()
			out := make(map[client.ObjectKey]netip.Addr, len(keys))
			for k, v := range keys {
				out[k] = v
			}
			return out
		}
}

func rssMB(p *lab.Proc) float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", p.Cmd.Process.Pid))
	if err != nil {
		return -1
	}
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "VmRSS:") {
			var kb float64
			fmt.Sscan(strings.TrimSpace(strings.TrimPrefix(l, "VmRSS:")), &kb)
			return kb / 1024
		}
	}
	return -1
}

// BenchmarkBGP measures, against BIRD 2 in the lab with two speaker nodes:
// announce latency (Service address assigned → route with both next hops
// in the router's kernel table, 30 Services one by one), withdrawal after
// SIGKILL and after SIGSTOP (a frozen node that keeps its TCP session) with
// and without BFD, and 10,000 IPv6 Services (time until the router's
// kernel holds every route with 2 next hops, speaker RSS).
//
//	KUBEBUILDER_ASSETS=$(ls -d $PWD/bin/envtest/k8s-*) go test -run '^$' \
//	    -bench BenchmarkBGP -benchtime=1x ./test/e2e/
func BenchmarkBGP(b *testing.B) {
	for range b.N {
		for _, bfd := range []bool{true, false} {
			b.Run(fmt.Sprintf("bfd=%v", bfd), func(b *testing.B) { bgpBench(b, bfd) })
		}
	}
}

func bgpBench(b *testing.B, bfd bool) {
	c := newCluster(b, 2)
	ctx := tctx(b, 20*time.Minute)
	bird, err := c.Lab.StartRouter(lab.BirdConfig{ASN: labASN, Neighbors: birdNeighbors(c, bfd), BFDInterval: 100})
	if err != nil {
		b.Fatal(err)
	}
	objs := bgpConfig(bfd, false)
	objs = append(objs, &lbv1.IPAddressPool{ObjectMeta: metav1.ObjectMeta{Name: "many"}, Spec: lbv1.IPAddressPoolSpec{Addresses: []lbv1.PoolAddress{"2001:db8:2::/112"}}},
		&lbv1.BGPAdvertisement{ObjectMeta: metav1.ObjectMeta{Name: "many"}, Spec: lbv1.BGPAdvertisementSpec{IPAddressPools: []string{"many"}}})
	if err := c.Apply(ctx, objs...); err != nil {
		b.Fatal(err)
	}
	for _, n := range c.Lab.Nodes {
		if _, err := c.StartSpeaker(n.Name, "--pprof-bind-address=127.0.0.1:7476"); err != nil {
			b.Fatal(err)
		}
	}
	n1, n2 := c.Lab.Nodes[0], c.Lab.Nodes[1]
	routes := watchRoutes(b, c, bird, 2)
	assignedAt, assignedKeys := assignedTimes(b, c)
	// Wait for the sessions.
	err = lab.WaitFor(ctx, 100*time.Millisecond, func() error {
		out, err := bird.Birdc("show protocols")
		if err != nil {
			return err
		}
		if strings.Count(out, "Established") < 4 {
			return fmt.Errorf("sessions: %s", out)
		}
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}

	// Announce latency, one Service at a time.
	var lat []time.Duration
	var first netip.Addr
	for i := range 30 {
		svc := lbService(fmt.Sprintf("lat-%d", i), false, corev1.IPv4Protocol)
		svc.Annotations = map[string]string{lbv1.AnnotationAddressPool: "bgp"}
		if i >= 14 { // the IPv4 pool has 16 addresses
			svc = lbService(fmt.Sprintf("lat-%d", i), false, corev1.IPv6Protocol)
			svc.Annotations = map[string]string{lbv1.AnnotationAddressPool: "bgp"}
		}
		if err := c.Apply(ctx, svc); err != nil {
			b.Fatal(err)
		}
		ips, err := c.ServiceIPs(ctx, client.ObjectKeyFromObject(svc), 1)
		if err != nil {
			b.Fatal(err)
		}
		ip := ips[0]
		if !first.IsValid() {
			first = ip
		}
		var routed, assigned time.Time
		err = lab.WaitFor(tctx(b, 30*time.Second), 5*time.Millisecond, func() error {
			var ok1, ok2 bool
			routed, ok1 = routes.when(ip)
			assigned, ok2 = assignedAt(ip)
			if !ok1 || !ok2 {
				return fmt.Errorf("%s not routed yet", ip)
			}
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
		lat = append(lat, routed.Sub(assigned))
	}
	b.ReportMetric(quantile(lat, 0.5), "announce-ms-p50")
	b.ReportMetric(quantile(lat, 0.99), "announce-ms-p99")
	b.Logf("announce latencies: %v", lat)

	// Withdrawal of a dead node: SIGKILL (TCP closes) and SIGSTOP (it does not).
	prefix := hostPrefix(first)
	for _, sig := range []syscall.Signal{syscall.SIGKILL, syscall.SIGSTOP} {
		p := c.Speakers[n1.Name]
		start := time.Now()
		if err := p.Signal(sig); err != nil {
			b.Fatal(err)
		}
		if err := waitHops(tctx(b, time.Minute), bird, prefix, n2.IPv4); err != nil {
			b.Fatal(err)
		}
		took := time.Since(start)
		b.ReportMetric(float64(took.Microseconds())/1000, fmt.Sprintf("withdraw-%s-ms", map[syscall.Signal]string{syscall.SIGKILL: "sigkill", syscall.SIGSTOP: "sigstop"}[sig]))
		if sig == syscall.SIGSTOP {
			_ = p.Signal(syscall.SIGKILL)
			<-p.Done()
		}
		if _, err := c.StartSpeaker(n1.Name); err != nil {
			b.Fatal(err)
		}
		if err := waitHops(tctx(b, 2*time.Minute), bird, prefix, n1.IPv4, n2.IPv4); err != nil {
			b.Fatal(err)
		}
	}

	if !bfd {
		b.ReportMetric(0, "ns/op")
		return // the scale run once is enough
	}
	// Scale: 10,000 IPv6 Services (LBSTACK_BENCH_SERVICES overrides),
	// created by a client without rate limit.
	many := 10000
	if _, err := fmt.Sscan(envOr("LBSTACK_BENCH_SERVICES", "10000"), &many); err != nil {
		b.Fatal(err)
	}
	fast := rest.CopyConfig(c.Env.Config)
	fast.QPS, fast.Burst = 1000, 2000
	creator, err := client.New(fast, client.Options{Scheme: c.Client.Scheme()})
	if err != nil {
		b.Fatal(err)
	}
	before := routes.complete()
	start := time.Now()
	sem := make(chan struct{}, 16)
	var wg sync.WaitGroup
	for i := range many {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			svc := lbService(fmt.Sprintf("many-%d", i), false, corev1.IPv6Protocol)
			svc.Annotations = map[string]string{lbv1.AnnotationAddressPool: "many"}
			// The API server has 2,768 node ports; these Services need none.
			svc.Spec.AllocateLoadBalancerNodePorts = ptr.To(false)
			if err := creator.Create(ctx, svc); err != nil {
				b.Errorf("creating Service %d: %v", i, err)
			}
		}()
	}
	wg.Wait()
	if b.Failed() {
		b.FailNow()
	}
	created := time.Since(start)
	var allAssigned time.Time
	err = lab.WaitFor(tctx(b, 10*time.Minute), 200*time.Millisecond, func() error {
		if allAssigned.IsZero() && len(assignedKeys()) >= many+30 {
			allAssigned = time.Now()
		}
		if n := routes.complete() - before; n < many {
			return fmt.Errorf("%d of %d routes with 2 next hops", n, many)
		}
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	total := time.Since(start)
	b.ReportMetric(created.Seconds(), "10k-created-s")
	b.ReportMetric(total.Seconds(), "10k-all-routed-s")
	if p := os.Getenv("LBSTACK_BENCH_HEAP"); p != "" {
		// A heap profile of node2's speaker (it runs with pprof on its loopback).
		if out, err := c.Lab.Output(n2.NS, "curl", "-sS", "-o", p, "http://127.0.0.1:7476/debug/pprof/heap"); err != nil {
			b.Logf("heap profile: %v %s", err, out)
		}
	}
	if !allAssigned.IsZero() {
		b.ReportMetric(time.Since(allAssigned).Seconds()-time.Since(start.Add(total)).Seconds(), "10k-routed-after-last-assigned-s")
	}
	b.ReportMetric(rssMB(c.Speakers[n2.Name]), "speaker-rss-MB")
	out, _ := bird.Birdc("show route count")
	b.Logf("BIRD: %s", strings.TrimSpace(out))
	b.ReportMetric(0, "ns/op")
}

// BenchmarkBGPHeal measures, at the router, how long a node's routes take
// to come back after the node's path heals: the node (two in the lab) is
// cut off (bridge port detached) or frozen (SIGSTOP of its speaker) until
// BIRD has withdrawn its route, then healed; the clock runs from the heal
// to BIRD's kernel route having the node as a next hop again. BFD is on
// (100 ms × 3). LBSTACK_BENCH_TRIALS overrides the 20 trials per fault.
//
//	KUBEBUILDER_ASSETS=$(ls -d $PWD/bin/envtest/k8s-*) go test -run '^$' \
//	  -bench BenchmarkBGPHeal -benchtime 1x ./test/e2e/
func BenchmarkBGPHeal(b *testing.B) {
	trials := benchTrials(b)
	for range b.N {
		c := newCluster(b, 2)
		ctx := tctx(b, 20*time.Minute)
		// BIRD takes a BFD Down as a session error and waits its error
		// wait time before it accepts the node again (default 60 s,
		// doubling up to 300 s): 1 s here, so that the figure is
		// lbstack's own.
		bird, err := c.Lab.StartRouter(lab.BirdConfig{ASN: labASN, Neighbors: birdNeighbors(c, true), BFDInterval: 100, ErrorWait: [2]int{1, 1}})
		if err != nil {
			b.Fatal(err)
		}
		if err := c.Apply(ctx, bgpConfig(true, false)...); err != nil {
			b.Fatal(err)
		}
		procs := map[string]*lab.Proc{}
		for _, n := range c.Lab.Nodes {
			p, err := c.StartSpeaker(n.Name)
			if err != nil {
				b.Fatal(err)
			}
			procs[n.Name] = p
		}
		svc := lbService("heal", false, corev1.IPv4Protocol)
		if err := c.Apply(ctx, svc); err != nil {
			b.Fatal(err)
		}
		ips, err := c.ServiceIPs(ctx, client.ObjectKeyFromObject(svc), 1)
		if err != nil {
			b.Fatal(err)
		}
		prefix := hostPrefix(ips[0])
		n1, n2 := c.Lab.Nodes[0], c.Lab.Nodes[1]
		if err := waitHops(tctx(b, time.Minute), bird, prefix, n1.IPv4, n2.IPv4); err != nil {
			b.Fatal(err)
		}
		faults := []struct {
			name        string
			fault, heal func() error
		}{
			{"partition", func() error { return c.Lab.Cut(n1, true) }, func() error { return c.Lab.Cut(n1, false) }},
			{"freeze", func() error { return procs[n1.Name].Signal(syscall.SIGSTOP) }, func() error { return procs[n1.Name].Signal(syscall.SIGCONT) }},
		}
		for _, f := range faults {
			var back []time.Duration
			for range trials {
				if err := f.fault(); err != nil {
					b.Fatal(err)
				}
				if err := waitHops(tctx(b, 30*time.Second), bird, prefix, n2.IPv4); err != nil {
					b.Fatalf("%s: the route was not withdrawn: %v", f.name, err)
				}
				// Let both ends finish tearing the session down.
				time.Sleep(2 * time.Second)
				if err := f.heal(); err != nil {
					b.Fatal(err)
				}
				healed := time.Now()
				if err := waitHops(tctx(b, time.Minute), bird, prefix, n1.IPv4, n2.IPv4); err != nil {
					b.Fatalf("%s: the route did not come back: %v", f.name, err)
				}
				back = append(back, time.Since(healed))
				// The next fault starts from settled sessions.
				time.Sleep(time.Second)
			}
			b.Logf("%s: routes back after %v", f.name, back)
			b.ReportMetric(quantile(back, 0.5)/1000, f.name+"-p50-s")
			b.ReportMetric(quantile(back, 0.99)/1000, f.name+"-p99-s")
		}
	}
}
