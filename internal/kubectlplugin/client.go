package kubectlplugin

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os/signal"
	"syscall"

	appsv1 "k8s.io/api/apps/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/lbstack/lbstack/internal/cli"
	"github.com/lbstack/lbstack/internal/render"
)

// defaultLBStackNamespace is where `kubectl apply -k`, Helm and OLM
// install lbstack unless told otherwise.
const defaultLBStackNamespace = "lbstack-system"

func signalContext(parent context.Context) (context.Context, context.CancelFunc) {
	return signal.NotifyContext(parent, syscall.SIGINT, syscall.SIGTERM)
}

// connect builds the client from the kubeconfig (or RESTConfig) and
// resolves the namespace.
func (o *Options) connect() error {
	if o.client != nil {
		return nil
	}
	cfg := o.RESTConfig
	ns := "default"
	if cfg == nil {
		rules := clientcmd.NewDefaultClientConfigLoadingRules()
		rules.ExplicitPath = o.Kubeconfig
		overrides := &clientcmd.ConfigOverrides{CurrentContext: o.KubeContext}
		cc := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, overrides)
		var err error
		if cfg, err = cc.ClientConfig(); err != nil {
			return fmt.Errorf("loading the kubeconfig: %w", err)
		}
		if n, _, err := cc.Namespace(); err == nil && n != "" {
			ns = n
		}
	}
	if !o.namespaceExplicit || o.Namespace == "" {
		o.Namespace = ns
	}
	cfg = rest.CopyConfig(cfg)
	cfg.UserAgent = "kubectl-lbstack"
	scheme, err := cli.Scheme()
	if err != nil {
		return err
	}
	c, err := client.NewWithWatch(cfg, client.Options{Scheme: scheme})
	if err != nil {
		return apiError(cfg.Host, "connecting", err)
	}
	o.client, o.host = c, cfg.Host
	return nil
}

// read wraps an error of a read of what (for example "list Services in
// namespace default") so the user learns what failed and what to do.
func (o *Options) read(what string, err error) error {
	if err == nil {
		return nil
	}
	return apiError(o.host, what, err)
}

// apiError turns the API errors users meet into messages that say what
// to do.
func apiError(host, what string, err error) error {
	var urlErr *url.Error
	var netErr net.Error
	switch {
	case apierrors.IsForbidden(err):
		return fmt.Errorf("cannot %s: RBAC forbids it (%s); ask for read access to it, or see docs/kubectl-plugin.md for the permissions each command needs", what, statusMessage(err))
	case apierrors.IsUnauthorized(err):
		return fmt.Errorf("cannot %s: the API server at %s did not accept the credentials (expired token or certificate?): %v", what, host, err)
	case meta.IsNoMatchError(err) || apierrors.IsNotFound(err) && isNoKind(err):
		return fmt.Errorf("cannot %s: the lbstack CRDs are not installed in this cluster (%v)", what, err)
	case errors.Is(err, context.DeadlineExceeded):
		return fmt.Errorf("cannot %s: the API server at %s did not answer in time (--request-timeout): %v", what, host, err)
	case errors.As(err, &urlErr) || errors.As(err, &netErr):
		return fmt.Errorf("cannot reach the Kubernetes API server at %s to %s: %v (check --kubeconfig and --context)", host, what, err)
	}
	return fmt.Errorf("cannot %s: %w", what, err)
}

func statusMessage(err error) string {
	var s apierrors.APIStatus
	if errors.As(err, &s) {
		return s.Status().Message
	}
	return err.Error()
}

// isNoKind reports a 404 for a whole resource (not one object): the CRD
// is missing.
func isNoKind(err error) bool {
	var s apierrors.APIStatus
	if !errors.As(err, &s) {
		return false
	}
	d := s.Status().Details
	return d == nil || d.Name == ""
}

// lbstackNamespace returns the namespace the components run in: the flag,
// else the namespace of the speaker DaemonSet (found cluster-wide by its
// labels), else lbstack-system.
func (o *Options) lbstackNamespace(ctx context.Context) string {
	if o.LBStackNamespace != "" {
		return o.LBStackNamespace
	}
	var list appsv1.DaemonSetList
	if err := o.client.List(ctx, &list, client.MatchingLabels{render.LabelName: render.AppName, render.LabelComponent: render.ComponentSpeaker}); err == nil {
		for _, ds := range list.Items {
			if ds.Name == render.SpeakerName {
				o.LBStackNamespace = ds.Namespace
				return ds.Namespace
			}
		}
	}
	o.LBStackNamespace = defaultLBStackNamespace
	return o.LBStackNamespace
}
