package kubectlplugin

import (
	"context"
	"os"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"
)

const migrateInputs = "../migrate/testdata/"

// TestMigrateFiles: -f FILE and -f - give the converter's output (its
// goldens), and stderr counts the findings to review.
func TestMigrateFiles(t *testing.T) {
	want, err := os.ReadFile(migrateInputs + "cr-unsupported.golden.yaml")
	if err != nil {
		t.Fatal(err)
	}
	out, errOut, code := run(t, Options{}, "migrate", "-f", migrateInputs+"cr-unsupported.yaml")
	if code != 0 || out != string(want) {
		t.Fatalf("exit %d, stderr %q; output differs from the golden:\n%s", code, errOut, out)
	}
	if !strings.Contains(errOut, "findings, listed at the top of the output") {
		t.Errorf("stderr does not point at the findings: %q", errOut)
	}
	input, err := os.ReadFile(migrateInputs + "cr-unsupported.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var stdout, stderr strings.Builder
	if code := Main([]string{"migrate", "-f", "-"}, IO{In: strings.NewReader(string(input)), Out: &stdout, Err: &stderr}, Options{}); code != 0 || stdout.String() != string(want) {
		t.Errorf("-f -: exit %d, stderr %q, output:\n%s", code, stderr.String(), stdout.String())
	}
	_, errOut, code = run(t, Options{}, "migrate", "-f", migrateInputs+"missing.yaml")
	if code != 1 || !strings.Contains(errOut, "missing.yaml") {
		t.Errorf("missing file: exit %d, stderr %q", code, errOut)
	}
}

// TestMigrateFromCluster: --from-cluster reads MetalLB's legacy ConfigMap
// from the API (MetalLB's CRDs are not installed here, so they are just
// absent) and writes what the same ConfigMap in a file gives.
func TestMigrateFromCluster(t *testing.T) {
	data, err := os.ReadFile(migrateInputs + "legacy-layer2.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var cm corev1.ConfigMap
	if err := yaml.Unmarshal(data, &cm); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: cm.Namespace}}
	if err := env.Client.Create(ctx, ns); err != nil {
		t.Fatal(err)
	}
	if err := env.Client.Create(ctx, &cm); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = env.Client.Delete(ctx, &cm) }()
	want, err := os.ReadFile(migrateInputs + "legacy-layer2.golden.yaml")
	if err != nil {
		t.Fatal(err)
	}
	out, errOut, code := run(t, Options{}, "migrate", "--from-cluster", "--kubeconfig", kubeconfig)
	if code != 0 || out != string(want) {
		t.Errorf("exit %d, stderr %q; output differs from the golden:\n%s", code, errOut, out)
	}
	// Nothing there: a clear error, not an empty stack.
	_, errOut, code = run(t, Options{}, "migrate", "--from-cluster", "--metallb-namespace", "nowhere", "--kubeconfig", kubeconfig)
	if code != 1 || errOut == "" {
		t.Errorf("empty namespace: exit %d, stderr %q", code, errOut)
	}
	t.Logf("empty namespace: %s", errOut)
}
