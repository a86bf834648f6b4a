package membership

import (
	"fmt"
	"slices"
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
