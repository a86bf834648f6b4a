package migrate

import (
	"bytes"
	"fmt"
	"strings"

	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	lbv1 "github.com/lbstack/lbstack/api/v1alpha1"
)

// Marshal writes the conversion as YAML for kubectl apply: a header
// comment listing every finding ("# dropped BGPPeer metallb-system/p1
// spec.vrf: ..."), the stack (apiVersion and kind set, without status or
// an empty creationTimestamp), then the extra objects, each a document of
// its own. Every extra object must carry its apiVersion and kind.
func Marshal(stack *lbv1.LoadBalancerStack, findings []Finding, extra []client.Object) ([]byte, error) {
	var b bytes.Buffer
	b.WriteString("# LoadBalancerStack converted from a MetalLB configuration (kubectl lbstack migrate).\n")
	switch len(findings) {
	case 0:
		b.WriteString("# Every MetalLB field was carried over as it was.\n")
	case 1:
		b.WriteString("# 1 finding; review it before you apply this (docs/migrating-from-metallb.md):\n")
	default:
		fmt.Fprintf(&b, "# %d findings; review them before you apply this (docs/migrating-from-metallb.md):\n", len(findings))
	}
	for _, f := range findings {
		b.WriteString("# " + oneLine(f.String()) + "\n")
	}
	s := stack.DeepCopy()
	s.APIVersion, s.Kind = lbv1.GroupVersion.String(), "LoadBalancerStack"
	objs := append([]client.Object{s}, extra...)
	for i, o := range objs {
		if i > 0 {
			b.WriteString("---\n")
		}
		y, err := objectYAML(o)
		if err != nil {
			return nil, err
		}
		b.Write(y)
	}
	return b.Bytes(), nil
}

func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}

// objectYAML writes o without what the API server fills in.
func objectYAML(o client.Object) ([]byte, error) {
	gvk := o.GetObjectKind().GroupVersionKind()
	if gvk.Kind == "" || gvk.Version == "" {
		return nil, fmt.Errorf("%T %s has no apiVersion or kind", o, o.GetName())
	}
	m, err := runtime.DefaultUnstructuredConverter.ToUnstructured(o)
	if err != nil {
		return nil, fmt.Errorf("writing %s %s: %w", gvk.Kind, o.GetName(), err)
	}
	delete(m, "status")
	if md, ok := m["metadata"].(map[string]any); ok {
		delete(md, "creationTimestamp")
	}
	if spec, ok := m["spec"].(map[string]any); ok {
		for _, k := range []string{"speaker", "controller"} {
			if v, ok := spec[k].(map[string]any); ok && len(v) == 0 {
				delete(spec, k)
			}
		}
	}
	y, err := yaml.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("writing %s %s: %w", gvk.Kind, o.GetName(), err)
	}
	return y, nil
}
