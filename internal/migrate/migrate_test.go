package migrate

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	lbv1 "github.com/lbstack/lbstack/api/v1alpha1"
	"github.com/lbstack/lbstack/internal/config"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

// inputs are the testdata files that are MetalLB input (not goldens).
func inputs(t *testing.T) []string {
	t.Helper()
	all, err := filepath.Glob(filepath.Join("testdata", "*.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, f := range all {
		if !strings.HasSuffix(f, ".golden.yaml") {
			out = append(out, f)
		}
	}
	if len(out) < 6 {
		t.Fatalf("expected the MetalLB inputs in testdata, found %v", out)
	}
	return out
}

func convertFile(t *testing.T, path string) *Result {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	in, err := Parse(data)
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	r, err := ConvertAll(in, Options{})
	if err != nil {
		t.Fatalf("ConvertAll: %v", err)
	}
	return r
}

// mustBeValid checks the result with lbstack's own validity function,
// the one behind the admission webhooks, and returns its configuration.
func mustBeValid(t *testing.T, r *Result) *config.Config {
	t.Helper()
	objs := config.Objects{Stacks: []lbv1.LoadBalancerStack{*r.Stack}}
	for _, o := range r.Extra {
		switch o := o.(type) {
		case *lbv1.IPAddressPool:
			objs.Pools = append(objs.Pools, *o)
		case *lbv1.BGPPeer:
			objs.Peers = append(objs.Peers, *o)
		case *lbv1.L2Advertisement:
			objs.L2Advertisements = append(objs.L2Advertisements, *o)
		case *lbv1.BGPAdvertisement:
			objs.BGPAdvertisements = append(objs.BGPAdvertisements, *o)
		}
	}
	cfg, _, errs := config.Build(objs)
	if len(errs) > 0 {
		t.Fatalf("lbstack refuses the converted stack:\n%v", errs.ToAggregate())
	}
	return cfg
}

// TestGolden converts every input in testdata, checks the stack with
// lbstack's validation, and compares Marshal's output with the golden
// file (go test ./internal/migrate -update rewrites them).
func TestGolden(t *testing.T) {
	for _, f := range inputs(t) {
		t.Run(filepath.Base(f), func(t *testing.T) {
			r := convertFile(t, f)
			mustBeValid(t, r)
			got, err := Marshal(r.Stack, r.Findings, r.Extra)
			if err != nil {
				t.Fatal(err)
			}
			golden := strings.TrimSuffix(f, ".yaml") + ".golden.yaml"
			if *update {
				if err := os.WriteFile(golden, got, 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run go test ./internal/migrate -update)", err)
			}
			if d := cmp.Diff(string(want), string(got)); d != "" {
				t.Errorf("output differs from %s (-want +got):\n%s", golden, d)
			}
		})
	}
}

// TestOutputReadsBack decodes the written stack strictly into lbstack's
// type: no field Marshal writes is unknown to the API.
func TestOutputReadsBack(t *testing.T) {
	for _, f := range inputs(t) {
		t.Run(filepath.Base(f), func(t *testing.T) {
			r := convertFile(t, f)
			out, err := Marshal(r.Stack, r.Findings, r.Extra)
			if err != nil {
				t.Fatal(err)
			}
			docs := splitDocuments(out)
			var stack lbv1.LoadBalancerStack
			if err := yaml.UnmarshalStrict(docs[0], &stack); err != nil {
				t.Fatalf("the stack does not read back: %v\n%s", err, docs[0])
			}
			if d := cmp.Diff(r.Stack.Spec, stack.Spec); d != "" {
				t.Errorf("the stack read back differs (-converted +read):\n%s", d)
			}
			if bytes.Contains(docs[0], []byte("status:")) || bytes.Contains(docs[0], []byte("creationTimestamp")) {
				t.Errorf("the stack carries status or creationTimestamp:\n%s", docs[0])
			}
			if len(docs) != 1+len(r.Extra) {
				t.Errorf("%d documents, want the stack and %d extra", len(docs), len(r.Extra))
			}
		})
	}
}

// TestDeterministic converts each input with its documents reversed: the
// output must not change.
func TestDeterministic(t *testing.T) {
	for _, f := range inputs(t) {
		t.Run(filepath.Base(f), func(t *testing.T) {
			data, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			docs := splitDocuments(data)
			for i, j := 0, len(docs)-1; i < j; i, j = i+1, j-1 {
				docs[i], docs[j] = docs[j], docs[i]
			}
			in1, err := Parse(data)
			if err != nil {
				t.Fatal(err)
			}
			in2, err := Parse(bytes.Join(docs, []byte("\n---\n")))
			if err != nil {
				t.Fatal(err)
			}
			out := func(in *Input) string {
				r, err := ConvertAll(in, Options{})
				if err != nil {
					t.Fatal(err)
				}
				b, err := Marshal(r.Stack, r.Findings, r.Extra)
				if err != nil {
					t.Fatal(err)
				}
				return string(b)
			}
			if d := cmp.Diff(out(in1), out(in2)); d != "" {
				t.Errorf("output depends on the input's order (-forward +reversed):\n%s", d)
			}
		})
	}
}

func extraOf[T client.Object](r *Result) []T {
	var out []T
	for _, o := range r.Extra {
		if x, ok := o.(T); ok {
			out = append(out, x)
		}
	}
	return out
}
