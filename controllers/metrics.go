package controllers

import (
	"errors"
	"math/big"
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/lbstack/lbstack/internal/ipam"
)

// Reasons of lbstack_controller_allocation_failures_total: a fixed set,
// one per kind of allocator error, so the label never takes unbounded
// values (the message, with its addresses and names, goes into the
// Service's AllocationFailed event).
const (
	FailurePoolExhausted   = "pool_exhausted"
	FailureIPInUse         = "ip_in_use"
	FailureIPNotInPool     = "ip_not_in_pool"
	FailurePoolNotFound    = "pool_not_found"
	FailurePoolNotAllowed  = "pool_not_allowed"
	FailureNoMatchingPool  = "no_matching_pool"
	FailureInvalidRequest  = "invalid_request"
	FailureNoConfiguration = "no_configuration"
	FailureOther           = "other"
)

// FailureReasons lists every value of the reason label.
var FailureReasons = []string{FailurePoolExhausted, FailureIPInUse, FailureIPNotInPool, FailurePoolNotFound,
	FailurePoolNotAllowed, FailureNoMatchingPool, FailureInvalidRequest, FailureNoConfiguration, FailureOther}

// Results of lbstack_controller_restored_addresses_total.
const (
	// RestoreRestored: the address is held again, from a pool.
	RestoreRestored = "restored"
	// RestoreOutsidePool: the address is held again, but no pool
	// contains it any more (the Service keeps it; AddressOutsidePool).
	RestoreOutsidePool = "outside_pool"
	// RestoreConflict: not restored, because an older Service holds one of
	// the Service's addresses and may not share it (AddressConflict).
	RestoreConflict = "conflict"
)

// failureReason maps an allocator error to its reason label.
func failureReason(err error) string {
	var (
		exhausted  *ipam.PoolExhaustedError
		inUse      *ipam.IPInUseError
		notInPool  *ipam.NotInPoolError
		notFound   *ipam.PoolNotFoundError
		notAllowed *ipam.NotAllowedError
		noPool     *ipam.NoPoolError
		invalid    *ipam.InvalidRequestError
	)
	switch {
	case errors.As(err, &exhausted):
		return FailurePoolExhausted
	case errors.As(err, &inUse):
		return FailureIPInUse
	case errors.As(err, &notInPool):
		return FailureIPNotInPool
	case errors.As(err, &notFound):
		return FailurePoolNotFound
	case errors.As(err, &notAllowed):
		return FailurePoolNotAllowed
	case errors.As(err, &noPool):
		return FailureNoMatchingPool
	case errors.As(err, &invalid):
		return FailureInvalidRequest
	}
	return FailureOther
}

// controllerMetrics are the controller's Prometheus metrics. The counters
// count on the leader (only the leader reconciles); the pool gauges and
// the failing Services are read from the allocator at each scrape, so
// they always agree with what the pool status is written from and a pool
// that left the configuration has no series left.
type controllerMetrics struct {
	failures    *prometheus.CounterVec
	allocations *prometheus.CounterVec
	releases    *prometheus.CounterVec
	restored    *prometheus.CounterVec

	mu sync.Mutex
	// pools are the pool label values of allocations and releases.
	pools map[string]bool
}

// newControllerMetrics registers the controller's metrics with reg: the
// counters, the pool gauges and failing Services read from a, and
// lbstack_controller_leader from leader.
func newControllerMetrics(reg prometheus.Registerer, a *assigner, leader func() bool) (*controllerMetrics, error) {
	m := &controllerMetrics{
		failures: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "lbstack_controller_allocation_failures_total",
			Help: "Allocation attempts that gave a Service no address (or not the one it asks for), by reason"}, []string{"reason"}),
		allocations: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "lbstack_controller_allocations_total",
			Help: "Services that got new addresses (their first, or different ones) from the pool"}, []string{"pool"}),
		releases: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "lbstack_controller_releases_total",
			Help: "Services that gave their addresses back to the pool (deleted, no longer served, or given other addresses)"}, []string{"pool"}),
		restored: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "lbstack_controller_restored_addresses_total",
			Help: "Addresses read back from Service statuses when this replica started leading, by result: restored, outside_pool (held, in no pool), conflict (held by an older Service; not restored)"}, []string{"result"}),
	}
	// Every reason and result from the start, so that increase() sees the
	// first one.
	for _, r := range FailureReasons {
		m.failures.WithLabelValues(r)
	}
	for _, r := range []string{RestoreRestored, RestoreOutsidePool, RestoreConflict} {
		m.restored.WithLabelValues(r)
	}
	isLeader := prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "lbstack_controller_leader",
		Help: "1 while this replica is the leader (the one that assigns addresses), else 0"},
		func() float64 {
			if leader() {
				return 1
			}
			return 0
		})
	failing := prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "lbstack_controller_services_failing",
		Help: "Services whose last allocation attempt failed: they wait for an address, or keep the one they had while what they ask for cannot be given"},
		func() float64 { return float64(a.failing()) })
	for _, c := range []prometheus.Collector{m.failures, m.allocations, m.releases, m.restored, isLeader, failing, &poolCollector{usages: a.usages}} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// The pool gauges, one series per pool and family the pool has.
var (
	poolAssignedDesc = prometheus.NewDesc("lbstack_controller_pool_addresses_assigned",
		"Addresses of the pool held by Services (as in the pool's status)", []string{"pool", "family"}, nil)
	poolAvailableDesc = prometheus.NewDesc("lbstack_controller_pool_addresses_available",
		"Addresses of the pool still free (as in the pool's status; the nearest float64 for pools beyond 2^53 addresses)", []string{"pool", "family"}, nil)
	poolTotalDesc = prometheus.NewDesc("lbstack_controller_pool_addresses_total",
		"Usable addresses of the pool, assigned plus available (the nearest float64 for pools beyond 2^53 addresses)", []string{"pool", "family"}, nil)
)

// poolCollector exposes the allocator's pool counters, read at scrape time.
type poolCollector struct {
	usages func() map[string]ipam.Usage
}

// Describe sends the pool gauges' descriptors.
func (c *poolCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- poolAssignedDesc
	ch <- poolAvailableDesc
	ch <- poolTotalDesc
}

// Collect sends one assigned, available and total gauge per pool and family.
func (c *poolCollector) Collect(ch chan<- prometheus.Metric) {
	for pool, u := range c.usages() {
		if u.Has4 {
			collectFamily(ch, pool, "ipv4", u.Assigned4, u.Available4)
		}
		if u.Has6 {
			collectFamily(ch, pool, "ipv6", u.Assigned6, u.Available6)
		}
	}
}

func collectFamily(ch chan<- prometheus.Metric, pool, family string, assigned int64, available *big.Int) {
	total := new(big.Int).Add(available, big.NewInt(assigned))
	ch <- prometheus.MustNewConstMetric(poolAssignedDesc, prometheus.GaugeValue, float64(assigned), pool, family)
	ch <- prometheus.MustNewConstMetric(poolAvailableDesc, prometheus.GaugeValue, bigFloat(available), pool, family)
	ch <- prometheus.MustNewConstMetric(poolTotalDesc, prometheus.GaugeValue, bigFloat(total), pool, family)
}

// bigFloat is the float64 nearest to x (an IPv6 /64 has 2^64 addresses,
// beyond float64's exact integers; the pool's status has the exact count).
func bigFloat(x *big.Int) float64 {
	f, _ := new(big.Float).SetInt(x).Float64()
	return f
}

// All methods of a nil *controllerMetrics do nothing (reconcilers built
// without metrics, as in some tests).

func (m *controllerMetrics) failed(reason string) {
	if m != nil {
		m.failures.WithLabelValues(reason).Inc()
	}
}

func (m *controllerMetrics) allocated(pool string) {
	if m != nil && pool != "" {
		m.seen(pool)
		m.allocations.WithLabelValues(pool).Inc()
	}
}

func (m *controllerMetrics) released(pool string) {
	if m != nil && pool != "" {
		m.seen(pool)
		m.releases.WithLabelValues(pool).Inc()
	}
}

func (m *controllerMetrics) restoredAddresses(result string, n int) {
	if m != nil && n > 0 {
		m.restored.WithLabelValues(result).Add(float64(n))
	}
}

func (m *controllerMetrics) seen(pool string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.pools == nil {
		m.pools = map[string]bool{}
	}
	m.pools[pool] = true
}

// forgetPools deletes the allocation and release series of the pools not
// in keep (pools that left the configuration), so that their number stays
// that of the pools configured.
func (m *controllerMetrics) forgetPools(keep func(pool string) bool) {
	if m == nil {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	for pool := range m.pools {
		if !keep(pool) {
			m.allocations.DeleteLabelValues(pool)
			m.releases.DeleteLabelValues(pool)
			delete(m.pools, pool)
		}
	}
}
