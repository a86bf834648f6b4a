package migrate

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	lbv1 "github.com/lbstack/lbstack/api/v1alpha1"
)

func TestMarshalHeader(t *testing.T) {
	stack := &lbv1.LoadBalancerStack{ObjectMeta: metav1.ObjectMeta{Name: "s"}}
	out, err := Marshal(stack, []Finding{{Object: "BGPPeer metallb-system/p1", Field: "spec.vrf", Severity: SeverityDropped, Message: "two\nlines"}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	text := string(out)
	for _, w := range []string{
		"# 1 finding;",
		"# dropped BGPPeer metallb-system/p1 spec.vrf: two lines\n",
		"apiVersion: lbstack.io/v1alpha1\nkind: LoadBalancerStack\nmetadata:\n  name: s\n",
	} {
		if !strings.Contains(text, w) {
			t.Errorf("output lacks %q:\n%s", w, text)
		}
	}
	for _, no := range []string{"status", "creationTimestamp", "speaker", "controller"} {
		if strings.Contains(text, no) {
			t.Errorf("output has %s:\n%s", no, text)
		}
	}
	if _, err := Marshal(stack, nil, []client.Object{&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "x"}}}); err == nil {
		t.Error("an extra object without apiVersion and kind is written")
	}
}

// FuzzParse: no input makes Parse or Convert panic, and whatever Convert
// returns is valid.
func FuzzParse(f *testing.F) {
	files, _ := filepath.Glob(filepath.Join("testdata", "*.yaml"))
	for _, p := range files {
		if strings.HasSuffix(p, ".golden.yaml") {
			continue
		}
		data, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Add([]byte("address-pools: [{name: x, protocol: bgp, addresses: ['1.2.3.4/32'], bgp-advertisements: [{aggregation-length: 0}]}]"))
	f.Fuzz(func(t *testing.T, data []byte) {
		in, err := Parse(data)
		if err != nil {
			return
		}
		r, err := ConvertAll(in, Options{})
		if err != nil {
			return
		}
		mustBeValid(t, r)
		if _, err := Marshal(r.Stack, r.Findings, r.Extra); err != nil {
			t.Fatal(err)
		}
	})
}
