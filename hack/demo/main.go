// Command demo runs lbstack's main job on real Kubernetes nodes on this
// machine and narrates it (`make demo` builds what it needs first; root):
//
//  1. brings up a cluster (test/realcluster): control plane, three kubelet
//     nodes with containerd and kube-proxy, a client and a BGP router
//     (BIRD 2), each in its own network namespace, documentation
//     addresses only;
//  2. installs lbstack as a user does: `kubectl apply -k config/local`
//     (config/default with the locally built image), then a
//     LoadBalancerStack with a layer-2 pool and a BGP pool;
//  3. deploys a web app behind two Services of type LoadBalancer and
//     shows who answers for each IP and why (lbstack's own objects), the
//     router's ECMP next hops, and curls through every VIP from the client;
//  4. with a client opening a fresh connection to every VIP each 5 ms,
//     deletes the announcing node's speaker pod, kills the announcing
//     speaker's process (kubelet restarts it), then cuts the announcing node
//     off its network without a carrier change, and prints the outage the
//     client saw;
//  5. tears everything down.
package main

import (
	"context"
	"flag"
	"fmt"
	"net/netip"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/lbstack/lbstack/internal/testenv"
	"github.com/lbstack/lbstack/test/e2e/lab"
	"github.com/lbstack/lbstack/test/realcluster"
)

const system = "lbstack-system"

func main() {
	keep := flag.Bool("keep-logs", false, "keep the component logs (printed path) after the demo")
	flag.Parse()
	if err := run(*keep); err != nil {
		fmt.Fprintf(os.Stderr, "\ndemo failed: %v\n", err)
		os.Exit(1)
	}
}

func step(format string, args ...any) {
	fmt.Printf("\n\033[1m==> "+format+"\033[0m\n", args...)
}

func info(format string, args ...any) { fmt.Printf("    "+format+"\n", args...) }

type demo struct {
	c    *realcluster.Cluster
	root string
	dir  string
}

// kubectl prints and runs a kubectl command, indenting its output.
func (d *demo) kubectl(ctx context.Context, args ...string) (string, error) {
	fmt.Printf("    $ kubectl %s\n", strings.Join(args, " "))
	out, err := d.c.KubectlOutput(ctx, args...)
	for _, l := range strings.Split(strings.TrimRight(out, "\n"), "\n") {
		if l != "" {
			fmt.Println("      " + l)
		}
	}
	return out, err
}

func run(keep bool) error {
	start := time.Now()
	// Ctrl-C or SIGTERM ends the demo through its teardown, like its end.
	sig, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithTimeout(sig, 15*time.Minute)
	defer cancel()
	dir, err := os.MkdirTemp("", "lbstack-demo-")
	if err != nil {
		return err
	}
	if keep {
		defer fmt.Printf("\nLogs kept in %s\n", dir)
	} else {
		defer os.RemoveAll(dir)
	}
	root := testenv.RepoRoot()
	var images []string
	for _, name := range []string{"pause", "lbstack", "echo"} {
		images = append(images, filepath.Join(root, "bin", "images", name+".tar"))
	}

	step("Bringing up a Kubernetes %s cluster: a control plane and 3 kubelet nodes (containerd, runc, kube-proxy), each in a network namespace", realcluster.KubernetesVersion)
	up := time.Now()
	c, err := realcluster.Up(ctx, realcluster.Options{Nodes: 3, Dir: dir, Images: images, PauseImage: realcluster.PauseImage, Logf: info})
	defer func() {
		step("Tearing down: every process by PID, mounts, cgroups, namespaces")
		if c != nil {
			c.Close()
		}
		info("demo took %s", time.Since(start).Round(time.Second))
	}()
	if err != nil {
		return err
	}
	upTime := time.Since(up)
	d := &demo{c: c, root: root, dir: dir}
	for _, n := range c.Nodes {
		info("%-6s %-11s %-15s MAC %s  pods %s, %s", n.Name, n.IPv4, n.IPv6, n.MAC, n.PodCIDRv4, n.PodCIDRv6)
	}
	info("client 192.0.2.100 2001:db8::100; router (BIRD 2, AS 64500) %s", lab.RouterIPv4)
	bird, err := d.router()
	if err != nil {
		return err
	}
	if _, err := d.kubectl(ctx, "get", "nodes", "-o", "wide"); err != nil {
		return err
	}

	step("Installing lbstack as a user does: kubectl apply -k config/local (config/default with the image built by `make image`)")
	if _, err := d.kubectl(ctx, "apply", "-k", filepath.Join(root, "config", "local")); err != nil {
		return err
	}
	if _, err := d.kubectl(ctx, "-n", system, "rollout", "status", "deployment/lbstack-operator", "--timeout=3m"); err != nil {
		return err
	}

	step("Applying one LoadBalancerStack: a layer-2 pool and a BGP pool (hack/demo/stack.yaml)")
	applied := time.Now()
	if err := d.applyRetrying(ctx, filepath.Join(root, "hack", "demo", "stack.yaml")); err != nil {
		return err
	}
	if err := c.WaitStackAvailable(ctx, system); err != nil {
		return err
	}
	readyTime := time.Since(applied)
	info("stack Available, every speaker Ready, %s after kubectl apply", readyTime.Round(100*time.Millisecond))
	if _, err := d.kubectl(ctx, "get", "lbs"); err != nil {
		return err
	}
	if _, err := d.kubectl(ctx, "-n", system, "get", "pods", "-o", "wide"); err != nil {
		return err
	}

	step("Deploying a web app behind two Services of type LoadBalancer (hack/demo/web.yaml)")
	if _, err := d.kubectl(ctx, "apply", "-f", filepath.Join(root, "hack", "demo", "web.yaml")); err != nil {
		return err
	}
	// The layer-2 pool's IPv6 range is outside the client's /64; its
	// router would route it onto the nodes' segment, here an on-link route does.
	if err := c.Lab.Run(c.Lab.Client, "ip", "-6", "route", "add", "2001:db8:0:1::/64", "dev", "eth0"); err != nil {
		return err
	}
	web, webBGP := client.ObjectKey{Namespace: "demo", Name: "web"}, client.ObjectKey{Namespace: "demo", Name: "web-bgp"}
	l2IPs, err := lab.ServiceIPs(ctx, c.Client, web, 2)
	if err != nil {
		return err
	}
	bgpIPs, err := lab.ServiceIPs(ctx, c.Client, webBGP, 1)
	if err != nil {
		return err
	}
	if err := c.Client.Get(ctx, webBGP, &corev1.Service{}); err != nil {
		return err
	}
	if _, err := d.kubectl(ctx, "-n", "demo", "rollout", "status", "deployment/web", "--timeout=2m"); err != nil {
		return err
	}
	if _, err := d.kubectl(ctx, "-n", "demo", "get", "services"); err != nil {
		return err
	}

	step("Who answers for each IP, and why")
	owner, err := announcer(ctx, c, web, nil)
	if err != nil {
		return err
	}
	if _, err := d.kubectl(ctx, "-n", "demo", "get", "serviceannouncements", "-o", "wide"); err != nil {
		return err
	}
	if _, err := d.kubectl(ctx, "-n", "demo", "get", "serviceannouncement", "web", "-o", "jsonpath={range .status.nodes[*]}{.node} {.interface} {.mac} since {.since}{\"\\n\"}{end}"); err != nil {
		return err
	}
	macs, _ := c.Lab.ArpingMACs(l2IPs[0], 3)
	info("arping %s from the client: %s", l2IPs[0], macList(c, macs))
	bgpPrefix := netip.PrefixFrom(bgpIPs[0], 32)
	if err := waitNextHops(ctx, bird, bgpPrefix, len(c.Nodes)); err != nil {
		return err
	}
	out, _ := c.Lab.Output(bird.NS, "ip", "route", "show", bgpPrefix.String())
	info("router's kernel route to %s (ECMP, one next hop per node):", bgpPrefix)
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		info("  %s", strings.TrimSpace(l))
	}
	if _, err := d.kubectl(ctx, "get", "bgppeer", "router", "-o", "jsonpath={range .status.nodes[*]}{.node}: {.state}, BFD {.bfdState}, {.prefixesAdvertised} prefixes{\"\\n\"}{end}"); err != nil {
		return err
	}

	step("curl through every VIP from the client (kube-proxy on the node forwards to a pod)")
	urls := []string{}
	for _, ip := range append(slices.Clone(l2IPs), bgpIPs...) {
		u := url(ip)
		urls = append(urls, u)
		body, err := curlUntil(ctx, c, ip)
		if err != nil {
			return err
		}
		info("curl %-26s → %s", u, body)
	}

	probe, err := c.StartProbe(dir, urls...)
	if err != nil {
		return err
	}
	defer probe.Stop()
	wait, cancelWait := context.WithTimeout(ctx, 20*time.Second)
	err = probe.WaitUp(wait, urls...)
	cancelWait()
	if err != nil {
		return err
	}
	f := &faults{d: d, probe: probe, urls: urls, web: web}

	step("Fault 1: deleting the speaker pod of %s, the node that answers for %s (a client opens a fresh connection to every VIP each 5 ms)", owner, l2IPs[0])
	next, err := f.run(ctx, "speaker pod deleted on "+owner, owner, true, func() error {
		pod, err := c.SpeakerPod(ctx, system, owner)
		if err != nil {
			return err
		}
		_, err = d.kubectl(ctx, "-n", system, "delete", "pod", pod.Name, "--wait=false")
		return err
	})
	if err != nil {
		return err
	}
	info("after the speaker's restart %s answers for %s", next, l2IPs[0])

	step("Fault 2: killing (SIGKILL) the speaker container's process on %s, which answers for %s; kubelet restarts it", next, l2IPs[0])
	killed := next
	if next, err = f.run(ctx, "speaker killed on "+killed, killed, true, func() error {
		pids, err := c.SpeakerPIDs(c.Node(killed))
		if err != nil || len(pids) != 1 {
			return fmt.Errorf("finding the speaker process of %s: %v %v", killed, pids, err)
		}
		info("kill -9 %d", pids[0])
		return syscall.Kill(pids[0], syscall.SIGKILL)
	}); err != nil {
		return err
	}
	info("after kubelet restarted the container %s answers for %s", next, l2IPs[0])

	cut := c.Node(next)
	step("Fault 3: cutting %s (now answering for %s) off the network: its switch port detached, the link keeps its carrier", next, l2IPs[0])
	if _, err := f.run(ctx, "node "+next+" cut off", next, false, func() error { return c.Cut(cut, true) }); err != nil {
		return err
	}
	out, _ = c.Lab.Output(bird.NS, "ip", "route", "show", bgpPrefix.String())
	info("router's route to %s without %s:", bgpPrefix, next)
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		info("  %s", strings.TrimSpace(l))
	}
	step("Healing %s's link", next)
	if err := c.Cut(cut, false); err != nil {
		return err
	}
	time.Sleep(3 * time.Second)
	macs, _ = c.Lab.ArpingMACs(l2IPs[0], 3)
	info("arping %s after the heal: %s", l2IPs[0], macList(c, macs))

	step("What the client saw: the longest outage of each VIP (a fresh connection every 5 ms, 100 ms timeout) and how many times it went down")
	fmt.Printf("    %-28s", "fault")
	for _, u := range urls {
		fmt.Printf(" %-26s", u)
	}
	fmt.Println(" layer 2 address")
	for _, r := range f.results {
		fmt.Printf("    %-28s", r.fault)
		for _, g := range r.gaps {
			cell := "no request failed"
			if len(g) > 0 {
				cell = fmt.Sprintf("%s (%d×)", slices.Max(g).Round(time.Millisecond), len(g))
			}
			fmt.Printf(" %-26s", cell)
		}
		fmt.Printf(" %s\n", r.note)
	}
	info("A cut node's pods stay in the Service's endpoints until Kubernetes marks the node NotReady")
	info("(node-monitor-grace-period), so kube-proxy still sends some new connections there: short repeated gaps.")
	info("cluster up in %s; stack applied → all speakers Ready in %s", upTime.Round(100*time.Millisecond), readyTime.Round(100*time.Millisecond))
	return nil
}

// faults injects faults while the probe runs and records what the client saw.
type faults struct {
	d       *demo
	probe   *realcluster.Probe
	urls    []string
	web     client.ObjectKey
	results []result
}

// result is one fault's row: the outages of each VIP and where the
// layer-2 address went.
type result struct {
	fault string
	gaps  [][]time.Duration
	note  string
}

// run injects a fault on the node that announces the layer-2 address
// (from), waits until the address has moved (a restarted speaker may
// have taken it back before its peers noticed, so after 15 s any owner
// will do) and every VIP answers again, and records the client's outages
// over that time and 2 s more. With restart, the fault is one kubelet
// repairs: it then waits for every speaker to be Ready again and returns
// the address's owner after that; otherwise it returns the new owner.
func (f *faults) run(ctx context.Context, name, from string, restart bool, inject func() error) (string, error) {
	c := f.d.c
	start := time.Now()
	if err := inject(); err != nil {
		return "", err
	}
	moveWait, cancel := context.WithTimeout(ctx, 15*time.Second)
	next, err := announcer(moveWait, c, f.web, func(n string) bool { return n != from })
	cancel()
	if err != nil {
		if next, err = announcer(ctx, c, f.web, nil); err != nil {
			return "", err
		}
	}
	if err := waitAllUp(ctx, f.probe, f.urls); err != nil {
		return "", err
	}
	time.Sleep(2 * time.Second)
	r := result{fault: name, note: "moved to " + next}
	if next == from {
		r.note = "stayed on " + next
	}
	for _, u := range f.urls {
		r.gaps = append(r.gaps, f.probe.Gaps(u, start, time.Now()))
	}
	f.results = append(f.results, r)
	if _, err := f.d.kubectl(ctx, "-n", f.web.Namespace, "get", "serviceannouncement", f.web.Name, "-o", "jsonpath=lastMove: {.status.lastMove.reason} from {.status.lastMove.from} to {.status.lastMove.to}, detected in {.status.lastMove.detectionTime}: {.status.lastMove.message}{\"\\n\"}"); err != nil {
		return "", err
	}
	if !restart {
		return next, nil
	}
	if err := c.WaitStackAvailable(ctx, system); err != nil {
		return "", err
	}
	// The restarted speaker has joined again; where the address is now.
	time.Sleep(3 * time.Second)
	return announcer(ctx, c, f.web, nil)
}

// router starts BIRD 2 peering with every node (iBGP AS 64500, BFD) and
// routes the client's traffic to the BGP pool through it.
func (d *demo) router() (*lab.Bird, error) {
	var nbrs []lab.BirdNeighbor
	for _, n := range d.c.Nodes {
		nbrs = append(nbrs, lab.BirdNeighbor{Name: n.Name, Address: n.IPv4, ASN: 64500, BFD: true})
	}
	bird, err := d.c.Lab.StartRouter(lab.BirdConfig{ASN: 64500, Neighbors: nbrs, BFDInterval: 100})
	if err != nil {
		return nil, err
	}
	if err := d.c.Lab.Run(bird.NS, "sysctl", "-qw", "net.ipv4.ip_forward=1"); err != nil {
		return nil, err
	}
	return bird, d.c.Lab.Run(d.c.Lab.Client, "ip", "route", "add", "203.0.113.128/25", "via", lab.RouterIPv4.String())
}

// applyRetrying applies a manifest, retrying while the operator's webhook
// is not serving yet.
func (d *demo) applyRetrying(ctx context.Context, path string) error {
	fmt.Printf("    $ kubectl apply -f %s\n", path)
	var out string
	var last error
	err := lab.WaitFor(ctx, 250*time.Millisecond, func() error {
		out, last = d.c.KubectlOutput(ctx, "apply", "-f", path)
		return last
	})
	if err != nil {
		return fmt.Errorf("%w: %v", err, last)
	}
	fmt.Print("      " + out)
	return nil
}

// announcer waits until one node announces the Service and ok (nil: any)
// accepts it, and names it.
func announcer(ctx context.Context, c *realcluster.Cluster, key client.ObjectKey, ok func(string) bool) (string, error) {
	wait, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	st, err := lab.WaitAnnounced(wait, c.Client, key, ok)
	if err != nil {
		return "", err
	}
	return st.Nodes[0].Node, nil
}

func waitNextHops(ctx context.Context, bird *lab.Bird, prefix netip.Prefix, n int) error {
	wait, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	return lab.WaitFor(wait, 100*time.Millisecond, func() error {
		hops, err := bird.NextHops(prefix)
		if err != nil {
			return err
		}
		if len(hops) != n {
			return fmt.Errorf("%d next hops for %s, want %d", len(hops), prefix, n)
		}
		return nil
	})
}

func waitAllUp(ctx context.Context, p *realcluster.Probe, urls []string) error {
	wait, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	return p.WaitUp(wait, urls...)
}

func curlUntil(ctx context.Context, c *realcluster.Cluster, ip netip.Addr) (string, error) {
	var body string
	wait, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	err := lab.WaitFor(wait, 200*time.Millisecond, func() error {
		var err error
		body, err = c.Lab.Curl(ip)
		return err
	})
	return body, err
}

func url(ip netip.Addr) string {
	if ip.Is6() {
		return "http://[" + ip.String() + "]/"
	}
	return "http://" + ip.String() + "/"
}

// macList names the nodes behind MACs.
func macList(c *realcluster.Cluster, macs map[string]int) string {
	if len(macs) == 0 {
		return "no answer"
	}
	var parts []string
	for mac, n := range macs {
		name := "unknown host"
		if node := c.Lab.NodeByMAC(mac); node != nil {
			name = node.Name
		}
		parts = append(parts, fmt.Sprintf("%s (%s) ×%d", mac, name, n))
	}
	slices.Sort(parts)
	return strings.Join(parts, ", ")
}
