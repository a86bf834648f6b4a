package realcluster

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	"sigs.k8s.io/controller-runtime/pkg/client"

	lbv1 "github.com/lbstack/lbstack/api/v1alpha1"
	"github.com/lbstack/lbstack/test/e2e/lab"
)

// Names of lbstack's workloads in its namespace, as the operator renders them.
const (
	speakerDaemonSet     = "lbstack-speaker"
	controllerDeployment = "lbstack-controller"
)

// ServiceIPs waits until the Service has at least want addresses and
// returns them, IPv4 first.
func (c *Cluster) ServiceIPs(ctx context.Context, key client.ObjectKey, want int) ([]netip.Addr, error) {
	var ips []netip.Addr
	err := lab.WaitFor(ctx, 100*time.Millisecond, func() error {
		var svc corev1.Service
		if err := c.Client.Get(ctx, key, &svc); err != nil {
			return err
		}
		ips = ips[:0]
		for _, in := range svc.Status.LoadBalancer.Ingress {
			if ip, err := netip.ParseAddr(in.IP); err == nil {
				ips = append(ips, ip)
			}
		}
		if len(ips) < want {
			return fmt.Errorf("%s has %d of %d addresses", key, len(ips), want)
		}
		return nil
	})
	slices.SortStableFunc(ips, func(a, b netip.Addr) int { return a.BitLen() - b.BitLen() })
	return ips, err
}

// WaitStackAvailable waits (up to 4 minutes) until the one stack is
// Available, every node's speaker is Ready and current, and the
// controller's replicas are ready, in namespace.
func (c *Cluster) WaitStackAvailable(ctx context.Context, namespace string) error {
	wait, cancel := context.WithTimeout(ctx, 4*time.Minute)
	defer cancel()
	return lab.WaitFor(wait, 200*time.Millisecond, func() error {
		if err := c.SpeakersReady(wait, namespace); err != nil {
			return err
		}
		var dep appsv1.Deployment
		if err := c.Client.Get(wait, client.ObjectKey{Namespace: namespace, Name: controllerDeployment}, &dep); err != nil {
			return err
		}
		if want := *dep.Spec.Replicas; dep.Status.ReadyReplicas != want {
			return fmt.Errorf("%d of %d controller replicas ready", dep.Status.ReadyReplicas, want)
		}
		var stacks lbv1.LoadBalancerStackList
		if err := c.Client.List(wait, &stacks); err != nil {
			return err
		}
		if len(stacks.Items) != 1 || !meta.IsStatusConditionTrue(stacks.Items[0].Status.Conditions, "Available") {
			return fmt.Errorf("stack not Available: %+v", stacks.Items)
		}
		return nil
	})
}

// SpeakersReady returns nil when the speaker DaemonSet in namespace runs
// its current version, Ready, on every node.
func (c *Cluster) SpeakersReady(ctx context.Context, namespace string) error {
	var ds appsv1.DaemonSet
	if err := c.Client.Get(ctx, client.ObjectKey{Namespace: namespace, Name: speakerDaemonSet}, &ds); err != nil {
		return err
	}
	if int(ds.Status.NumberReady) != len(c.Nodes) || ds.Status.UpdatedNumberScheduled != ds.Status.DesiredNumberScheduled {
		return fmt.Errorf("%d of %d speakers ready", ds.Status.NumberReady, len(c.Nodes))
	}
	return nil
}

// WaitAnnounced waits (up to a minute) until exactly one node announces
// the Service and ok (nil: any) accepts it, and returns the status.
func (c *Cluster) WaitAnnounced(ctx context.Context, key client.ObjectKey, ok func(node string) bool) (*lbv1.ServiceAnnouncementStatus, error) {
	var st lbv1.ServiceAnnouncementStatus
	wait, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	err := lab.WaitFor(wait, 50*time.Millisecond, func() error {
		var a lbv1.ServiceAnnouncement
		if err := c.Client.Get(wait, key, &a); err != nil {
			return err
		}
		st = a.Status
		if len(st.Nodes) != 1 {
			return fmt.Errorf("announced by %d nodes", len(st.Nodes))
		}
		if ok != nil && !ok(st.Nodes[0].Node) {
			return fmt.Errorf("still announced by %s", st.Nodes[0].Node)
		}
		return nil
	})
	return &st, err
}
