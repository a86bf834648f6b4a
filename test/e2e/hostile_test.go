package e2e

import (
	"bufio"
	"encoding/json"
	"fmt"
	"math"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	lbv1 "github.com/lbstack/lbstack/api/v1alpha1"
	"github.com/lbstack/lbstack/internal/testenv"
	"github.com/lbstack/lbstack/test/e2e/lab"
)

// Bounds of the hostile-input run: every kind sends hostileCount packets
// (connections for memberlist-tcp) at hostileRate per second.
const (
	hostileRate  = 400
	hostileCount = 4000
	// maxHostileEvents bounds the events the flood may cause: conflict
	// reports for 4 spoofed MACs per address (2 addresses), the
	// undecryptable-traffic report per speaker, with room to spare.
	maxHostileEvents = 20
	// maxHostileLogLines bounds what a speaker logs during the flood: a
	// line per kind of complaint per 10 s, not one per packet.
	maxHostileLogLines = 100
	// maxHostileCPU bounds a speaker's CPU use during the flood, in cores.
	maxHostileCPU = 0.75
)

// TestHostileInput: an on-link attacker in the client namespace sends the
// speakers malformed and forged ARP, NDP, BFD and memberlist traffic
// (test/e2e/lab/hostile, 7 kinds × 4000 packets at 400/s each, all at
// once). Judged from outside: no speaker exits; the layer-2 owner, the
// router's ECMP next hops, the BFD sessions and the membership never
// change; a handful of events and log lines at most; each speaker's CPU
// stays bounded;
// and the speakers' counters show what they dropped.
func TestHostileInput(t *testing.T) {
	c := newCluster(t, 2)
	ctx := tctx(t, 5*time.Minute)
	bird, err := c.Lab.StartRouter(lab.BirdConfig{ASN: labASN, Neighbors: birdNeighbors(c, true), BFDInterval: 100})
	if err != nil {
		testenv.Skip(t, "BIRD: %v", err)
	}
	objs := append(bgpConfig(true, false), lab.L2Config("lab", "192.0.2.200-192.0.2.209", "2001:db8::200-2001:db8::209")...)
	if err := c.Apply(ctx, objs...); err != nil {
		t.Fatal(err)
	}
	for _, n := range c.Lab.Nodes {
		if _, err := c.StartSpeaker(n.Name, "--metrics-bind-address=127.0.0.1:7474", "--metrics-secure=false"); err != nil {
			t.Fatal(err)
		}
	}
	l2 := lbService("web", false, corev1.IPv4Protocol, corev1.IPv6Protocol)
	l2.Annotations = map[string]string{lbv1.AnnotationAddressPool: "lab"}
	routed := lbService("routed", false, corev1.IPv4Protocol)
	routed.Annotations = map[string]string{lbv1.AnnotationAddressPool: "bgp"}
	if err := c.Apply(ctx, l2, routed); err != nil {
		t.Fatal(err)
	}
	v4, v6, err := c.ServiceIPsOnNodes(ctx, client.ObjectKeyFromObject(l2), 2)
	if err != nil {
		t.Fatal(err)
	}
	st, err := c.WaitAnnounced(ctx, client.ObjectKeyFromObject(l2), func(string) bool { return true })
	if err != nil {
		t.Fatal(err)
	}
	first := c.Lab.Node(st.Nodes[0].Node)
	routedIPs, err := c.ServiceIPs(ctx, client.ObjectKeyFromObject(routed), 1)
	if err != nil {
		t.Fatal(err)
	}
	var hops []netip.Addr
	for _, n := range c.Lab.Nodes {
		hops = append(hops, n.IPv4)
	}
	if err := waitHops(tctx(t, time.Minute), bird, hostPrefix(routedIPs[0]), hops...); err != nil {
		t.Fatal(err)
	}
	before := map[string]string{}
	if err := lab.WaitFor(tctx(t, time.Minute), 200*time.Millisecond, func() error {
		for _, n := range c.Lab.Nodes {
			m, err := c.Lab.Output(n.NS, "curl", "-sS", "http://127.0.0.1:7474/metrics")
			if err != nil {
				return err
			}
			if sumMetric(m, "lbstack_speaker_bfd_session_up", `peer="router4"`) != 1 || sumMetric(m, "lbstack_speaker_members", "") != 2 {
				return fmt.Errorf("%s: BFD with router4 not Up, or not 2 members yet", n.Name)
			}
			before[n.Name] = m
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	// The owner of the address also announces it afresh on each start;
	// let the announcements of the start settle before counting.
	time.Sleep(2 * time.Second)
	for _, n := range c.Lab.Nodes {
		m, err := c.Lab.Output(n.NS, "curl", "-sS", "http://127.0.0.1:7474/metrics")
		if err != nil {
			t.Fatal(err)
		}
		before[n.Name] = m
	}
	cpuBefore := map[string]float64{}
	for _, n := range c.Lab.Nodes {
		cpuBefore[n.Name] = cpuSeconds(t, c.Speakers[n.Name])
	}
	eventsBefore := listEvents(t, c)
	logBefore := map[string]int{}
	for _, n := range c.Lab.Nodes {
		logBefore[n.Name] = logLines(t, c.Speakers[n.Name])
	}

	bin := filepath.Join(t.TempDir(), "hostile")
	build := exec.Command("go", "build", "-o", bin, "./test/e2e/lab/hostile")
	build.Dir = testenv.RepoRoot()
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building hostile: %v\n%s", err, out)
	}
	var targets, mlTargets []string
	for _, n := range c.Lab.Nodes {
		targets = append(targets, n.IPv4.String(), n.IPv6.String())
		mlTargets = append(mlTargets, n.IPv4.String()) // memberlist binds the node's IPv4 address
	}
	start := time.Now()
	out, err := c.Lab.Output(c.Lab.Client, bin, "-iface", "eth0", "-src4", lab.ClientIPv4.String(), "-src6", lab.ClientIPv6.String(),
		"-vip4", v4.String(), "-vip6", v6.String(), "-targets", strings.Join(targets, ","), "-memberlist-targets", strings.Join(mlTargets, ","),
		"-rate", strconv.Itoa(hostileRate), "-count", strconv.Itoa(hostileCount))
	elapsed := time.Since(start)
	if err != nil {
		t.Fatalf("hostile: %v", err)
	}
	sc := bufio.NewScanner(strings.NewReader(out))
	kinds := 0
	for sc.Scan() {
		var r struct {
			Kind       string
			Sent       int
			Errors     int
			FirstError string
		}
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatalf("hostile printed %q: %v", sc.Text(), err)
		}
		kinds++
		t.Logf("%-15s sent %d, %d errors %s", r.Kind, r.Sent, r.Errors, r.FirstError)
		// A TCP connection may be refused while memberlist's backlog is
		// full; every other packet must have left.
		if r.Sent < hostileCount*9/10 || (r.Kind != "memberlist-tcp" && r.Errors > 0) {
			t.Errorf("%s: sent %d of %d (%d errors: %s): the flood did not happen as meant", r.Kind, r.Sent, hostileCount, r.Errors, r.FirstError)
		}
	}
	if kinds != 7 {
		t.Fatalf("hostile reported %d kinds, want 7:\n%s", kinds, out)
	}
	t.Logf("flood of %d packets took %s", 7*hostileCount, elapsed.Round(time.Millisecond))
	cpu := map[string]float64{}
	for _, n := range c.Lab.Nodes {
		cpu[n.Name] = (cpuSeconds(t, c.Speakers[n.Name]) - cpuBefore[n.Name]) / elapsed.Seconds()
	}
	// Let the last packets be counted and any late reaction show.
	time.Sleep(2 * time.Second)

	t.Run("every speaker runs", func(t *testing.T) {
		for _, n := range c.Lab.Nodes {
			if p := c.Speakers[n.Name]; !p.Running() {
				t.Errorf("speaker of %s exited:\n%s", n.Name, p.Tail(3000))
			}
		}
	})

	t.Run("no handover, no flap, membership whole", func(t *testing.T) {
		for _, n := range c.Lab.Nodes {
			m, err := c.Lab.Output(n.NS, "curl", "-sS", "http://127.0.0.1:7474/metrics")
			if err != nil {
				t.Fatal(err)
			}
			for _, tc := range []struct{ name, labels string }{
				{"lbstack_speaker_l2_handovers_total", ""},
				{"lbstack_speaker_bfd_transitions_total", ""},
			} {
				if d := sumMetric(m, tc.name, tc.labels) - sumMetric(before[n.Name], tc.name, tc.labels); d != 0 {
					t.Errorf("%s: %s grew by %v during the flood", n.Name, tc.name, d)
				}
			}
			if got := sumMetric(m, "lbstack_speaker_members", ""); got != 2 {
				t.Errorf("%s: %v members after the flood, want 2", n.Name, got)
			}
		}
		now, err := c.Announcement(ctx, client.ObjectKeyFromObject(l2))
		if err != nil {
			t.Fatal(err)
		}
		if len(now.Nodes) != 1 || now.Nodes[0].Node != first.Name || (now.LastMove != nil && !equalMove(st.LastMove, now.LastMove)) {
			t.Errorf("announcement changed during the flood: before %+v, after %+v", st, now)
		}
		if got := owner(t, c, v4); got != first {
			t.Errorf("ARP for %s answered by %v, want %s", v4, got, first.Name)
		}
		if got := owner(t, c, v6); got != first {
			t.Errorf("NDP for %s resolved to %v, want %s", v6, got, first.Name)
		}
		if body, err := c.Curl(v4); err != nil || body != first.Name {
			t.Errorf("curl %s after the flood: %q, %v", v4, body, err)
		}
		if err := waitHops(tctx(t, 5*time.Second), bird, hostPrefix(routedIPs[0]), hops...); err != nil {
			t.Error(err)
		}
	})

	t.Run("the counters show the drops", func(t *testing.T) {
		grew := func(node, name, labels string) float64 {
			m, err := c.Lab.Output(c.Lab.Node(node).NS, "curl", "-sS", "http://127.0.0.1:7474/metrics")
			if err != nil {
				t.Fatal(err)
			}
			return sumMetric(m, name, labels) - sumMetric(before[node], name, labels)
		}
		for _, n := range c.Lab.Nodes {
			for _, tc := range []struct{ name, labels string }{
				{"lbstack_speaker_l2_malformed_packets_total", `protocol="arp"`},
				{"lbstack_speaker_bfd_packets_dropped_total", `reason="malformed"`},
				{"lbstack_speaker_bfd_packets_dropped_total", `reason="bad_ttl"`},
				{"lbstack_speaker_bfd_packets_dropped_total", `reason="no_session"`},
				{"lbstack_speaker_membership_undecryptable_total", ""},
			} {
				d := grew(n.Name, tc.name, tc.labels)
				t.Logf("%s: %s{%s} +%v", n.Name, tc.name, tc.labels, d)
				if d <= 0 {
					t.Errorf("%s: %s{%s} did not grow: the drops are not counted", n.Name, tc.name, tc.labels)
				}
			}
		}
		// Only the owner listens to the address's solicited-node group: it
		// saw the malformed solicitations, and the conflict storm, of which
		// it reported only a few MACs.
		if d := grew(first.Name, "lbstack_speaker_l2_malformed_packets_total", `protocol="ndp"`); d <= 0 {
			t.Errorf("%s: malformed Neighbor Solicitations not counted", first.Name)
		}
		if d := grew(first.Name, "lbstack_speaker_l2_conflicts_suppressed_total", ""); d <= 0 {
			t.Errorf("%s: no conflict suppressed under a storm of spoofed MACs", first.Name)
		}
	})

	t.Run("few events", func(t *testing.T) {
		var fresh []string
		n := int32(0)
		for uid, e := range listEvents(t, c) {
			if d := e.count - eventsBefore[uid].count; d > 0 {
				n += d
				fresh = append(fresh, fmt.Sprintf("%s (×%d)", e.desc, d))
			}
		}
		t.Logf("%d events during the flood: %v", n, fresh)
		if n > maxHostileEvents {
			t.Errorf("%d events during the flood, want at most %d", n, maxHostileEvents)
		}
	})

	t.Run("few log lines", func(t *testing.T) {
		for _, n := range c.Lab.Nodes {
			d := logLines(t, c.Speakers[n.Name]) - logBefore[n.Name]
			t.Logf("speaker of %s logged %d lines during the flood", n.Name, d)
			if d > maxHostileLogLines {
				t.Errorf("speaker of %s logged %d lines during the flood, want at most %d", n.Name, d, maxHostileLogLines)
			}
		}
	})

	t.Run("bounded CPU", func(t *testing.T) {
		for name, cores := range cpu {
			t.Logf("speaker of %s used %.2f cores during the flood", name, cores)
			if cores > maxHostileCPU {
				t.Errorf("speaker of %s used %.2f cores during the flood, want at most %.2f", name, cores, maxHostileCPU)
			}
		}
	})
}

func equalMove(a, b *lbv1.AnnouncementMove) bool {
	if a == nil || b == nil {
		return a == b
	}
	return a.At.Equal(&b.At) && a.From == b.From && a.To == b.To
}

// sumMetric sums the samples of a metric in Prometheus text whose labels
// contain want ("" for any).
func sumMetric(text, name, want string) float64 {
	sum := 0.0
	for _, line := range strings.Split(text, "\n") {
		if !strings.HasPrefix(line, name) {
			continue
		}
		rest := line[len(name):]
		labels := ""
		switch {
		case strings.HasPrefix(rest, "{"):
			end := strings.Index(rest, "}")
			if end < 0 {
				continue
			}
			labels, rest = rest[1:end], rest[end+1:]
		case strings.HasPrefix(rest, " "):
		default:
			continue // another metric with this prefix
		}
		if want != "" && !strings.Contains(labels, want) {
			continue
		}
		v, err := strconv.ParseFloat(strings.Fields(rest)[0], 64)
		if err == nil && !math.IsNaN(v) {
			sum += v
		}
	}
	return sum
}

// logLines counts the lines a lab process has logged so far.
func logLines(t *testing.T, p *lab.Proc) int {
	t.Helper()
	b, err := os.ReadFile(p.Log)
	if err != nil {
		t.Fatalf("reading %s: %v", p.Log, err)
	}
	return strings.Count(string(b), "\n")
}

// cpuSeconds reads the user and system CPU time of a process.
func cpuSeconds(t *testing.T, p *lab.Proc) float64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p.Cmd.Process.Pid))
	if err != nil {
		t.Fatalf("reading the speaker's CPU time: %v", err)
	}
	// The fields after the command name (which may hold spaces).
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+2:]))
	utime, _ := strconv.ParseFloat(f[11], 64)
	stime, _ := strconv.ParseFloat(f[12], 64)
	return (utime + stime) / 100 // USER_HZ
}

// event is one event object and how many times it was recorded.
type event struct {
	desc  string
	count int32
}

// listEvents returns every event by UID (core/v1 and events.k8s.io/v1 are
// views of the same objects), with its count (a repeated event is one
// object whose series count grows).
func listEvents(t *testing.T, c *lab.Cluster) map[string]event {
	t.Helper()
	out := map[string]event{}
	var core corev1.EventList
	if err := c.Client.List(tctx(t, 30*time.Second), &core); err != nil {
		t.Fatal(err)
	}
	for _, e := range core.Items {
		n := max(e.Count, 1)
		if e.Series != nil {
			n = max(n, e.Series.Count)
		}
		out[string(e.UID)] = event{desc: e.Reason + ": " + e.Message, count: n}
	}
	return out
}
