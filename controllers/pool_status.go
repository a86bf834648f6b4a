package controllers

import (
	"context"
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/klog/v2"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	lbv1 "github.com/lbstack/lbstack/api/v1alpha1"
	"github.com/lbstack/lbstack/internal/ipam"
)

// UsageReader reports a pool's address counters; ok is false for a pool
// the allocator does not know.
type UsageReader interface {
	Usage(pool string) (u ipam.Usage, ok bool)
}

// PoolStatusWriter keeps IPAddressPool status counters current. Changes
// are coalesced: each pool is written at most once per Interval, and only
// when its counters changed, so a burst of assignments costs one write per
// pool instead of one per Service (and no conflict storm).
type PoolStatusWriter struct {
	Client   client.Client
	Interval time.Duration
	// Usage reads the pools' counters (the allocator's, through the
	// Service reconciler's assigner).
	Usage UsageReader

	mu    sync.Mutex
	dirty map[string]bool
	all   bool
}

// Touch marks pools whose counters may have changed.
func (w *PoolStatusWriter) Touch(pools ...string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.dirty == nil {
		w.dirty = map[string]bool{}
	}
	for _, p := range pools {
		if p != "" {
			w.dirty[p] = true
		}
	}
}

// TouchAll marks every pool.
func (w *PoolStatusWriter) TouchAll() {
	w.mu.Lock()
	w.all = true
	w.mu.Unlock()
}

// NeedLeaderElection: only the leader writes.
func (w *PoolStatusWriter) NeedLeaderElection() bool { return true }

// Start writes dirty pools every Interval until ctx ends.
func (w *PoolStatusWriter) Start(ctx context.Context) error {
	t := time.NewTicker(w.Interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			w.flush(ctx)
		}
	}
}

func (w *PoolStatusWriter) flush(ctx context.Context) {
	w.mu.Lock()
	dirty, all := w.dirty, w.all
	w.dirty, w.all = nil, false
	w.mu.Unlock()
	if len(dirty) == 0 && !all {
		return
	}
	var pools lbv1.IPAddressPoolList
	if err := w.Client.List(ctx, &pools); err != nil {
		ctrl.LoggerFrom(ctx).Error(err, "Listing pools for status")
		w.retry(dirty, all)
		return
	}
	for i := range pools.Items {
		p := &pools.Items[i]
		if !all && !dirty[p.Name] {
			continue
		}
		want, ok := w.usage(p.Name)
		if !ok {
			continue
		}
		if equality.Semantic.DeepEqual(p.Status.PoolUsage, want) && p.Status.ObservedGeneration == p.Generation {
			continue
		}
		before := p.DeepCopy()
		p.Status.PoolUsage = want
		p.Status.ObservedGeneration = p.Generation
		if err := w.Client.Status().Patch(ctx, p, client.MergeFrom(before)); err != nil && !apierrors.IsNotFound(err) {
			ctrl.LoggerFrom(ctx).Error(err, "Writing pool status", "IPAddressPool", klog.KObj(p))
			w.Touch(p.Name)
		}
	}
}

func (w *PoolStatusWriter) retry(dirty map[string]bool, all bool) {
	for p := range dirty {
		w.Touch(p)
	}
	if all {
		w.TouchAll()
	}
}

func (w *PoolStatusWriter) usage(pool string) (lbv1.PoolUsage, bool) {
	if w.Usage == nil {
		return lbv1.PoolUsage{}, false
	}
	u, ok := w.Usage.Usage(pool)
	if !ok {
		return lbv1.PoolUsage{}, false
	}
	var out lbv1.PoolUsage
	if u.Has4 {
		out.IPv4 = &lbv1.FamilyCounts{Assigned: u.Assigned4, Available: u.Available4.String()}
	}
	if u.Has6 {
		out.IPv6 = &lbv1.FamilyCounts{Assigned: u.Assigned6, Available: u.Available6.String()}
	}
	return out, true
}
