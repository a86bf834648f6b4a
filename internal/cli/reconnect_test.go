package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/watch"
	toolscache "k8s.io/client-go/tools/cache"
)

// flaky fails its first failures calls with err, then succeeds.
type flaky struct {
	err      error
	failures int
	calls    int
}

func (f *flaky) call() error {
	f.calls++
	if f.calls <= f.failures {
		return f.err
	}
	return nil
}

func (f *flaky) lw() *toolscache.ListWatch {
	return &toolscache.ListWatch{
		ListWithContextFunc: func(context.Context, metav1.ListOptions) (runtime.Object, error) {
			if err := f.call(); err != nil {
				return nil, err
			}
			return &corev1.ServiceList{}, nil
		},
		WatchFuncWithContext: func(context.Context, metav1.ListOptions) (watch.Interface, error) {
			if err := f.call(); err != nil {
				return nil, err
			}
			return watch.NewFake(), nil
		},
	}
}

func refused() error {
	return &net.OpError{Op: "dial", Net: "tcp", Err: &net.AddrError{Err: "x"}}
}

func TestReconnectingRetriesAnUnreachableAPIServer(t *testing.T) {
	dial := fmt.Errorf("Get \"https://192.0.2.2:6443/api/v1/services\": %w", &net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED})
	gone := apierrors.NewResourceExpired("too old resource version")
	forbidden := apierrors.NewForbidden(schema.GroupResource{Resource: "services"}, "", errors.New("no"))
	for name, tc := range map[string]struct {
		err       error
		failures  int
		wantCalls int
		wantErr   bool
	}{
		"connection refused, then the API server is back": {dial, 3, 4, false},
		"503 while the API server starts":                 {apierrors.NewServiceUnavailable("starting"), 2, 3, false},
		"Gone goes to the reflector at once (it relists)": {gone, 1, 1, true},
		"Forbidden goes to the reflector at once":         {forbidden, 1, 1, true},
		"unreachable longer than the limit":               {dial, 1000, 5, true},
	} {
		t.Run(name, func(t *testing.T) {
			for _, op := range []string{"list", "watch"} {
				f := &flaky{err: tc.err, failures: tc.failures}
				lw := Reconnecting(f.lw(), time.Millisecond, 5*time.Millisecond+500*time.Microsecond).(toolscache.ListerWatcherWithContext)
				var err error
				if op == "list" {
					_, err = lw.ListWithContext(context.Background(), metav1.ListOptions{})
				} else {
					_, err = lw.WatchWithContext(context.Background(), metav1.ListOptions{})
				}
				if (err != nil) != tc.wantErr {
					t.Errorf("%s: error %v, want error %t", op, err, tc.wantErr)
				}
				if tc.wantCalls < 5 && f.calls != tc.wantCalls || tc.wantCalls == 5 && (f.calls < 3 || f.calls > 7) {
					t.Errorf("%s: %d calls, want %d", op, f.calls, tc.wantCalls)
				}
			}
		})
	}
}

func TestReconnectingStopsWithItsContext(t *testing.T) {
	f := &flaky{err: fmt.Errorf("dial: %w", syscall.ECONNREFUSED), failures: 1 << 30}
	lw := Reconnecting(f.lw(), 10*time.Millisecond, time.Hour).(toolscache.ListerWatcherWithContext)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	start := time.Now()
	if _, err := lw.WatchWithContext(ctx, metav1.ListOptions{}); err == nil {
		t.Fatal("a watch that never reached the API server returned no error")
	}
	if took := time.Since(start); took > time.Second {
		t.Errorf("returned %s after its context ended", took)
	}
}

func TestUnreachable(t *testing.T) {
	for err, want := range map[error]bool{
		fmt.Errorf("x: %w", syscall.ECONNREFUSED):                              true,
		fmt.Errorf("x: %w", syscall.ECONNRESET):                                true,
		fmt.Errorf("reading: %w", io.ErrUnexpectedEOF):                         true,
		apierrors.NewTooManyRequests("slow down", 1):                           true,
		apierrors.NewTimeoutError("timeout", 1):                                true,
		apierrors.NewNotFound(schema.GroupResource{Resource: "services"}, "x"): false,
		apierrors.NewBadRequest("no"):                                          false,
		apierrors.NewInternalError(errors.New("boom")):                         false,
		refused(): false,
	} {
		if got := Unreachable(err); got != want {
			t.Errorf("Unreachable(%v) = %t, want %t", err, got, want)
		}
	}
}
