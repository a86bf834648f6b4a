package controllers

import (
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	ctrl "sigs.k8s.io/controller-runtime"
	crmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"
)

// ControllerOptions configure the IP-assigning controller.
type ControllerOptions struct {
	// Workers is the number of concurrent Service reconciles; allocation
	// itself is serialized, the API writes are not.
	Workers int
	// PoolStatusInterval is how often pool counters are written at most.
	PoolStatusInterval time.Duration
	// Registry receives the controller's metrics (lbstack_controller_*);
	// controller-runtime's registry, which the manager serves, when nil.
	Registry prometheus.Registerer
}

// SetupController adds the Service reconciler, the pool status writer and
// the BGPPeer session counter to mgr, and registers the controller's
// metrics. Both run only on the leader; a new leader starts with an empty
// allocator and rebuilds it from the Services' statuses.
func SetupController(mgr ctrl.Manager, o ControllerOptions) error {
	pools := &PoolStatusWriter{Client: mgr.GetClient(), Interval: o.PoolStatusInterval}
	r := NewServiceReconciler(mgr.GetClient(), mgr.GetEventRecorder("lbstack-controller"), pools)
	reg := o.Registry
	if reg == nil {
		reg = crmetrics.Registry
	}
	elected := mgr.Elected()
	m, err := newControllerMetrics(reg, r.assign, func() bool {
		select {
		case <-elected:
			return true
		default:
			return false
		}
	})
	if err != nil {
		return fmt.Errorf("registering the controller's metrics: %w", err)
	}
	r.assign.metrics = m
	if err := r.SetupWithManager(mgr, o.Workers); err != nil {
		return fmt.Errorf("setting up the Service controller: %w", err)
	}
	if err := (&PeerStatusCounter{Client: mgr.GetClient()}).SetupWithManager(mgr); err != nil {
		return fmt.Errorf("setting up the BGPPeer status counter: %w", err)
	}
	if err := mgr.Add(pools); err != nil {
		return fmt.Errorf("adding the pool status writer: %w", err)
	}
	return nil
}
