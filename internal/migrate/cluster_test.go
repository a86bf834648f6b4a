package migrate

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	lbv1 "github.com/lbstack/lbstack/api/v1alpha1"
)

// fakeReader serves the objects it holds; a kind it does not serve fails
// as when its CRD is not installed.
type fakeReader struct {
	served map[schema.GroupVersionKind]bool
	objs   []*unstructured.Unstructured
	lists  []string
}

func (f *fakeReader) Get(_ context.Context, key client.ObjectKey, obj client.Object, _ ...client.GetOption) error {
	u := obj.(*unstructured.Unstructured)
	gvk := u.GroupVersionKind()
	for _, o := range f.objs {
		if o.GroupVersionKind() == gvk && o.GetNamespace() == key.Namespace && o.GetName() == key.Name {
			o.DeepCopyInto(u)
			return nil
		}
	}
	return apierrors.NewNotFound(schema.GroupResource{Resource: strings.ToLower(gvk.Kind) + "s"}, key.Name)
}

func (f *fakeReader) List(_ context.Context, list client.ObjectList, opts ...client.ListOption) error {
	l := list.(*unstructured.UnstructuredList)
	gvk := l.GroupVersionKind()
	gvk.Kind = strings.TrimSuffix(gvk.Kind, "List")
	f.lists = append(f.lists, gvk.String())
	if !f.served[gvk] {
		return &meta.NoKindMatchError{GroupKind: gvk.GroupKind(), SearchedVersions: []string{gvk.Version}}
	}
	var lo client.ListOptions
	lo.ApplyOptions(opts)
	for _, o := range f.objs {
		if o.GroupVersionKind() == gvk && o.GetNamespace() == lo.Namespace {
			l.Items = append(l.Items, *o.DeepCopy())
		}
	}
	return nil
}

func unstructuredFrom(t *testing.T, docs string) []*unstructured.Unstructured {
	t.Helper()
	var out []*unstructured.Unstructured
	for _, d := range splitDocuments([]byte(docs)) {
		u := &unstructured.Unstructured{}
		if err := yaml.Unmarshal(d, &u.Object); err != nil {
			t.Fatal(err)
		}
		out = append(out, u)
	}
	return out
}

func gvk(version, kind string) schema.GroupVersionKind {
	return schema.GroupVersionKind{Group: metallbGroup, Version: version, Kind: kind}
}

// TestFromCluster reads the custom resources of MetalLB's namespace, and
// gives the same stack as the same objects in a file.
func TestFromCluster(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("testdata", "cr-bgp.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	objs := unstructuredFrom(t, string(data))
	objs = append(objs, unstructuredFrom(t, "apiVersion: metallb.io/v1beta1\nkind: IPAddressPool\nmetadata: {name: elsewhere, namespace: other}\nspec: {addresses: [10.0.0.0/24]}\n")...)
	// A ConfigMap left over from MetalLB v0.12: MetalLB ignores it now.
	objs = append(objs, unstructuredFrom(t, "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: config, namespace: metallb-system}\ndata:\n  config: |\n    address-pools: [{name: old, protocol: layer2, addresses: [10.1.0.0/24]}]\n")...)
	r := &fakeReader{objs: objs, served: map[schema.GroupVersionKind]bool{
		gvk("v1beta1", "IPAddressPool"): true, gvk("v1beta1", "L2Advertisement"): true, gvk("v1beta1", "BGPAdvertisement"): true,
		gvk("v1beta2", "BGPPeer"): true, gvk("v1beta1", "BFDProfile"): true, gvk("v1beta1", "Community"): true,
	}}
	in, err := FromCluster(context.Background(), r, "")
	if err != nil {
		t.Fatal(err)
	}
	got, err := ConvertAll(in, Options{})
	if err != nil {
		t.Fatal(err)
	}
	mustBeValid(t, got)
	fromFile := convertFile(t, filepath.Join("testdata", "cr-bgp.yaml"))
	if d := cmp.Diff(fromFile.Stack, got.Stack); d != "" {
		t.Errorf("the cluster's stack differs from the file's (-file +cluster):\n%s", d)
	}
	checkFindings(t, got.Findings, want{"ConfigMap metallb-system/config", "", SeverityNote})
	for _, p := range got.Stack.Spec.Pools {
		if p.Name == "elsewhere" || p.Name == "old" {
			t.Errorf("pool %s converted; it is not MetalLB's configuration in force", p.Name)
		}
	}
}

// TestFromClusterLegacy: without MetalLB's CRDs (v0.12 and earlier) the
// ConfigMap is the configuration; a BGPPeer served only as v1beta1 is
// read in that version.
func TestFromClusterLegacy(t *testing.T) {
	objs := unstructuredFrom(t, "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: config, namespace: lb}\ndata:\n  config: |\n    address-pools: [{name: old, protocol: layer2, addresses: [10.1.0.0/24]}]\n")
	r := &fakeReader{objs: objs}
	in, err := FromCluster(context.Background(), r, "lb")
	if err != nil {
		t.Fatal(err)
	}
	res, err := ConvertAll(in, Options{})
	if err != nil {
		t.Fatal(err)
	}
	mustBeValid(t, res)
	if len(res.Stack.Spec.Pools) != 1 || res.Stack.Spec.Pools[0].Name != "old" || res.Stack.Spec.L2Advertisements[0].Name != "old-l2" {
		t.Errorf("legacy ConfigMap not converted: %+v", res.Stack.Spec)
	}
	if !contains(r.lists, "metallb.io/v1beta1, Kind=BGPPeer") {
		t.Errorf("BGPPeer v1beta1 not tried after v1beta2: %v", r.lists)
	}

	r = &fakeReader{
		served: map[schema.GroupVersionKind]bool{gvk("v1beta1", "BGPPeer"): true},
		objs:   unstructuredFrom(t, "apiVersion: metallb.io/v1beta1\nkind: BGPPeer\nmetadata: {name: p, namespace: metallb-system}\nspec: {myASN: 1, peerASN: 2, peerAddress: 192.0.2.1}\n"),
	}
	in, err = FromCluster(context.Background(), r, "metallb-system")
	if err != nil {
		t.Fatal(err)
	}
	res, err = ConvertAll(in, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff([]lbv1.InlineBGPPeer{{InlineMeta: lbv1.InlineMeta{Name: "p"}, BGPPeerSpec: lbv1.BGPPeerSpec{MyASN: 1, PeerASN: 2, PeerAddress: "192.0.2.1"}}}, res.Stack.Spec.BGPPeers); d != "" {
		t.Errorf("v1beta1 peer (-want +got):\n%s", d)
	}
}
