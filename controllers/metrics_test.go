package controllers_test

import (
	"math"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"sigs.k8s.io/controller-runtime/pkg/client"

	lbv1 "github.com/lbstack/lbstack/api/v1alpha1"
	"github.com/lbstack/lbstack/controllers"
	"github.com/lbstack/lbstack/internal/testenv"
)

// waitMetric waits until the series of name with labels has a value for
// which ok holds.
func waitMetric(t *testing.T, reg prometheus.Gatherer, name string, labels map[string]string, what string, ok func(float64) bool) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		v, found, err := testenv.MetricValue(reg, name, labels)
		if err != nil {
			t.Fatal(err)
		}
		if found && ok(v) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s%v %s: last value %v (found %v)", name, labels, what, v, found)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func equals(want float64) func(float64) bool { return func(v float64) bool { return v == want } }

func atLeast(want float64) func(float64) bool { return func(v float64) bool { return v >= want } }

// absent checks that no series of name has labels.
func absent(t *testing.T, reg prometheus.Gatherer, name string, labels map[string]string) bool {
	t.Helper()
	_, found, err := testenv.MetricValue(reg, name, labels)
	if err != nil {
		t.Fatal(err)
	}
	return !found
}

// TestControllerMetrics follows the controller's metrics through
// assignments, failures, a release, a restart and a pool's removal: the
// pool gauges agree with the pool's status (an IPv6 /64 as the nearest
// float), failures count by reason, a restart counts what it restored,
// and a pool that goes away leaves no series.
func TestControllerMetrics(t *testing.T) {
	create(t, pool("metrics", "198.51.100.240/31", "2001:db8:77::/64"), pool("metrics-spare", "198.51.100.250/32"))
	ns := namespace(t, nil)
	stop, reg := startControllerWithMetrics(t, false, "metrics")
	v4 := map[string]string{"pool": "metrics", "family": "ipv4"}
	v6 := map[string]string{"pool": "metrics", "family": "ipv6"}

	waitMetric(t, reg, "lbstack_controller_leader", nil, "is 1 without leader election", equals(1))
	waitMetric(t, reg, "lbstack_controller_pool_addresses_total", v4, "is 2", equals(2))
	waitMetric(t, reg, "lbstack_controller_pool_addresses_total", v6, "is 2^64", equals(math.Pow(2, 64)))
	waitMetric(t, reg, "lbstack_controller_pool_addresses_available", v6, "is 2^64", equals(math.Pow(2, 64)))

	create(t, service(ns, "a", ann(lbv1.AnnotationAddressPool, "metrics")), service(ns, "b", ann(lbv1.AnnotationAddressPool, "metrics")))
	waitIPs(t, ns, "a", 1)
	waitIPs(t, ns, "b", 1)
	waitMetric(t, reg, "lbstack_controller_pool_addresses_assigned", v4, "is 2", equals(2))
	waitMetric(t, reg, "lbstack_controller_pool_addresses_available", v4, "is 0", equals(0))
	waitMetric(t, reg, "lbstack_controller_allocations_total", map[string]string{"pool": "metrics"}, "counts both", equals(2))
	eventually(t, "the pool's status agrees with the gauges", func() bool {
		var p lbv1.IPAddressPool
		_ = env.Client.Get(ctx(t), client.ObjectKey{Name: "metrics"}, &p)
		return p.Status.IPv4 != nil && p.Status.IPv4.Assigned == 2 && p.Status.IPv4.Available == "0" &&
			p.Status.IPv6 != nil && p.Status.IPv6.Available == "18446744073709551616"
	})

	// The pool is exhausted for a third; an address in no pool fails too.
	create(t, service(ns, "c", ann(lbv1.AnnotationAddressPool, "metrics")), service(ns, "d", ann(lbv1.AnnotationLoadBalancerIPs, "192.0.2.201")))
	waitEvent(t, ns, "c", controllers.ReasonAllocationFailed, "no free address")
	waitMetric(t, reg, "lbstack_controller_allocation_failures_total", map[string]string{"reason": controllers.FailurePoolExhausted}, "counts c", atLeast(1))
	waitMetric(t, reg, "lbstack_controller_allocation_failures_total", map[string]string{"reason": controllers.FailureIPNotInPool}, "counts d", atLeast(1))
	waitMetric(t, reg, "lbstack_controller_allocation_failures_total", map[string]string{"reason": controllers.FailurePoolNotFound}, "is there, at 0", equals(0))
	waitMetric(t, reg, "lbstack_controller_services_failing", nil, "is 2", equals(2))

	// Deleting a frees its address for c.
	if err := env.Client.Delete(ctx(t), service(ns, "a")); err != nil {
		t.Fatal(err)
	}
	waitIPs(t, ns, "c", 1)
	waitMetric(t, reg, "lbstack_controller_releases_total", map[string]string{"pool": "metrics"}, "counts a", equals(1))
	waitMetric(t, reg, "lbstack_controller_allocations_total", map[string]string{"pool": "metrics"}, "counts c", equals(3))
	waitMetric(t, reg, "lbstack_controller_services_failing", nil, "is 1 (d)", equals(1))

	// A new controller restores b's and c's addresses.
	stop()
	stop, reg = startControllerWithMetrics(t, false, "metrics-2")
	waitMetric(t, reg, "lbstack_controller_restored_addresses_total", map[string]string{"result": controllers.RestoreRestored}, "counts b and c", atLeast(2))
	waitMetric(t, reg, "lbstack_controller_pool_addresses_assigned", v4, "is 2 again", equals(2))

	// The pool goes away: its series go with it; b and c keep their
	// addresses, outside any pool, which the next restore counts.
	if err := env.Client.Delete(ctx(t), pool("metrics")); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the pool's series are deleted", func() bool {
		return absent(t, reg, "lbstack_controller_pool_addresses_total", map[string]string{"pool": "metrics"}) &&
			absent(t, reg, "lbstack_controller_allocations_total", map[string]string{"pool": "metrics"})
	})
	waitMetric(t, reg, "lbstack_controller_pool_addresses_total", map[string]string{"pool": "metrics-spare", "family": "ipv4"}, "stays", equals(1))
	stop()
	_, reg = startControllerWithMetrics(t, false, "metrics-3")
	waitMetric(t, reg, "lbstack_controller_restored_addresses_total", map[string]string{"result": controllers.RestoreOutsidePool}, "counts b and c", atLeast(2))
}
