package webhooks_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/lbstack/lbstack/internal/migrate"
	"github.com/lbstack/lbstack/internal/testenv"
)

// TestMigratedStacksAreAdmitted: every MetalLB configuration of
// internal/migrate/testdata (legacy ConfigMaps, CRs of both versions, L2
// and BGP, unsupported fields) converts into a stack — and the Secrets it
// needs — that the real API server admits: the CRDs' schema and CEL rules
// and the operator's webhooks over TLS.
func TestMigratedStacksAreAdmitted(t *testing.T) {
	inputs, err := filepath.Glob(filepath.Join(testenv.RepoRoot(), "internal", "migrate", "testdata", "*.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, path := range inputs {
		if strings.HasSuffix(path, ".golden.yaml") {
			continue
		}
		n++
		t.Run(filepath.Base(path), func(t *testing.T) {
			data, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			in, err := migrate.Parse(data)
			if err != nil {
				t.Fatal(err)
			}
			res, err := migrate.ConvertAll(in, migrate.Options{SecretNamespace: "default"})
			if err != nil {
				t.Fatal(err)
			}
			objs := append([]client.Object{res.Stack}, res.Extra...)
			for _, o := range objs {
				if err := c.Create(ctx(t), o); err != nil {
					t.Fatalf("%s %s refused: %v", o.GetObjectKind().GroupVersionKind().Kind, o.GetName(), err)
				}
			}
			// Delete before the next case: one stack at a time.
			for i := len(objs) - 1; i >= 0; i-- {
				if err := env.Client.Delete(context.Background(), objs[i]); err != nil {
					t.Fatal(err)
				}
			}
			warnings.take()
		})
	}
	if n < 6 {
		t.Fatalf("found %d MetalLB inputs in internal/migrate/testdata, want at least 6", n)
	}
}
