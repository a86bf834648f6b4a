package membership

import (
	"fmt"
	"os"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/go-logr/logr"
)

// BenchmarkFailover measures how long after a node crashes (its heartbeats
// stop, memberlist shuts down without a leave) every other member has
// dropped it from Live. Each iteration adds a node to a 3-node cluster,
// waits until it is watched, and crashes it. Run with -benchtime=20x or more.
func BenchmarkFailover(b *testing.B) {
	benchmarkDrop(b, func(n *testNode) { n.crash() })
}

// BenchmarkLeave measures the same for a graceful stop (goodbye, leave).
func BenchmarkLeave(b *testing.B) {
	benchmarkDrop(b, func(n *testNode) { n.stop() })
}

func benchmarkDrop(b *testing.B, stop func(*testNode)) {
	cluster := startCluster(b, testKey, "a", "b", "c")
	var took []time.Duration
	for i := 0; b.Loop(); i++ {
		b.StopTimer()
		x := startNode(b, fmt.Sprintf("x-%d", i), testKey, nil)
		// Like the speaker, join every node.
		if _, err := x.m.Join([]string{cluster[0].addr(), cluster[1].addr(), cluster[2].addr()}); err != nil {
			b.Fatal(err)
		}
		waitClusterFormed(b, append(slices.Clone(cluster), x))
		b.StartTimer()

		stopped := make(chan struct{})
		go func() {
			defer close(stopped)
			stop(x)
		}()
		took = append(took, waitFor(b, 10*time.Second, "all drop the stopped node", func() bool {
			for _, n := range cluster {
				if n.sees(x.name) {
					return false
				}
			}
			return true
		}))
		<-stopped
	}
	slices.Sort(took)
	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	b.ReportMetric(ms(took[len(took)/2]), "p50-ms")
	b.ReportMetric(ms(took[(len(took)*99)/100]), "p99-ms")
	b.ReportMetric(ms(took[len(took)-1]), "max-ms")
}

// BenchmarkMembershipScale measures what membership costs as the cluster
// grows: N members on 127.0.0.1, all in this process and encrypted, each
// watching the default set (every member, at most MaxPeers = 64). It
// reports per node what it sends (UDP packets and bytes per second:
// heartbeats, memberlist's probes and gossip), the CPU it uses (the
// process's CPU time divided among the members), how many members were
// falsely declared dead while all were healthy, and the detection time of a
// crash (until every member that watched the crashed one dropped it; the
// worst of 5 crashes). Each member watches at most LBSTACK_BENCH_WATCH peers
// (MaxPeers, default 8: the owner/runner-up pairs of a node's groups; 64 is
// the speaker's bound). LBSTACK_BENCH_MEMBERS lists the sizes (default
// 10,50,250). All members share this machine's cores: at large sizes the
// machine, not the protocol, is what runs out.
//
//	go test -run '^$' -bench BenchmarkMembershipScale -benchtime 1x ./speaker/membership/
func BenchmarkMembershipScale(b *testing.B) {
	sizes := []int{10, 50, 250}
	if s := os.Getenv("LBSTACK_BENCH_MEMBERS"); s != "" {
		sizes = nil
		for _, f := range strings.Split(s, ",") {
			var n int
			if _, err := fmt.Sscan(f, &n); err != nil || n < 2 {
				b.Fatalf("LBSTACK_BENCH_MEMBERS: %q", s)
			}
			sizes = append(sizes, n)
		}
	}
	watch := 8
	if s := os.Getenv("LBSTACK_BENCH_WATCH"); s != "" {
		if _, err := fmt.Sscan(s, &watch); err != nil || watch < 1 {
			b.Fatalf("LBSTACK_BENCH_WATCH: %q", s)
		}
	}
	for _, n := range sizes {
		b.Run(fmt.Sprintf("members-%d-watch-%d", n, watch), func(b *testing.B) {
			for range b.N {
				benchmarkScale(b, n, watch)
			}
			b.ReportMetric(0, "ns/op")
		})
	}
}

func benchmarkScale(b *testing.B, n, watch int) {
	quiet := func(c *Config) { c.Log = logr.Discard(); c.MaxPeers = watch }
	nodes := make([]*testNode, n)
	for i := range nodes {
		nodes[i] = startNode(b, fmt.Sprintf("m-%03d", i), testKey, quiet)
	}
	for i, x := range nodes[1:] {
		// Join an earlier member (not always the first: it would carry
		// every push/pull), retrying a loaded one.
		var err error
		for try := range 5 {
			if _, err = x.m.Join([]string{nodes[(i*7+try)%(i+1)].addr()}); err == nil {
				break
			}
		}
		if err != nil {
			b.Fatal(err)
		}
	}
	waitFor(b, 3*time.Minute, "every member sees every other", func() bool {
		for _, x := range nodes {
			if len(x.m.Live()) != n {
				return false
			}
		}
		return true
	})
	time.Sleep(3 * time.Second) // joins and push/pulls settle

	type sample struct {
		packets, bytes uint64
		cpu            time.Duration
	}
	measure := func() sample {
		var s sample
		for _, x := range nodes {
			p, by, _ := x.m.Traffic()
			s.packets += p
			s.bytes += by
		}
		var ru syscall.Rusage
		_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
		s.cpu = time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
		return s
	}
	deadBefore := 0
	for _, x := range nodes {
		deadBefore += falseDeaths(x)
	}
	window := 10 * time.Second
	before := measure()
	time.Sleep(window)
	after := measure()
	falsely := -deadBefore
	for _, x := range nodes {
		falsely += falseDeaths(x)
	}
	perNode := func(v float64) float64 { return v / float64(n) / window.Seconds() }
	b.ReportMetric(perNode(float64(after.packets-before.packets)), "pkts/s/node")
	b.ReportMetric(perNode(float64(after.bytes-before.bytes)), "bytes/s/node")
	b.ReportMetric(perNode(float64((after.cpu - before.cpu).Milliseconds())), "cpu-ms/s/node")
	b.ReportMetric(float64(falsely), "false-deaths-10s")

	var worst time.Duration
	for i := range 5 {
		x := nodes[n-1-i]
		var watchers []*testNode
		for _, w := range nodes[:n-1-i] {
			w.m.mu.Lock()
			if w.m.eligible[x.name] {
				watchers = append(watchers, w)
			}
			w.m.mu.Unlock()
		}
		x.crash()
		took := waitFor(b, time.Minute, "the watchers drop the crashed member", func() bool {
			for _, w := range watchers {
				if w.sees(x.name) {
					return false
				}
			}
			return true
		})
		worst = max(worst, took)
	}
	b.ReportMetric(float64(worst.Milliseconds()), "detection-max-ms")
}

// falseDeaths counts the members x has declared dead by heartbeat so far.
func falseDeaths(x *testNode) int { return int(x.m.declaredDead.Load()) }
