// Package render turns a LoadBalancerStack into the objects that make it
// run: the configuration objects expanded from its inline lists, the
// controller Deployment, the speaker DaemonSet, their ServiceAccounts and
// least-privilege RBAC, the memberlist key Secret and the metrics Services.
//
// Every function here is pure: the same stack and Params give the same
// objects, byte for byte, so the operator can compare what it wants with
// what exists and write nothing when they agree. Randomness (the memberlist
// key) comes in through Params. The golden files under testdata/ pin the
// output; `go test ./internal/render -update` rewrites them.
package render

import (
	"fmt"
	"maps"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	lbv1 "github.com/lbstack/lbstack/api/v1alpha1"
)

// Names and labels shared by the rendered objects.
const (
	// FieldOwner is the server-side apply field manager of everything the
	// operator writes.
	FieldOwner = "lbstack-operator"

	// LabelName, LabelComponent and LabelManagedBy are the well-known
	// Kubernetes labels put on every child.
	LabelName      = "app.kubernetes.io/name"
	LabelComponent = "app.kubernetes.io/component"
	LabelManagedBy = "app.kubernetes.io/managed-by"
	// LabelStack names the LoadBalancerStack a child belongs to.
	LabelStack = "lbstack.io/stack"
	// AnnotationHash carries a hash of the desired object, so a field
	// dropped from the desired state is noticed although the live object
	// still holds it (see the operator's drift check).
	AnnotationHash = "lbstack.io/desired-hash"

	// AppName is the value of LabelName.
	AppName = "lbstack"

	// ComponentController, ComponentSpeaker and ComponentConfig are the
	// values of LabelComponent.
	ComponentController = "controller"
	ComponentSpeaker    = "speaker"
	ComponentConfig     = "config"

	// ControllerName names the controller's Deployment, ServiceAccount and RBAC.
	ControllerName = "lbstack-controller"
	// SpeakerName names the speaker's DaemonSet, ServiceAccount and RBAC.
	SpeakerName = "lbstack-speaker"
	// SpeakerSecretsRoleName names the Roles that let the speakers read
	// the BGP password Secrets of one namespace.
	SpeakerSecretsRoleName = "lbstack-speaker-secrets"
	// MemberlistSecretName names the Secret with the speakers' memberlist key.
	MemberlistSecretName = "lbstack-memberlist"
	// MemberlistSecretKey is the data key of the memberlist key.
	MemberlistSecretKey = "key"
	// MemberlistKeySize is the size of the generated key (AES-256).
	MemberlistKeySize = 32

	// ControllerMetricsPort and ControllerProbePort are the controller's
	// ports (pod network); SpeakerMetricsPort and SpeakerProbePort the
	// speaker's (host network, so chosen away from common ports).
	ControllerMetricsPort = 7472
	ControllerProbePort   = 7473
	SpeakerMetricsPort    = 7474
	SpeakerProbePort      = 7475
)

// Params are the inputs of rendering that do not come from the stack.
type Params struct {
	// Namespace receives the namespaced children (the operator's namespace).
	Namespace string
	// Image is used where the stack names no image (the operator's own image).
	Image string
	// ImagePullSecrets are used where the stack names no pull secrets (the
	// operator Pod's own).
	ImagePullSecrets []corev1.LocalObjectReference
	// MemberlistKey is the speakers' shared memberlist key: read from the
	// existing Secret, or freshly generated when there is none.
	MemberlistKey []byte
	// PasswordSecrets are the BGP password and BFD key Secrets the speakers
	// must be able to read (from the inline and the standalone BGPPeers and
	// BFDProfiles), with the namespace resolved.
	PasswordSecrets []types.NamespacedName
}

// All returns every object the stack needs, in the order they should be
// applied: identities and permissions first, then configuration, then the
// workloads that use them.
func All(stack *lbv1.LoadBalancerStack, p Params) []client.Object {
	var objs []client.Object
	objs = append(objs, RBAC(stack, p)...)
	objs = append(objs, MemberlistSecret(stack, p))
	objs = append(objs, Configuration(stack)...)
	objs = append(objs, MetricsServices(stack, p)...)
	objs = append(objs, ControllerDeployment(stack, p), SpeakerDaemonSet(stack, p))
	return objs
}

// Kinds lists the kinds All can return, so the operator can find children
// that are no longer desired.
func Kinds() []schema.GroupVersionKind {
	return []schema.GroupVersionKind{
		{Group: "rbac.authorization.k8s.io", Version: "v1", Kind: "ClusterRole"},
		{Group: "rbac.authorization.k8s.io", Version: "v1", Kind: "ClusterRoleBinding"},
		{Group: "rbac.authorization.k8s.io", Version: "v1", Kind: "Role"},
		{Group: "rbac.authorization.k8s.io", Version: "v1", Kind: "RoleBinding"},
		{Version: "v1", Kind: "ServiceAccount"},
		{Version: "v1", Kind: "Secret"},
		{Version: "v1", Kind: "Service"},
		{Group: "apps", Version: "v1", Kind: "Deployment"},
		{Group: "apps", Version: "v1", Kind: "DaemonSet"},
		lbv1.GroupVersion.WithKind("IPAddressPool"),
		lbv1.GroupVersion.WithKind("BGPPeer"),
		lbv1.GroupVersion.WithKind("BFDProfile"),
		lbv1.GroupVersion.WithKind("Community"),
		lbv1.GroupVersion.WithKind("L2Advertisement"),
		lbv1.GroupVersion.WithKind("BGPAdvertisement"),
	}
}

// labels returns the labels of a child of stack.
func labels(stack *lbv1.LoadBalancerStack, component string) map[string]string {
	return map[string]string{
		LabelName:      AppName,
		LabelComponent: component,
		LabelManagedBy: FieldOwner,
		LabelStack:     stack.Name,
	}
}

// selectorLabels select a component's pods. They never change over a
// workload's life (a selector is immutable), so they do not name the stack.
func selectorLabels(component string) map[string]string {
	return map[string]string{LabelName: AppName, LabelComponent: component}
}

// meta returns the ObjectMeta of a child named name, owned by stack.
func meta(stack *lbv1.LoadBalancerStack, namespace, name, component string) metav1.ObjectMeta {
	return metav1.ObjectMeta{
		Name:            name,
		Namespace:       namespace,
		Labels:          labels(stack, component),
		OwnerReferences: []metav1.OwnerReference{OwnerReference(stack)},
	}
}

// OwnerReference is the controller reference every child carries, so
// garbage collection removes the children with the stack.
func OwnerReference(stack *lbv1.LoadBalancerStack) metav1.OwnerReference {
	yes := true
	return metav1.OwnerReference{
		APIVersion:         lbv1.GroupVersion.String(),
		Kind:               "LoadBalancerStack",
		Name:               stack.Name,
		UID:                stack.UID,
		Controller:         &yes,
		BlockOwnerDeletion: &yes,
	}
}

// image returns the image for a workload.
func image(w lbv1.WorkloadSpec, p Params) string {
	if w.Image != "" {
		return w.Image
	}
	return p.Image
}

// imagePullSecrets returns the pull secrets for a workload: its own, or
// else the defaults.
func imagePullSecrets(w lbv1.WorkloadSpec, p Params) []corev1.LocalObjectReference {
	src := w.ImagePullSecrets
	if len(src) == 0 {
		src = p.ImagePullSecrets
	}
	if len(src) == 0 {
		return nil
	}
	return slices.Clone(src)
}

// logLevel returns the workload's log level, info when unset.
func logLevel(w lbv1.WorkloadSpec) string {
	if w.LogLevel == "" {
		return string(lbv1.LogLevelInfo)
	}
	return string(w.LogLevel)
}

// configMeta returns the ObjectMeta of an expanded configuration object:
// the inline item's name and labels plus the child labels (which win).
func configMeta(stack *lbv1.LoadBalancerStack, m lbv1.InlineMeta) metav1.ObjectMeta {
	om := meta(stack, "", m.Name, ComponentConfig)
	l := maps.Clone(m.Labels)
	if l == nil {
		l = map[string]string{}
	}
	maps.Copy(l, om.Labels)
	om.Labels = l
	return om
}

// Configuration expands the stack's inline lists into standalone
// configuration objects owned by the stack.
func Configuration(stack *lbv1.LoadBalancerStack) []client.Object {
	var objs []client.Object
	for _, i := range stack.Spec.Pools {
		objs = append(objs, &lbv1.IPAddressPool{TypeMeta: typeMeta(lbv1.GroupVersion.String(), "IPAddressPool"), ObjectMeta: configMeta(stack, i.InlineMeta), Spec: *i.IPAddressPoolSpec.DeepCopy()})
	}
	for _, i := range stack.Spec.BGPPeers {
		objs = append(objs, &lbv1.BGPPeer{TypeMeta: typeMeta(lbv1.GroupVersion.String(), "BGPPeer"), ObjectMeta: configMeta(stack, i.InlineMeta), Spec: *i.BGPPeerSpec.DeepCopy()})
	}
	for _, i := range stack.Spec.BFDProfiles {
		objs = append(objs, &lbv1.BFDProfile{TypeMeta: typeMeta(lbv1.GroupVersion.String(), "BFDProfile"), ObjectMeta: configMeta(stack, i.InlineMeta), Spec: *i.BFDProfileSpec.DeepCopy()})
	}
	for _, i := range stack.Spec.Communities {
		objs = append(objs, &lbv1.Community{TypeMeta: typeMeta(lbv1.GroupVersion.String(), "Community"), ObjectMeta: configMeta(stack, i.InlineMeta), Spec: *i.CommunitySpec.DeepCopy()})
	}
	for _, i := range stack.Spec.L2Advertisements {
		objs = append(objs, &lbv1.L2Advertisement{TypeMeta: typeMeta(lbv1.GroupVersion.String(), "L2Advertisement"), ObjectMeta: configMeta(stack, i.InlineMeta), Spec: *i.L2AdvertisementSpec.DeepCopy()})
	}
	for _, i := range stack.Spec.BGPAdvertisements {
		objs = append(objs, &lbv1.BGPAdvertisement{TypeMeta: typeMeta(lbv1.GroupVersion.String(), "BGPAdvertisement"), ObjectMeta: configMeta(stack, i.InlineMeta), Spec: *i.BGPAdvertisementSpec.DeepCopy()})
	}
	return objs
}

func typeMeta(apiVersion, kind string) metav1.TypeMeta {
	return metav1.TypeMeta{APIVersion: apiVersion, Kind: kind}
}

// Key identifies a child for comparison and pruning: kind, namespace, name.
func Key(o client.Object) string {
	gvk := o.GetObjectKind().GroupVersionKind()
	return fmt.Sprintf("%s/%s/%s/%s", gvk.Group, gvk.Kind, o.GetNamespace(), o.GetName())
}

// sortedSecrets returns the password Secrets grouped by namespace, each
// group's names sorted and de-duplicated.
func sortedSecrets(p Params) (namespaces []string, names map[string][]string) {
	names = map[string][]string{}
	for _, s := range p.PasswordSecrets {
		ns := s.Namespace
		if ns == "" {
			ns = p.Namespace
		}
		if !slices.Contains(names[ns], s.Name) {
			names[ns] = append(names[ns], s.Name)
		}
	}
	for ns := range names {
		slices.Sort(names[ns])
		namespaces = append(namespaces, ns)
	}
	slices.SortFunc(namespaces, strings.Compare)
	return namespaces, names
}
