package testenv

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	authenticationv1 "k8s.io/api/authentication/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"
)

// MetricsReaderRole returns the ClusterRole of
// config/rbac/metrics_reader_role.yaml, the one Prometheus is bound to.
func MetricsReaderRole(t testing.TB) *rbacv1.ClusterRole {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(RepoRoot(), "config", "rbac", "metrics_reader_role.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var role rbacv1.ClusterRole
	if err := yaml.UnmarshalStrict(b, &role); err != nil {
		t.Fatalf("config/rbac/metrics_reader_role.yaml: %v", err)
	}
	return &role
}

// MetricsToken creates the ServiceAccount namespace/name and returns a
// token of it (TokenRequest API). With reader, the ServiceAccount is
// bound to config/rbac's metrics-reader ClusterRole (created under a name
// of its own), so the token may scrape the components' secure metrics, and
// MetricsToken returns once the API server's RBAC says so (a component's
// filter caches a denial for 30 s); without, it authenticates but may not.
// Everything is deleted when t ends.
func (e *Env) MetricsToken(t testing.TB, namespace, name string, reader bool) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name}}
	objs := []client.Object{sa}
	if reader {
		role := MetricsReaderRole(t)
		role.Name = "metrics-reader-" + namespace + "-" + name
		objs = append(objs, role, &rbacv1.ClusterRoleBinding{
			ObjectMeta: metav1.ObjectMeta{Name: role.Name},
			RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: role.Name},
			Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Namespace: namespace, Name: name}},
		})
	}
	for _, o := range objs {
		if err := e.Client.Create(ctx, o); err != nil && !apierrors.IsAlreadyExists(err) {
			t.Fatalf("creating %T %s: %v", o, o.GetName(), err)
		}
		t.Cleanup(func() { _ = e.Client.Delete(context.Background(), o) })
	}
	cs, err := kubernetes.NewForConfig(e.Config)
	if err != nil {
		t.Fatal(err)
	}
	tr, err := cs.CoreV1().ServiceAccounts(namespace).CreateToken(ctx, name,
		&authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: ptr.To[int64](3600)}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("requesting a token of ServiceAccount %s/%s: %v", namespace, name, err)
	}
	for user := "system:serviceaccount:" + namespace + ":" + name; reader; time.Sleep(50 * time.Millisecond) {
		sar, err := cs.AuthorizationV1().SubjectAccessReviews().Create(ctx, &authorizationv1.SubjectAccessReview{
			Spec: authorizationv1.SubjectAccessReviewSpec{User: user, NonResourceAttributes: &authorizationv1.NonResourceAttributes{Path: "/metrics", Verb: "get"}},
		}, metav1.CreateOptions{})
		if err == nil && sar.Status.Allowed {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("%s may not get /metrics yet: %v", user, err)
		}
	}
	return tr.Status.Token
}

// ScrapeMetrics gets https://addr/metrics with token as bearer token (none
// when empty), as Prometheus with insecureSkipVerify does (the components'
// certificate is self-signed), and returns the status code and the body.
func ScrapeMetrics(ctx context.Context, addr, token string) (int, string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "https://"+addr+"/metrics", nil)
	if err != nil {
		return 0, "", err
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, //nolint:gosec // a self-signed certificate, as Prometheus's insecureSkipVerify
	}}
	resp, err := c.Do(req)
	if err != nil {
		return 0, "", fmt.Errorf("scraping %s: %w", addr, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body), err
}

// MetricValue returns the value of the series of metric name whose labels
// include labels (the first such series), gathered from g: a counter's,
// a gauge's or an untyped metric's value; ok is false when there is none.
func MetricValue(g prometheus.Gatherer, name string, labels map[string]string) (v float64, ok bool, err error) {
	families, err := g.Gather()
	if err != nil {
		return 0, false, err
	}
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
	series:
		for _, m := range f.GetMetric() {
			have := map[string]string{}
			for _, l := range m.GetLabel() {
				have[l.GetName()] = l.GetValue()
			}
			for k, want := range labels {
				if have[k] != want {
					continue series
				}
			}
			switch {
			case m.GetCounter() != nil:
				return m.GetCounter().GetValue(), true, nil
			case m.GetGauge() != nil:
				return m.GetGauge().GetValue(), true, nil
			case m.GetUntyped() != nil:
				return m.GetUntyped().GetValue(), true, nil
			}
		}
	}
	return 0, false, nil
}

// FreeAddr returns a loopback address with a port nobody listens on now,
// for a component's metrics or probe server.
func FreeAddr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}
