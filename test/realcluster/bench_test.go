package realcluster_test

import (
	"context"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/lbstack/lbstack/internal/testenv"
	"github.com/lbstack/lbstack/test/realcluster"
)

// BenchmarkInstall measures, per run, the two figures a user waits for on
// real nodes: nothing → 3 nodes Ready (target ≤ 30 s with warm caches),
// and `kubectl apply` of the layer-2 sample → every speaker Ready and the
// stack Available (after `kubectl apply -k config/local` rolled the
// operator out).
//
//	go test -run '^$' -bench BenchmarkInstall -benchtime 5x ./test/realcluster/
func BenchmarkInstall(b *testing.B) {
	if err := realcluster.Prerequisites(); err != nil {
		testenv.Skip(b, "%v", err)
	}
	root := testenv.RepoRoot()
	var imgs []string
	for _, name := range []string{"pause", "lbstack", "echo"} {
		imgs = append(imgs, filepath.Join(root, "bin", "images", name+".tar"))
	}
	var up, ready []time.Duration
	for range b.N {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
		start := time.Now()
		c, err := realcluster.Up(ctx, realcluster.Options{Nodes: 3, Dir: b.TempDir(), Images: imgs, PauseImage: realcluster.PauseImage})
		if c != nil {
			b.Cleanup(c.Close) // Close is idempotent: also after a failure below
		}
		b.Cleanup(cancel)
		if err != nil {
			b.Fatal(err)
		}
		up = append(up, time.Since(start))
		if out, err := c.KubectlOutput(ctx, "apply", "-k", filepath.Join(root, "config", "local")); err != nil {
			b.Fatalf("%v\n%s", err, out)
		}
		if out, err := c.KubectlOutput(ctx, "-n", operatorNamespace, "rollout", "status", "deployment/lbstack-operator", "--timeout=3m"); err != nil {
			b.Fatalf("%v\n%s", err, out)
		}
		applied := applyStack(b, ctx, c, filepath.Join(root, layer2Sample))
		waitStackAvailable(b, ctx, c)
		ready = append(ready, time.Since(applied))
		c.Close()
	}
	b.Logf("nothing → nodes Ready: %v; stack applied → speakers Ready: %v", up, ready)
	b.ReportMetric(median(up).Seconds(), "s-to-nodes-ready-p50")
	b.ReportMetric(slices.Max(up).Seconds(), "s-to-nodes-ready-max")
	b.ReportMetric(median(ready).Seconds(), "s-stack-to-speakers-ready-p50")
	b.ReportMetric(slices.Max(ready).Seconds(), "s-stack-to-speakers-ready-max")
}

func median(d []time.Duration) time.Duration {
	s := slices.Clone(d)
	slices.Sort(s)
	return s[len(s)/2]
}
