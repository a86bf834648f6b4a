// Package manifests tests the install manifests under config/: that
// kustomize renders them and that a real API server accepts every object.
package manifests

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/lbstack/lbstack/internal/testenv"
)

var env *testenv.Env

func TestMain(m *testing.M) {
	testenv.Main(m, testenv.Options{}, func(e *testenv.Env) { env = e })
}

// TestDefaultInstall renders config/default and creates every object in a
// real API server, namespace first, so the install is known to apply.
func TestDefaultInstall(t *testing.T) {
	objs := testenv.Kustomize(t, "config/default")
	kinds := map[string]int{}
	for _, o := range objs {
		kinds[o.GetKind()]++
	}
	// The operator's ClusterRole and metrics-reader, the ClusterRole to
	// bind Prometheus to; the leader-election Role and the Role that reads
	// the operator's own Pod.
	want := map[string]int{"Namespace": 1, "CustomResourceDefinition": 8, "ServiceAccount": 1, "ClusterRole": 2, "ClusterRoleBinding": 1,
		"Role": 2, "RoleBinding": 2, "Deployment": 1, "Service": 1, "ValidatingWebhookConfiguration": 1}
	for k, n := range want {
		if kinds[k] != n {
			t.Errorf("config/default renders %d %s, want %d (all kinds: %v)", kinds[k], k, n, kinds)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for _, o := range objs {
		if o.GetKind() == "Namespace" {
			if err := env.Client.Create(ctx, o); err != nil {
				t.Fatalf("creating %s: %v", o.GetName(), err)
			}
		}
	}
	for _, o := range objs {
		if o.GetKind() == "Namespace" {
			continue
		}
		// The CRDs are installed already by the test environment; apply
		// them over the installed ones to prove they are identical in
		// meaning, and create the rest.
		err := env.Client.Patch(ctx, o, client.Apply, client.FieldOwner("install-test"), client.ForceOwnership, client.DryRunAll)
		if err != nil {
			t.Errorf("API server rejects %s %s/%s: %v", o.GetKind(), o.GetNamespace(), o.GetName(), err)
		}
	}
}

// TestSamplesRender checks config/samples is a valid kustomization.
func TestSamplesRender(t *testing.T) {
	if n := len(testenv.Kustomize(t, "config/samples")); n < 7 {
		t.Fatalf("config/samples renders %d objects, want at least 7", n)
	}
}

// TestCertManagerInstall: config/certmanager is config/default with the
// webhook certificate issued by cert-manager. cert-manager cannot run
// here, so this checks that the pieces meet: the Certificate names the
// webhook Service every webhook calls, its Secret is what the operator
// mounts as its webhook cert dir, the operator does not rotate its own
// certificate, and the CA injector is pointed at the Certificate; and the
// API server accepts every object but cert-manager's own kinds.
func TestCertManagerInstall(t *testing.T) {
	objs := testenv.Kustomize(t, "config/certmanager")
	var cert, issuer, dep, vwc, svc *unstructured.Unstructured
	for _, o := range objs {
		switch o.GetKind() {
		case "Certificate":
			cert = o
		case "Issuer":
			issuer = o
		case "Deployment":
			dep = o
		case "ValidatingWebhookConfiguration":
			vwc = o
		case "Service":
			svc = o
		}
	}
	if cert == nil || issuer == nil || dep == nil || vwc == nil || svc == nil {
		t.Fatalf("config/certmanager lacks a Certificate, Issuer, Deployment, webhook configuration or Service")
	}
	dnsNames, _, _ := unstructured.NestedStringSlice(cert.Object, "spec", "dnsNames")
	want := svc.GetName() + "." + svc.GetNamespace() + ".svc"
	if !slices.Contains(dnsNames, want) {
		t.Errorf("Certificate dnsNames %v lack %s", dnsNames, want)
	}
	// (NoCopy: kustomize's maps hold ints, which a deep copy refuses.)
	hooks, _, _ := unstructured.NestedFieldNoCopy(vwc.Object, "webhooks")
	for _, h := range hooks.([]any) {
		ref, _, _ := unstructured.NestedFieldNoCopy(h.(map[string]any), "clientConfig", "service")
		m, _ := ref.(map[string]any)
		if m["name"] != svc.GetName() || m["namespace"] != svc.GetNamespace() {
			t.Errorf("a webhook calls %v, not the Service %s/%s the certificate names", m, svc.GetNamespace(), svc.GetName())
		}
	}
	if got := vwc.GetAnnotations()["cert-manager.io/inject-ca-from"]; got != cert.GetNamespace()+"/"+cert.GetName() {
		t.Errorf("inject-ca-from %q, want %s/%s", got, cert.GetNamespace(), cert.GetName())
	}
	if ref, _, _ := unstructured.NestedString(cert.Object, "spec", "issuerRef", "name"); ref != issuer.GetName() || issuer.GetNamespace() != cert.GetNamespace() {
		t.Errorf("Certificate's issuer %q is not the Issuer %s/%s", ref, issuer.GetNamespace(), issuer.GetName())
	}
	secret, _, _ := unstructured.NestedString(cert.Object, "spec", "secretName")
	var d appsv1.Deployment
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(dep.Object, &d); err != nil {
		t.Fatal(err)
	}
	c := d.Spec.Template.Spec.Containers[0]
	if !slices.Contains(c.Args, "--cert-rotation=false") {
		t.Errorf("operator args %v: the operator would rotate a certificate of its own", c.Args)
	}
	// The webhook server reads tls.crt and tls.key from its cert dir, by
	// default /tmp/k8s-webhook-server/serving-certs.
	mounted := false
	for _, m := range c.VolumeMounts {
		if m.MountPath != "/tmp/k8s-webhook-server/serving-certs" {
			continue
		}
		for _, v := range d.Spec.Template.Spec.Volumes {
			if v.Name == m.Name && v.Secret != nil && v.Secret.SecretName == secret {
				mounted = true
			}
		}
	}
	if !mounted {
		t.Errorf("the operator does not mount Secret %s as its webhook cert dir: %+v", secret, d.Spec.Template.Spec.Volumes)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for _, o := range objs {
		if o.GetKind() == "Namespace" {
			if err := env.Client.Create(ctx, o); err != nil && !apierrors.IsAlreadyExists(err) {
				t.Fatalf("creating %s: %v", o.GetName(), err)
			}
		}
	}
	for _, o := range objs {
		if o.GetKind() == "Namespace" || strings.HasPrefix(o.GetAPIVersion(), "cert-manager.io/") {
			continue
		}
		if err := env.Client.Patch(ctx, o, client.Apply, client.FieldOwner("install-test"), client.ForceOwnership, client.DryRunAll); err != nil {
			t.Errorf("API server rejects %s %s/%s: %v", o.GetKind(), o.GetNamespace(), o.GetName(), err)
		}
	}
}
