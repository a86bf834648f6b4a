// Package manifests tests the install manifests under config/: that
// kustomize renders them and that a real API server accepts every object.
package manifests

import (
	"context"
	"testing"
	"time"

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
