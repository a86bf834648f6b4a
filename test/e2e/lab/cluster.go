package lab

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	lbv1 "github.com/lbstack/lbstack/api/v1alpha1"
	"github.com/lbstack/lbstack/internal/testenv"
)

// Cluster is a lab with a Kubernetes control plane: the test API server
// (reachable from the nodes at 192.0.2.1), Node objects for the lab's
// nodes, the lbstack controller on the host and one speaker per node
// namespace, each a subprocess.
type Cluster struct {
	Lab *Lab
	Env *testenv.Env
	// Client talks to the API server.
	Client client.Client
	// Bin is the lbstack binary.
	Bin string
	// Kubeconfig is for processes on the host; LabKubeconfig for the nodes.
	Kubeconfig, LabKubeconfig string
	// KeyFile holds the memberlist key.
	KeyFile string

	Controller *Proc
	Speakers   map[string]*Proc
	// Backends are the nodes' name servers (the stand-in for the pods
	// behind a Service), by node.
	Backends map[string]*Proc
	starts   map[string]int
}

// NewCluster builds a lab with n nodes, starts the API server listening on
// the lab too, builds lbstack and the name server, creates the Node objects
// and starts a name server on every node.
func NewCluster(n int, dir string) (c *Cluster, err error) {
	l, err := New(n, dir)
	if err != nil {
		return nil, err
	}
	c = &Cluster{Lab: l, Speakers: map[string]*Proc{}, Backends: map[string]*Proc{}, starts: map[string]int{}}
	defer func() {
		if err != nil {
			c.Close()
		}
	}()
	c.Env, err = testenv.Start(testenv.Options{APIServerArgs: map[string]string{
		"bind-address": "0.0.0.0",
		// Dual-stack Services; cluster IPs are only allocated, never used.
		"service-cluster-ip-range": "10.0.0.0/24,2001:db8:ffff::/108",
	}})
	if err != nil {
		return c, err
	}
	c.Client = c.Env.Client
	if c.Kubeconfig, err = c.Env.WriteKubeconfig(dir); err != nil {
		return c, err
	}
	if c.LabKubeconfig, err = c.Env.WriteKubeconfigVia(dir, HostIPv4.String()); err != nil {
		return c, err
	}
	root := testenv.RepoRoot()
	c.Bin = filepath.Join(dir, "lbstack")
	names := filepath.Join(dir, "namesrv")
	for _, b := range [][2]string{{c.Bin, "./cmd/lbstack"}, {names, "./test/e2e/lab/namesrv"}} {
		if bin := os.Getenv("LBSTACK_E2E_BINARY"); bin != "" && b[1] == "./cmd/lbstack" {
			c.Bin = bin
			continue
		}
		cmd := exec.Command("go", "build", "-o", b[0], b[1])
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			return c, fmt.Errorf("building %s: %w: %s", b[1], err, out)
		}
	}
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		return c, err
	}
	c.KeyFile = filepath.Join(dir, "memberlist.key")
	if err := os.WriteFile(c.KeyFile, key, 0o600); err != nil {
		return c, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for _, node := range l.Nodes {
		obj := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: node.Name, Labels: map[string]string{corev1.LabelHostname: node.Name, corev1.LabelOSStable: "linux"}}}
		if err := c.Client.Create(ctx, obj); err != nil {
			return c, fmt.Errorf("creating Node %s: %w", node.Name, err)
		}
		obj.Status.Addresses = []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: node.IPv4.String()}, {Type: corev1.NodeHostName, Address: node.Name}}
		obj.Status.Conditions = []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue, LastHeartbeatTime: metav1.Now(), LastTransitionTime: metav1.Now()}}
		if err := c.Client.Status().Update(ctx, obj); err != nil {
			return c, fmt.Errorf("setting Node %s status: %w", node.Name, err)
		}
		// The API server taints a new Node not-ready (TaintNodesByCondition)
		// and the node lifecycle controller, which the lab does not run,
		// lifts the taint once the Node is Ready: do as it does, so that the
		// Nodes look like a real cluster's Ready nodes (where speakers are
		// expected).
		obj.Spec.Taints = nil
		if err := c.Client.Update(ctx, obj); err != nil {
			return c, fmt.Errorf("untainting Node %s: %w", node.Name, err)
		}
		p, err := l.Start(node.NS, "namesrv-"+node.Name, nil, names, "-name", node.Name, "-listen", ":80")
		if err != nil {
			return c, err
		}
		c.Backends[node.Name] = p
	}
	return c, nil
}

// StartController starts the lbstack controller on the host.
func (c *Cluster) StartController() error {
	p, err := c.Lab.Start("", "controller", nil, c.Bin, "controller", "--kubeconfig", c.Kubeconfig,
		"--leader-elect=false", "--metrics-bind-address=0", "--health-probe-bind-address=0", "--log-format=console", "--pool-status-interval=200ms")
	c.Controller = p
	return err
}

// StartSpeaker starts the speaker of node in its namespace with the
// default failure detection unless args override it.
func (c *Cluster) StartSpeaker(node string, args ...string) (*Proc, error) {
	n := c.Lab.Node(node)
	if n == nil {
		return nil, fmt.Errorf("no node %s", node)
	}
	c.starts[node]++
	all := append([]string{c.Bin, "speaker", "--kubeconfig", c.LabKubeconfig, "--node-name", node,
		"--memberlist-bind-address", n.IPv4.String(), "--memberlist-key-file", c.KeyFile,
		"--metrics-bind-address=0", "--health-probe-bind-address=0", "--log-format=console"}, args...)
	var env []string
	if lim := os.Getenv("LBSTACK_E2E_SPEAKER_GOMEMLIMIT"); lim != "" {
		// As the DaemonSet sets it from the container's memory limit.
		env = append(env, "GOMEMLIMIT="+lim)
	}
	p, err := c.Lab.Start(n.NS, fmt.Sprintf("speaker-%s-%d", node, c.starts[node]), env, all...)
	if err != nil {
		return nil, err
	}
	c.Speakers[node] = p
	return p, nil
}

// Apply creates objects (the test API server has no garbage collector;
// the cluster is thrown away as a whole).
func (c *Cluster) Apply(ctx context.Context, objs ...client.Object) error {
	for _, o := range objs {
		if err := c.Client.Create(ctx, o); err != nil {
			return fmt.Errorf("creating %T %s: %w", o, o.GetName(), err)
		}
	}
	return nil
}

// L2Config returns a pool of the given ranges announced over layer 2 from
// every node.
func L2Config(name string, addrs ...string) []client.Object {
	pool := &lbv1.IPAddressPool{ObjectMeta: metav1.ObjectMeta{Name: name}}
	for _, a := range addrs {
		pool.Spec.Addresses = append(pool.Spec.Addresses, lbv1.PoolAddress(a))
	}
	adv := &lbv1.L2Advertisement{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: lbv1.L2AdvertisementSpec{IPAddressPools: []string{name}}}
	return []client.Object{pool, adv}
}

// ServiceIPs waits until the Service has addresses and returns them.
func (c *Cluster) ServiceIPs(ctx context.Context, key client.ObjectKey, want int) ([]netip.Addr, error) {
	return ServiceIPs(ctx, c.Client, key, want)
}

// ServiceIPs waits until the Service has at least want addresses in its
// status and returns them, IPv4 first.
func ServiceIPs(ctx context.Context, r client.Reader, key client.ObjectKey, want int) ([]netip.Addr, error) {
	var ips []netip.Addr
	err := WaitFor(ctx, 50*time.Millisecond, func() error {
		var svc corev1.Service
		if err := r.Get(ctx, key, &svc); err != nil {
			return err
		}
		ips = nil
		for _, in := range svc.Status.LoadBalancer.Ingress {
			if a, err := netip.ParseAddr(in.IP); err == nil {
				ips = append(ips, a)
			}
		}
		if len(ips) < want {
			return fmt.Errorf("%s has %d of %d addresses", key, len(ips), want)
		}
		return nil
	})
	slices.SortStableFunc(ips, func(a, b netip.Addr) int { return a.BitLen() - b.BitLen() })
	return ips, err
}

// Announcement returns the Service's ServiceAnnouncement status.
func (c *Cluster) Announcement(ctx context.Context, key client.ObjectKey) (*lbv1.ServiceAnnouncementStatus, error) {
	var a lbv1.ServiceAnnouncement
	if err := c.Client.Get(ctx, key, &a); err != nil {
		return nil, err
	}
	return &a.Status, nil
}

// WaitAnnounced waits until the ServiceAnnouncement names one node that
// passes ok, and returns it.
func (c *Cluster) WaitAnnounced(ctx context.Context, key client.ObjectKey, ok func(node string) bool) (*lbv1.ServiceAnnouncementStatus, error) {
	return WaitAnnounced(ctx, c.Client, key, ok)
}

// WaitAnnounced waits until exactly one node announces the Service (its
// ServiceAnnouncement's status) and ok (nil: any) accepts it, and returns
// the status.
func WaitAnnounced(ctx context.Context, r client.Reader, key client.ObjectKey, ok func(node string) bool) (*lbv1.ServiceAnnouncementStatus, error) {
	var st lbv1.ServiceAnnouncementStatus
	err := WaitFor(ctx, 50*time.Millisecond, func() error {
		var a lbv1.ServiceAnnouncement
		if err := r.Get(ctx, key, &a); err != nil {
			return err
		}
		st = a.Status
		if len(st.Nodes) != 1 || (ok != nil && !ok(st.Nodes[0].Node)) {
			return fmt.Errorf("announced by %+v", st.Nodes)
		}
		return nil
	})
	return &st, err
}

var arpingReply = regexp.MustCompile(`(?i)from ([0-9a-f]{2}(?::[0-9a-f]{2}){5})`)

// ArpingMACs is Lab.ArpingMACs.
func (c *Cluster) ArpingMACs(ip netip.Addr, count int) (map[string]int, error) {
	return c.Lab.ArpingMACs(ip, count)
}

// ArpingMACs sends count ARP requests for ip from the client and returns
// the MACs that answered, with how often.
func (l *Lab) ArpingMACs(ip netip.Addr, count int) (map[string]int, error) {
	out, err := l.Output(l.Client, "arping", "-c", fmt.Sprint(count), "-w", "1", "-i", "eth0", ip.String())
	macs := map[string]int{}
	for _, m := range arpingReply.FindAllStringSubmatch(out, -1) {
		macs[strings.ToLower(m[1])]++
	}
	if len(macs) == 0 && err != nil {
		return nil, err
	}
	return macs, nil
}

// ArpingOnce sends one ARP request for ip from the client and returns the
// MACs that answered it within wait, sorted (none: nobody answered).
func (l *Lab) ArpingOnce(ip netip.Addr, wait time.Duration) ([]string, error) {
	out, err := l.Output(l.Client, "arping", "-c", "1", "-w", fmt.Sprintf("%.3f", wait.Seconds()), "-i", "eth0", ip.String())
	var macs []string
	for _, m := range arpingReply.FindAllStringSubmatch(out, -1) {
		macs = append(macs, strings.ToLower(m[1]))
	}
	slices.Sort(macs)
	macs = slices.Compact(macs)
	if len(macs) == 0 && err != nil && !strings.Contains(out, "packets transmitted") {
		return nil, fmt.Errorf("%w: %s", err, out)
	}
	return macs, nil
}

// NeighMAC returns the client's neighbour entry for ip ("" if none usable).
func (c *Cluster) NeighMAC(ip netip.Addr) (string, error) { return c.Lab.NeighMAC(ip) }

// NeighMAC returns the client's neighbour entry for ip ("" if none usable).
func (l *Lab) NeighMAC(ip netip.Addr) (string, error) {
	out, err := l.Output(l.Client, "ip", "-j", "neigh", "show", ip.String(), "dev", "eth0")
	if err != nil {
		return "", err
	}
	var entries []struct {
		LLAddr string   `json:"lladdr"`
		State  []string `json:"state"`
	}
	if err := json.Unmarshal([]byte(out), &entries); err != nil {
		return "", fmt.Errorf("parsing ip neigh: %w: %s", err, out)
	}
	for _, e := range entries {
		if e.LLAddr != "" && !slices.Contains(e.State, "FAILED") && !slices.Contains(e.State, "INCOMPLETE") {
			return strings.ToLower(e.LLAddr), nil
		}
	}
	return "", nil
}

// Curl fetches http://ip/ from the client and returns the body (the name
// of the node that answered).
func (c *Cluster) Curl(ip netip.Addr) (string, error) { return c.Lab.Curl(ip) }

// Curl fetches http://ip/ from the client and returns the body.
func (l *Lab) Curl(ip netip.Addr) (string, error) {
	host := ip.String()
	if ip.Is6() {
		host = "[" + host + "]"
	}
	out, err := l.Output(l.Client, "curl", "-sS", "--max-time", "2", "http://"+host+"/")
	return strings.TrimSpace(out), err
}

// Ping pings ip once from the client (it fills the IPv6 neighbour entry).
func (c *Cluster) Ping(ip netip.Addr) error { return c.Lab.Ping(ip) }

// Ping pings ip once from the client.
func (l *Lab) Ping(ip netip.Addr) error {
	return l.Run(l.Client, "ping", "-c", "1", "-W", "2", ip.String())
}

// Close stops everything and removes the lab.
func (c *Cluster) Close() {
	if c.Lab != nil {
		c.Lab.Close()
	}
	if c.Env != nil {
		_ = c.Env.Stop()
	}
}

// ServiceIPsOnNodes waits until the Service has want addresses, puts each
// on lo of every node (so the node that receives the traffic accepts it),
// and returns the IPv4 and IPv6 one (zero if the Service has none).
func (c *Cluster) ServiceIPsOnNodes(ctx context.Context, key client.ObjectKey, want int) (v4, v6 netip.Addr, err error) {
	ips, err := c.ServiceIPs(ctx, key, want)
	if err != nil {
		return v4, v6, err
	}
	for _, ip := range ips {
		if ip.Is4() {
			v4 = ip
		} else {
			v6 = ip
		}
		if err := c.Lab.AddAddress(ip); err != nil {
			return v4, v6, err
		}
	}
	return v4, v6, nil
}
