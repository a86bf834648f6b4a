package cli

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/go-logr/logr"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/clock"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// DefaultAPIFallbackRefresh is how often APIFallback.Run re-reads the API
// server's addresses from the `kubernetes` EndpointSlice. They change only
// when control-plane nodes come and go; the read is from the manager's
// cache, so it costs no request to the API server.
const DefaultAPIFallbackRefresh = 10 * time.Second

// apiFallbackDialTimeout bounds each dial of a remembered API server
// endpoint, so that one dead control-plane node does not hold up the next.
const apiFallbackDialTimeout = time.Second

// APIFallback is a dialer for an in-Pod client of the API server that dials
// the API server's own addresses when its `kubernetes` Service refuses.
//
// A Pod reaches the API server through the `kubernetes` Service's ClusterIP
// (rest.InClusterConfig). After a kube-apiserver restart that Service has
// no endpoints for up to about 10 s although the API server answers (the
// API server re-adds itself on an interval), and kube-proxy rejects the
// ClusterIP: a speaker stayed blind to Service deletions in that time.
// APIFallback remembers the addresses the `kubernetes` EndpointSlice listed
// while it had them (Refresh, Run) and, when a dial of Host is refused or
// finds no route, dials them instead.
//
// Only the TCP connection goes elsewhere. The caller's TLS is untouched:
// client-go still verifies the server certificate against the URL's host,
// the ClusterIP (which the API server's certificate carries among its
// names), before it sends a request or a token; an endpoint that is not the
// API server cannot pass for it. Use it as rest.Config.Dial.
//
// An APIFallback is safe for concurrent use; its fields must not change
// once it is in use.
type APIFallback struct {
	// Host is the "ip:port" client-go dials for the API server: the host
	// of the rest.Config's Host URL (for rest.InClusterConfig,
	// KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT joined). Only
	// dials of Host fall back.
	Host string
	// Dialer dials Host, other addresses and the endpoints; nil: one with
	// Timeout and KeepAlive 30 s, like client-go's default.
	Dialer *net.Dialer
	// Log receives a line when dials start and stop falling back, and
	// when the remembered endpoints change.
	Log logr.Logger
	// Clock drives Run's refresh interval; nil: the real clock.
	Clock clock.WithTicker

	// endpoints holds the remembered "ip:port"s, never changed in place.
	endpoints atomic.Pointer[[]string]
	// fallingBack is whether the last dial of Host needed an endpoint.
	fallingBack atomic.Bool
}

func (f *APIFallback) dialer() *net.Dialer {
	if f.Dialer != nil {
		return f.Dialer
	}
	return &net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}
}

// DialContext dials addr. If addr is Host and the dial is refused or finds
// no route to the host or network, it dials each remembered endpoint in
// order, each for at most a second within ctx, and returns the first
// connection; if they all fail too, the error wraps the first one and
// every endpoint's (errors.Is still finds syscall.ECONNREFUSED). Any other
// address, and any other error, is returned as the dial gave it.
func (f *APIFallback) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	d := f.dialer()
	conn, err := d.DialContext(ctx, network, addr)
	if !sameHostPort(addr, f.Host) {
		return conn, err
	}
	if err == nil {
		if f.fallingBack.CompareAndSwap(true, false) {
			f.Log.Info("Reaching the API server through its Service again", "service", f.Host)
		}
		return conn, nil
	}
	if !errors.Is(err, syscall.ECONNREFUSED) && !errors.Is(err, syscall.EHOSTUNREACH) && !errors.Is(err, syscall.ENETUNREACH) {
		return nil, err
	}
	eps := f.Endpoints()
	if len(eps) == 0 {
		return nil, err
	}
	failed := &apiFallbackError{err: err}
	for _, ep := range eps {
		if ctx.Err() != nil {
			failed.tried = append(failed.tried, fmt.Errorf("%s: %w", ep, ctx.Err()))
			break
		}
		epCtx, cancel := context.WithTimeout(ctx, apiFallbackDialTimeout)
		conn, epErr := d.DialContext(epCtx, network, ep)
		cancel()
		if epErr == nil {
			if f.fallingBack.CompareAndSwap(false, true) {
				f.Log.Info("Dialling the API server's endpoints directly, its Service refuses", "service", f.Host, "endpoint", ep, "error", err.Error())
			}
			return conn, nil
		}
		failed.tried = append(failed.tried, epErr)
	}
	return nil, failed
}

// apiFallbackError is a refused dial of the Service with the failed dials
// of the endpoints tried instead.
type apiFallbackError struct {
	err   error
	tried []error
}

func (e *apiFallbackError) Error() string {
	msgs := make([]string, len(e.tried))
	for i, err := range e.tried {
		msgs[i] = err.Error()
	}
	return fmt.Sprintf("%v; the API server's endpoints failed too: %s", e.err, strings.Join(msgs, "; "))
}

func (e *apiFallbackError) Unwrap() []error {
	return append([]error{e.err}, e.tried...)
}

// sameHostPort reports whether a and b name the same host and port, the
// same IP address however it is written.
func sameHostPort(a, b string) bool {
	if a == b {
		return true
	}
	ah, ap, errA := net.SplitHostPort(a)
	bh, bp, errB := net.SplitHostPort(b)
	if errA != nil || errB != nil || ap != bp {
		return false
	}
	aip, errA := netip.ParseAddr(ah)
	bip, errB := netip.ParseAddr(bh)
	return errA == nil && errB == nil && aip.Unmap() == bip.Unmap()
}

// SetEndpoints replaces the remembered endpoints with addrs, "ip:port"
// strings tried in their order; duplicates and empty strings are dropped.
func (f *APIFallback) SetEndpoints(addrs []string) {
	eps := make([]string, 0, len(addrs))
	for _, a := range addrs {
		if a != "" && !slices.Contains(eps, a) {
			eps = append(eps, a)
		}
	}
	if old := f.endpoints.Swap(&eps); old == nil || !slices.Equal(*old, eps) {
		f.Log.Info("Remembering the API server's endpoints for when its Service refuses", "service", f.Host, "endpoints", eps)
	}
}

// Endpoints returns a copy of the remembered endpoints, in the order they
// are tried.
func (f *APIFallback) Endpoints() []string {
	eps := f.endpoints.Load()
	if eps == nil {
		return nil
	}
	return slices.Clone(*eps)
}

// Refresh reads the API server's addresses from the `kubernetes` Service's
// EndpointSlices in the default namespace: each ready address (an unknown
// readiness counts as ready) with the port named "https", or the slice's
// only port if it is unnamed. It remembers them, sorted, if there are any;
// none keeps the ones remembered before, since an API server restart empties
// the slice exactly when they are needed. It returns the list's error.
func (f *APIFallback) Refresh(ctx context.Context, r client.Reader) error {
	var list discoveryv1.EndpointSliceList
	if err := r.List(ctx, &list, client.InNamespace(metav1.NamespaceDefault),
		client.MatchingLabels{discoveryv1.LabelServiceName: "kubernetes"}); err != nil {
		return fmt.Errorf("listing the kubernetes Service's EndpointSlices: %w", err)
	}
	var found []netip.AddrPort
	for _, s := range list.Items {
		if s.AddressType != discoveryv1.AddressTypeIPv4 && s.AddressType != discoveryv1.AddressTypeIPv6 {
			continue
		}
		port, ok := apiServerPort(s.Ports)
		if !ok {
			continue
		}
		for _, ep := range s.Endpoints {
			if ep.Conditions.Ready != nil && !*ep.Conditions.Ready {
				continue
			}
			for _, a := range ep.Addresses {
				if ip, err := netip.ParseAddr(a); err == nil {
					found = append(found, netip.AddrPortFrom(ip.Unmap(), port))
				}
			}
		}
	}
	if len(found) == 0 {
		return nil
	}
	slices.SortFunc(found, netip.AddrPort.Compare)
	addrs := make([]string, len(found))
	for i, ap := range found {
		addrs[i] = ap.String()
	}
	f.SetEndpoints(addrs)
	return nil
}

// apiServerPort is the port named "https" among ports, or the only port if
// it has no name.
func apiServerPort(ports []discoveryv1.EndpointPort) (uint16, bool) {
	valid := func(p discoveryv1.EndpointPort) bool { return p.Port != nil && *p.Port > 0 && *p.Port <= 65535 }
	for _, p := range ports {
		if p.Name != nil && *p.Name == "https" && valid(p) {
			return uint16(*p.Port), true
		}
	}
	if len(ports) == 1 && (ports[0].Name == nil || *ports[0].Name == "") && valid(ports[0]) {
		return uint16(*ports[0].Port), true
	}
	return 0, false
}

// Run calls Refresh at once and then every every (DefaultAPIFallbackRefresh
// if it is not positive) until ctx ends; r is best the manager's cache,
// which serves the list without a request to the API server. Errors are
// logged at V(1): the addresses remembered before stay.
func (f *APIFallback) Run(ctx context.Context, r client.Reader, every time.Duration) {
	if every <= 0 {
		every = DefaultAPIFallbackRefresh
	}
	clk := f.Clock
	if clk == nil {
		clk = clock.RealClock{}
	}
	t := clk.NewTicker(every)
	defer t.Stop()
	for {
		if err := f.Refresh(ctx, r); err != nil && ctx.Err() == nil {
			f.Log.V(1).Info("Could not refresh the API server's endpoints", "error", err.Error())
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C():
		}
	}
}
