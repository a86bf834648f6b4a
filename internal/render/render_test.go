package render

import (
	"flag"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	lbv1 "github.com/lbstack/lbstack/api/v1alpha1"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/")

func sample(t *testing.T, name string) *lbv1.LoadBalancerStack {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "config", "samples", name))
	if err != nil {
		t.Fatal(err)
	}
	var s lbv1.LoadBalancerStack
	if err := yaml.UnmarshalStrict(b, &s); err != nil {
		t.Fatal(err)
	}
	s.UID = "00000000-0000-0000-0000-000000000001"
	return &s
}

func fullStack() *lbv1.LoadBalancerStack {
	s := &lbv1.LoadBalancerStack{
		ObjectMeta: metav1.ObjectMeta{Name: "full", UID: "00000000-0000-0000-0000-000000000002"},
		Spec: lbv1.LoadBalancerStackSpec{
			LoadBalancerClass: "lbstack.io/full",
			Speaker: lbv1.SpeakerSpec{
				WorkloadSpec: lbv1.WorkloadSpec{
					Image:        "registry.example/lbstack:v9",
					LogLevel:     lbv1.LogLevelDebug,
					NodeSelector: map[string]string{"lbstack.io/speaker": "true"},
					Tolerations:  []corev1.Toleration{{Key: "dedicated", Operator: corev1.TolerationOpEqual, Value: "edge", Effect: corev1.TaintEffectNoExecute}},
					Resources: &corev1.ResourceRequirements{
						Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("50m"), corev1.ResourceMemory: resource.MustParse("100Mi")},
						Limits:   corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("150Mi")},
					},
				},
				MemberlistBindPort: 7950,
				FailureDetection: lbv1.FailureDetectionSpec{
					HeartbeatInterval: metav1.Duration{Duration: 75 * time.Millisecond},
					MissedHeartbeats:  3,
					ProbeInterval:     metav1.Duration{Duration: 500 * time.Millisecond},
					ProbeTimeout:      metav1.Duration{Duration: 200 * time.Millisecond},
				},
			},
			Controller: lbv1.ControllerSpec{
				WorkloadSpec: lbv1.WorkloadSpec{LogLevel: lbv1.LogLevelWarn, NodeSelector: map[string]string{"node-role.kubernetes.io/control-plane": ""}},
				Replicas:     ptr.To[int32](3),
			},
			Pools: []lbv1.InlineIPAddressPool{{
				InlineMeta:        lbv1.InlineMeta{Name: "v6", Labels: map[string]string{"tier": "edge", LabelStack: "overridden"}},
				IPAddressPoolSpec: lbv1.IPAddressPoolSpec{Addresses: []lbv1.PoolAddress{"2001:db8:1::/64", "192.0.2.10-192.0.2.20"}},
			}},
			BGPPeers: []lbv1.InlineBGPPeer{{
				InlineMeta:  lbv1.InlineMeta{Name: "tor"},
				BGPPeerSpec: lbv1.BGPPeerSpec{MyASN: 64512, PeerASN: 64513, PeerAddress: "2001:db8::1", PasswordSecret: &lbv1.SecretReference{Name: "tor-password", Key: "password"}},
			}},
			L2Advertisements: []lbv1.InlineL2Advertisement{{InlineMeta: lbv1.InlineMeta{Name: "all"}}},
		},
	}
	return s
}

func pullSecretsStack(t *testing.T) *lbv1.LoadBalancerStack {
	s := sample(t, "lbstack_v1alpha1_loadbalancerstack_layer2.yaml")
	s.Spec.Speaker.ImagePullSecrets = []corev1.LocalObjectReference{{Name: "speaker-registry"}}
	return s
}

func pullSecretsParams() Params {
	p := params()
	p.Image = "registry.example/mirror/lbstack:v0.1.0"
	p.ImagePullSecrets = []corev1.LocalObjectReference{{Name: "operator-registry"}, {Name: "operator-registry-2"}}
	return p
}

func params() Params {
	return Params{
		Namespace:     "lbstack-system",
		Image:         "ghcr.io/lbstack/lbstack:v0.1.0",
		MemberlistKey: []byte("0123456789abcdef0123456789abcdef"),
	}
}

// TestGolden renders every case and compares each object with its golden
// file; -update rewrites them (and removes files no object produces).
func TestGolden(t *testing.T) {
	full := params()
	full.PasswordSecrets = []types.NamespacedName{
		{Name: "tor-password"},
		{Namespace: "network", Name: "spine-b"},
		{Namespace: "network", Name: "spine-a"},
		{Namespace: "network", Name: "spine-a"},
	}
	cases := map[string]struct {
		stack *lbv1.LoadBalancerStack
		p     Params
	}{
		"layer2": {sample(t, "lbstack_v1alpha1_loadbalancerstack_layer2.yaml"), params()},
		"bgp":    {sample(t, "lbstack_v1alpha1_loadbalancerstack_bgp.yaml"), params()},
		"full":   {fullStack(), full},
		// The operator's pull secrets for the controller, the stack's own
		// for the speakers.
		"pull-secrets": {pullSecretsStack(t), pullSecretsParams()},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			dir := filepath.Join("testdata", name)
			objs := All(tc.stack, tc.p)
			want := map[string]bool{}
			for _, o := range objs {
				file := goldenName(o)
				if want[file] {
					t.Fatalf("two objects render to %s", file)
				}
				want[file] = true
				u, err := Desired(o)
				if err != nil {
					t.Fatal(err)
				}
				got, err := yaml.Marshal(u.Object)
				if err != nil {
					t.Fatal(err)
				}
				path := filepath.Join(dir, file)
				if *update {
					if err := os.MkdirAll(dir, 0o755); err != nil {
						t.Fatal(err)
					}
					if err := os.WriteFile(path, got, 0o644); err != nil {
						t.Fatal(err)
					}
					continue
				}
				golden, err := os.ReadFile(path)
				if err != nil {
					t.Fatalf("%v (run go test ./internal/render -update)", err)
				}
				if d := cmp.Diff(string(golden), string(got)); d != "" {
					t.Errorf("%s differs from its golden file (-golden +rendered):\n%s", path, d)
				}
			}
			entries, _ := os.ReadDir(dir)
			for _, e := range entries {
				if want[e.Name()] {
					continue
				}
				if *update {
					_ = os.Remove(filepath.Join(dir, e.Name()))
					continue
				}
				t.Errorf("%s: golden file of an object that is no longer rendered", filepath.Join(dir, e.Name()))
			}
		})
	}
}

func goldenName(o client.Object) string {
	kind := strings.ToLower(o.GetObjectKind().GroupVersionKind().Kind)
	if o.GetNamespace() != "" {
		return kind + "_" + o.GetNamespace() + "_" + o.GetName() + ".yaml"
	}
	return kind + "_" + o.GetName() + ".yaml"
}

// TestPure: rendering twice gives equal objects, and rendering does not
// alias the stack (mutating an output leaves the next render unchanged).
func TestPure(t *testing.T) {
	s := fullStack()
	a := All(s, params())
	for _, o := range a {
		o.GetLabels()["mutated"] = "yes"
	}
	b := All(s, params())
	for _, o := range b {
		if _, ok := o.GetLabels()["mutated"]; ok {
			t.Fatalf("%s: rendering shares maps with an earlier result", Key(o))
		}
	}
	if s.Spec.Pools[0].Labels["mutated"] != "" {
		t.Fatal("rendering mutated the stack")
	}
}

// TestChildrenOwnedAndLabelled: every child carries the controller
// reference to the stack and the labels the operator selects by; inline
// labels are kept but cannot override the operator's.
func TestChildrenOwnedAndLabelled(t *testing.T) {
	s := fullStack()
	for _, o := range All(s, params()) {
		refs := o.GetOwnerReferences()
		if len(refs) != 1 || refs[0].UID != s.UID || refs[0].Kind != "LoadBalancerStack" || !ptr.Deref(refs[0].Controller, false) {
			t.Errorf("%s: owner references %v", Key(o), refs)
		}
		if o.GetLabels()[LabelStack] != s.Name || o.GetLabels()[LabelManagedBy] != FieldOwner {
			t.Errorf("%s: labels %v", Key(o), o.GetLabels())
		}
	}
	pool := Configuration(s)[0]
	if pool.GetLabels()["tier"] != "edge" {
		t.Errorf("inline label lost: %v", pool.GetLabels())
	}
}

// TestSpeakerLeastPrivilege: the speaker can never write a Service, reads
// Secrets only by name, and runs with only the capabilities it needs.
func TestSpeakerLeastPrivilege(t *testing.T) {
	p := params()
	p.PasswordSecrets = []types.NamespacedName{{Name: "a"}, {Namespace: "other", Name: "b"}}
	for _, r := range SpeakerRules() {
		for _, res := range r.Resources {
			if strings.HasPrefix(res, "services") && slices.ContainsFunc(r.Verbs, isWrite) {
				t.Errorf("speaker may %v %s", r.Verbs, res)
			}
			if res == "secrets" {
				t.Errorf("speaker ClusterRole grants secrets: %v", r)
			}
		}
	}
	roles := 0
	for _, o := range RBAC(fullStack(), p) {
		r, ok := o.(*rbacv1.Role)
		if !ok || r.Name != SpeakerSecretsRoleName {
			continue
		}
		roles++
		for _, rule := range r.Rules {
			if len(rule.ResourceNames) == 0 || !slices.Equal(rule.Verbs, []string{"get"}) {
				t.Errorf("%s/%s: secrets rule not restricted: %v", r.Namespace, r.Name, rule)
			}
		}
	}
	if roles != 2 {
		t.Errorf("want a secrets Role in each of 2 namespaces, got %d", roles)
	}
	ds := SpeakerDaemonSet(fullStack(), p)
	sc := ds.Spec.Template.Spec.Containers[0].SecurityContext
	// Root, or the added capabilities are not effective; NET_RAW only.
	want := &corev1.SecurityContext{
		RunAsUser:                ptr.To[int64](0),
		RunAsGroup:               ptr.To[int64](0),
		RunAsNonRoot:             ptr.To(false),
		AllowPrivilegeEscalation: ptr.To(false),
		ReadOnlyRootFilesystem:   ptr.To(true),
		Capabilities:             &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}, Add: []corev1.Capability{"NET_RAW"}},
	}
	if d := cmp.Diff(want, sc); d != "" {
		t.Errorf("speaker security context (-want +got):\n%s", d)
	}
	if psc := ds.Spec.Template.Spec.SecurityContext; psc.RunAsUser != nil || psc.RunAsNonRoot != nil || psc.SeccompProfile == nil || psc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
		t.Errorf("speaker pod security context %+v", psc)
	}
}

// TestControllerRestricted: the controller stays under the restricted Pod
// Security profile: non-root, no capabilities, no escalation.
func TestControllerRestricted(t *testing.T) {
	d := ControllerDeployment(fullStack(), params())
	pod := d.Spec.Template.Spec
	if !ptr.Deref(pod.SecurityContext.RunAsNonRoot, false) || pod.SecurityContext.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
		t.Errorf("pod security context %+v", pod.SecurityContext)
	}
	sc := pod.Containers[0].SecurityContext
	if sc.RunAsUser != nil || ptr.Deref(sc.AllowPrivilegeEscalation, true) || !ptr.Deref(sc.ReadOnlyRootFilesystem, false) ||
		!slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) || len(sc.Capabilities.Add) != 0 {
		t.Errorf("container security context %+v", sc)
	}
}

// TestImageAndPullSecrets: a workload's own image and pull secrets win;
// without them it gets the defaults (the operator's own), each workload on
// its own.
func TestImageAndPullSecrets(t *testing.T) {
	p := params()
	p.Image = "registry.example/mirror/lbstack@sha256:0123"
	p.ImagePullSecrets = []corev1.LocalObjectReference{{Name: "operator-pull"}}
	s := sample(t, "lbstack_v1alpha1_loadbalancerstack_layer2.yaml")
	s.Spec.Speaker.Image = "registry.example/speaker:v2"
	s.Spec.Speaker.ImagePullSecrets = []corev1.LocalObjectReference{{Name: "speaker-pull"}, {Name: "speaker-pull-2"}}
	ds := SpeakerDaemonSet(s, p)
	dep := ControllerDeployment(s, p)
	if img := ds.Spec.Template.Spec.Containers[0].Image; img != "registry.example/speaker:v2" {
		t.Errorf("speaker image %s", img)
	}
	if d := cmp.Diff(s.Spec.Speaker.ImagePullSecrets, ds.Spec.Template.Spec.ImagePullSecrets); d != "" {
		t.Errorf("speaker pull secrets (-want +got):\n%s", d)
	}
	if img := dep.Spec.Template.Spec.Containers[0].Image; img != p.Image {
		t.Errorf("controller image %s, want the default %s", img, p.Image)
	}
	if d := cmp.Diff(p.ImagePullSecrets, dep.Spec.Template.Spec.ImagePullSecrets); d != "" {
		t.Errorf("controller pull secrets (-want +got):\n%s", d)
	}
	// The rendered lists are copies: editing them leaves the inputs alone.
	ds.Spec.Template.Spec.ImagePullSecrets[0].Name = "changed"
	dep.Spec.Template.Spec.ImagePullSecrets[0].Name = "changed"
	if s.Spec.Speaker.ImagePullSecrets[0].Name != "speaker-pull" || p.ImagePullSecrets[0].Name != "operator-pull" {
		t.Error("rendering shares the pull secret lists with its inputs")
	}
	if got := SpeakerDaemonSet(sample(t, "lbstack_v1alpha1_loadbalancerstack_layer2.yaml"), params()).Spec.Template.Spec.ImagePullSecrets; got != nil {
		t.Errorf("pull secrets %v without any given", got)
	}
}

func isWrite(v string) bool { return v != "get" && v != "list" && v != "watch" }

// TestDefaultsMatchCRD: a stack without the API server's defaulting
// renders the same workloads as one with the CRD defaults filled in.
func TestDefaultsMatchCRD(t *testing.T) {
	bare := &lbv1.LoadBalancerStack{ObjectMeta: metav1.ObjectMeta{Name: "x"}}
	defaulted := bare.DeepCopy()
	defaulted.Spec.Speaker.MemberlistBindPort = 7946
	defaulted.Spec.Speaker.LogLevel = lbv1.LogLevelInfo
	defaulted.Spec.Speaker.FailureDetection = lbv1.FailureDetectionSpec{
		HeartbeatInterval: metav1.Duration{Duration: 100 * time.Millisecond}, MissedHeartbeats: 4,
		ProbeInterval: metav1.Duration{Duration: time.Second}, ProbeTimeout: metav1.Duration{Duration: 500 * time.Millisecond},
	}
	defaulted.Spec.Controller.Replicas = ptr.To[int32](2)
	defaulted.Spec.Controller.LogLevel = lbv1.LogLevelInfo
	if d := cmp.Diff(SpeakerDaemonSet(defaulted, params()), SpeakerDaemonSet(bare, params())); d != "" {
		t.Errorf("speaker differs:\n%s", d)
	}
	if d := cmp.Diff(ControllerDeployment(defaulted, params()), ControllerDeployment(bare, params())); d != "" {
		t.Errorf("controller differs:\n%s", d)
	}
}

// TestKindsCoverRendered: pruning lists the kinds in Kinds(); a kind
// rendered but missing there would never be pruned.
func TestKindsCoverRendered(t *testing.T) {
	p := params()
	p.PasswordSecrets = []types.NamespacedName{{Namespace: "network", Name: "a"}}
	s := fullStack()
	s.Spec.BGPAdvertisements = []lbv1.InlineBGPAdvertisement{{InlineMeta: lbv1.InlineMeta{Name: "b"}}}
	s.Spec.BFDProfiles = []lbv1.InlineBFDProfile{{InlineMeta: lbv1.InlineMeta{Name: "f"}}}
	s.Spec.Communities = []lbv1.InlineCommunity{{InlineMeta: lbv1.InlineMeta{Name: "c"}}}
	for _, o := range All(s, p) {
		if gvk := o.GetObjectKind().GroupVersionKind(); !slices.Contains(Kinds(), gvk) {
			t.Errorf("%s is rendered but not in Kinds()", gvk)
		}
	}
}

// TestMetricsServedSecurely: both workloads serve their metrics over HTTPS
// to authenticated, authorized callers only, and their ClusterRoles let
// them ask the API server about those callers.
func TestMetricsServedSecurely(t *testing.T) {
	s, p := fullStack(), params()
	for name, args := range map[string][]string{
		ControllerName: ControllerDeployment(s, p).Spec.Template.Spec.Containers[0].Args,
		SpeakerName:    SpeakerDaemonSet(s, p).Spec.Template.Spec.Containers[0].Args,
	} {
		if !slices.Contains(args, "--metrics-secure=true") {
			t.Errorf("%s does not run with --metrics-secure=true: %q", name, args)
		}
	}
	for name, rules := range map[string][]rbacv1.PolicyRule{ControllerName: ControllerRules(), SpeakerName: SpeakerRules()} {
		for _, want := range MetricsAuthRules() {
			if !slices.ContainsFunc(rules, func(r rbacv1.PolicyRule) bool { return cmp.Equal(r, want) }) {
				t.Errorf("ClusterRole %s lacks %v", name, want)
			}
		}
	}
}
