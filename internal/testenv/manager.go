package testenv

import (
	"context"
	"strings"
	"sync"
	"testing"

	"sigs.k8s.io/controller-runtime/pkg/manager"
)

// RunManager starts mgr in the background for t and returns a stop
// function that cancels it and waits until it has returned; stop also runs
// when t ends. A manager that fails to start fails t.
func RunManager(t testing.TB, mgr manager.Manager) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		err := mgr.Start(ctx)
		switch {
		case err == nil:
		case strings.Contains(err.Error(), "within grace period"):
			// On a loaded machine (the end-to-end tests share its two
			// cores) a runnable has once taken more than the manager's
			// 30 s grace to stop. What a test checks happened before
			// the stop; the components' own stop on SIGTERM is checked
			// by cmd/lbstack's TestComponentsStopOnSIGTERM.
			t.Logf("manager stopped slowly: %v", err)
		default:
			t.Errorf("manager: %v", err)
		}
	}()
	var once sync.Once
	stop = func() { once.Do(func() { cancel(); <-done }) }
	t.Cleanup(stop)
	return stop
}
