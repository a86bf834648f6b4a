package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// BGPAdvertisementSpec says which pools are announced over BGP, how, to which
// peers and from which nodes. Every eligible node announces, so routers can
// spread traffic over them (ECMP).
type BGPAdvertisementSpec struct {
	// aggregationLength is the prefix length announced for IPv4 Service IPs:
	// 32 announces each IP on its own; a shorter length announces the
	// covering prefix once. It must not be shorter than the prefix of any
	// CIDR in the announced pools; for an "a-b" range, not shorter than the
	// largest CIDR block inside the range (192.0.2.1-192.0.2.6 permits /31),
	// so an aggregate never covers addresses outside the pool.
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=32
	// +kubebuilder:default=32
	// +optional
	AggregationLength *int32 `json:"aggregationLength,omitempty"`

	// aggregationLengthV6 is aggregationLength for IPv6 Service IPs.
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=128
	// +kubebuilder:default=128
	// +optional
	AggregationLengthV6 *int32 `json:"aggregationLengthV6,omitempty"`

	// localPref is the BGP LOCAL_PREF attribute of the announcements. It is
	// only sent to iBGP peers (same ASN); eBGP peers ignore it.
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=4294967295
	// +optional
	LocalPref *int64 `json:"localPref,omitempty"`

	// communities attached to the announcements. Each item is a standard
	// community "a:b" (two numbers 0-65535), a large community
	// "large:a:b:c" (three numbers 0-4294967295) or the name of a Community
	// alias.
	// +kubebuilder:validation:MaxItems=32
	// +listType=set
	// +optional
	Communities []CommunityRef `json:"communities,omitempty"`

	// ipAddressPools names the pools announced by this advertisement. When
	// neither ipAddressPools nor ipAddressPoolSelectors is set, every pool is
	// announced.
	// +kubebuilder:validation:MaxItems=256
	// +kubebuilder:validation:items:MaxLength=253
	// +listType=set
	// +optional
	IPAddressPools []string `json:"ipAddressPools,omitempty"`

	// ipAddressPoolSelectors selects the announced pools by their labels; a
	// pool matching any selector is announced.
	// +kubebuilder:validation:MaxItems=32
	// +listType=atomic
	// +optional
	IPAddressPoolSelectors []metav1.LabelSelector `json:"ipAddressPoolSelectors,omitempty"`

	// nodeSelectors limits the nodes that announce; a node matching any
	// selector announces. Empty means every node.
	// +kubebuilder:validation:MaxItems=32
	// +listType=atomic
	// +optional
	NodeSelectors []metav1.LabelSelector `json:"nodeSelectors,omitempty"`

	// peers names the BGPPeers that receive the announcements. Empty means
	// every peer.
	// +kubebuilder:validation:MaxItems=256
	// +kubebuilder:validation:items:MaxLength=253
	// +listType=set
	// +optional
	Peers []string `json:"peers,omitempty"`

	// serviceSelectors limits the advertisement to Services whose labels
	// match any of these selectors. Empty means every Service. With an
	// aggregation length shorter than a host route, the aggregate is
	// announced only while it holds no address of a Service these
	// selectors leave out; otherwise the selected Services' addresses are
	// announced as host routes (/32, /128), so the aggregate never draws
	// the traffic of a Service this advertisement does not select.
	// +kubebuilder:validation:MaxItems=32
	// +listType=atomic
	// +optional
	ServiceSelectors []metav1.LabelSelector `json:"serviceSelectors,omitempty"`
}

// BGPAdvertisement announces pools' IPs over BGP.
//
// +kubebuilder:object:root=true
// +kubebuilder:resource:scope=Cluster,shortName=bgpadv,categories=lbstack
// +kubebuilder:printcolumn:name="Pools",type=string,JSONPath=`.spec.ipAddressPools`
// +kubebuilder:printcolumn:name="Pool Selectors",type=string,JSONPath=`.spec.ipAddressPoolSelectors`
// +kubebuilder:printcolumn:name="Peers",type=string,JSONPath=`.spec.peers`
// +kubebuilder:printcolumn:name="Aggregation",type=integer,JSONPath=`.spec.aggregationLength`
// +kubebuilder:printcolumn:name="LocalPref",type=integer,JSONPath=`.spec.localPref`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type BGPAdvertisement struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// spec selects pools, peers, nodes and Services and the BGP attributes.
	// +optional
	Spec BGPAdvertisementSpec `json:"spec,omitempty"`
}

// BGPAdvertisementList is a list of BGPAdvertisements.
//
// +kubebuilder:object:root=true
type BGPAdvertisementList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []BGPAdvertisement `json:"items"`
}

func init() {
	SchemeBuilder.Register(&BGPAdvertisement{}, &BGPAdvertisementList{})
}
