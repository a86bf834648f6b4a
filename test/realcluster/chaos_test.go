package realcluster_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"text/tabwriter"
	"time"

	"github.com/go-logr/logr"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"

	lbv1 "github.com/lbstack/lbstack/api/v1alpha1"
	"github.com/lbstack/lbstack/controllers"
	"github.com/lbstack/lbstack/internal/lbservice"
	"github.com/lbstack/lbstack/internal/testenv"
	"github.com/lbstack/lbstack/test/e2e/lab"
	"github.com/lbstack/lbstack/test/realcluster"
)

// The chaos run: `make chaos` runs TestChaos for 10 minutes with every
// fault (LBSTACK_CHAOS_DURATION=10m LBSTACK_CHAOS_FULL=1); `make test`
// runs it for 2 minutes with one fault of each quick kind.

// Invariants, each checked from outside lbstack.
const (
	invUnique    = "unique IP" // never two Services on one IP unless they share it by the rules
	invStable    = "stable IP" // an assigned IP changes only when its Service changed
	invOneMAC    = "one MAC"   // every layer-2 IPv4 VIP answered by exactly one MAC 1 s after a fault ends
	invReachable = "reachable" // the stable Services answer HTTP within the outage bound
	invWithdrawn = "withdrawn" // the router holds no route for a released IP beyond withdrawBound
	invECMP      = "ECMP"      // the router's next hops for the stable BGP Service = its eligible nodes
)

var invariants = []string{invUnique, invStable, invOneMAC, invReachable, invWithdrawn, invECMP}

const (
	// withdrawBound: how long after its Service lost it a route may stay.
	withdrawBound = 5 * time.Second
	// oneMACAfter: when, after a fault ends, each VIP has one MAC.
	oneMACAfter = time.Second
	// ecmpBound: how long after a fault ends the next hops converge (BGP
	// reconnects every connectTime, 2 s).
	ecmpBound = 20 * time.Second
	// churnNamespace holds the churned Services, next to the echo pods
	// they select (a Service without endpoints is announced nowhere).
	churnNamespace = "web"
)

// fault kinds.
const (
	fLeaderKill  = "controller leader SIGKILL"
	fSpeakerKill = "speaker container SIGKILL"
	fSpeakerDel  = "speaker pod deleted"
	fAPIRestart  = "API server restarted"
	fCut         = "node cut off (bridge port)"
	fFreeze      = "node frozen"
	fKubelet     = "kubelet+containerd stopped (NotReady)"
	fBird        = "BIRD restarted"
	fAPICut      = "node cut off from the API only"
)

// outageBound is how long the stable Services may be unreachable because
// of one fault, from its start to after its end.
var outageBound = map[string]time.Duration{
	fLeaderKill: time.Second, fSpeakerKill: 3 * time.Second, fSpeakerDel: 3 * time.Second,
	fAPIRestart: time.Second, fCut: 3 * time.Second, fFreeze: 3 * time.Second, fKubelet: 3 * time.Second,
	fBird: 15 * time.Second, fAPICut: 3 * time.Second,
}

// plan is the number of faults of each kind.
func chaosPlan(full bool) map[string]int {
	if full {
		return map[string]int{fLeaderKill: 5, fSpeakerKill: 5, fSpeakerDel: 5, fAPIRestart: 2, fCut: 3, fFreeze: 2, fKubelet: 1, fBird: 2, fAPICut: 2}
	}
	// `make test` runs one of each fault but the kubelet stop (30 s of
	// NotReady alone would take a quarter of the run).
	return map[string]int{fLeaderKill: 1, fSpeakerKill: 1, fSpeakerDel: 1, fFreeze: 1, fBird: 1, fAPICut: 1, fCut: 1, fAPIRestart: 1}
}

// faultRecord is one injected fault and what was seen around it.
type faultRecord struct {
	kind       string
	node       string
	start, end time.Time
	recovery   time.Duration // from its end until every settle check passed
	worstGap   time.Duration // longest HTTP outage of a stable Service around it
}

// chaosRun holds the run's state and every violation.
type chaosRun struct {
	t   *testing.T
	c   *realcluster.Cluster
	rnd *rand.Rand

	mu         sync.Mutex
	violations map[string]map[string][]string // fault kind ("" for none) → invariant → messages
	current    *faultRecord                   // the fault in force, if any
	faults     []*faultRecord
	services   map[string]*svcState // by UID
	holders    map[netip.Addr]map[string]bool
	released   map[netip.Addr]time.Time
	reported   map[string]bool // violations already recorded, by key
	ops        map[string]int  // churn operations done, by kind
	birdNS     string
	full       bool // the whole plan (make chaos), not the make test set
	// pendingWithdraw are released addresses the router still routes, with
	// when they were released; withdrawals are how long each took.
	pendingWithdraw map[netip.Addr]time.Time
	withdrawals     []time.Duration
	// extraOut: the pool editor's extra range is out of pool l2 now (or
	// was last taken out); extraEdited: when the editor last changed it.
	extraOut    bool
	extraEdited time.Time
}

// svcState is what the watcher last saw of a Service.
type svcState struct {
	key        string
	ips        []netip.Addr
	user       string // userState when ips were set
	sharing    string
	assignedAt time.Time
	l2         bool
	// outsidePools: the controller reports the address is in no pool.
	outsidePools bool
}

func (r *chaosRun) violate(inv, format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.reported[inv+msg] {
		return
	}
	r.reported[inv+msg] = true
	kind := ""
	if r.current != nil {
		kind = r.current.kind
	}
	if r.violations[kind] == nil {
		r.violations[kind] = map[string][]string{}
	}
	r.violations[kind][inv] = append(r.violations[kind][inv], msg)
	r.t.Logf("VIOLATION %s (during %q): %s", inv, kind, msg)
}

// userState is what a user sets on a Service that may bear on its
// addresses: its annotations (but the one lbstack writes) and the spec
// fields the allocation reads. (Services have no metadata.generation.)
func userState(svc *corev1.Service) string {
	var keys []string
	for k, v := range svc.Annotations {
		if k == lbv1.AnnotationAllocatedFromPool || k == lbv1.AnnotationSharedAs || strings.HasPrefix(k, "kubectl.kubernetes.io/") {
			continue
		}
		keys = append(keys, k+"="+v)
	}
	sort.Strings(keys)
	var ports []string
	for _, p := range svc.Spec.Ports {
		ports = append(ports, fmt.Sprintf("%d/%s", p.Port, p.Protocol))
	}
	return fmt.Sprintf("annotations %s; type %s; families %v %s; ports %v; traffic %s; loadBalancerIP %q; class %v",
		strings.Join(keys, ","), svc.Spec.Type, svc.Spec.IPFamilies, ptr.Deref(svc.Spec.IPFamilyPolicy, ""), ports,
		svc.Spec.ExternalTrafficPolicy, svc.Spec.LoadBalancerIP, ptr.Deref(svc.Spec.LoadBalancerClass, ""))
}

// observe applies one watched Service to the state and checks the API
// invariants.
func (r *chaosRun) observe(svc *corev1.Service, deleted bool) {
	uid := string(svc.UID)
	var ips []netip.Addr
	if !deleted {
		ips = lbservice.IngressIPs(svc)
	}
	now := time.Now()
	r.mu.Lock()
	st := r.services[uid]
	if st == nil {
		st = &svcState{key: svc.Namespace + "/" + svc.Name}
		r.services[uid] = st
	}
	old := st.ips
	changed := !slices.Equal(old, ips)
	var stableViolation string
	if changed && len(old) > 0 && !deleted && svc.Spec.Type == corev1.ServiceTypeLoadBalancer && st.user == userState(svc) {
		stableViolation = fmt.Sprintf("%s: %v became %v while the Service did not change (%s)", st.key, old, ips, st.user)
	}
	for _, ip := range old {
		if !slices.Contains(ips, ip) {
			delete(r.holders[ip], uid)
			if len(r.holders[ip]) == 0 {
				delete(r.holders, ip)
				r.released[ip] = now
			}
		}
	}
	if changed && len(ips) > 0 {
		st.user, st.assignedAt = userState(svc), now
	}
	st.ips = ips
	st.sharing = svc.Annotations[lbv1.AnnotationAllowSharedIP]
	st.l2 = svc.Annotations[lbv1.AnnotationAllocatedFromPool] == "l2"
	// An address that left every pool stays with its Service, announced by
	// nobody, and the controller says so (README, "Service IPs"): no VIP
	// to check.
	st.outsidePools = false
	for _, cnd := range svc.Status.Conditions {
		st.outsidePools = st.outsidePools || (cnd.Type == controllers.ConditionAddressInPool && cnd.Status == metav1.ConditionFalse)
	}
	var uniqueViolation string
	for _, ip := range ips {
		if r.holders[ip] == nil {
			r.holders[ip] = map[string]bool{}
		}
		r.holders[ip][uid] = true
		delete(r.released, ip)
		if len(r.holders[ip]) > 1 {
			var keys []string
			ok := true
			for h := range r.holders[ip] {
				o := r.services[h]
				keys = append(keys, fmt.Sprintf("%s(key %q)", o.key, o.sharing))
				ok = ok && o.sharing != "" && o.sharing == st.sharing
			}
			if !ok {
				sort.Strings(keys)
				uniqueViolation = fmt.Sprintf("%s held by %s", ip, strings.Join(keys, ", "))
			}
		}
	}
	if deleted {
		delete(r.services, uid)
	}
	r.mu.Unlock()
	if stableViolation != "" {
		r.violate(invStable, "%s", stableViolation)
	}
	if uniqueViolation != "" {
		r.violate(invUnique, "%s", uniqueViolation)
	}
}

// watchServices follows every Service until ctx ends, re-listing whenever
// the watch breaks (the API server restarts).
func (r *chaosRun) watchServices(ctx context.Context, wc client.WithWatch) {
	for ctx.Err() == nil {
		var list corev1.ServiceList
		if err := wc.List(ctx, &list); err != nil {
			time.Sleep(200 * time.Millisecond)
			continue
		}
		seen := map[string]bool{}
		for i := range list.Items {
			seen[string(list.Items[i].UID)] = true
			r.observe(&list.Items[i], false)
		}
		// Services deleted while the watch was down.
		r.mu.Lock()
		var gone []*corev1.Service
		for uid, st := range r.services {
			if !seen[uid] {
				ns, name, _ := strings.Cut(st.key, "/")
				gone = append(gone, &corev1.Service{ObjectMeta: metav1.ObjectMeta{UID: types.UID(uid), Namespace: ns, Name: name}})
			}
		}
		r.mu.Unlock()
		for _, s := range gone {
			r.observe(s, true)
		}
		w, err := wc.Watch(ctx, &corev1.ServiceList{}, &client.ListOptions{Raw: &metav1.ListOptions{ResourceVersion: list.ResourceVersion}})
		if err != nil {
			time.Sleep(200 * time.Millisecond)
			continue
		}
		for ev := range w.ResultChan() {
			svc, ok := ev.Object.(*corev1.Service)
			if !ok {
				break // an error: list again
			}
			r.observe(svc, ev.Type == watch.Deleted)
		}
		w.Stop()
	}
}

// birdRoutes returns the router's BGP routes: prefix address → next hops.
var routeLine = regexp.MustCompile(`^(\S+)`)

func birdRoutes(c *realcluster.Cluster, ns string) (map[netip.Addr][]netip.Addr, error) {
	out, err := c.Lab.Output(ns, "ip", "route", "show", "proto", "bird")
	if err != nil {
		return nil, err
	}
	routes := map[netip.Addr][]netip.Addr{}
	var cur netip.Addr
	for _, line := range strings.Split(out, "\n") {
		if line == "" {
			continue
		}
		if line[0] != ' ' && line[0] != '\t' {
			m := routeLine.FindStringSubmatch(line)
			p, err := netip.ParsePrefix(m[1])
			if err != nil {
				a, err2 := netip.ParseAddr(m[1])
				if err2 != nil {
					continue
				}
				p = netip.PrefixFrom(a, a.BitLen())
			}
			cur = p.Addr()
			routes[cur] = nil
		}
		f := strings.Fields(line)
		for i := range f {
			if f[i] == "via" && i+1 < len(f) {
				if a, err := netip.ParseAddr(f[i+1]); err == nil {
					routes[cur] = append(routes[cur], a)
				}
			}
		}
	}
	for k := range routes {
		slices.SortFunc(routes[k], netip.Addr.Compare)
	}
	return routes, nil
}

// watchRoutes checks every 500 ms that the router holds no route for an
// address released more than withdrawBound ago.
func (r *chaosRun) watchRoutes(ctx context.Context, birdNS string) {
	t := time.NewTicker(200 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		routes, err := birdRoutes(r.c, birdNS)
		if err != nil {
			continue
		}
		now := time.Now()
		r.mu.Lock()
		var late []string
		for ip := range routes {
			if at, ok := r.released[ip]; ok && len(r.holders[ip]) == 0 {
				r.pendingWithdraw[ip] = at
				if now.Sub(at) > withdrawBound {
					// Reported once per address and release.
					late = append(late, fmt.Sprintf("%s still routed more than %s after its Service released it at %s", ip, withdrawBound, at.Format("15:04:05.000")))
				}
			}
		}
		for ip, at := range r.pendingWithdraw {
			if _, routed := routes[ip]; !routed || len(r.holders[ip]) > 0 {
				if !routed {
					r.withdrawals = append(r.withdrawals, now.Sub(at))
				}
				delete(r.pendingWithdraw, ip)
			}
		}
		r.mu.Unlock()
		for _, l := range late {
			r.violate(invWithdrawn, "%s", l)
		}
	}
}

// --- churn ---

// churn is one client creating, changing and deleting its own Services
// until ctx ends: pools by annotation or auto-assigned, IPv4 or dual
// stack, Cluster or Local, requested addresses, and addresses shared under
// its own key with distinct ports.
func (r *chaosRun) churn(ctx context.Context, id int) {
	rnd := rand.New(rand.NewPCG(uint64(id), uint64(time.Now().UnixNano())))
	var mine []string
	n := 0
	count := func(op string) {
		r.mu.Lock()
		r.ops[op]++
		r.mu.Unlock()
	}
	for ctx.Err() == nil {
		select {
		case <-ctx.Done():
			return
		case <-time.After(time.Duration(300+rnd.IntN(400)) * time.Millisecond):
		}
		switch op := rnd.IntN(10); {
		case len(mine) < 3 || (op < 4 && len(mine) < 8):
			n++
			name := fmt.Sprintf("c%d-%d", id, n)
			svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: churnNamespace, Name: name, Annotations: map[string]string{}},
				Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeLoadBalancer, Selector: map[string]string{"app": "echo"},
					Ports: []corev1.ServicePort{{Name: "http", Port: int32(2000 + id*100 + n%100), TargetPort: intstr.FromString("http")}}}}
			switch rnd.IntN(4) {
			case 0:
				svc.Annotations[lbv1.AnnotationAddressPool] = "l2"
				if rnd.IntN(2) == 0 {
					svc.Spec.IPFamilyPolicy = ptr.To(corev1.IPFamilyPolicyPreferDualStack)
				}
			case 1:
				svc.Annotations[lbv1.AnnotationAddressPool] = "bgp"
			case 2:
				// A requested address: often taken, then the request fails.
				svc.Annotations[lbv1.AnnotationLoadBalancerIPs] = fmt.Sprintf("192.0.2.%d", 240+rnd.IntN(11))
			}
			if rnd.IntN(3) == 0 {
				svc.Annotations[lbv1.AnnotationAllowSharedIP] = fmt.Sprintf("churn-%d", id)
			}
			if rnd.IntN(3) == 0 {
				svc.Spec.ExternalTrafficPolicy = corev1.ServiceExternalTrafficPolicyLocal
			}
			if err := r.c.Client.Create(ctx, svc); err == nil {
				mine = append(mine, name)
				count("create")
			}
		case op < 6 && len(mine) > 2:
			i := rnd.IntN(len(mine))
			if err := r.c.Client.Delete(ctx, &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: churnNamespace, Name: mine[i]}}); err == nil || apierrors.IsNotFound(err) {
				mine = slices.Delete(mine, i, i+1)
				count("delete")
			}
		default:
			if len(mine) == 0 {
				continue
			}
			name := mine[rnd.IntN(len(mine))]
			var svc corev1.Service
			if err := r.c.Client.Get(ctx, client.ObjectKey{Namespace: churnNamespace, Name: name}, &svc); err != nil {
				continue
			}
			what := ""
			switch rnd.IntN(4) {
			case 0:
				if svc.Annotations == nil {
					svc.Annotations = map[string]string{}
				}
				svc.Annotations["chaos.lbstack.io/touched"] = strconv.Itoa(rnd.IntN(1000))
				what = "annotation"
			case 1:
				svc.Spec.Ports[0].Port = int32(3000 + rnd.IntN(1000))
				what = "port"
			case 2:
				if svc.Spec.IPFamilyPolicy != nil && *svc.Spec.IPFamilyPolicy == corev1.IPFamilyPolicySingleStack && svc.Annotations[lbv1.AnnotationAddressPool] != "bgp" {
					svc.Spec.IPFamilyPolicy = ptr.To(corev1.IPFamilyPolicyPreferDualStack)
					what = "family"
				} else {
					svc.Labels = map[string]string{"touched": strconv.Itoa(rnd.IntN(1000))}
					what = "label"
				}
			case 3:
				if svc.Spec.ExternalTrafficPolicy == corev1.ServiceExternalTrafficPolicyLocal {
					svc.Spec.ExternalTrafficPolicy = corev1.ServiceExternalTrafficPolicyCluster
				} else {
					svc.Spec.ExternalTrafficPolicy = corev1.ServiceExternalTrafficPolicyLocal
				}
				what = "traffic policy"
			}
			if err := r.c.Client.Update(ctx, &svc); err == nil {
				count(what)
			}
		}
	}
}

// extraRange is the range of pool l2 the pool editor adds and removes.
const extraRange = "192.0.2.230-192.0.2.235"

// inExtraRange reports whether ip is in extraRange.
func inExtraRange(ip netip.Addr) bool {
	return ip.Compare(netip.MustParseAddr("192.0.2.230")) >= 0 && ip.Compare(netip.MustParseAddr("192.0.2.235")) <= 0
}

// editPools adds and removes an extra range of pool l2 every 10–20 s:
// an address in use that leaves its pool stays with its Service.
func (r *chaosRun) editPools(ctx context.Context) {
	for ctx.Err() == nil {
		select {
		case <-ctx.Done():
			return
		case <-time.After(time.Duration(10+rand.IntN(10)) * time.Second):
		}
		var stack lbv1.LoadBalancerStack
		if err := r.c.Client.Get(ctx, client.ObjectKey{Name: "lbstack"}, &stack); err != nil {
			continue
		}
		out := false
		for i := range stack.Spec.Pools {
			p := &stack.Spec.Pools[i]
			if p.Name != "l2" {
				continue
			}
			if i := slices.Index(p.Addresses, lbv1.PoolAddress(extraRange)); i >= 0 {
				p.Addresses = slices.Delete(p.Addresses, i, i+1)
				out = true
			} else {
				p.Addresses = append(p.Addresses, lbv1.PoolAddress(extraRange))
			}
		}
		// Mark first: the speakers release the addresses that leave the
		// pool the moment they see the edit, before the controller sets
		// the Services' AddressInPool condition.
		r.mu.Lock()
		r.extraOut = r.extraOut || out
		r.extraEdited = time.Now()
		r.mu.Unlock()
		err := r.c.Client.Update(ctx, &stack)
		r.mu.Lock()
		if err == nil {
			r.ops["pool edit"]++
			r.extraOut = out
		}
		r.extraEdited = time.Now()
		r.mu.Unlock()
	}
}

// --- faults ---

// controllerLeader returns the PID of the controller replica holding the
// lease, found by its pod name (the container's HOSTNAME).
func (r *chaosRun) controllerLeader(ctx context.Context) (int, string, error) {
	var lease coordinationv1.Lease
	if err := r.c.Client.Get(ctx, client.ObjectKey{Namespace: operatorNamespace, Name: "lbstack-controller.lbstack.io"}, &lease); err != nil {
		return 0, "", err
	}
	holder := ptr.Deref(lease.Spec.HolderIdentity, "")
	pod, _, _ := strings.Cut(holder, "_")
	for _, pid := range realcluster.LbstackProcesses()["controller"] {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/environ", pid))
		if err == nil && slices.Contains(strings.Split(string(b), "\x00"), "HOSTNAME="+pod) {
			return pid, pod, nil
		}
	}
	return 0, "", fmt.Errorf("no controller process for the lease holder %q", holder)
}

// l2Owner returns the node announcing the stable layer-2 Service.
func (r *chaosRun) l2Owner(ctx context.Context) *realcluster.Node {
	var sa lbv1.ServiceAnnouncement
	if err := r.c.Client.Get(ctx, client.ObjectKey{Namespace: "web", Name: "stable-l2"}, &sa); err == nil && len(sa.Status.Nodes) == 1 {
		return r.c.Node(sa.Status.Nodes[0].Node)
	}
	return r.c.Nodes[0]
}

// inject runs one fault to its end and returns the node it hit.
func (r *chaosRun) inject(ctx context.Context, kind string, i int, bird *lab.Bird) (string, error) {
	c := r.c
	// Node faults alternate between the layer-2 owner and another node.
	node := r.l2Owner(ctx)
	if i%2 == 1 {
		node = c.Nodes[(slices.Index(c.Nodes, node)+1+r.rnd.IntN(len(c.Nodes)-1))%len(c.Nodes)]
	}
	switch kind {
	case fLeaderKill:
		pid, pod, err := r.controllerLeader(ctx)
		if err != nil {
			return "", err
		}
		return pod, syscall.Kill(pid, syscall.SIGKILL)
	case fSpeakerKill:
		// The node's speaker may still be starting after an earlier fault.
		var pids []int
		err := lab.WaitFor(ctxTimeout(ctx, 30*time.Second), 200*time.Millisecond, func() error {
			var err error
			if pids, err = c.SpeakerPIDs(node); err == nil && len(pids) == 0 {
				err = fmt.Errorf("no speaker process on %s", node.Name)
			}
			return err
		})
		if err != nil {
			return node.Name, err
		}
		for _, pid := range pids {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
		return node.Name, nil
	case fSpeakerDel:
		pod, err := c.SpeakerPod(ctx, operatorNamespace, node.Name)
		if err != nil {
			return node.Name, err
		}
		return node.Name, c.Client.Delete(ctx, pod)
	case fAPIRestart:
		return "control plane", c.RestartAPIServer(ctx, 5*time.Second)
	case fCut:
		if err := c.Cut(node, true); err != nil {
			return node.Name, err
		}
		time.Sleep(5 * time.Second)
		return node.Name, c.Cut(node, false)
	case fFreeze:
		if err := c.Freeze(node, true); err != nil {
			_ = c.Freeze(node, false)
			return node.Name, err
		}
		time.Sleep(5 * time.Second)
		return node.Name, c.Freeze(node, false)
	case fKubelet:
		if err := c.StopKubelet(node); err != nil {
			return node.Name, err
		}
		time.Sleep(30 * time.Second) // beyond the 20 s node monitor grace period
		return node.Name, c.StartKubelet(ctx, node)
	case fBird:
		if err := bird.Proc.Stop(10 * time.Second); err != nil && !strings.Contains(err.Error(), "signal") {
			return "router", err
		}
		p, err := c.Lab.StartCmd(exec.Command(bird.Proc.Cmd.Args[0], bird.Proc.Cmd.Args[1:]...), "bird", nil)
		if err != nil {
			return "router", err
		}
		bird.Proc = p
		return "router", lab.WaitFor(ctx, 50*time.Millisecond, func() error { _, err := bird.Birdc("show status"); return err })
	case fAPICut:
		if err := c.CutAPI(node, true); err != nil {
			_ = c.CutAPI(node, false)
			return node.Name, err
		}
		time.Sleep(10 * time.Second)
		return node.Name, c.CutAPI(node, false)
	}
	return "", fmt.Errorf("unknown fault %q", kind)
}

// arpingMACs asks once who has ip and collects every answer for 400 ms
// (arping -c 2 waits for a second reply until its deadline).
func arpingMACs(c *realcluster.Cluster, ip netip.Addr) []string {
	out, _ := c.Lab.Output(c.Lab.Client, "arping", "-c", "2", "-w", "0.4", "-i", "eth0", ip.String())
	var macs []string
	for _, m := range arpingFrom.FindAllStringSubmatch(out, -1) {
		macs = append(macs, strings.ToLower(m[1]))
	}
	slices.Sort(macs)
	return slices.Compact(macs)
}

var arpingFrom = regexp.MustCompile(`(?i)from ([0-9a-f]{2}(?::[0-9a-f]{2}){5})`)

// settle checks, after a fault ended at end, that every layer-2 VIP has
// one MAC 1 s later, that the stable Services answer, and that the
// router's next hops for the stable BGP Service converge; it returns how
// long after end all of it held.
func (r *chaosRun) settle(ctx context.Context, f *faultRecord, probe *realcluster.Probe, targets []string, bgpIP netip.Addr) {
	time.Sleep(time.Until(f.end.Add(oneMACAfter)))
	r.mu.Lock()
	var vips []netip.Addr
	for _, st := range r.services {
		for _, ip := range st.ips {
			// An address of the extra range while it is out of the pool,
			// or within 3 s of an edit, may be unannounced before the
			// controller's condition says so.
			unsure := inExtraRange(ip) && (r.extraOut || time.Since(r.extraEdited) < 3*time.Second)
			if ip.Is4() && st.l2 && !st.outsidePools && !unsure && time.Since(st.assignedAt) > 3*time.Second && !slices.Contains(vips, ip) {
				vips = append(vips, ip)
			}
		}
	}
	r.mu.Unlock()
	var wg sync.WaitGroup
	sem := make(chan struct{}, 8)
	for _, ip := range vips {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			var macs []string
			for range 3 { // a lost reply is no second announcer; three tries
				if macs = arpingMACs(r.c, ip); len(macs) != 0 {
					break
				}
			}
			r.mu.Lock()
			held := len(r.holders[ip]) > 0
			r.mu.Unlock()
			if held && len(macs) != 1 {
				r.violate(invOneMAC, "%s answered by %v %s after %s ended", ip, macs, time.Since(f.end).Round(10*time.Millisecond), f.kind)
			}
		})
	}
	wg.Wait()
	bound := outageBound[f.kind]
	if bound == 0 {
		bound = 3 * time.Second
	}
	if err := probe.WaitUp(ctxTimeout(ctx, bound), targets...); err != nil {
		r.violate(invReachable, "after %s on %s: %v", f.kind, f.node, err)
	}
	if err := lab.WaitFor(ctxTimeout(ctx, ecmpBound), 200*time.Millisecond, func() error { return r.checkECMP(ctx, bgpIP) }); err != nil {
		r.violate(invECMP, "%s after %s on %s: %v", ecmpBound, f.kind, f.node, err)
	}
	f.recovery = time.Since(f.end)
	var worstTarget string
	for _, tg := range targets {
		for _, g := range probe.Gaps(tg, f.start.Add(-time.Second), time.Now()) {
			if g > f.worstGap {
				f.worstGap, worstTarget = g, tg
			}
		}
	}
	if f.worstGap > bound {
		r.violate(invReachable, "%s of %s on %s: %s was unreachable for %s (bound %s); answered by %v from 1 s before the fault until now",
			f.start.Format("15:04:05.000"), f.kind, f.node, worstTarget, f.worstGap.Round(10*time.Millisecond), bound,
			probe.NodesBetween(worstTarget, f.start.Add(-time.Second), time.Now()))
	}
}

func ctxTimeout(ctx context.Context, d time.Duration) context.Context {
	c, cancel := context.WithTimeout(ctx, d)
	time.AfterFunc(d, cancel)
	return c
}

// checkECMP compares the router's next hops for ip (the stable BGP
// Service, externalTrafficPolicy Local) with its eligible nodes: Ready,
// with a Ready speaker and a ready local endpoint.
func (r *chaosRun) checkECMP(ctx context.Context, ip netip.Addr) error {
	var slices_ discoveryv1.EndpointSliceList
	if err := r.c.Client.List(ctx, &slices_, client.InNamespace("web"), client.MatchingLabels{discoveryv1.LabelServiceName: "stable-bgp"}); err != nil {
		return err
	}
	endpoints := lbservice.ReadyEndpointNodes(slices_.Items)
	var want []netip.Addr
	for _, n := range r.c.Nodes {
		var node corev1.Node
		if err := r.c.Client.Get(ctx, client.ObjectKey{Name: n.Name}, &node); err != nil {
			return err
		}
		ready := false
		for _, cnd := range node.Status.Conditions {
			ready = ready || (cnd.Type == corev1.NodeReady && cnd.Status == corev1.ConditionTrue)
		}
		pod, err := r.c.SpeakerPod(ctx, operatorNamespace, n.Name)
		speakerReady := err == nil && podReady(pod)
		if ready && speakerReady && endpoints[n.Name] {
			want = append(want, n.IPv4)
		}
	}
	slices.SortFunc(want, netip.Addr.Compare)
	routes, err := birdRoutes(r.c, r.birdNS)
	if err != nil {
		return err
	}
	if got := routes[ip]; !slices.Equal(got, want) {
		return fmt.Errorf("next hops of %s: %v, want %v", ip, got, want)
	}
	return nil
}

func podReady(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// --- the run ---

func chaosDuration(t *testing.T) time.Duration {
	if s := os.Getenv("LBSTACK_CHAOS_DURATION"); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil || d < time.Minute || d > time.Hour {
			t.Fatalf("LBSTACK_CHAOS_DURATION=%q: want a duration from 1m to 1h", s)
		}
		return d
	}
	return 2 * time.Minute
}

// TestChaos installs lbstack on three real nodes as a user does, then for
// the run's duration churns Services with three clients and a pool editor
// while a scheduler injects faults one after another (chaosPlan), and
// checks the invariants from outside: an API watch (unique and stable
// addresses), arping from the client namespace (one MAC per layer-2
// address 1 s after each fault), an HTTP probe of a stable layer-2 and a
// stable BGP Service (outage bounds), and the router's routes (withdrawal
// of released addresses, ECMP next hops). It prints a table — fault,
// count, violations of each invariant, worst recovery — and fails on any
// violation. It stops by itself and cleans up.
func TestChaos(t *testing.T) {
	dur := chaosDuration(t)
	full := os.Getenv("LBSTACK_CHAOS_FULL") != ""
	// The churn's clients get the Service webhook's warnings (a requested
	// address taken, ...): expected, not worth a line each.
	ctrllog.SetLogger(logr.Discard())
	ctx, cancel := context.WithTimeout(context.Background(), dur+15*time.Minute)
	defer cancel()
	c := upClusterWith(t, ctx, realcluster.Options{Nodes: 3, NodeMonitorGracePeriod: 20 * time.Second})
	root := testenv.RepoRoot()
	if out, err := c.KubectlOutput(ctx, "apply", "-k", filepath.Join(root, "config", "local")); err != nil {
		t.Fatalf("kubectl apply -k config/local: %v\n%s", err, out)
	}
	if out, err := c.KubectlOutput(ctx, "-n", operatorNamespace, "rollout", "status", "deployment/lbstack-operator", "--timeout=3m"); err != nil {
		t.Fatalf("operator not rolled out: %v\n%s", err, out)
	}
	var nbrs []lab.BirdNeighbor
	for _, n := range c.Nodes {
		nbrs = append(nbrs, lab.BirdNeighbor{Name: n.Name, Address: n.IPv4, ASN: 64500, BFD: true})
	}
	bird, err := c.Lab.StartRouter(lab.BirdConfig{ASN: 64500, Neighbors: nbrs, BFDInterval: 100})
	if err != nil {
		t.Fatalf("starting BIRD: %v", err)
	}
	for _, cmd := range [][]string{
		{"ip", "route", "add", "203.0.113.128/25", "via", lab.RouterIPv4.String()},
		{"ip", "-6", "route", "add", "2001:db8:0:1::/64", "dev", "eth0"},
	} {
		if err := c.Lab.Run(c.Lab.Client, cmd...); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.Lab.Run(bird.NS, "sysctl", "-qw", "net.ipv4.ip_forward=1"); err != nil {
		t.Fatal(err)
	}
	applyStack(t, ctx, c, filepath.Join(root, "test", "realcluster", "testdata", "chaos-stack.yaml"))
	waitStackAvailable(t, ctx, c)
	if out, err := c.KubectlOutput(ctx, "apply", "-f", filepath.Join(root, "test", "realcluster", "testdata", "echo.yaml")); err != nil {
		t.Fatalf("applying the backend: %v\n%s", err, out)
	}
	// The stable Services the probe follows: Local, so that a node's fault
	// only costs the traffic that node carried.
	stable := map[string]string{"stable-l2": "l2", "stable-bgp": "bgp"}
	var targets []string
	var bgpIP netip.Addr
	for _, name := range []string{"stable-l2", "stable-bgp"} {
		svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: "web", Name: name, Annotations: map[string]string{lbv1.AnnotationAddressPool: stable[name]}},
			Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeLoadBalancer, Selector: map[string]string{"app": "echo"},
				ExternalTrafficPolicy: corev1.ServiceExternalTrafficPolicyLocal,
				Ports:                 []corev1.ServicePort{{Name: "http", Port: 80, TargetPort: intstr.FromString("http")}}}}
		if err := c.Client.Create(ctx, svc); err != nil {
			t.Fatal(err)
		}
		ip, _ := serviceIPs(t, ctx, c, client.ObjectKeyFromObject(svc), 1)
		if stable[name] == "l2" {
			waitAnnounced(t, ctx, c, client.ObjectKeyFromObject(svc)) // one node; BGP's next hops are checked below
		}
		targets = append(targets, "http://"+ip.String()+"/")
		if name == "stable-bgp" {
			bgpIP = ip
		}
	}
	probe, err := c.StartProbe(t.TempDir(), targets...)
	if err != nil {
		t.Fatal(err)
	}
	defer probe.Stop()
	if err := probe.WaitUp(ctxTimeout(ctx, time.Minute), targets...); err != nil {
		t.Fatalf("the stable Services never answered: %v", err)
	}

	r := &chaosRun{t: t, c: c, rnd: rand.New(rand.NewPCG(1, uint64(time.Now().UnixNano()))), birdNS: bird.NS, full: full,
		violations: map[string]map[string][]string{}, services: map[string]*svcState{}, holders: map[netip.Addr]map[string]bool{},
		released: map[netip.Addr]time.Time{}, reported: map[string]bool{}, ops: map[string]int{}, pendingWithdraw: map[netip.Addr]time.Time{}}
	if err := lab.WaitFor(ctxTimeout(ctx, time.Minute), 200*time.Millisecond, func() error { return r.checkECMP(ctx, bgpIP) }); err != nil {
		t.Fatalf("ECMP before any fault: %v", err)
	}
	wc, err := client.NewWithWatch(c.Config, client.Options{Scheme: c.Client.Scheme()})
	if err != nil {
		t.Fatal(err)
	}
	runCtx, stopRun := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() { r.watchServices(runCtx, wc) })
	wg.Go(func() { r.watchRoutes(runCtx, bird.NS) })
	churnCtx, stopChurn := context.WithCancel(runCtx)
	for id := range 3 {
		wg.Go(func() { r.churn(churnCtx, id) })
	}
	wg.Go(func() { r.editPools(churnCtx) })

	// The faults, shuffled, spread evenly over the run.
	plan := chaosPlan(full)
	var order []string
	for _, k := range sortedKeys(plan) {
		for range plan[k] {
			order = append(order, k)
		}
	}
	seed := r.rnd.Uint64()
	rand.New(rand.NewPCG(seed, 0)).Shuffle(len(order), func(i, j int) { order[i], order[j] = order[j], order[i] })
	t.Logf("chaos: %s, %d faults (seed %d): %v", dur, len(order), seed, order)
	start := time.Now()
	gap := dur / time.Duration(len(order)+1)
	nth := map[string]int{}
	for i, kind := range order {
		time.Sleep(time.Until(start.Add(time.Duration(i+1) * gap)))
		f := &faultRecord{kind: kind, start: time.Now()}
		r.mu.Lock()
		r.current = f
		r.faults = append(r.faults, f)
		r.mu.Unlock()
		node, err := r.inject(ctx, kind, nth[kind], bird)
		nth[kind]++
		f.node, f.end = node, time.Now()
		if err != nil {
			t.Errorf("injecting %s: %v", kind, err)
		}
		r.settle(ctx, f, probe, targets, bgpIP)
		t.Logf("%s on %s: %s, recovered %s after its end, worst HTTP gap %s", kind, f.node, f.end.Sub(f.start).Round(10*time.Millisecond),
			f.recovery.Round(10*time.Millisecond), f.worstGap.Round(10*time.Millisecond))
		r.mu.Lock()
		r.current = nil
		r.mu.Unlock()
	}
	time.Sleep(time.Until(start.Add(dur)))
	stopChurn()
	// Let the last changes settle, then one last look.
	time.Sleep(withdrawBound + time.Second)
	final := &faultRecord{kind: "(end of run)", start: time.Now(), end: time.Now()}
	r.settle(ctx, final, probe, targets, bgpIP)
	stopRun()
	wg.Wait()
	r.report(t, plan)
	if dir := os.Getenv("LBSTACK_CHAOS_LOGDIR"); dir != "" {
		keepLogs(t, ctx, c, dir)
	}
}

// keepLogs writes the logs of every lbstack container (current and
// previous) and BIRD's into dir, for reading after the cluster is gone.
func keepLogs(t *testing.T, ctx context.Context, c *realcluster.Cluster, dir string) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Logf("keeping logs: %v", err)
		return
	}
	var pods corev1.PodList
	if err := c.Client.List(ctx, &pods, client.InNamespace(operatorNamespace)); err != nil {
		t.Logf("keeping logs: %v", err)
		return
	}
	for _, p := range pods.Items {
		for _, prev := range []bool{false, true} {
			out, err := c.KubectlOutput(ctx, "logs", "-n", operatorNamespace, p.Name, fmt.Sprintf("--previous=%t", prev))
			if err == nil {
				_ = os.WriteFile(filepath.Join(dir, fmt.Sprintf("%s-%s-previous=%t.log", p.Spec.NodeName, p.Name, prev)), []byte(out), 0o644)
			}
		}
	}
	t.Logf("logs kept in %s", dir)
}

func sortedKeys[V any](m map[string]V) []string {
	var keys []string
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// report prints the table and fails on any violation.
func (r *chaosRun) report(t *testing.T, plan map[string]int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	var b strings.Builder
	w := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	fmt.Fprintf(w, "FAULT\tCOUNT\t%s\tWORST RECOVERY\tWORST HTTP GAP\n", strings.Join(invariants, "\t"))
	total := 0
	row := func(kind string, count int, recovery, gap time.Duration) {
		fmt.Fprintf(w, "%s\t%d", kindOr(kind), count)
		for _, inv := range invariants {
			n := len(r.violations[kind][inv])
			total += n
			fmt.Fprintf(w, "\t%d", n)
		}
		fmt.Fprintf(w, "\t%s\t%s\n", recovery.Round(10*time.Millisecond), gap.Round(10*time.Millisecond))
	}
	for _, kind := range sortedKeys(plan) {
		var rec, gap time.Duration
		count := 0
		for _, f := range r.faults {
			if f.kind == kind {
				count++
				rec, gap = max(rec, f.recovery), max(gap, f.worstGap)
			}
		}
		row(kind, count, rec, gap)
	}
	row("", 0, 0, 0)
	w.Flush()
	var ops []string
	for _, k := range sortedKeys(r.ops) {
		ops = append(ops, fmt.Sprintf("%s %d", k, r.ops[k]))
	}
	w2 := slices.Clone(r.withdrawals)
	slices.Sort(w2)
	withdrawn := "none"
	if len(w2) > 0 {
		withdrawn = fmt.Sprintf("%d, median %s, p99 %s, max %s", len(w2), w2[len(w2)/2].Round(10*time.Millisecond),
			w2[min(len(w2)-1, len(w2)*99/100)].Round(10*time.Millisecond), w2[len(w2)-1].Round(10*time.Millisecond))
	}
	t.Logf("chaos summary (churn: %s; routes withdrawn after release: %s):\n%s", strings.Join(ops, ", "), withdrawn, b.String())
	if total > 0 {
		for kind, invs := range r.violations {
			for inv, msgs := range invs {
				for _, m := range msgs {
					t.Errorf("%s during %s: %s", inv, kindOr(kind), m)
				}
			}
		}
	}
}

func kindOr(kind string) string {
	if kind == "" {
		return "(between faults)"
	}
	return kind
}
