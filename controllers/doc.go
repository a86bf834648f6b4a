// Package controllers holds the reconcilers: the operator's
// LoadBalancerStack reconciler and the controller's Service IP assignment.
//
// The kubebuilder RBAC markers below are the operator's permissions, from
// which `make manifests` generates config/rbac/role.yaml. The operator
// creates the controller's and the speakers' RBAC, so it holds every
// permission it grants them. (Its one namespaced permission, reading its
// own Pod, is marked in internal/operator.)
package controllers

// lbstack's own kinds.
// +kubebuilder:rbac:groups=lbstack.io,resources=loadbalancerstacks;ipaddresspools;l2advertisements;bgpadvertisements;bgppeers;bfdprofiles;communities;serviceannouncements,verbs=get;list;watch;create;update;patch;delete
// +kubebuilder:rbac:groups=lbstack.io,resources=loadbalancerstacks/status;ipaddresspools/status;bgppeers/status;serviceannouncements/status,verbs=get;update;patch
// +kubebuilder:rbac:groups=lbstack.io,resources=loadbalancerstacks/finalizers,verbs=update

// The data plane the operator renders.
// +kubebuilder:rbac:groups=apps,resources=daemonsets;deployments,verbs=get;list;watch;create;update;patch;delete
// +kubebuilder:rbac:groups="",resources=serviceaccounts;secrets;services;configmaps,verbs=get;list;watch;create;update;patch;delete
// +kubebuilder:rbac:groups=rbac.authorization.k8s.io,resources=clusterroles;clusterrolebindings;roles;rolebindings,verbs=get;list;watch;create;update;patch;delete

// What the controller and the speakers need, granted onward by the operator.
// +kubebuilder:rbac:groups="",resources=services/status,verbs=get;update;patch
// +kubebuilder:rbac:groups="",resources=nodes;namespaces,verbs=get;list;watch
// +kubebuilder:rbac:groups="",resources=events,verbs=create;patch
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch
// +kubebuilder:rbac:groups=discovery.k8s.io,resources=endpointslices,verbs=get;list;watch
// +kubebuilder:rbac:groups=coordination.k8s.io,resources=leases,verbs=get;list;watch;create;update;patch;delete

// Serving the metrics to authenticated and authorized callers only (every
// component's --metrics-secure): TokenReviews and SubjectAccessReviews, for
// the operator itself and granted onward to the controller and the speakers.
// +kubebuilder:rbac:groups=authentication.k8s.io,resources=tokenreviews,verbs=create
// +kubebuilder:rbac:groups=authorization.k8s.io,resources=subjectaccessreviews,verbs=create

// OpenShift: the speakers' pods run under the privileged
// SecurityContextConstraints, which the operator grants onward.
// +kubebuilder:rbac:groups=security.openshift.io,resources=securitycontextconstraints,resourceNames=privileged,verbs=use

// Serving the admission webhooks with a self-managed certificate.
// +kubebuilder:rbac:groups=admissionregistration.k8s.io,resources=validatingwebhookconfigurations,verbs=get;list;watch;update;patch
