package cli_test

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	certutil "k8s.io/client-go/util/cert"
	crmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"

	"github.com/lbstack/lbstack/internal/cli"
	"github.com/lbstack/lbstack/internal/testenv"
	"github.com/lbstack/lbstack/internal/version"
)

// TestMetricsFlags: every component serves its metrics securely unless
// told otherwise, and a certificate folder goes only with secure serving.
func TestMetricsFlags(t *testing.T) {
	var o cli.ManagerOptions
	fs := flag.NewFlagSet("x", flag.ContinueOnError)
	o.AddFlags(fs, ":7472", ":7473", true)
	if err := fs.Parse(nil); err != nil {
		t.Fatal(err)
	}
	if !o.MetricsSecure {
		t.Error("--metrics-secure is off by default")
	}
	m, err := o.MetricsServerOptions()
	if err != nil || !m.SecureServing || m.FilterProvider == nil {
		t.Errorf("default metrics options: secure %v, filter %v, err %v", m.SecureServing, m.FilterProvider != nil, err)
	}
	if _, err := (cli.ManagerOptions{MetricsSecure: true, MetricsCertDir: t.TempDir()}).MetricsServerOptions(); err == nil {
		t.Error("a certificate folder without tls.crt and tls.key is accepted")
	}
	if _, err := (cli.ManagerOptions{MetricsCertDir: t.TempDir()}).MetricsServerOptions(); err == nil {
		t.Error("--metrics-cert-dir is accepted with --metrics-secure=false")
	}
	m, err = (cli.ManagerOptions{MetricsAddr: ":1"}).MetricsServerOptions()
	if err != nil || m.SecureServing || m.FilterProvider != nil {
		t.Errorf("insecure metrics options: secure %v, filter %v, err %v", m.SecureServing, m.FilterProvider != nil, err)
	}
}

// TestSecureMetrics runs a manager with secure metrics against a real API
// server: a caller without a token is refused (401), one whose
// ServiceAccount may not get /metrics is forbidden (403), and one bound to
// config/rbac's metrics-reader ClusterRole reads lbstack_build_info, over
// HTTPS with the certificate from --metrics-cert-dir.
func TestSecureMetrics(t *testing.T) {
	env := testenv.StartT(t, testenv.Options{})
	if err := crmetrics.Registry.Register(version.BuildInfo("test")); err != nil && !errors.As(err, new(prometheus.AlreadyRegisteredError)) {
		t.Fatal(err)
	}
	// Tokens and bindings first: the filter caches a denial for 30 s.
	denied := env.MetricsToken(t, "default", "scraper-denied", false)
	allowed := env.MetricsToken(t, "default", "scraper", true)

	certDir := t.TempDir()
	crt, key, err := certutil.GenerateSelfSignedCertKey("lbstack-metrics.test", []net.IP{net.IPv4(127, 0, 0, 1)}, nil)
	if err != nil {
		t.Fatal(err)
	}
	for name, b := range map[string][]byte{"tls.crt": crt, "tls.key": key} {
		if err := os.WriteFile(filepath.Join(certDir, name), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	addr := testenv.FreeAddr(t)
	o := cli.ManagerOptions{MetricsAddr: addr, ProbeAddr: "0", MetricsSecure: true, MetricsCertDir: certDir}
	mgr, err := o.NewManager(env.Config, nil)
	if err != nil {
		t.Fatal(err)
	}
	testenv.RunManager(t, mgr)

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for {
		code, _, err := testenv.ScrapeMetrics(ctx, addr, "")
		if err == nil {
			if code != http.StatusUnauthorized {
				t.Errorf("without a token: status %d, want 401", code)
			}
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("the metrics server does not answer: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if code, body, err := testenv.ScrapeMetrics(ctx, addr, denied); err != nil || code != http.StatusForbidden {
		t.Errorf("with the token of a ServiceAccount that may not get /metrics: status %d, err %v, want 403\n%s", code, err, body)
	}
	code, body, err := testenv.ScrapeMetrics(ctx, addr, allowed)
	if err != nil || code != http.StatusOK {
		t.Fatalf("with a metrics-reader token: status %d, err %v, want 200\n%s", code, err, body)
	}
	if want := `lbstack_build_info{component="test"`; !strings.Contains(body, want) {
		t.Errorf("metrics lack %s...", want)
	}

	// The certificate served is the one in the folder, over HTTP/1.1 only.
	conn, err := tls.Dial("tcp", addr, &tls.Config{InsecureSkipVerify: true, NextProtos: []string{"h2", "http/1.1"}}) //nolint:gosec // checking the certificate by hand
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	st := conn.ConnectionState()
	want, err := certutil.ParseCertsPEM(crt)
	if err != nil {
		t.Fatal(err)
	}
	if len(st.PeerCertificates) == 0 || !st.PeerCertificates[0].Equal(want[0]) {
		t.Error("the served certificate is not the one in --metrics-cert-dir")
	}
	if st.NegotiatedProtocol == "h2" {
		t.Error("the metrics server speaks HTTP/2")
	}
	refusesOldTLS(t, addr)

	// Plain HTTP gets no metrics.
	resp, err := http.Get("http://" + addr + "/metrics")
	if err == nil {
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if strings.Contains(string(b), "lbstack_build_info") {
			t.Error("the secure metrics server serves plain HTTP")
		}
	}
}

// refusesOldTLS: a client that offers at most TLS 1.1 gets no connection.
func refusesOldTLS(t *testing.T, addr string) {
	t.Helper()
	for _, v := range []uint16{tls.VersionTLS10, tls.VersionTLS11} {
		conn, err := tls.Dial("tcp", addr, &tls.Config{InsecureSkipVerify: true, MinVersion: v, MaxVersion: v}) //nolint:gosec // the handshake must fail before any certificate matters
		if err == nil {
			conn.Close()
			t.Errorf("the metrics server accepted %s", tls.VersionName(v))
		}
	}
}
