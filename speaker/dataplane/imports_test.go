package dataplane

import (
	"encoding/json"
	"os/exec"
	"strings"
	"testing"
)

// forbiddenImports are the packages the data plane must never depend on,
// directly or through another package: the Kubernetes API, its clients and
// the lbstack configuration. The data plane works from the last plan it was
// handed, whatever happens to the API server.
var forbiddenImports = []string{
	"k8s.io/api/",
	"k8s.io/apimachinery/",
	"k8s.io/client-go/",
	"sigs.k8s.io/controller-runtime",
	"github.com/lbstack/lbstack/api/",
	"github.com/lbstack/lbstack/internal/",
	"github.com/lbstack/lbstack/speaker/plan",
}

// dataPlanePackages are the packages that must run without the API server.
var dataPlanePackages = []string{
	"github.com/lbstack/lbstack/speaker/dataplane",
	"github.com/lbstack/lbstack/speaker/election",
	"github.com/lbstack/lbstack/speaker/l2",
	"github.com/lbstack/lbstack/speaker/membership",
	"github.com/lbstack/lbstack/speaker/bgp",
	"github.com/lbstack/lbstack/speaker/bfd",
}

// TestNoKubernetesImports fails when a data-plane package depends, even
// transitively, on a Kubernetes API or client package or on the lbstack
// configuration (k8s.io/utils/clock, the injected clock, is allowed).
func TestNoKubernetesImports(t *testing.T) {
	out, err := exec.Command("go", append([]string{"list", "-deps", "-json=ImportPath,Imports,Standard"}, dataPlanePackages...)...).Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	type pkg struct {
		ImportPath string
		Imports    []string
		Standard   bool
	}
	importers := map[string][]string{}
	dec := json.NewDecoder(strings.NewReader(string(out)))
	var all []pkg
	for dec.More() {
		var p pkg
		if err := dec.Decode(&p); err != nil {
			t.Fatal(err)
		}
		all = append(all, p)
		for _, i := range p.Imports {
			importers[i] = append(importers[i], p.ImportPath)
		}
	}
	if len(all) < len(dataPlanePackages) {
		t.Fatalf("go list listed %d packages, want at least %d", len(all), len(dataPlanePackages))
	}
	for _, p := range all {
		for _, f := range forbiddenImports {
			if strings.HasPrefix(p.ImportPath, f) {
				t.Errorf("the data plane depends on %s (imported by %v)", p.ImportPath, importers[p.ImportPath])
			}
		}
	}
}
