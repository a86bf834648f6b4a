package realcluster

import (
	"context"
	"fmt"
	"time"

	appsv1 "k8s.io/api/apps/v1"
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
