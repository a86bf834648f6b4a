package realcluster

import (
	"bufio"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/lbstack/lbstack/test/e2e/lab"
)

// hostSysctls are the host-wide settings kubelet changes
// (setupKernelTunables); Close restores them.
var hostSysctls = []string{"vm/overcommit_memory", "vm/panic_on_oom", "kernel/panic", "kernel/panic_on_oops",
	"kernel/keys/root_maxkeys", "kernel/keys/root_maxbytes"}

const (
	// stateRoot holds one folder per cluster (named by its lab prefix).
	stateRoot = "/var/lib/lbstack-cluster"
	// snapshotFile, in a cluster's folder, records the host state Close restores.
	snapshotFile = "host-snapshot.json"

	containerLogDir = "/var/log/containers"
	// kubeletDir is created by every kubelet whatever its root dir (device
	// plugins); removed when the cluster created it.
	kubeletDir = "/var/lib/kubelet"
	// cniResults is libcni's cache; CNI DEL never runs for a killed pod.
	cniResults = "/var/lib/cni/results"
)

// hostSnapshot is what Close must restore or may remove.
type hostSnapshot struct {
	Sysctls       map[string]string `json:"sysctls"`
	Netns         map[string]bool   `json:"netns"`
	CNIResults    map[string]bool   `json:"cniResults"`
	LogDirNew     bool              `json:"logDirNew"`
	KubeletDirNew bool              `json:"kubeletDirNew"`
}

// snapshotHost records what Close must restore or may remove.
func (c *Cluster) snapshotHost() {
	s := &hostSnapshot{Sysctls: map[string]string{}, Netns: map[string]bool{}, CNIResults: map[string]bool{}}
	for _, k := range hostSysctls {
		if b, err := os.ReadFile(filepath.Join("/proc/sys", k)); err == nil {
			s.Sysctls[k] = strings.TrimSpace(string(b))
		}
	}
	for _, dir := range []struct {
		path string
		into map[string]bool
	}{{"/run/netns", s.Netns}, {cniResults, s.CNIResults}} {
		entries, _ := os.ReadDir(dir.path)
		for _, e := range entries {
			dir.into[e.Name()] = true
		}
	}
	_, err := os.Stat(containerLogDir)
	s.LogDirNew = os.IsNotExist(err)
	_, err = os.Stat(kubeletDir)
	s.KubeletDirNew = os.IsNotExist(err)
	c.host = s
}

// saveSnapshot writes the snapshot into the cluster's folder, so a later
// cluster can restore the host if this one is killed before its Close.
func (c *Cluster) saveSnapshot() error {
	b, err := json.Marshal(c.host)
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(c.state, snapshotFile), b, 0o600)
}

// sweepStale undoes what clusters killed before their Close left behind:
// every folder under stateRoot is a dead cluster's (the lab lock is held,
// so no other cluster runs).
func sweepStale(logf func(string, ...any)) {
	entries, _ := os.ReadDir(stateRoot)
	for _, e := range entries {
		dir := filepath.Join(stateRoot, e.Name())
		logf("Removing what the killed cluster %s left behind", e.Name())
		dead := &Cluster{state: dir}
		if b, err := os.ReadFile(filepath.Join(dir, snapshotFile)); err == nil {
			var s hostSnapshot
			if json.Unmarshal(b, &s) == nil {
				dead.host = &s
			}
		}
		// Its nodes, by their cgroups (prefix-nodeN) and sockets.
		for _, h := range hierarchies() {
			matches, _ := filepath.Glob(filepath.Join(h, e.Name()+"-node*"))
			for _, m := range matches {
				name := filepath.Base(m)
				if !slices.ContainsFunc(dead.Nodes, func(n *Node) bool { return n.cgroup == name }) {
					n := &Node{cgroup: name, dir: filepath.Join(dir, strings.TrimPrefix(name, e.Name()+"-"))}
					n.socket = filepath.Join(n.dir, "containerd.sock")
					dead.Nodes = append(dead.Nodes, n)
				}
			}
		}
		dead.undoNodes()
		dead.undoHost()
	}
}

// Close tears the cluster down: kubelets and kube-proxies first, then every
// process in the nodes' cgroups and every container shim of the nodes'
// containerds (by PID), the pods' network namespaces, containerd, the
// control plane and the lab's namespaces, the mounts under the cluster's
// state folder, the cgroups; then it restores the host sysctls and
// releases the labs' lock.
func (c *Cluster) Close() {
	c.closeOnce.Do(c.close)
}

func (c *Cluster) close() {
	for _, n := range c.Nodes {
		for _, p := range []*lab.Proc{n.kubelet, n.kubeProxy} {
			if p != nil && p.Running() {
				_ = p.Stop(5 * time.Second)
			}
		}
	}
	c.undoNodes()
	for _, n := range c.Nodes {
		if n.containerd != nil && n.containerd.Running() {
			_ = n.containerd.Stop(5 * time.Second)
		}
	}
	// The control plane and everything else the lab started.
	if c.Lab != nil {
		c.Lab.Close()
	}
	c.undoHost()
	if c.Lab != nil {
		c.Lab.Unlock()
	}
}

// undoNodes kills the nodes' containers and shims by PID and deletes the
// pods' network namespaces.
func (c *Cluster) undoNodes() {
	// Pod sandboxes' network namespaces, found through their processes.
	podNetns := map[uint64]bool{}
	for _, n := range c.Nodes {
		for _, pid := range cgroupPIDs(n.cgroup) {
			var st syscall.Stat_t
			if syscall.Stat("/proc/"+strconv.Itoa(pid)+"/ns/net", &st) == nil {
				podNetns[st.Ino] = true
			}
		}
	}
	// The shims' sockets (containerd 1.6 puts them in /run/containerd/s
	// whatever its state folder, and a killed shim leaves its socket): the
	// unix sockets bound under that folder in the nodes' network namespaces.
	var sockets []string
	for _, n := range c.Nodes {
		pids := shimPIDs(n.socket)
		if n.containerd != nil && n.containerd.Running() {
			pids = append(pids, n.containerd.Cmd.Process.Pid)
		}
		if len(pids) > 0 {
			sockets = append(sockets, shimSockets(pids[0])...)
		}
	}
	defer func() {
		for _, s := range sockets {
			_ = os.Remove(s)
		}
	}()
	// Containers and shims, by PID, until none is left.
	for range 50 {
		var pids []int
		for _, n := range c.Nodes {
			pids = append(pids, cgroupPIDs(n.cgroup)...)
			pids = append(pids, shimPIDs(n.socket)...)
		}
		if len(pids) == 0 {
			break
		}
		for _, pid := range pids {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
		time.Sleep(100 * time.Millisecond)
	}
	// A pod namespace whose sandbox had already ended is found by its name:
	// containerd's cni-<uuid>, new since Up, and used by no process (a
	// namespace of another runtime's running pod is left alone).
	inUse := netnsInUse()
	entries, _ := os.ReadDir("/run/netns")
	for _, e := range entries {
		var st syscall.Stat_t
		if syscall.Stat(filepath.Join("/run/netns", e.Name()), &st) != nil {
			continue
		}
		ours := podNetns[st.Ino]
		orphan := strings.HasPrefix(e.Name(), "cni-") && c.host != nil && !c.host.Netns[e.Name()] && !inUse[st.Ino]
		if ours || orphan {
			_ = exec.Command("ip", "netns", "del", e.Name()).Run()
		}
	}
}

// netnsInUse returns the network namespaces (by inode) of every process.
func netnsInUse() map[uint64]bool {
	used := map[uint64]bool{}
	eachProcess(func(pid int, _ []string) {
		var st syscall.Stat_t
		if syscall.Stat(filepath.Join("/proc", strconv.Itoa(pid), "ns", "net"), &st) == nil {
			used[st.Ino] = true
		}
	})
	return used
}

// undoHost removes the cluster's files, mounts and cgroups and restores
// what it changed on the host.
func (c *Cluster) undoHost() {
	if c.state != "" {
		unmountUnder(c.state)
		_ = os.RemoveAll(c.state)
		_ = os.Remove(filepath.Dir(c.state)) // only when empty
	}
	for _, n := range c.Nodes {
		removeCgroups(n.cgroup)
	}
	s := c.host
	if s == nil {
		return
	}
	for k, v := range s.Sysctls {
		_ = os.WriteFile(filepath.Join("/proc/sys", k), []byte(v), 0o644)
	}
	if entries, err := os.ReadDir(cniResults); err == nil {
		for _, e := range entries {
			if !s.CNIResults[e.Name()] && (strings.HasPrefix(e.Name(), "lbstack-pods-") || strings.HasPrefix(e.Name(), "cni-loopback-")) {
				_ = os.Remove(filepath.Join(cniResults, e.Name()))
			}
		}
	}
	if s.LogDirNew {
		_ = os.RemoveAll(containerLogDir)
	}
	if s.KubeletDirNew {
		unmountUnder(kubeletDir)
		_ = os.RemoveAll(kubeletDir)
	}
}

// shimDir is where containerd 1.6 binds its shims' sockets.
const shimDir = "/run/containerd/s/"

// shimSockets lists the sockets under shimDir bound in pid's network
// namespace (/proc/PID/net/unix: the last field is the path).
func shimSockets(pid int) []string {
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "net", "unix"))
	if err != nil {
		return nil
	}
	var out []string
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) >= 8 && strings.HasPrefix(f[len(f)-1], shimDir) && !slices.Contains(out, f[len(f)-1]) {
			out = append(out, f[len(f)-1])
		}
	}
	return out
}

// cgroupPIDs lists the processes in cgroup name (and below) of every hierarchy.
func cgroupPIDs(name string) []int {
	seen := map[int]bool{}
	for _, h := range hierarchies() {
		_ = filepath.WalkDir(filepath.Join(h, name), func(path string, d os.DirEntry, err error) error {
			if err != nil || !d.IsDir() {
				return nil
			}
			b, err := os.ReadFile(filepath.Join(path, "cgroup.procs"))
			if err != nil {
				return nil
			}
			for _, f := range strings.Fields(string(b)) {
				if pid, err := strconv.Atoi(f); err == nil {
					seen[pid] = true
				}
			}
			return nil
		})
	}
	out := make([]int, 0, len(seen))
	for pid := range seen {
		out = append(out, pid)
	}
	slices.Sort(out)
	return out
}

// shimPIDs lists the containerd shims started by the containerd at socket
// (a shim's command line names its containerd's address).
func shimPIDs(socket string) []int {
	var out []int
	eachProcess(func(pid int, args []string) {
		if strings.Contains(filepath.Base(args[0]), "containerd-shim") &&
			(slices.Contains(args, socket) || slices.Contains(args, socket+".ttrpc")) {
			out = append(out, pid)
		}
	})
	return out
}

// unmountUnder detaches every mount at or below dir, deepest first.
func unmountUnder(dir string) {
	for range 5 {
		f, err := os.Open("/proc/self/mountinfo")
		if err != nil {
			return
		}
		var points []string
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			fields := strings.Fields(sc.Text())
			if len(fields) < 5 {
				continue
			}
			p := unescapeMount(fields[4])
			if p == dir || strings.HasPrefix(p, dir+"/") {
				points = append(points, p)
			}
		}
		f.Close()
		if len(points) == 0 {
			return
		}
		slices.SortFunc(points, func(a, b string) int { return len(b) - len(a) })
		for _, p := range points {
			_ = syscall.Unmount(p, syscall.MNT_DETACH)
		}
	}
}

// unescapeMount undoes mountinfo's octal escapes (\040 for a space).
func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if v, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(v))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// removeCgroups removes cgroup name and its children in every hierarchy,
// deepest first.
func removeCgroups(name string) {
	for _, h := range hierarchies() {
		var dirs []string
		_ = filepath.WalkDir(filepath.Join(h, name), func(path string, d os.DirEntry, err error) error {
			if err == nil && d.IsDir() {
				dirs = append(dirs, path)
			}
			return nil
		})
		slices.SortFunc(dirs, func(a, b string) int { return len(b) - len(a) })
		for _, d := range dirs {
			for range 10 {
				if err := syscall.Rmdir(d); err == nil || os.IsNotExist(err) {
					break
				}
				time.Sleep(50 * time.Millisecond)
			}
		}
	}
}
