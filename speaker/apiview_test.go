package speaker

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"k8s.io/client-go/rest"
	clocktesting "k8s.io/utils/clock/testing"

	"github.com/lbstack/lbstack/speaker/dataplane"
)

// TestAPIViewStates: the view is fresh while the API server answered
// within half the stale bound, unreached once it has not for the whole
// bound (counted from the start when it never answered), and settled once
// it has answered without a gap for SettleFor.
func TestAPIViewStates(t *testing.T) {
	clk := clocktesting.NewFakeClock(time.Unix(1000, 0))
	v := &APIView{Clock: clk, StaleAfter: 3 * time.Second, SettleFor: 2 * time.Second}
	want := func(what string, st dataplane.APIState) {
		t.Helper()
		if got := v.State(); got != st {
			t.Errorf("%s: state %+v, want %+v", what, got, st)
		}
	}
	want("before any check", dataplane.APIState{})
	v.observe(clk.Now(), false)
	clk.Step(2 * time.Second)
	v.observe(clk.Now(), false)
	want("never answered for 2s", dataplane.APIState{})
	clk.Step(time.Second)
	v.observe(clk.Now(), false)
	want("never answered for 3s", dataplane.APIState{Unreached: true})

	for range 4 {
		v.observe(clk.Now(), true)
		want("answering, not yet settled", dataplane.APIState{Fresh: true})
		clk.Step(500 * time.Millisecond)
	}
	v.observe(clk.Now(), true)
	want("answering for 2s", dataplane.APIState{Fresh: true, Settled: true})

	// The API server goes away.
	clk.Step(1400 * time.Millisecond)
	want("1.4s since the last answer", dataplane.APIState{Fresh: true, Settled: true})
	clk.Step(200 * time.Millisecond)
	want("1.6s since the last answer", dataplane.APIState{})
	clk.Step(1500 * time.Millisecond)
	want("3.1s since the last answer", dataplane.APIState{Unreached: true})

	// It comes back: the view settles anew.
	v.observe(clk.Now(), true)
	want("first answer after the cut", dataplane.APIState{Fresh: true})
	clk.Step(time.Second)
	v.observe(clk.Now(), true)
	want("1s of answers after the cut", dataplane.APIState{Fresh: true})
	clk.Step(time.Second)
	v.observe(clk.Now(), true)
	want("2s of answers after the cut", dataplane.APIState{Fresh: true, Settled: true})
}

// TestAPIViewRun: Run asks /readyz of a real HTTP server through the
// speaker's REST config and reports each change; a 500 counts as no answer.
func TestAPIViewRun(t *testing.T) {
	var healthy atomic.Bool
	healthy.Store(true)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/readyz" {
			http.NotFound(w, r)
			return
		}
		if !healthy.Load() {
			http.Error(w, "etcd not ready", http.StatusInternalServerError)
			return
		}
		_, _ = w.Write([]byte("ok"))
	}))
	defer srv.Close()
	cfg := &rest.Config{Host: srv.URL}
	hc, err := rest.HTTPClientFor(cfg)
	if err != nil {
		t.Fatal(err)
	}
	check, err := ReadyzCheck(cfg, hc)
	if err != nil {
		t.Fatal(err)
	}
	if err := check(t.Context()); err != nil {
		t.Fatalf("/readyz of a ready server: %v", err)
	}
	healthy.Store(false)
	if err := check(t.Context()); err == nil {
		t.Fatal("/readyz answering 500 counted as answered")
	}
	healthy.Store(true)

	changes := make(chan dataplane.APIState, 16)
	v := &APIView{Check: check, Clock: clocktesting.NewFakeClock(time.Unix(1000, 0)), StaleAfter: 3 * time.Second,
		OnChange: func(st dataplane.APIState) { changes <- st }}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() { defer close(done); v.Run(ctx) }()
	defer func() { cancel(); <-done }()
	select {
	case st := <-changes:
		if !st.Fresh || st.Unreached {
			t.Errorf("first state %+v, want fresh", st)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no state reported")
	}
}

// TestAPIViewCheckError: a failing check leaves the view unanswered.
func TestAPIViewCheckError(t *testing.T) {
	clk := clocktesting.NewFakeClock(time.Unix(1000, 0))
	v := &APIView{Clock: clk, StaleAfter: 3 * time.Second,
		Check: func(context.Context) error { return errors.New("connection refused") }}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() { defer close(done); v.Run(ctx) }()
	for !clk.HasWaiters() {
		time.Sleep(time.Millisecond)
	}
	clk.Step(3 * time.Second)
	cancel()
	<-done
	if st := v.State(); !st.Unreached || st.Fresh {
		t.Errorf("state %+v after 3s of failing checks, want unreached", st)
	}
}
