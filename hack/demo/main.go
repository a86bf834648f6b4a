// Command demo runs lbstack's main job on this machine, end to end, and
// narrates it (`make demo`; needs root and the test control plane built by
// `make envtest-assets`):
//
//  1. builds a lab network of three "nodes" and a client in network
//     namespaces (documentation addresses only) and starts a real
//     kube-apiserver and etcd;
//  2. applies one LoadBalancerStack; the operator expands it into its
//     configuration objects (and renders the controller Deployment and
//     speaker DaemonSet, which cannot run without a kubelet: the demo runs
//     the same binary as processes instead — the controller on the host,
//     one speaker inside each node namespace);
//  3. creates a dual-stack Service of type LoadBalancer, shows the address
//     it got, which node announces it and since when, and proves it from
//     the client with arping, ping and curl;
//  4. kills the announcing speaker with SIGKILL and shows the new owner,
//     the time the client took to follow, and the reason recorded;
//  5. removes everything it created.
package main

import (
	"context"
	"flag"
	"fmt"
	"net/netip"
	"os"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	lbv1 "github.com/lbstack/lbstack/api/v1alpha1"
	"github.com/lbstack/lbstack/test/e2e/lab"
)

func main() {
	keep := flag.Bool("keep-logs", false, "keep the process logs (printed path) after the demo")
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

func run(keep bool) error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	dir, err := os.MkdirTemp("", "lbstack-demo-")
	if err != nil {
		return err
	}
	if !keep {
		defer os.RemoveAll(dir)
	}

	step("Building the lab: 3 nodes and a client in network namespaces, a real kube-apiserver and etcd")
	c, err := lab.NewCluster(3, dir)
	if err != nil {
		return err
	}
	defer c.Close()
	for _, n := range c.Lab.Nodes {
		info("%-6s %-12s %-16s MAC %s (namespace %s)", n.Name, n.IPv4, n.IPv6, n.MAC, n.NS)
	}
	info("client %-12s %s", lab.ClientIPv4, lab.ClientIPv6)

	step("Applying one LoadBalancerStack; the operator expands it")
	const ns = "lbstack-system"
	if err := c.Apply(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
		return err
	}
	if _, err := c.Lab.Start("", "operator", nil, c.Bin, "operator", "--kubeconfig", c.Kubeconfig, "--namespace", ns,
		"--leader-elect=false", "--metrics-bind-address=0", "--health-probe-bind-address=0", "--webhook-port=19443",
		"--webhook-cert-dir", dir+"/certs", "--log-format=console"); err != nil {
		return err
	}
	stack := &lbv1.LoadBalancerStack{
		ObjectMeta: metav1.ObjectMeta{Name: "lbstack"},
		Spec: lbv1.LoadBalancerStackSpec{
			Pools: []lbv1.InlineIPAddressPool{{InlineMeta: lbv1.InlineMeta{Name: "default"},
				IPAddressPoolSpec: lbv1.IPAddressPoolSpec{Addresses: []lbv1.PoolAddress{"192.0.2.240-192.0.2.250", "2001:db8::240-2001:db8::250"}}}},
			L2Advertisements: []lbv1.InlineL2Advertisement{{InlineMeta: lbv1.InlineMeta{Name: "default"}, L2AdvertisementSpec: lbv1.L2AdvertisementSpec{IPAddressPools: []string{"default"}}}},
		},
	}
	if err := c.Apply(ctx, stack); err != nil {
		return err
	}
	err = lab.WaitFor(ctx, 100*time.Millisecond, func() error {
		return c.Client.Get(ctx, client.ObjectKey{Name: "default"}, &lbv1.IPAddressPool{})
	})
	if err != nil {
		return fmt.Errorf("the operator did not expand the stack: %w", err)
	}
	info("IPAddressPool/default and L2Advertisement/default created, owned by LoadBalancerStack/lbstack")
	info("also rendered: Deployment/lbstack-controller, DaemonSet/lbstack-speaker, RBAC, Secret/lbstack-memberlist")

	step("Starting the controller (host) and a speaker in each node namespace")
	if err := c.StartController(); err != nil {
		return err
	}
	for _, n := range c.Lab.Nodes {
		if _, err := c.StartSpeaker(n.Name); err != nil {
			return err
		}
	}
	// Let the speakers find each other (memberlist join, first heartbeats,
	// the start-up grace), so the first owner is the final one.
	time.Sleep(3 * time.Second)

	step("Creating Service default/web (type LoadBalancer, dual-stack)")
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "web"},
		Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeLoadBalancer, Ports: []corev1.ServicePort{{Name: "http", Port: 80}},
			IPFamilies: []corev1.IPFamily{corev1.IPv4Protocol, corev1.IPv6Protocol}, IPFamilyPolicy: ptr.To(corev1.IPFamilyPolicyRequireDualStack)},
	}
	if err := c.Apply(ctx, svc); err != nil {
		return err
	}
	key := client.ObjectKeyFromObject(svc)
	v4, v6, err := c.ServiceIPsOnNodes(ctx, key, 2)
	if err != nil {
		return err
	}
	info("EXTERNAL-IP %s,%s (from pool default)", v4, v6)
	st, err := c.WaitAnnounced(ctx, key, func(string) bool { return true })
	if err != nil {
		return err
	}
	printAnnouncement(st)

	step("Asking the network from the client")
	owner := c.Lab.Node(st.Nodes[0].Node)
	if err := prove(c, v4, v6); err != nil {
		return err
	}

	step("kill -9 the speaker on %s (the owner)", owner.Name)
	if _, err := c.Curl(v4); err != nil { // the client has a neighbour entry to update
		return err
	}
	killed := time.Now()
	c.Speakers[owner.Name].Kill()
	var next *lab.Node
	err = lab.WaitFor(ctx, 5*time.Millisecond, func() error {
		mac, err := c.NeighMAC(v4)
		if err != nil {
			return err
		}
		if next = c.Lab.NodeByMAC(mac); next == nil || next == owner {
			return fmt.Errorf("still %s", mac)
		}
		return nil
	})
	if err != nil {
		return err
	}
	info("the client's neighbour entry for %s moved to %s (%s) %s after the kill", v4, next.Name, next.MAC, time.Since(killed).Round(time.Millisecond))
	st, err = c.WaitAnnounced(ctx, key, func(n string) bool { return n == next.Name })
	if err != nil {
		return err
	}
	printAnnouncement(st)
	if err := prove(c, v4, v6); err != nil {
		return err
	}
	printEvents(ctx, c, svc)

	step("Cleaning up: stopping every process, removing the namespaces and the control plane")
	return nil
}

func printAnnouncement(st *lbv1.ServiceAnnouncementStatus) {
	info("$ kubectl get serviceannouncement web -o yaml   (status)")
	for _, n := range st.Nodes {
		info("  node: %s  protocol: %s  interface: %s  mac: %s  since: %s", n.Node, n.Protocol, n.Interface, n.MAC, n.Since.Format(time.RFC3339))
	}
	if m := st.LastMove; m != nil {
		d := ""
		if m.DetectionTime != nil {
			d = "  detectionTime: " + m.DetectionTime.Duration.String()
		}
		info("  lastMove: %s -> %s  reason: %s%s", orDash(m.From), m.To, m.Reason, d)
		info("            %s", m.Message)
	}
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func prove(c *lab.Cluster, v4, v6 netip.Addr) error {
	macs, err := c.ArpingMACs(v4, 3)
	if err != nil {
		return err
	}
	for mac, n := range macs {
		info("$ arping %s   -> %d replies from %s (%s)", v4, n, mac, nodeName(c, mac))
	}
	if err := c.Ping(v6); err != nil {
		return err
	}
	mac, err := c.NeighMAC(v6)
	if err != nil {
		return err
	}
	info("$ ping %s; ip -6 neigh   -> %s (%s)", v6, mac, nodeName(c, mac))
	for _, ip := range []netip.Addr{v4, v6} {
		body, err := c.Curl(ip)
		if err != nil {
			return err
		}
		info("$ curl http://%s/   -> answered by %s", hostPort(ip), body)
	}
	return nil
}

func hostPort(ip netip.Addr) string {
	if ip.Is6() {
		return "[" + ip.String() + "]"
	}
	return ip.String()
}

func nodeName(c *lab.Cluster, mac string) string {
	if n := c.Lab.NodeByMAC(mac); n != nil {
		return n.Name
	}
	return "unknown"
}

func printEvents(ctx context.Context, c *lab.Cluster, svc *corev1.Service) {
	var l eventsv1.EventList
	if err := c.Client.List(ctx, &l, client.InNamespace(svc.Namespace)); err != nil {
		return
	}
	info("$ kubectl events --for service/web")
	for _, e := range l.Items {
		if e.Regarding.Kind == "Service" && e.Regarding.Name == svc.Name {
			info("  %-7s %-18s %s", e.Type, e.Reason, strings.TrimSpace(e.Note))
		}
	}
}
