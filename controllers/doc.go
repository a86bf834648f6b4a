// Package controllers holds the reconcilers: the operator's
// LoadBalancerStack reconciler and the controller's Service IP assignment.
//
// The kubebuilder RBAC markers below are the operator's permissions, from
// which `make manifests` generates config/rbac/role.yaml: a ClusterRole and
// a Role in the operator's own namespace. The operator creates the
// controller's and the speakers' RBAC, and the API server lets it grant
// only what it holds, so it holds every permission it grants them — and
// nothing else: TestOperatorRoleIsExactly (internal/operator) fails on a
// rule that neither a rendered child nor the operator's own work needs.
// Its leader election Role is config/rbac/leader_election_role.yaml.
package controllers

// lbstack's own kinds: it reconciles the stacks (never creating, changing
// or deleting one), owns their inline children, and grants the speakers
// their ServiceAnnouncements.
// +kubebuilder:rbac:groups=lbstack.io,resources=loadbalancerstacks,verbs=get;list;watch
// +kubebuilder:rbac:groups=lbstack.io,resources=ipaddresspools;l2advertisements;bgpadvertisements;bgppeers;bfdprofiles;communities;serviceannouncements,verbs=get;list;watch;create;update;patch;delete
// +kubebuilder:rbac:groups=lbstack.io,resources=loadbalancerstacks/status;ipaddresspools/status;bgppeers/status;serviceannouncements/status,verbs=get;update;patch
// +kubebuilder:rbac:groups=lbstack.io,resources=loadbalancerstacks/finalizers,verbs=update

// The children in the operator's namespace: the workloads, their
// ServiceAccounts and metrics Services, the memberlist key and webhook
// certificate Secrets, and the controller's leader election Lease (whose
// Role it grants).
// +kubebuilder:rbac:groups=apps,namespace=lbstack-system,resources=daemonsets;deployments,verbs=get;list;watch;create;update;patch;delete
// +kubebuilder:rbac:groups="",namespace=lbstack-system,resources=serviceaccounts;secrets;services,verbs=get;list;watch;create;update;patch;delete

// RBAC: the components' ClusterRoles and bindings, the controller's leader
// election Role and, in every namespace holding a BGP password or BFD key
// Secret, a Role that lets the speakers get those Secrets by name. It may
// create any (the API server still refuses a rule it does not hold) but
// change or delete only its own, by name.
// +kubebuilder:rbac:groups=rbac.authorization.k8s.io,resources=clusterroles;clusterrolebindings;roles;rolebindings,verbs=get;list;watch;create
// +kubebuilder:rbac:groups=rbac.authorization.k8s.io,resources=clusterroles;clusterrolebindings,resourceNames=lbstack-controller;lbstack-speaker,verbs=update;patch;delete
// +kubebuilder:rbac:groups=rbac.authorization.k8s.io,resources=roles;rolebindings,resourceNames=lbstack-controller;lbstack-speaker-secrets,verbs=update;patch;delete

// What the controller and the speakers need, granted onward by the
// operator: it reads and updates Services only because the controller
// does (it creates and deletes them only in its namespace, above), and it
// may get a Secret by name anywhere only because the speakers get the BGP
// password and BFD key Secrets the configuration names (and its webhooks
// check that such a Secret exists and holds a usable value) — it can
// neither list nor watch nor write a Secret outside its namespace.
// +kubebuilder:rbac:groups="",resources=services,verbs=get;list;watch;update;patch
// +kubebuilder:rbac:groups="",resources=services/status,verbs=get;update;patch
// +kubebuilder:rbac:groups="",resources=secrets,verbs=get
// +kubebuilder:rbac:groups="",resources=nodes;namespaces,verbs=get;list;watch
// +kubebuilder:rbac:groups="",resources=events,verbs=create;patch
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch
// +kubebuilder:rbac:groups=discovery.k8s.io,resources=endpointslices,verbs=get;list;watch

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
