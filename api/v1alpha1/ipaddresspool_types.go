package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// IPAddressPoolSpec is a set of addresses lbstack may hand out to Services of
// type LoadBalancer, and the rules that decide which Services may get them.
type IPAddressPoolSpec struct {
	// addresses lists the pool's addresses. Each item is either a CIDR
	// ("192.0.2.0/26", "2001:db8::/64"; no bits may be set after the prefix
	// length) or an inclusive range of one family ("192.0.2.10-192.0.2.20",
	// "2001:db8::10-2001:db8::ff"). IPv4 and IPv6 items may be mixed in one
	// pool, which makes the pool dual-stack. Items must not overlap each
	// other or any other pool.
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=64
	// +listType=set
	// +required
	Addresses []PoolAddress `json:"addresses"`

	// autoAssign lets the controller pick addresses from this pool for
	// Services that do not name a pool or an IP. Set it to false for pools
	// that should only be used on request (annotation lbstack.io/address-pool
	// or an explicit IP).
	// +kubebuilder:default=true
	// +optional
	AutoAssign *bool `json:"autoAssign,omitempty"`

	// avoidBuggyIPs skips IPv4 addresses that end in .0 or .255, which some
	// old client networks mistake for network or broadcast addresses.
	// +kubebuilder:default=false
	// +optional
	AvoidBuggyIPs bool `json:"avoidBuggyIPs,omitempty"`

	// allocation restricts which Services may take addresses from this pool
	// and in what order pools are tried.
	// +optional
	Allocation *ServiceAllocation `json:"allocation,omitempty"`
}

// PoolAddress is a CIDR or an inclusive range "start-end" of one IP family.
// +kubebuilder:validation:MinLength=1
// +kubebuilder:validation:MaxLength=81
// +kubebuilder:validation:XValidation:rule="isCIDR(self) || (self.split('-').size() == 2 && isIP(self.split('-')[0].trim()) && isIP(self.split('-')[1].trim()))",message="must be a CIDR such as 192.0.2.0/24 or a range such as 192.0.2.10-192.0.2.20"
// +kubebuilder:validation:XValidation:rule="!isCIDR(self) || cidr(self) == cidr(self).masked()",message="a CIDR must have no bits set after its prefix length"
// +kubebuilder:validation:XValidation:rule="!(self.split('-').size() == 2 && isIP(self.split('-')[0].trim()) && isIP(self.split('-')[1].trim())) || ip(self.split('-')[0].trim()).family() == ip(self.split('-')[1].trim()).family()",message="a range must not mix IPv4 and IPv6"
// +kubebuilder:validation:XValidation:rule="!(self.split('-').size() == 2 && isIP(self.split('-')[0].trim()) && isIP(self.split('-')[1].trim())) || ip(self.split('-')[0].trim()).family() != 4 || ip(self.split('-')[1].trim()).family() != 4 || ((int(self.split('-')[0].trim().split('.')[0])*256 + int(self.split('-')[0].trim().split('.')[1]))*256 + int(self.split('-')[0].trim().split('.')[2]))*256 + int(self.split('-')[0].trim().split('.')[3]) <= ((int(self.split('-')[1].trim().split('.')[0])*256 + int(self.split('-')[1].trim().split('.')[1]))*256 + int(self.split('-')[1].trim().split('.')[2]))*256 + int(self.split('-')[1].trim().split('.')[3])",message="a range must not start after it ends"
type PoolAddress string

// ServiceAllocation restricts a pool to some Services and orders it among pools.
type ServiceAllocation struct {
	// priority orders pools that match a Service: a lower number is tried
	// first. Pools without a priority come after all pools with one.
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=1000000
	// +optional
	Priority *int32 `json:"priority,omitempty"`

	// namespaces restricts the pool to Services in these namespaces.
	// +kubebuilder:validation:MaxItems=256
	// +kubebuilder:validation:items:MaxLength=63
	// +listType=set
	// +optional
	Namespaces []string `json:"namespaces,omitempty"`

	// namespaceSelectors restricts the pool to Services in namespaces whose
	// labels match any of these selectors.
	// +kubebuilder:validation:MaxItems=32
	// +listType=atomic
	// +optional
	NamespaceSelectors []metav1.LabelSelector `json:"namespaceSelectors,omitempty"`

	// serviceSelectors restricts the pool to Services whose labels match any
	// of these selectors.
	// +kubebuilder:validation:MaxItems=32
	// +listType=atomic
	// +optional
	ServiceSelectors []metav1.LabelSelector `json:"serviceSelectors,omitempty"`
}

// IPAddressPoolStatus reports how much of the pool is in use. The
// controller keeps it current.
type IPAddressPoolStatus struct {
	PoolUsage `json:",inline"`

	// observedGeneration is the pool generation the counters were computed for.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// conditions report problems with the pool, for example addresses that
	// Services hold although the pool no longer contains them.
	// +listType=map
	// +listMapKey=type
	// +optional
	Conditions []metav1.Condition `json:"conditions,omitempty"`
}

// IPAddressPool is a set of external IPs for Services of type LoadBalancer.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:scope=Cluster,shortName=lbpool;lbpools,categories=lbstack
// +kubebuilder:printcolumn:name="Addresses",type=string,JSONPath=`.spec.addresses`
// +kubebuilder:printcolumn:name="Auto Assign",type=boolean,JSONPath=`.spec.autoAssign`
// +kubebuilder:printcolumn:name="Assigned IPv4",type=integer,JSONPath=`.status.ipv4.assigned`
// +kubebuilder:printcolumn:name="Available IPv4",type=string,JSONPath=`.status.ipv4.available`
// +kubebuilder:printcolumn:name="Assigned IPv6",type=integer,JSONPath=`.status.ipv6.assigned`
// +kubebuilder:printcolumn:name="Available IPv6",type=string,JSONPath=`.status.ipv6.available`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type IPAddressPool struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// spec lists the addresses and who may use them.
	// +required
	Spec IPAddressPoolSpec `json:"spec"`

	// status counts assigned and available addresses per family.
	// +optional
	Status IPAddressPoolStatus `json:"status,omitempty"`
}

// IPAddressPoolList is a list of IPAddressPools.
//
// +kubebuilder:object:root=true
type IPAddressPoolList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []IPAddressPool `json:"items"`
}

func init() {
	SchemeBuilder.Register(&IPAddressPool{}, &IPAddressPoolList{})
}
