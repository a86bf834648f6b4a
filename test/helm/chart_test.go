// Package helm_test tests the Helm chart charts/lbstack with the pinned helm
// (bin/helm-<version>, `make helm`; $HELM overrides): that it lints, and
// that what `helm template` renders, with the default values and with
// overrides, is the kustomize install (config/default) with the values
// applied and no other difference than the documented ones (labels, the
// image, two operator flags; docs/helm.md), uses the names and flags the
// operator expects for its webhook certificate, and keeps every object in
// the release namespace. It needs no cluster; TestInstall also installs,
// upgrades and uninstalls the chart with helm against a real kube-apiserver
// (the test control plane, `make envtest-assets`).
package helm_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	admissionregv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apiextv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"

	lbv1 "github.com/lbstack/lbstack/api/v1alpha1"
	"github.com/lbstack/lbstack/internal/cli"
	"github.com/lbstack/lbstack/internal/operator"
	"github.com/lbstack/lbstack/internal/testenv"
)

const (
	// helmVersion is the Makefile's HELM_VERSION.
	helmVersion  = "v3.22.0"
	chartDir     = "charts/lbstack"
	chartVersion = "0.1.0"
	appVersion   = "v0.1.0"
	// kustomizeNS is config/default's namespace.
	kustomizeNS = "lbstack-system"
	release     = "lbstack"
)

func path(rel string) string { return filepath.Join(testenv.RepoRoot(), filepath.FromSlash(rel)) }

// helmBinary returns the pinned helm, skipping (failing in CI) without it.
func helmBinary(t *testing.T) string {
	t.Helper()
	bin := os.Getenv("HELM")
	if bin == "" {
		bin = path("bin/helm-" + helmVersion)
	}
	if _, err := os.Stat(bin); err != nil {
		testenv.Skip(t, "%s not found (run `make helm`): %v", bin, err)
	}
	return bin
}

// runHelm runs helm with its configuration, cache and data in a temporary
// folder (no repositories, no plugins of the user's) and returns stdout.
func runHelm(t *testing.T, args ...string) ([]byte, error) {
	t.Helper()
	bin := helmBinary(t)
	home := t.TempDir()
	cmd := exec.Command(bin, args...)
	cmd.Dir = testenv.RepoRoot()
	cmd.Env = append(os.Environ(),
		"HELM_CONFIG_HOME="+filepath.Join(home, "config"),
		"HELM_CACHE_HOME="+filepath.Join(home, "cache"),
		"HELM_DATA_HOME="+filepath.Join(home, "data"),
		"KUBECONFIG="+filepath.Join(home, "no-kubeconfig"),
	)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.Bytes(), errors.New(err.Error() + ": " + stderr.String() + stdout.String())
	}
	return stdout.Bytes(), nil
}

// valuesFile writes values as a YAML file for -f.
func valuesFile(t *testing.T, values map[string]any) string {
	t.Helper()
	data, err := yaml.Marshal(values)
	if err != nil {
		t.Fatal(err)
	}
	f := filepath.Join(t.TempDir(), "values.yaml")
	if err := os.WriteFile(f, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return f
}

// rendered is the output of helm template, by kind and name.
type rendered []*unstructured.Unstructured

func (r rendered) find(kind, name string) *unstructured.Unstructured {
	for _, o := range r {
		if o.GetKind() == kind && o.GetName() == name {
			return o
		}
	}
	return nil
}

func (r rendered) ofKind(kind string) rendered {
	var out rendered
	for _, o := range r {
		if o.GetKind() == kind {
			out = append(out, o)
		}
	}
	return out
}

// get decodes the object of that kind and name into v strictly (a field
// the Go type does not know fails), failing when it is not rendered.
func (r rendered) get(t *testing.T, kind, name string, v any) {
	t.Helper()
	o := r.find(kind, name)
	if o == nil {
		t.Fatalf("no %s %s rendered", kind, name)
	}
	decodeStrict(t, o, v)
}

func decodeStrict(t *testing.T, o *unstructured.Unstructured, v any) {
	t.Helper()
	data, err := json.Marshal(o.Object)
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.UnmarshalStrict(data, v); err != nil {
		t.Fatalf("%s %s does not decode strictly: %v", o.GetKind(), o.GetName(), err)
	}
}

// parse splits a multi-document YAML stream into objects.
func parse(t *testing.T, data []byte) rendered {
	t.Helper()
	var out rendered
	r := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(data)))
	for {
		doc, err := r.Read()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatalf("reading helm output: %v", err)
		}
		var m map[string]any
		if err := yaml.Unmarshal(doc, &m); err != nil {
			t.Fatalf("helm output is not YAML: %v\n%s", err, doc)
		}
		if len(m) > 0 {
			out = append(out, &unstructured.Unstructured{Object: m})
		}
	}
}

// template renders the chart into namespace ns with the values.
func template(t *testing.T, ns string, values map[string]any) rendered {
	t.Helper()
	out, err := runHelm(t, "template", release, chartDir, "--namespace", ns, "--include-crds", "-f", valuesFile(t, values))
	if err != nil {
		t.Fatalf("helm template: %v", err)
	}
	return parse(t, out)
}

// kustomize renders config/default.
func kustomize(t *testing.T) rendered {
	t.Helper()
	return rendered(testenv.Kustomize(t, "config/default"))
}

// layer2Spec is the spec of the layer 2 sample, as stack.spec values.
func layer2Spec(t *testing.T) map[string]any {
	t.Helper()
	data, err := os.ReadFile(path("config/samples/lbstack_v1alpha1_loadbalancerstack_layer2.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var sample struct {
		Spec map[string]any `json:"spec"`
	}
	if err := yaml.Unmarshal(data, &sample); err != nil {
		t.Fatal(err)
	}
	return sample.Spec
}

// chartCase is one set of values and what the chart must render for it.
type chartCase struct {
	namespace string
	values    map[string]any
	// What the values ask for; zero values mean the chart's defaults,
	// which must be config/default's.
	image            string
	pullPolicy       corev1.PullPolicy
	pullSecrets      []corev1.LocalObjectReference
	resources        *corev1.ResourceRequirements
	nodeSelector     map[string]string
	tolerations      []corev1.Toleration
	affinity         *corev1.Affinity
	priorityClass    string
	replicas         *int32
	logLevel         string
	extraArgs        []string
	namespaceCreated bool
	stack            *lbv1.LoadBalancerStackSpec
}

func cases(t *testing.T) map[string]chartCase {
	resources := &corev1.ResourceRequirements{
		Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("50m"), corev1.ResourceMemory: resource.MustParse("100Mi")},
		Limits:   corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("500Mi")},
	}
	tolerations := []corev1.Toleration{{Key: "node-role.kubernetes.io/control-plane", Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoSchedule}}
	affinity := &corev1.Affinity{NodeAffinity: &corev1.NodeAffinity{RequiredDuringSchedulingIgnoredDuringExecution: &corev1.NodeSelector{
		NodeSelectorTerms: []corev1.NodeSelectorTerm{{MatchExpressions: []corev1.NodeSelectorRequirement{{Key: "kubernetes.io/arch", Operator: corev1.NodeSelectorOpIn, Values: []string{"amd64", "arm64"}}}}},
	}}}
	l2 := layer2Spec(t)
	var l2Spec lbv1.LoadBalancerStackSpec
	data, _ := json.Marshal(l2)
	if err := yaml.UnmarshalStrict(data, &l2Spec); err != nil {
		t.Fatalf("the layer 2 sample's spec: %v", err)
	}
	replicas := int32(2)
	return map[string]chartCase{
		"defaults": {namespace: kustomizeNS, values: map[string]any{}},
		"overrides in another namespace": {
			namespace: "lb",
			values: map[string]any{
				"image":            map[string]any{"repository": "registry.example/mirror/lbstack", "tag": "v0.1.0-rc.1", "pullPolicy": "Always"},
				"imagePullSecrets": []any{map[string]any{"name": "regcred"}},
				"operator": map[string]any{
					"replicas":          2,
					"resources":         resources,
					"nodeSelector":      map[string]any{"node-role.kubernetes.io/control-plane": ""},
					"tolerations":       tolerations,
					"affinity":          affinity,
					"priorityClassName": "system-cluster-critical",
					"logLevel":          "debug",
					"extraArgs":         []any{"--log-format=console"},
				},
				"namespace": map[string]any{"create": true},
				"stack":     map[string]any{"enabled": true, "name": "lab", "spec": l2},
			},
			image:            "registry.example/mirror/lbstack:v0.1.0-rc.1",
			pullPolicy:       corev1.PullAlways,
			pullSecrets:      []corev1.LocalObjectReference{{Name: "regcred"}},
			resources:        resources,
			nodeSelector:     map[string]string{"node-role.kubernetes.io/control-plane": ""},
			tolerations:      tolerations,
			affinity:         affinity,
			priorityClass:    "system-cluster-critical",
			replicas:         &replicas,
			logLevel:         "debug",
			extraArgs:        []string{"--log-format=console"},
			namespaceCreated: true,
			stack:            &l2Spec,
		},
		"digest and an empty stack": {
			namespace: "kube-lb",
			values: map[string]any{
				"image":            map[string]any{"digest": "sha256:" + strings.Repeat("ab", 32)},
				"imagePullSecrets": []any{"plain", map[string]any{"name": "object"}},
				"stack":            map[string]any{"enabled": true},
			},
			image:       "ghcr.io/lbstack/lbstack@sha256:" + strings.Repeat("ab", 32),
			pullSecrets: []corev1.LocalObjectReference{{Name: "plain"}, {Name: "object"}},
			stack:       &lbv1.LoadBalancerStackSpec{},
		},
	}
}

// TestLint runs helm lint --strict with every case's values.
func TestLint(t *testing.T) {
	for name, c := range cases(t) {
		t.Run(name, func(t *testing.T) {
			out, err := runHelm(t, "lint", "--strict", chartDir, "--namespace", c.namespace, "-f", valuesFile(t, c.values))
			if err != nil {
				t.Fatalf("helm lint: %v", err)
			}
			if !bytes.Contains(out, []byte("0 chart(s) failed")) {
				t.Errorf("helm lint: %s", out)
			}
		})
	}
}

// TestTemplate renders every case and checks the output.
func TestTemplate(t *testing.T) {
	want := kustomize(t)
	for name, c := range cases(t) {
		t.Run(name, func(t *testing.T) {
			got := template(t, c.namespace, c.values)
			t.Run("CRDs", func(t *testing.T) { checkCRDs(t, got, want) })
			t.Run("objects", func(t *testing.T) { checkObjects(t, c, got, want) })
			t.Run("namespace", func(t *testing.T) { checkNamespace(t, c, got) })
			t.Run("labels", func(t *testing.T) { checkLabels(t, got) })
			t.Run("RBAC", func(t *testing.T) { checkRBAC(t, c, got, want) })
			t.Run("Deployment", func(t *testing.T) { checkDeployment(t, c, got, want) })
			t.Run("webhooks", func(t *testing.T) { checkWebhooks(t, c, got, want) })
			t.Run("operator flags", func(t *testing.T) { checkOperatorFlags(t, c, got) })
			t.Run("stack", func(t *testing.T) { checkStack(t, c, got) })
		})
	}
}

// checkCRDs: the chart's CRDs are config/crd/bases', byte for byte, and
// the ones config/default installs.
func checkCRDs(t *testing.T, got, want rendered) {
	bases, err := filepath.Glob(path("config/crd/bases/*.yaml"))
	if err != nil || len(bases) == 0 {
		t.Fatalf("no CRDs in config/crd/bases: %v", err)
	}
	chartCRDs, _ := filepath.Glob(path(chartDir + "/crds/*.yaml"))
	if len(chartCRDs) != len(bases) {
		t.Errorf("%s/crds has %d files, config/crd/bases %d: run `make chart`", chartDir, len(chartCRDs), len(bases))
	}
	for _, f := range bases {
		base, _ := os.ReadFile(f)
		inChart, err := os.ReadFile(path(chartDir + "/crds/" + filepath.Base(f)))
		if err != nil || !bytes.Equal(base, inChart) {
			t.Errorf("%s/crds/%s differs from config/crd/bases: run `make chart` (%v)", chartDir, filepath.Base(f), err)
		}
		var crd apiextv1.CustomResourceDefinition
		if err := yaml.UnmarshalStrict(base, &crd); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		var r apiextv1.CustomResourceDefinition
		got.get(t, "CustomResourceDefinition", crd.Name, &r)
		if !equality.Semantic.DeepEqual(r, crd) {
			t.Errorf("helm renders CRD %s other than config/crd/bases has it", crd.Name)
		}
	}
	if n, m := len(got.ofKind("CustomResourceDefinition")), len(want.ofKind("CustomResourceDefinition")); n != m {
		t.Errorf("the chart installs %d CRDs, config/default %d", n, m)
	}
	// config/crd may not patch the bases: the chart takes them as they are.
	for _, w := range want.ofKind("CustomResourceDefinition") {
		g := got.find("CustomResourceDefinition", w.GetName())
		if g == nil {
			t.Errorf("config/default installs CRD %s, the chart does not", w.GetName())
			continue
		}
		if d := cmp.Diff(generic(w.Object["spec"]), generic(g.Object["spec"])); d != "" {
			t.Errorf("CRD %s: config/default's spec differs from config/crd/bases' (hack/chartgen copies the bases): (-want +got)\n%s", w.GetName(), d)
		}
	}
}

// checkObjects: the chart renders what config/default renders, by kind
// and name, and only the stack and the namespace besides when asked.
func checkObjects(t *testing.T, c chartCase, got, want rendered) {
	for _, o := range want {
		if o.GetKind() == "Namespace" {
			continue
		}
		if got.find(o.GetKind(), o.GetName()) == nil {
			t.Errorf("config/default renders %s %s, the chart does not (run `make chart`, or teach hack/chartgen and the chart this object)", o.GetKind(), o.GetName())
		}
	}
	for _, o := range got {
		switch {
		case o.GetKind() == "LoadBalancerStack" && c.stack != nil:
		case o.GetKind() == "Namespace" && c.namespaceCreated:
		case want.find(o.GetKind(), o.GetName()) == nil:
			t.Errorf("the chart renders %s %s, which config/default does not", o.GetKind(), o.GetName())
		}
	}
	if got.find("Secret", "lbstack-webhook-server-cert") != nil || len(got.ofKind("Secret")) > 0 {
		t.Errorf("the chart renders a Secret; the operator owns its certificate Secret, and helm upgrade would overwrite it")
	}
	// Every object decodes strictly into its Go type: no misspelt field.
	types := map[string]func() any{
		"Namespace": func() any { return &corev1.Namespace{} }, "ServiceAccount": func() any { return &corev1.ServiceAccount{} },
		"Service": func() any { return &corev1.Service{} }, "Deployment": func() any { return &appsv1.Deployment{} },
		"ClusterRole": func() any { return &rbacv1.ClusterRole{} }, "ClusterRoleBinding": func() any { return &rbacv1.ClusterRoleBinding{} },
		"Role": func() any { return &rbacv1.Role{} }, "RoleBinding": func() any { return &rbacv1.RoleBinding{} },
		"ValidatingWebhookConfiguration": func() any { return &admissionregv1.ValidatingWebhookConfiguration{} },
		"CustomResourceDefinition":       func() any { return &apiextv1.CustomResourceDefinition{} },
		"LoadBalancerStack":              func() any { return &lbv1.LoadBalancerStack{} },
	}
	for _, o := range got {
		newObj, ok := types[o.GetKind()]
		if !ok {
			t.Errorf("the chart renders a %s, which this test does not know", o.GetKind())
			continue
		}
		decodeStrict(t, o, newObj())
	}
}

// clusterScoped are the kinds without a namespace.
var clusterScoped = []string{"Namespace", "CustomResourceDefinition", "ClusterRole", "ClusterRoleBinding", "ValidatingWebhookConfiguration", "LoadBalancerStack"}

// checkNamespace: every namespaced object is explicitly in the release
// namespace (so `helm template | kubectl apply -f -` puts it there too), and
// every namespace the objects refer to (subjects, webhook services) is it.
func checkNamespace(t *testing.T, c chartCase, got rendered) {
	for _, o := range got {
		id := o.GetKind() + " " + o.GetName()
		if slices.Contains(clusterScoped, o.GetKind()) {
			if o.GetNamespace() != "" {
				t.Errorf("cluster-scoped %s has namespace %q", id, o.GetNamespace())
			}
		} else if o.GetNamespace() != c.namespace {
			t.Errorf("%s is in namespace %q, not the release namespace %q", id, o.GetNamespace(), c.namespace)
		}
		if o.GetKind() == "CustomResourceDefinition" {
			continue // schemas, checked against config/crd/bases
		}
		walk(o.Object["spec"], func(key string, v any) {
			if s, ok := v.(string); ok && key == "namespace" && s != c.namespace {
				t.Errorf("%s refers to namespace %q, not the release namespace %q", id, s, c.namespace)
			}
		})
		for _, field := range []string{"subjects", "webhooks"} {
			walk(o.Object[field], func(key string, v any) {
				if s, ok := v.(string); ok && key == "namespace" && s != c.namespace {
					t.Errorf("%s %s refer to namespace %q, not the release namespace %q", id, field, s, c.namespace)
				}
			})
		}
	}
	ns := got.ofKind("Namespace")
	if !c.namespaceCreated {
		if len(ns) > 0 {
			t.Errorf("namespace.create is false but the chart renders Namespace %s", ns[0].GetName())
		}
		return
	}
	if len(ns) != 1 || ns[0].GetName() != c.namespace {
		t.Fatalf("namespace.create renders %d Namespaces, want the release namespace %s", len(ns), c.namespace)
	}
	if l := ns[0].GetLabels()["pod-security.kubernetes.io/enforce"]; l != "privileged" {
		t.Errorf("Namespace %s has pod-security.kubernetes.io/enforce=%q, the speakers need privileged", c.namespace, l)
	}
	if p := ns[0].GetAnnotations()["helm.sh/resource-policy"]; p != "keep" {
		t.Errorf("Namespace %s has helm.sh/resource-policy %q; helm uninstall would delete the namespace and all in it", c.namespace, p)
	}
}

func walk(v any, fn func(key string, v any)) {
	switch v := v.(type) {
	case map[string]any:
		for k, x := range v {
			fn(k, x)
			walk(x, fn)
		}
	case []any:
		for _, x := range v {
			walk(x, fn)
		}
	}
}

// checkLabels: the Helm labels on every object the chart templates (the
// CRDs under crds/ are not templated: they are config/crd/bases').
func checkLabels(t *testing.T, got rendered) {
	want := map[string]string{
		"app.kubernetes.io/name":       "lbstack",
		"app.kubernetes.io/instance":   release,
		"app.kubernetes.io/version":    appVersion,
		"app.kubernetes.io/managed-by": "Helm",
		"app.kubernetes.io/part-of":    "lbstack",
		"helm.sh/chart":                "lbstack-" + chartVersion,
	}
	for _, o := range got {
		if o.GetKind() == "CustomResourceDefinition" {
			continue
		}
		labels := o.GetLabels()
		if o.GetKind() == "Deployment" {
			pod, _, _ := unstructured.NestedStringMap(o.Object, "spec", "template", "metadata", "labels")
			for k, v := range want {
				if pod[k] != v {
					t.Errorf("the pods of Deployment %s have %s=%q, want %q", o.GetName(), k, pod[k], v)
				}
			}
		}
		for k, v := range want {
			if labels[k] != v {
				t.Errorf("%s %s has label %s=%q, want %q", o.GetKind(), o.GetName(), k, labels[k], v)
			}
		}
	}
}

// checkRBAC: the ClusterRole has config/rbac/role.yaml's rules, and every
// RBAC object is config/default's, in the release namespace.
func checkRBAC(t *testing.T, c chartCase, got, want rendered) {
	data, err := os.ReadFile(path("config/rbac/role.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var generated rbacv1.ClusterRole
	for _, doc := range parse(t, data) {
		if doc.GetKind() == "ClusterRole" && doc.GetName() == "operator" {
			decodeStrict(t, doc, &generated)
		}
	}
	if len(generated.Rules) == 0 {
		t.Fatalf("config/rbac/role.yaml has no ClusterRole operator with rules")
	}
	var role rbacv1.ClusterRole
	got.get(t, "ClusterRole", "lbstack-operator", &role)
	if !equality.Semantic.DeepEqual(role.Rules, generated.Rules) {
		t.Errorf("ClusterRole lbstack-operator's rules differ from config/rbac/role.yaml's (run `make chart`): %s", diff(role.Rules, generated.Rules))
	}

	for _, w := range want {
		kind := w.GetKind()
		if !slices.Contains([]string{"ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding"}, kind) {
			continue
		}
		g := got.find(kind, w.GetName())
		if g == nil {
			continue // reported by checkObjects
		}
		body := func(o *unstructured.Unstructured, fromNS, toNS string) map[string]any {
			m := o.DeepCopy().Object
			delete(m, "metadata")
			if subjects, ok := m["subjects"].([]any); ok {
				for _, s := range subjects {
					if s := s.(map[string]any); s["namespace"] == fromNS {
						s["namespace"] = toNS
					}
				}
			}
			return m
		}
		if d := cmp.Diff(generic(body(w, kustomizeNS, c.namespace)), generic(body(g, "", ""))); d != "" {
			t.Errorf("%s %s differs from config/default's (run `make chart`): (-want +got)\n%s", kind, w.GetName(), d)
		}
	}
}

// checkDeployment: the operator Deployment is config/default's, but for
// the documented differences: the labels, the image and pull policy, the
// flags --default-image and --log-level (and operator.extraArgs) after
// config/default's, and the fields the values set (which are
// config/default's with the default values).
func checkDeployment(t *testing.T, c chartCase, got, want rendered) {
	var dep, kdep appsv1.Deployment
	got.get(t, "Deployment", "lbstack-operator", &dep)
	want.get(t, "Deployment", "lbstack-operator", &kdep)
	pod, kpod := &dep.Spec.Template.Spec, &kdep.Spec.Template.Spec
	if len(pod.Containers) != 1 || len(kpod.Containers) != 1 {
		t.Fatalf("the operator pod has %d containers, config/default's %d; want 1", len(pod.Containers), len(kpod.Containers))
	}
	ctr, kctr := &pod.Containers[0], &kpod.Containers[0]

	image := c.image
	if image == "" {
		image = "ghcr.io/lbstack/lbstack:" + appVersion
		if kctr.Image != image {
			t.Errorf("the chart's default image %s is not config/default's %s", image, kctr.Image)
		}
	}
	check := func(what string, got, want any) {
		t.Helper()
		if !equality.Semantic.DeepEqual(got, want) {
			t.Errorf("%s %s", what, diff(got, want))
		}
	}
	// The values, or config/default's where the case leaves the default.
	or := func(v, def any) any {
		if isZero(v) {
			return def
		}
		return v
	}
	check("image", ctr.Image, image)
	check("imagePullPolicy", ctr.ImagePullPolicy, or(c.pullPolicy, corev1.PullIfNotPresent))
	check("imagePullSecrets", pod.ImagePullSecrets, or(c.pullSecrets, kpod.ImagePullSecrets))
	check("resources", &ctr.Resources, or(c.resources, &kctr.Resources))
	check("nodeSelector", pod.NodeSelector, or(c.nodeSelector, kpod.NodeSelector))
	check("tolerations", pod.Tolerations, or(c.tolerations, kpod.Tolerations))
	check("affinity", pod.Affinity, or(c.affinity, kpod.Affinity))
	check("priorityClassName", pod.PriorityClassName, or(c.priorityClass, kpod.PriorityClassName))
	check("replicas", dep.Spec.Replicas, or(c.replicas, kdep.Spec.Replicas))
	logLevel := or(c.logLevel, "info").(string)
	added := append([]string{"--default-image=" + image, "--log-level=" + logLevel}, c.extraArgs...)
	check("args", ctr.Args, append(slices.Clone(kctr.Args), added...))

	// With those set to config/default's, the two are equal: args, env,
	// ports, probes, security contexts, volumes and mounts, selector.
	d := dep.DeepCopy()
	p, cc := &d.Spec.Template.Spec, &d.Spec.Template.Spec.Containers[0]
	cc.Image, cc.ImagePullPolicy, cc.Resources, cc.Args = kctr.Image, kctr.ImagePullPolicy, kctr.Resources, kctr.Args
	p.ImagePullSecrets, p.NodeSelector, p.Tolerations, p.Affinity, p.PriorityClassName = kpod.ImagePullSecrets, kpod.NodeSelector, kpod.Tolerations, kpod.Affinity, kpod.PriorityClassName
	d.Spec.Replicas = kdep.Spec.Replicas
	d.Spec.Template.Labels = kdep.Spec.Template.Labels
	if !equality.Semantic.DeepEqual(d.Spec, kdep.Spec) {
		t.Errorf("the operator Deployment differs from config/default's beyond the documented differences (run `make chart`; a new value needs this test and docs/helm.md): %s", diff(d.Spec, kdep.Spec))
	}
	for k, v := range kdep.Spec.Template.Labels {
		if dep.Spec.Template.Labels[k] != v {
			t.Errorf("the operator pods lack config/default's label %s=%s", k, v)
		}
	}
}

func isZero(v any) bool {
	switch v := v.(type) {
	case string:
		return v == ""
	case corev1.PullPolicy:
		return v == ""
	case []corev1.LocalObjectReference:
		return v == nil
	case *corev1.ResourceRequirements:
		return v == nil
	case map[string]string:
		return v == nil
	case []corev1.Toleration:
		return v == nil
	case *corev1.Affinity:
		return v == nil
	case *int32:
		return v == nil
	}
	panic("isZero: unexpected type")
}

// checkWebhooks: the webhooks are config/webhook/manifests.yaml's (as
// controller-gen generated them), served by the chart's Service in the
// release namespace, without a caBundle (the operator injects it; helm
// upgrade must not take it away), and the Service is config/default's.
func checkWebhooks(t *testing.T, c chartCase, got, want rendered) {
	var svc, ksvc corev1.Service
	got.get(t, "Service", "lbstack-webhook-service", &svc)
	want.get(t, "Service", "lbstack-webhook-service", &ksvc)
	if !equality.Semantic.DeepEqual(svc.Spec, ksvc.Spec) {
		t.Errorf("Service lbstack-webhook-service differs from config/default's: %s", diff(svc.Spec, ksvc.Spec))
	}
	var dep appsv1.Deployment
	got.get(t, "Deployment", "lbstack-operator", &dep)
	for k, v := range svc.Spec.Selector {
		if dep.Spec.Template.Labels[k] != v {
			t.Errorf("Service %s selects %s=%s, which the operator pods lack", svc.Name, k, v)
		}
	}

	data, err := os.ReadFile(path("config/webhook/manifests.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var generated admissionregv1.ValidatingWebhookConfiguration
	if err := yaml.UnmarshalStrict(data, &generated); err != nil {
		t.Fatal(err)
	}
	var vwc, kvwc admissionregv1.ValidatingWebhookConfiguration
	got.get(t, "ValidatingWebhookConfiguration", "lbstack-validating-webhook-configuration", &vwc)
	want.get(t, "ValidatingWebhookConfiguration", "lbstack-validating-webhook-configuration", &kvwc)
	if len(vwc.Webhooks) != len(generated.Webhooks) || len(vwc.Webhooks) == 0 {
		t.Fatalf("the chart has %d webhooks, config/webhook/manifests.yaml %d", len(vwc.Webhooks), len(generated.Webhooks))
	}
	for i, w := range vwc.Webhooks {
		ref := w.ClientConfig.Service
		if ref == nil || ref.Name != svc.Name || ref.Namespace != c.namespace {
			t.Errorf("webhook %s calls %v, want Service %s/%s", w.Name, ref, c.namespace, svc.Name)
		}
		if len(w.ClientConfig.CABundle) > 0 {
			t.Errorf("webhook %s has a caBundle; the operator injects it, and helm upgrade would reset it", w.Name)
		}
		// What controller-gen generated, with the release namespace's Service.
		g := generated.Webhooks[i].DeepCopy()
		g.ClientConfig.Service.Name, g.ClientConfig.Service.Namespace = svc.Name, c.namespace
		if !equality.Semantic.DeepEqual(w, *g) {
			t.Errorf("webhook %s differs from config/webhook/manifests.yaml's (run `make chart`): %s", w.Name, diff(w, g))
		}
		if i < len(kvwc.Webhooks) {
			k := kvwc.Webhooks[i].DeepCopy()
			if k.ClientConfig.Service != nil && k.ClientConfig.Service.Namespace == kustomizeNS {
				k.ClientConfig.Service.Namespace = c.namespace
			}
			if !equality.Semantic.DeepEqual(w, *k) {
				t.Errorf("webhook %s differs from config/default's: %s", w.Name, diff(w, k))
			}
		}
	}
}

// checkOperatorFlags parses the operator container's command line with the
// operator's own flags and checks that what it will look for is what the
// chart installs: the webhook Service it issues the certificate for, the
// configuration it injects the CA into, a writable certificate folder, the
// webhook port, its namespace, the default image.
func checkOperatorFlags(t *testing.T, c chartCase, got rendered) {
	var dep appsv1.Deployment
	got.get(t, "Deployment", "lbstack-operator", &dep)
	ctr := dep.Spec.Template.Spec.Containers[0]
	if len(ctr.Args) == 0 || ctr.Args[0] != "operator" {
		t.Fatalf("args %q do not run `lbstack operator`", ctr.Args)
	}
	// Flag defaults from this process's environment are not the Pod's.
	t.Setenv("POD_NAMESPACE", "")
	t.Setenv("POD_NAME", "")
	fs := flag.NewFlagSet("lbstack operator", flag.ContinueOnError)
	var logs cli.LogOptions
	logs.AddFlags(fs)
	var o operator.Options
	o.AddFlags(fs)
	if err := fs.Parse(ctr.Args[1:]); err != nil || fs.NArg() > 0 {
		t.Fatalf("lbstack operator would not start with args %q: %v %q", ctr.Args, err, fs.Args())
	}
	if _, err := logs.NewLogger(); err != nil {
		t.Errorf("lbstack operator would not start: %v", err)
	}
	if !o.CertRotation {
		t.Errorf("the chart turns the operator's certificate rotation off; nothing else issues the webhook certificate")
	}
	if got.find("Service", o.WebhookService) == nil {
		t.Errorf("the operator issues its certificate for Service %s, which the chart does not install", o.WebhookService)
	}
	if got.find("ValidatingWebhookConfiguration", o.WebhookConfiguration) == nil {
		t.Errorf("the operator injects its CA into ValidatingWebhookConfiguration %s, which the chart does not install", o.WebhookConfiguration)
	}
	if got.find("Secret", o.CertSecret) != nil {
		t.Errorf("the chart renders the operator's certificate Secret %s", o.CertSecret)
	}
	if o.Image != ctr.Image {
		t.Errorf("the operator deploys %s for the controller and the speakers, but runs %s", o.Image, ctr.Image)
	}
	var svc corev1.Service
	got.get(t, "Service", o.WebhookService, &svc)
	if !slices.ContainsFunc(ctr.Ports, func(p corev1.ContainerPort) bool {
		return p.ContainerPort == int32(o.WebhookPort) && len(svc.Spec.Ports) == 1 && svc.Spec.Ports[0].TargetPort.String() == p.Name
	}) {
		t.Errorf("Service %s (ports %v) does not reach the webhook server's port %d (container ports %v)", svc.Name, svc.Spec.Ports, o.WebhookPort, ctr.Ports)
	}
	// The certificate folder is a writable volume: the root file system is read-only.
	mounted := false
	for _, m := range ctr.VolumeMounts {
		if filepath.Clean(m.MountPath) != filepath.Clean(o.CertDir) || m.ReadOnly {
			continue
		}
		for _, v := range dep.Spec.Template.Spec.Volumes {
			if v.Name == m.Name && v.EmptyDir != nil {
				mounted = true
			}
		}
	}
	if !mounted {
		t.Errorf("the operator writes its certificate to %s, which is no writable emptyDir mount (%v)", o.CertDir, ctr.VolumeMounts)
	}
	fromPod := func(name, field string) bool {
		return slices.ContainsFunc(ctr.Env, func(e corev1.EnvVar) bool {
			return e.Name == name && e.ValueFrom != nil && e.ValueFrom.FieldRef != nil && e.ValueFrom.FieldRef.FieldPath == field
		})
	}
	if o.Namespace == "" && !fromPod("POD_NAMESPACE", "metadata.namespace") {
		t.Errorf("the operator learns its namespace neither from --namespace nor from POD_NAMESPACE (env %v)", ctr.Env)
	}
	// It reads its own Pod for the image and pull secrets of the
	// controller and the speakers (with --default-image as the fallback).
	if o.PodName == "" && !fromPod("POD_NAME", "metadata.name") {
		t.Errorf("the operator learns its Pod's name neither from --pod-name nor from POD_NAME (env %v)", ctr.Env)
	}
}

// checkStack: a LoadBalancerStack only with stack.enabled, with stack.spec
// as it is, decoding strictly into the Go type.
func checkStack(t *testing.T, c chartCase, got rendered) {
	stacks := got.ofKind("LoadBalancerStack")
	if c.stack == nil {
		if len(stacks) > 0 {
			t.Errorf("stack.enabled is false but the chart renders LoadBalancerStack %s", stacks[0].GetName())
		}
		return
	}
	if len(stacks) != 1 {
		t.Fatalf("stack.enabled renders %d LoadBalancerStacks, want 1", len(stacks))
	}
	var s lbv1.LoadBalancerStack
	decodeStrict(t, stacks[0], &s)
	if s.APIVersion != lbv1.GroupVersion.String() {
		t.Errorf("stack apiVersion %s, want %s", s.APIVersion, lbv1.GroupVersion)
	}
	name, _, _ := unstructured.NestedString(c.values, "stack", "name")
	if name == "" {
		name = "lbstack"
	}
	if s.Name != name {
		t.Errorf("stack named %q, want %q", s.Name, name)
	}
	if !equality.Semantic.DeepEqual(s.Spec, *c.stack) {
		t.Errorf("the stack's spec is not stack.spec: %s", diff(s.Spec, *c.stack))
	}
}

// TestRefused checks the chart refuses, at render time, what cannot work.
func TestRefused(t *testing.T) {
	for name, tc := range map[string]struct {
		args []string
		want string
	}{
		"unknown log level":     {[]string{"--set", "operator.logLevel=verbose"}, "operator.logLevel"},
		"Kubernetes below 1.30": {[]string{"--kube-version", "1.29.0"}, "kubeVersion"},
		"stack without a name":  {[]string{"--set", "stack.enabled=true", "--set", "stack.name="}, "stack.name is required"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := runHelm(t, append([]string{"template", release, chartDir, "-n", kustomizeNS}, tc.args...)...)
			switch {
			case err == nil:
				t.Errorf("helm template succeeds, want an error about %s", tc.want)
			case !strings.Contains(err.Error(), tc.want):
				t.Errorf("helm template fails with %v, want an error about %s", err, tc.want)
			}
		})
	}
}

// diff shows how got differs from want (-want +got), on their JSON forms
// (resource.Quantity and friends compare by value there).
func diff(got, want any) string {
	return "(-want +got)\n" + cmp.Diff(generic(want), generic(got))
}

// generic is v's JSON form (numbers all float64).
func generic(v any) any {
	data, err := json.Marshal(v)
	if err != nil {
		return err.Error()
	}
	var out any
	if err := json.Unmarshal(data, &out); err != nil {
		return err.Error()
	}
	return out
}
