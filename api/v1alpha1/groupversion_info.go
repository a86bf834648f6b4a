// Package v1alpha1 holds the lbstack.io/v1alpha1 API: the LoadBalancerStack a user
// applies, the standalone configuration kinds it expands into (IPAddressPool,
// L2Advertisement, BGPAdvertisement, BGPPeer, BFDProfile, Community) and the
// ServiceAnnouncement record the speakers keep for every announced Service.
//
// +kubebuilder:object:generate=true
// +groupName=lbstack.io
package v1alpha1

import (
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/scheme"
)

var (
	// GroupVersion is the group and version of every kind in this package.
	GroupVersion = schema.GroupVersion{Group: "lbstack.io", Version: "v1alpha1"}

	// SchemeBuilder registers the kinds of this package with a runtime.Scheme.
	SchemeBuilder = &scheme.Builder{GroupVersion: GroupVersion}

	// AddToScheme adds the kinds of this package to a runtime.Scheme.
	AddToScheme = SchemeBuilder.AddToScheme
)
