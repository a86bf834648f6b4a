package operator_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-logr/logr/testr"
	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/retry"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"
	"sigs.k8s.io/controller-runtime/pkg/manager"

	lbv1 "github.com/lbstack/lbstack/api/v1alpha1"
	"github.com/lbstack/lbstack/controllers"
	"github.com/lbstack/lbstack/internal/cli"
	"github.com/lbstack/lbstack/internal/operator"
	"github.com/lbstack/lbstack/internal/render"
	"github.com/lbstack/lbstack/internal/testenv"
)

const ns = "lbstack-system"

var env *testenv.Env

func TestMain(m *testing.M) {
	testenv.Main(m, testenv.Options{}, func(e *testenv.Env) { env = e })
}

// writes counts every write the operator sends to the API server.
type writes struct {
	n    atomic.Int64
	mu   sync.Mutex
	log  []string
	last time.Time // when the last write returned
}

func (w *writes) add(verb string, obj any) {
	w.n.Add(1)
	w.mu.Lock()
	defer w.mu.Unlock()
	w.log = append(w.log, fmt.Sprintf("%s %T", verb, obj))
}

func (w *writes) done() {
	w.mu.Lock()
	w.last = time.Now()
	w.mu.Unlock()
}

func (w *writes) lastWrite() time.Time {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.last
}

func (w *writes) reset() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	l := w.log
	w.log = nil
	w.n.Store(0)
	return l
}

// countingClient wraps c so every write is counted.
func countingClient(c client.WithWatch, w *writes) client.WithWatch {
	return interceptor.NewClient(c, interceptor.Funcs{
		Create: func(ctx context.Context, c client.WithWatch, o client.Object, opts ...client.CreateOption) error {
			w.add("create", o)
			return c.Create(ctx, o, opts...)
		},
		Update: func(ctx context.Context, c client.WithWatch, o client.Object, opts ...client.UpdateOption) error {
			w.add("update", o)
			return c.Update(ctx, o, opts...)
		},
		Patch: func(ctx context.Context, c client.WithWatch, o client.Object, p client.Patch, opts ...client.PatchOption) error {
			w.add("patch", o)
			return c.Patch(ctx, o, p, opts...)
		},
		Apply: func(ctx context.Context, c client.WithWatch, o runtime.ApplyConfiguration, opts ...client.ApplyOption) error {
			w.add("apply", o)
			defer w.done()
			return c.Apply(ctx, o, opts...)
		},
		Delete: func(ctx context.Context, c client.WithWatch, o client.Object, opts ...client.DeleteOption) error {
			w.add("delete", o)
			return c.Delete(ctx, o, opts...)
		},
		SubResourcePatch: func(ctx context.Context, c client.Client, sub string, o client.Object, p client.Patch, opts ...client.SubResourcePatchOption) error {
			w.add("patch/"+sub, o)
			return c.SubResource(sub).Patch(ctx, o, p, opts...)
		},
		SubResourceUpdate: func(ctx context.Context, c client.Client, sub string, o client.Object, opts ...client.SubResourceUpdateOption) error {
			w.add("update/"+sub, o)
			return c.SubResource(sub).Update(ctx, o, opts...)
		},
	})
}

// operatorUnderTest is a running operator (reconciler only; the webhooks
// have their own tests) whose writes are counted.
type operatorUnderTest struct {
	r      *controllers.StackReconciler
	writes *writes
	stop   func()
	// metrics holds the operator's metrics.
	metrics *prometheus.Registry
}

func startOperator(t testing.TB) *operatorUnderTest {
	t.Helper()
	return startOperatorWith(t, operator.WorkloadDefaults{Image: "ghcr.io/lbstack/lbstack:test"})
}

// startOperatorWith starts an operator whose workloads get d by default.
func startOperatorWith(t testing.TB, d operator.WorkloadDefaults) *operatorUnderTest {
	t.Helper()
	o := cli.ManagerOptions{MetricsAddr: "0", ProbeAddr: "0"}
	cfg := asOperator(t)
	mgr, err := o.NewManager(cfg, func(mo *manager.Options) {
		mo.Cache = operator.CacheOptions(ns)
		mo.Controller.SkipNameValidation = ptr.To(true)
	})
	if err != nil {
		t.Fatal(err)
	}
	w := &writes{}
	cl, err := client.NewWithWatch(cfg, client.Options{Scheme: mgr.GetScheme(), Cache: &client.CacheOptions{Reader: mgr.GetCache()}})
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	m, err := controllers.NewOperatorMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	r := &controllers.StackReconciler{
		Metrics:          m,
		Client:           countingClient(cl, w),
		APIReader:        mgr.GetAPIReader(),
		Recorder:         mgr.GetEventRecorder("lbstack-operator"),
		Namespace:        ns,
		Image:            d.Image,
		ImagePullSecrets: d.ImagePullSecrets,
	}
	if err := r.SetupWithManager(mgr); err != nil {
		t.Fatal(err)
	}
	stop := testenv.RunManager(t, mgr)
	if !mgr.GetCache().WaitForCacheSync(tctx(t)) {
		t.Fatal("cache did not sync")
	}
	return &operatorUnderTest{r: r, writes: w, stop: stop, metrics: reg}
}

// metric reads one series of the operator's metrics (0 when absent).
func (o *operatorUnderTest) metric(t testing.TB, name string, labels map[string]string) float64 {
	t.Helper()
	v, _, err := testenv.MetricValue(o.metrics, name, labels)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func tctx(t testing.TB) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return c
}

// eventually retries check until it passes or 30 s have gone.
func eventually(t *testing.T, what string, check func() error) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		err := check()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %v", what, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func get(t *testing.T, obj client.Object, namespace, name string) error {
	return env.Client.Get(tctx(t), types.NamespacedName{Namespace: namespace, Name: name}, obj)
}

func ensureNamespace(t testing.TB, name string) {
	t.Helper()
	err := env.Client.Create(tctx(t), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
}

func testStack() *lbv1.LoadBalancerStack {
	return &lbv1.LoadBalancerStack{
		ObjectMeta: metav1.ObjectMeta{Name: "lbstack"},
		Spec: lbv1.LoadBalancerStackSpec{
			Speaker: lbv1.SpeakerSpec{WorkloadSpec: lbv1.WorkloadSpec{NodeSelector: map[string]string{"edge": "true"}}},
			Pools: []lbv1.InlineIPAddressPool{
				{InlineMeta: lbv1.InlineMeta{Name: "front"}, IPAddressPoolSpec: lbv1.IPAddressPoolSpec{Addresses: []lbv1.PoolAddress{"192.0.2.0/28"}}},
				{InlineMeta: lbv1.InlineMeta{Name: "back"}, IPAddressPoolSpec: lbv1.IPAddressPoolSpec{Addresses: []lbv1.PoolAddress{"2001:db8:5::/120"}}},
			},
			BGPPeers: []lbv1.InlineBGPPeer{{
				InlineMeta:  lbv1.InlineMeta{Name: "tor"},
				BGPPeerSpec: lbv1.BGPPeerSpec{MyASN: 64500, PeerASN: 64501, PeerAddress: "203.0.113.1", PasswordSecret: &lbv1.SecretReference{Name: "tor-md5", Namespace: "network", Key: "password"}},
			}},
			L2Advertisements: []lbv1.InlineL2Advertisement{{InlineMeta: lbv1.InlineMeta{Name: "all"}}},
		},
	}
}

func condition(s *lbv1.LoadBalancerStack, typ string) *metav1.Condition {
	return meta.FindStatusCondition(s.Status.Conditions, typ)
}

func wantCondition(t *testing.T, typ string, status metav1.ConditionStatus, reason string) *lbv1.LoadBalancerStack {
	t.Helper()
	var s lbv1.LoadBalancerStack
	eventually(t, fmt.Sprintf("%s=%s (%s)", typ, status, reason), func() error {
		if err := get(t, &s, "", "lbstack"); err != nil {
			return err
		}
		c := condition(&s, typ)
		if c == nil || c.Status != status || c.Reason != reason || c.ObservedGeneration != s.Generation || s.Status.ObservedGeneration != s.Generation {
			return fmt.Errorf("conditions %+v, observedGeneration %d of %d", s.Status.Conditions, s.Status.ObservedGeneration, s.Generation)
		}
		return nil
	})
	return &s
}

// setRolledOut plays the part of the missing kube-controller-manager: it
// reports the workloads as fully rolled out.
func setRolledOut(t *testing.T, speakers int32) {
	t.Helper()
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		var ds appsv1.DaemonSet
		if err := get(t, &ds, ns, render.SpeakerName); err != nil {
			return err
		}
		ds.Status = appsv1.DaemonSetStatus{ObservedGeneration: ds.Generation, DesiredNumberScheduled: speakers, CurrentNumberScheduled: speakers,
			UpdatedNumberScheduled: speakers, NumberReady: speakers, NumberAvailable: speakers}
		return env.Client.Status().Update(tctx(t), &ds)
	})
	if err != nil {
		t.Fatal(err)
	}
	err = retry.RetryOnConflict(retry.DefaultRetry, func() error {
		var d appsv1.Deployment
		if err := get(t, &d, ns, render.ControllerName); err != nil {
			return err
		}
		n := *d.Spec.Replicas
		d.Status = appsv1.DeploymentStatus{ObservedGeneration: d.Generation, Replicas: n, UpdatedReplicas: n, ReadyReplicas: n, AvailableReplicas: n}
		return env.Client.Status().Update(tctx(t), &d)
	})
	if err != nil {
		t.Fatal(err)
	}
}

// quiet waits until the operator has written nothing for a while.
func (o *operatorUnderTest) quiet(t testing.TB) {
	t.Helper()
	last, since := o.writes.n.Load(), time.Now()
	for time.Since(since) < 1500*time.Millisecond {
		time.Sleep(100 * time.Millisecond)
		if n := o.writes.n.Load(); n != last {
			last, since = n, time.Now()
		}
	}
}

func TestStackLifecycle(t *testing.T) {
	ensureNamespace(t, ns)
	ensureNamespace(t, "network")
	op := startOperator(t)
	stack := testStack()
	if err := env.Client.Create(tctx(t), stack); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = env.Client.Delete(context.Background(), stack) })

	t.Run("children exist with owner references and the specified fields", func(t *testing.T) {
		var ds appsv1.DaemonSet
		eventually(t, "speaker DaemonSet", func() error { return get(t, &ds, ns, render.SpeakerName) })
		pod := ds.Spec.Template.Spec
		if !pod.HostNetwork || pod.NodeSelector["edge"] != "true" || pod.Containers[0].Image != "ghcr.io/lbstack/lbstack:test" || pod.ServiceAccountName != render.SpeakerName {
			t.Errorf("speaker pod spec: hostNetwork %v nodeSelector %v image %s sa %s", pod.HostNetwork, pod.NodeSelector, pod.Containers[0].Image, pod.ServiceAccountName)
		}
		for _, c := range []struct {
			obj       client.Object
			namespace string
			name      string
		}{
			{&appsv1.Deployment{}, ns, render.ControllerName},
			{&corev1.ServiceAccount{}, ns, render.SpeakerName},
			{&corev1.ServiceAccount{}, ns, render.ControllerName},
			{&rbacv1.ClusterRole{}, "", render.SpeakerName},
			{&rbacv1.ClusterRoleBinding{}, "", render.ControllerName},
			{&rbacv1.Role{}, ns, render.ControllerName},
			{&rbacv1.Role{}, "network", render.SpeakerSecretsRoleName},
			{&rbacv1.RoleBinding{}, "network", render.SpeakerSecretsRoleName},
			{&corev1.Secret{}, ns, render.MemberlistSecretName},
			{&corev1.Service{}, ns, "lbstack-speaker-metrics"},
			{&lbv1.IPAddressPool{}, "", "front"},
			{&lbv1.IPAddressPool{}, "", "back"},
			{&lbv1.BGPPeer{}, "", "tor"},
			{&lbv1.L2Advertisement{}, "", "all"},
		} {
			eventually(t, fmt.Sprintf("%T %s", c.obj, c.name), func() error {
				if err := get(t, c.obj, c.namespace, c.name); err != nil {
					return err
				}
				ref := metav1.GetControllerOf(c.obj)
				if ref == nil || ref.UID != stack.UID {
					return fmt.Errorf("controller reference %v, want the stack %s", ref, stack.UID)
				}
				return nil
			})
		}
		var pool lbv1.IPAddressPool
		_ = get(t, &pool, "", "back")
		if len(pool.Spec.Addresses) != 1 || pool.Spec.Addresses[0] != "2001:db8:5::/120" {
			t.Errorf("pool back: %v", pool.Spec.Addresses)
		}
	})

	var key []byte
	t.Run("memberlist key generated once", func(t *testing.T) {
		var s corev1.Secret
		if err := get(t, &s, ns, render.MemberlistSecretName); err != nil {
			t.Fatal(err)
		}
		key = s.Data[render.MemberlistSecretKey]
		if len(key) != render.MemberlistKeySize {
			t.Fatalf("key of %d bytes", len(key))
		}
	})

	t.Run("Progressing until the workloads roll out, then Available", func(t *testing.T) {
		s := wantCondition(t, lbv1.ConditionProgressing, metav1.ConditionTrue, controllers.ReasonRollingOut)
		if c := condition(s, lbv1.ConditionAvailable); c == nil || c.Status != metav1.ConditionFalse {
			t.Errorf("Available: %+v", c)
		}
		degradedSince := condition(s, lbv1.ConditionDegraded).LastTransitionTime
		setRolledOut(t, 3)
		s = wantCondition(t, lbv1.ConditionAvailable, metav1.ConditionTrue, controllers.ReasonRolledOut)
		if s.Status.Speakers != "3/3" || s.Status.SpeakersDesired != 3 || s.Status.ControllerReady != 2 {
			t.Errorf("status counts: speakers %q desired %d controller %d", s.Status.Speakers, s.Status.SpeakersDesired, s.Status.ControllerReady)
		}
		if c := condition(s, lbv1.ConditionProgressing); c.Status != metav1.ConditionFalse {
			t.Errorf("Progressing: %+v", c)
		}
		if got := condition(s, lbv1.ConditionDegraded).LastTransitionTime; !got.Equal(&degradedSince) {
			t.Errorf("Degraded did not flip but its LastTransitionTime moved from %v to %v", degradedSince, got)
		}
		names := []string{}
		for _, p := range s.Status.Pools {
			names = append(names, p.Name)
		}
		slices.Sort(names)
		if !slices.Equal(names, []string{"back", "front"}) {
			t.Errorf("status pools %v", names)
		}
		eventually(t, "Available event", func() error { return findEvent(t, controllers.ReasonRolledOut) })
		eventually(t, "the condition gauges", func() error {
			for cond, want := range map[string]float64{"Available/True": 1, "Available/False": 0, "Progressing/False": 1, "Degraded/False": 1} {
				c, st, _ := strings.Cut(cond, "/")
				if v := op.metric(t, "lbstack_operator_stack_condition", map[string]string{"stack": "lbstack", "condition": c, "status": st}); v != want {
					return fmt.Errorf("%s is %v, want %v", cond, v, want)
				}
			}
			return nil
		})
		if v := op.metric(t, "lbstack_operator_children_applied_total", map[string]string{"kind": "DaemonSet"}); v < 1 {
			t.Errorf("applies of the DaemonSet counted: %v", v)
		}
		if v := op.metric(t, "lbstack_operator_drift_repaired_total", map[string]string{"kind": "DaemonSet"}); v != 0 {
			t.Errorf("drift of the DaemonSet counted before any: %v", v)
		}
	})

	t.Run("no-op resync writes nothing", func(t *testing.T) {
		op.quiet(t)
		op.writes.reset()
		applied := op.metric(t, "lbstack_operator_children_applied_total", map[string]string{"kind": "DaemonSet"})
		defer func() {
			if v := op.metric(t, "lbstack_operator_children_applied_total", map[string]string{"kind": "DaemonSet"}); v != applied {
				t.Errorf("no-op passes counted applies: %v, was %v", v, applied)
			}
		}()
		for range 5 {
			if _, err := op.r.Reconcile(tctx(t), ctrl.Request{NamespacedName: types.NamespacedName{Name: "lbstack"}}); err != nil {
				t.Fatal(err)
			}
		}
		// A change to the stack's metadata also triggers a full pass.
		patchStack(t, func(s *lbv1.LoadBalancerStack) {
			metav1.SetMetaDataAnnotation(&s.ObjectMeta, "touched", time.Now().String())
		})
		op.quiet(t)
		if l := op.writes.reset(); len(l) != 0 {
			t.Fatalf("a no-op resync wrote %d times: %v", len(l), l)
		}
	})

	t.Run("a child edited by hand is restored", func(t *testing.T) {
		err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
			var ds appsv1.DaemonSet
			if err := get(t, &ds, ns, render.SpeakerName); err != nil {
				return err
			}
			ds.Spec.Template.Spec.Containers[0].Args = []string{"speaker", "--log-level=debug"}
			ds.Spec.Template.Spec.HostNetwork = false
			return env.Client.Update(tctx(t), &ds)
		})
		if err != nil {
			t.Fatal(err)
		}
		eventually(t, "args restored", func() error {
			var ds appsv1.DaemonSet
			if err := get(t, &ds, ns, render.SpeakerName); err != nil {
				return err
			}
			if !ds.Spec.Template.Spec.HostNetwork || !slices.Contains(ds.Spec.Template.Spec.Containers[0].Args, "--memberlist-bind-port=7946") {
				return fmt.Errorf("hostNetwork %v args %v", ds.Spec.Template.Spec.HostNetwork, ds.Spec.Template.Spec.Containers[0].Args)
			}
			return nil
		})
		err = retry.RetryOnConflict(retry.DefaultRetry, func() error {
			var cr rbacv1.ClusterRole
			if err := get(t, &cr, "", render.SpeakerName); err != nil {
				return err
			}
			cr.Rules = append(cr.Rules, rbacv1.PolicyRule{APIGroups: []string{""}, Resources: []string{"services"}, Verbs: []string{"update"}})
			cr.Rules = cr.Rules[1:]
			return env.Client.Update(tctx(t), &cr)
		})
		if err != nil {
			t.Fatal(err)
		}
		eventually(t, "ClusterRole rules restored", func() error {
			var cr rbacv1.ClusterRole
			if err := get(t, &cr, "", render.SpeakerName); err != nil {
				return err
			}
			if len(cr.Rules) != len(render.SpeakerRules()) || cr.Rules[0].Resources[0] != render.SpeakerRules()[0].Resources[0] {
				return fmt.Errorf("rules %v", cr.Rules)
			}
			return nil
		})
		// Both edits were drift: the desired state had not changed.
		for _, kind := range []string{"DaemonSet", "ClusterRole"} {
			if v := op.metric(t, "lbstack_operator_drift_repaired_total", map[string]string{"kind": kind}); v < 1 {
				t.Errorf("the repaired %s is not counted as drift: %v", kind, v)
			}
		}
	})

	t.Run("a deleted child is recreated", func(t *testing.T) {
		for _, o := range []client.Object{
			&corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: render.SpeakerName}},
			&rbacv1.ClusterRoleBinding{ObjectMeta: metav1.ObjectMeta{Name: render.SpeakerName}},
			&lbv1.L2Advertisement{ObjectMeta: metav1.ObjectMeta{Name: "all"}},
		} {
			old := o.DeepCopyObject().(client.Object)
			if err := get(t, old, o.GetNamespace(), o.GetName()); err != nil {
				t.Fatal(err)
			}
			if err := env.Client.Delete(tctx(t), o); err != nil {
				t.Fatal(err)
			}
			eventually(t, fmt.Sprintf("%T %s recreated", o, o.GetName()), func() error {
				cur := o.DeepCopyObject().(client.Object)
				if err := get(t, cur, o.GetNamespace(), o.GetName()); err != nil {
					return err
				}
				if cur.GetUID() == old.GetUID() {
					return fmt.Errorf("not deleted yet")
				}
				return nil
			})
		}
	})

	t.Run("a change to the stack rolls the children", func(t *testing.T) {
		patchStack(t, func(s *lbv1.LoadBalancerStack) {
			s.Spec.Speaker.Image = "registry.example/lbstack:v2"
			s.Spec.Speaker.NodeSelector = nil
			s.Spec.Speaker.LogLevel = lbv1.LogLevelDebug
		})
		eventually(t, "DaemonSet updated", func() error {
			var ds appsv1.DaemonSet
			if err := get(t, &ds, ns, render.SpeakerName); err != nil {
				return err
			}
			c := ds.Spec.Template.Spec.Containers[0]
			if c.Image != "registry.example/lbstack:v2" || !slices.Contains(c.Args, "--log-level=debug") {
				return fmt.Errorf("image %s args %v", c.Image, c.Args)
			}
			if _, ok := ds.Spec.Template.Spec.NodeSelector["edge"]; ok {
				return fmt.Errorf("node selector not dropped: %v", ds.Spec.Template.Spec.NodeSelector)
			}
			return nil
		})
		// The DaemonSet's generation moved and nothing observed it yet.
		wantCondition(t, lbv1.ConditionProgressing, metav1.ConditionTrue, controllers.ReasonRollingOut)
		setRolledOut(t, 3)
		wantCondition(t, lbv1.ConditionAvailable, metav1.ConditionTrue, controllers.ReasonRolledOut)
	})

	t.Run("removing an inline pool removes its child, never a standalone object", func(t *testing.T) {
		hand := &lbv1.IPAddressPool{ObjectMeta: metav1.ObjectMeta{Name: "by-hand"}, Spec: lbv1.IPAddressPoolSpec{Addresses: []lbv1.PoolAddress{"198.51.100.0/28"}}}
		if err := env.Client.Create(tctx(t), hand); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = env.Client.Delete(context.Background(), hand) })
		patchStack(t, func(s *lbv1.LoadBalancerStack) { s.Spec.Pools = s.Spec.Pools[:1] })
		eventually(t, "pool back removed", func() error {
			if err := get(t, &lbv1.IPAddressPool{}, "", "back"); !apierrors.IsNotFound(err) {
				return fmt.Errorf("still there (%v)", err)
			}
			return nil
		})
		op.quiet(t)
		if err := get(t, &lbv1.IPAddressPool{}, "", "by-hand"); err != nil {
			t.Errorf("standalone pool: %v", err)
		}
		if err := get(t, &lbv1.IPAddressPool{}, "", "front"); err != nil {
			t.Errorf("pool front: %v", err)
		}
	})

	t.Run("invalid configuration makes the stack Degraded and changes nothing", func(t *testing.T) {
		// A peer naming a BFDProfile that does not exist (no webhook runs here).
		bad := &lbv1.BGPPeer{ObjectMeta: metav1.ObjectMeta{Name: "no-profile"}, Spec: lbv1.BGPPeerSpec{MyASN: 64500, PeerASN: 64501, PeerAddress: "192.0.2.200", BFDProfile: "missing"}}
		if err := env.Client.Create(tctx(t), bad); err != nil {
			t.Fatal(err)
		}
		patchStack(t, func(s *lbv1.LoadBalancerStack) { s.Spec.Speaker.Image = "registry.example/lbstack:v3" })
		s := wantCondition(t, lbv1.ConditionDegraded, metav1.ConditionTrue, controllers.ReasonInvalidConfiguration)
		if msg := condition(s, lbv1.ConditionDegraded).Message; !strings.Contains(msg, "BGPPeer[no-profile]") {
			t.Errorf("message does not name the object: %s", msg)
		}
		var ds appsv1.DaemonSet
		if err := get(t, &ds, ns, render.SpeakerName); err != nil {
			t.Fatal(err)
		}
		if img := ds.Spec.Template.Spec.Containers[0].Image; img != "registry.example/lbstack:v2" {
			t.Errorf("an invalid configuration was applied: image %s", img)
		}
		eventually(t, "Degraded event", func() error { return findEvent(t, controllers.ReasonInvalidConfiguration) })
		if err := env.Client.Delete(tctx(t), bad); err != nil {
			t.Fatal(err)
		}
		wantCondition(t, lbv1.ConditionDegraded, metav1.ConditionFalse, controllers.ReasonAsExpected)
		eventually(t, "image applied once valid", func() error {
			if err := get(t, &ds, ns, render.SpeakerName); err != nil {
				return err
			}
			if img := ds.Spec.Template.Spec.Containers[0].Image; img != "registry.example/lbstack:v3" {
				return fmt.Errorf("image %s", img)
			}
			return nil
		})
	})

	t.Run("a conflicting object that got in is ignored, the rest stays in force", func(t *testing.T) {
		overlap := &lbv1.IPAddressPool{ObjectMeta: metav1.ObjectMeta{Name: "overlapping"}, Spec: lbv1.IPAddressPoolSpec{Addresses: []lbv1.PoolAddress{"192.0.2.8/29"}}}
		if err := env.Client.Create(tctx(t), overlap); err != nil {
			t.Fatal(err)
		}
		patchStack(t, func(s *lbv1.LoadBalancerStack) { s.Spec.Speaker.Image = "registry.example/lbstack:v4" })
		s := wantCondition(t, lbv1.ConditionConflictsIgnored, metav1.ConditionTrue, controllers.ReasonConflictingObjects)
		if msg := condition(s, lbv1.ConditionConflictsIgnored).Message; !strings.Contains(msg, "IPAddressPool[overlapping] is ignored") {
			t.Errorf("message does not name the ignored pool: %s", msg)
		}
		wantCondition(t, lbv1.ConditionDegraded, metav1.ConditionFalse, controllers.ReasonAsExpected)
		var ds appsv1.DaemonSet
		eventually(t, "the change is applied", func() error {
			if err := get(t, &ds, ns, render.SpeakerName); err != nil {
				return err
			}
			if img := ds.Spec.Template.Spec.Containers[0].Image; img != "registry.example/lbstack:v4" {
				return fmt.Errorf("image %s", img)
			}
			return nil
		})
		eventually(t, "an event on the ignored pool", func() error {
			var l eventsv1.EventList
			if err := env.Client.List(tctx(t), &l); err != nil {
				return err
			}
			for _, e := range l.Items {
				if e.Regarding.Kind == "IPAddressPool" && e.Regarding.Name == "overlapping" && e.Reason == controllers.ReasonConflictingObjects {
					return nil
				}
			}
			return errors.New("none yet")
		})
		if err := env.Client.Delete(tctx(t), overlap); err != nil {
			t.Fatal(err)
		}
		eventually(t, "the condition goes", func() error {
			var st lbv1.LoadBalancerStack
			if err := get(t, &st, "", "lbstack"); err != nil {
				return err
			}
			if c := condition(&st, lbv1.ConditionConflictsIgnored); c != nil {
				return fmt.Errorf("still %s: %s", c.Status, c.Message)
			}
			return nil
		})
	})

	t.Run("a second stack is not in force", func(t *testing.T) {
		second := &lbv1.LoadBalancerStack{ObjectMeta: metav1.ObjectMeta{Name: "second"}}
		if err := env.Client.Create(tctx(t), second); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = env.Client.Delete(context.Background(), second) })
		eventually(t, "second stack NotInForce", func() error {
			var s lbv1.LoadBalancerStack
			if err := get(t, &s, "", "second"); err != nil {
				return err
			}
			if c := condition(&s, lbv1.ConditionDegraded); c == nil || c.Reason != controllers.ReasonNotInForce || !strings.Contains(c.Message, `"lbstack"`) {
				return fmt.Errorf("conditions %+v", s.Status.Conditions)
			}
			return nil
		})
	})

	t.Run("the memberlist key survives an operator restart", func(t *testing.T) {
		op.stop()
		op2 := startOperator(t)
		patchStack(t, func(s *lbv1.LoadBalancerStack) { metav1.SetMetaDataAnnotation(&s.ObjectMeta, "touched", "again") })
		op2.quiet(t)
		var s corev1.Secret
		if err := get(t, &s, ns, render.MemberlistSecretName); err != nil {
			t.Fatal(err)
		}
		if string(s.Data[render.MemberlistSecretKey]) != string(key) {
			t.Error("memberlist key changed")
		}
		if l := op2.writes.reset(); len(l) != 0 {
			t.Errorf("a restarted operator with nothing to do wrote %d times: %v", len(l), l)
		}
	})

	startOperator(t) // the restarted one stopped with its subtest
	keyOf := func(t *testing.T) ([]byte, string, error) {
		var s corev1.Secret
		var ds appsv1.DaemonSet
		if err := get(t, &s, ns, render.MemberlistSecretName); err != nil {
			return nil, "", err
		}
		if err := get(t, &ds, ns, render.SpeakerName); err != nil {
			return nil, "", err
		}
		return s.Data[render.MemberlistSecretKey], ds.Spec.Template.Annotations[render.MemberlistKeyHashAnnotation], nil
	}
	t.Run("a memberlist Secret that lost its labels keeps its key", func(t *testing.T) {
		err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
			var s corev1.Secret
			if err := get(t, &s, ns, render.MemberlistSecretName); err != nil {
				return err
			}
			s.Labels = nil
			return env.Client.Update(tctx(t), &s)
		})
		if err != nil {
			t.Fatal(err)
		}
		patchStack(t, func(s *lbv1.LoadBalancerStack) { metav1.SetMetaDataAnnotation(&s.ObjectMeta, "touched", "unlabelled") })
		eventually(t, "the Secret is labelled again", func() error {
			var s corev1.Secret
			if err := get(t, &s, ns, render.MemberlistSecretName); err != nil {
				return err
			}
			if len(s.Labels) == 0 {
				return errors.New("no labels")
			}
			return nil
		})
		got, hash, err := keyOf(t)
		if err != nil {
			t.Fatal(err)
		}
		if string(got) != string(key) {
			t.Error("the memberlist key was replaced when its Secret lost its labels")
		}
		if hash != render.KeyHash(key) {
			t.Errorf("speaker template key hash %q, want %q", hash, render.KeyHash(key))
		}
	})
	t.Run("a deleted memberlist Secret is replaced loudly and the speakers roll", func(t *testing.T) {
		del := func() error {
			return client.IgnoreNotFound(env.Client.Delete(tctx(t), &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: render.MemberlistSecretName}}))
		}
		if err := del(); err != nil {
			t.Fatal(err)
		}
		eventually(t, "a new key, and the speaker template carries its hash", func() error {
			got, hash, err := keyOf(t)
			switch {
			case err != nil:
				return err
			case string(got) == string(key):
				// A reconcile that read the Secret before the delete
				// re-applied it with the key it read (which keeps the
				// speakers in one cluster): delete it again, as a user
				// would, to reach a reconcile that finds it gone.
				if err := del(); err != nil {
					return err
				}
				return errors.New("the old key was re-applied by a reconcile already under way")
			case len(got) != render.MemberlistKeySize:
				return errors.New("no new key yet")
			case hash != render.KeyHash(got):
				return fmt.Errorf("template hash %q, want %q", hash, render.KeyHash(got))
			}
			return nil
		})
		eventually(t, "a Warning event says so", func() error { return findEvent(t, "MemberlistKeyReplaced") })
	})
}

func patchStack(t *testing.T, f func(*lbv1.LoadBalancerStack)) {
	t.Helper()
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		var s lbv1.LoadBalancerStack
		if err := get(t, &s, "", "lbstack"); err != nil {
			return err
		}
		f(&s)
		return env.Client.Update(tctx(t), &s)
	})
	if err != nil {
		t.Fatal(err)
	}
}

func findEvent(t *testing.T, reason string) error {
	var l eventsv1.EventList
	if err := env.Client.List(tctx(t), &l); err != nil {
		return err
	}
	for _, e := range l.Items {
		if e.Regarding.Kind == "LoadBalancerStack" && e.Reason == reason {
			return nil
		}
	}
	return fmt.Errorf("no event with reason %s among %d", reason, len(l.Items))
}

// TestOperatorRoleCoversChildren applies every rendered child as the
// operator's ServiceAccount, bound to the ClusterRole generated into
// config/rbac, so the API server's RBAC escalation check proves the
// operator may grant what the controller and the speakers need. (Not a dry
// run: a binding's check needs its role to exist.)
func TestOperatorRoleCoversChildren(t *testing.T) {
	ensureNamespace(t, "network")
	as, err := client.New(asOperator(t), client.Options{Scheme: env.Client.Scheme()})
	if err != nil {
		t.Fatal(err)
	}
	stack := testStack()
	stack.UID = "00000000-0000-0000-0000-00000000000a"
	objs := render.All(stack, render.Params{Namespace: ns, Image: "x", MemberlistKey: make([]byte, 32),
		PasswordSecrets: []types.NamespacedName{{Namespace: "network", Name: "tor-md5"}}})
	for _, o := range objs {
		u, err := render.Desired(o)
		if err != nil {
			t.Fatal(err)
		}
		if err := as.Apply(tctx(t), client.ApplyConfigurationFromUnstructured(u), client.FieldOwner(render.FieldOwner), client.ForceOwnership); err != nil {
			t.Errorf("the operator may not apply %s: %v", render.Key(o), err)
		}
	}
}

const operatorImage = "registry.example/mirror/lbstack@sha256:4f53cda18c2baa0c0354bb5f9a3ecbe5ed12ab4d8e11ba873c2f11161202b945"

// operatorPod creates a Pod like the operator's own (envtest runs no
// kubelet, but the object is all the operator reads): a sidecar first,
// the operator's container second, and a pull secret.
func operatorPod(t *testing.T, name string) *corev1.Pod {
	t.Helper()
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: corev1.PodSpec{
			Containers: []corev1.Container{
				{Name: "proxy", Image: "registry.example/proxy:v1"},
				{Name: operator.OperatorContainer, Image: operatorImage, Args: []string{"operator"}},
			},
			ImagePullSecrets: []corev1.LocalObjectReference{{Name: "mirror-pull"}},
		},
	}
	if err := env.Client.Create(tctx(t), pod); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = env.Client.Delete(context.Background(), pod) })
	return pod
}

// TestResolveWorkloadDefaults: the operator's own container image and its
// Pod's pull secrets, read as the operator's ServiceAccount with the
// generated namespaced Role; the fallback image otherwise.
func TestResolveWorkloadDefaults(t *testing.T) {
	ensureNamespace(t, ns)
	operatorPod(t, "lbstack-operator-5d9c7b")
	as, err := client.New(asOperator(t), client.Options{Scheme: env.Client.Scheme()})
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, "the binding takes effect", func() error {
		return as.Get(tctx(t), types.NamespacedName{Namespace: ns, Name: "lbstack-operator-5d9c7b"}, &corev1.Pod{})
	})
	if err := as.List(tctx(t), &corev1.PodList{}); !apierrors.IsForbidden(err) {
		t.Errorf("listing Pods as the operator: %v, want Forbidden (it may only get them in its namespace)", err)
	}

	log := testr.New(t)
	cases := map[string]struct {
		o    operator.Options
		want operator.WorkloadDefaults
	}{
		"own Pod": {operator.Options{Namespace: ns, PodName: "lbstack-operator-5d9c7b", Image: "fallback:v1"},
			operator.WorkloadDefaults{Image: operatorImage, ImagePullSecrets: []corev1.LocalObjectReference{{Name: "mirror-pull"}}}},
		"not in a Pod": {operator.Options{Namespace: ns, Image: "fallback:v1"}, operator.WorkloadDefaults{Image: "fallback:v1"}},
		"no such Pod":  {operator.Options{Namespace: ns, PodName: "gone", Image: "fallback:v1"}, operator.WorkloadDefaults{Image: "fallback:v1"}},
		"no permission in another namespace": {operator.Options{Namespace: "default", PodName: "lbstack-operator-5d9c7b", Image: "fallback:v1"},
			operator.WorkloadDefaults{Image: "fallback:v1"}},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			start := time.Now()
			got := tc.o.ResolveWorkloadDefaults(tctx(t), as, log)
			if d := cmp.Diff(tc.want, got); d != "" {
				t.Errorf("(-want +got):\n%s", d)
			}
			if took := time.Since(start); took > 5*time.Second {
				t.Errorf("took %s: a permanent error was retried", took)
			}
		})
	}
}

// TestWorkloadsUseTheOperatorsImage: the controller and the speakers run
// the operator Pod's image with its pull secrets, unless the stack names
// its own.
func TestWorkloadsUseTheOperatorsImage(t *testing.T) {
	ensureNamespace(t, ns)
	ensureNamespace(t, "network")
	operatorPod(t, "lbstack-operator-6f8d9c")
	o := operator.Options{Namespace: ns, PodName: "lbstack-operator-6f8d9c", Image: operator.DefaultImage}
	startOperatorWith(t, o.ResolveWorkloadDefaults(tctx(t), env.Client, testr.New(t)))
	stack := testStack()
	if err := env.Client.Create(tctx(t), stack); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = env.Client.Delete(context.Background(), stack) })

	type podOf struct {
		name string
		obj  client.Object
		pod  func() *corev1.PodSpec
	}
	ds, dep := &appsv1.DaemonSet{}, &appsv1.Deployment{}
	workloads := []podOf{
		{render.SpeakerName, ds, func() *corev1.PodSpec { return &ds.Spec.Template.Spec }},
		{render.ControllerName, dep, func() *corev1.PodSpec { return &dep.Spec.Template.Spec }},
	}
	want := func(what string, w podOf, image string, secrets ...string) {
		t.Helper()
		eventually(t, what, func() error {
			if err := get(t, w.obj, ns, w.name); err != nil {
				return err
			}
			if ref := metav1.GetControllerOf(w.obj); ref == nil || ref.UID != stack.UID {
				return fmt.Errorf("not (yet) the stack's: controller reference %v", ref)
			}
			pod := w.pod()
			var got []string
			for _, s := range pod.ImagePullSecrets {
				got = append(got, s.Name)
			}
			if pod.Containers[0].Image != image || !slices.Equal(got, secrets) {
				return fmt.Errorf("%s: image %s pull secrets %v, want %s %v", w.name, pod.Containers[0].Image, got, image, secrets)
			}
			return nil
		})
	}
	for _, w := range workloads {
		want("the operator's image", w, operatorImage, "mirror-pull")
	}

	patch := func(f func(*lbv1.LoadBalancerStack)) {
		t.Helper()
		err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
			var s lbv1.LoadBalancerStack
			if err := get(t, &s, "", stack.Name); err != nil {
				return err
			}
			f(&s)
			return env.Client.Update(tctx(t), &s)
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	patch(func(s *lbv1.LoadBalancerStack) {
		s.Spec.Speaker.Image = "registry.example/speaker:v2"
		s.Spec.Speaker.ImagePullSecrets = []corev1.LocalObjectReference{{Name: "speaker-pull"}}
		s.Spec.Controller.Image = "registry.example/controller:v2"
	})
	want("the stack's image and pull secrets", workloads[0], "registry.example/speaker:v2", "speaker-pull")
	want("the stack's image, the operator's pull secrets", workloads[1], "registry.example/controller:v2", "mirror-pull")

	patch(func(s *lbv1.LoadBalancerStack) {
		s.Spec.Speaker.Image, s.Spec.Speaker.ImagePullSecrets, s.Spec.Controller.Image = "", nil, ""
	})
	for _, w := range workloads {
		want("back to the operator's image", w, operatorImage, "mirror-pull")
	}
}
