package e2e

import (
	"bufio"
	"context"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/lbstack/lbstack/test/e2e/lab"
)

// neighWatch follows the client's neighbour table (ip monitor) and reports
// each change of the MAC for one address, with when it was read.
type neighWatch struct {
	changes chan neighChange
}

type neighChange struct {
	mac string
	at  time.Time
}

var lladdr = regexp.MustCompile(`lladdr ([0-9a-f:]{17})`)

func watchNeigh(b testing.TB, c *lab.Cluster, ip netip.Addr) *neighWatch {
	out, err := c.Lab.Stream(c.Lab.Client, "ip", "monitor", "neigh", "dev", "eth0")
	if err != nil {
		b.Fatal(err)
	}
	w := &neighWatch{changes: make(chan neighChange, 1024)}
	go func() {
		s := bufio.NewScanner(out)
		prefix := ip.String() + " "
		for s.Scan() {
			line := s.Text()
			if !strings.HasPrefix(line, prefix) {
				continue
			}
			if m := lladdr.FindStringSubmatch(line); m != nil {
				w.changes <- neighChange{mac: m[1], at: time.Now()}
			}
		}
	}()
	return w
}

// next returns the first change to a MAC other than old, or fails after
// timeout.
func (w *neighWatch) next(old string, timeout time.Duration) (neighChange, error) {
	deadline := time.After(timeout)
	for {
		select {
		case ch := <-w.changes:
			if ch.mac != old {
				return ch, nil
			}
		case <-deadline:
			return neighChange{}, fmt.Errorf("no neighbour change away from %s within %s", old, timeout)
		}
	}
}

func (w *neighWatch) drain() {
	for {
		select {
		case <-w.changes:
		default:
			return
		}
	}
}

// settle waits until the client's entry for ip is the ServiceAnnouncement's
// node and has not changed for quiet, and returns that node.
func settle(b testing.TB, c *lab.Cluster, key client.ObjectKey, ip netip.Addr, w *neighWatch, quiet time.Duration) *lab.Node {
	b.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var n *lab.Node
	err := lab.WaitFor(ctx, 100*time.Millisecond, func() error {
		if _, err := c.Curl(ip); err != nil {
			return err
		}
		st, err := c.Announcement(ctx, key)
		if err != nil || len(st.Nodes) != 1 {
			return fmt.Errorf("announcement %v %v", st, err)
		}
		mac, err := c.NeighMAC(ip)
		if err != nil {
			return err
		}
		n = c.Lab.Node(st.Nodes[0].Node)
		if n == nil || mac != n.MAC {
			return fmt.Errorf("neighbour %s, announced by %s", mac, st.Nodes[0].Node)
		}
		w.drain()
		select {
		case ch := <-w.changes:
			return fmt.Errorf("changed to %s while settling", ch.mac)
		case <-time.After(quiet):
			return nil
		}
	})
	if err != nil {
		b.Fatal(err)
	}
	return n
}

// failoverTrials kills (or stops) the owner's speaker trials times and
// returns, per trial, the time from the signal until the client's
// neighbour entry pointed at another node.
func failoverTrials(b *testing.B, c *lab.Cluster, key client.ObjectKey, ip netip.Addr, w *neighWatch, sig syscall.Signal, trials int, speakerArgs []string) []time.Duration {
	var out []time.Duration
	for range trials {
		old := settle(b, c, key, ip, w, time.Second)
		w.drain()
		p := c.Speakers[old.Name]
		start := time.Now()
		if err := p.Signal(sig); err != nil {
			b.Fatal(err)
		}
		ch, err := w.next(old.MAC, 20*time.Second)
		if err != nil {
			b.Fatal(err)
		}
		out = append(out, ch.at.Sub(start))
		<-p.Done()
		if _, err := c.StartSpeaker(old.Name, speakerArgs...); err != nil {
			b.Fatal(err)
		}
	}
	return out
}

func quantile(d []time.Duration, q float64) float64 {
	s := slices.Clone(d)
	slices.Sort(s)
	i := int(q*float64(len(s))+0.999999) - 1
	i = max(0, min(i, len(s)-1))
	return float64(s[i].Microseconds()) / 1000
}

// BenchmarkL2Failover measures, in the lab, the time from SIGKILL (and
// SIGTERM) of the owner's speaker until the client's neighbour entry for
// the Service IP points at the new owner; and counts handovers among idle
// nodes under full CPU load. LBSTACK_BENCH_TRIALS overrides the 20 trials.
//
//	KUBEBUILDER_ASSETS=$(ls -d $PWD/bin/envtest/k8s-*) go test -run '^$' \
//	    -bench BenchmarkL2Failover -benchtime=1x ./test/e2e/
func BenchmarkL2Failover(b *testing.B) {
	for _, tc := range l2Settings {
		b.Run(tc.name, func(b *testing.B) {
			c := newCluster(b, 3)
			ctx := tctx(b, 10*time.Minute)
			if err := c.Apply(ctx, lab.L2Config("bench", "192.0.2.240-192.0.2.249")...); err != nil {
				b.Fatal(err)
			}
			for _, n := range c.Lab.Nodes {
				if _, err := c.StartSpeaker(n.Name, tc.args...); err != nil {
					b.Fatal(err)
				}
			}
			svc := lbService("bench", false, corev1.IPv4Protocol)
			if err := c.Apply(ctx, svc); err != nil {
				b.Fatal(err)
			}
			key := client.ObjectKeyFromObject(svc)
			ips, err := c.ServiceIPs(ctx, key, 1)
			if err != nil {
				b.Fatal(err)
			}
			ip := ips[0]
			if err := c.Lab.AddAddress(ip); err != nil {
				b.Fatal(err)
			}
			w := watchNeigh(b, c, ip)
			trials := benchTrials(b)
			for range b.N {
				kill := failoverTrials(b, c, key, ip, w, syscall.SIGKILL, trials, tc.args)
				term := failoverTrials(b, c, key, ip, w, syscall.SIGTERM, trials, tc.args)
				b.ReportMetric(quantile(kill, 0.5), "kill-ms-p50")
				b.ReportMetric(quantile(kill, 0.99), "kill-ms-p99")
				b.ReportMetric(quantile(term, 0.5), "term-ms-p50")
				b.ReportMetric(quantile(term, 0.99), "term-ms-p99")
				b.Logf("SIGKILL: %v", kill)
				b.Logf("SIGTERM: %v", term)
				b.ReportMetric(float64(falseHandovers(b, c, key, ip, w, 30*time.Second)), "false-handovers-30s-loaded")
			}
			b.ReportMetric(0, "ns/op")
		})
	}
}

// falseHandovers loads every core with busy loops for d while all nodes
// are healthy and counts the neighbour changes the client sees.
func falseHandovers(b *testing.B, c *lab.Cluster, key client.ObjectKey, ip netip.Addr, w *neighWatch, d time.Duration) int {
	cur := settle(b, c, key, ip, w, time.Second).MAC
	w.drain()
	var burners []*exec.Cmd
	for range 4 {
		cmd := exec.Command("sh", "-c", "while :; do :; done")
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		if err := cmd.Start(); err != nil {
			b.Fatal(err)
		}
		burners = append(burners, cmd)
	}
	time.Sleep(d)
	for _, cmd := range burners {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		_ = cmd.Wait()
	}
	n := 0
	for {
		select {
		case ch := <-w.changes:
			if ch.mac != cur {
				n++
				cur = ch.mac
			}
		default:
			return n
		}
	}
}

// l2Settings are the failure-detection settings the layer-2 benchmarks
// compare: the default and the aggressive one.
var l2Settings = []struct {
	name string
	args []string
}{
	{"default-100msx4", nil},
	{"aggressive-100msx3", []string{"--missed-heartbeats=3"}},
}

// benchTrials is the number of trials per fault: LBSTACK_BENCH_TRIALS, or 20.
func benchTrials(b *testing.B) int {
	trials := 20
	if n, err := fmt.Sscan(envOr("LBSTACK_BENCH_TRIALS", "20"), &trials); n != 1 || err != nil || trials < 1 {
		b.Fatal("LBSTACK_BENCH_TRIALS must be a positive number")
	}
	return trials
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}
