package render

import (
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"

	"sigs.k8s.io/controller-runtime/pkg/client"

	lbv1 "github.com/lbstack/lbstack/api/v1alpha1"
)

// configResources are the lbstack kinds both components read.
var configResources = []string{
	"loadbalancerstacks", "ipaddresspools", "l2advertisements", "bgpadvertisements",
	"bgppeers", "bfdprofiles", "communities",
}

var readOnly = []string{"get", "list", "watch"}

// MetricsAuthRules let a component ask the API server who a metrics
// caller is (TokenReview) and whether it may get /metrics
// (SubjectAccessReview): the metrics are served with --metrics-secure.
func MetricsAuthRules() []rbacv1.PolicyRule {
	return []rbacv1.PolicyRule{
		{APIGroups: []string{"authentication.k8s.io"}, Resources: []string{"tokenreviews"}, Verbs: []string{"create"}},
		{APIGroups: []string{"authorization.k8s.io"}, Resources: []string{"subjectaccessreviews"}, Verbs: []string{"create"}},
	}
}

// ControllerRules are the controller's cluster-wide permissions: read the
// configuration, Services and Namespaces (validity never depends on
// Nodes); write Service status and its pool annotation, pool counters, the
// count of established sessions of each BGPPeer and events; and check the
// callers of its metrics (MetricsAuthRules).
func ControllerRules() []rbacv1.PolicyRule {
	return append([]rbacv1.PolicyRule{
		{APIGroups: []string{lbv1.GroupVersion.Group}, Resources: configResources, Verbs: readOnly},
		{APIGroups: []string{lbv1.GroupVersion.Group}, Resources: []string{"ipaddresspools/status", "bgppeers/status"}, Verbs: []string{"get", "update", "patch"}},
		{APIGroups: []string{""}, Resources: []string{"services"}, Verbs: []string{"get", "list", "watch", "update", "patch"}},
		{APIGroups: []string{""}, Resources: []string{"services/status"}, Verbs: []string{"get", "update", "patch"}},
		{APIGroups: []string{""}, Resources: []string{"namespaces"}, Verbs: readOnly},
		{APIGroups: []string{""}, Resources: []string{"events"}, Verbs: []string{"create", "patch"}},
		{APIGroups: []string{"events.k8s.io"}, Resources: []string{"events"}, Verbs: []string{"create", "patch"}},
	}, MetricsAuthRules()...)
}

// SpeakerRules are the speaker's cluster-wide permissions: read the
// configuration, Services, EndpointSlices, Namespaces and Nodes — never
// write a Service — and report what it announces (ServiceAnnouncements,
// BGPPeer session status, events) and its own membership problems (the
// stack's status.speakerProblems); and check the callers of its metrics
// (MetricsAuthRules).
func SpeakerRules() []rbacv1.PolicyRule {
	return append([]rbacv1.PolicyRule{
		{APIGroups: []string{lbv1.GroupVersion.Group}, Resources: configResources, Verbs: readOnly},
		{APIGroups: []string{lbv1.GroupVersion.Group}, Resources: []string{"serviceannouncements"}, Verbs: []string{"get", "list", "watch", "create", "update", "patch", "delete"}},
		{APIGroups: []string{lbv1.GroupVersion.Group}, Resources: []string{"serviceannouncements/status", "bgppeers/status", "loadbalancerstacks/status"}, Verbs: []string{"get", "update", "patch"}},
		{APIGroups: []string{""}, Resources: []string{"services", "namespaces", "nodes"}, Verbs: readOnly},
		{APIGroups: []string{"discovery.k8s.io"}, Resources: []string{"endpointslices"}, Verbs: readOnly},
		{APIGroups: []string{""}, Resources: []string{"events"}, Verbs: []string{"create", "patch"}},
		{APIGroups: []string{"events.k8s.io"}, Resources: []string{"events"}, Verbs: []string{"create", "patch"}},
		// OpenShift admits the speaker's pods (root, host network,
		// NET_RAW/NET_ADMIN) only under the privileged
		// SecurityContextConstraints; elsewhere the rule grants nothing.
		{APIGroups: []string{"security.openshift.io"}, Resources: []string{"securitycontextconstraints"}, ResourceNames: []string{"privileged"}, Verbs: []string{"use"}},
	}, MetricsAuthRules()...)
}

// leaderElectionRules let the controller hold its Lease in its namespace.
func leaderElectionRules() []rbacv1.PolicyRule {
	return []rbacv1.PolicyRule{
		{APIGroups: []string{"coordination.k8s.io"}, Resources: []string{"leases"}, Verbs: []string{"get", "list", "watch", "create", "update", "patch", "delete"}},
	}
}

// RBAC returns the ServiceAccounts of both components, their ClusterRoles
// and bindings, the controller's leader-election Role, and for every
// namespace holding a BGP password Secret a Role that lets the speakers get
// exactly those Secrets by name.
func RBAC(stack *lbv1.LoadBalancerStack, p Params) []client.Object {
	objs := []client.Object{
		serviceAccount(stack, p, ControllerName, ComponentController),
		serviceAccount(stack, p, SpeakerName, ComponentSpeaker),
		clusterRole(stack, ControllerName, ComponentController, ControllerRules()),
		clusterRoleBinding(stack, p, ControllerName, ComponentController),
		clusterRole(stack, SpeakerName, ComponentSpeaker, SpeakerRules()),
		clusterRoleBinding(stack, p, SpeakerName, ComponentSpeaker),
		role(stack, p.Namespace, ControllerName, ComponentController, leaderElectionRules()),
		roleBinding(stack, p, p.Namespace, ControllerName, ComponentController),
	}
	namespaces, names := sortedSecrets(p)
	for _, ns := range namespaces {
		rules := []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"secrets"}, ResourceNames: names[ns], Verbs: []string{"get"}}}
		objs = append(objs,
			role(stack, ns, SpeakerSecretsRoleName, ComponentSpeaker, rules),
			roleBindingTo(stack, ns, SpeakerSecretsRoleName, ComponentSpeaker, SpeakerName, p.Namespace))
	}
	return objs
}

func serviceAccount(stack *lbv1.LoadBalancerStack, p Params, name, component string) *corev1.ServiceAccount {
	return &corev1.ServiceAccount{TypeMeta: typeMeta("v1", "ServiceAccount"), ObjectMeta: meta(stack, p.Namespace, name, component)}
}

func clusterRole(stack *lbv1.LoadBalancerStack, name, component string, rules []rbacv1.PolicyRule) *rbacv1.ClusterRole {
	return &rbacv1.ClusterRole{TypeMeta: typeMeta("rbac.authorization.k8s.io/v1", "ClusterRole"), ObjectMeta: meta(stack, "", name, component), Rules: rules}
}

func clusterRoleBinding(stack *lbv1.LoadBalancerStack, p Params, name, component string) *rbacv1.ClusterRoleBinding {
	return &rbacv1.ClusterRoleBinding{
		TypeMeta:   typeMeta("rbac.authorization.k8s.io/v1", "ClusterRoleBinding"),
		ObjectMeta: meta(stack, "", name, component),
		RoleRef:    rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: name},
		Subjects:   []rbacv1.Subject{{Kind: "ServiceAccount", Name: name, Namespace: p.Namespace}},
	}
}

func role(stack *lbv1.LoadBalancerStack, namespace, name, component string, rules []rbacv1.PolicyRule) *rbacv1.Role {
	return &rbacv1.Role{TypeMeta: typeMeta("rbac.authorization.k8s.io/v1", "Role"), ObjectMeta: meta(stack, namespace, name, component), Rules: rules}
}

func roleBinding(stack *lbv1.LoadBalancerStack, p Params, namespace, name, component string) *rbacv1.RoleBinding {
	return roleBindingTo(stack, namespace, name, component, name, p.Namespace)
}

func roleBindingTo(stack *lbv1.LoadBalancerStack, namespace, name, component, serviceAccount, saNamespace string) *rbacv1.RoleBinding {
	return &rbacv1.RoleBinding{
		TypeMeta:   typeMeta("rbac.authorization.k8s.io/v1", "RoleBinding"),
		ObjectMeta: meta(stack, namespace, name, component),
		RoleRef:    rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "Role", Name: name},
		Subjects:   []rbacv1.Subject{{Kind: "ServiceAccount", Name: serviceAccount, Namespace: saNamespace}},
	}
}

// MemberlistSecret holds the speakers' memberlist encryption key. The key
// comes from Params: the operator reads the existing Secret and generates a
// key only when there is none, so it survives reconciles and restarts.
func MemberlistSecret(stack *lbv1.LoadBalancerStack, p Params) *corev1.Secret {
	return &corev1.Secret{
		TypeMeta:   typeMeta("v1", "Secret"),
		ObjectMeta: meta(stack, p.Namespace, MemberlistSecretName, ComponentSpeaker),
		Type:       corev1.SecretTypeOpaque,
		Data:       map[string][]byte{MemberlistSecretKey: p.MemberlistKey},
	}
}
