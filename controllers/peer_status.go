package controllers

import (
	"context"

	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	lbv1 "github.com/lbstack/lbstack/api/v1alpha1"
)

// PeerStatusCounter keeps BGPPeer.status.established (the "Nodes Up"
// column) equal to the number of status.nodes entries that are
// Established. Each speaker writes only its own entry; the count has one
// writer, the controller's leader, so no two nodes race on it.
type PeerStatusCounter struct {
	Client client.Client
}

// SetupWithManager registers the counter for BGPPeers.
func (r *PeerStatusCounter) SetupWithManager(mgr ctrl.Manager) error {
	return ctrl.NewControllerManagedBy(mgr).Named("bgppeer-status").
		For(&lbv1.BGPPeer{}, builder.WithPredicates(predicate.ResourceVersionChangedPredicate{})).
		Complete(r)
}

// Reconcile counts the peer's Established sessions and writes the count
// when it differs.
func (r *PeerStatusCounter) Reconcile(ctx context.Context, req reconcile.Request) (reconcile.Result, error) {
	var p lbv1.BGPPeer
	if err := r.Client.Get(ctx, req.NamespacedName, &p); err != nil {
		return reconcile.Result{}, client.IgnoreNotFound(err)
	}
	n := EstablishedSessions(p.Status.Nodes)
	if p.Status.Established == n {
		return reconcile.Result{}, nil
	}
	// Optimistic lock: a count from a list a speaker changed meanwhile is
	// refused and computed again.
	patch := client.MergeFromWithOptions(p.DeepCopy(), client.MergeFromWithOptimisticLock{})
	p.Status.Established = n
	return reconcile.Result{}, client.IgnoreNotFound(r.Client.Status().Patch(ctx, &p, patch))
}

// EstablishedSessions counts the Established entries of a BGPPeer status.
func EstablishedSessions(nodes []lbv1.BGPNodeSession) int32 {
	var n int32
	for _, s := range nodes {
		if s.State == lbv1.BGPSessionEstablished {
			n++
		}
	}
	return n
}
