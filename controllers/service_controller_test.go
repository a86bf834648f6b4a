package controllers_test

import (
	"context"
	"fmt"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/util/retry"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/manager"

	lbv1 "github.com/lbstack/lbstack/api/v1alpha1"
	"github.com/lbstack/lbstack/controllers"
	"github.com/lbstack/lbstack/internal/cli"
	"github.com/lbstack/lbstack/internal/render"
	"github.com/lbstack/lbstack/internal/testenv"
)

var env *testenv.Env

func TestMain(m *testing.M) {
	testenv.Main(m, testenv.Options{}, func(e *testenv.Env) { env = e })
}

// startController runs a controller manager until the returned stop is
// called (or the test ends).
func startController(t *testing.T, leaderElect bool, id string) (stop func()) {
	t.Helper()
	stop, _ = startControllerWithMetrics(t, leaderElect, id)
	return stop
}

// startControllerWithMetrics is startController, also returning the
// registry holding the controller's metrics (one per controller, as
// several run in this process).
func startControllerWithMetrics(t *testing.T, leaderElect bool, id string) (stop func(), reg *prometheus.Registry) {
	t.Helper()
	o := cli.ManagerOptions{MetricsAddr: "0", ProbeAddr: "0", LeaderElect: leaderElect,
		LeaderElectionID: "lbstack-controller-" + id, LeaderElectionNamespace: "default",
		LeaseDuration: 2 * time.Second, RenewDeadline: 1500 * time.Millisecond, RetryPeriod: 200 * time.Millisecond}
	mgr, err := o.NewManager(asController(t), func(mo *manager.Options) {
		mo.Controller.SkipNameValidation = ptr.To(true)
	})
	if err != nil {
		t.Fatal(err)
	}
	reg = prometheus.NewRegistry()
	if err := controllers.SetupController(mgr, controllers.ControllerOptions{Workers: 4, PoolStatusInterval: 200 * time.Millisecond, Registry: reg}); err != nil {
		t.Fatal(err)
	}
	return testenv.RunManager(t, mgr), reg
}

var (
	identityOnce sync.Once
	identityErr  error
)

// controllerUser is the controller's ServiceAccount as rendered into the
// namespace the tests' leader election uses.
const controllerUser = "system:serviceaccount:default:" + render.ControllerName

// asController returns a configuration that impersonates the controller's
// ServiceAccount with exactly the RBAC the operator renders for it (its
// ClusterRole and leader election Role): every test runs the controller so,
// which proves those rules are enough.
func asController(t *testing.T) *rest.Config {
	t.Helper()
	identityOnce.Do(func() {
		stack := &lbv1.LoadBalancerStack{ObjectMeta: metav1.ObjectMeta{Name: "lbstack", UID: "00000000-0000-0000-0000-0000000000c0"}}
		for _, o := range render.RBAC(stack, render.Params{Namespace: "default"}) {
			if o.GetLabels()[render.LabelComponent] != render.ComponentController {
				continue
			}
			if err := env.Client.Create(context.Background(), o); err != nil {
				identityErr = fmt.Errorf("creating %s: %w", render.Key(o), err)
				return
			}
		}
	})
	if identityErr != nil {
		t.Fatal(identityErr)
	}
	cfg := rest.CopyConfig(env.Config)
	cfg.Impersonate = rest.ImpersonationConfig{UserName: controllerUser}
	as, err := client.New(cfg, client.Options{Scheme: env.Client.Scheme()})
	if err != nil {
		t.Fatal(err)
	}
	// The RBAC authorizer reads its informers: wait for the bindings.
	deadline := time.Now().Add(30 * time.Second)
	for {
		err := as.List(ctx(t), &corev1.ServiceList{})
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the controller's rendered RBAC never took effect: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	return cfg
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	return c
}

// create creates objects and deletes them when t ends.
func create(t *testing.T, objs ...client.Object) {
	t.Helper()
	for _, o := range objs {
		createKeep(t, o)
		t.Cleanup(func() { _ = env.Client.Delete(context.Background(), o) })
	}
}

// createKeep creates objects that outlive t (subtests whose Services must
// stay for the next subtest; each test has its own namespace).
func createKeep(t *testing.T, objs ...client.Object) {
	t.Helper()
	for _, o := range objs {
		if err := env.Client.Create(ctx(t), o); err != nil {
			t.Fatalf("creating %T %s: %v", o, o.GetName(), err)
		}
	}
}

func pool(name string, addrs ...string) *lbv1.IPAddressPool {
	p := &lbv1.IPAddressPool{ObjectMeta: metav1.ObjectMeta{Name: name}}
	for _, a := range addrs {
		p.Spec.Addresses = append(p.Spec.Addresses, lbv1.PoolAddress(a))
	}
	return p
}

func namespace(t *testing.T, labels map[string]string) string {
	t.Helper()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "t-", Labels: labels}}
	if err := env.Client.Create(ctx(t), ns); err != nil {
		t.Fatal(err)
	}
	return ns.Name
}

type svcOpt func(*corev1.Service)

func ann(k, v string) svcOpt {
	return func(s *corev1.Service) {
		if s.Annotations == nil {
			s.Annotations = map[string]string{}
		}
		s.Annotations[k] = v
	}
}

func port(p int32) svcOpt {
	return func(s *corev1.Service) { s.Spec.Ports = []corev1.ServicePort{{Name: fmt.Sprint("p", p), Port: p}} }
}

func service(ns, name string, opts ...svcOpt) *corev1.Service {
	s := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeLoadBalancer, Ports: []corev1.ServicePort{{Name: "http", Port: 80}}}}
	for _, o := range opts {
		o(s)
	}
	return s
}

// waitIPs waits until the Service has n ingress IPs and returns them.
func waitIPs(t *testing.T, ns, name string, n int) []string {
	t.Helper()
	var ips []string
	eventually(t, fmt.Sprintf("Service %s/%s has %d IP(s)", ns, name, n), func() bool {
		var s corev1.Service
		if err := env.Client.Get(ctx(t), client.ObjectKey{Namespace: ns, Name: name}, &s); err != nil {
			return false
		}
		ips = nil
		for _, i := range s.Status.LoadBalancer.Ingress {
			ips = append(ips, i.IP)
		}
		return len(ips) == n
	})
	return ips
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// waitEvent waits for an event on the Service with the reason whose note
// contains text, and returns the note.
func waitEvent(t *testing.T, ns, name, reason, text string) string {
	t.Helper()
	var note string
	eventually(t, fmt.Sprintf("event %s %q on %s/%s", reason, text, ns, name), func() bool {
		var l eventsv1.EventList
		if err := env.Client.List(ctx(t), &l, client.InNamespace(ns)); err != nil {
			return false
		}
		for _, e := range l.Items {
			if e.Regarding.Name == name && e.Reason == reason && strings.Contains(e.Note, text) {
				note = e.Note
				return true
			}
		}
		return false
	})
	return note
}

func TestAssignment(t *testing.T) {
	startController(t, false, "assign")
	create(t, pool("main", "192.0.2.0/30"),
		&lbv1.IPAddressPool{ObjectMeta: metav1.ObjectMeta{Name: "manual"}, Spec: lbv1.IPAddressPoolSpec{
			Addresses: []lbv1.PoolAddress{"198.51.100.10-198.51.100.12"}, AutoAssign: ptr.To(false)}},
		&lbv1.IPAddressPool{ObjectMeta: metav1.ObjectMeta{Name: "team"}, Spec: lbv1.IPAddressPoolSpec{
			Addresses:  []lbv1.PoolAddress{"203.0.113.0/29"},
			Allocation: &lbv1.ServiceAllocation{Priority: ptr.To[int32](1), ServiceSelectors: []metav1.LabelSelector{{MatchLabels: map[string]string{"team": "a"}}}}}},
		pool("dual", "198.51.100.64/30", "2001:db8:5::/126"),
	)
	ns := namespace(t, nil)

	t.Run("auto assignment from an auto-assign pool, with annotation, event and pool counters", func(t *testing.T) {
		createKeep(t, service(ns, "web"))
		ips := waitIPs(t, ns, "web", 1)
		a := netip.MustParseAddr(ips[0])
		if !netip.MustParsePrefix("192.0.2.0/30").Contains(a) && !netip.MustParsePrefix("198.51.100.64/30").Contains(a) {
			t.Fatalf("got %s, not from an auto-assign pool without selectors", a)
		}
		var s corev1.Service
		eventually(t, "the ip-allocated-from-pool annotation is set", func() bool {
			_ = env.Client.Get(ctx(t), client.ObjectKey{Namespace: ns, Name: "web"}, &s)
			return s.Annotations[lbv1.AnnotationAllocatedFromPool] != ""
		})
		waitEvent(t, ns, "web", controllers.ReasonIPAllocated, ips[0])
		poolName := s.Annotations[lbv1.AnnotationAllocatedFromPool]
		eventually(t, "pool status counts the address", func() bool {
			var p lbv1.IPAddressPool
			_ = env.Client.Get(ctx(t), client.ObjectKey{Name: poolName}, &p)
			return p.Status.IPv4 != nil && p.Status.IPv4.Assigned == 1 && p.Status.IPv4.Available == "3"
		})
	})
	t.Run("requested IP", func(t *testing.T) {
		createKeep(t, service(ns, "req", ann(lbv1.AnnotationLoadBalancerIPs, "198.51.100.11")))
		if ips := waitIPs(t, ns, "req", 1); ips[0] != "198.51.100.11" {
			t.Fatalf("got %v", ips)
		}
	})
	t.Run("requested pool, even without autoAssign", func(t *testing.T) {
		createKeep(t, service(ns, "manual", ann(lbv1.AnnotationAddressPool, "manual")))
		if ip := netip.MustParseAddr(waitIPs(t, ns, "manual", 1)[0]); !netip.MustParsePrefix("198.51.100.8/29").Contains(ip) || ip == netip.MustParseAddr("198.51.100.11") {
			t.Fatalf("got %s", ip)
		}
	})
	t.Run("selector pool by priority", func(t *testing.T) {
		s := service(ns, "team-a")
		s.Labels = map[string]string{"team": "a"}
		createKeep(t, s)
		if ip := netip.MustParseAddr(waitIPs(t, ns, "team-a", 1)[0]); !netip.MustParsePrefix("203.0.113.0/29").Contains(ip) {
			t.Fatalf("got %s, want from pool team", ip)
		}
	})
	t.Run("IP in no pool fails with a reason", func(t *testing.T) {
		createKeep(t, service(ns, "nopool", ann(lbv1.AnnotationLoadBalancerIPs, "192.0.2.200")))
		waitEvent(t, ns, "nopool", controllers.ReasonAllocationFailed, "IP 192.0.2.200 is in no IPAddressPool")
	})
	t.Run("requested IP held by another Service names it", func(t *testing.T) {
		createKeep(t, service(ns, "thief", ann(lbv1.AnnotationLoadBalancerIPs, "198.51.100.11")))
		waitEvent(t, ns, "thief", controllers.ReasonAllocationFailed, "IP 198.51.100.11 is held by "+ns+"/req")
	})
	t.Run("sharing with a key, and a port clash names the other Service", func(t *testing.T) {
		createKeep(t, service(ns, "share-a", ann(lbv1.AnnotationAllowSharedIP, "k"), ann(lbv1.AnnotationLoadBalancerIPs, "198.51.100.12"), port(80)),
			service(ns, "share-b", ann(lbv1.AnnotationAllowSharedIP, "k"), ann(lbv1.AnnotationLoadBalancerIPs, "198.51.100.12"), port(443)),
			service(ns, "share-c", ann(lbv1.AnnotationAllowSharedIP, "k"), ann(lbv1.AnnotationLoadBalancerIPs, "198.51.100.12"), port(80)))
		if a, b := waitIPs(t, ns, "share-a", 1), waitIPs(t, ns, "share-b", 1); a[0] != b[0] {
			t.Fatalf("share-a %v and share-b %v should share", a, b)
		}
		waitEvent(t, ns, "share-c", controllers.ReasonAllocationFailed, "both use port 80/TCP")
	})
	t.Run("PreferDualStack gets both families from one pool", func(t *testing.T) {
		s := service(ns, "dual")
		s.Spec.IPFamilyPolicy = ptr.To(corev1.IPFamilyPolicyRequireDualStack)
		s.Spec.IPFamilies = []corev1.IPFamily{corev1.IPv4Protocol, corev1.IPv6Protocol}
		// The test API server has a single-stack (IPv4) service CIDR, so
		// it accepts PreferDualStack, not RequireDualStack; lbstack still
		// hands out both families when one pool has both.
		s.Spec.IPFamilyPolicy = ptr.To(corev1.IPFamilyPolicyPreferDualStack)
		s.Spec.IPFamilies = nil
		createKeep(t, s)
		ips := waitIPs(t, ns, "dual", 2)
		if !netip.MustParsePrefix("198.51.100.64/30").Contains(netip.MustParseAddr(ips[0])) || !netip.MustParsePrefix("2001:db8:5::/126").Contains(netip.MustParseAddr(ips[1])) {
			t.Fatalf("got %v, want IPv4 then IPv6 from pool dual", ips)
		}
	})
	t.Run("another class is never touched", func(t *testing.T) {
		s := service(ns, "other-class")
		s.Spec.LoadBalancerClass = ptr.To("example.com/other")
		createKeep(t, s)
		time.Sleep(time.Second)
		var got corev1.Service
		_ = env.Client.Get(ctx(t), client.ObjectKey{Namespace: ns, Name: "other-class"}, &got)
		if len(got.Status.LoadBalancer.Ingress) > 0 || got.Annotations[lbv1.AnnotationAllocatedFromPool] != "" {
			t.Fatalf("touched a Service of another class: %+v", got.Status)
		}
	})
	t.Run("release on delete and on type change", func(t *testing.T) {
		s := service(ns, "temp", ann(lbv1.AnnotationLoadBalancerIPs, "192.0.2.3"))
		createKeep(t, s)
		waitIPs(t, ns, "temp", 1)
		if err := env.Client.Delete(ctx(t), s); err != nil {
			t.Fatal(err)
		}
		createKeep(t, service(ns, "temp2", ann(lbv1.AnnotationLoadBalancerIPs, "192.0.2.3")))
		waitIPs(t, ns, "temp2", 1)

		if err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
			var cur corev1.Service
			if err := env.Client.Get(ctx(t), client.ObjectKey{Namespace: ns, Name: "temp2"}, &cur); err != nil {
				return err
			}
			cur.Spec.Type = corev1.ServiceTypeClusterIP
			return env.Client.Update(ctx(t), &cur)
		}); err != nil {
			t.Fatal(err)
		}
		eventually(t, "the annotation and ingress are cleared", func() bool {
			var s corev1.Service
			_ = env.Client.Get(ctx(t), client.ObjectKey{Namespace: ns, Name: "temp2"}, &s)
			return s.Annotations[lbv1.AnnotationAllocatedFromPool] == "" && len(s.Status.LoadBalancer.Ingress) == 0
		})
	})
}

func TestPoolShrinkKeepsAddressAndWarns(t *testing.T) {
	startController(t, false, "shrink")
	p := pool("shrinking", "203.0.113.64/29")
	create(t, p)
	ns := namespace(t, nil)
	create(t, service(ns, "kept", ann(lbv1.AnnotationLoadBalancerIPs, "203.0.113.70")))
	waitIPs(t, ns, "kept", 1)
	// The controller writes the pool's status counters meanwhile.
	if err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		if err := env.Client.Get(ctx(t), client.ObjectKey{Name: "shrinking"}, p); err != nil {
			return err
		}
		p.Spec.Addresses = []lbv1.PoolAddress{"203.0.113.64/30"}
		return env.Client.Update(ctx(t), p)
	}); err != nil {
		t.Fatal(err)
	}
	waitEvent(t, ns, "kept", controllers.ReasonOutsidePool, "203.0.113.70 are no longer in any IPAddressPool")
	var s corev1.Service
	_ = env.Client.Get(ctx(t), client.ObjectKey{Namespace: ns, Name: "kept"}, &s)
	if len(s.Status.LoadBalancer.Ingress) != 1 || s.Status.LoadBalancer.Ingress[0].IP != "203.0.113.70" {
		t.Fatalf("the address moved: %+v", s.Status.LoadBalancer.Ingress)
	}
	c := meta.FindStatusCondition(s.Status.Conditions, controllers.ConditionAddressInPool)
	if c == nil || c.Status != metav1.ConditionFalse {
		t.Fatalf("condition %s not False: %+v", controllers.ConditionAddressInPool, s.Status.Conditions)
	}
}

// TestRestartKeepsAddresses stops the controller, starts a new one and
// expects every address to stay where it was, and new Services to get
// addresses that do not collide.
func TestRestartKeepsAddresses(t *testing.T) {
	stop := startController(t, false, "restart")
	create(t, pool("restart", "198.51.100.128/27"))
	ns := namespace(t, nil)
	before := map[string]string{}
	for i := 0; i < 10; i++ {
		create(t, service(ns, fmt.Sprint("s", i)))
	}
	for i := 0; i < 10; i++ {
		before[fmt.Sprint("s", i)] = waitIPs(t, ns, fmt.Sprint("s", i), 1)[0]
	}
	stop()
	// Free an address in the middle, so a naive allocator restarting from
	// the start of the pool would hand out a taken one next.
	startController(t, false, "restart2")
	for i := 10; i < 20; i++ {
		create(t, service(ns, fmt.Sprint("s", i)))
	}
	seen := map[string]string{}
	for i := 0; i < 20; i++ {
		name := fmt.Sprint("s", i)
		ip := waitIPs(t, ns, name, 1)[0]
		if b, ok := before[name]; ok && b != ip {
			t.Errorf("%s moved from %s to %s across a restart", name, b, ip)
		}
		if other, dup := seen[ip]; dup {
			t.Errorf("%s and %s both hold %s", name, other, ip)
		}
		seen[ip] = name
	}
}

// TestLeaderChangeMidChurn runs two replicas with leader election, stops
// the leader while Services are being created, and expects the new leader
// to assign the rest without duplicates or moves.
func TestLeaderChangeMidChurn(t *testing.T) {
	create(t, pool("ha", "192.0.2.128/26"))
	ns := namespace(t, nil)
	stopA := startController(t, true, "ha")
	time.Sleep(500 * time.Millisecond) // let A become leader
	startController(t, true, "ha")

	const n = 40
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; i < n; i++ {
			if err := env.Client.Create(context.Background(), service(ns, fmt.Sprint("c", i))); err != nil {
				t.Errorf("create: %v", err)
			}
			if i == n/2 {
				stopA()
			}
			time.Sleep(20 * time.Millisecond)
		}
	}()
	wg.Wait()
	first := map[string]string{}
	seen := map[string]string{}
	for i := 0; i < n; i++ {
		name := fmt.Sprint("c", i)
		ip := waitIPs(t, ns, name, 1)[0]
		first[name] = ip
		if other, dup := seen[ip]; dup {
			t.Errorf("%s and %s both hold %s", name, other, ip)
		}
		seen[ip] = name
	}
	time.Sleep(time.Second)
	for name, ip := range first {
		if got := waitIPs(t, ns, name, 1)[0]; got != ip {
			t.Errorf("%s moved from %s to %s after the leader change", name, ip, got)
		}
	}
}

// TestNamespaceSelector gives a Service an address from the pool that
// selects its namespace by label, and a namespace without the label one
// from the general pool.
func TestNamespaceSelector(t *testing.T) {
	startController(t, false, "nssel")
	create(t, pool("general", "203.0.113.200/30"),
		&lbv1.IPAddressPool{ObjectMeta: metav1.ObjectMeta{Name: "prod"}, Spec: lbv1.IPAddressPoolSpec{
			Addresses:  []lbv1.PoolAddress{"203.0.113.208/30"},
			Allocation: &lbv1.ServiceAllocation{NamespaceSelectors: []metav1.LabelSelector{{MatchLabels: map[string]string{"env": "prod"}}}}}})
	prod, dev := namespace(t, map[string]string{"env": "prod"}), namespace(t, nil)
	create(t, service(prod, "a"), service(dev, "b"))
	if ip := netip.MustParseAddr(waitIPs(t, prod, "a", 1)[0]); !netip.MustParsePrefix("203.0.113.208/30").Contains(ip) {
		t.Fatalf("prod Service got %s, want from pool prod", ip)
	}
	if ip := netip.MustParseAddr(waitIPs(t, dev, "b", 1)[0]); !netip.MustParsePrefix("203.0.113.200/30").Contains(ip) {
		t.Fatalf("dev Service got %s, want from pool general", ip)
	}
}
