package webhooks_test

import (
	"context"
	"crypto/tls"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	"sigs.k8s.io/yaml"

	"github.com/lbstack/lbstack/internal/certs"
	"github.com/lbstack/lbstack/internal/cli"
	"github.com/lbstack/lbstack/internal/operator"
	"github.com/lbstack/lbstack/internal/testenv"
)

var (
	env      *testenv.Env
	rotator  *certs.Rotator
	hookAddr string
	warnings = &warningRecorder{}
	c        client.Client // records warnings
)

type warningRecorder struct {
	mu   sync.Mutex
	msgs []string
}

func (w *warningRecorder) HandleWarningHeader(_ int, _ string, text string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.msgs = append(w.msgs, text)
}

func (w *warningRecorder) take() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := w.msgs
	w.msgs = nil
	return out
}

func TestMain(m *testing.M) {
	hooks := &envtest.WebhookInstallOptions{
		Paths:            []string{filepath.Join(testenv.RepoRoot(), "config", "webhook", "manifests.yaml")},
		LocalServingHost: "127.0.0.1",
	}
	testenv.Main(m, testenv.Options{Webhooks: hooks}, func(e *testenv.Env) {
		env = e
		if err := start(e, &e.Environment().WebhookInstallOptions); err != nil {
			fmt.Fprintf(os.Stderr, "starting the operator's webhooks: %v\n", err)
			os.Exit(1)
		}
	})
}

// start runs the operator's webhook wiring in-process, with its own
// certificate rotator replacing the certificate envtest generated.
func start(e *testenv.Env, hooks *envtest.WebhookInstallOptions) error {
	ctx := context.Background()
	certDir, err := os.MkdirTemp("", "lbstack-webhook-certs")
	if err != nil {
		return err
	}
	o := operator.Options{
		Namespace:            "default",
		WebhookHost:          hooks.LocalServingHost,
		WebhookPort:          hooks.LocalServingPort,
		CertDir:              certDir,
		CertRotation:         true,
		CertSecret:           "lbstack-webhook-server-cert",
		WebhookService:       "lbstack-webhook-service",
		WebhookConfiguration: "validating-webhook-configuration",
		ExtraCertIPs:         []net.IP{net.ParseIP(hooks.LocalServingHost)},
		CertValidity:         time.Hour,
		Manager:              cli.ManagerOptions{MetricsAddr: "0", ProbeAddr: "0"},
	}
	mgr, err := o.Manager.NewManager(e.Config, func(mo *manager.Options) { mo.WebhookServer = o.WebhookServer() })
	if err != nil {
		return err
	}
	rotator, err = operator.SetupWebhooks(ctx, mgr, e.Config, o, logr.Discard())
	if err != nil {
		return err
	}
	go func() {
		if err := mgr.Start(ctx); err != nil {
			fmt.Fprintf(os.Stderr, "manager: %v\n", err)
		}
	}()
	hookAddr = net.JoinHostPort(hooks.LocalServingHost, fmt.Sprint(hooks.LocalServingPort))
	deadline := time.Now().Add(30 * time.Second)
	for mgr.GetWebhookServer().StartedChecker()(nil) != nil {
		if time.Now().After(deadline) {
			return fmt.Errorf("webhook server not started after 30s")
		}
		time.Sleep(50 * time.Millisecond)
	}
	cfg := rest.CopyConfig(e.Config)
	cfg.WarningHandler = warnings
	c, err = client.New(cfg, client.Options{Scheme: mgr.GetScheme()})
	return err
}

func ctx(t *testing.T) context.Context {
	t.Helper()
	c, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return c
}

func obj(t *testing.T, doc string) *unstructured.Unstructured {
	t.Helper()
	u := &unstructured.Unstructured{}
	if err := yaml.Unmarshal([]byte(doc), &u.Object); err != nil {
		t.Fatalf("bad test object: %v\n%s", err, doc)
	}
	return u
}

// mustCreate creates objects and deletes them (in reverse) when the test ends.
func mustCreate(t *testing.T, docs ...string) {
	t.Helper()
	for _, d := range docs {
		o := obj(t, d)
		if err := c.Create(ctx(t), o); err != nil {
			t.Fatalf("creating %s %s: %v", o.GetKind(), o.GetName(), err)
		}
		t.Cleanup(func() { _ = env.Client.Delete(context.Background(), o) })
	}
}

func expectDenied(t *testing.T, err error, webhook string, want ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("accepted; want a rejection by %s saying %q", webhook, want)
	}
	msg := err.Error()
	if !strings.Contains(msg, fmt.Sprintf("admission webhook %q denied the request", webhook)) {
		t.Fatalf("not rejected by webhook %s: %v", webhook, err)
	}
	for _, w := range want {
		if !strings.Contains(msg, w) {
			t.Fatalf("rejection lacks %q:\n%s", w, msg)
		}
	}
	t.Logf("rejection: %s", msg)
}

const (
	poolA = "apiVersion: lbstack.io/v1alpha1\nkind: IPAddressPool\nmetadata: {name: a}\nspec: {addresses: [192.0.2.0/25, '2001:db8::/64']}"
)

// TestRejections creates objects that only a check across objects (or
// beyond CEL) can refuse, through the real API server and the webhook
// server over TLS, and expects each refusal to name object and field.
func TestRejections(t *testing.T) {
	mustCreate(t, poolA,
		"apiVersion: lbstack.io/v1alpha1\nkind: BGPPeer\nmetadata: {name: r1}\nspec: {myASN: 64500, peerASN: 64501, peerAddress: 203.0.113.1}",
		"apiVersion: lbstack.io/v1alpha1\nkind: BGPAdvertisement\nmetadata: {name: lp100}\nspec: {ipAddressPools: [a], localPref: 100, aggregationLength: 25}",
		"apiVersion: lbstack.io/v1alpha1\nkind: LoadBalancerStack\nmetadata: {name: first}\nspec: {}",
	)
	cases := map[string]struct {
		doc, webhook string
		want         []string
	}{
		"pool overlapping another pool": {
			"apiVersion: lbstack.io/v1alpha1\nkind: IPAddressPool\nmetadata: {name: b}\nspec: {addresses: [192.0.2.64-192.0.2.200]}",
			"vipaddresspool.lbstack.io", []string{`IPAddressPool.lbstack.io "b" is invalid`, "IPAddressPool[b].spec.addresses[0]", `overlaps IPAddressPool "a"`}},
		"IPv6 pool overlapping another pool": {
			"apiVersion: lbstack.io/v1alpha1\nkind: IPAddressPool\nmetadata: {name: b6}\nspec: {addresses: ['2001:db8::ff00-2001:db8::ffff']}",
			"vipaddresspool.lbstack.io", []string{"IPAddressPool[b6].spec.addresses[0]", `overlaps IPAddressPool "a"`}},
		"IPv6 range starting after its end": {
			"apiVersion: lbstack.io/v1alpha1\nkind: IPAddressPool\nmetadata: {name: c}\nspec: {addresses: ['2001:db8:1::20-2001:db8:1::10']}",
			"vipaddresspool.lbstack.io", []string{"IPAddressPool[c].spec.addresses[0]", "range starts at 2001:db8:1::20, after its end 2001:db8:1::10"}},
		"peer duplicating another peer": {
			"apiVersion: lbstack.io/v1alpha1\nkind: BGPPeer\nmetadata: {name: r2}\nspec: {myASN: 64500, peerASN: 64502, peerAddress: 203.0.113.1}",
			"vbgppeer.lbstack.io", []string{"BGPPeer[r2].spec.peerAddress", `BGPPeer "r1"`}},
		"peer with a missing BFD profile": {
			"apiVersion: lbstack.io/v1alpha1\nkind: BGPPeer\nmetadata: {name: r3}\nspec: {myASN: 64500, peerASN: 64502, peerAddress: 203.0.113.3, bfdProfile: nope}",
			"vbgppeer.lbstack.io", []string{"BGPPeer[r3].spec.bfdProfile", `Not found: "nope"`}},
		"advertisement with an undefined alias": {
			"apiVersion: lbstack.io/v1alpha1\nkind: BGPAdvertisement\nmetadata: {name: x}\nspec: {communities: [no-such-alias]}",
			"vbgpadvertisement.lbstack.io", []string{"BGPAdvertisement[x].spec.communities[0]", "no Community defines this alias"}},
		"aggregation shorter than the pool": {
			"apiVersion: lbstack.io/v1alpha1\nkind: BGPAdvertisement\nmetadata: {name: agg}\nspec: {ipAddressPools: [a], aggregationLength: 24}",
			"vbgpadvertisement.lbstack.io", []string{"BGPAdvertisement[agg].spec.aggregationLength", `IPAddressPool "a" permits`, "needs at least /25"}},
		"conflicting localPref": {
			"apiVersion: lbstack.io/v1alpha1\nkind: BGPAdvertisement\nmetadata: {name: lp200}\nspec: {ipAddressPools: [a], localPref: 200, aggregationLength: 25}",
			"vbgpadvertisement.lbstack.io", []string{"BGPAdvertisement[lp200].spec.localPref", `conflicts with localPref 100 of BGPAdvertisement "lp100"`}},
		"a second stack": {
			"apiVersion: lbstack.io/v1alpha1\nkind: LoadBalancerStack\nmetadata: {name: second}\nspec: {}",
			"vloadbalancerstack.lbstack.io", []string{"LoadBalancerStack[second]", `only one LoadBalancerStack may exist in a cluster and "first" is already in force`}},
		"inline pool overlapping a standalone one": {
			"apiVersion: lbstack.io/v1alpha1\nkind: IPAddressPool\nmetadata: {name: d}\nspec: {addresses: [192.0.2.0/24]}",
			"vipaddresspool.lbstack.io", []string{"IPAddressPool[d].spec.addresses[0]"}},
		"L2 advertisement with an invalid selector": {
			"apiVersion: lbstack.io/v1alpha1\nkind: L2Advertisement\nmetadata: {name: l2}\nspec: {nodeSelectors: [{matchExpressions: [{key: zone, operator: In}]}]}",
			"vl2advertisement.lbstack.io", []string{"L2Advertisement[l2].spec.nodeSelectors[0]"}},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			expectDenied(t, c.Create(ctx(t), obj(t, tc.doc)), tc.webhook, tc.want...)
		})
	}

	t.Run("stack inline items clashing with standalone objects", func(t *testing.T) {
		u := obj(t, "apiVersion: lbstack.io/v1alpha1\nkind: LoadBalancerStack\nmetadata: {name: first}\nspec:\n  pools:\n    - {name: a, addresses: [198.51.100.0/24]}\n    - {name: z, addresses: [192.0.2.64/26]}")
		var cur unstructured.Unstructured
		cur.SetGroupVersionKind(u.GroupVersionKind())
		if err := c.Get(ctx(t), client.ObjectKey{Name: "first"}, &cur); err != nil {
			t.Fatal(err)
		}
		u.SetResourceVersion(cur.GetResourceVersion())
		expectDenied(t, c.Update(ctx(t), u), "vloadbalancerstack.lbstack.io",
			`LoadBalancerStack[first].spec.pools[0].name: Duplicate value: "a": a standalone IPAddressPool of this name already exists and is not owned by this stack`,
			"LoadBalancerStack[first].spec.pools[1].addresses[0]", `overlaps IPAddressPool "a"`)
	})
}

func TestDeleteInUse(t *testing.T) {
	mustCreate(t,
		"apiVersion: lbstack.io/v1alpha1\nkind: BFDProfile\nmetadata: {name: fast}\nspec: {receiveInterval: 100}",
		"apiVersion: lbstack.io/v1alpha1\nkind: BGPPeer\nmetadata: {name: uses-fast}\nspec: {myASN: 64500, peerASN: 64500, peerAddress: 203.0.113.9, bfdProfile: fast}",
		"apiVersion: lbstack.io/v1alpha1\nkind: Community\nmetadata: {name: aliases}\nspec: {communities: [{name: no-export, value: '65535:65281'}]}",
		"apiVersion: lbstack.io/v1alpha1\nkind: BGPAdvertisement\nmetadata: {name: uses-alias}\nspec: {ipAddressPools: [held], communities: [no-export]}",
		"apiVersion: lbstack.io/v1alpha1\nkind: IPAddressPool\nmetadata: {name: held}\nspec: {addresses: [203.0.113.128/28]}",
	)
	expectDenied(t, c.Delete(ctx(t), obj(t, "apiVersion: lbstack.io/v1alpha1\nkind: BFDProfile\nmetadata: {name: fast}")),
		"vbfdprofile.lbstack.io", `BFDProfile "fast" is still in use by BGPPeer[uses-fast].spec.bfdProfile`)
	expectDenied(t, c.Delete(ctx(t), obj(t, "apiVersion: lbstack.io/v1alpha1\nkind: Community\nmetadata: {name: aliases}")),
		"vcommunity.lbstack.io", `Community "aliases" is still in use by BGPAdvertisement[uses-alias].spec.communities[0]`)

	// A Service holding an address of the pool.
	svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "default"},
		Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeLoadBalancer, Ports: []corev1.ServicePort{{Port: 80}}}}
	if err := c.Create(ctx(t), svc); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = env.Client.Delete(context.Background(), svc) })
	svc.Status.LoadBalancer.Ingress = []corev1.LoadBalancerIngress{{IP: "203.0.113.130"}}
	if err := c.Status().Update(ctx(t), svc); err != nil {
		t.Fatal(err)
	}
	expectDenied(t, c.Delete(ctx(t), obj(t, "apiVersion: lbstack.io/v1alpha1\nkind: IPAddressPool\nmetadata: {name: held}")),
		"vipaddresspool.lbstack.io", `IPAddressPool "held" is still in use by Services default/web (203.0.113.130)`)

	// Shrinking the pool under the Service is allowed, with a warning.
	warnings.take()
	var pool unstructured.Unstructured
	pool.SetGroupVersionKind(obj(t, "apiVersion: lbstack.io/v1alpha1\nkind: IPAddressPool").GroupVersionKind())
	if err := c.Get(ctx(t), client.ObjectKey{Name: "held"}, &pool); err != nil {
		t.Fatal(err)
	}
	_ = unstructured.SetNestedStringSlice(pool.Object, []string{"203.0.113.136/29"}, "spec", "addresses")
	if err := c.Update(ctx(t), &pool); err != nil {
		t.Fatalf("shrinking the pool: %v", err)
	}
	expectWarning(t, `IPAddressPool "held" no longer contains addresses held by Services default/web (203.0.113.130)`)
}

// TestDeleteChildOfDeletedStack plays the garbage collector: the children
// of a stack being deleted (foreground) or gone (background) may be
// deleted although Services hold a pool's addresses or a profile is in
// use, with a warning that names them; a pool that is no stack's child
// is still protected.
func TestDeleteChildOfDeletedStack(t *testing.T) {
	stack := obj(t, `apiVersion: lbstack.io/v1alpha1
kind: LoadBalancerStack
metadata: {name: owner, finalizers: [test.lbstack.io/hold]}
spec:
  pools: [{name: owned, addresses: [203.0.113.0/28]}]
  bfdProfiles: [{name: owned-fast}]
  communities: [{name: owned-aliases, communities: [{name: owned-no-export, value: '65535:65281'}]}]`)
	if err := c.Create(ctx(t), stack); err != nil {
		t.Fatal(err)
	}
	release := func() {
		// Let the stack go: drop the finalizer that holds it.
		var cur unstructured.Unstructured
		cur.SetGroupVersionKind(stack.GroupVersionKind())
		if err := env.Client.Get(context.Background(), client.ObjectKey{Name: "owner"}, &cur); err != nil {
			return
		}
		cur.SetFinalizers(nil)
		_ = env.Client.Update(context.Background(), &cur)
	}
	t.Cleanup(func() {
		release()
		_ = env.Client.Delete(context.Background(), stack)
	})
	// The operator's rendered children (envtest runs no operator), and a
	// child of a stack that is long gone.
	child := func(kind, name, spec string, uid string) string {
		return fmt.Sprintf("apiVersion: lbstack.io/v1alpha1\nkind: %s\nmetadata:\n  name: %s\n  ownerReferences: [{apiVersion: lbstack.io/v1alpha1, kind: LoadBalancerStack, name: owner, uid: %s, controller: true}]\nspec: %s",
			kind, name, uid, spec)
	}
	uid := string(stack.GetUID())
	mustCreate(t,
		child("IPAddressPool", "owned", "{addresses: [203.0.113.0/28]}", uid),
		child("BFDProfile", "owned-fast", "{}", uid),
		child("Community", "owned-aliases", "{communities: [{name: owned-no-export, value: '65535:65281'}]}", uid),
		child("IPAddressPool", "orphan", "{addresses: [203.0.113.16/28]}", "00000000-0000-0000-0000-00000000dead"),
		// Owned, but not controlled, by a stack that is gone: not a child.
		"apiVersion: lbstack.io/v1alpha1\nkind: IPAddressPool\nmetadata:\n  name: merely-owned\n  ownerReferences: [{apiVersion: lbstack.io/v1alpha1, kind: LoadBalancerStack, name: owner, uid: 00000000-0000-0000-0000-00000000dead}]\nspec: {addresses: [203.0.113.32/28]}",
	)
	for i, ip := range []string{"203.0.113.5", "203.0.113.17", "203.0.113.33"} {
		svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("held-%d", i), Namespace: "default"},
			Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeLoadBalancer, Ports: []corev1.ServicePort{{Port: 80}}}}
		if err := c.Create(ctx(t), svc); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = env.Client.Delete(context.Background(), svc) })
		svc.Status.LoadBalancer.Ingress = []corev1.LoadBalancerIngress{{IP: ip}}
		if err := c.Status().Update(ctx(t), svc); err != nil {
			t.Fatal(err)
		}
	}
	del := func(kind, name string) error {
		return c.Delete(ctx(t), obj(t, fmt.Sprintf("apiVersion: lbstack.io/v1alpha1\nkind: %s\nmetadata: {name: %s}", kind, name)))
	}

	t.Run("a child of a gone stack", func(t *testing.T) {
		warnings.take()
		if err := del("IPAddressPool", "orphan"); err != nil {
			t.Fatalf("the garbage collector's delete refused: %v", err)
		}
		expectWarning(t, `IPAddressPool "orphan" goes away with its LoadBalancerStack "owner" while Services hold its addresses: default/held-1 (203.0.113.17); they keep their IPs but nothing announces them`)
	})
	t.Run("a pool no stack controls is still protected", func(t *testing.T) {
		expectDenied(t, del("IPAddressPool", "merely-owned"), "vipaddresspool.lbstack.io",
			`IPAddressPool "merely-owned" is still in use by Services default/held-2 (203.0.113.33)`)
	})

	// Foreground deletion: the stack gets a deletionTimestamp and stays
	// until its children are gone.
	warnings.take()
	if err := c.Delete(ctx(t), stack); err != nil {
		t.Fatalf("deleting the stack: %v", err)
	}
	expectWarning(t, `IPAddressPool "owned" goes away with this stack while Services hold its addresses: default/held-0 (203.0.113.5)`)
	t.Run("a child of a stack being deleted", func(t *testing.T) {
		if err := del("IPAddressPool", "owned"); err != nil {
			t.Fatalf("the garbage collector's delete refused: %v", err)
		}
		expectWarning(t, `IPAddressPool "owned" goes away with its LoadBalancerStack "owner" while Services hold its addresses: default/held-0 (203.0.113.5)`)
	})
	release()
}

// TestDeleteChildOfDeletedStackWarnsAboutUsers: a profile and a community
// that standalone objects use go with their stack, with a warning naming
// those users (they were created while the stack was being deleted).
func TestDeleteChildOfDeletedStackWarnsAboutUsers(t *testing.T) {
	stack := obj(t, `apiVersion: lbstack.io/v1alpha1
kind: LoadBalancerStack
metadata: {name: owner2, finalizers: [test.lbstack.io/hold]}
spec:
  bfdProfiles: [{name: fast2}]
  communities: [{name: aliases2, communities: [{name: no-export2, value: '65535:65281'}]}]`)
	if err := c.Create(ctx(t), stack); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		var cur unstructured.Unstructured
		cur.SetGroupVersionKind(stack.GroupVersionKind())
		if err := env.Client.Get(context.Background(), client.ObjectKey{Name: "owner2"}, &cur); err == nil {
			cur.SetFinalizers(nil)
			_ = env.Client.Update(context.Background(), &cur)
		}
		_ = env.Client.Delete(context.Background(), stack)
	})
	ref := fmt.Sprintf("[{apiVersion: lbstack.io/v1alpha1, kind: LoadBalancerStack, name: owner2, uid: %s, controller: true}]", stack.GetUID())
	mustCreate(t,
		"apiVersion: lbstack.io/v1alpha1\nkind: BFDProfile\nmetadata: {name: fast2, ownerReferences: "+ref+"}\nspec: {}",
		"apiVersion: lbstack.io/v1alpha1\nkind: Community\nmetadata: {name: aliases2, ownerReferences: "+ref+"}\nspec: {communities: [{name: no-export2, value: '65535:65281'}]}",
	)
	if err := c.Delete(ctx(t), stack); err != nil {
		t.Fatalf("deleting the stack: %v", err)
	}
	mustCreate(t,
		"apiVersion: lbstack.io/v1alpha1\nkind: BGPPeer\nmetadata: {name: uses-fast2}\nspec: {myASN: 64500, peerASN: 64500, peerAddress: 203.0.113.77, bfdProfile: fast2}",
		"apiVersion: lbstack.io/v1alpha1\nkind: BGPAdvertisement\nmetadata: {name: uses-alias2}\nspec: {communities: [no-export2]}",
	)
	warnings.take()
	if err := c.Delete(ctx(t), obj(t, "apiVersion: lbstack.io/v1alpha1\nkind: BFDProfile\nmetadata: {name: fast2}")); err != nil {
		t.Fatalf("the garbage collector's delete refused: %v", err)
	}
	expectWarning(t, `BFDProfile "fast2" goes away with its LoadBalancerStack "owner2" though it is still in use by BGPPeer[uses-fast2].spec.bfdProfile`)
	if err := c.Delete(ctx(t), obj(t, "apiVersion: lbstack.io/v1alpha1\nkind: Community\nmetadata: {name: aliases2}")); err != nil {
		t.Fatalf("the garbage collector's delete refused: %v", err)
	}
	expectWarning(t, `Community "aliases2" goes away with its LoadBalancerStack "owner2" though it is still in use by BGPAdvertisement[uses-alias2].spec.communities[0]`)
}

// TestInlinePoolRemoval: removing a stack's inline pool is judged like
// deleting a standalone pool (refused while Services hold its addresses),
// and the operator's prune of the child, once the item is gone, is not
// refused (the child was never the pool in force).
func TestInlinePoolRemoval(t *testing.T) {
	stack := obj(t, "apiVersion: lbstack.io/v1alpha1\nkind: LoadBalancerStack\nmetadata: {name: inline}\nspec:\n  pools: [{name: kept, addresses: [203.0.113.48/29]}, {name: removed, addresses: [203.0.113.56/29]}]")
	if err := c.Create(ctx(t), stack); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = env.Client.Delete(context.Background(), stack) })
	ref := fmt.Sprintf("[{apiVersion: lbstack.io/v1alpha1, kind: LoadBalancerStack, name: inline, uid: %s, controller: true}]", stack.GetUID())
	mustCreate(t, "apiVersion: lbstack.io/v1alpha1\nkind: IPAddressPool\nmetadata: {name: removed, ownerReferences: "+ref+"}\nspec: {addresses: [203.0.113.56/29]}")
	svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "inline-held", Namespace: "default"},
		Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeLoadBalancer, Ports: []corev1.ServicePort{{Port: 80}}}}
	if err := c.Create(ctx(t), svc); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = env.Client.Delete(context.Background(), svc) })
	svc.Status.LoadBalancer.Ingress = []corev1.LoadBalancerIngress{{IP: "203.0.113.57"}}
	if err := c.Status().Update(ctx(t), svc); err != nil {
		t.Fatal(err)
	}
	update := func(pools string) error {
		var cur unstructured.Unstructured
		cur.SetGroupVersionKind(stack.GroupVersionKind())
		if err := c.Get(ctx(t), client.ObjectKey{Name: "inline"}, &cur); err != nil {
			return err
		}
		u := obj(t, "apiVersion: lbstack.io/v1alpha1\nkind: LoadBalancerStack\nmetadata: {name: inline}\nspec:\n  pools: "+pools)
		u.SetResourceVersion(cur.GetResourceVersion())
		return c.Update(ctx(t), u)
	}
	expectDenied(t, update("[{name: kept, addresses: [203.0.113.48/29]}]"), "vloadbalancerstack.lbstack.io",
		`IPAddressPool "removed" is still in use by Services default/inline-held (203.0.113.57)`)
	// Once the Service lets go, the item goes, and the prune follows.
	svc.Status.LoadBalancer.Ingress = nil
	if err := c.Status().Update(ctx(t), svc); err != nil {
		t.Fatal(err)
	}
	if err := update("[{name: kept, addresses: [203.0.113.48/29]}]"); err != nil {
		t.Fatalf("removing an unused inline pool: %v", err)
	}
	svc.Status.LoadBalancer.Ingress = []corev1.LoadBalancerIngress{{IP: "203.0.113.57"}} // a stale status
	if err := c.Status().Update(ctx(t), svc); err != nil {
		t.Fatal(err)
	}
	if err := c.Delete(ctx(t), obj(t, "apiVersion: lbstack.io/v1alpha1\nkind: IPAddressPool\nmetadata: {name: removed}")); err != nil {
		t.Fatalf("the operator's prune of the child refused: %v", err)
	}
}

func expectWarning(t *testing.T, want string) {
	t.Helper()
	got := warnings.take()
	for _, w := range got {
		if strings.Contains(w, want) {
			t.Logf("warning: %s", w)
			return
		}
	}
	t.Fatalf("no warning %q among %q", want, got)
}

func TestWarnings(t *testing.T) {
	mustCreate(t, "apiVersion: lbstack.io/v1alpha1\nkind: IPAddressPool\nmetadata: {name: w}\nspec: {addresses: [198.51.100.0/28]}")
	warnings.take()
	mustCreate(t, "apiVersion: lbstack.io/v1alpha1\nkind: L2Advertisement\nmetadata: {name: wl2}\nspec: {ipAddressPools: [not-yet]}")
	expectWarning(t, `L2Advertisement[wl2].spec.ipAddressPools[0]: IPAddressPool "not-yet" does not exist`)

	holder := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "holder", Namespace: "default",
		Annotations: map[string]string{"lbstack.io/allow-shared-ip": "k"}},
		Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeLoadBalancer, Ports: []corev1.ServicePort{{Port: 443}}}}
	if err := c.Create(ctx(t), holder); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = env.Client.Delete(context.Background(), holder) })
	holder.Status.LoadBalancer.Ingress = []corev1.LoadBalancerIngress{{IP: "198.51.100.5"}}
	if err := c.Status().Update(ctx(t), holder); err != nil {
		t.Fatal(err)
	}

	cases := map[string]struct {
		ann   map[string]string
		port  int32
		local bool // externalTrafficPolicy Local, selecting app=x
		want  string
	}{
		"IP in no pool":        {map[string]string{"lbstack.io/loadBalancerIPs": "192.0.2.99"}, 80, false, "the requested IP 192.0.2.99 is in no IPAddressPool"},
		"missing pool":         {map[string]string{"lbstack.io/address-pool": "nope"}, 80, false, `the requested IPAddressPool "nope" does not exist`},
		"IP already taken":     {map[string]string{"lbstack.io/loadBalancerIPs": "198.51.100.5"}, 80, false, "the requested IP 198.51.100.5 is held by Service default/holder and cannot be shared: no common lbstack.io/allow-shared-ip key"},
		"sharing ports clash":  {map[string]string{"lbstack.io/allow-shared-ip": "k", "lbstack.io/loadBalancerIPs": "198.51.100.5"}, 443, false, "the requested IP 198.51.100.5 is held by Service default/holder and cannot be shared: both use port 443/TCP"},
		"sharing backends":     {map[string]string{"lbstack.io/allow-shared-ip": "k", "lbstack.io/loadBalancerIPs": "198.51.100.5"}, 80, true, "cannot be shared: externalTrafficPolicy Local needs the same selector"},
		"sharing key no IP":    {map[string]string{"lbstack.io/allow-shared-ip": "k"}, 443, false, `sharing key "k": this Service cannot share an IP with Service default/holder (both use port 443/TCP), so the two get different IPs`},
		"two IPs of a family":  {map[string]string{"lbstack.io/loadBalancerIPs": "198.51.100.1,198.51.100.2"}, 80, false, "requests two IPs of one family"},
		"unparsable requested": {map[string]string{"lbstack.io/loadBalancerIPs": "not-an-ip"}, 80, false, `"not-an-ip" is not an IP address`},
	}
	i := 0
	for name, tc := range cases {
		i++
		t.Run(name, func(t *testing.T) {
			svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("warn-%d", i), Namespace: "default", Annotations: tc.ann},
				Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeLoadBalancer, Ports: []corev1.ServicePort{{Port: tc.port}}}}
			if tc.local {
				svc.Spec.ExternalTrafficPolicy = corev1.ServiceExternalTrafficPolicyLocal
				svc.Spec.Selector = map[string]string{"app": "x"}
			}
			if err := c.Create(ctx(t), svc); err != nil {
				t.Fatalf("a Service is never rejected, got %v", err)
			}
			t.Cleanup(func() { _ = env.Client.Delete(context.Background(), svc) })
			expectWarning(t, tc.want)
		})
	}
}

// TestWebhookTLS: the webhook server speaks TLS 1.2 or newer, HTTP/1.1 only.
func TestWebhookTLS(t *testing.T) {
	for _, v := range []uint16{tls.VersionTLS10, tls.VersionTLS11} {
		conn, err := tls.Dial("tcp", hookAddr, &tls.Config{InsecureSkipVerify: true, MinVersion: v, MaxVersion: v}) //nolint:gosec // the handshake must fail before any certificate matters
		if err == nil {
			conn.Close()
			t.Errorf("the webhook server accepted %s", tls.VersionName(v))
		}
	}
	for _, v := range []uint16{tls.VersionTLS12, tls.VersionTLS13} {
		conn, err := tls.Dial("tcp", hookAddr, &tls.Config{InsecureSkipVerify: true, MinVersion: v, MaxVersion: v, NextProtos: []string{"h2", "http/1.1"}}) //nolint:gosec // checking the protocol, not the certificate
		if err != nil {
			t.Errorf("the webhook server refused %s: %v", tls.VersionName(v), err)
			continue
		}
		if p := conn.ConnectionState().NegotiatedProtocol; p == "h2" {
			t.Errorf("the webhook server speaks HTTP/2 over %s", tls.VersionName(v))
		}
		conn.Close()
	}
}

func servedSerial(t *testing.T) *big.Int {
	t.Helper()
	conn, err := tls.Dial("tcp", hookAddr, &tls.Config{InsecureSkipVerify: true}) //nolint:gosec // reading the served certificate only
	if err != nil {
		t.Fatalf("dialing the webhook server: %v", err)
	}
	defer conn.Close()
	return conn.ConnectionState().PeerCertificates[0].SerialNumber
}

// TestCertificateRotation renews the serving certificate and expects the
// webhook to keep serving with the new one, and the CA to be injected.
func TestCertificateRotation(t *testing.T) {
	var sec corev1.Secret
	if err := c.Get(ctx(t), client.ObjectKey{Namespace: "default", Name: "lbstack-webhook-server-cert"}, &sec); err != nil {
		t.Fatal(err)
	}
	var hooks admissionregistrationv1.ValidatingWebhookConfiguration
	if err := c.Get(ctx(t), client.ObjectKey{Name: "validating-webhook-configuration"}, &hooks); err != nil {
		t.Fatal(err)
	}
	for _, h := range hooks.Webhooks {
		if string(h.ClientConfig.CABundle) != string(sec.Data["ca.crt"]) {
			t.Fatalf("webhook %s does not carry the rotator's CA", h.Name)
		}
	}
	before := servedSerial(t)
	if err := rotator.Rotate(ctx(t)); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for servedSerial(t).Cmp(before) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the webhook server still serves the old certificate 30s after rotation")
		}
		time.Sleep(100 * time.Millisecond)
	}
	// Still serving: a bad object is refused, a good one accepted.
	expectDenied(t, c.Create(ctx(t), obj(t, "apiVersion: lbstack.io/v1alpha1\nkind: IPAddressPool\nmetadata: {name: r}\nspec: {addresses: ['2001:db8:2::9-2001:db8:2::1']}")),
		"vipaddresspool.lbstack.io", "after its end")
	mustCreate(t, "apiVersion: lbstack.io/v1alpha1\nkind: IPAddressPool\nmetadata: {name: after-rotation}\nspec: {addresses: [203.0.113.240/28]}")
}

// TestPasswordSecretWarnings: a BGPPeer (or a stack's inline peer) whose
// password Secret is missing, lacks the key or is of the wrong type is
// admitted with a warning naming the object, the field and the problem;
// a good Secret gives no warning.
func TestPasswordSecretWarnings(t *testing.T) {
	for _, s := range []*corev1.Secret{
		{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "pw-good"}, Data: map[string][]byte{"password": []byte("x")}},
		{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "pw-nokey"}, Data: map[string][]byte{"pass": []byte("x")}},
		{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "pw-tls"}, Type: corev1.SecretTypeTLS,
			Data: map[string][]byte{"password": []byte("x"), "tls.crt": []byte("c"), "tls.key": []byte("k")}},
	} {
		if err := env.Client.Create(ctx(t), s); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = env.Client.Delete(context.Background(), s) })
	}
	peer := func(name, addr, secret string) string {
		return fmt.Sprintf("apiVersion: lbstack.io/v1alpha1\nkind: BGPPeer\nmetadata: {name: %s}\nspec: {myASN: 64500, peerASN: 64501, peerAddress: %s, passwordSecret: {name: %s}}", name, addr, secret)
	}
	warnings.take()
	mustCreate(t, peer("pw-good", "198.51.100.201", "pw-good"))
	if got := warnings.take(); len(got) != 0 {
		t.Errorf("a good password Secret gave warnings %q", got)
	}
	for name, tc := range map[string]struct{ secret, want string }{
		"missing":    {"pw-missing", `BGPPeer[pw-missing].spec.passwordSecret: Secret default/pw-missing does not exist; the speakers do not open this session until the password can be read`},
		"no key":     {"pw-nokey", `BGPPeer[pw-nokey].spec.passwordSecret: Secret default/pw-nokey has no key "password"`},
		"wrong type": {"pw-tls", `BGPPeer[pw-tls].spec.passwordSecret: Secret default/pw-tls is of type kubernetes.io/tls`},
	} {
		t.Run(name, func(t *testing.T) {
			mustCreate(t, peer(tc.secret, "198.51.100.2"+fmt.Sprint(len(tc.secret)), tc.secret))
			expectWarning(t, tc.want)
		})
	}
	t.Run("inline peer of a stack", func(t *testing.T) {
		mustCreate(t, "apiVersion: lbstack.io/v1alpha1\nkind: LoadBalancerStack\nmetadata: {name: pwstack}\nspec: {bgpPeers: [{name: inl, myASN: 64500, peerASN: 64501, peerAddress: 198.51.100.240, passwordSecret: {name: nope}}]}")
		expectWarning(t, `LoadBalancerStack[pwstack].spec.bgpPeers[0].passwordSecret: Secret default/nope does not exist`)
	})
}

// TestBFDKeySecretWarnings: a BFD profile whose key Secret is missing or
// holds a key too long for its type is admitted with a warning.
func TestBFDKeySecretWarnings(t *testing.T) {
	long := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "bfd-long"}, Data: map[string][]byte{"password": []byte("seventeen-bytes!!")}}
	if err := env.Client.Create(ctx(t), long); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = env.Client.Delete(context.Background(), long) })
	warnings.take()
	mustCreate(t, "apiVersion: lbstack.io/v1alpha1\nkind: BFDProfile\nmetadata: {name: md5-long}\nspec: {authentication: {type: KeyedMD5, keySecret: {name: bfd-long}}}")
	expectWarning(t, `BFDProfile[md5-long].spec.authentication.keySecret: Secret default/bfd-long: the key under "password" is 17 bytes; this authentication type takes at most 16`)
	// The same key suits SHA1.
	mustCreate(t, "apiVersion: lbstack.io/v1alpha1\nkind: BFDProfile\nmetadata: {name: sha1-ok}\nspec: {authentication: {type: MeticulousKeyedSHA1, keyID: 9, keySecret: {name: bfd-long}}}")
	if got := warnings.take(); len(got) != 0 {
		t.Errorf("a good key gave warnings %q", got)
	}
	mustCreate(t, "apiVersion: lbstack.io/v1alpha1\nkind: BFDProfile\nmetadata: {name: no-key}\nspec: {authentication: {type: KeyedSHA1, keySecret: {name: bfd-absent}}}")
	expectWarning(t, "BFDProfile[no-key].spec.authentication.keySecret: Secret default/bfd-absent does not exist; the speakers do not open the sessions using this BFD profile until the key can be read")
}
