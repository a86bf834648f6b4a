package operator_test

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	lbv1 "github.com/lbstack/lbstack/api/v1alpha1"
	"github.com/lbstack/lbstack/internal/render"
)

// bigStack has 20 pools and 10 BGP peers (half with a password Secret in
// one of two namespaces), a BFD profile and an advertisement of each kind.
func bigStack() *lbv1.LoadBalancerStack {
	s := &lbv1.LoadBalancerStack{}
	s.Name = "lbstack"
	for i := range 20 {
		s.Spec.Pools = append(s.Spec.Pools, lbv1.InlineIPAddressPool{
			InlineMeta:        lbv1.InlineMeta{Name: fmt.Sprintf("pool-%02d", i)},
			IPAddressPoolSpec: lbv1.IPAddressPoolSpec{Addresses: []lbv1.PoolAddress{lbv1.PoolAddress(fmt.Sprintf("2001:db8:%x::/64", i))}},
		})
	}
	s.Spec.BFDProfiles = []lbv1.InlineBFDProfile{{InlineMeta: lbv1.InlineMeta{Name: "fast"}}}
	for i := range 10 {
		p := lbv1.InlineBGPPeer{
			InlineMeta:  lbv1.InlineMeta{Name: fmt.Sprintf("peer-%02d", i)},
			BGPPeerSpec: lbv1.BGPPeerSpec{MyASN: 64500, PeerASN: 64501, PeerAddress: fmt.Sprintf("203.0.113.%d", i+1), BFDProfile: "fast"},
		}
		if i%2 == 0 {
			p.PasswordSecret = &lbv1.SecretReference{Name: fmt.Sprintf("md5-%d", i), Namespace: []string{"network", ns}[i%4/2], Key: "password"}
		}
		s.Spec.BGPPeers = append(s.Spec.BGPPeers, p)
	}
	s.Spec.L2Advertisements = []lbv1.InlineL2Advertisement{{InlineMeta: lbv1.InlineMeta{Name: "l2"}}}
	s.Spec.BGPAdvertisements = []lbv1.InlineBGPAdvertisement{{InlineMeta: lbv1.InlineMeta{Name: "bgp"}}}
	return s
}

// BenchmarkOperatorStack20Pools10Peers measures the time from creating a
// stack with 20 pools and 10 peers until the operator has applied every
// child (ms-to-applied), and the writes of a no-op resync (target 0).
func BenchmarkOperatorStack20Pools10Peers(b *testing.B) {
	ensureNamespace(b, ns)
	ensureNamespace(b, "network")
	op := startOperator(b)
	ctx := context.Background()
	var total time.Duration
	var children, noopWrites int
	var samples []float64
	for range b.N {
		removeAll(b)
		op.quiet(b)
		op.writes.reset()
		stack := bigStack()
		start := time.Now()
		if err := env.Client.Create(ctx, stack); err != nil {
			b.Fatal(err)
		}
		var secrets []types.NamespacedName
		for _, p := range stack.Spec.BGPPeers {
			if p.PasswordSecret != nil {
				secrets = append(secrets, types.NamespacedName{Namespace: p.PasswordSecret.Namespace, Name: p.PasswordSecret.Name})
			}
		}
		want := len(render.All(stack, render.Params{Namespace: ns, PasswordSecrets: secrets}))
		op.quiet(b)
		applies := 0
		for _, l := range op.writes.reset() {
			if len(l) > 5 && l[:5] == "apply" {
				applies++
			}
		}
		if applies < want {
			b.Fatalf("%d applies for %d children", applies, want)
		}
		d := op.writes.lastWrite().Sub(start)
		total += d
		samples = append(samples, float64(d.Microseconds())/1000)
		children = applies
		for range 5 {
			if _, err := op.r.Reconcile(ctx, ctrl.Request{NamespacedName: types.NamespacedName{Name: stack.Name}}); err != nil {
				b.Fatal(err)
			}
		}
		noopWrites += len(op.writes.reset())
	}
	removeAll(b)
	slices.Sort(samples)
	b.ReportMetric(samples[len(samples)/2], "ms-to-applied-p50")
	b.ReportMetric(samples[len(samples)-1], "ms-to-applied-max")
	b.ReportMetric(float64(children), "children")
	b.ReportMetric(float64(noopWrites)/float64(5*b.N), "writes/noop-resync")
	b.ReportMetric(0, "ns/op")
}

// removeAll deletes the stack and its children (the test API server runs
// no garbage collector).
func removeAll(b *testing.B) {
	ctx := context.Background()
	_ = env.Client.Delete(ctx, &lbv1.LoadBalancerStack{ObjectMeta: bigStack().ObjectMeta})
	for _, gvk := range render.Kinds() {
		obj, err := env.Client.Scheme().New(gvk.GroupVersion().WithKind(gvk.Kind + "List"))
		if err != nil {
			b.Fatal(err)
		}
		l := obj.(client.ObjectList)
		if err := env.Client.List(ctx, l, client.MatchingLabels{render.LabelManagedBy: render.FieldOwner}); err != nil {
			b.Fatal(err)
		}
		items, _ := meta.ExtractList(l)
		for _, it := range items {
			if err := env.Client.Delete(ctx, it.(client.Object)); client.IgnoreNotFound(err) != nil {
				b.Fatal(err)
			}
		}
	}
}
