package realcluster

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/lbstack/lbstack/test/e2e/lab"
)

// The faults the chaos run injects, as primitives on the cluster. Each
// undoes exactly what it did; Close undoes whatever is left.

// RestartAPIServer stops kube-apiserver (SIGTERM), keeps it down for down,
// starts it again with the same command line and waits until it is ready.
func (c *Cluster) RestartAPIServer(ctx context.Context, down time.Duration) error {
	args := c.apiserver.Cmd.Args
	// Its graceful shutdown may wait on long-running requests: killed
	// after 15 s, as a kubelet would after the grace period.
	_ = c.apiserver.Stop(15 * time.Second)
	select {
	case <-time.After(down):
	case <-ctx.Done():
	}
	p, err := c.Lab.StartCmd(exec.Command(args[0], args[1:]...), "kube-apiserver", nil)
	if err != nil {
		return err
	}
	c.apiserver = p
	adminCert := filepath.Join(c.pki.dir, "admin.crt")
	adminKey := filepath.Join(c.pki.dir, "admin.key")
	return c.waitReadyz(ctx, adminCert, adminKey)
}

// isSignalExit reports whether err is a process's exit on a signal (what
// Stop returns for a process that ended on SIGTERM).
func isSignalExit(err error) bool {
	var ee *exec.ExitError
	if !errors.As(err, &ee) {
		return false
	}
	ws, ok := ee.Sys().(syscall.WaitStatus)
	return ok && ws.Signaled()
}

// Freeze freezes (or thaws) a whole node: every container in its cgroup
// (the cgroup freezer) and its kubelet, kube-proxy and containerd
// (SIGSTOP/SIGCONT to their process groups). A frozen node sends nothing
// and answers nothing, yet keeps its links and addresses.
func (c *Cluster) Freeze(n *Node, freeze bool) error {
	sig := syscall.SIGCONT
	if freeze {
		sig = syscall.SIGSTOP
	}
	var errs []error
	if !freeze {
		errs = append(errs, freezeCgroup(n.cgroup, false))
	}
	for _, p := range []*lab.Proc{n.containerd, n.kubelet, n.kubeProxy} {
		if p != nil && p.Running() {
			errs = append(errs, p.Signal(sig))
		}
	}
	if freeze {
		errs = append(errs, freezeCgroup(n.cgroup, true))
	}
	return errors.Join(errs...)
}

// freezeCgroup freezes or thaws a cgroup and its descendants: cgroup.freeze
// on a unified (v2) host, the v1 freezer's freezer.state otherwise.
func freezeCgroup(name string, freeze bool) error {
	v2 := filepath.Join(cgroupV1Root, name, "cgroup.freeze")
	if _, err := os.Stat(filepath.Join(cgroupV1Root, "cgroup.controllers")); err == nil {
		val := "0"
		if freeze {
			val = "1"
		}
		return os.WriteFile(v2, []byte(val), 0o644)
	}
	state := filepath.Join(cgroupV1Root, "freezer", name, "freezer.state")
	val := "THAWED"
	if freeze {
		val = "FROZEN"
	}
	if err := os.WriteFile(state, []byte(val), 0o644); err != nil {
		return fmt.Errorf("%s: %w", state, err)
	}
	if !freeze {
		return nil
	}
	// FREEZING until every task stopped.
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		b, err := os.ReadFile(state)
		if err != nil {
			return err
		}
		if strings.TrimSpace(string(b)) == "FROZEN" {
			return nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	return fmt.Errorf("%s did not reach FROZEN", state)
}

// StopKubelet stops the node's kubelet and containerd (SIGTERM): the
// containers and their shims keep running, the node stops reporting and
// goes NotReady after the node monitor grace period.
func (c *Cluster) StopKubelet(n *Node) error {
	var errs []error
	for _, p := range []*lab.Proc{n.kubelet, n.containerd} {
		if p != nil && p.Running() {
			if err := p.Stop(30 * time.Second); err != nil && !isSignalExit(err) {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}

// StartKubelet starts the node's containerd (its images are still in its
// store) and kubelet again, with their command lines of the first start.
func (c *Cluster) StartKubelet(ctx context.Context, n *Node) error {
	if n.containerd.Running() || n.kubelet.Running() {
		return fmt.Errorf("%s: kubelet or containerd still runs", n.Name)
	}
	p, err := c.Lab.StartCmd(exec.Command(n.containerd.Cmd.Args[0], n.containerd.Cmd.Args[1:]...), "containerd-"+n.Name, nil)
	if err != nil {
		return err
	}
	n.containerd = p
	if err := waitContainerd(ctx, n); err != nil {
		return err
	}
	kubeletStart.Lock()
	defer kubeletStart.Unlock()
	p, err = c.Lab.StartCmd(exec.Command(n.kubelet.Cmd.Args[0], n.kubelet.Cmd.Args[1:]...), "kubelet-"+n.Name, nil)
	if err != nil {
		return err
	}
	n.kubelet = p
	return nil
}

// CutAPI cuts (or restores) the node's path to the API server only: every
// packet between the node's namespace — host-network pods and the pods it
// routes — and the control plane's addresses is dropped, while the node
// keeps its links, its BGP and BFD sessions and its membership.
func (c *Cluster) CutAPI(n *Node, cut bool) error {
	op := "-D"
	if cut {
		op = "-I"
	}
	var errs []error
	for _, rule := range [][]string{
		{"iptables", "-w", op, "OUTPUT", "-d", ControlPlaneIPv4.String(), "-j", "DROP"},
		{"iptables", "-w", op, "FORWARD", "-d", ControlPlaneIPv4.String(), "-j", "DROP"},
		{"iptables", "-w", op, "INPUT", "-s", ControlPlaneIPv4.String(), "-j", "DROP"},
		{"ip6tables", "-w", op, "OUTPUT", "-d", ControlPlaneIPv6.String(), "-j", "DROP"},
		{"ip6tables", "-w", op, "FORWARD", "-d", ControlPlaneIPv6.String(), "-j", "DROP"},
		{"ip6tables", "-w", op, "INPUT", "-s", ControlPlaneIPv6.String(), "-j", "DROP"},
	} {
		if err := c.Lab.Run(n.NS, rule...); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
