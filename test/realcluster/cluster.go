// Package realcluster runs a real Kubernetes cluster on one machine for
// end-to-end tests and the demo: etcd, kube-apiserver,
// kube-controller-manager and kube-scheduler in a control-plane network
// namespace, and N nodes, each a kubelet + containerd + runc + kube-proxy
// in its own network namespace on the lab bridge (test/e2e/lab), with a
// pod network (CNI bridge + host-local per node, routes between the nodes'
// pod ranges) and locally built images imported into every node.
//
// Every address is a documentation address:
//
//	host ────────── 198.51.100.1 ─┐
//	control plane ─ 198.51.100.2, 192.0.2.2, 2001:db8::2 ─┤
//	nodeN ───────── 192.0.2.1N, 2001:db8::1N ─────────────┼── bridge
//	client ──────── 192.0.2.100, 2001:db8::100 ───────────┤
//	router (BIRD) ─ 192.0.2.254, 2001:db8::254 ───────────┘
//
//	pods of nodeN   203.0.113.32(N-1)/27, 2001:db8:10:N::/64
//	Service IPs     198.51.100.128/25, 2001:db8:20::/112
//
// The Kubernetes binaries come from `make kube-assets` (pinned
// k8s.io/kubernetes, cached in bin/); containerd, runc, the CNI plugins,
// iptables and conntrack from Debian (hack/prerequisites.sh). Close stops
// every process by PID (container shims included), unmounts what the
// nodes mounted, removes their cgroups and namespaces and restores the
// host sysctls kubelet changes.
package realcluster

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/lbstack/lbstack/internal/cli"
	"github.com/lbstack/lbstack/internal/testenv"
	"github.com/lbstack/lbstack/test/e2e/lab"
)

// KubernetesVersion is the version of the components the cluster runs
// (the Makefile's KUBERNETES_VERSION).
const KubernetesVersion = "v1.36.3"

// Addresses of the cluster network (see the package comment).
var (
	ControlPlaneIPv4 = netip.MustParseAddr("192.0.2.2")
	ControlPlaneIPv6 = netip.MustParseAddr("2001:db8::2")
	// ControlPlaneHostIPv4 is the control plane's address toward the host.
	ControlPlaneHostIPv4 = netip.MustParseAddr("198.51.100.2")
	ServiceCIDRv4        = netip.MustParsePrefix("198.51.100.128/25")
	ServiceCIDRv6        = netip.MustParsePrefix("2001:db8:20::/112")
	PodCIDRv4            = netip.MustParsePrefix("203.0.113.0/25")
	PodCIDRv6            = netip.MustParsePrefix("2001:db8:10::/56")
)

// MaxNodes is the number of nodes the pod network has room for.
const MaxNodes = 4

// Options shape a cluster.
type Options struct {
	// Nodes is the number of nodes (default 3, at most MaxNodes).
	Nodes int
	// Dir receives logs and the kubeconfig; it must exist.
	Dir string
	// Images are OCI image archives imported into every node.
	Images []string
	// PauseImage is the sandbox image's name (it must be among Images).
	PauseImage string
	// Logf reports progress (nil: quiet).
	Logf func(format string, args ...any)
	// NodeMonitorGracePeriod is kube-controller-manager's
	// --node-monitor-grace-period (0: its default).
	NodeMonitorGracePeriod time.Duration
}

// Node is one kubelet node.
type Node struct {
	*lab.Node
	// PodCIDRv4 and PodCIDRv6 are the node's pod ranges.
	PodCIDRv4, PodCIDRv6 netip.Prefix

	dir        string
	cgroup     string
	socket     string
	runcRoot   string
	containerd *lab.Proc
	kubelet    *lab.Proc
	kubeProxy  *lab.Proc
}

// Cluster is a running cluster.
type Cluster struct {
	// Lab is the network: bridge, node namespaces, client namespace.
	Lab *lab.Lab
	// ControlPlane is the control plane's namespace.
	ControlPlane string
	Nodes        []*Node
	// Kubeconfig is an administrator's kubeconfig, for the host.
	Kubeconfig string
	// Config and Client reach the API server as an administrator.
	Config *rest.Config
	Client client.Client
	// Bin is the folder with the Kubernetes binaries.
	Bin string

	opts      Options
	state     string
	pki       *pki
	apiserver *lab.Proc
	host      *hostSnapshot
	closeOnce sync.Once
}

// Binaries returns the folder of the Kubernetes binaries (kubelet,
// kube-proxy, kube-controller-manager, kube-scheduler, kubectl) and the
// envtest folder (kube-apiserver, etcd), or an error naming what is missing.
func Binaries() (kube, envtest string, err error) {
	root := testenv.RepoRoot()
	kube = filepath.Join(root, "bin", "k8s-"+KubernetesVersion)
	matches, _ := filepath.Glob(filepath.Join(root, "bin", "envtest", "k8s-"+KubernetesVersion+"-*"))
	if len(matches) > 0 {
		envtest = matches[len(matches)-1]
	}
	var missing []string
	for _, b := range []string{"kubelet", "kube-proxy", "kube-controller-manager", "kube-scheduler", "kubectl"} {
		if _, err := os.Stat(filepath.Join(kube, b)); err != nil {
			missing = append(missing, b)
		}
	}
	for _, b := range []string{"kube-apiserver", "etcd"} {
		if _, err := os.Stat(filepath.Join(envtest, b)); envtest == "" || err != nil {
			missing = append(missing, b)
		}
	}
	if len(missing) > 0 {
		return kube, envtest, fmt.Errorf("missing %s: run `make kube-assets`", strings.Join(missing, ", "))
	}
	return kube, envtest, nil
}

// Prerequisites returns an error naming what is missing to run a cluster.
func Prerequisites() error {
	if err := lab.Prerequisites(); err != nil {
		return err
	}
	var missing []string
	for _, c := range []string{"containerd", "ctr", "runc", "iptables", "ip6tables", "conntrack", "nsenter"} {
		if _, err := exec.LookPath(c); err != nil {
			missing = append(missing, c)
		}
	}
	for _, p := range []string{"bridge", "host-local", "loopback", "portmap"} {
		if _, err := os.Stat(filepath.Join(cniBinDir, p)); err != nil {
			missing = append(missing, cniBinDir+"/"+p)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("missing %s (run hack/prerequisites.sh as root)", strings.Join(missing, ", "))
	}
	if _, _, err := Binaries(); err != nil {
		return err
	}
	return nil
}

const cniBinDir = "/usr/lib/cni"

// Up brings a cluster up and waits until every node is Ready. The caller
// must Close it, also when Up fails.
func Up(ctx context.Context, o Options) (c *Cluster, err error) {
	if o.Nodes == 0 {
		o.Nodes = 3
	}
	if o.Nodes > MaxNodes {
		return nil, fmt.Errorf("at most %d nodes", MaxNodes)
	}
	if o.Logf == nil {
		o.Logf = func(string, ...any) {}
	}
	if err := Prerequisites(); err != nil {
		return nil, err
	}
	kubeBin, envtestBin, _ := Binaries()
	// The lab lock stays held until Close has undone everything, host
	// sysctls included, so the next cluster snapshots the host's own values.
	l, err := lab.NewWith(lab.Options{Nodes: o.Nodes, Dir: o.Dir, KeepLock: true})
	if err != nil {
		return nil, err
	}
	c = &Cluster{Lab: l, Bin: kubeBin, opts: o, ControlPlane: l.Prefix + "-cp",
		state: filepath.Join(stateRoot, l.Prefix)}
	sweepStale(o.Logf)
	c.snapshotHost()
	start := time.Now()
	if err := os.MkdirAll(c.state, 0o755); err != nil {
		return c, err
	}
	if err := c.saveSnapshot(); err != nil {
		return c, err
	}
	if c.pki, err = newPKI(filepath.Join(c.state, "pki")); err != nil {
		return c, err
	}
	for i, ln := range l.Nodes {
		n := &Node{Node: ln,
			PodCIDRv4: netip.PrefixFrom(netip.AddrFrom4([4]byte{203, 0, 113, byte(32 * i)}), 27),
			PodCIDRv6: netip.MustParsePrefix(fmt.Sprintf("2001:db8:10:%x::/64", i+1)),
			dir:       filepath.Join(c.state, ln.Name),
			cgroup:    l.Prefix + "-" + ln.Name,
		}
		n.socket = filepath.Join(n.dir, "containerd.sock")
		n.runcRoot = filepath.Join(n.dir, "runc")
		c.Nodes = append(c.Nodes, n)
	}
	if err := c.network(); err != nil {
		return c, err
	}
	o.Logf("Starting the control plane (etcd, kube-apiserver, kube-controller-manager, kube-scheduler)")
	if err := c.controlPlane(ctx, envtestBin); err != nil {
		return c, err
	}
	o.Logf("Control plane ready after %s; starting %d nodes", time.Since(start).Round(100*time.Millisecond), len(c.Nodes))
	errs := make([]error, len(c.Nodes))
	var wg sync.WaitGroup
	for i, n := range c.Nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = c.startNode(ctx, n)
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			errs[i] = fmt.Errorf("%s: %w", c.Nodes[i].Name, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return c, err
	}
	if err := c.waitNodesReady(ctx); err != nil {
		return c, err
	}
	o.Logf("Cluster up: %d nodes Ready after %s", len(c.Nodes), time.Since(start).Round(100*time.Millisecond))
	return c, nil
}

// network adds the control-plane namespace, turns the node namespaces
// into routers for their pods and adds the routes between pod ranges.
func (c *Cluster) network() error {
	l := c.Lab
	if err := l.AddHost(c.ControlPlane, ControlPlaneIPv4, ControlPlaneIPv6, "cp"); err != nil {
		return err
	}
	if err := l.Run(c.ControlPlane, "ip", "addr", "add", ControlPlaneHostIPv4.String()+"/24", "dev", "eth0"); err != nil {
		return err
	}
	for _, n := range c.Nodes {
		cmds := [][]string{
			{"sysctl", "-qw", "net.ipv4.ip_forward=1"},
			{"sysctl", "-qw", "net.ipv6.conf.all.forwarding=1"},
			// Host-network processes (the speaker) reach Service IPs:
			// kube-proxy rewrites them in OUTPUT, after the route lookup.
			{"ip", "route", "add", ServiceCIDRv4.String(), "dev", "eth0"},
			{"ip", "-6", "route", "add", ServiceCIDRv6.String(), "dev", "eth0"},
		}
		for _, m := range c.Nodes {
			if m == n {
				continue
			}
			cmds = append(cmds,
				[]string{"ip", "route", "add", m.PodCIDRv4.String(), "via", m.IPv4.String()},
				[]string{"ip", "-6", "route", "add", m.PodCIDRv6.String(), "via", m.IPv6.String()})
		}
		for _, cmd := range cmds {
			if err := l.Run(n.NS, cmd...); err != nil {
				return err
			}
		}
		// The API server reaches pods (webhooks) and kubelets directly.
		if err := l.Run(c.ControlPlane, "ip", "route", "add", n.PodCIDRv4.String(), "via", n.IPv4.String()); err != nil {
			return err
		}
		if err := l.Run(c.ControlPlane, "ip", "-6", "route", "add", n.PodCIDRv6.String(), "via", n.IPv6.String()); err != nil {
			return err
		}
	}
	return nil
}

// controlPlane starts etcd, kube-apiserver, kube-controller-manager and
// kube-scheduler in the control-plane namespace.
func (c *Cluster) controlPlane(ctx context.Context, envtestBin string) error {
	l, p, ns := c.Lab, c.pki, c.ControlPlane
	dir := filepath.Join(c.state, "control-plane")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	if _, err := l.StartNsenter(ns, "etcd", nil, filepath.Join(envtestBin, "etcd"),
		"--name=cp", "--data-dir="+filepath.Join(dir, "etcd"),
		"--listen-client-urls=http://127.0.0.1:2379", "--advertise-client-urls=http://127.0.0.1:2379",
		"--listen-peer-urls=http://127.0.0.1:2380", "--initial-advertise-peer-urls=http://127.0.0.1:2380",
		"--initial-cluster=cp=http://127.0.0.1:2380", "--unsafe-no-fsync", "--log-level=warn"); err != nil {
		return err
	}
	svcIP := func(pr netip.Prefix) net.IP { return net.IP(pr.Addr().Next().AsSlice()) }
	apiCert, apiKey, err := p.issue(certRequest{name: "apiserver", cn: "kube-apiserver", server: true,
		dns: []string{"kubernetes", "kubernetes.default", "kubernetes.default.svc", "kubernetes.default.svc.cluster.local", "localhost"},
		ips: []net.IP{net.ParseIP("127.0.0.1"), net.IP(ControlPlaneIPv4.AsSlice()), net.IP(ControlPlaneIPv6.AsSlice()),
			net.IP(ControlPlaneHostIPv4.AsSlice()), svcIP(ServiceCIDRv4), svcIP(ServiceCIDRv6)}})
	if err != nil {
		return err
	}
	kubeletClientCert, kubeletClientKey, err := p.issue(certRequest{name: "apiserver-kubelet-client", cn: "kube-apiserver-kubelet-client", orgs: []string{"system:masters"}, client: true})
	if err != nil {
		return err
	}
	saPub, saKey, err := p.serviceAccountKey()
	if err != nil {
		return err
	}
	c.apiserver, err = l.StartNsenter(ns, "kube-apiserver", nil, filepath.Join(envtestBin, "kube-apiserver"),
		"--etcd-servers=http://127.0.0.1:2379",
		"--bind-address=::", "--secure-port=6443", "--advertise-address="+ControlPlaneIPv4.String(),
		"--tls-cert-file="+apiCert, "--tls-private-key-file="+apiKey, "--client-ca-file="+p.CA,
		"--service-account-key-file="+saPub, "--service-account-signing-key-file="+saKey,
		"--service-account-issuer=https://kubernetes.default.svc.cluster.local",
		"--service-cluster-ip-range="+ServiceCIDRv4.String()+","+ServiceCIDRv6.String(),
		"--authorization-mode=Node,RBAC", "--enable-admission-plugins=NodeRestriction",
		"--allow-privileged=true",
		"--kubelet-client-certificate="+kubeletClientCert, "--kubelet-client-key="+kubeletClientKey,
		"--kubelet-preferred-address-types=InternalIP",
		// Webhooks and aggregated APIs are called at their endpoints
		// (pod IPs), not through a Service IP the control plane has no
		// kube-proxy for.
		"--enable-aggregator-routing=true",
		"--profiling=false", "--v=1")
	if err != nil {
		return err
	}
	adminCert, adminKey, err := p.issue(certRequest{name: "admin", cn: "lbstack-admin", orgs: []string{"system:masters"}, client: true})
	if err != nil {
		return err
	}
	c.Kubeconfig = filepath.Join(c.opts.Dir, "kubeconfig")
	if err := kubeconfig(c.Kubeconfig, "https://"+ControlPlaneHostIPv4.String()+":6443", p.CA, adminCert, adminKey); err != nil {
		return err
	}
	if err := c.waitReadyz(ctx, adminCert, adminKey); err != nil {
		return err
	}
	if c.Config, err = clientcmd.BuildConfigFromFlags("", c.Kubeconfig); err != nil {
		return err
	}
	scheme, err := cli.Scheme()
	if err != nil {
		return err
	}
	if c.Client, err = client.New(c.Config, client.Options{Scheme: scheme}); err != nil {
		return err
	}
	local := "https://127.0.0.1:6443"
	kcmCert, kcmKey, err := p.issue(certRequest{name: "kube-controller-manager", cn: "system:kube-controller-manager", client: true})
	if err != nil {
		return err
	}
	kcmConfig := filepath.Join(dir, "kube-controller-manager.kubeconfig")
	if err := kubeconfig(kcmConfig, local, p.CA, kcmCert, kcmKey); err != nil {
		return err
	}
	kcmArgs := []string{filepath.Join(c.Bin, "kube-controller-manager"),
		"--kubeconfig=" + kcmConfig, "--authentication-kubeconfig=" + kcmConfig, "--authorization-kubeconfig=" + kcmConfig,
		"--bind-address=127.0.0.1", "--leader-elect=false",
		"--service-account-private-key-file=" + saKey, "--root-ca-file=" + p.CA, "--use-service-account-credentials=true",
		"--service-cluster-ip-range=" + ServiceCIDRv4.String() + "," + ServiceCIDRv6.String(),
		"--controllers=*,-nodeipam,-cloud-node-lifecycle", "--v=1"}
	if d := c.opts.NodeMonitorGracePeriod; d > 0 {
		kcmArgs = append(kcmArgs, "--node-monitor-grace-period="+d.String())
	}
	if _, err := l.StartNsenter(ns, "kube-controller-manager", nil, kcmArgs...); err != nil {
		return err
	}
	schedCert, schedKey, err := p.issue(certRequest{name: "kube-scheduler", cn: "system:kube-scheduler", client: true})
	if err != nil {
		return err
	}
	schedConfig := filepath.Join(dir, "kube-scheduler.kubeconfig")
	if err := kubeconfig(schedConfig, local, p.CA, schedCert, schedKey); err != nil {
		return err
	}
	_, err = l.StartNsenter(ns, "kube-scheduler", nil, filepath.Join(c.Bin, "kube-scheduler"),
		"--kubeconfig="+schedConfig, "--authentication-kubeconfig="+schedConfig, "--authorization-kubeconfig="+schedConfig,
		"--bind-address=127.0.0.1", "--leader-elect=false", "--v=1")
	if err != nil {
		return err
	}
	// Nodes are created with their pod ranges; each kubelet then
	// registers into its Node object.
	for _, n := range c.Nodes {
		node := &corev1.Node{
			ObjectMeta: metav1.ObjectMeta{Name: n.Name, Labels: map[string]string{corev1.LabelHostname: n.Name, corev1.LabelOSStable: "linux"}},
			Spec:       corev1.NodeSpec{PodCIDR: n.PodCIDRv4.String(), PodCIDRs: []string{n.PodCIDRv4.String(), n.PodCIDRv6.String()}},
		}
		if err := c.Client.Create(ctx, node); err != nil {
			return fmt.Errorf("creating Node %s: %w", n.Name, err)
		}
	}
	return nil
}

// waitReadyz waits for an authenticated GET /readyz that answers 200 (a
// 401 is not ready).
func (c *Cluster) waitReadyz(ctx context.Context, cert, key string) error {
	pair, err := tls.LoadX509KeyPair(cert, key)
	if err != nil {
		return err
	}
	caPEM, err := os.ReadFile(c.pki.CA)
	if err != nil {
		return err
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(caPEM)
	hc := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{Certificates: []tls.Certificate{pair}, RootCAs: pool}}}
	ctx, cancel := context.WithTimeout(ctx, 90*time.Second)
	defer cancel()
	return lab.WaitFor(ctx, 100*time.Millisecond, func() error {
		if !c.apiserver.Running() {
			return fmt.Errorf("kube-apiserver exited: %s", c.apiserver.Tail(2000))
		}
		resp, err := hc.Get("https://" + ControlPlaneHostIPv4.String() + ":6443/readyz")
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("readyz: %s", resp.Status)
		}
		return nil
	})
}

// waitNodesReady waits until every Node is Ready.
func (c *Cluster) waitNodesReady(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	return lab.WaitFor(ctx, 200*time.Millisecond, func() error {
		for _, n := range c.Nodes {
			for _, p := range []*lab.Proc{n.containerd, n.kubelet, n.kubeProxy} {
				if p != nil && !p.Running() {
					return fmt.Errorf("%s exited: %s", p.Name, p.Tail(3000))
				}
			}
		}
		var nodes corev1.NodeList
		if err := c.Client.List(ctx, &nodes); err != nil {
			return err
		}
		ready := 0
		for _, n := range nodes.Items {
			for _, cond := range n.Status.Conditions {
				if cond.Type == corev1.NodeReady && cond.Status == corev1.ConditionTrue {
					ready++
				}
			}
		}
		if ready < len(c.Nodes) {
			return fmt.Errorf("%d of %d nodes Ready", ready, len(c.Nodes))
		}
		return nil
	})
}

// Kubectl returns a kubectl command against the cluster.
func (c *Cluster) Kubectl(args ...string) *exec.Cmd {
	cmd := exec.Command(filepath.Join(c.Bin, "kubectl"), args...)
	cmd.Env = append(os.Environ(), "KUBECONFIG="+c.Kubeconfig)
	return cmd
}

// KubectlOutput runs kubectl and returns its standard output, or an error
// with its standard error.
func (c *Cluster) KubectlOutput(ctx context.Context, args ...string) (string, error) {
	cmd := c.Kubectl(args...)
	cmd = exec.CommandContext(ctx, cmd.Path, cmd.Args[1:]...)
	cmd.Env = append(os.Environ(), "KUBECONFIG="+c.Kubeconfig)
	var out, errb strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return out.String(), fmt.Errorf("kubectl %s: %w: %s", strings.Join(args, " "), err, errb.String())
	}
	return out.String(), nil
}

// Node returns the node named name, or nil.
func (c *Cluster) Node(name string) *Node {
	for _, n := range c.Nodes {
		if n.Name == name {
			return n
		}
	}
	return nil
}

// Names of the images the cluster's tests use (`make image test-images`).
const (
	// PauseImage is the pod sandbox image.
	PauseImage = "lbstack.test/pause:v1"
	// EchoImage answers HTTP with its pod's and node's names.
	EchoImage = "lbstack.test/echo:v1"
)
