package membership

import (
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"
	"time"
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
// grows: N members on 127.0.0.1, encrypted, spread over child processes
// (this test binary run again, LBSTACK_BENCH_PER_PROC members each, default
// 50, with GOMAXPROCS=1 unless GOMAXPROCS is set) so that no single Go
// process has to carry hundreds of memberlists.
// Each member watches at most LBSTACK_BENCH_WATCH peers (MaxPeers, default
// 8: the owner/runner-up pairs of a node's groups; 64 is the speaker's
// bound). It reports per node what it sends (UDP packets and bytes per
// second: heartbeats, memberlist's probes and gossip) and the CPU it uses
// (the children's CPU time divided among the members), over
// LBSTACK_BENCH_WINDOW (default 10s) with all members healthy; how many
// members were declared dead by heartbeat in that window (false deaths);
// then the detection time of LBSTACK_BENCH_CRASHES crashes (default 10, at
// most N/2, one at a time: from the crash until every member that watched
// the crashed one dropped it) as p50, p99 and max, and how many other
// members were declared dead meanwhile. LBSTACK_BENCH_MEMBERS lists the
// sizes (default 10,50,100,250). All members share this machine's cores:
// at large sizes the machine, not the protocol, may be what runs out.
//
//	go test -run '^$' -bench BenchmarkMembershipScale -benchtime 1x ./speaker/membership/
func BenchmarkMembershipScale(b *testing.B) {
	sizes := []int{10, 50, 100, 250}
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
	envInt := func(name string, def int) int {
		v := def
		if s := os.Getenv(name); s != "" {
			if _, err := fmt.Sscan(s, &v); err != nil || v < 1 {
				b.Fatalf("%s: %q", name, s)
			}
		}
		return v
	}
	watch := envInt("LBSTACK_BENCH_WATCH", 8)
	perProc := envInt("LBSTACK_BENCH_PER_PROC", 50)
	crashes := envInt("LBSTACK_BENCH_CRASHES", 10)
	window := 10 * time.Second
	if s := os.Getenv("LBSTACK_BENCH_WINDOW"); s != "" {
		var err error
		if window, err = time.ParseDuration(s); err != nil || window <= 0 {
			b.Fatalf("LBSTACK_BENCH_WINDOW: %q", s)
		}
	}
	for _, n := range sizes {
		b.Run(fmt.Sprintf("members-%d-watch-%d", n, watch), func(b *testing.B) {
			for range b.N {
				benchmarkScale(b, n, watch, perProc, min(crashes, n/2), window)
			}
			b.ReportMetric(0, "ns/op")
		})
	}
}

func benchmarkScale(b *testing.B, n, watch, perProc, crashes int, window time.Duration) {
	// Start the children; each reports its members' addresses.
	var procs []*scaleProc
	for first := 0; first < n; first += perProc {
		procs = append(procs, startScaleProc(b, first, min(perProc, n-first), watch))
	}
	addrs := make([]string, n)
	procOf := make(map[string]*scaleProc, n)
	for _, p := range procs {
		e := p.wait(b, "started", time.Minute)
		for i := p.first; i < p.first+p.count; i++ {
			addrs[i] = e.Addrs[scaleName(i)]
			procOf[scaleName(i)] = p
		}
	}

	// The first child's members join its first member; then each child in
	// turn joins the members of the children before it, once these see
	// each other: a member joining through a seed that does not yet know
	// every member would learn of the missing ones only at memberlist's
	// next periodic push/pull (every 30 s or more).
	var status []scaleEvent
	formed := func(procs []*scaleProc, n int) bool {
		status = askAll(b, procs, scaleCommand{Op: "status"}, "status", time.Minute)
		for _, s := range status {
			if s.MinLive != n || s.Unheard > 0 {
				return false
			}
		}
		return true
	}
	start := time.Now()
	progress := func(format string, args ...any) {
		if os.Getenv("LBSTACK_BENCH_DEBUG") != "" {
			fmt.Fprintf(os.Stderr, "%d members, %.1fs: %s\n", n, time.Since(start).Seconds(), fmt.Sprintf(format, args...))
		}
	}
	summary := func(status []scaleEvent) string {
		var sb strings.Builder
		for _, s := range status {
			fmt.Fprintf(&sb, " %d/%d", s.MinLive, s.Unheard)
			if s.MinLive != n {
				fmt.Fprintf(&sb, " (%s)", s.Err)
			}
		}
		return "fewest live/members not hearing a watched peer, per helper:" + sb.String()
	}
	for i, p := range procs {
		seeds := addrs[:1]
		if i > 0 {
			seeds = addrs[:p.first]
		}
		p.send(b, scaleCommand{Op: "join", Seeds: seeds})
		// A member that could not join (the helper says which) is caught
		// up by the sync below.
		failed := p.wait(b, "joined", 10*time.Minute).Failed
		for step, synced := time.Now(), false; !formed(procs[:i+1], p.first+p.count); {
			if time.Since(step) > 5*time.Second {
				if synced {
					break // the sync below catches up
				}
				// Exchange state with a member of the first child.
				askAll(b, procs[:i+1], scaleCommand{Op: "sync", Seeds: addrs[:procs[0].count]}, "synced", 10*time.Minute)
				step, synced = time.Now(), true
			}
			time.Sleep(250 * time.Millisecond)
		}
		progress("members 0 to %d joined (%d failed to join): %s", p.first+p.count-1, failed, summary(status))
	}
	for last := time.Now(); !formed(procs, n); {
		if time.Since(start) > 5*time.Minute {
			b.Fatalf("Timed out waiting for every member to see every other and hear its watched peers: %s", summary(status))
		}
		if time.Since(last) > 10*time.Second {
			// Exchange state with a member of the first child.
			progress("not formed, pushing/pulling with the first members: %s", summary(status))
			askAll(b, procs, scaleCommand{Op: "sync", Seeds: addrs[:procs[0].count]}, "synced", 10*time.Minute)
			last = time.Now()
		}
		time.Sleep(250 * time.Millisecond)
	}
	progress("formed")
	b.ReportMetric(time.Since(start).Seconds(), "form-s")
	time.Sleep(3 * time.Second) // joins and push/pulls settle

	type sample struct {
		packets, bytes, dead uint64
		cpu                  time.Duration
	}
	measure := func() sample {
		var s sample
		for _, e := range askAll(b, procs, scaleCommand{Op: "sample"}, "sample", time.Minute) {
			s.packets += e.Packets
			s.bytes += e.Bytes
			s.dead += e.Dead
			s.cpu += time.Duration(e.CPU)
		}
		return s
	}
	before := measure()
	t0 := time.Now()
	time.Sleep(window)
	after := measure()
	secs := time.Since(t0).Seconds()
	perNode := func(v float64) float64 { return v / float64(n) / secs }
	b.ReportMetric(float64(len(procs)), "procs")
	b.ReportMetric(perNode(float64(after.packets-before.packets)), "pkts/s/node")
	b.ReportMetric(perNode(float64(after.bytes-before.bytes)), "bytes/s/node")
	b.ReportMetric(perNode(float64(after.cpu-before.cpu)/float64(time.Millisecond)), "cpu-ms/s/node")
	b.ReportMetric(float64(after.dead-before.dead), "false-deaths")
	progress("healthy for %.1fs: %.1f packets/s, %.0f bytes/s, %.2f ms CPU/s per node, %d declared dead", secs,
		perNode(float64(after.packets-before.packets)), perNode(float64(after.bytes-before.bytes)),
		perNode(float64(after.cpu-before.cpu)/float64(time.Millisecond)), after.dead-before.dead)

	// Crash members one at a time, spread over the children, and time
	// until every member that watched the crashed one has dropped it.
	var took []time.Duration
	expected := uint64(0) // deaths declared by the crashed members' watchers
	deadBefore := measure().dead
	for i := range crashes {
		victim := scaleName(n - 1 - i*(n/crashes))
		var watching []*scaleProc
		for _, p := range procs {
			p.send(b, scaleCommand{Op: "watch", Victim: victim})
		}
		for _, p := range procs {
			if p.wait(b, "watching", time.Minute).Watchers > 0 {
				watching = append(watching, p)
			}
		}
		if len(watching) == 0 {
			b.Fatalf("no member watches %s", victim)
		}
		vp := procOf[victim]
		vp.send(b, scaleCommand{Op: "crash", Victim: victim})
		c := vp.wait(b, "crashed", time.Minute)
		if c.Err != "" {
			b.Fatalf("crashing %s: %s", victim, c.Err)
		}
		var last int64
		for _, p := range watching {
			e := p.wait(b, "dropped", 2*time.Minute)
			if e.TimedOut {
				b.Fatalf("%d members watching %s did not drop it within a minute", e.Watchers, victim)
			}
			last = max(last, slices.Max(e.Times))
			expected += uint64(e.ByHeartbeat)
		}
		took = append(took, time.Duration(last-c.At))
		progress("crash %d (%s): dropped by its watchers after %s", i+1, victim, took[len(took)-1])
		time.Sleep(500 * time.Millisecond)
	}
	slices.Sort(took)
	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	b.ReportMetric(ms(took[len(took)/2]), "detect-p50-ms")
	b.ReportMetric(ms(took[(len(took)*99)/100]), "detect-p99-ms")
	b.ReportMetric(ms(took[len(took)-1]), "detect-max-ms")
	b.ReportMetric(float64(int64(measure().dead-deadBefore)-int64(expected)), "false-deaths-crashing")
}
