package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// CommunityValue is a BGP community: standard "a:b" with two numbers
// 0-65535, or large "large:a:b:c" with three numbers 0-4294967295.
// +kubebuilder:validation:MinLength=3
// +kubebuilder:validation:MaxLength=40
// +kubebuilder:validation:XValidation:rule="self.matches('^[0-9]{1,5}:[0-9]{1,5}$') ? self.split(':').all(x, int(x) <= 65535) : (self.matches('^large:[0-9]{1,10}:[0-9]{1,10}:[0-9]{1,10}$') && self.split(':').all(x, x == 'large' || int(x) <= 4294967295))",message="must be a standard community a:b (numbers 0-65535) or a large community large:a:b:c (numbers 0-4294967295)"
type CommunityValue string

// CommunityRef is a BGP community value (see CommunityValue) or the name of
// a Community alias. Anything that contains ':' is read as a value, so alias
// names never contain ':'.
// +kubebuilder:validation:MinLength=1
// +kubebuilder:validation:MaxLength=63
// +kubebuilder:validation:XValidation:rule="!self.contains(':') || (self.matches('^[0-9]{1,5}:[0-9]{1,5}$') ? self.split(':').all(x, int(x) <= 65535) : (self.matches('^large:[0-9]{1,10}:[0-9]{1,10}:[0-9]{1,10}$') && self.split(':').all(x, x == 'large' || int(x) <= 4294967295)))",message="must be a standard community a:b (numbers 0-65535), a large community large:a:b:c (numbers 0-4294967295) or the name of a Community alias (no ':')"
type CommunityRef string

// CommunityAlias gives a community value a name that advertisements can use.
type CommunityAlias struct {
	// name of the alias, used in BGPAdvertisement communities.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	// +kubebuilder:validation:Pattern=`^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$`
	// +required
	Name string `json:"name"`

	// value the alias stands for.
	// +required
	Value CommunityValue `json:"value"`
}

// CommunitySpec lists named community values.
type CommunitySpec struct {
	// communities are the aliases this object defines. An alias name must
	// be unique across all Community objects.
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=128
	// +listType=map
	// +listMapKey=name
	// +required
	Communities []CommunityAlias `json:"communities"`
}

// Community defines named aliases for BGP community values, so
// advertisements can say "no-advertise" instead of "65535:65282".
//
// +kubebuilder:object:root=true
// +kubebuilder:resource:scope=Cluster,categories=lbstack
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type Community struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// spec lists the aliases.
	// +required
	Spec CommunitySpec `json:"spec"`
}

// CommunityList is a list of Communities.
//
// +kubebuilder:object:root=true
type CommunityList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []Community `json:"items"`
}

func init() {
	SchemeBuilder.Register(&Community{}, &CommunityList{})
}
