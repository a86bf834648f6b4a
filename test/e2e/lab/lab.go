// Package lab builds a small layer-2 network out of Linux network
// namespaces for end-to-end tests and the demo: a bridge in its own
// namespace, one namespace per "node", one for a client, and a veth from
// the host's namespace so processes on the nodes reach the test API server
// (which listens on the host). Only documentation addresses are used:
// 192.0.2.0/24 and 2001:db8::/64 inside the namespaces, and
// 198.51.100.0/24 between the host and the nodes (a separate subnet on
// the same bridge, so the lab never shadows the host's own routes).
//
//	host ─── 198.51.100.1 ──────────────┐
//	node1 ── 192.0.2.11, 198.51.100.11 ──┤
//	node2 ── 192.0.2.12, 198.51.100.12 ──┼── bridge (namespace <prefix>-br)
//	node3 ── 192.0.2.13, 198.51.100.13 ──┤
//	client ─ 192.0.2.100 ────────────────┘
//
// Everything the lab creates is named with a per-process prefix and removed
// by Close; processes it starts are killed by PID.
package lab

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Addresses of the lab network.
var (
	HostIPv4   = netip.MustParseAddr("198.51.100.1")
	ClientIPv4 = netip.MustParseAddr("192.0.2.100")
	ClientIPv6 = netip.MustParseAddr("2001:db8::100")
)

// Node is one node namespace.
type Node struct {
	// Name is the Kubernetes node name (node1, node2, ...).
	Name string
	// NS is the network namespace.
	NS   string
	IPv4 netip.Addr
	IPv6 netip.Addr
	// MAC is the MAC address of the node's eth0.
	MAC string
}

// Lab is a built lab network.
type Lab struct {
	Prefix string
	Bridge string
	Client string
	// HostIf is the host's interface into the lab (198.51.100.1).
	HostIf string
	Nodes  []*Node
	// Dir receives the logs of started processes.
	Dir string

	mu       sync.Mutex
	procs    []*Proc
	netns    []string
	hostIfs  []string
	unlock   func()
	keepLock bool
}

// Prerequisites returns an error naming what is missing to build a lab:
// root and the ip, arping, ping and curl commands.
func Prerequisites() error {
	if os.Geteuid() != 0 {
		return errors.New("network namespaces need root")
	}
	var missing []string
	for _, c := range []string{"ip", "arping", "ping", "curl", "iptables"} {
		if _, err := exec.LookPath(c); err != nil {
			missing = append(missing, c)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("missing commands: %s", strings.Join(missing, ", "))
	}
	return nil
}

// New builds a lab with n nodes; dir receives process logs.
func New(n int, dir string) (*Lab, error) {
	return NewWith(Options{Nodes: n, Dir: dir, NodeHostAddresses: true})
}

// Options shape a lab.
type Options struct {
	// Nodes is the number of node namespaces.
	Nodes int
	// Dir receives process logs.
	Dir string
	// NodeHostAddresses gives every node a 198.51.100.1x/24 address so it
	// reaches processes on the host (the test API server) over the host's
	// leg. The real-node cluster runs its control plane in a namespace of
	// its own and leaves them out.
	NodeHostAddresses bool
	// KeepLock leaves the labs' lock held after Close, for a caller that
	// has more to undo afterwards; it calls Unlock when done.
	KeepLock bool
}

// held is set while this process holds the labs' lock: a second lab in
// the same process would share its names, so it fails at once.
var held atomic.Bool

// NewWith builds a lab. It holds an exclusive lock for its lifetime, so
// two labs (a test and a benchmark, two test packages of one `go test`
// run) never share the host's 198.51.100.0/24 leg: the second waits.
func NewWith(o Options) (l *Lab, err error) {
	if err := Prerequisites(); err != nil {
		return nil, err
	}
	if !held.CompareAndSwap(false, true) {
		return nil, errors.New("this process already runs a lab")
	}
	unlock, err := lock()
	if err != nil {
		held.Store(false)
		return nil, err
	}
	// Holding the lock proves no other lab runs: whatever a killed one
	// left behind (namespaces, the host's leg) goes now.
	sweep()
	prefix := fmt.Sprintf("lbs%d", os.Getpid()%100000)
	l = &Lab{Prefix: prefix, Bridge: prefix + "-br", Client: prefix + "-c", HostIf: prefix + "h", Dir: o.Dir, keepLock: o.KeepLock,
		unlock: func() { unlock(); held.Store(false) }}
	defer func() {
		if err != nil {
			l.Close()
		}
	}()
	if err := l.addNS(l.Bridge); err != nil {
		return l, err
	}
	if err := l.run(l.Bridge, "ip", "link", "add", "br0", "type", "bridge"); err != nil {
		return l, err
	}
	// No STP delay: ports forward at once.
	if err := l.run(l.Bridge, "ip", "link", "set", "br0", "type", "bridge", "forward_delay", "0", "stp_state", "0"); err != nil {
		return l, err
	}
	if err := l.run(l.Bridge, "ip", "link", "set", "br0", "up"); err != nil {
		return l, err
	}
	// The host's leg.
	if err := l.veth("", l.HostIf, "host"); err != nil {
		return l, err
	}
	if err := l.run("", "ip", "addr", "add", HostIPv4.String()+"/24", "dev", l.HostIf); err != nil {
		return l, err
	}
	for i := 1; i <= o.Nodes; i++ {
		node := &Node{
			Name: fmt.Sprintf("node%d", i),
			NS:   fmt.Sprintf("%s-n%d", prefix, i),
			IPv4: netip.AddrFrom4([4]byte{192, 0, 2, byte(10 + i)}),
			IPv6: netip.MustParseAddr(fmt.Sprintf("2001:db8::%d", 10+i)),
		}
		if err := l.host(node.NS, node.IPv4, node.IPv6, fmt.Sprintf("n%d", i)); err != nil {
			return l, err
		}
		if o.NodeHostAddresses {
			if err := l.run(node.NS, "ip", "addr", "add", fmt.Sprintf("198.51.100.%d/24", 10+i), "dev", "eth0"); err != nil {
				return l, err
			}
		}
		mac, err := l.Output(node.NS, "cat", "/sys/class/net/eth0/address")
		if err != nil {
			return l, err
		}
		node.MAC = strings.TrimSpace(mac)
		// A Service IP sits on lo of every node so the kernel accepts its
		// traffic; only the speaker answers ARP/NDP for it.
		for _, kv := range [][2]string{{"net.ipv4.conf.all.arp_ignore", "1"}, {"net.ipv4.conf.all.arp_announce", "2"}, {"net.ipv4.conf.eth0.arp_ignore", "1"}, {"net.ipv4.conf.eth0.arp_announce", "2"}} {
			if err := l.run(node.NS, "sysctl", "-qw", kv[0]+"="+kv[1]); err != nil {
				return l, err
			}
		}
		l.Nodes = append(l.Nodes, node)
	}
	if err := l.host(l.Client, ClientIPv4, ClientIPv6, "c"); err != nil {
		return l, err
	}
	return l, nil
}

// lockPath is the file every lab locks; see NewWith.
const lockPath = "/run/lbstack-lab.lock"

// lock takes the labs' exclusive lock, waiting up to 30 minutes for
// another lab to finish.
func lock() (func(), error) {
	f, err := os.OpenFile(lockPath, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("opening the lab lock: %w", err)
	}
	done := make(chan error, 1)
	go func() { done <- syscall.Flock(int(f.Fd()), syscall.LOCK_EX) }()
	select {
	case err := <-done:
		if err != nil {
			f.Close()
			return nil, fmt.Errorf("locking %s: %w", lockPath, err)
		}
	case <-time.After(30 * time.Minute):
		f.Close()
		return nil, fmt.Errorf("another lab has held %s for 30 minutes", lockPath)
	}
	return func() { _ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN); f.Close() }, nil
}

// labName matches the namespaces and host interfaces labs create.
var labName = regexp.MustCompile(`^lbs[0-9]+(-|h$)`)

// sweep removes the namespaces and host interfaces of labs that were
// killed before they could clean up. Called with the lock held.
func sweep() {
	if entries, err := os.ReadDir("/run/netns"); err == nil {
		for _, e := range entries {
			if labName.MatchString(e.Name()) {
				_ = exec.Command("ip", "netns", "del", e.Name()).Run()
			}
		}
	}
	if ifaces, err := net.Interfaces(); err == nil {
		for _, i := range ifaces {
			if labName.MatchString(i.Name) {
				_ = exec.Command("ip", "link", "del", i.Name).Run()
			}
		}
	}
}

// Unlock releases the labs' lock (Close does, unless Options.KeepLock).
func (l *Lab) Unlock() {
	if l.unlock != nil {
		l.unlock()
		l.unlock = nil
	}
}

// AddHost adds a namespace named ns with an eth0 on the bridge holding
// v4/24 and v6/64 (the control plane's, a router's), removed by Close.
func (l *Lab) AddHost(ns string, v4, v6 netip.Addr, tag string) error {
	return l.host(ns, v4, v6, tag)
}

// host makes a namespace with an eth0 on the bridge and the addresses.
func (l *Lab) host(ns string, v4, v6 netip.Addr, tag string) error {
	if err := l.addNS(ns); err != nil {
		return err
	}
	for _, kv := range [][2]string{{"net.ipv6.conf.all.accept_dad", "0"}, {"net.ipv6.conf.default.accept_dad", "0"}} {
		if err := l.run(ns, "sysctl", "-qw", kv[0]+"="+kv[1]); err != nil {
			return err
		}
	}
	if err := l.veth(ns, "eth0", tag); err != nil {
		return err
	}
	for _, args := range [][]string{
		{"ip", "link", "set", "lo", "up"},
		{"ip", "addr", "add", v4.String() + "/24", "dev", "eth0"},
		{"ip", "-6", "addr", "add", v6.String() + "/64", "dev", "eth0", "nodad"},
	} {
		if err := l.run(ns, args...); err != nil {
			return err
		}
	}
	return nil
}

// veth connects namespace ns ("" = host) to the bridge with an interface
// named ifname there.
func (l *Lab) veth(ns, ifname, tag string) error {
	a, b := l.Prefix+tag+"a", l.Prefix+tag+"b"
	if err := l.run("", "ip", "link", "add", a, "type", "veth", "peer", "name", b); err != nil {
		return err
	}
	l.mu.Lock()
	l.hostIfs = append(l.hostIfs, a)
	l.mu.Unlock()
	if err := l.run("", "ip", "link", "set", b, "netns", l.Bridge); err != nil {
		return err
	}
	if err := l.run(l.Bridge, "ip", "link", "set", b, "master", "br0", "up"); err != nil {
		return err
	}
	if ns == "" {
		if err := l.run("", "ip", "link", "set", a, "name", ifname); err != nil {
			return err
		}
		l.mu.Lock()
		l.hostIfs[len(l.hostIfs)-1] = ifname
		l.mu.Unlock()
		return l.run("", "ip", "link", "set", ifname, "up")
	}
	if err := l.run("", "ip", "link", "set", a, "netns", ns); err != nil {
		return err
	}
	if err := l.run(ns, "ip", "link", "set", a, "name", ifname); err != nil {
		return err
	}
	return l.run(ns, "ip", "link", "set", ifname, "up")
}

// PointToPoint links namespaces a and b with a veth pair named ifname on
// both sides that carries only the given IPv6 link-local addresses (none
// generated), as an unnumbered BGP session wants. The pair goes with the
// namespaces.
func (l *Lab) PointToPoint(a, b, ifname string, llA, llB netip.Addr) error {
	const tmp = "lbp2ptmp"
	if err := l.run(a, "ip", "link", "add", ifname, "type", "veth", "peer", "name", tmp, "netns", b); err != nil {
		return err
	}
	if err := l.run(b, "ip", "link", "set", tmp, "name", ifname); err != nil {
		return err
	}
	for _, end := range []struct {
		ns   string
		addr netip.Addr
	}{{a, llA}, {b, llB}} {
		for _, args := range [][]string{
			{"ip", "link", "set", ifname, "addrgenmode", "none"},
			{"ip", "-6", "addr", "add", end.addr.String() + "/64", "dev", ifname, "nodad"},
			{"ip", "link", "set", ifname, "up"},
		} {
			if err := l.run(end.ns, args...); err != nil {
				return err
			}
		}
	}
	return nil
}

func (l *Lab) addNS(ns string) error {
	if err := l.run("", "ip", "netns", "add", ns); err != nil {
		return err
	}
	l.mu.Lock()
	l.netns = append(l.netns, ns)
	l.mu.Unlock()
	return nil
}

// Command returns a command that runs in namespace ns ("" = host) under
// `ip netns exec`, which also remounts /sys for the namespace (so
// /sys/class/net shows its interfaces).
func (l *Lab) Command(ns string, args ...string) *exec.Cmd {
	if ns == "" {
		return exec.Command(args[0], args[1:]...)
	}
	return exec.Command("ip", append([]string{"netns", "exec", ns}, args...)...)
}

// NsenterCommand returns a command that runs in namespace ns with only
// its network namespace changed (`nsenter --net`): no private mount
// namespace and no /sys remount, as kubelet and containerd need (their
// mounts and cgroups must be the host's).
func NsenterCommand(ns string, args ...string) *exec.Cmd {
	return exec.Command("nsenter", append([]string{"--net=/run/netns/" + ns, "--"}, args...)...)
}

func (l *Lab) run(ns string, args ...string) error {
	_, err := l.Output(ns, args...)
	return err
}

// Run runs a command in ns and returns an error with its output if it fails.
func (l *Lab) Run(ns string, args ...string) error { return l.run(ns, args...) }

// Output runs a command in ns and returns its standard output.
func (l *Lab) Output(ns string, args ...string) (string, error) {
	cmd := l.Command(ns, args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return out.String(), fmt.Errorf("%s (in %q): %w: %s%s", strings.Join(args, " "), ns, err, errb.String(), out.String())
	}
	return out.String(), nil
}

// Proc is a process started in a namespace.
type Proc struct {
	Name string
	Cmd  *exec.Cmd
	Log  string
	done chan struct{}
	err  error
}

// Start starts a long-running process in ns; its output goes to a log file
// named after name. Close kills it if still running.
func (l *Lab) Start(ns, name string, env []string, args ...string) (*Proc, error) {
	return l.StartCmd(l.Command(ns, args...), name, env)
}

// StartNsenter is Start with the process entering only the network
// namespace (see NsenterCommand); ns "" is the host.
func (l *Lab) StartNsenter(ns, name string, env []string, args ...string) (*Proc, error) {
	if ns == "" {
		return l.StartCmd(exec.Command(args[0], args[1:]...), name, env)
	}
	return l.StartCmd(NsenterCommand(ns, args...), name, env)
}

// StartCmd starts cmd as a long-running process of the lab; its output
// goes to a log file named after name. Close kills it if still running.
func (l *Lab) StartCmd(cmd *exec.Cmd, name string, env []string) (*Proc, error) {
	path := filepath.Join(l.Dir, name+".log")
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	cmd.Stdout, cmd.Stderr = f, f
	cmd.Env = append(os.Environ(), env...)
	// Its own process group, so a kill reaches it and not the test; killed
	// with the test if the test dies without cleaning up.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		f.Close()
		return nil, fmt.Errorf("starting %s: %w", name, err)
	}
	p := &Proc{Name: name, Cmd: cmd, Log: path, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		f.Close()
		close(p.done)
	}()
	l.mu.Lock()
	l.procs = append(l.procs, p)
	l.mu.Unlock()
	return p, nil
}

// Signal sends sig to the process group (ip netns exec replaces itself
// with the command, so the group is the command).
func (p *Proc) Signal(sig syscall.Signal) error {
	return syscall.Kill(-p.Cmd.Process.Pid, sig)
}

// Kill sends SIGKILL and waits (up to 10 s: a process stuck in the
// kernel cannot be waited for) for the process to end.
func (p *Proc) Kill() {
	_ = p.Signal(syscall.SIGKILL)
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
	}
}

// Stop sends SIGTERM and waits up to timeout, then kills.
func (p *Proc) Stop(timeout time.Duration) error {
	_ = p.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
		return p.err
	case <-time.After(timeout):
		p.Kill()
		return fmt.Errorf("%s did not stop within %s", p.Name, timeout)
	}
}

// Done is closed when the process has ended.
func (p *Proc) Done() <-chan struct{} { return p.done }

// Running reports whether the process still runs.
func (p *Proc) Running() bool {
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

// Tail returns the last n bytes of the process's log.
func (p *Proc) Tail(n int) string {
	b, _ := os.ReadFile(p.Log)
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(b)
}

// SetHostLink cuts (up=false) or restores the host's leg into the lab: the
// nodes lose the API server, the lab network itself keeps working.
func (l *Lab) SetHostLink(up bool) error {
	state := "down"
	if up {
		state = "up"
	}
	return l.run("", "ip", "link", "set", l.HostIf, state)
}

// AddAddress puts addr on lo of every node (the Service IP must be local
// for the kernel to accept traffic to it).
func (l *Lab) AddAddress(addr netip.Addr) error {
	bits := 32
	if addr.Is6() {
		bits = 128
	}
	for _, n := range l.Nodes {
		args := []string{"ip", "addr", "add", fmt.Sprintf("%s/%d", addr, bits), "dev", "lo"}
		if addr.Is6() {
			args = append(args, "nodad")
		}
		if err := l.run(n.NS, args...); err != nil {
			return err
		}
	}
	return nil
}

// Node returns the node named name.
func (l *Lab) Node(name string) *Node {
	for _, n := range l.Nodes {
		if n.Name == name {
			return n
		}
	}
	return nil
}

// BridgePort returns the name of node's port in the bridge namespace
// (detaching it cuts the node off silently: its link keeps its carrier).
func (l *Lab) BridgePort(node *Node) string {
	for i, n := range l.Nodes {
		if n == node {
			return fmt.Sprintf("%sn%db", l.Prefix, i+1)
		}
	}
	return ""
}

// Cut detaches (cut=true) or reattaches node's port on the bridge: a
// silent partition, the node's link keeps its carrier.
func (l *Lab) Cut(node *Node, cut bool) error {
	port := l.BridgePort(node)
	if cut {
		return l.Run(l.Bridge, "ip", "link", "set", port, "nomaster")
	}
	return l.Run(l.Bridge, "ip", "link", "set", port, "master", "br0")
}

// NodeByMAC returns the node whose eth0 has mac.
func (l *Lab) NodeByMAC(mac string) *Node {
	for _, n := range l.Nodes {
		if strings.EqualFold(n.MAC, mac) {
			return n
		}
	}
	return nil
}

// Close kills the started processes and removes the namespaces and host
// interfaces the lab created.
func (l *Lab) Close() {
	l.mu.Lock()
	procs, netns, hostIfs := l.procs, l.netns, l.hostIfs
	l.procs, l.netns, l.hostIfs = nil, nil, nil
	l.mu.Unlock()
	for _, p := range procs {
		if p.Running() {
			p.Kill()
		}
	}
	for _, i := range hostIfs {
		_ = exec.Command("ip", "link", "del", i).Run()
	}
	for i := len(netns) - 1; i >= 0; i-- {
		_ = exec.Command("ip", "netns", "del", netns[i]).Run()
	}
	if !l.keepLock {
		l.Unlock()
	}
}

// WaitFor polls check every interval until it returns nil or ctx ends.
func WaitFor(ctx context.Context, interval time.Duration, check func() error) error {
	for {
		err := check()
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w (last: %v)", ctx.Err(), err)
		case <-time.After(interval):
		}
	}
}

// Stream starts a command in ns whose standard output the caller reads
// line by line (a monitor such as `ip monitor neigh`). Close kills it.
func (l *Lab) Stream(ns string, args ...string) (io.Reader, error) {
	_, r, err := l.StreamProc(ns, args...)
	return r, err
}

// StreamProc is Stream that also returns the process (Close kills it).
// The reader reaches EOF once the process has ended and its output is read.
func (l *Lab) StreamProc(ns string, args ...string) (*Proc, io.Reader, error) {
	cmd := l.Command(ns, args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	// A pipe of our own: Wait must not close the reading end before the
	// caller has read everything.
	r, w, err := os.Pipe()
	if err != nil {
		return nil, nil, err
	}
	cmd.Stdout = w
	if err := cmd.Start(); err != nil {
		r.Close()
		w.Close()
		return nil, nil, fmt.Errorf("starting %s: %w", strings.Join(args, " "), err)
	}
	w.Close()
	p := &Proc{Name: args[0], Cmd: cmd, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	l.mu.Lock()
	l.procs = append(l.procs, p)
	l.mu.Unlock()
	return p, r, nil
}
