package v1alpha1

// Annotations and labels lbstack reads on Services and writes on objects.
const (
	// AnnotationLoadBalancerIPs requests specific IPs for a Service: a
	// comma-separated list with at most one IP per family.
	AnnotationLoadBalancerIPs = "lbstack.io/loadBalancerIPs"
	// AnnotationAddressPool requests that a Service's IP come from the named pool.
	AnnotationAddressPool = "lbstack.io/address-pool"
	// AnnotationAllowSharedIP lets Services with the same value share an IP
	// when their ports do not clash.
	AnnotationAllowSharedIP = "lbstack.io/allow-shared-ip"
	// AnnotationAllocatedFromPool is written by the controller: the pool
	// the Service's IP came from.
	AnnotationAllocatedFromPool = "lbstack.io/ip-allocated-from-pool"
	// AnnotationSharedAs is written by the controller on a Service with an
	// allow-shared-ip key: a digest of what decided that it may share its
	// IP (sharing key, ports, traffic policy and selector) when the IP was
	// last confirmed. When a new controller leader relearns the addresses
	// and two Services claim one that they can no longer share, the one
	// whose sharing changed since gives way and the other keeps its IP.
	AnnotationSharedAs = "lbstack.io/ip-shared-as"
	// MetalLB's spellings of AnnotationLoadBalancerIPs, AnnotationAddressPool
	// and AnnotationAllowSharedIP, which lbstack honours alike so that a
	// Service keeps its IP, pool and sharing when lbstack takes over from
	// MetalLB: the current prefix (MetalLB v0.14 and later) and the legacy
	// one.
	MetalLBAnnotationPrefix       = "metallb.io/"
	MetalLBLegacyAnnotationPrefix = "metallb.universe.tf/"
	// LabelExcludeFromExternalLoadBalancers is the well-known node label
	// that keeps a node from announcing.
	LabelExcludeFromExternalLoadBalancers = "node.kubernetes.io/exclude-from-external-load-balancers"
)
