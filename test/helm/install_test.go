package helm_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr/testr"
	admissionregv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	lbv1 "github.com/lbstack/lbstack/api/v1alpha1"
	"github.com/lbstack/lbstack/internal/certs"
	"github.com/lbstack/lbstack/internal/testenv"
)

// cluster is a real kube-apiserver (no kubelet: the operator does not run)
// and a kubeconfig for helm.
type cluster struct {
	env        *testenv.Env
	kubeconfig string
}

func startCluster(t *testing.T) *cluster {
	t.Helper()
	helmBinary(t)
	env, err := testenv.Start(testenv.Options{})
	if err == testenv.ErrNoAssets {
		testenv.Skip(t, "%v", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = env.Stop() })
	user, err := env.Environment().ControlPlane.AddUser(envtest.User{Name: "helm", Groups: []string{"system:masters"}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	kc, err := user.KubeConfig()
	if err != nil {
		t.Fatal(err)
	}
	f := filepath.Join(t.TempDir(), "kubeconfig")
	if err := os.WriteFile(f, kc, 0o600); err != nil {
		t.Fatal(err)
	}
	return &cluster{env: env, kubeconfig: f}
}

func (c *cluster) helm(t *testing.T, args ...string) (string, error) {
	t.Helper()
	out, err := runHelm(t, append(args, "--kubeconfig", c.kubeconfig)...)
	return string(out), err
}

// copyChart copies the chart with another version, as the next release of
// the chart would be (every object's helm.sh/chart label changes, so helm
// upgrade patches every object).
func copyChart(t *testing.T, version string) string {
	t.Helper()
	dst := filepath.Join(t.TempDir(), "lbstack")
	if err := os.CopyFS(dst, os.DirFS(path(chartDir))); err != nil {
		t.Fatal(err)
	}
	meta := filepath.Join(dst, "Chart.yaml")
	data, err := os.ReadFile(meta)
	if err != nil {
		t.Fatal(err)
	}
	data = bytes.Replace(data, []byte("\nversion: "+chartVersion+"\n"), []byte("\nversion: "+version+"\n"), 1)
	if err := os.WriteFile(meta, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return dst
}

// TestInstall installs, upgrades and uninstalls the chart with helm in a
// real API server (one after the other: the chart is once per cluster).
func TestInstall(t *testing.T) {
	c := startCluster(t)
	t.Run("upgrade keeps the operator's certificate", func(t *testing.T) { upgradeKeepsCertificate(t, c) })
	t.Run("stack on first install", func(t *testing.T) { installWithStack(t, c) })
}

// upgradeKeepsCertificate installs the chart, lets the operator's
// certificate rotator (the real one) issue the certificate and inject its
// CA, upgrades to a new chart version with new values, and checks that helm
// left the injected CA and the certificate Secret alone; then uninstalls.
func upgradeKeepsCertificate(t *testing.T, c *cluster) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	const ns = "lb"
	kube := c.env.Client

	// namespace.create with the helm CLI adopts a namespace that exists
	// (helm stores the release in it, so it must exist first): refused
	// without --take-ownership, taken and labelled with it (docs/helm.md).
	if err := kube.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
		t.Fatal(err)
	}
	if out, err := c.helm(t, "install", release, chartDir, "-n", ns, "--set", "namespace.create=true"); err == nil || !strings.Contains(err.Error(), "cannot be imported") {
		t.Fatalf("helm install --set namespace.create=true into an existing namespace: %v\n%s; want a refusal to import the namespace", err, out)
	}
	if out, err := c.helm(t, "install", release, chartDir, "-n", ns, "--take-ownership", "--set", "namespace.create=true"); err != nil {
		t.Fatalf("helm install --take-ownership: %v\n%s", err, out)
	} else if strings.Contains(out, "WARNING") {
		t.Errorf("helm install warns though the chart labels the namespace:\n%s", out)
	}
	var namespace corev1.Namespace
	if err := kube.Get(ctx, types.NamespacedName{Name: ns}, &namespace); err != nil {
		t.Fatal(err)
	}
	if namespace.Labels["pod-security.kubernetes.io/enforce"] != "privileged" || namespace.Labels["app.kubernetes.io/managed-by"] != "Helm" {
		t.Errorf("namespace %s labels %v: want it privileged and managed by Helm", ns, namespace.Labels)
	}

	// The operator's first start: the real rotator, with the names and
	// folder the chart's operator flags give it (checked by TestTemplate).
	rot := &certs.Rotator{
		Client:       kube,
		Secret:       types.NamespacedName{Namespace: ns, Name: "lbstack-webhook-server-cert"},
		CertDir:      t.TempDir(),
		DNSNames:     []string{"lbstack-webhook-service." + ns + ".svc"},
		Webhooks:     []string{"lbstack-validating-webhook-configuration"},
		CAValidity:   time.Hour,
		CertValidity: time.Hour,
		Log:          testr.New(t),
	}
	if err := rot.Sync(ctx); err != nil {
		t.Fatalf("issuing and injecting the webhook certificate: %v", err)
	}
	var secret corev1.Secret
	if err := kube.Get(ctx, rot.Secret, &secret); err != nil {
		t.Fatal(err)
	}
	checkCA := func(when string) {
		t.Helper()
		var vwc admissionregv1.ValidatingWebhookConfiguration
		if err := kube.Get(ctx, types.NamespacedName{Name: rot.Webhooks[0]}, &vwc); err != nil {
			t.Fatal(err)
		}
		if len(vwc.Webhooks) == 0 {
			t.Fatalf("%s: no webhooks", when)
		}
		for _, w := range vwc.Webhooks {
			if !bytes.Equal(w.ClientConfig.CABundle, secret.Data[certs.KeyCACert]) {
				t.Errorf("%s: webhook %s has lost the CA the operator injected", when, w.Name)
			}
		}
		var now corev1.Secret
		if err := kube.Get(ctx, rot.Secret, &now); err != nil {
			t.Fatalf("%s: the operator's certificate Secret: %v", when, err)
		}
		if !bytes.Equal(now.Data[certs.KeyCACert], secret.Data[certs.KeyCACert]) || !bytes.Equal(now.Data[certs.KeyCert], secret.Data[certs.KeyCert]) {
			t.Errorf("%s: the operator's certificate Secret changed", when)
		}
	}
	checkCA("after install")

	// A new chart version with new values: helm patches every object, the
	// ValidatingWebhookConfiguration too.
	next := copyChart(t, "0.1.1")
	if out, err := c.helm(t, "upgrade", release, next, "-n", ns, "--reuse-values", "--set", "operator.replicas=2", "--set", "operator.logLevel=debug"); err != nil {
		t.Fatalf("helm upgrade: %v\n%s", err, out)
	}
	var vwc admissionregv1.ValidatingWebhookConfiguration
	if err := kube.Get(ctx, types.NamespacedName{Name: rot.Webhooks[0]}, &vwc); err != nil {
		t.Fatal(err)
	}
	if vwc.Labels["helm.sh/chart"] != "lbstack-0.1.1" {
		t.Errorf("helm upgrade did not update the ValidatingWebhookConfiguration (labels %v)", vwc.Labels)
	}
	var dep appsv1.Deployment
	if err := kube.Get(ctx, types.NamespacedName{Namespace: ns, Name: "lbstack-operator"}, &dep); err != nil {
		t.Fatal(err)
	}
	if *dep.Spec.Replicas != 2 {
		t.Errorf("helm upgrade left %d operator replicas, want 2", *dep.Spec.Replicas)
	}
	checkCA("after helm upgrade")
	// And the operator's next check finds nothing to do.
	before := vwc.ResourceVersion
	if err := rot.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	if err := kube.Get(ctx, types.NamespacedName{Name: rot.Webhooks[0]}, &vwc); err != nil {
		t.Fatal(err)
	}
	if vwc.ResourceVersion != before {
		t.Errorf("the operator had to inject its CA again after helm upgrade")
	}

	if out, err := c.helm(t, "uninstall", release, "-n", ns); err != nil {
		t.Fatalf("helm uninstall: %v\n%s", err, out)
	}
	if err := kube.Get(ctx, types.NamespacedName{Namespace: ns, Name: "lbstack-operator"}, &dep); !apierrors.IsNotFound(err) {
		t.Errorf("the operator Deployment after helm uninstall: %v", err)
	}
	// What docs/helm.md says helm uninstall leaves: the namespace, the
	// operator's Secret, the CRDs.
	if err := kube.Get(ctx, types.NamespacedName{Name: ns}, &namespace); err != nil || namespace.DeletionTimestamp != nil {
		t.Errorf("namespace %s after helm uninstall: %v (deleting: %v); helm.sh/resource-policy: keep should keep it", ns, err, namespace.DeletionTimestamp)
	}
	if err := kube.Get(ctx, rot.Secret, &secret); err != nil {
		t.Errorf("the operator's certificate Secret after helm uninstall: %v", err)
	}
	if err := kube.List(ctx, &lbv1.LoadBalancerStackList{}); err != nil {
		t.Errorf("the CRDs after helm uninstall: %v", err)
	}
}

// installWithStack installs the chart with stack.enabled: on a first
// install the webhooks do not serve yet, and the stack is created before
// the ValidatingWebhookConfiguration (helm creates kinds it does not know
// last, by name), so the install succeeds.
func installWithStack(t *testing.T, c *cluster) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	const ns = "lbstack-system"
	kube := c.env.Client
	if err := kube.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
		t.Fatal(err)
	}
	values := valuesFile(t, map[string]any{"stack": map[string]any{"enabled": true, "spec": layer2Spec(t)}})
	out, err := c.helm(t, "install", release, chartDir, "-n", ns, "-f", values)
	if err != nil {
		t.Fatalf("helm install with stack.enabled: %v\n%s", err, out)
	}
	if !strings.Contains(out, "WARNING: namespace "+ns+" lacks the label\npod-security.kubernetes.io/enforce=privileged") {
		t.Errorf("helm install into a namespace without the privileged label does not warn:\n%s", out)
	}
	var s lbv1.LoadBalancerStack
	if err := kube.Get(ctx, types.NamespacedName{Name: "lbstack"}, &s); err != nil {
		t.Fatalf("the stack: %v", err)
	}
	if len(s.Spec.Pools) != 1 || len(s.Spec.L2Advertisements) != 1 {
		t.Errorf("the stack's spec is not the layer 2 sample's: %+v", s.Spec)
	}
	// Here the operator never runs, so its webhooks never answer: remove
	// them, then the release (with the operator running, docs/helm.md
	// deletes the stack first instead).
	if err := kube.Delete(ctx, &admissionregv1.ValidatingWebhookConfiguration{ObjectMeta: metav1.ObjectMeta{Name: "lbstack-validating-webhook-configuration"}}); err != nil {
		t.Fatal(err)
	}
	if out, err := c.helm(t, "uninstall", release, "-n", ns); err != nil {
		t.Fatalf("helm uninstall: %v\n%s", err, out)
	}
	if err := kube.Get(ctx, client.ObjectKeyFromObject(&s), &s); !apierrors.IsNotFound(err) && s.DeletionTimestamp == nil {
		t.Errorf("the stack after helm uninstall: %v", err)
	}
}
