package controllers

import (
	"context"
	"net/netip"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/lbstack/lbstack/internal/ipam"
)

// WriteAssignment runs the write phase of a reconcile on svc, as a
// reconcile that assigned ips from pool would.
func WriteAssignment(ctx context.Context, c client.Client, svc *corev1.Service, pool string, ips ...netip.Addr) error {
	r := NewServiceReconciler(c, nil, nil)
	return r.write(ctx, svc, assignment{res: ipam.Result{Pool: pool, IPs: ips}})
}
