package cli

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/go-logr/logr/funcr"
	"github.com/google/go-cmp/cmp"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clocktesting "k8s.io/utils/clock/testing"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"
)

// refusedAddr returns a 127.0.0.1 address nothing listens on: a port that
// was just opened and closed, so a dial is refused.
func refusedAddr(t *testing.T) string {
	t.Helper()
	return closedPort(t, "127.0.0.1:0")
}

func closedPort(t *testing.T, addr string) string {
	t.Helper()
	l, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	a := l.Addr().String()
	l.Close()
	return a
}

func listen(t *testing.T) net.Listener {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

// exchange checks that conn is connected to a connection l accepts: a
// byte goes each way.
func exchange(t *testing.T, l net.Listener, conn net.Conn) {
	t.Helper()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := l.Accept()
		if err != nil {
			close(accepted)
			return
		}
		accepted <- c
	}()
	var server net.Conn
	select {
	case c, ok := <-accepted:
		if !ok {
			t.Fatal("the listener accepted nothing")
		}
		server = c
	case <-time.After(5 * time.Second):
		t.Fatal("the listener accepted nothing")
	}
	defer server.Close()
	deadline := time.Now().Add(5 * time.Second)
	conn.SetDeadline(deadline)
	server.SetDeadline(deadline)
	buf := make([]byte, 1)
	if _, err := conn.Write([]byte{'q'}); err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(server, buf); err != nil || buf[0] != 'q' {
		t.Fatalf("the listener read %q, %v; want q", buf, err)
	}
	if _, err := server.Write([]byte{'a'}); err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(conn, buf); err != nil || buf[0] != 'a' {
		t.Fatalf("the dialler read %q, %v; want a", buf, err)
	}
}

// logLines is a logger that records its lines.
type logLines struct {
	mu    sync.Mutex
	lines []string
}

func (l *logLines) logger() logr.Logger {
	return funcr.New(func(prefix, args string) {
		l.mu.Lock()
		defer l.mu.Unlock()
		l.lines = append(l.lines, args)
	}, funcr.Options{Verbosity: 1})
}

func (l *logLines) count(substr string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, line := range l.lines {
		if strings.Contains(line, substr) {
			n++
		}
	}
	return n
}

func TestAPIFallbackDialsAnEndpointWhenTheServiceRefuses(t *testing.T) {
	live := listen(t)
	var logs logLines
	f := &APIFallback{Host: refusedAddr(t), Log: logs.logger()}
	// The first endpoint refuses too: the next one is tried.
	f.SetEndpoints([]string{refusedAddr(t), live.Addr().String()})

	for range 3 {
		conn, err := f.DialContext(t.Context(), "tcp", f.Host)
		if err != nil {
			t.Fatalf("DialContext(%s) = %v; want a connection to %s", f.Host, err, live.Addr())
		}
		exchange(t, live, conn)
		conn.Close()
	}
	if n := logs.count("Dialling the API server's endpoints directly"); n != 1 {
		t.Errorf("the fallback was logged %d times in 3 dials; want once, when it started\n%s", n, strings.Join(logs.lines, "\n"))
	}

	// The Service answers again: dials go to it, and that is logged once.
	service, err := net.Listen("tcp", f.Host)
	if err != nil {
		t.Skipf("cannot listen on %s again to play the Service: %v", f.Host, err)
	}
	defer service.Close()
	for range 2 {
		conn, err := f.DialContext(t.Context(), "tcp", f.Host)
		if err != nil {
			t.Fatal(err)
		}
		exchange(t, service, conn)
		conn.Close()
	}
	if n := logs.count("Reaching the API server through its Service again"); n != 1 {
		t.Errorf("the return to the Service was logged %d times; want once\n%s", n, strings.Join(logs.lines, "\n"))
	}
}

func TestAPIFallbackDialsOtherAddressesAsIs(t *testing.T) {
	live := listen(t)
	f := &APIFallback{Host: refusedAddr(t)}
	f.SetEndpoints([]string{live.Addr().String()})

	other := refusedAddr(t)
	conn, err := f.DialContext(t.Context(), "tcp", other)
	if err == nil {
		conn.Close()
		t.Fatalf("DialContext(%s) connected (to %s); want it refused, with no fallback for an address other than Host", other, conn.RemoteAddr())
	}
	if !errors.Is(err, syscall.ECONNREFUSED) {
		t.Errorf("DialContext(%s) = %v; want connection refused", other, err)
	}
	if strings.Contains(err.Error(), live.Addr().String()) {
		t.Errorf("the error %q names the endpoint; none should have been tried", err)
	}
	// Nothing reached the endpoint.
	live.(*net.TCPListener).SetDeadline(time.Now().Add(100 * time.Millisecond))
	if c, err := live.Accept(); err == nil {
		c.Close()
		t.Error("the endpoint was dialled for an address other than Host")
	}
}

func TestAPIFallbackReportsEveryFailure(t *testing.T) {
	t.Run("all endpoints refuse", func(t *testing.T) {
		f := &APIFallback{Host: refusedAddr(t)}
		eps := []string{refusedAddr(t), refusedAddr(t)}
		f.SetEndpoints(eps)
		conn, err := f.DialContext(t.Context(), "tcp", f.Host)
		if err == nil {
			conn.Close()
			t.Fatal("DialContext connected; every address refuses")
		}
		for _, a := range append([]string{f.Host}, eps...) {
			if !strings.Contains(err.Error(), a) {
				t.Errorf("the error %q does not name %s", err, a)
			}
		}
		if !errors.Is(err, syscall.ECONNREFUSED) || !Unreachable(err) {
			t.Errorf("the error %q is not a refused, unreachable API server: the reflector's retries would not see it as such", err)
		}
	})
	t.Run("no endpoints remembered", func(t *testing.T) {
		f := &APIFallback{Host: refusedAddr(t)}
		_, err := f.DialContext(t.Context(), "tcp", f.Host)
		var op *net.OpError
		if !errors.As(err, &op) || !errors.Is(err, syscall.ECONNREFUSED) {
			t.Errorf("DialContext = %v; want the dial's own refusal", err)
		}
	})
	t.Run("the context ended", func(t *testing.T) {
		live := listen(t)
		f := &APIFallback{Host: refusedAddr(t)}
		f.SetEndpoints([]string{live.Addr().String()})
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		if conn, err := f.DialContext(ctx, "tcp", f.Host); err == nil {
			conn.Close()
			t.Error("DialContext connected with a cancelled context")
		}
	})
}

func TestAPIFallbackSetEndpoints(t *testing.T) {
	f := &APIFallback{}
	if eps := f.Endpoints(); eps != nil {
		t.Errorf("Endpoints() = %v before SetEndpoints; want none", eps)
	}
	f.SetEndpoints([]string{"192.0.2.2:6443", "", "192.0.2.1:6443", "192.0.2.2:6443", "[2001:db8::1]:6443"})
	want := []string{"192.0.2.2:6443", "192.0.2.1:6443", "[2001:db8::1]:6443"}
	got := f.Endpoints()
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Endpoints() (-want +got):\n%s", diff)
	}
	got[0] = "changed"
	if f.Endpoints()[0] != want[0] {
		t.Error("Endpoints() returned the remembered slice itself, not a copy")
	}
}

func TestAPIFallbackMatchesHostHoweverWritten(t *testing.T) {
	for name, tc := range map[string]struct {
		a, b string
		same bool
	}{
		"equal":                         {"10.96.0.1:443", "10.96.0.1:443", true},
		"IPv6 written two ways":         {"[fd00:0::1]:443", "[fd00::1]:443", true},
		"IPv4-mapped IPv6":              {"[::ffff:10.96.0.1]:443", "10.96.0.1:443", true},
		"other port":                    {"10.96.0.1:443", "10.96.0.1:6443", false},
		"other address":                 {"10.96.0.1:443", "10.96.0.2:443", false},
		"names are compared as written": {"kubernetes:443", "kubernetes.default:443", false},
	} {
		t.Run(name, func(t *testing.T) {
			if got := sameHostPort(tc.a, tc.b); got != tc.same {
				t.Errorf("sameHostPort(%q, %q) = %v; want %v", tc.a, tc.b, got, tc.same)
			}
		})
	}
}

func apiSlice(namespace, name, service string, family discoveryv1.AddressType, ports []discoveryv1.EndpointPort, eps ...discoveryv1.Endpoint) *discoveryv1.EndpointSlice {
	return &discoveryv1.EndpointSlice{
		ObjectMeta: metav1.ObjectMeta{
			Namespace: namespace, Name: name,
			Labels: map[string]string{discoveryv1.LabelServiceName: service},
		},
		AddressType: family,
		Ports:       ports,
		Endpoints:   eps,
	}
}

func endpoint(ready *bool, addrs ...string) discoveryv1.Endpoint {
	return discoveryv1.Endpoint{Addresses: addrs, Conditions: discoveryv1.EndpointConditions{Ready: ready}}
}

func discoveryScheme(t *testing.T) *runtime.Scheme {
	t.Helper()
	s := runtime.NewScheme()
	if err := discoveryv1.AddToScheme(s); err != nil {
		t.Fatal(err)
	}
	return s
}

func TestAPIFallbackRefresh(t *testing.T) {
	https := []discoveryv1.EndpointPort{{Name: ptr.To("https"), Port: ptr.To[int32](6443)}}
	c := fake.NewClientBuilder().WithScheme(discoveryScheme(t)).WithObjects(
		apiSlice("default", "kubernetes", "kubernetes", discoveryv1.AddressTypeIPv4,
			[]discoveryv1.EndpointPort{{Name: ptr.To("metrics"), Port: ptr.To[int32](9000)}, https[0]},
			endpoint(nil, "192.0.2.12"), endpoint(ptr.To(true), "192.0.2.11"), endpoint(ptr.To(false), "192.0.2.13")),
		apiSlice("default", "kubernetes-v6", "kubernetes", discoveryv1.AddressTypeIPv6,
			[]discoveryv1.EndpointPort{{Port: ptr.To[int32](6443)}}, endpoint(ptr.To(true), "2001:db8::1")),
		apiSlice("default", "kubernetes-fqdn", "kubernetes", discoveryv1.AddressTypeFQDN, https, endpoint(nil, "api.example.com")),
		apiSlice("default", "kubernetes-no-https", "kubernetes", discoveryv1.AddressTypeIPv4,
			[]discoveryv1.EndpointPort{{Name: ptr.To("metrics"), Port: ptr.To[int32](9000)}}, endpoint(nil, "192.0.2.14")),
		apiSlice("default", "other", "other", discoveryv1.AddressTypeIPv4, https, endpoint(nil, "192.0.2.21")),
		apiSlice("kube-system", "kubernetes", "kubernetes", discoveryv1.AddressTypeIPv4, https, endpoint(nil, "192.0.2.22")),
	).Build()

	f := &APIFallback{Host: "10.96.0.1:443"}
	if err := f.Refresh(t.Context(), c); err != nil {
		t.Fatal(err)
	}
	want := []string{"192.0.2.11:6443", "192.0.2.12:6443", "[2001:db8::1]:6443"}
	if diff := cmp.Diff(want, f.Endpoints()); diff != "" {
		t.Fatalf("Endpoints() after Refresh (-want +got):\n%s", diff)
	}

	// An API server restart empties the slices, or leaves them not ready:
	// the addresses remembered before stay.
	for _, name := range []string{"kubernetes", "kubernetes-v6"} {
		s := &discoveryv1.EndpointSlice{}
		if err := c.Get(t.Context(), client.ObjectKey{Namespace: "default", Name: name}, s); err != nil {
			t.Fatal(err)
		}
		s.Endpoints = nil
		if name == "kubernetes" {
			s.Endpoints = []discoveryv1.Endpoint{endpoint(ptr.To(false), "192.0.2.11")}
		}
		if err := c.Update(t.Context(), s); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.Refresh(t.Context(), c); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, f.Endpoints()); diff != "" {
		t.Errorf("Endpoints() after the slices emptied (-want +got):\n%s", diff)
	}

	// A new set replaces the old one.
	s := &discoveryv1.EndpointSlice{}
	if err := c.Get(t.Context(), client.ObjectKey{Namespace: "default", Name: "kubernetes"}, s); err != nil {
		t.Fatal(err)
	}
	s.Endpoints = []discoveryv1.Endpoint{endpoint(nil, "192.0.2.15")}
	if err := c.Update(t.Context(), s); err != nil {
		t.Fatal(err)
	}
	if err := f.Refresh(t.Context(), c); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"192.0.2.15:6443"}, f.Endpoints()); diff != "" {
		t.Errorf("Endpoints() after the slice changed (-want +got):\n%s", diff)
	}

	// A list error is returned and changes nothing.
	broken := interceptor.NewClient(c, interceptor.Funcs{List: func(context.Context, client.WithWatch, client.ObjectList, ...client.ListOption) error {
		return errors.New("cache not started")
	}})
	if err := f.Refresh(t.Context(), broken); err == nil || !strings.Contains(err.Error(), "cache not started") {
		t.Errorf("Refresh with a failing list = %v; want its error", err)
	}
	if diff := cmp.Diff([]string{"192.0.2.15:6443"}, f.Endpoints()); diff != "" {
		t.Errorf("Endpoints() after a failed list (-want +got):\n%s", diff)
	}
}

func TestAPIFallbackRunRefreshesEveryInterval(t *testing.T) {
	https := []discoveryv1.EndpointPort{{Name: ptr.To("https"), Port: ptr.To[int32](6443)}}
	c := fake.NewClientBuilder().WithScheme(discoveryScheme(t)).WithObjects(
		apiSlice("default", "kubernetes", "kubernetes", discoveryv1.AddressTypeIPv4, https, endpoint(nil, "192.0.2.1")),
	).Build()
	clk := clocktesting.NewFakeClock(time.Now())
	f := &APIFallback{Host: "10.96.0.1:443", Clock: clk}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() {
		defer close(done)
		f.Run(ctx, c, DefaultAPIFallbackRefresh)
	}()

	waitEndpoints := func(want ...string) {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for !slices.Equal(f.Endpoints(), want) {
			if time.Now().After(deadline) {
				t.Fatalf("Endpoints() = %v; want %v", f.Endpoints(), want)
			}
			time.Sleep(time.Millisecond)
		}
	}
	waitEndpoints("192.0.2.1:6443") // at once

	s := &discoveryv1.EndpointSlice{}
	if err := c.Get(t.Context(), client.ObjectKey{Namespace: "default", Name: "kubernetes"}, s); err != nil {
		t.Fatal(err)
	}
	s.Endpoints = []discoveryv1.Endpoint{endpoint(nil, "192.0.2.2")}
	if err := c.Update(t.Context(), s); err != nil {
		t.Fatal(err)
	}
	clk.Step(DefaultAPIFallbackRefresh - time.Millisecond)
	time.Sleep(20 * time.Millisecond)
	if got := f.Endpoints(); !slices.Equal(got, []string{"192.0.2.1:6443"}) {
		t.Fatalf("Endpoints() = %v before the interval passed; want the first read's", got)
	}
	clk.Step(time.Millisecond)
	waitEndpoints("192.0.2.2:6443")

	cancel()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return when its context ended")
	}
}

func TestAPIFallbackConcurrentUse(t *testing.T) {
	live := listen(t)
	go func() {
		for {
			c, err := live.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	f := &APIFallback{Host: refusedAddr(t)}
	refusing := refusedAddr(t)
	f.SetEndpoints([]string{live.Addr().String()})

	var wg sync.WaitGroup
	errs := make(chan error, 200)
	for i := range 4 {
		wg.Go(func() {
			for j := range 25 {
				if (i+j)%2 == 0 {
					f.SetEndpoints([]string{refusing, live.Addr().String()})
				} else {
					f.SetEndpoints([]string{live.Addr().String()})
				}
				_ = f.Endpoints()
			}
		})
		wg.Go(func() {
			for range 25 {
				conn, err := f.DialContext(t.Context(), "tcp", f.Host)
				if err != nil {
					errs <- err
					continue
				}
				conn.Close()
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("DialContext while the endpoints change: %v (every set has the live endpoint)", err)
	}
}

// TestAPIFallbackKeepsTLSVerification dials, through the fallback, a TLS
// server whose certificate names 127.0.0.1 and ::1 (httptest's): a request
// to a refused 127.0.0.1 Host reaches it, one to a refused 127.0.0.2 Host
// fails verification — the certificate is checked against the Host the
// client asked for, not the endpoint dialled.
func TestAPIFallbackKeepsTLSVerification(t *testing.T) {
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "api server")
	}))
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // the refused handshake
	srv.StartTLS()
	defer srv.Close()
	roots := x509.NewCertPool()
	roots.AddCert(srv.Certificate())

	get := func(host string) (string, error) {
		f := &APIFallback{Host: host}
		f.SetEndpoints([]string{srv.Listener.Addr().String()})
		tr := &http.Transport{DialContext: f.DialContext, TLSClientConfig: &tls.Config{RootCAs: roots}}
		defer tr.CloseIdleConnections()
		req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, "https://"+host+"/", nil)
		if err != nil {
			return "", err
		}
		resp, err := (&http.Client{Transport: tr, Timeout: 10 * time.Second}).Do(req)
		if err != nil {
			return "", err
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		return string(body), err
	}

	host := refusedAddr(t)
	body, err := get(host)
	if err != nil || body != "api server" {
		t.Fatalf("GET https://%s/ through the fallback = %q, %v; want the server's answer", host, body, err)
	}

	other, err := net.Listen("tcp", "127.0.0.2:0")
	if err != nil {
		t.Skipf("no 127.0.0.2 on this machine: %v", err)
	}
	host = other.Addr().String()
	other.Close()
	_, err = get(host)
	var invalid x509.HostnameError
	if !errors.As(err, &invalid) {
		t.Errorf("GET https://%s/ through the fallback = %v; want a certificate not valid for 127.0.0.2", host, err)
	}
}
