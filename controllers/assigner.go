package controllers

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"sort"
	"strings"
	"sync"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/workqueue"
	"k8s.io/klog/v2"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	lbv1 "github.com/lbstack/lbstack/api/v1alpha1"
	"github.com/lbstack/lbstack/internal/config"
	"github.com/lbstack/lbstack/internal/configload"
	"github.com/lbstack/lbstack/internal/ipam"
	"github.com/lbstack/lbstack/internal/lbservice"
)

// assigner alone owns the configuration in force, the allocator and their
// lock, with what the controller remembers per Service between reconciles
// (the last failure reported, the pool annotation written). Reconciles
// call it; the API writes that follow run outside its lock, concurrently
// across workers.
type assigner struct {
	mu    sync.Mutex
	alloc *ipam.Allocator
	// cfg is the last valid configuration, nil until one was seen: until
	// then nothing is released or cleared.
	cfg      *config.Config
	cfgDirty bool
	restored bool
	// lastError is the last allocation failure reported per Service;
	// the Services in it are queued again when addresses free up.
	lastError map[string]string
	orphaned  map[string]bool
	// annotated remembers the annotations already written per Service,
	// so a reconcile that sees a stale cached copy does not write them
	// again.
	annotated map[string]written
	// unclassed remembers the Services already logged as left alone
	// because no stack names the served class.
	unclassed map[string]bool
	// queue is the controller's work queue (set when it starts).
	queue workqueue.TypedRateLimitingInterface[reconcile.Request]
	// touched and touchedAll are told which pools' counters changed.
	touched    func(pools ...string)
	touchedAll func()
	// metrics count allocations, releases and restores; nil: none.
	metrics *controllerMetrics
}

func newAssigner() *assigner {
	return &assigner{alloc: ipam.New(), cfgDirty: true, lastError: map[string]string{}, orphaned: map[string]bool{},
		annotated: map[string]written{}, unclassed: map[string]bool{}, touched: func(...string) {}, touchedAll: func() {}}
}

// assignment is the outcome of assign.
type assignment struct {
	// before is what the Service held before.
	before ipam.Result
	res    ipam.Result
	// orphan: an address is in no pool any more (the Service keeps it).
	orphan bool
	// shared is the digest of the Service's sharing attributes ("" when
	// it has no sharing key), recorded in lbv1.AnnotationSharedAs.
	shared string
}

// written is what the controller recorded in a Service's annotations.
type written struct {
	// pool is lbv1.AnnotationAllocatedFromPool, shared
	// lbv1.AnnotationSharedAs ("" when absent).
	pool, shared string
}

// configChanged marks the configuration to be read again.
func (a *assigner) configChanged() {
	a.mu.Lock()
	a.cfgDirty = true
	a.mu.Unlock()
}

// setQueue records the controller's work queue.
func (a *assigner) setQueue(q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
	a.mu.Lock()
	a.queue = q
	a.mu.Unlock()
}

// config returns the configuration in force, nil before a valid one.
func (a *assigner) config() *config.Config {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.cfg
}

// prepare loads the configuration when it changed and, once after
// start-up (or a leader change), learns every address already assigned.
func (a *assigner) prepare(ctx context.Context, c client.Reader) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.cfgDirty {
		objs, err := configload.List(ctx, c)
		if err != nil {
			return err
		}
		cfg, ignored, _, errs := config.InForce(objs)
		a.cfgDirty = false
		for _, ig := range ignored {
			ctrl.LoggerFrom(ctx).Info("Ignoring an item that conflicts with an earlier one", "item", ig.String(), "reason", ig.Errors.ToAggregate().Error())
		}
		switch {
		case cfg == nil && a.cfg != nil:
			ctrl.LoggerFrom(ctx).Error(errs.ToAggregate(), "Configuration is invalid; keeping the last valid one")
		case cfg == nil:
			ctrl.LoggerFrom(ctx).Error(errs.ToAggregate(), "Configuration is invalid; no addresses are assigned until it is fixed")
		default:
			a.cfg = cfg
			a.alloc.SetConfig(cfg)
			a.touchedAll()
			a.metrics.forgetPools(func(pool string) bool { return cfg.Pools[pool] != nil })
		}
	}
	if a.restored || a.cfg == nil {
		return nil
	}
	var svcs corev1.ServiceList
	if err := c.List(ctx, &svcs); err != nil {
		return fmt.Errorf("listing Services to restore assignments: %w", err)
	}
	// When two Services claim one address, the one whose sharing did not
	// change since the address was last confirmed keeps it (a Service
	// changed while no leader ran gives way, as it would have with a
	// leader), then the older.
	// Each digest once, not once per comparison.
	changed := make(map[*corev1.Service]bool, len(svcs.Items))
	order := make([]*corev1.Service, len(svcs.Items))
	for i := range svcs.Items {
		order[i] = &svcs.Items[i]
		changed[order[i]] = sharingChanged(order[i])
	}
	sort.Slice(order, func(i, j int) bool {
		x, y := order[i], order[j]
		if cx, cy := changed[x], changed[y]; cx != cy {
			return cy
		}
		if !x.CreationTimestamp.Equal(&y.CreationTimestamp) {
			return x.CreationTimestamp.Before(&y.CreationTimestamp)
		}
		return x.Namespace+"/"+x.Name < y.Namespace+"/"+y.Name
	})
	restored := 0
	for _, s := range order {
		ips := lbservice.IngressIPs(s)
		if !lbservice.Serves(s, a.cfg.LoadBalancerClass) || len(ips) == 0 {
			continue
		}
		// A request that no longer parses still holds the addresses in
		// its status: restored with no request, so nobody else gets them.
		in, err := describeService(ctx, c, s)
		if err != nil {
			ctrl.LoggerFrom(ctx).Info("Restoring the addresses of a Service whose request does not parse; it keeps them until the request is fixed", "Service", klog.KObj(s), "reason", err.Error())
		}
		if err := a.alloc.Restore(in, ips); err != nil {
			ctrl.LoggerFrom(ctx).Info("Not restoring a conflicting address; the Service will get another", "Service", klog.KObj(s), "reason", err.Error())
			a.metrics.restoredAddresses(RestoreConflict, len(ips))
			continue
		}
		outside := 0
		for _, ip := range ips {
			if a.cfg.PoolOf(ip) == "" {
				outside++
			}
		}
		a.metrics.restoredAddresses(RestoreOutsidePool, outside)
		a.metrics.restoredAddresses(RestoreRestored, len(ips)-outside)
		restored++
	}
	a.restored = true
	a.touchedAll()
	ctrl.LoggerFrom(ctx).Info("Restored assigned addresses", "services", restored)
	return nil
}

// assign gives the Service its addresses (keeping those it holds while
// its request allows).
func (a *assigner) assign(in ipam.Service) (assignment, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	var out assignment
	out.before, _ = a.alloc.Assigned(in.Key)
	res, err := a.alloc.Assign(in)
	if err != nil {
		return out, err
	}
	out.res = res
	out.shared = in.Sharing.Digest()
	for _, ip := range res.IPs {
		if a.cfg.PoolOf(ip) == "" {
			out.orphan = true
		}
	}
	if !slices.Equal(out.before.IPs, res.IPs) {
		a.metrics.allocated(res.Pool)
		if len(out.before.IPs) > 0 {
			a.metrics.released(out.before.Pool)
		}
	}
	a.touched(out.before.Pool, res.Pool)
	return out, nil
}

// release frees the Service's addresses and forgets it; Services that
// failed to get an address are queued again when an address was freed.
func (a *assigner) release(key string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	before, ok := a.alloc.Assigned(key)
	a.alloc.Release(key)
	delete(a.lastError, key)
	delete(a.orphaned, key)
	delete(a.annotated, key)
	delete(a.unclassed, key)
	if !ok {
		return
	}
	if len(before.IPs) > 0 {
		a.metrics.released(before.Pool)
	}
	a.touched(before.Pool)
	if a.queue == nil {
		return
	}
	for k := range a.lastError {
		ns, name, _ := strings.Cut(k, "/")
		a.queue.Add(reconcile.Request{NamespacedName: types.NamespacedName{Namespace: ns, Name: name}})
	}
}

// unbacked returns, when the allocator holds nothing for the Service, the
// holders of the addresses its status names ("ip (Service ns/name)"); ok
// is false when it holds the Service's addresses.
func (a *assigner) unbacked(key string, ips []netip.Addr) (holders []string, ok bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if _, held := a.alloc.Assigned(key); held {
		return nil, false
	}
	for _, ip := range ips {
		for _, h := range a.alloc.Holders(ip) {
			holders = append(holders, fmt.Sprintf("%s (Service %s)", ip, h))
		}
	}
	return holders, true
}

// failed records a failure; repeated is true when it is the one last
// reported for the Service.
func (a *assigner) failed(key, msg string) (repeated bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	repeated = a.lastError[key] == msg
	a.lastError[key] = msg
	return repeated
}

// succeeded forgets the Service's failure and records whether its
// addresses are orphaned; wasOrphan is what was recorded before.
func (a *assigner) succeeded(key string, orphan bool) (wasOrphan bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	delete(a.lastError, key)
	wasOrphan = a.orphaned[key]
	a.orphaned[key] = orphan
	return wasOrphan
}

// annotations returns the annotations last written to the Service.
func (a *assigner) annotations(key string) written {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.annotated[key]
}

// setAnnotations records the annotations written (zero when removed).
func (a *assigner) setAnnotations(key string, w written) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if w == (written{}) {
		delete(a.annotated, key)
		return
	}
	a.annotated[key] = w
}

// firstUnclassed reports whether the Service is left alone for the first
// time while no stack names the served class.
func (a *assigner) firstUnclassed(key string) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	seen := a.unclassed[key]
	a.unclassed[key] = true
	return !seen
}

// Usage reports a pool's counters (the PoolStatusWriter reads them).
func (a *assigner) Usage(pool string) (ipam.Usage, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.alloc.Usage(pool)
}

// usages reports the counters of every pool in the configuration in
// force, by pool (the metrics read them); none before a valid
// configuration was seen.
func (a *assigner) usages() map[string]ipam.Usage {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.cfg == nil {
		return nil
	}
	out := make(map[string]ipam.Usage, len(a.cfg.Pools))
	for name := range a.cfg.Pools {
		if u, ok := a.alloc.Usage(name); ok {
			out[name] = u
		}
	}
	return out
}

// failing counts the Services whose last allocation attempt failed.
func (a *assigner) failing() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.lastError)
}

// sharingChanged reports whether the Service's sharing attributes differ
// from those recorded when its address was last confirmed (no record, as
// for a Service assigned before the record existed: unchanged).
func sharingChanged(svc *corev1.Service) bool {
	rec, ok := svc.Annotations[lbv1.AnnotationSharedAs]
	return ok && rec != lbservice.SharingOf(svc).Digest()
}
