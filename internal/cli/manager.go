package cli

import (
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	"sigs.k8s.io/controller-runtime/pkg/metrics/filters"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	lbv1 "github.com/lbstack/lbstack/api/v1alpha1"
)

// ManagerOptions are the flags shared by the subcommands that run a
// controller-runtime manager.
type ManagerOptions struct {
	// Kubeconfig is a kubeconfig path; empty uses the in-cluster config.
	Kubeconfig string
	// MetricsAddr is the Prometheus metrics listen address; "0" disables it.
	MetricsAddr string
	// MetricsSecure serves the metrics over HTTPS to authenticated and
	// authorized callers only: a bearer token the API server accepts
	// (TokenReview) whose user may get the non-resource URL /metrics
	// (SubjectAccessReview). AddFlags turns it on; the zero value serves
	// plain HTTP to anyone (tests, labs).
	MetricsSecure bool
	// MetricsCertDir holds the metrics server's tls.crt and tls.key; empty:
	// a self-signed certificate generated at start. Only with MetricsSecure.
	MetricsCertDir string
	// ProbeAddr is the /healthz and /readyz listen address; "0" disables it.
	ProbeAddr string
	// PprofAddr serves net/http/pprof for profiling; "" or "0" disables it.
	PprofAddr string
	// LeaderElect turns leader election on.
	LeaderElect bool
	// LeaderElectionID names the Lease.
	LeaderElectionID string
	// LeaderElectionNamespace is the Lease's namespace.
	LeaderElectionNamespace string
	// LeaseDuration, RenewDeadline and RetryPeriod tune leader election.
	LeaseDuration, RenewDeadline, RetryPeriod time.Duration
}

// AddFlags registers the manager flags on fs. defaultMetrics and
// defaultProbe are the component's default listen addresses.
func (o *ManagerOptions) AddFlags(fs *flag.FlagSet, defaultMetrics, defaultProbe string, leaderElect bool) {
	fs.StringVar(&o.Kubeconfig, "kubeconfig", "", "path to a kubeconfig; empty uses the in-cluster configuration")
	fs.StringVar(&o.MetricsAddr, "metrics-bind-address", defaultMetrics, "address the Prometheus metrics endpoint listens on; 0 disables it")
	fs.BoolVar(&o.MetricsSecure, "metrics-secure", true, "serve the metrics over HTTPS, only to callers whose bearer token the API server authenticates and authorizes to get /metrics; false serves plain HTTP to anyone")
	fs.StringVar(&o.MetricsCertDir, "metrics-cert-dir", "", "folder with the metrics server's tls.crt and tls.key (with --metrics-secure); empty: a self-signed certificate generated at start")
	fs.StringVar(&o.PprofAddr, "pprof-bind-address", "", "address net/http/pprof listens on, for profiling (keep it on localhost); empty disables it")
	fs.StringVar(&o.ProbeAddr, "health-probe-bind-address", defaultProbe, "address the /healthz and /readyz endpoints listen on; 0 disables them")
	fs.BoolVar(&o.LeaderElect, "leader-elect", leaderElect, "run leader election so only one replica is active")
	fs.StringVar(&o.LeaderElectionNamespace, "leader-election-namespace", "", "namespace of the leader-election Lease; empty uses the pod's namespace")
	fs.DurationVar(&o.LeaseDuration, "leader-election-lease-duration", 15*time.Second, "how long a leader's lease is valid")
	fs.DurationVar(&o.RenewDeadline, "leader-election-renew-deadline", 10*time.Second, "how long the leader retries renewing before it gives up")
	fs.DurationVar(&o.RetryPeriod, "leader-election-retry-period", 2*time.Second, "how often candidates try to acquire the lease")
}

// RESTConfig loads the Kubernetes client configuration.
func (o ManagerOptions) RESTConfig() (*rest.Config, error) {
	if o.Kubeconfig == "" {
		cfg, err := rest.InClusterConfig()
		if err != nil {
			return nil, fmt.Errorf("loading in-cluster configuration (pass --kubeconfig outside a cluster): %w", err)
		}
		cfg.QPS = -1
		return cfg, nil
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", o.Kubeconfig)
	if err != nil {
		return nil, fmt.Errorf("loading kubeconfig %s: %w", o.Kubeconfig, err)
	}
	// No client-side rate limit (client-go's default is 5 QPS per
	// resource); the API server's priority and fairness protects it.
	cfg.QPS = -1
	return cfg, nil
}

// Scheme returns a scheme with the built-in kinds and lbstack.io/v1alpha1.
func Scheme() (*runtime.Scheme, error) {
	s := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(s); err != nil {
		return nil, fmt.Errorf("adding client-go kinds to scheme: %w", err)
	}
	if err := lbv1.AddToScheme(s); err != nil {
		return nil, fmt.Errorf("adding lbstack.io kinds to scheme: %w", err)
	}
	return s, nil
}

// NewManager builds a manager from the options with health and readiness
// checks installed. extra may adjust the manager.Options before use.
func (o ManagerOptions) NewManager(cfg *rest.Config, extra func(*manager.Options)) (manager.Manager, error) {
	scheme, err := Scheme()
	if err != nil {
		return nil, err
	}
	metrics, err := o.MetricsServerOptions()
	if err != nil {
		return nil, err
	}
	opts := manager.Options{
		Scheme:                  scheme,
		Metrics:                 metrics,
		HealthProbeBindAddress:  o.ProbeAddr,
		PprofBindAddress:        o.PprofAddr,
		LeaderElection:          o.LeaderElect,
		LeaderElectionID:        o.LeaderElectionID,
		LeaderElectionNamespace: o.LeaderElectionNamespace,
		LeaseDuration:           &o.LeaseDuration,
		RenewDeadline:           &o.RenewDeadline,
		RetryPeriod:             &o.RetryPeriod,
		// Release the lease on SIGTERM so a standby takes over at once.
		LeaderElectionReleaseOnCancel: true,
	}
	if extra != nil {
		extra(&opts)
	}
	if opts.Cache.NewInformer == nil {
		// Informers that see the API server's return within
		// ReconnectInterval, not after the reflector's backoff.
		opts.Cache.NewInformer = NewReconnectingInformer
	}
	mgr, err := ctrl.NewManager(cfg, opts)
	if err != nil {
		return nil, fmt.Errorf("creating manager: %w", err)
	}
	if err := mgr.AddHealthzCheck("ping", healthz.Ping); err != nil {
		return nil, fmt.Errorf("adding health check: %w", err)
	}
	if err := mgr.AddReadyzCheck("ping", healthz.Ping); err != nil {
		return nil, fmt.Errorf("adding readiness check: %w", err)
	}
	return mgr, nil
}

// MinTLSVersion is the oldest TLS version any lbstack server accepts.
const MinTLSVersion = tls.VersionTLS12

// HardenTLS configures every TLS server lbstack runs (the metrics servers
// and the operator's webhook server): TLS 1.2 or newer, and HTTP/1.1 only,
// out of reach of HTTP/2's Rapid Reset and stream floods (CVE-2023-44487,
// CVE-2023-39325), as kubebuilder's scaffold does by default.
func HardenTLS(c *tls.Config) {
	c.MinVersion = MinTLSVersion
	c.NextProtos = []string{"http/1.1"}
}

// MetricsServerOptions returns the metrics server's options. With
// MetricsSecure it serves HTTPS (HTTP/1.1 only, as kubebuilder's scaffold
// does by default, out of reach of HTTP/2's Rapid Reset attack) behind
// controller-runtime's authentication and authorization filter, which asks
// the API server (TokenReview, SubjectAccessReview) about every caller. A
// certificate folder that lacks the certificate or the key is an error, not
// a silent fall-back to a self-signed certificate.
func (o ManagerOptions) MetricsServerOptions() (metricsserver.Options, error) {
	m := metricsserver.Options{BindAddress: o.MetricsAddr}
	if !o.MetricsSecure {
		if o.MetricsCertDir != "" {
			return m, errors.New("--metrics-cert-dir needs --metrics-secure")
		}
		return m, nil
	}
	m.SecureServing = true
	m.FilterProvider = filters.WithAuthenticationAndAuthorization
	m.TLSOpts = []func(*tls.Config){HardenTLS}
	if o.MetricsCertDir != "" {
		// controller-runtime's default names of the certificate and key.
		for _, f := range []string{"tls.crt", "tls.key"} {
			if _, err := os.Stat(filepath.Join(o.MetricsCertDir, f)); err != nil {
				return m, fmt.Errorf("--metrics-cert-dir: %w", err)
			}
		}
		m.CertDir = o.MetricsCertDir
	}
	return m, nil
}
