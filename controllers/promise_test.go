package controllers_test

import (
	"context"
	"net/netip"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	lbv1 "github.com/lbstack/lbstack/api/v1alpha1"
	"github.com/lbstack/lbstack/controllers"
)

// These tests pin the controller's promise: an assigned address is never
// lost, moved or handed out twice — across restarts, with a configuration
// that is invalid or missing at start-up, and with requests that no longer
// parse.

// getService reads a Service.
func getService(t *testing.T, ns, name string) *corev1.Service {
	t.Helper()
	var s corev1.Service
	if err := env.Client.Get(ctx(t), client.ObjectKey{Namespace: ns, Name: name}, &s); err != nil {
		t.Fatal(err)
	}
	return &s
}

// holdsFor checks, for d, that the Service keeps exactly ip and its pool
// annotation.
func holdsFor(t *testing.T, ns, name, ip, pool string, d time.Duration) {
	t.Helper()
	for end := time.Now().Add(d); time.Now().Before(end); time.Sleep(100 * time.Millisecond) {
		s := getService(t, ns, name)
		ing := s.Status.LoadBalancer.Ingress
		if len(ing) != 1 || ing[0].IP != ip || s.Annotations[lbv1.AnnotationAllocatedFromPool] != pool {
			t.Fatalf("%s/%s lost its address: ingress %v, pool annotation %q; want %s from %q", ns, name, ing, s.Annotations[lbv1.AnnotationAllocatedFromPool], ip, pool)
		}
	}
}

// waitAssigned waits until the Service has one IP and its pool annotation
// (written after the status), and returns the IP.
func waitAssigned(t *testing.T, ns, name, pool string) string {
	t.Helper()
	ip := waitIPs(t, ns, name, 1)[0]
	eventually(t, "the pool annotation of "+ns+"/"+name, func() bool {
		return getService(t, ns, name).Annotations[lbv1.AnnotationAllocatedFromPool] == pool
	})
	return ip
}

// TestStartWithInvalidOrMissingConfigClearsNothing: a controller that
// starts (restart, leader change, upgrade) while the configuration is
// invalid, or while the stack that names the served class is gone, does not
// know which Services it serves; it must clear and release nothing, and when
// the configuration is fixed every Service has kept its address.
func TestStartWithInvalidOrMissingConfigClearsNothing(t *testing.T) {
	const class = "example.com/lbstack"
	stack := &lbv1.LoadBalancerStack{ObjectMeta: metav1.ObjectMeta{Name: "promise"}, Spec: lbv1.LoadBalancerStackSpec{LoadBalancerClass: class}}
	createKeep(t, stack)
	t.Cleanup(func() {
		// The stack of the last step, whichever it is: other tests serve the default class.
		_ = env.Client.Delete(context.Background(), &lbv1.LoadBalancerStack{ObjectMeta: metav1.ObjectMeta{Name: "promise"}})
	})
	create(t, pool("promise", "203.0.113.200/30"))
	ns := namespace(t, nil)
	svc := service(ns, "classy")
	svc.Spec.LoadBalancerClass = ptr.To(class)
	create(t, svc)
	stop := startController(t, false, "promise-1")
	ip := waitAssigned(t, ns, "classy", "promise")
	stop()

	// Invalid: a second pool overlapping the first (no webhook here).
	overlap := pool("promise-overlap", "203.0.113.201/32")
	create(t, overlap)
	stop = startController(t, false, "promise-2")
	create(t, service(ns, "nudge")) // something to reconcile
	holdsFor(t, ns, "classy", ip, "promise", 3*time.Second)
	stop()
	if err := env.Client.Delete(ctx(t), overlap); err != nil {
		t.Fatal(err)
	}

	// Missing: the stack that names the class is gone.
	if err := env.Client.Delete(ctx(t), stack); err != nil {
		t.Fatal(err)
	}
	stop = startController(t, false, "promise-3")
	create(t, service(ns, "nudge-2"))
	holdsFor(t, ns, "classy", ip, "promise", 3*time.Second)
	stop()

	// Fixed: the stack is back; the Service keeps its address.
	createKeep(t, &lbv1.LoadBalancerStack{ObjectMeta: metav1.ObjectMeta{Name: "promise"}, Spec: lbv1.LoadBalancerStackSpec{LoadBalancerClass: class}})
	startController(t, false, "promise-4")
	holdsFor(t, ns, "classy", ip, "promise", 2*time.Second)
}

// TestRestoreHoldsAddressOfUnparseableRequest: a Service whose request no
// longer parses (its owner wrote a bad annotation; the Service webhook only
// warns) keeps its address across a restart, and nobody else gets it.
func TestRestoreHoldsAddressOfUnparseableRequest(t *testing.T) {
	create(t, pool("unparse", "203.0.113.210/32"))
	ns := namespace(t, nil)
	create(t, service(ns, "first", ann(lbv1.AnnotationLoadBalancerIPs, "203.0.113.210")))
	stop := startController(t, false, "unparse-1")
	ip := waitAssigned(t, ns, "first", "unparse")
	stop()
	s := getService(t, ns, "first")
	patch := client.MergeFrom(s.DeepCopy())
	s.Annotations[lbv1.AnnotationLoadBalancerIPs] = "not-an-ip"
	if err := env.Client.Patch(ctx(t), s, patch); err != nil {
		t.Fatal(err)
	}
	startController(t, false, "unparse-2")
	create(t, service(ns, "second", ann(lbv1.AnnotationAddressPool, "unparse")))
	waitEvent(t, ns, "second", "AllocationFailed", "")
	if got := getService(t, ns, "second").Status.LoadBalancer.Ingress; len(got) != 0 {
		t.Fatalf("second got %v, which first holds", got)
	}
	holdsFor(t, ns, "first", ip, "unparse", time.Second)
}

// TestPendingServiceGetsFreedAddress: a Service that failed because its pool
// was exhausted gets the address another Service frees, without a change of
// its own.
func TestPendingServiceGetsFreedAddress(t *testing.T) {
	startController(t, false, "pending")
	create(t, pool("pending", "203.0.113.220/32"))
	ns := namespace(t, nil)
	first := service(ns, "first", ann(lbv1.AnnotationAddressPool, "pending"))
	createKeep(t, first)
	ip := waitIPs(t, ns, "first", 1)[0]
	create(t, service(ns, "second", ann(lbv1.AnnotationAddressPool, "pending")))
	waitEvent(t, ns, "second", "AllocationFailed", "")
	if err := env.Client.Delete(ctx(t), first); err != nil {
		t.Fatal(err)
	}
	if got := waitIPs(t, ns, "second", 1)[0]; got != ip {
		t.Errorf("second got %s, want the freed %s", got, ip)
	}
	// The same when a pool grows.
	create(t, service(ns, "third", ann(lbv1.AnnotationAddressPool, "pending")))
	waitEvent(t, ns, "third", "AllocationFailed", "")
	var p lbv1.IPAddressPool
	if err := env.Client.Get(ctx(t), client.ObjectKey{Name: "pending"}, &p); err != nil {
		t.Fatal(err)
	}
	p.Spec.Addresses = append(p.Spec.Addresses, "203.0.113.221/32")
	if err := env.Client.Update(ctx(t), &p); err != nil {
		t.Fatal(err)
	}
	if got := waitIPs(t, ns, "third", 1)[0]; got != "203.0.113.221" {
		t.Errorf("third got %s, want the pool's new address", got)
	}
}

// TestRestoreConflictClearsYoungerClaim: two Services claim one explicitly
// requested address in their status (a leader that lost its lease wrote the
// second after the new leader restored). At the next restore the older
// keeps it; the younger's status is cleared, with an event naming the older.
func TestRestoreConflictClearsYoungerClaim(t *testing.T) {
	create(t, pool("claim", "203.0.113.230/32"))
	ns := namespace(t, nil)
	create(t, service(ns, "older", ann(lbv1.AnnotationLoadBalancerIPs, "203.0.113.230")))
	stop := startController(t, false, "claim-1")
	ip := waitAssigned(t, ns, "older", "claim")
	stop()
	// The younger Service, with the late write of a stale leader.
	create(t, service(ns, "younger", ann(lbv1.AnnotationLoadBalancerIPs, "203.0.113.230")))
	y := getService(t, ns, "younger")
	y.Status.LoadBalancer.Ingress = []corev1.LoadBalancerIngress{{IP: ip}}
	if err := env.Client.Status().Update(ctx(t), y); err != nil {
		t.Fatal(err)
	}
	startController(t, false, "claim-2")
	note := waitEvent(t, ns, "younger", "AddressConflict", ns+"/older")
	eventually(t, "the younger Service's status is cleared", func() bool {
		return len(getService(t, ns, "younger").Status.LoadBalancer.Ingress) == 0
	})
	holdsFor(t, ns, "older", ip, "claim", time.Second)
	t.Logf("event: %s", note)
}

// TestRestoreChangedSharerGivesWay: two Services share an address; while
// no leader runs, the older changes its ports so that the two can no longer
// share. The new leader keeps the address with the Service that did not
// change (as a running leader would have) and moves the changed one,
// whatever their ages.
func TestRestoreChangedSharerGivesWay(t *testing.T) {
	create(t, pool("sharers", "198.51.100.48/30"))
	ns := namespace(t, nil)
	share := ann(lbv1.AnnotationAllowSharedIP, "web")
	create(t, service(ns, "changed", share))
	create(t, service(ns, "steady", share, port(443)))
	stop := startController(t, false, "share-1")
	ip := waitAssigned(t, ns, "changed", "sharers")
	if got := waitAssigned(t, ns, "steady", "sharers"); got != ip {
		t.Fatalf("the sharing Services got %s and %s, want one address", ip, got)
	}
	eventually(t, "both Services record the sharing they got the address under", func() bool {
		return getService(t, ns, "changed").Annotations[lbv1.AnnotationSharedAs] != "" &&
			getService(t, ns, "steady").Annotations[lbv1.AnnotationSharedAs] != ""
	})
	stop()
	// Now both use 443/TCP: they cannot share any more.
	c := getService(t, ns, "changed")
	recorded := c.Annotations[lbv1.AnnotationSharedAs]
	c.Spec.Ports = []corev1.ServicePort{{Name: "https", Port: 443}}
	if err := env.Client.Update(ctx(t), c); err != nil {
		t.Fatal(err)
	}
	startController(t, false, "share-2")
	eventually(t, "the changed Service moves to another address", func() bool {
		ing := getService(t, ns, "changed").Status.LoadBalancer.Ingress
		return len(ing) == 1 && ing[0].IP != ip
	})
	holdsFor(t, ns, "steady", ip, "sharers", time.Second)
	eventually(t, "the changed Service's record follows its new sharing", func() bool {
		got := getService(t, ns, "changed").Annotations[lbv1.AnnotationSharedAs]
		return got != "" && got != recorded
	})
}

// TestWriteFromStaleCopyConflicts pins the fencing of status writes: a
// write computed from a copy of the Service older than the one stored (a
// leader that lost its lease while its write was in flight, a stale cache)
// fails with a conflict and leaves what the newer writer wrote.
func TestWriteFromStaleCopyConflicts(t *testing.T) {
	ns := namespace(t, nil)
	create(t, service(ns, "fenced"))
	stale := getService(t, ns, "fenced")

	// Another writer (the new leader) assigns an address first.
	fresh := stale.DeepCopy()
	fresh.Status.LoadBalancer.Ingress = []corev1.LoadBalancerIngress{{IP: "198.51.100.7"}}
	if err := env.Client.Status().Update(ctx(t), fresh); err != nil {
		t.Fatal(err)
	}

	err := controllers.WriteAssignment(ctx(t), env.Client, stale, "old-leader", netip.MustParseAddr("198.51.100.9"))
	if !apierrors.IsConflict(err) {
		t.Fatalf("a write from a stale copy returned %v, want a conflict", err)
	}
	got := getService(t, ns, "fenced")
	if ing := got.Status.LoadBalancer.Ingress; len(ing) != 1 || ing[0].IP != "198.51.100.7" {
		t.Fatalf("the stale write replaced the newer status: %v", ing)
	}
	if got.Annotations[lbv1.AnnotationAllocatedFromPool] != "" {
		t.Fatalf("the stale write set the pool annotation %q", got.Annotations[lbv1.AnnotationAllocatedFromPool])
	}

	// From the current copy the same write goes through.
	if err := controllers.WriteAssignment(ctx(t), env.Client, got, "new", netip.MustParseAddr("198.51.100.9")); err != nil {
		t.Fatal(err)
	}
	got = getService(t, ns, "fenced")
	if ing := got.Status.LoadBalancer.Ingress; len(ing) != 1 || ing[0].IP != "198.51.100.9" || got.Annotations[lbv1.AnnotationAllocatedFromPool] != "new" {
		t.Fatalf("a write from the current copy did not land: %v, annotation %q", ing, got.Annotations[lbv1.AnnotationAllocatedFromPool])
	}
}

// TestMetalLBServicesKeepTheirAddresses: Services that MetalLB served — its
// annotations (both spellings) and the addresses it wrote in their status —
// keep their addresses, pools and sharing when lbstack takes over, and a
// new Service with MetalLB's request annotation gets exactly what it asks.
func TestMetalLBServicesKeepTheirAddresses(t *testing.T) {
	create(t, pool("mlb-a", "203.0.113.240/30"))
	create(t, pool("mlb-b", "203.0.113.244/30"))
	ns := namespace(t, nil)
	// As MetalLB left them: two Services sharing .246 of its pool mlb-b.
	for _, s := range []*corev1.Service{
		service(ns, "dns-udp", port(53), ann("metallb.universe.tf/address-pool", "mlb-b"), ann("metallb.universe.tf/allow-shared-ip", "dns"),
			func(s *corev1.Service) { s.Spec.Ports[0].Protocol = corev1.ProtocolUDP }),
		service(ns, "dns-tcp", port(53), ann("metallb.io/address-pool", "mlb-b"), ann("metallb.io/allow-shared-ip", "dns")),
	} {
		create(t, s)
		got := getService(t, ns, s.Name)
		got.Status.LoadBalancer.Ingress = []corev1.LoadBalancerIngress{{IP: "203.0.113.246"}}
		if err := env.Client.Status().Update(ctx(t), got); err != nil {
			t.Fatal(err)
		}
	}
	startController(t, false, "metallb")
	for _, name := range []string{"dns-udp", "dns-tcp"} {
		if ip := waitAssigned(t, ns, name, "mlb-b"); ip != "203.0.113.246" {
			t.Errorf("%s got %s, want the 203.0.113.246 MetalLB gave it", name, ip)
		}
	}
	create(t, service(ns, "asks", ann("metallb.io/loadBalancerIPs", "203.0.113.241")))
	if ip := waitAssigned(t, ns, "asks", "mlb-a"); ip != "203.0.113.241" {
		t.Errorf("asks got %s, want the 203.0.113.241 its metallb.io/loadBalancerIPs names", ip)
	}
	holdsFor(t, ns, "dns-udp", "203.0.113.246", "mlb-b", time.Second)
	holdsFor(t, ns, "dns-tcp", "203.0.113.246", "mlb-b", time.Second)
}
