package realcluster

import (
	"bufio"
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

// hostSysctls are the host-wide settings kubelet changes; Close restores them.
var hostSysctls = []string{"vm/overcommit_memory", "kernel/panic", "kernel/panic_on_oops"}

const containerLogDir = "/var/log/containers"

// snapshotHost records what Close must restore or may remove.
func (c *Cluster) snapshotHost() {
	c.sysctls = map[string]string{}
	for _, s := range hostSysctls {
		if b, err := os.ReadFile(filepath.Join("/proc/sys", s)); err == nil {
			c.sysctls[s] = strings.TrimSpace(string(b))
		}
	}
	c.netnsSeen = map[string]bool{}
	entries, _ := os.ReadDir("/run/netns")
	for _, e := range entries {
		c.netnsSeen[e.Name()] = true
	}
	if _, err := os.Stat(containerLogDir); os.IsNotExist(err) {
		c.logDirNew = true
	}
}

// Close tears the cluster down: kubelets and kube-proxies first, then every
// process in the nodes' cgroups and every container shim of the nodes'
// containerds (by PID), the pods' network namespaces, containerd, the
// control plane, the mounts under the cluster's state folder, the cgroups,
// the lab's namespaces; then it restores the host sysctls.
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
	// Containers and shims, by PID, until none is left.
	for range 20 {
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
	for _, n := range c.Nodes {
		if n.containerd != nil && n.containerd.Running() {
			_ = n.containerd.Stop(5 * time.Second)
		}
	}
	// containerd names them cni-<uuid>; one lab runs at a time (lab.NewWith
	// locks), so a cni- namespace that appeared since Up is this cluster's.
	entries, _ := os.ReadDir("/run/netns")
	for _, e := range entries {
		name := e.Name()
		var st syscall.Stat_t
		ours := syscall.Stat(filepath.Join("/run/netns", name), &st) == nil && podNetns[st.Ino]
		if ours || (!c.netnsSeen[name] && strings.HasPrefix(name, "cni-")) {
			_ = exec.Command("ip", "netns", "del", name).Run()
		}
	}
	// The control plane and everything else the lab started.
	if c.Lab != nil {
		c.Lab.Close()
	}
	if c.state != "" {
		unmountUnder(c.state)
		_ = os.RemoveAll(c.state)
		_ = os.Remove(filepath.Dir(c.state)) // only when empty
	}
	for _, n := range c.Nodes {
		removeCgroups(n.cgroup)
	}
	for s, v := range c.sysctls {
		_ = os.WriteFile(filepath.Join("/proc/sys", s), []byte(v), 0o644)
	}
	if c.logDirNew {
		_ = os.RemoveAll(containerLogDir)
	}
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
	entries, _ := os.ReadDir("/proc")
	var out []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/cmdline")
		if err != nil {
			continue
		}
		args := strings.Split(string(b), "\x00")
		if len(args) == 0 || !strings.Contains(filepath.Base(args[0]), "containerd-shim") {
			continue
		}
		if slices.Contains(args, socket) || slices.Contains(args, socket+".ttrpc") {
			out = append(out, pid)
		}
	}
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
