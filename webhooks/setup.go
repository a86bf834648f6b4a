package webhooks

import (
	"fmt"

	corev1 "k8s.io/api/core/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	lbv1 "github.com/lbstack/lbstack/api/v1alpha1"
)

// The webhook manifests (config/webhook/manifests.yaml) are generated from
// these markers by `make manifests`.
//
// +kubebuilder:webhook:path=/validate-lbstack-io-v1alpha1-loadbalancerstack,mutating=false,failurePolicy=fail,sideEffects=None,groups=lbstack.io,resources=loadbalancerstacks,verbs=create;update;delete,versions=v1alpha1,name=vloadbalancerstack.lbstack.io,admissionReviewVersions=v1,timeoutSeconds=5
// +kubebuilder:webhook:path=/validate-lbstack-io-v1alpha1-ipaddresspool,mutating=false,failurePolicy=fail,sideEffects=None,groups=lbstack.io,resources=ipaddresspools,verbs=create;update;delete,versions=v1alpha1,name=vipaddresspool.lbstack.io,admissionReviewVersions=v1,timeoutSeconds=5
// +kubebuilder:webhook:path=/validate-lbstack-io-v1alpha1-l2advertisement,mutating=false,failurePolicy=fail,sideEffects=None,groups=lbstack.io,resources=l2advertisements,verbs=create;update,versions=v1alpha1,name=vl2advertisement.lbstack.io,admissionReviewVersions=v1,timeoutSeconds=5
// +kubebuilder:webhook:path=/validate-lbstack-io-v1alpha1-bgpadvertisement,mutating=false,failurePolicy=fail,sideEffects=None,groups=lbstack.io,resources=bgpadvertisements,verbs=create;update,versions=v1alpha1,name=vbgpadvertisement.lbstack.io,admissionReviewVersions=v1,timeoutSeconds=5
// +kubebuilder:webhook:path=/validate-lbstack-io-v1alpha1-bgppeer,mutating=false,failurePolicy=fail,sideEffects=None,groups=lbstack.io,resources=bgppeers,verbs=create;update,versions=v1alpha1,name=vbgppeer.lbstack.io,admissionReviewVersions=v1,timeoutSeconds=5
// +kubebuilder:webhook:path=/validate-lbstack-io-v1alpha1-bfdprofile,mutating=false,failurePolicy=fail,sideEffects=None,groups=lbstack.io,resources=bfdprofiles,verbs=create;update;delete,versions=v1alpha1,name=vbfdprofile.lbstack.io,admissionReviewVersions=v1,timeoutSeconds=5
// +kubebuilder:webhook:path=/validate-lbstack-io-v1alpha1-community,mutating=false,failurePolicy=fail,sideEffects=None,groups=lbstack.io,resources=communities,verbs=create;update;delete,versions=v1alpha1,name=vcommunity.lbstack.io,admissionReviewVersions=v1,timeoutSeconds=5
// +kubebuilder:webhook:path=/validate-v1-service,mutating=false,failurePolicy=ignore,sideEffects=None,groups="",resources=services,verbs=create;update,versions=v1,name=vservice.lbstack.io,admissionReviewVersions=v1,timeoutSeconds=5

// Setup registers every validating webhook with the manager's webhook
// server. reader should be uncached (mgr.GetAPIReader()); namespace is the
// operator's, where password Secrets without a namespace live.
func Setup(mgr ctrl.Manager, reader client.Reader, namespace string) error {
	type reg struct {
		kind string
		err  error
	}
	regs := []reg{
		{"LoadBalancerStack", ctrl.NewWebhookManagedBy(mgr, &lbv1.LoadBalancerStack{}).
			WithValidator(&ConfigValidator[*lbv1.LoadBalancerStack]{Reader: reader, Namespace: namespace, Kind: "LoadBalancerStack", Resource: "loadbalancerstacks"}).Complete()},
		{"IPAddressPool", ctrl.NewWebhookManagedBy(mgr, &lbv1.IPAddressPool{}).
			WithValidator(&ConfigValidator[*lbv1.IPAddressPool]{Reader: reader, Namespace: namespace, Kind: "IPAddressPool", Resource: "ipaddresspools"}).Complete()},
		{"L2Advertisement", ctrl.NewWebhookManagedBy(mgr, &lbv1.L2Advertisement{}).
			WithValidator(&ConfigValidator[*lbv1.L2Advertisement]{Reader: reader, Namespace: namespace, Kind: "L2Advertisement", Resource: "l2advertisements"}).Complete()},
		{"BGPAdvertisement", ctrl.NewWebhookManagedBy(mgr, &lbv1.BGPAdvertisement{}).
			WithValidator(&ConfigValidator[*lbv1.BGPAdvertisement]{Reader: reader, Namespace: namespace, Kind: "BGPAdvertisement", Resource: "bgpadvertisements"}).Complete()},
		{"BGPPeer", ctrl.NewWebhookManagedBy(mgr, &lbv1.BGPPeer{}).
			WithValidator(&ConfigValidator[*lbv1.BGPPeer]{Reader: reader, Namespace: namespace, Kind: "BGPPeer", Resource: "bgppeers"}).Complete()},
		{"BFDProfile", ctrl.NewWebhookManagedBy(mgr, &lbv1.BFDProfile{}).
			WithValidator(&ConfigValidator[*lbv1.BFDProfile]{Reader: reader, Namespace: namespace, Kind: "BFDProfile", Resource: "bfdprofiles"}).Complete()},
		{"Community", ctrl.NewWebhookManagedBy(mgr, &lbv1.Community{}).
			WithValidator(&ConfigValidator[*lbv1.Community]{Reader: reader, Namespace: namespace, Kind: "Community", Resource: "communities"}).Complete()},
		{"Service", ctrl.NewWebhookManagedBy(mgr, &corev1.Service{}).
			WithValidator(&ServiceValidator{Reader: reader}).WithValidatorCustomPath("/validate-v1-service").Complete()},
	}
	for _, r := range regs {
		if r.err != nil {
			return fmt.Errorf("registering the %s webhook: %w", r.kind, r.err)
		}
	}
	return nil
}
