package speaker

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/cache"

	"github.com/lbstack/lbstack/internal/cli"
	"github.com/lbstack/lbstack/internal/testenv"
)

// TestWatcherListsServicesFromTheStore: with the manager's cache, a pass
// reads the Services from the informer's store (pointers, no copies) — the
// type assertion it relies on holds for controller-runtime's informers —
// and sees the same Services a List does.
func TestWatcherListsServicesFromTheStore(t *testing.T) {
	env := testenv.StartT(t, testenv.Options{})
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	for _, name := range []string{"a", "b"} {
		createLBService(t, ctx, env.Client, name)
	}
	scheme, err := cli.Scheme()
	if err != nil {
		t.Fatal(err)
	}
	c, err := cache.New(env.Config, cache.Options{Scheme: scheme})
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = c.Start(ctx) }()
	inf, err := c.GetInformer(ctx, &corev1.Service{})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := informerStore(inf); !ok {
		t.Fatalf("the informer (%T) has no store: passes would copy every Service", inf)
	}
	w := &Watcher{Client: env.Client, Cache: c}
	var names []string
	waitFor(t, ctx, "both Services in the store", func() error {
		got, err := w.listServices(ctx)
		if err != nil {
			return err
		}
		names = names[:0]
		for _, s := range got {
			if s.Namespace == "default" && s.Spec.Type == corev1.ServiceTypeLoadBalancer {
				names = append(names, s.Name)
			}
		}
		slices.Sort(names)
		if !slices.Equal(names, []string{"a", "b"}) {
			return fmt.Errorf("Services %v", names)
		}
		return nil
	})
}
