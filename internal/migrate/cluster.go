package migrate

import (
	"context"
	"fmt"
	"sort"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// clusterKinds are the MetalLB kinds FromCluster reads, each in the
// versions to try, preferred first.
var clusterKinds = []struct {
	group, kind string
	versions    []string
}{
	{metallbGroup, "IPAddressPool", []string{"v1beta1"}},
	{metallbGroup, "L2Advertisement", []string{"v1beta1"}},
	{metallbGroup, "BGPAdvertisement", []string{"v1beta1"}},
	{metallbGroup, "BGPPeer", []string{"v1beta2", "v1beta1"}},
	{metallbGroup, "BFDProfile", []string{"v1beta1"}},
	{metallbGroup, "Community", []string{"v1beta1"}},
	// FRR-K8s configuration is not converted; reading it makes a finding.
	{"frrk8s." + metallbGroup, "FRRConfiguration", []string{"v1beta1"}},
}

// FromCluster reads MetalLB's configuration from a cluster: the metallb.io
// custom resources in namespace (default "metallb-system"), and the legacy
// ConfigMap `config` there. A kind whose CRD is not installed is simply
// absent. When MetalLB's CRDs are installed (MetalLB v0.13 or later, which
// ignores the ConfigMap), a leftover ConfigMap is not converted but noted.
func FromCluster(ctx context.Context, r client.Reader, namespace string) (*Input, error) {
	if namespace == "" {
		namespace = DefaultMetalLBNamespace
	}
	in := &Input{}
	crds := false
	for _, k := range clusterKinds {
		for _, v := range k.versions {
			list := &unstructured.UnstructuredList{}
			list.SetGroupVersionKind(schema.GroupVersionKind{Group: k.group, Version: v, Kind: k.kind + "List"})
			err := r.List(ctx, list, client.InNamespace(namespace))
			if absent(err) {
				continue
			}
			if err != nil {
				return nil, fmt.Errorf("listing %s.%s in namespace %s: %w", k.kind, k.group, namespace, err)
			}
			crds = crds || k.group == metallbGroup
			items := list.Items
			sort.Slice(items, func(i, j int) bool { return items[i].GetName() < items[j].GetName() })
			for i := range items {
				o := items[i].Object
				if o["kind"] == nil || o["apiVersion"] == nil {
					o["kind"], o["apiVersion"] = k.kind, k.group+"/"+v
				}
				if err := in.addObject("in the cluster", o); err != nil {
					return nil, err
				}
			}
			break
		}
	}
	cm := &unstructured.Unstructured{}
	cm.SetGroupVersionKind(schema.GroupVersionKind{Version: "v1", Kind: "ConfigMap"})
	err := r.Get(ctx, client.ObjectKey{Namespace: namespace, Name: "config"}, cm)
	switch {
	case apierrors.IsNotFound(err):
	case err != nil:
		return nil, fmt.Errorf("reading ConfigMap %s/config: %w", namespace, err)
	case crds:
		probe := &Input{}
		if probe.addObject("in the cluster", cm.Object) == nil && len(probe.legacy) > 0 {
			in.note(Finding{Object: "ConfigMap " + namespace + "/config", Severity: SeverityNote,
				Message: "MetalLB v0.13 and later ignore this legacy configuration (its CRDs are installed), so it is not converted; if it is the configuration in force, convert it from a file with -f"})
		}
	default:
		if err := in.addObject("in the cluster", cm.Object); err != nil {
			return nil, err
		}
	}
	return in, nil
}

// absent reports whether a List failed because the kind is not served.
func absent(err error) bool {
	return err != nil && (meta.IsNoMatchError(err) || apierrors.IsNotFound(err))
}
