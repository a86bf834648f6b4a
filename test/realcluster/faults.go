package realcluster

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/lbstack/lbstack/internal/testenv"
	"github.com/lbstack/lbstack/test/e2e/lab"
)

// Cut detaches (cut=true) or reattaches the node's port on the bridge: a
// silent partition, the node's link keeps its carrier.
func (c *Cluster) Cut(n *Node, cut bool) error {
	port := c.Lab.BridgePort(n.Node)
	if cut {
		return c.Lab.Run(c.Lab.Bridge, "ip", "link", "set", port, "nomaster")
	}
	return c.Lab.Run(c.Lab.Bridge, "ip", "link", "set", port, "master", "br0")
}

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

// ProbeEvent is one line of the probe: a target went down or came up.
type ProbeEvent struct {
	Time   time.Time `json:"time"`
	Target string    `json:"target"`
	OK     bool      `json:"ok"`
	Node   string    `json:"node,omitempty"`
	Error  string    `json:"error,omitempty"`
}

// Probe is a client in the client namespace opening a fresh HTTP
// connection to each target every 5 ms (test/realcluster/probe).
type Probe struct {
	mu     sync.Mutex
	events []ProbeEvent
	proc   *lab.Proc
	done   chan struct{}
}

// StartProbe builds the probe into dir and starts it in the client
// namespace against the URLs. Stop ends it; the lab's Close kills it too.
func (c *Cluster) StartProbe(dir string, urls ...string) (*Probe, error) {
	bin := filepath.Join(dir, "probe")
	build := exec.Command("go", "build", "-o", bin, "./test/realcluster/probe")
	build.Dir = testenv.RepoRoot()
	if out, err := build.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("building the probe: %w: %s", err, out)
	}
	proc, out, err := c.Lab.StreamProc(c.Lab.Client, append([]string{bin}, urls...)...)
	if err != nil {
		return nil, fmt.Errorf("starting the probe: %w", err)
	}
	p := &Probe{proc: proc, done: make(chan struct{})}
	go func() {
		defer close(p.done)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			var e ProbeEvent
			if json.Unmarshal(sc.Bytes(), &e) == nil {
				p.mu.Lock()
				p.events = append(p.events, e)
				p.mu.Unlock()
			}
		}
	}()
	return p, nil
}

// Stop ends the probe.
func (p *Probe) Stop() {
	_ = p.proc.Stop(5 * time.Second)
	select {
	case <-p.done:
	case <-time.After(5 * time.Second):
	}
}

// Up reports whether target's last request succeeded.
func (p *Probe) Up(target string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	for i := len(p.events) - 1; i >= 0; i-- {
		if p.events[i].Target == target {
			return p.events[i].OK
		}
	}
	return false
}

// Gaps returns the periods target was down between since and until, each
// from a failed request to the next successful one (clipped to the window).
func (p *Probe) Gaps(target string, since, until time.Time) []time.Duration {
	p.mu.Lock()
	events := append([]ProbeEvent(nil), p.events...)
	p.mu.Unlock()
	sort.Slice(events, func(i, j int) bool { return events[i].Time.Before(events[j].Time) })
	var gaps []time.Duration
	var downAt time.Time
	up := true
	add := func(from, to time.Time) {
		from, to = maxTime(from, since), minTime(to, until)
		if to.After(from) {
			gaps = append(gaps, to.Sub(from))
		}
	}
	for _, e := range events {
		if e.Target != target {
			continue
		}
		switch {
		case !e.OK && up:
			up, downAt = false, e.Time
		case e.OK && !up:
			up = true
			add(downAt, e.Time)
		}
	}
	if !up {
		add(downAt, until)
	}
	return gaps
}

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

// WaitUp waits until every target answers.
func (p *Probe) WaitUp(ctx context.Context, targets ...string) error {
	return lab.WaitFor(ctx, 20*time.Millisecond, func() error {
		for _, t := range targets {
			if !p.Up(t) {
				return fmt.Errorf("%s is down", t)
			}
		}
		return nil
	})
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
