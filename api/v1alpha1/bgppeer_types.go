package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// BGPPeerSpec describes a BGP session between the nodes' speakers and a router.
// +kubebuilder:validation:XValidation:rule="!has(self.keepaliveTime) || !has(self.holdTime) || (duration(self.holdTime) == duration('0s') ? duration(self.keepaliveTime) == duration('0s') : duration(self.keepaliveTime) < duration(self.holdTime))",message="keepaliveTime must be shorter than holdTime (both 0s disables keepalives)",fieldPath=".keepaliveTime"
// +kubebuilder:validation:XValidation:rule="has(self.peerASN) != has(self.dynamicASN)",message="set exactly one of peerASN and dynamicASN"
// +kubebuilder:validation:XValidation:rule="has(self.peerAddress) != has(self.interface)",message="set exactly one of peerAddress and interface"
// +kubebuilder:validation:XValidation:rule="!has(self.interface) || !has(self.passwordSecret) && !has(self.bfdProfile) && !has(self.sourceAddress) && !(has(self.ebgpMultiHop) && self.ebgpMultiHop)",message="an unnumbered session (interface) takes no passwordSecret, bfdProfile, sourceAddress or ebgpMultiHop",fieldPath=".interface"
// +kubebuilder:validation:XValidation:rule="!has(self.ebgpMultiHop) || !self.ebgpMultiHop || (has(self.dynamicASN) ? self.dynamicASN == 'external' : (!has(self.peerASN) || self.myASN != self.peerASN))",message="ebgpMultiHop applies only to eBGP sessions (myASN different from peerASN, or dynamicASN: external)",fieldPath=".ebgpMultiHop"
type BGPPeerSpec struct {
	// myASN is the autonomous system number the speakers use on this session.
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=4294967295
	// +required
	MyASN int64 `json:"myASN"`

	// peerASN is the autonomous system number of the router. Equal to myASN
	// makes an iBGP session, different makes eBGP. Set exactly one of
	// peerASN and dynamicASN.
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=4294967295
	// +optional
	PeerASN int64 `json:"peerASN,omitempty"`

	// dynamicASN, instead of peerASN, accepts whatever AS number the
	// router announces, as long as it is of this kind: internal (myASN,
	// iBGP) or external (any other, eBGP). A router of the other kind has
	// its session reset right after it opens (lastError says why), and is
	// tried again about every 30 s.
	// +optional
	DynamicASN DynamicASNMode `json:"dynamicASN,omitempty"`

	// peerAddress is the router's IPv4 or IPv6 address. Exactly one of
	// peerAddress and interface is set.
	// +kubebuilder:validation:MinLength=2
	// +kubebuilder:validation:MaxLength=45
	// +kubebuilder:validation:XValidation:rule="isIP(self)",message="must be an IPv4 or IPv6 address"
	// +optional
	PeerAddress string `json:"peerAddress,omitempty"`

	// interface makes the session unnumbered (as MetalLB's FRR mode
	// spells it): the node peers over this network interface with the one
	// router on its point-to-point link, found as the IPv6 link-local
	// neighbor on the interface (the speaker pings all nodes on the link
	// to find it and looks again every few seconds until it does; a link
	// with several neighbors is refused on the node, with a NotConfigured
	// status entry saying so). IPv4 and IPv6 routes go over the one session
	// with the link-local next hop (RFC 8950 extended next hop; the router
	// must accept it). Exactly one of peerAddress and interface is set.
	// Not with passwordSecret (TCP MD5 cannot be keyed to a link-local
	// address by the BGP library), bfdProfile, ebgpMultiHop or
	// sourceAddress, which admission refuses.
	// +kubebuilder:validation:MaxLength=15
	// +kubebuilder:validation:Pattern=`^[A-Za-z0-9_][A-Za-z0-9_.:@-]*$`
	// +optional
	Interface string `json:"interface,omitempty"`

	// peerPort is the router's TCP port.
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=65535
	// +kubebuilder:default=179
	// +optional
	PeerPort int32 `json:"peerPort,omitempty"`

	// sourceAddress is the local address the session is opened from. Empty
	// lets the kernel choose the address of the route toward the peer.
	// +kubebuilder:validation:MaxLength=45
	// +kubebuilder:validation:XValidation:rule="isIP(self)",message="must be an IPv4 or IPv6 address"
	// +optional
	SourceAddress string `json:"sourceAddress,omitempty"`

	// routerID is the BGP identifier of the node's speaker, written as an
	// IPv4 address. A node has one identifier for all its sessions, so
	// this is a per-node setting: empty means no preference (the routerID
	// another peer of the node sets, else the node's IPv4 address). Two
	// peers that set different values and select a common node whatever
	// the Node labels are refused; otherwise a node that selects both
	// configures only the one created first (NotConfigured in the other's
	// status, with a PeerSkipped event).
	// +kubebuilder:validation:MaxLength=15
	// +kubebuilder:validation:XValidation:rule="isIP(self) && ip(self).family() == 4",message="must be an IPv4 address"
	// +optional
	RouterID string `json:"routerID,omitempty"`

	// holdTime is the BGP hold time proposed to the peer: 0s (no keepalives)
	// or at least 3s (RFC 4271), a whole number of seconds (BGP carries its
	// timers in seconds; the webhook refuses a fraction). Defaults to 90s.
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:Pattern=`^([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$`
	// +kubebuilder:validation:MaxLength=32
	// +kubebuilder:validation:XValidation:rule="duration(self) == duration('0s') || (duration(self) >= duration('3s') && duration(self) <= duration('65535s'))",message="must be 0s or between 3s and 65535s"
	// +optional
	HoldTime *metav1.Duration `json:"holdTime,omitempty"`

	// keepaliveTime is the interval between keepalive messages. It must be
	// shorter than holdTime and a whole number of seconds. Defaults to a
	// third of the hold time.
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:Pattern=`^([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$`
	// +kubebuilder:validation:MaxLength=32
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('0s') && duration(self) <= duration('21845s')",message="must be between 0s and 21845s"
	// +optional
	KeepaliveTime *metav1.Duration `json:"keepaliveTime,omitempty"`

	// connectTime is how long to wait between attempts to open the session,
	// a whole number of seconds. Defaults to 5s.
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:Pattern=`^([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$`
	// +kubebuilder:validation:MaxLength=32
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('1s') && duration(self) <= duration('65535s')",message="must be between 1s and 65535s"
	// +optional
	ConnectTime *metav1.Duration `json:"connectTime,omitempty"`

	// ebgpMultiHop allows an eBGP peer that is not directly connected.
	// Only valid when myASN and peerASN differ.
	// +optional
	EBGPMultiHop *bool `json:"ebgpMultiHop,omitempty"`

	// passwordSecret refers to a Secret whose key holds the TCP MD5
	// password (RFC 2385) of the session. The password never appears in
	// this object or in logs.
	// +optional
	PasswordSecret *SecretReference `json:"passwordSecret,omitempty"`

	// bfdProfile names the BFDProfile whose timers run a BFD session with
	// this peer. Empty means no BFD.
	// +kubebuilder:validation:MaxLength=253
	// +optional
	BFDProfile string `json:"bfdProfile,omitempty"`

	// enableGracefulRestart asks the peer to keep the routes of a
	// restarting speaker (RFC 4724) so a rolling update does not drop
	// traffic.
	// +optional
	EnableGracefulRestart *bool `json:"enableGracefulRestart,omitempty"`

	// nodeSelectors limits the nodes that open this session; a node
	// matching any selector does. Empty means every node.
	// +kubebuilder:validation:MaxItems=32
	// +listType=atomic
	// +optional
	NodeSelectors []metav1.LabelSelector `json:"nodeSelectors,omitempty"`

	// dualStackAddressFamily carries both IPv4 and IPv6 prefixes over this
	// one session (MP-BGP), instead of only the session's own family.
	// +optional
	DualStackAddressFamily *bool `json:"dualStackAddressFamily,omitempty"`
}

// DynamicASNMode is the kind of AS number a BGPPeer without peerASN accepts.
// +kubebuilder:validation:Enum=internal;external
type DynamicASNMode string

// Dynamic ASN modes.
const (
	DynamicASNInternal DynamicASNMode = "internal"
	DynamicASNExternal DynamicASNMode = "external"
)

// BGPSessionState is the state of a BGP session (RFC 4271 finite state machine).
// +kubebuilder:validation:Enum=Idle;Connect;Active;OpenSent;OpenConfirm;Established;Unknown;NotConfigured
type BGPSessionState string

// BGP session states.
const (
	BGPSessionIdle        BGPSessionState = "Idle"
	BGPSessionConnect     BGPSessionState = "Connect"
	BGPSessionActive      BGPSessionState = "Active"
	BGPSessionOpenSent    BGPSessionState = "OpenSent"
	BGPSessionOpenConfirm BGPSessionState = "OpenConfirm"
	BGPSessionEstablished BGPSessionState = "Established"
	BGPSessionUnknown     BGPSessionState = "Unknown"
	// BGPSessionNotConfigured: the node left the peer out (lastError says
	// why: another peer with its address selects the node, or the speaker
	// cannot configure it); the node's other peers are unaffected.
	BGPSessionNotConfigured BGPSessionState = "NotConfigured"
)

// BGPNodeSession is the state of the session between one node and the peer.
type BGPNodeSession struct {
	// node is the name of the node whose speaker holds the session.
	// +kubebuilder:validation:MaxLength=253
	// +required
	Node string `json:"node"`

	// state of the BGP session.
	// +required
	State BGPSessionState `json:"state"`

	// bfdState is the state of the BFD session ("Up", "Down", "Init",
	// "AdminDown"), absent when the peer has no BFD profile.
	// +kubebuilder:validation:MaxLength=16
	// +optional
	BFDState string `json:"bfdState,omitempty"`

	// prefixesAdvertised is the number of prefixes sent to the peer.
	// +optional
	PrefixesAdvertised int32 `json:"prefixesAdvertised,omitempty"`

	// lastError is the last error the session reported (for example an
	// authentication failure or a NOTIFICATION from the peer).
	// +kubebuilder:validation:MaxLength=1024
	// +optional
	LastError string `json:"lastError,omitempty"`

	// lastTransitionTime is when state last changed.
	// +optional
	LastTransitionTime metav1.Time `json:"lastTransitionTime,omitempty"`
}

// BGPPeerStatus reports the sessions with this peer, one per node.
type BGPPeerStatus struct {
	// nodes holds one entry per node that has a session with this peer.
	// Each speaker writes its own entry.
	// +listType=map
	// +listMapKey=node
	// +optional
	Nodes []BGPNodeSession `json:"nodes,omitempty"`

	// established is the number of nodes whose session is Established.
	// +optional
	Established int32 `json:"established,omitempty"`
}

// BGPPeer is a router the speakers open BGP sessions with.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:scope=Cluster,categories=lbstack
// +kubebuilder:printcolumn:name="Address",type=string,JSONPath=`.spec.peerAddress`
// +kubebuilder:printcolumn:name="Interface",type=string,JSONPath=`.spec.interface`,priority=1
// +kubebuilder:printcolumn:name="Port",type=integer,JSONPath=`.spec.peerPort`,priority=1
// +kubebuilder:printcolumn:name="My ASN",type=integer,JSONPath=`.spec.myASN`
// +kubebuilder:printcolumn:name="Peer ASN",type=integer,JSONPath=`.spec.peerASN`
// +kubebuilder:printcolumn:name="Nodes Up",type=integer,JSONPath=`.status.established`
// +kubebuilder:printcolumn:name="BFD",type=string,JSONPath=`.spec.bfdProfile`,priority=1
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type BGPPeer struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// spec describes the session.
	// +required
	Spec BGPPeerSpec `json:"spec"`

	// status reports the per-node session state.
	// +optional
	Status BGPPeerStatus `json:"status,omitempty"`
}

// BGPPeerList is a list of BGPPeers.
//
// +kubebuilder:object:root=true
type BGPPeerList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []BGPPeer `json:"items"`
}

func init() {
	SchemeBuilder.Register(&BGPPeer{}, &BGPPeerList{})
}
