package realcluster_test

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	lbv1 "github.com/lbstack/lbstack/api/v1alpha1"
	"github.com/lbstack/lbstack/internal/render"
	"github.com/lbstack/lbstack/internal/testenv"
	"github.com/lbstack/lbstack/test/e2e/lab"
	"github.com/lbstack/lbstack/test/realcluster"
)

const (
	operatorNamespace = "lbstack-system"
	layer2Sample      = "config/samples/lbstack_v1alpha1_loadbalancerstack_layer2.yaml"
	bgpSample         = "config/samples/lbstack_v1alpha1_loadbalancerstack_bgp.yaml"
)

// images are the archives the test cluster's nodes import (`make image
// test-images`).
func images(t *testing.T) []string {
	t.Helper()
	var out []string
	for _, name := range []string{"pause", "lbstack", "echo"} {
		path := filepath.Join(testenv.RepoRoot(), "bin", "images", name+".tar")
		if _, err := os.Stat(path); err != nil {
			testenv.Skip(t, "%s is missing: run `make image test-images`", path)
		}
		out = append(out, path)
	}
	return out
}

// upCluster brings up a cluster of n nodes for t, or skips t when a
// prerequisite is missing (fails in CI).
func upCluster(t *testing.T, ctx context.Context, n int) *realcluster.Cluster {
	t.Helper()
	return upClusterWith(t, ctx, realcluster.Options{Nodes: n})
}

// upClusterWith brings up a cluster with options o (Dir, Images,
// PauseImage and Logf are filled in), or skips as upCluster does.
func upClusterWith(t *testing.T, ctx context.Context, o realcluster.Options) *realcluster.Cluster {
	t.Helper()
	n := o.Nodes
	if err := realcluster.Prerequisites(); err != nil {
		testenv.Skip(t, "%v", err)
	}
	imgs := images(t)
	dir := t.TempDir()
	start := time.Now()
	o.Dir, o.Images, o.PauseImage, o.Logf = dir, imgs, realcluster.PauseImage, t.Logf
	c, err := realcluster.Up(ctx, o)
	t.Cleanup(func() {
		if t.Failed() {
			dumpLogs(t, c, dir)
		}
		if c != nil {
			c.Close()
		}
	})
	if err != nil {
		t.Fatalf("bringing the cluster up: %v", err)
	}
	t.Logf("bring-up: %d nodes Ready in %s", n, time.Since(start).Round(100*time.Millisecond))
	return c
}

// dumpLogs prints what helps to understand a failure: the lbstack pods'
// logs and the tails of the node components' logs.
func dumpLogs(t *testing.T, c *realcluster.Cluster, dir string) {
	if c == nil || c.Client == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if out, err := c.KubectlOutput(ctx, "get", "pods", "-A", "-o", "wide"); err == nil {
		t.Logf("pods:\n%s", out)
	}
	if out, err := c.KubectlOutput(ctx, "get", "events", "-A", "--sort-by=.lastTimestamp"); err == nil {
		t.Logf("events:\n%s", tail(out, 6000))
	}
	var pods corev1.PodList
	if err := c.Client.List(ctx, &pods, client.InNamespace(operatorNamespace)); err == nil {
		for _, p := range pods.Items {
			out, _ := c.KubectlOutput(ctx, "logs", "-n", operatorNamespace, p.Name, "--tail=40")
			t.Logf("logs of %s:\n%s", p.Name, out)
		}
	}
	logs, _ := filepath.Glob(filepath.Join(dir, "*.log"))
	for _, l := range logs {
		b, _ := os.ReadFile(l)
		t.Logf("%s:\n%s", filepath.Base(l), tail(string(b), 1500))
	}
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

// TestInstall installs lbstack on real kubelet nodes exactly as a user
// does — `kubectl apply -k` of an overlay that sets only the image, then
// the layer-2 sample — and judges it from a client namespace: one MAC
// answers ARP for the Service IP, curl reaches the backend pods through
// kube-proxy over IPv4 and IPv6. It checks the pods run with exactly the
// rendered identity and capabilities, deletes the stack (announcements
// withdrawn, children collected), then does the same with the BGP sample
// against BIRD 2 (ECMP next hops = the nodes), and uninstalls.
func TestInstall(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	c := upCluster(t, ctx, 3)
	root := testenv.RepoRoot()

	// The operator, as a user installs it.
	if out, err := c.KubectlOutput(ctx, "apply", "-k", filepath.Join(root, "config", "local")); err != nil {
		t.Fatalf("kubectl apply -k config/local: %v\n%s", err, out)
	}
	if out, err := c.KubectlOutput(ctx, "-n", operatorNamespace, "rollout", "status", "deployment/lbstack-operator", "--timeout=3m"); err != nil {
		t.Fatalf("operator not rolled out: %v\n%s", err, out)
	}
	image := archiveImage(t, filepath.Join(root, "bin", "images", "lbstack.tar"))

	applied := applyStack(t, ctx, c, filepath.Join(root, layer2Sample))
	waitStackAvailable(t, ctx, c)
	t.Logf("stack applied → every speaker Ready and the stack Available: %s", time.Since(applied).Round(100*time.Millisecond))

	t.Run("pods run with the rendered identity", func(t *testing.T) { checkPods(t, ctx, c, image) })
	t.Run("service accounts hold only what they need", func(t *testing.T) { checkAccess(t, ctx, c) })
	leaks := newSecretWatch()
	leaks.rememberMemberlistKey(t, ctx, c)

	// The operator's webhooks, served with its own certificate, refuse
	// what cannot work.
	t.Run("webhooks refuse an overlapping pool", func(t *testing.T) {
		bad := filepath.Join(t.TempDir(), "overlap.yaml")
		if err := os.WriteFile(bad, []byte("apiVersion: lbstack.io/v1alpha1\nkind: IPAddressPool\nmetadata:\n  name: overlap\nspec:\n  addresses: [192.0.2.248/29]\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		out, err := c.KubectlOutput(ctx, "apply", "-f", bad)
		if err == nil || !strings.Contains(err.Error(), `IPAddressPool[overlap].spec.addresses[0]`) || !strings.Contains(err.Error(), `overlaps IPAddressPool "default"`) {
			t.Fatalf("kubectl apply of an overlapping pool: %v %s; want the webhook's refusal naming the overlap", err, out)
		}
	})

	// A backend behind a dual-stack Service of type LoadBalancer.
	if out, err := c.KubectlOutput(ctx, "apply", "-f", filepath.Join(root, "test", "realcluster", "testdata", "echo.yaml")); err != nil {
		t.Fatalf("applying the backend: %v\n%s", err, out)
	}
	// The sample's IPv6 pool is outside the client's /64: the client's
	// router would route it onto the nodes' segment; here an on-link route does.
	if err := c.Lab.Run(c.Lab.Client, "ip", "-6", "route", "add", "2001:db8:0:1::/64", "dev", "eth0"); err != nil {
		t.Fatal(err)
	}
	echo := client.ObjectKey{Namespace: "web", Name: "echo"}
	v4, v6 := serviceIPs(t, ctx, c, echo, 2)
	t.Run("layer2", func(t *testing.T) {
		st := waitAnnounced(t, ctx, c, echo)
		owner := c.Node(st.Nodes[0].Node)
		if owner == nil {
			t.Fatalf("announced by an unknown node %q", st.Nodes[0].Node)
		}
		macs, err := c.Lab.ArpingMACs(v4, 3)
		if err != nil {
			t.Fatalf("arping %s: %v", v4, err)
		}
		if len(macs) != 1 || macs[owner.MAC] == 0 {
			t.Fatalf("arping %s: MACs %v, want only %s's %s", v4, macs, owner.Name, owner.MAC)
		}
		if st.Nodes[0].MAC != "" && !strings.EqualFold(st.Nodes[0].MAC, owner.MAC) {
			t.Errorf("ServiceAnnouncement names MAC %s, the node's eth0 is %s", st.Nodes[0].MAC, owner.MAC)
		}
		for _, ip := range []netip.Addr{v4, v6} {
			body := curlBackend(t, ctx, c, ip)
			t.Logf("curl %s → %s", ip, body)
		}
		if mac, err := c.Lab.NeighMAC(v6); err != nil || mac != owner.MAC {
			t.Errorf("client's neighbour entry for %s: %q (%v), want %s", v6, mac, err, owner.MAC)
		}
	})

	t.Run("deleting the stack withdraws and collects", func(t *testing.T) {
		leaks.collect(t, ctx, c, "layer2")
		deleteStack(t, ctx, c, v4)
	})

	t.Run("bgp", func(t *testing.T) {
		// The sessions are signed (TCP MD5) with a password from a Secret.
		password := rand.Text()
		leaks.remember("BGP password", []byte(password))
		if err := c.Client.Create(ctx, &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Namespace: operatorNamespace, Name: "router-md5"},
			Type:       corev1.SecretTypeBasicAuth,
			StringData: map[string]string{"password": password},
		}); err != nil {
			t.Fatal(err)
		}
		var nbrs []lab.BirdNeighbor
		for _, n := range c.Nodes {
			nbrs = append(nbrs, lab.BirdNeighbor{Name: n.Name, Address: n.IPv4, ASN: 64500, BFD: true, Password: password})
		}
		bird, err := c.Lab.StartRouter(lab.BirdConfig{ASN: 64500, Neighbors: nbrs, BFDInterval: 100, GracefulRestart: true})
		if err != nil {
			t.Fatalf("starting BIRD: %v", err)
		}
		if err := c.Lab.Run(bird.NS, "sysctl", "-qw", "net.ipv4.ip_forward=1"); err != nil {
			t.Fatal(err)
		}
		if err := c.Lab.Run(c.Lab.Client, "ip", "route", "add", "203.0.113.128/25", "via", lab.RouterIPv4.String()); err != nil {
			t.Fatal(err)
		}
		applyStack(t, ctx, c, withPassword(t, filepath.Join(root, bgpSample), "router-md5"))
		waitStackAvailable(t, ctx, c)
		leaks.rememberMemberlistKey(t, ctx, c)
		// A new Service: the layer-2 one keeps its address (an assigned IP
		// never moves), which is in no pool now.
		svc := &corev1.Service{}
		if err := c.Client.Get(ctx, echo, svc); err != nil {
			t.Fatal(err)
		}
		bgpSvc := &corev1.Service{}
		bgpSvc.Namespace, bgpSvc.Name = "web", "echo-bgp"
		bgpSvc.Spec = corev1.ServiceSpec{Type: corev1.ServiceTypeLoadBalancer, Selector: svc.Spec.Selector, Ports: svc.Spec.Ports}
		bgpSvc.Spec.Ports[0].NodePort = 0
		if err := c.Client.Create(ctx, bgpSvc); err != nil {
			t.Fatal(err)
		}
		ip, _ := serviceIPs(t, ctx, c, client.ObjectKeyFromObject(bgpSvc), 1)
		want := make([]netip.Addr, 0, len(c.Nodes))
		for _, n := range c.Nodes {
			want = append(want, n.IPv4)
		}
		slices.SortFunc(want, netip.Addr.Compare)
		prefix := netip.PrefixFrom(ip, 32)
		if err := lab.WaitFor(ctx, 100*time.Millisecond, func() error {
			hops, err := bird.NextHops(prefix)
			if err != nil {
				return err
			}
			slices.SortFunc(hops, netip.Addr.Compare)
			if !slices.Equal(hops, want) {
				return fmt.Errorf("router's next hops for %s: %v, want %v", prefix, hops, want)
			}
			return nil
		}); err != nil {
			out, _ := bird.Birdc("show protocols")
			t.Fatalf("%v\n%s", err, out)
		}
		// ECMP from the client's side: with the router hashing on ports,
		// fresh connections enter the cluster through different nodes.
		if err := c.Lab.Run(bird.NS, "sysctl", "-qw", "net.ipv4.fib_multipath_hash_policy=1"); err != nil {
			t.Fatal(err)
		}
		entered := map[string]int{}
		for range 30 {
			entered[ingressNode(c, curlBackend(t, ctx, c, ip))]++
		}
		t.Logf("30 connections to %s through the router entered at %v", ip, entered)
		if len(entered) < 2 || entered[""] > 0 {
			route, _ := c.Lab.Output(bird.NS, "ip", "route", "show", prefix.String())
			hash, _ := c.Lab.Output(bird.NS, "sysctl", "net.ipv4.fib_multipath_hash_policy")
			t.Errorf("connections to %s entered the cluster at %v: want several nodes (ECMP); the router's route now: %s(%s)", ip, entered, route, strings.TrimSpace(hash))
			for _, n := range c.Nodes {
				if pod, err := c.SpeakerPod(ctx, operatorNamespace, n.Name); err == nil {
					out, _ := c.KubectlOutput(ctx, "logs", "-n", operatorNamespace, pod.Name)
					for _, l := range strings.Split(out, "\n") {
						if strings.Contains(l, "Withdrawing") || strings.Contains(l, "Announcing again") || strings.Contains(l, "BGP session") {
							t.Logf("%s: %s", n.Name, l)
						}
					}
				}
			}
		}
		leaks.collect(t, ctx, c, "bgp")
		deleteStack(t, ctx, c, netip.Addr{})
		if err := lab.WaitFor(ctx, 100*time.Millisecond, func() error {
			if hops, err := bird.NextHops(prefix); err != nil || len(hops) > 0 {
				return fmt.Errorf("router still routes %s via %v (%v)", prefix, hops, err)
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	})

	// Nothing lbstack logged, recorded or reported holds the BGP password
	// or a memberlist key.
	t.Run("no secret in any log, event or status", leaks.check)

	t.Run("uninstall", func(t *testing.T) {
		if out, err := c.KubectlOutput(ctx, "delete", "-k", filepath.Join(root, "config", "local"), "--wait=true", "--timeout=3m"); err != nil {
			t.Fatalf("kubectl delete -k config/local: %v\n%s", err, out)
		}
		var pods corev1.PodList
		if err := c.Client.List(ctx, &pods, client.InNamespace(operatorNamespace)); err != nil && !apierrors.IsNotFound(err) {
			t.Fatal(err)
		}
		for _, p := range pods.Items {
			if p.DeletionTimestamp == nil {
				t.Errorf("pod %s left after uninstall", p.Name)
			}
		}
	})

	// The Helm chart, on the same nodes, with the stack from its values:
	// the layer-2 Service keeps its address and is answered again.
	t.Run("helm", func(t *testing.T) {
		helm := os.Getenv("HELM")
		if helm == "" {
			helm = filepath.Join(root, "bin", "helm-v3.22.0")
		}
		if _, err := os.Stat(helm); err != nil {
			testenv.Skip(t, "helm is missing (%s): run `make helm`", helm)
		}
		home := t.TempDir()
		run := func(args ...string) {
			t.Helper()
			cmd := exec.CommandContext(ctx, helm, args...)
			cmd.Env = append(os.Environ(), "KUBECONFIG="+c.Kubeconfig, "HELM_CONFIG_HOME="+filepath.Join(home, "config"),
				"HELM_CACHE_HOME="+filepath.Join(home, "cache"), "HELM_DATA_HOME="+filepath.Join(home, "data"))
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("helm %s: %v\n%s", strings.Join(args, " "), err, out)
			}
		}
		run("install", "lbstack", filepath.Join(root, "charts", "lbstack"), "--namespace", operatorNamespace, "--create-namespace",
			"--values", filepath.Join(root, "test", "realcluster", "testdata", "helm-values.yaml"), "--wait", "--timeout", "3m")
		waitStackAvailable(t, ctx, c)
		checkPods(t, ctx, c, image)
		if got, _ := serviceIPs(t, ctx, c, echo, 2); got != v4 {
			t.Errorf("the Service's address changed from %s to %s across the reinstall", v4, got)
		}
		owner := c.Node(waitAnnounced(t, ctx, c, echo).Nodes[0].Node)
		if err := lab.WaitFor(ctx, 200*time.Millisecond, func() error {
			macs, err := c.Lab.ArpingMACs(v4, 2)
			if err != nil || len(macs) != 1 || macs[owner.MAC] == 0 {
				return fmt.Errorf("arping %s: %v (%v), want only %s", v4, macs, err, owner.MAC)
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		curlBackend(t, ctx, c, v4)
		// Delete the stack first: the webhooks go with the release.
		deleteStack(t, ctx, c, v4)
		run("uninstall", "lbstack", "--namespace", operatorNamespace, "--wait", "--timeout", "2m")
	})
}

// applyStack applies a stack manifest, retrying while the operator's
// webhook is not yet serving, and returns when it was accepted.
func applyStack(t testing.TB, ctx context.Context, c *realcluster.Cluster, path string) time.Time {
	t.Helper()
	start := time.Now()
	var last error
	if err := lab.WaitFor(ctx, 250*time.Millisecond, func() error {
		_, last = c.KubectlOutput(ctx, "apply", "-f", path)
		return last
	}); err != nil {
		t.Fatalf("kubectl apply -f %s: %v", path, last)
	}
	return start
}

// waitStackAvailable waits until the stack is Available with every
// speaker Ready and the controller's replicas ready.
func waitStackAvailable(t testing.TB, ctx context.Context, c *realcluster.Cluster) {
	t.Helper()
	if err := c.WaitStackAvailable(ctx, operatorNamespace); err != nil {
		t.Fatal(err)
	}
}

// deleteStack deletes the stack and waits until the garbage collector
// has removed its workloads and pools, and (when ip is valid) nobody
// answers ARP for ip any more.
func deleteStack(t *testing.T, ctx context.Context, c *realcluster.Cluster, ip netip.Addr) {
	t.Helper()
	if out, err := c.KubectlOutput(ctx, "delete", "loadbalancerstacks", "--all", "--wait=true", "--timeout=1m"); err != nil {
		t.Fatalf("deleting the stack: %v\n%s", err, out)
	}
	wait, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	if err := lab.WaitFor(wait, 250*time.Millisecond, func() error {
		var pools lbv1.IPAddressPoolList
		if err := c.Client.List(wait, &pools); err != nil {
			return err
		}
		if len(pools.Items) > 0 {
			return fmt.Errorf("pool %s left", pools.Items[0].Name)
		}
		var pods corev1.PodList
		if err := c.Client.List(wait, &pods, client.InNamespace(operatorNamespace), client.MatchingLabels{render.LabelName: render.AppName}); err != nil {
			return err
		}
		for _, p := range pods.Items {
			if comp := p.Labels[render.LabelComponent]; comp == render.ComponentSpeaker || comp == render.ComponentController {
				return fmt.Errorf("pod %s left", p.Name)
			}
		}
		// Every child the operator rendered, of every kind it renders.
		out, err := c.KubectlOutput(wait, "get", "clusterroles,clusterrolebindings,roles,rolebindings,serviceaccounts,secrets,services,daemonsets,deployments,"+
			"ipaddresspools,l2advertisements,bgpadvertisements,bgppeers,bfdprofiles,communities", "-A", "-l", render.LabelStack, "-o", "name")
		if err != nil {
			return err
		}
		if left := strings.TrimSpace(out); left != "" {
			return fmt.Errorf("children left: %s", strings.ReplaceAll(left, "\n", ", "))
		}
		if ip.IsValid() {
			if macs, _ := c.Lab.ArpingMACs(ip, 2); len(macs) > 0 {
				return fmt.Errorf("%v still answer ARP for %s", macs, ip)
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}

// serviceIPs waits for the Service's addresses: the first IPv4 and IPv6 one.
func serviceIPs(t *testing.T, ctx context.Context, c *realcluster.Cluster, key client.ObjectKey, want int) (v4, v6 netip.Addr) {
	t.Helper()
	ips, err := lab.ServiceIPs(ctx, c.Client, key, want)
	if err != nil {
		t.Fatal(err)
	}
	for _, ip := range ips {
		if ip.Is4() && !v4.IsValid() {
			v4 = ip
		} else if ip.Is6() && !v6.IsValid() {
			v6 = ip
		}
	}
	return v4, v6
}

// waitAnnounced waits until one node announces the Service.
func waitAnnounced(t *testing.T, ctx context.Context, c *realcluster.Cluster, key client.ObjectKey) *lbv1.ServiceAnnouncementStatus {
	t.Helper()
	wait, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	st, err := lab.WaitAnnounced(wait, c.Client, key, nil)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// curlBackend fetches http://ip/ from the client (retrying for a few
// seconds while kube-proxy programs the address) and checks a backend pod
// answered.
func curlBackend(t *testing.T, ctx context.Context, c *realcluster.Cluster, ip netip.Addr) string {
	t.Helper()
	var body string
	wait, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := lab.WaitFor(wait, 200*time.Millisecond, func() error {
		var err error
		if body, err = c.Lab.Curl(ip); err != nil {
			return err
		}
		if !strings.HasPrefix(body, "pod=echo-") || !strings.Contains(body, " node=node") {
			return fmt.Errorf("unexpected answer %q", body)
		}
		return nil
	}); err != nil {
		t.Fatalf("curl %s from the client: %v", ip, err)
	}
	return body
}

// ingressNode names the node a connection entered the cluster through,
// from the client address the backend saw: kube-proxy masquerades external
// traffic to the entry node's address, or to its pod bridge's address when
// the backend runs on that node.
func ingressNode(c *realcluster.Cluster, body string) string {
	i := strings.Index(body, "client=")
	if i < 0 {
		return ""
	}
	ap, err := netip.ParseAddrPort(strings.Fields(body[i+len("client="):])[0])
	if err != nil {
		return ""
	}
	for _, n := range c.Nodes {
		if ap.Addr() == n.IPv4 || n.PodCIDRv4.Contains(ap.Addr()) {
			return n.Name
		}
	}
	return ""
}

// checkPods checks that every lbstack pod runs the image of the archive,
// under its own ServiceAccount, and with exactly the rendered security
// context; that the speakers' processes hold exactly the rendered
// capabilities as root and the others none as non-root; and that none of
// the ServiceAccounts may do what an administrator may.
func checkPods(t *testing.T, ctx context.Context, c *realcluster.Cluster, image string) {
	var stacks lbv1.LoadBalancerStackList
	if err := c.Client.List(ctx, &stacks); err != nil || len(stacks.Items) != 1 {
		t.Fatalf("listing stacks: %v (%d)", err, len(stacks.Items))
	}
	want := map[string]*corev1.Container{
		render.ComponentSpeaker:    &render.SpeakerDaemonSet(&stacks.Items[0], render.Params{Namespace: operatorNamespace}).Spec.Template.Spec.Containers[0],
		render.ComponentController: &render.ControllerDeployment(&stacks.Items[0], render.Params{Namespace: operatorNamespace}).Spec.Template.Spec.Containers[0],
	}
	var pods corev1.PodList
	if err := c.Client.List(ctx, &pods, client.InNamespace(operatorNamespace)); err != nil {
		t.Fatal(err)
	}
	counts := map[string]int{}
	for _, p := range pods.Items {
		comp := p.Labels[render.LabelComponent]
		counts[comp]++
		if wantSA := "lbstack-" + comp; p.Spec.ServiceAccountName != wantSA {
			t.Errorf("pod %s runs as ServiceAccount %q, want %q", p.Name, p.Spec.ServiceAccountName, wantSA)
		}
		for _, ctr := range p.Spec.Containers {
			if ctr.Image != image {
				t.Errorf("pod %s container %s runs image %q, want the operator's %q", p.Name, ctr.Name, ctr.Image, image)
			}
			if w := want[comp]; w != nil {
				if got, wantJSON := jsonOf(ctr.SecurityContext), jsonOf(w.SecurityContext); got != wantJSON {
					t.Errorf("pod %s securityContext %s, rendered %s", p.Name, got, wantJSON)
				}
			}
		}
		for _, v := range p.Spec.Volumes {
			if v.HostPath != nil {
				t.Errorf("pod %s mounts host path %s", p.Name, v.HostPath.Path)
			}
		}
	}
	if counts[render.ComponentSpeaker] != len(c.Nodes) || counts[render.ComponentController] != 2 || counts["operator"] != 1 {
		t.Errorf("pods per component %v, want %d speakers, 2 controllers, 1 operator", counts, len(c.Nodes))
	}
	// The processes, as the kernel sees them.
	var capBits uint64
	for _, cp := range want[render.ComponentSpeaker].SecurityContext.Capabilities.Add {
		capBits |= 1 << capNumbers[string(cp)]
	}
	procs := lbstackProcesses()
	if len(procs["speaker"]) != len(c.Nodes) {
		t.Errorf("found %d speaker processes, want %d", len(procs["speaker"]), len(c.Nodes))
	}
	for role, list := range procs {
		for _, p := range list {
			wantUID, wantCaps := "65532", uint64(0)
			if role == "speaker" {
				wantUID, wantCaps = "0", capBits
			}
			if p.uid != wantUID || p.capEff != wantCaps {
				t.Errorf("%s process %d: uid %s CapEff %#x, want uid %s CapEff %#x", role, p.pid, p.uid, p.capEff, wantUID, wantCaps)
			}
		}
	}
	// No administrator rights in any of lbstack's ServiceAccounts. The
	// operator renders RBAC, so it may write (Cluster)RoleBindings — the
	// API server's escalation check bounds them by what it holds itself.
	denied := [][]string{{"*", "*"}, {"create", "pods"}, {"create", "pods", "--subresource=exec"}, {"update", "nodes"}, {"delete", "namespaces"}}
	for _, sa := range []string{"lbstack-operator", "lbstack-controller", "lbstack-speaker"} {
		as := "--as=system:serviceaccount:" + operatorNamespace + ":" + sa
		checks := denied
		switch sa {
		case "lbstack-controller":
			checks = append(slices.Clone(denied), []string{"create", "clusterrolebindings"}, []string{"list", "secrets", "-A"})
		case "lbstack-speaker":
			checks = append(slices.Clone(denied), []string{"create", "clusterrolebindings"}, []string{"list", "secrets", "-A"}, []string{"update", "services"})
		}
		for _, check := range checks {
			out, _ := c.KubectlOutput(ctx, append([]string{"auth", "can-i", as}, check...)...)
			if strings.TrimSpace(out) != "no" {
				t.Errorf("%s can %v: %q", sa, check, strings.TrimSpace(out))
			}
		}
	}
}

// capNumbers are the Linux capability numbers the speaker may hold.
var capNumbers = map[string]uint{"NET_BIND_SERVICE": 10, "NET_ADMIN": 12, "NET_RAW": 13}

type process struct {
	pid    int
	uid    string
	capEff uint64
}

// lbstackProcesses reads the effective UID and capabilities of lbstack's
// processes on this machine, by component.
func lbstackProcesses() map[string][]process {
	out := map[string][]process{}
	for role, pids := range realcluster.LbstackProcesses() {
		for _, pid := range pids {
			f, err := os.Open(filepath.Join("/proc", strconv.Itoa(pid), "status"))
			if err != nil {
				continue
			}
			p := process{pid: pid}
			sc := bufio.NewScanner(f)
			for sc.Scan() {
				k, v, _ := strings.Cut(sc.Text(), ":")
				switch k {
				case "Uid":
					p.uid = strings.Fields(v)[1] // effective
				case "CapEff":
					p.capEff, _ = strconv.ParseUint(strings.TrimSpace(v), 16, 64)
				}
			}
			f.Close()
			out[role] = append(out[role], p)
		}
	}
	return out
}

func jsonOf(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// archiveImage returns the name an image archive's index gives its image.
func archiveImage(t *testing.T, path string) string {
	t.Helper()
	name, err := realcluster.ArchiveImageName(path)
	if err != nil {
		t.Fatal(err)
	}
	return name
}

// withPassword writes a copy of the BGP sample whose peer takes its TCP MD5
// password from the Secret name (key password, the operator's namespace).
func withPassword(t *testing.T, sample, secret string) string {
	t.Helper()
	b, err := os.ReadFile(sample)
	if err != nil {
		t.Fatal(err)
	}
	const anchor = "      enableGracefulRestart: true\n"
	if !strings.Contains(string(b), anchor) {
		t.Fatalf("%s no longer has %q to add the password after", sample, anchor)
	}
	out := strings.Replace(string(b), anchor, anchor+"      passwordSecret:\n        name: "+secret+"\n        key: password\n", 1)
	path := filepath.Join(t.TempDir(), "bgp-with-password.yaml")
	if err := os.WriteFile(path, []byte(out), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// checkAccess asks the cluster's authorizer, as `kubectl auth can-i --as`,
// what each component's real ServiceAccount may do.
func checkAccess(t *testing.T, ctx context.Context, c *realcluster.Cluster) {
	sa := func(name string) string { return "system:serviceaccount:" + operatorNamespace + ":" + name }
	for _, tc := range []struct {
		who    string
		args   []string
		expect string
	}{
		{sa(render.SpeakerName), []string{"list", "services", "-A"}, "yes"},
		{sa(render.SpeakerName), []string{"update", "services", "-n", "web"}, "no"},
		{sa(render.SpeakerName), []string{"patch", "services", "--subresource=status", "-n", "web"}, "no"},
		{sa(render.SpeakerName), []string{"get", "secrets/" + render.MemberlistSecretName, "-n", operatorNamespace}, "no"},
		{sa(render.SpeakerName), []string{"list", "secrets", "-A"}, "no"},
		{sa(render.SpeakerName), []string{"create", "pods", "-n", operatorNamespace}, "no"},
		{sa(render.SpeakerName), []string{"create", "serviceannouncements.lbstack.io"}, "yes"},
		{sa(render.ControllerName), []string{"patch", "services", "--subresource=status", "-n", "web"}, "yes"},
		{sa(render.ControllerName), []string{"get", "secrets", "-n", operatorNamespace}, "no"},
		{sa(render.ControllerName), []string{"create", "deployments.apps", "-n", operatorNamespace}, "no"},
		{sa(render.ControllerName), []string{"create", "clusterrolebindings.rbac.authorization.k8s.io"}, "no"},
		{sa(render.ControllerName), []string{"list", "pods", "-A"}, "no"},
		{sa("lbstack-operator"), []string{"list", "secrets", "-A"}, "no"},
		{sa("lbstack-operator"), []string{"list", "secrets", "-n", operatorNamespace}, "yes"},
		{sa("lbstack-operator"), []string{"create", "configmaps", "-n", operatorNamespace}, "no"},
		{sa("lbstack-operator"), []string{"list", "pods", "-n", operatorNamespace}, "no"},
		{sa("lbstack-operator"), []string{"create", "deployments.apps", "-n", "web"}, "no"},
		{sa("lbstack-operator"), []string{"delete", "clusterroles.rbac.authorization.k8s.io/cluster-admin"}, "no"},
		{sa("lbstack-operator"), []string{"patch", "clusterroles.rbac.authorization.k8s.io/" + render.SpeakerName}, "yes"},
	} {
		args := append([]string{"auth", "can-i", "--as=" + tc.who}, tc.args...)
		out, _ := c.KubectlOutput(ctx, args...) // exit 1 means "no"
		if got := strings.TrimSpace(out); got != tc.expect {
			t.Errorf("kubectl %s: %q, want %q", strings.Join(args, " "), got, tc.expect)
		}
	}
}
