// Package operator wires the operator process: the LoadBalancerStack
// reconciler (leader-elected), the admission webhooks (served by every
// replica) and the certificate rotator that serves them outside OLM.
package operator

import (
	"context"
	"crypto/tls"
	"flag"
	"fmt"
	"net"
	"os"
	"time"

	"github.com/go-logr/logr"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/util/retry"
	"k8s.io/klog/v2"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	crmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"
	"sigs.k8s.io/controller-runtime/pkg/webhook"

	"github.com/lbstack/lbstack/controllers"
	"github.com/lbstack/lbstack/internal/certs"
	"github.com/lbstack/lbstack/internal/cli"
	"github.com/lbstack/lbstack/internal/render"
	"github.com/lbstack/lbstack/webhooks"
)

// Options configure the operator.
type Options struct {
	Manager cli.ManagerOptions
	// Namespace the operator runs in.
	Namespace string
	// WebhookHost and WebhookPort are where the webhook server listens.
	WebhookHost string
	WebhookPort int
	// CertDir holds tls.crt and tls.key for the webhook server.
	CertDir string
	// CertRotation makes the operator issue, renew and inject its own
	// webhook certificate; off under OLM, which does that itself.
	CertRotation bool
	// CertSecret names the Secret holding the CA and certificate.
	CertSecret string
	// WebhookService is the Service in front of the webhook server; its
	// DNS names go into the certificate.
	WebhookService string
	// WebhookConfiguration is the ValidatingWebhookConfiguration to inject the CA into.
	WebhookConfiguration string
	// ExtraCertIPs are additional IPs for the certificate (tests).
	ExtraCertIPs []net.IP
	// CertValidity is the serving certificate lifetime.
	CertValidity time.Duration
	// PodName is the operator's own Pod (in Namespace), whose image and
	// imagePullSecrets the controller and the speakers get when a stack
	// names none. Empty when not running in a Pod.
	PodName string
	// Image is the image of the controller and the speakers when a stack
	// names none and the operator's own Pod cannot be read (see
	// ResolveWorkloadDefaults).
	Image string
}

// AddFlags registers the operator's flags.
func (o *Options) AddFlags(fs *flag.FlagSet) {
	o.Manager.AddFlags(fs, ":8080", ":8081", true)
	o.Manager.LeaderElectionID = "lbstack-operator.lbstack.io"
	fs.StringVar(&o.Namespace, "namespace", os.Getenv("POD_NAMESPACE"), "namespace the operator runs in (default: $POD_NAMESPACE)")
	fs.IntVar(&o.WebhookPort, "webhook-port", 9443, "port the admission webhook server listens on")
	fs.StringVar(&o.CertDir, "webhook-cert-dir", "/tmp/k8s-webhook-server/serving-certs", "folder with the webhook server's tls.crt and tls.key")
	fs.BoolVar(&o.CertRotation, "cert-rotation", true, "issue, renew and inject the webhook certificate (turn off under OLM or cert-manager)")
	fs.StringVar(&o.CertSecret, "webhook-cert-secret", "lbstack-webhook-server-cert", "Secret holding the webhook CA and certificate")
	fs.StringVar(&o.WebhookService, "webhook-service", "lbstack-webhook-service", "Service in front of the webhook server")
	fs.StringVar(&o.WebhookConfiguration, "webhook-configuration", "lbstack-validating-webhook-configuration", "ValidatingWebhookConfiguration to inject the CA into")
	fs.DurationVar(&o.CertValidity, "webhook-cert-validity", 90*24*time.Hour, "lifetime of the serving certificate; renewed with a third left")
	fs.StringVar(&o.PodName, "pod-name", os.Getenv("POD_NAME"), "the operator's own Pod, whose image and imagePullSecrets the controller and the speakers get when a LoadBalancerStack names none (default: $POD_NAME)")
	fs.StringVar(&o.Image, "default-image", DefaultImage, "image of the controller and the speakers when a LoadBalancerStack names none and the operator cannot read its own Pod's image (no --pod-name, or the read failed); the operator's own image wins otherwise")
}

// SetupWebhooks adds the webhooks and, with CertRotation, the rotator to
// mgr. It issues the certificate before returning, so the webhook server
// finds it, and returns the rotator (nil without CertRotation).
func SetupWebhooks(ctx context.Context, mgr manager.Manager, cfg *rest.Config, o Options, log logr.Logger) (*certs.Rotator, error) {
	var rot *certs.Rotator
	if o.CertRotation {
		if o.Namespace == "" {
			return nil, fmt.Errorf("--namespace (or $POD_NAMESPACE) is required for --cert-rotation")
		}
		direct, err := client.NewWithWatch(cfg, client.Options{Scheme: mgr.GetScheme()})
		if err != nil {
			return nil, fmt.Errorf("creating client: %w", err)
		}
		svc := o.WebhookService + "." + o.Namespace
		rot = &certs.Rotator{
			Client:       direct,
			Secret:       types.NamespacedName{Namespace: o.Namespace, Name: o.CertSecret},
			CertDir:      o.CertDir,
			DNSNames:     []string{svc + ".svc", svc + ".svc.cluster.local", o.WebhookService, svc},
			IPs:          o.ExtraCertIPs,
			Webhooks:     []string{o.WebhookConfiguration},
			CAValidity:   10 * o.CertValidity,
			CertValidity: o.CertValidity,
			Interval:     time.Hour,
			Log:          log.WithName("certs"),
		}
		if err := rot.Sync(ctx); err != nil {
			return nil, fmt.Errorf("preparing the webhook certificate: %w", err)
		}
		if err := mgr.Add(rot); err != nil {
			return nil, err
		}
	}
	return rot, webhooks.Setup(mgr, mgr.GetAPIReader(), o.Namespace)
}

// Setup adds everything the operator runs to mgr: the LoadBalancerStack
// reconciler, with its metrics in controller-runtime's registry (so once
// per process), and the webhooks (see SetupWebhooks).
func Setup(ctx context.Context, mgr manager.Manager, cfg *rest.Config, o Options, log logr.Logger) (*certs.Rotator, error) {
	if o.Namespace == "" {
		return nil, fmt.Errorf("--namespace (or $POD_NAMESPACE) is required: the controller and the speakers run there")
	}
	d := o.ResolveWorkloadDefaults(ctx, mgr.GetAPIReader(), log)
	m, err := controllers.NewOperatorMetrics(crmetrics.Registry)
	if err != nil {
		return nil, fmt.Errorf("registering the operator's metrics: %w", err)
	}
	r := &controllers.StackReconciler{
		Client:           mgr.GetClient(),
		APIReader:        mgr.GetAPIReader(),
		Recorder:         mgr.GetEventRecorder("lbstack-operator"),
		Namespace:        o.Namespace,
		Image:            d.Image,
		ImagePullSecrets: d.ImagePullSecrets,
		Metrics:          m,
	}
	if err := r.SetupWithManager(mgr); err != nil {
		return nil, fmt.Errorf("setting up the LoadBalancerStack reconciler: %w", err)
	}
	return SetupWebhooks(ctx, mgr, cfg, o, log)
}

// DefaultImage is the image the operator deploys when the stack names
// none and neither the operator's own Pod nor --default-image tells one.
const DefaultImage = "ghcr.io/lbstack/lbstack:v0.1.0"

// OperatorContainer is the name of the operator's container in its
// Deployment (config/manager/manager.yaml).
const OperatorContainer = "operator"

// The operator reads its own Pod, once at start, for its image.
// +kubebuilder:rbac:groups="",namespace=lbstack-system,resources=pods,verbs=get

// WorkloadDefaults are what the controller and the speakers get when a
// stack names no image or pull secrets of its own.
type WorkloadDefaults struct {
	// Image is the container image.
	Image string
	// ImagePullSecrets are the Secrets (in the operator's namespace) to
	// pull it with.
	ImagePullSecrets []corev1.LocalObjectReference
}

// podReadBackoff retries reading the operator's own Pod over transient
// API errors (6 tries over about 16 s), so that a hiccup at start does not roll
// the workloads to the fallback image.
var podReadBackoff = wait.Backoff{Steps: 6, Duration: 500 * time.Millisecond, Factor: 2, Jitter: 0.1}

// ResolveWorkloadDefaults returns the operator's own image and pull
// secrets, read from its Pod (PodName in Namespace): the image of the
// container named OperatorContainer, else of the first container, and the
// Pod's imagePullSecrets (which include its ServiceAccount's). So every
// child runs the very image the operator runs, from the same registry and
// with the same credentials, unless the stack says otherwise. When there
// is no PodName (not running in a Pod) or the Pod cannot be read, it logs
// why and returns Image (--default-image) without pull secrets.
func (o Options) ResolveWorkloadDefaults(ctx context.Context, r client.Reader, log logr.Logger) WorkloadDefaults {
	fallback := WorkloadDefaults{Image: o.Image}
	if o.PodName == "" || o.Namespace == "" {
		log.Info("Not running in a Pod (no --pod-name or --namespace): the controller and the speakers get the default image", "image", o.Image)
		return fallback
	}
	var pod corev1.Pod
	key := types.NamespacedName{Namespace: o.Namespace, Name: o.PodName}
	retriable := func(err error) bool { return ctx.Err() == nil && isTransient(err) }
	err := retry.OnError(podReadBackoff, retriable, func() error { return r.Get(ctx, key, &pod) })
	if err != nil {
		log.Error(err, "Reading the operator's own Pod failed: the controller and the speakers get the default image", "Pod", klog.KRef(o.Namespace, o.PodName), "image", o.Image)
		return fallback
	}
	d, container := defaultsFromPod(&pod)
	if d.Image == "" {
		log.Info("The operator's own Pod has no container: the controller and the speakers get the default image", "Pod", klog.KObj(&pod), "image", o.Image)
		return fallback
	}
	log.Info("Using the operator's own image for the controller and the speakers", "Pod", klog.KObj(&pod), "container", container, "image", d.Image, "imagePullSecrets", len(d.ImagePullSecrets))
	return d
}

// defaultsFromPod returns the image of the operator's container in pod,
// that container's name, and the Pod's pull secrets.
func defaultsFromPod(pod *corev1.Pod) (WorkloadDefaults, string) {
	cs := pod.Spec.Containers
	if len(cs) == 0 {
		return WorkloadDefaults{}, ""
	}
	c := cs[0]
	for _, x := range cs {
		if x.Name == OperatorContainer {
			c = x
			break
		}
	}
	var secrets []corev1.LocalObjectReference
	for _, s := range pod.Spec.ImagePullSecrets {
		if s.Name != "" {
			secrets = append(secrets, s)
		}
	}
	return WorkloadDefaults{Image: c.Image, ImagePullSecrets: secrets}, c.Name
}

// isTransient reports whether a failed read is worth retrying.
func isTransient(err error) bool {
	return !apierrors.IsNotFound(err) && !apierrors.IsForbidden(err) && !apierrors.IsUnauthorized(err) && !apierrors.IsBadRequest(err) && !apierrors.IsInvalid(err)
}

// CacheOptions restrict the operator's cache to what it owns: namespaced
// children in its namespace, and every child (the speakers' password
// Roles live in the Secrets' namespaces) by the managed-by label. The
// configuration kinds, Nodes' metadata and the stacks are cached whole.
func CacheOptions(namespace string) cache.Options {
	owned := labels.SelectorFromSet(labels.Set{render.LabelManagedBy: render.FieldOwner})
	inNamespace := map[string]cache.Config{namespace: {}}
	return cache.Options{ByObject: map[client.Object]cache.ByObject{
		&corev1.Secret{}:             {Label: owned, Namespaces: inNamespace},
		&corev1.ServiceAccount{}:     {Label: owned, Namespaces: inNamespace},
		&corev1.Service{}:            {Label: owned, Namespaces: inNamespace},
		&appsv1.Deployment{}:         {Label: owned, Namespaces: inNamespace},
		&appsv1.DaemonSet{}:          {Label: owned, Namespaces: inNamespace},
		&rbacv1.Role{}:               {Label: owned},
		&rbacv1.RoleBinding{}:        {Label: owned},
		&rbacv1.ClusterRole{}:        {Label: owned},
		&rbacv1.ClusterRoleBinding{}: {Label: owned},
	}}
}

// WebhookServer returns the webhook server for the options, with
// cli.HardenTLS (TLS 1.2 or newer, HTTP/1.1).
func (o Options) WebhookServer() webhook.Server {
	return webhook.NewServer(webhook.Options{Host: o.WebhookHost, Port: o.WebhookPort, CertDir: o.CertDir, TLSOpts: []func(*tls.Config){cli.HardenTLS}})
}

// Run runs the operator until ctx ends.
func Run(ctx context.Context, o Options, log logr.Logger) error {
	cfg, err := o.Manager.RESTConfig()
	if err != nil {
		return err
	}
	mgr, err := o.Manager.NewManager(cfg, func(mo *manager.Options) {
		mo.WebhookServer = o.WebhookServer()
		mo.Cache = CacheOptions(o.Namespace)
	})
	if err != nil {
		return err
	}
	if _, err := Setup(ctx, mgr, cfg, o, log); err != nil {
		return err
	}
	// Not ready until the webhook server serves: the API server calls it.
	if err := mgr.AddReadyzCheck("webhook", mgr.GetWebhookServer().StartedChecker()); err != nil {
		return err
	}
	log.Info("Starting operator", "namespace", o.Namespace, "webhookPort", o.WebhookPort, "certRotation", o.CertRotation)
	return mgr.Start(ctx)
}
