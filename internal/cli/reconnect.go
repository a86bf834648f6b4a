package cli

import (
	"context"
	"errors"
	"io"
	"net"
	"syscall"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	utilnet "k8s.io/apimachinery/pkg/util/net"
	"k8s.io/apimachinery/pkg/watch"
	toolscache "k8s.io/client-go/tools/cache"
)

// After the API server was unreachable, client-go's reflector retries its
// list and watch with an exponential backoff that reaches 30 s (60 s with
// its jitter): an API server restart of half a minute left a component
// blind for up to a minute after the API server was back — a speaker kept
// announcing a Service deleted in that minute. Every informer of every
// lbstack component is built on a ListerWatcher that instead retries a
// list or watch that could not reach the API server every
// ReconnectInterval, for up to ReconnectLimit, before the reflector sees
// the error; so it sees changes within ReconnectInterval of the API
// server's return.
const (
	// ReconnectInterval is how often an unreachable API server is retried.
	ReconnectInterval = 500 * time.Millisecond
	// ReconnectLimit is how long a list or watch retries before its error
	// goes to the reflector (which then backs off as usual).
	ReconnectLimit = 5 * time.Minute
)

// NewReconnectingInformer is a controller-runtime cache.Options.NewInformer:
// a shared index informer over Reconnecting(lw).
func NewReconnectingInformer(lw toolscache.ListerWatcher, obj runtime.Object, resync time.Duration, indexers toolscache.Indexers) toolscache.SharedIndexInformer {
	return toolscache.NewSharedIndexInformer(Reconnecting(lw, ReconnectInterval, ReconnectLimit), obj, resync, indexers)
}

// Reconnecting wraps lw so that a List or Watch failing because the API
// server cannot be reached (Unreachable) is retried every interval, for up
// to limit or until its context ends; any other error returns at once.
func Reconnecting(lw toolscache.ListerWatcher, interval, limit time.Duration) toolscache.ListerWatcher {
	return &reconnecting{lw: toolscache.ToListerWatcherWithContext(lw), interval: interval, limit: limit}
}

type reconnecting struct {
	lw              toolscache.ListerWatcherWithContext
	interval, limit time.Duration
}

func retry[T any](ctx context.Context, interval, limit time.Duration, call func() (T, error)) (T, error) {
	deadline := time.Now().Add(limit)
	for {
		v, err := call()
		if err == nil || !Unreachable(err) || !time.Now().Add(interval).Before(deadline) {
			return v, err
		}
		t := time.NewTimer(interval)
		select {
		case <-ctx.Done():
			t.Stop()
			return v, err
		case <-t.C:
		}
	}
}

func (r *reconnecting) ListWithContext(ctx context.Context, opts metav1.ListOptions) (runtime.Object, error) {
	return retry(ctx, r.interval, r.limit, func() (runtime.Object, error) { return r.lw.ListWithContext(ctx, opts) })
}

func (r *reconnecting) WatchWithContext(ctx context.Context, opts metav1.ListOptions) (watch.Interface, error) {
	return retry(ctx, r.interval, r.limit, func() (watch.Interface, error) { return r.lw.WatchWithContext(ctx, opts) })
}

// List and Watch serve callers without a context.
func (r *reconnecting) List(opts metav1.ListOptions) (runtime.Object, error) {
	return r.ListWithContext(context.Background(), opts)
}

func (r *reconnecting) Watch(opts metav1.ListOptions) (watch.Interface, error) {
	return r.WatchWithContext(context.Background(), opts)
}

// Unreachable reports whether err says the API server could not be reached
// or could not serve yet: connection refused or reset, an EOF or timeout on
// the connection, or 503, 504 and 429 answers — not an answer such as
// Forbidden, NotFound or Gone, which the caller must see.
func Unreachable(err error) bool {
	var ne net.Error
	switch {
	case err == nil:
		return false
	case errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, syscall.EHOSTUNREACH), errors.Is(err, syscall.ENETUNREACH),
		errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), utilnet.IsConnectionReset(err), utilnet.IsProbableEOF(err):
		return true
	case errors.As(err, &ne) && ne.Timeout():
		return true
	case apierrors.IsServiceUnavailable(err), apierrors.IsTimeout(err), apierrors.IsServerTimeout(err), apierrors.IsTooManyRequests(err):
		return true
	}
	return false
}
