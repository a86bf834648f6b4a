package realcluster

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/lbstack/lbstack/test/e2e/lab"
)

// cgroupV1Root is where the cgroup v1 hierarchies are mounted.
const cgroupV1Root = "/sys/fs/cgroup"

// startNode writes a node's configuration and starts containerd (with the
// images imported), kubelet and kube-proxy in its namespace.
func (c *Cluster) startNode(ctx context.Context, n *Node) error {
	for _, d := range []string{n.dir, n.runcRoot, filepath.Join(n.dir, "cni"), filepath.Join(n.dir, "pod-logs")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return err
		}
	}
	if err := c.makeCgroups(n); err != nil {
		return err
	}
	if err := c.writeCNI(n); err != nil {
		return err
	}
	if err := c.startContainerd(ctx, n); err != nil {
		return err
	}
	if err := c.startKubelet(n); err != nil {
		return err
	}
	return c.startKubeProxy(n)
}

// hierarchies lists the cgroup hierarchies kubelet uses: every v1 mount
// under /sys/fs/cgroup, or the v2 root alone on a unified host.
func hierarchies() []string {
	if _, err := os.Stat(filepath.Join(cgroupV1Root, "cgroup.controllers")); err == nil {
		return []string{cgroupV1Root}
	}
	entries, _ := os.ReadDir(cgroupV1Root)
	var out []string
	for _, e := range entries {
		p := filepath.Join(cgroupV1Root, e.Name())
		if fi, err := os.Lstat(p); err != nil || !fi.IsDir() {
			continue // symlinks such as cpu,cpuacct
		}
		out = append(out, p)
	}
	return out
}

// makeCgroups creates the node's cgroupRoot in every hierarchy (kubelet
// expects it in each), with cpuset.cpus and cpuset.mems copied from the
// root so tasks may join the cpuset one.
func (c *Cluster) makeCgroups(n *Node) error {
	if err := enableV2Controllers(); err != nil {
		return err
	}
	for _, h := range hierarchies() {
		dir := filepath.Join(h, n.cgroup)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return fmt.Errorf("creating cgroup %s: %w", dir, err)
		}
		for _, f := range []string{"cpuset.cpus", "cpuset.mems"} {
			b, err := os.ReadFile(filepath.Join(h, f))
			if err != nil {
				continue
			}
			if err := os.WriteFile(filepath.Join(dir, f), b, 0o644); err != nil {
				return fmt.Errorf("writing %s/%s: %w", dir, f, err)
			}
		}
	}
	return nil
}

// enableV2Controllers makes, on a cgroup v2 host, the controllers kubelet
// requires (cpu, cpuset, memory, hugetlb, pids: those the root offers)
// available to the root's children, where each node's cgroupRoot lives.
func enableV2Controllers() error {
	root := filepath.Join(cgroupV1Root, "cgroup.controllers")
	b, err := os.ReadFile(root)
	if err != nil {
		return nil // cgroup v1: nothing to enable
	}
	offered := strings.Fields(string(b))
	var enable []string
	for _, c := range []string{"cpu", "cpuset", "memory", "hugetlb", "pids"} {
		if slices.Contains(offered, c) {
			enable = append(enable, "+"+c)
		}
	}
	if len(enable) == 0 {
		return nil
	}
	if err := os.WriteFile(filepath.Join(cgroupV1Root, "cgroup.subtree_control"), []byte(strings.Join(enable, " ")), 0o644); err != nil {
		return fmt.Errorf("enabling cgroup controllers %v for the nodes: %w", enable, err)
	}
	return nil
}

// writeCNI writes the node's pod network: a bridge with the node's ranges,
// no masquerade (the pod ranges are routed between the nodes).
func (c *Cluster) writeCNI(n *Node) error {
	conf := map[string]any{
		"cniVersion": "0.4.0",
		"name":       "lbstack-pods",
		"plugins": []any{
			map[string]any{
				"type": "bridge", "bridge": "cni0", "isGateway": true, "ipMasq": false, "hairpinMode": true,
				"ipam": map[string]any{
					"type":    "host-local",
					"ranges":  []any{[]any{map[string]string{"subnet": n.PodCIDRv4.String()}}, []any{map[string]string{"subnet": n.PodCIDRv6.String()}}},
					"routes":  []any{map[string]string{"dst": "0.0.0.0/0"}, map[string]string{"dst": "::/0"}},
					"dataDir": filepath.Join(n.dir, "cni-ipam"),
				},
			},
			map[string]any{"type": "portmap", "capabilities": map[string]bool{"portMappings": true}},
		},
	}
	b, err := json.MarshalIndent(conf, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(n.dir, "cni", "10-lbstack.conflist"), b, 0o644)
}

const containerdConfig = `version = 2
root = "{{dir}}/containerd/root"
state = "{{dir}}/containerd/state"
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper", "io.containerd.tracing.processor.v1.otlp", "io.containerd.internal.v1.tracing"]

[grpc]
  address = "{{socket}}"

[ttrpc]
  address = "{{socket}}.ttrpc"

[plugins."io.containerd.internal.v1.opt"]
  path = "{{dir}}/containerd/opt"

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{{pause}}"
  # No CAP_SYS_RESOURCE in this sandbox: runc cannot lower oom_score_adj.
  restrict_oom_score_adj = true
  enable_selinux = false
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        Root = "{{runc}}"
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "` + cniBinDir + `"
    conf_dir = "{{dir}}/cni"
`

// startContainerd starts the node's containerd and imports the images.
func (c *Cluster) startContainerd(ctx context.Context, n *Node) error {
	conf := strings.NewReplacer("{{dir}}", n.dir, "{{socket}}", n.socket, "{{runc}}", n.runcRoot, "{{pause}}", c.opts.PauseImage).Replace(containerdConfig)
	path := filepath.Join(n.dir, "containerd.toml")
	if err := os.WriteFile(path, []byte(conf), 0o644); err != nil {
		return err
	}
	var err error
	// containerd and its shims must see the host's mounts and cgroups:
	// enter only the network namespace.
	if n.containerd, err = c.Lab.StartNsenter(n.NS, "containerd-"+n.Name, nil, "containerd", "--config", path, "--log-level", "warn"); err != nil {
		return err
	}
	if err := waitContainerd(ctx, n); err != nil {
		return err
	}
	for _, img := range c.opts.Images {
		// --all-platforms is not needed: only the node's platform is unpacked.
		out, err := exec.CommandContext(ctx, "ctr", "-a", n.socket, "-n", "k8s.io", "images", "import", "--no-unpack=false", img).CombinedOutput()
		if err != nil {
			return fmt.Errorf("%s: importing %s: %w: %s", n.Name, img, err, out)
		}
	}
	return nil
}

// waitContainerd waits up to 30 s until the node's containerd answers.
func waitContainerd(ctx context.Context, n *Node) error {
	wait, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := lab.WaitFor(wait, 50*time.Millisecond, func() error {
		if !n.containerd.Running() {
			return fmt.Errorf("containerd exited: %s", n.containerd.Tail(2000))
		}
		return exec.CommandContext(wait, "ctr", "-a", n.socket, "version").Run()
	}); err != nil {
		return fmt.Errorf("%s: containerd: %w", n.Name, err)
	}
	return nil
}

// startKubelet writes the node's kubelet configuration and starts it.
func (c *Cluster) startKubelet(n *Node) error {
	cert, key, err := c.pki.issue(certRequest{name: "kubelet-" + n.Name, cn: "system:node:" + n.Name, orgs: []string{"system:nodes"}, client: true})
	if err != nil {
		return err
	}
	kc := filepath.Join(n.dir, "kubelet.kubeconfig")
	if err := kubeconfig(kc, "https://"+ControlPlaneIPv4.String()+":6443", c.pki.CA, cert, key); err != nil {
		return err
	}
	resolv := filepath.Join(n.dir, "resolv.conf")
	if err := os.WriteFile(resolv, nil, 0o644); err != nil {
		return err
	}
	config := map[string]any{
		"apiVersion":                    "kubelet.config.k8s.io/v1beta1",
		"kind":                          "KubeletConfiguration",
		"address":                       n.IPv4.String(),
		"readOnlyPort":                  0,
		"healthzBindAddress":            "127.0.0.1",
		"cgroupDriver":                  "cgroupfs",
		"cgroupRoot":                    "/" + n.cgroup,
		"failCgroupV1":                  false,
		"failSwapOn":                    false,
		"containerRuntimeEndpoint":      "unix://" + n.socket,
		"podLogsDir":                    filepath.Join(n.dir, "pod-logs"),
		"resolvConf":                    resolv,
		"clusterDomain":                 "cluster.local",
		"authentication":                map[string]any{"anonymous": map[string]bool{"enabled": false}, "webhook": map[string]bool{"enabled": true}, "x509": map[string]string{"clientCAFile": c.pki.CA}},
		"authorization":                 map[string]string{"mode": "Webhook"},
		"evictionHard":                  map[string]string{"memory.available": "1Mi", "nodefs.available": "1%", "nodefs.inodesFree": "1%", "imagefs.available": "1%"},
		"imageGCHighThresholdPercent":   100,
		"imageGCLowThresholdPercent":    99,
		"localStorageCapacityIsolation": false,
		"serializeImagePulls":           false,
		"nodeStatusUpdateFrequency":     "4s",
		"syncFrequency":                 "10s",
		"fileCheckFrequency":            "20s",
		"shutdownGracePeriod":           "0s",
		"registerNode":                  true,
	}
	b, err := json.MarshalIndent(config, "", "  ")
	if err != nil {
		return err
	}
	path := filepath.Join(n.dir, "kubelet.json")
	if err := os.WriteFile(path, b, 0o644); err != nil {
		return err
	}
	kubeletStart.Lock()
	defer kubeletStart.Unlock()
	_ = os.Remove(devicePluginSocket)
	n.kubelet, err = c.Lab.StartNsenter(n.NS, "kubelet-"+n.Name, nil, filepath.Join(c.Bin, "kubelet"),
		"--config="+path, "--kubeconfig="+kc, "--root-dir="+filepath.Join(n.dir, "kubelet"),
		// Its self-signed serving certificate, of its own (the default is
		// /var/lib/kubelet/pki, shared by every kubelet on the host).
		"--cert-dir="+filepath.Join(n.dir, "kubelet-pki"),
		"--hostname-override="+n.Name, "--node-ip="+n.IPv4.String()+","+n.IPv6.String(), "--v=1")
	if err != nil {
		return err
	}
	// Hold the next kubelet back until this one has bound its socket (or
	// exited, or a minute passed: a slow runtime must not stall the rest).
	deadline := time.Now().Add(time.Minute)
	for time.Now().Before(deadline) && n.kubelet.Running() {
		if _, err := os.Stat(devicePluginSocket); err == nil {
			return nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	if !n.kubelet.Running() {
		return fmt.Errorf("kubelet exited while starting: %s", n.kubelet.Tail(2000))
	}
	return nil
}

// devicePluginSocket is bound by every kubelet on the host whatever its
// root dir (the device plugin path is a constant). A starting kubelet
// removes the files in its folder, then binds: two starting at once race
// between one's removal and the other's bind, and the loser exits
// ("Failed to start ContainerManager ... address already in use").
const devicePluginSocket = kubeletDir + "/device-plugins/kubelet.sock"

// kubeletStart serializes kubelet starts on the host until each has bound
// devicePluginSocket.
var kubeletStart sync.Mutex

// startKubeProxy starts kube-proxy (iptables mode) on the node.
func (c *Cluster) startKubeProxy(n *Node) error {
	cert, key, err := c.pki.issue(certRequest{name: "kube-proxy-" + n.Name, cn: "system:kube-proxy", client: true})
	if err != nil {
		return err
	}
	kc := filepath.Join(n.dir, "kube-proxy.kubeconfig")
	if err := kubeconfig(kc, "https://"+ControlPlaneIPv4.String()+":6443", c.pki.CA, cert, key); err != nil {
		return err
	}
	config := map[string]any{
		"apiVersion":         "kubeproxy.config.k8s.io/v1alpha1",
		"kind":               "KubeProxyConfiguration",
		"clientConnection":   map[string]string{"kubeconfig": kc},
		"mode":               "iptables",
		"clusterCIDR":        PodCIDRv4.String() + "," + PodCIDRv6.String(),
		"hostnameOverride":   n.Name,
		"bindAddress":        "0.0.0.0",
		"healthzBindAddress": net.JoinHostPort(n.IPv4.String(), "10256"),
		"metricsBindAddress": "127.0.0.1:10249",
		// The conntrack table size is the host's; leave it and the
		// timeouts alone.
		"conntrack": map[string]any{"maxPerCore": 0, "min": 0, "tcpEstablishedTimeout": "0s", "tcpCloseWaitTimeout": "0s"},
		"iptables":  map[string]any{"syncPeriod": "10s", "minSyncPeriod": "0s"},
	}
	b, err := json.MarshalIndent(config, "", "  ")
	if err != nil {
		return err
	}
	path := filepath.Join(n.dir, "kube-proxy.json")
	if err := os.WriteFile(path, b, 0o644); err != nil {
		return err
	}
	n.kubeProxy, err = c.Lab.StartNsenter(n.NS, "kube-proxy-"+n.Name, nil, filepath.Join(c.Bin, "kube-proxy"), "--config="+path, "--v=1")
	return err
}
