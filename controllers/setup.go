package controllers

import (
	"fmt"
	"time"

	ctrl "sigs.k8s.io/controller-runtime"
)

// ControllerOptions configure the IP-assigning controller.
type ControllerOptions struct {
	// Workers is the number of concurrent Service reconciles; allocation
	// itself is serialized, the API writes are not.
	Workers int
	// PoolStatusInterval is how often pool counters are written at most.
	PoolStatusInterval time.Duration
}

// SetupController adds the Service reconciler, the pool status writer and
// the BGPPeer session counter to mgr. Both run only on the leader; a new leader starts with an empty
// allocator and rebuilds it from the Services' statuses.
func SetupController(mgr ctrl.Manager, o ControllerOptions) error {
	pools := &PoolStatusWriter{Client: mgr.GetClient(), Interval: o.PoolStatusInterval}
	r := NewServiceReconciler(mgr.GetClient(), mgr.GetEventRecorder("lbstack-controller"), pools)
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
