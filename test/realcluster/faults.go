package realcluster

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/lbstack/lbstack/test/e2e/lab"
)

// Cut detaches (cut=true) or reattaches the node's port on the bridge: a
// silent partition, the node's link keeps its carrier.
func (c *Cluster) Cut(n *Node, cut bool) error { return c.Lab.Cut(n.Node, cut) }

// SpeakerPod returns the speaker pod running on node.
func (c *Cluster) SpeakerPod(ctx context.Context, namespace, node string) (*corev1.Pod, error) {
	var pods corev1.PodList
	if err := c.Client.List(ctx, &pods, client.InNamespace(namespace), client.MatchingLabels{"app.kubernetes.io/component": "speaker"}); err != nil {
		return nil, err
	}
	for i := range pods.Items {
		if p := &pods.Items[i]; p.Spec.NodeName == node && p.DeletionTimestamp == nil {
			return p, nil
		}
	}
	return nil, fmt.Errorf("no speaker pod on %s", node)
}

// ProbeEvent is lab.ProbeEvent.
type ProbeEvent = lab.ProbeEvent

// Probe is lab.Probe.
type Probe = lab.Probe

// StartProbe starts lab.StartProbe in the client namespace.
func (c *Cluster) StartProbe(dir string, urls ...string) (*Probe, error) {
	return lab.StartProbe(c.Lab, dir, urls...)
}

// SpeakerPIDs returns the PIDs of the lbstack speaker processes running
// in node n's network namespace (the speaker pod is on the host network),
// as the host sees them.
func (c *Cluster) SpeakerPIDs(n *Node) ([]int, error) {
	var want syscall.Stat_t
	if err := syscall.Stat("/run/netns/"+n.NS, &want); err != nil {
		return nil, fmt.Errorf("%s: %w", n.Name, err)
	}
	var pids []int
	for _, pid := range LbstackProcesses()["speaker"] {
		var st syscall.Stat_t
		if syscall.Stat(filepath.Join("/proc", strconv.Itoa(pid), "ns", "net"), &st) == nil && st.Ino == want.Ino && st.Dev == want.Dev {
			pids = append(pids, pid)
		}
	}
	return pids, nil
}

// LbstackProcesses returns the PIDs of the processes of lbstack's
// containers on this machine by component (operator, controller,
// speaker), found by their command line (/lbstack COMPONENT ...).
func LbstackProcesses() map[string][]int {
	out := map[string][]int{}
	eachProcess(func(pid int, args []string) {
		if len(args) >= 2 && args[0] == "/lbstack" {
			out[args[1]] = append(out[args[1]], pid)
		}
	})
	return out
}

// eachProcess calls fn with every process's PID and command line.
func eachProcess(fn func(pid int, args []string)) {
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil {
			continue
		}
		fn(pid, strings.Split(string(b), "\x00"))
	}
}
