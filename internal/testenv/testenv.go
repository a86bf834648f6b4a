// Package testenv starts a real kube-apiserver and etcd (envtest) with the
// lbstack CRDs installed, for tests. The binaries are built by
// `make envtest-assets` into bin/envtest/; KUBEBUILDER_ASSETS points at them
// (make test sets it; a plain `go test` finds them under the repository's
// bin/ by itself).
//
// Without the binaries a test skips loudly, except when CI=true, where a
// missing prerequisite is a failure.
package testenv

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"testing"
	"time"

	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	lbv1 "github.com/lbstack/lbstack/api/v1alpha1"
	"github.com/lbstack/lbstack/internal/cli"
)

// RepoRoot is the repository's top folder.
func RepoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
}

// InCI reports whether the tests run in CI, where nothing may be skipped
// for a missing prerequisite.
func InCI() bool { return os.Getenv("CI") == "true" }

// Skip skips t for a missing prerequisite, or fails it in CI.
func Skip(t testing.TB, format string, args ...any) {
	t.Helper()
	msg := fmt.Sprintf(format, args...)
	if InCI() {
		t.Fatalf("missing prerequisite in CI: %s", msg)
	}
	t.Skipf("SKIPPED, missing prerequisite: %s", msg)
}

// assets returns the folder with kube-apiserver and etcd, or "".
func assets() string {
	if dir := os.Getenv("KUBEBUILDER_ASSETS"); dir != "" {
		return dir
	}
	found, _ := filepath.Glob(filepath.Join(RepoRoot(), "bin", "envtest", "k8s-*", "kube-apiserver"))
	if len(found) == 0 {
		return ""
	}
	sort.Strings(found)
	return filepath.Dir(found[len(found)-1])
}

// Env is a running control plane.
type Env struct {
	env *envtest.Environment
	// Config reaches the API server as an administrator.
	Config *rest.Config
	// Client is a client with the lbstack scheme.
	Client client.Client
}

// Options adjust the environment before it starts.
type Options struct {
	// Webhooks installs these webhook configurations (see envtest.WebhookInstallOptions).
	Webhooks *envtest.WebhookInstallOptions
	// APIServerArgs are extra kube-apiserver flags, name to value.
	APIServerArgs map[string]string
}

// Start starts a control plane, or returns an error saying what is missing.
// The caller must Stop it.
func Start(opts Options) (*Env, error) {
	dir := assets()
	if dir == "" {
		return nil, ErrNoAssets
	}
	env := &envtest.Environment{
		BinaryAssetsDirectory: dir,
		CRDDirectoryPaths:     []string{filepath.Join(RepoRoot(), "config", "crd", "bases")},
		ErrorIfCRDPathMissing: true,
	}
	if opts.Webhooks != nil {
		env.WebhookInstallOptions = *opts.Webhooks
	}
	if len(opts.APIServerArgs) > 0 {
		args := env.ControlPlane.GetAPIServer().Configure()
		for k, v := range opts.APIServerArgs {
			args.Set(k, v)
		}
	}
	cfg, err := env.Start()
	if err != nil {
		return nil, fmt.Errorf("starting kube-apiserver and etcd from %s: %w", dir, err)
	}
	scheme, err := cli.Scheme()
	if err != nil {
		_ = env.Stop()
		return nil, err
	}
	c, err := client.New(cfg, client.Options{Scheme: scheme})
	if err != nil {
		_ = env.Stop()
		return nil, fmt.Errorf("creating client: %w", err)
	}
	// The API server builds each CRD's validators (compiling its CEL
	// rules) on the first request, which takes about a second per kind on
	// a small machine; do it now rather than inside a test's timeout.
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for _, l := range []client.ObjectList{&lbv1.LoadBalancerStackList{}, &lbv1.IPAddressPoolList{}, &lbv1.L2AdvertisementList{},
		&lbv1.BGPAdvertisementList{}, &lbv1.BGPPeerList{}, &lbv1.BFDProfileList{}, &lbv1.CommunityList{}, &lbv1.ServiceAnnouncementList{}} {
		if err := c.List(ctx, l); err != nil {
			_ = env.Stop()
			return nil, fmt.Errorf("warming up %T: %w", l, err)
		}
	}
	return &Env{env: env, Config: cfg, Client: c}, nil
}

// ErrNoAssets says the control-plane binaries were not found.
var ErrNoAssets = fmt.Errorf("kube-apiserver and etcd not found: run `make envtest-assets` or set KUBEBUILDER_ASSETS")

// Stop stops the control plane.
func (e *Env) Stop() error { return e.env.Stop() }

// Environment exposes the underlying envtest environment (webhook install
// options, kubeconfig helpers).
func (e *Env) Environment() *envtest.Environment { return e.env }

// Main runs a package's tests around one control plane that setup
// receives. Without the binaries the package's tests are skipped loudly, or
// fail in CI.
func Main(m *testing.M, opts Options, setup func(*Env)) {
	env, err := Start(opts)
	if err != nil {
		if err == ErrNoAssets && !InCI() {
			fmt.Fprintf(os.Stderr, "SKIPPED, missing prerequisite: %v\n", err)
			os.Exit(0)
		}
		fmt.Fprintf(os.Stderr, "FAIL: %v\n", err)
		os.Exit(1)
	}
	setup(env)
	code := m.Run()
	if err := env.Stop(); err != nil {
		fmt.Fprintf(os.Stderr, "stopping control plane: %v\n", err)
	}
	os.Exit(code)
}

// StartT starts a test API server for one test and stops it when the test
// ends; without the assets it skips (fails under CI=true, see Skip).
func StartT(t testing.TB, opts Options) *Env {
	t.Helper()
	env, err := Start(opts)
	if errors.Is(err, ErrNoAssets) {
		Skip(t, "%v", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = env.Stop() })
	return env
}
