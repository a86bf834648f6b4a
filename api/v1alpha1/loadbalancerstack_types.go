package v1alpha1

import (
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// LoadBalancerStackSpec is the whole load balancer in one object: how the
// speakers and the controller run, and the configuration (pools, peers,
// advertisements) that the operator expands into standalone objects.
type LoadBalancerStackSpec struct {
	// speaker configures the per-node speaker DaemonSet.
	// +kubebuilder:default={}
	// +optional
	Speaker SpeakerSpec `json:"speaker,omitempty"`

	// controller configures the IP-assigning controller Deployment.
	// +kubebuilder:default={}
	// +optional
	Controller ControllerSpec `json:"controller,omitempty"`

	// loadBalancerClass is the spec.loadBalancerClass of the Services this
	// stack serves. Empty serves Services that set no class; Services with
	// another class are never touched.
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="loadBalancerClass cannot be changed; Services would lose their IPs"
	// +optional
	LoadBalancerClass string `json:"loadBalancerClass,omitempty"`

	// pools are IPAddressPools owned by this stack. Each becomes an
	// IPAddressPool object with the item's name. Up to 32 pools fit in a
	// stack (a bound that keeps the API server's validation cost in check);
	// more can be created as standalone IPAddressPools.
	// +kubebuilder:validation:MaxItems=32
	// +listType=map
	// +listMapKey=name
	// +optional
	Pools []InlineIPAddressPool `json:"pools,omitempty"`

	// bgpPeers are BGPPeers owned by this stack.
	// +kubebuilder:validation:MaxItems=256
	// +listType=map
	// +listMapKey=name
	// +optional
	BGPPeers []InlineBGPPeer `json:"bgpPeers,omitempty"`

	// bfdProfiles are BFDProfiles owned by this stack.
	// +kubebuilder:validation:MaxItems=64
	// +listType=map
	// +listMapKey=name
	// +optional
	BFDProfiles []InlineBFDProfile `json:"bfdProfiles,omitempty"`

	// communities are Community objects owned by this stack.
	// +kubebuilder:validation:MaxItems=16
	// +listType=map
	// +listMapKey=name
	// +optional
	Communities []InlineCommunity `json:"communities,omitempty"`

	// l2Advertisements are L2Advertisements owned by this stack.
	// +kubebuilder:validation:MaxItems=256
	// +listType=map
	// +listMapKey=name
	// +optional
	L2Advertisements []InlineL2Advertisement `json:"l2Advertisements,omitempty"`

	// bgpAdvertisements are BGPAdvertisements owned by this stack.
	// +kubebuilder:validation:MaxItems=64
	// +listType=map
	// +listMapKey=name
	// +optional
	BGPAdvertisements []InlineBGPAdvertisement `json:"bgpAdvertisements,omitempty"`
}

// InlineMeta names an inline item; it becomes the child object's name and labels.
type InlineMeta struct {
	// name of the child object. It must not clash with an object of the
	// same kind that the stack does not own.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`
	// +required
	Name string `json:"name"`

	// labels of the child object, for selectors such as
	// ipAddressPoolSelectors.
	// +optional
	Labels map[string]string `json:"labels,omitempty"`
}

// InlineName returns the inline item's name.
func (m *InlineMeta) InlineName() string { return m.Name }

// InlineIPAddressPool is an IPAddressPool written inside a LoadBalancerStack.
type InlineIPAddressPool struct {
	InlineMeta        `json:",inline"`
	IPAddressPoolSpec `json:",inline"`
}

// InlineBGPPeer is a BGPPeer written inside a LoadBalancerStack.
type InlineBGPPeer struct {
	InlineMeta  `json:",inline"`
	BGPPeerSpec `json:",inline"`
}

// InlineBFDProfile is a BFDProfile written inside a LoadBalancerStack.
type InlineBFDProfile struct {
	InlineMeta     `json:",inline"`
	BFDProfileSpec `json:",inline"`
}

// InlineCommunity is a Community written inside a LoadBalancerStack.
type InlineCommunity struct {
	InlineMeta    `json:",inline"`
	CommunitySpec `json:",inline"`
}

// InlineL2Advertisement is an L2Advertisement written inside a LoadBalancerStack.
type InlineL2Advertisement struct {
	InlineMeta          `json:",inline"`
	L2AdvertisementSpec `json:",inline"`
}

// InlineBGPAdvertisement is a BGPAdvertisement written inside a LoadBalancerStack.
type InlineBGPAdvertisement struct {
	InlineMeta           `json:",inline"`
	BGPAdvertisementSpec `json:",inline"`
}

// WorkloadSpec holds the scheduling and runtime settings shared by the
// speaker and the controller.
type WorkloadSpec struct {
	// image overrides the container image. Empty uses the operator's own
	// image (the image of the operator's running Pod).
	// +kubebuilder:validation:MaxLength=512
	// +optional
	Image string `json:"image,omitempty"`

	// imagePullSecrets name Secrets in the operator's namespace that the
	// kubelet uses to pull the component's image. Empty uses the operator
	// Pod's own imagePullSecrets, so an operator pulled from a private
	// registry deploys components that can pull from it too.
	// +kubebuilder:validation:MaxItems=16
	// +kubebuilder:validation:XValidation:rule="self.all(s, size(s.name) > 0)",message="every image pull secret needs a name"
	// +listType=map
	// +listMapKey=name
	// +optional
	ImagePullSecrets []corev1.LocalObjectReference `json:"imagePullSecrets,omitempty"`

	// logLevel is the verbosity of the component's log.
	// +kubebuilder:default=info
	// +optional
	LogLevel LogLevel `json:"logLevel,omitempty"`

	// nodeSelector restricts the component's pods to nodes with these labels.
	// +optional
	NodeSelector map[string]string `json:"nodeSelector,omitempty"`

	// tolerations let the component's pods run on tainted nodes.
	// +kubebuilder:validation:MaxItems=64
	// +listType=atomic
	// +optional
	Tolerations []corev1.Toleration `json:"tolerations,omitempty"`

	// resources are the component container's requests and limits.
	// +optional
	Resources *corev1.ResourceRequirements `json:"resources,omitempty"`
}

// SpeakerSpec configures the per-node speakers.
type SpeakerSpec struct {
	WorkloadSpec `json:",inline"`

	// memberlistBindPort is the TCP and UDP port the speakers use to find
	// each other and exchange heartbeats, on the node's network.
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=65535
	// +kubebuilder:default=7946
	// +optional
	MemberlistBindPort int32 `json:"memberlistBindPort,omitempty"`

	// failureDetection tunes how fast a dead speaker is noticed and its
	// layer 2 IPs move to another node.
	// +kubebuilder:default={}
	// +optional
	FailureDetection FailureDetectionSpec `json:"failureDetection,omitzero"`
}

// FailureDetectionSpec tunes the speakers' failure detection. The defaults
// move IPs within about 400 ms (p99) of a node's death and survive a 250 ms
// stall of a healthy node. The documented aggressive setting,
// missedHeartbeats: 3, moves IPs within about 300 ms but a healthy node
// stalled for 200 ms (CPU starvation, a long GC) loses its IPs.
// +kubebuilder:validation:XValidation:rule="!has(self.probeTimeout) || !has(self.probeInterval) || duration(self.probeTimeout) < duration(self.probeInterval)",message="probeTimeout must be shorter than probeInterval",fieldPath=".probeTimeout"
type FailureDetectionSpec struct {
	// heartbeatInterval is how often each speaker sends a heartbeat to the
	// speakers that could take over its IPs.
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:Pattern=`^([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$`
	// +kubebuilder:validation:MaxLength=32
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('20ms') && duration(self) <= duration('10s')",message="must be between 20ms and 10s"
	// +kubebuilder:default="100ms"
	// +optional
	HeartbeatInterval metav1.Duration `json:"heartbeatInterval,omitzero"`

	// missedHeartbeats is how many heartbeats in a row may be missed before
	// a speaker is declared dead.
	// +kubebuilder:validation:Minimum=2
	// +kubebuilder:validation:Maximum=100
	// +kubebuilder:default=4
	// +optional
	MissedHeartbeats int32 `json:"missedHeartbeats,omitempty"`

	// probeInterval is memberlist's probe interval, the slower membership
	// check behind the heartbeat.
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:Pattern=`^([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$`
	// +kubebuilder:validation:MaxLength=32
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('50ms') && duration(self) <= duration('60s')",message="must be between 50ms and 60s"
	// +kubebuilder:default="1s"
	// +optional
	ProbeInterval metav1.Duration `json:"probeInterval,omitzero"`

	// probeTimeout is memberlist's probe timeout; shorter than probeInterval.
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:Pattern=`^([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$`
	// +kubebuilder:validation:MaxLength=32
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('10ms') && duration(self) <= duration('60s')",message="must be between 10ms and 60s"
	// +kubebuilder:default="500ms"
	// +optional
	ProbeTimeout metav1.Duration `json:"probeTimeout,omitzero"`
}

// ControllerSpec configures the controller that assigns Service IPs.
type ControllerSpec struct {
	WorkloadSpec `json:",inline"`

	// replicas of the controller; one is the leader at any time, the others
	// take over within the leader-election lease.
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=5
	// +kubebuilder:default=2
	// +optional
	Replicas *int32 `json:"replicas,omitempty"`
}

// Condition types of a LoadBalancerStack.
const (
	// ConditionAvailable is True when the speakers and the controller are fully rolled out.
	ConditionAvailable = "Available"
	// ConditionProgressing is True while the speakers or the controller roll out.
	ConditionProgressing = "Progressing"
	// ConditionDegraded is True when the configuration is invalid or cannot be applied.
	ConditionDegraded = "Degraded"
	// ConditionConflictsIgnored is True when objects that conflict with
	// earlier ones got in anyway (admitted at the same moment, so neither
	// webhook call saw the other): the later of each pair is left out of
	// the configuration in force, and the message names them. The rest of
	// the configuration is in force.
	ConditionConflictsIgnored = "ConflictsIgnored"
)

// NamedPoolUsage is the usage of one pool, by name.
type NamedPoolUsage struct {
	// name of the IPAddressPool.
	// +kubebuilder:validation:MaxLength=253
	// +required
	Name string `json:"name"`

	PoolUsage `json:",inline"`
}

// LoadBalancerStackStatus reports whether the load balancer works.
type LoadBalancerStackStatus struct {
	// conditions: Available, Progressing and Degraded.
	// +listType=map
	// +listMapKey=type
	// +optional
	Conditions []metav1.Condition `json:"conditions,omitempty"`

	// observedGeneration is the stack generation the status describes.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// speakersDesired is the number of nodes that should run a speaker.
	// +optional
	SpeakersDesired int32 `json:"speakersDesired,omitempty"`

	// speakersReady is the number of nodes whose speaker is ready.
	// +optional
	SpeakersReady int32 `json:"speakersReady,omitempty"`

	// speakers is speakersReady/speakersDesired, for kubectl get.
	// +kubebuilder:validation:MaxLength=32
	// +optional
	Speakers string `json:"speakers,omitempty"`

	// controllerReady is the number of ready controller replicas.
	// +optional
	ControllerReady int32 `json:"controllerReady,omitempty"`

	// pools reports the usage of each pool the stack serves.
	// +listType=map
	// +listMapKey=name
	// +optional
	Pools []NamedPoolUsage `json:"pools,omitempty"`

	// speakerProblems lists the speakers that are cut off from the others'
	// membership, one entry per node, written by that node's speaker while
	// the problem lasts and removed by it when it ends. A speaker that
	// cannot join the others elects on its own: it may answer for
	// addresses another node also answers for.
	// +listType=map
	// +listMapKey=node
	// +kubebuilder:validation:MaxItems=5000
	// +optional
	SpeakerProblems []SpeakerProblem `json:"speakerProblems,omitempty"`
}

// SpeakerProblemReason says why a speaker is cut off from the others.
// +kubebuilder:validation:Enum=MembershipKeyMismatch;Isolated;PartialMembership
type SpeakerProblemReason string

const (
	// SpeakerMembershipKeyMismatch: the speaker receives memberlist traffic
	// it cannot decrypt — it and another speaker use different memberlist
	// keys, so they form separate clusters.
	SpeakerMembershipKeyMismatch SpeakerProblemReason = "MembershipKeyMismatch"
	// SpeakerIsolated: the speaker has joined none of the speakers expected
	// on other Ready nodes (memberlist port 7946 TCP/UDP blocked, or they
	// do not run).
	SpeakerIsolated SpeakerProblemReason = "Isolated"
	// SpeakerPartialMembership: the speaker has joined some of the
	// speakers expected on other Ready nodes but not all, for longer than
	// a restart takes (port 7946 blocked between some nodes, or those
	// speakers are stuck); missing names them.
	SpeakerPartialMembership SpeakerProblemReason = "PartialMembership"
)

// SpeakerProblem is a membership problem of the speaker on one node.
type SpeakerProblem struct {
	// node is the node whose speaker reports the problem.
	// +kubebuilder:validation:MaxLength=253
	// +required
	Node string `json:"node"`

	// reason is the kind of problem.
	// +required
	Reason SpeakerProblemReason `json:"reason"`

	// message explains the problem for people.
	// +kubebuilder:validation:MaxLength=1024
	// +optional
	Message string `json:"message,omitempty"`

	// since is when the speaker first saw the problem.
	// +required
	Since metav1.Time `json:"since"`

	// expected is how many speakers on other Ready nodes this speaker
	// expects to see.
	// +kubebuilder:validation:Minimum=0
	// +optional
	Expected int32 `json:"expected,omitempty"`

	// seen is how many of them it has joined (live members).
	// +kubebuilder:validation:Minimum=0
	// +optional
	Seen int32 `json:"seen,omitempty"`

	// missing names expected speakers' nodes it has not joined (the first
	// 32, sorted).
	// +kubebuilder:validation:MaxItems=32
	// +kubebuilder:validation:items:MaxLength=253
	// +listType=atomic
	// +optional
	Missing []string `json:"missing,omitempty"`
}

// LoadBalancerStack is the one object a user applies to run lbstack: it
// declares the speakers, the controller and the load-balancing
// configuration. Only one stack may exist in a cluster.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:scope=Cluster,shortName=lbs,categories=lbstack
// +kubebuilder:printcolumn:name="Available",type=string,JSONPath=`.status.conditions[?(@.type=="Available")].status`
// +kubebuilder:printcolumn:name="Progressing",type=string,JSONPath=`.status.conditions[?(@.type=="Progressing")].status`
// +kubebuilder:printcolumn:name="Degraded",type=string,JSONPath=`.status.conditions[?(@.type=="Degraded")].status`
// +kubebuilder:printcolumn:name="Speakers",type=string,JSONPath=`.status.speakers`
// +kubebuilder:printcolumn:name="Class",type=string,JSONPath=`.spec.loadBalancerClass`,priority=1
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type LoadBalancerStack struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// spec declares the load balancer.
	// +optional
	Spec LoadBalancerStackSpec `json:"spec,omitempty"`

	// status reports roll-out, health and pool usage.
	// +optional
	Status LoadBalancerStackStatus `json:"status,omitempty"`
}

// LoadBalancerStackList is a list of LoadBalancerStacks.
//
// +kubebuilder:object:root=true
type LoadBalancerStackList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []LoadBalancerStack `json:"items"`
}

func init() {
	SchemeBuilder.Register(&LoadBalancerStack{}, &LoadBalancerStackList{})
}
