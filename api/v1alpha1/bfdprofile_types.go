package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// BFDProfileSpec holds the timers of a BFD session (RFC 5880), which detects
// a dead BGP peer in milliseconds instead of waiting for the hold time.
// +kubebuilder:validation:XValidation:rule="!has(self.echoMode) || !self.echoMode",message="BFD echo is not supported: lbstack runs BFD in asynchronous mode only (control packets at transmitInterval detect a failure); remove echoMode or set it to false",fieldPath=".echoMode"
// +kubebuilder:validation:XValidation:rule="!has(self.echoInterval)",message="echoInterval needs echoMode, which is not supported; remove echoInterval",fieldPath=".echoInterval"
type BFDProfileSpec struct {
	// receiveInterval is the minimum interval, in milliseconds, between BFD
	// control packets this node is able to receive.
	// +kubebuilder:validation:Minimum=10
	// +kubebuilder:validation:Maximum=60000
	// +kubebuilder:default=300
	// +optional
	ReceiveInterval *int32 `json:"receiveInterval,omitempty"`

	// transmitInterval is the minimum interval, in milliseconds, at which
	// this node wants to send BFD control packets.
	// +kubebuilder:validation:Minimum=10
	// +kubebuilder:validation:Maximum=60000
	// +kubebuilder:default=300
	// +optional
	TransmitInterval *int32 `json:"transmitInterval,omitempty"`

	// detectMultiplier is how many intervals may pass without a packet
	// before the session is declared down.
	// +kubebuilder:validation:Minimum=2
	// +kubebuilder:validation:Maximum=255
	// +kubebuilder:default=3
	// +optional
	DetectMultiplier *int32 `json:"detectMultiplier,omitempty"`

	// echoMode would enable BFD echo packets (RFC 5880 §6.4). lbstack does
	// not implement the echo function: only false (or no value) is
	// accepted, so that MetalLB profiles that spell out the default apply
	// unchanged, and true is refused rather than silently ignored.
	// +optional
	EchoMode *bool `json:"echoMode,omitempty"`

	// echoInterval would be the interval between echo packets. Refused:
	// echo mode is not supported (see echoMode).
	// +kubebuilder:validation:Minimum=10
	// +kubebuilder:validation:Maximum=60000
	// +optional
	EchoInterval *int32 `json:"echoInterval,omitempty"`

	// passiveMode makes this end wait for the peer's first packet instead of
	// starting the session.
	// +optional
	PassiveMode *bool `json:"passiveMode,omitempty"`

	// minimumTtl is the lowest TTL accepted on the packets of a multi-hop
	// BFD session (RFC 5883), which a peer with ebgpMultiHop runs; 254
	// accepts a peer one router away that sends with TTL 255 (FRR, most
	// routers). BIRD sends multi-hop BFD with the system default TTL (64):
	// with a BIRD router set at most 64 minus the hops between. A
	// single-hop session always requires TTL 255 (RFC 5881) and ignores
	// this field.
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=254
	// +kubebuilder:default=254
	// +optional
	MinimumTTL *int32 `json:"minimumTtl,omitempty"`

	// authentication signs and checks every BFD control packet with a
	// shared key (RFC 5880 §6.7), so that no host on the path can take a
	// session (and the BGP session behind it) down with a forged packet.
	// The router must use the same type, key ID and key. Empty means no
	// authentication.
	// +optional
	Authentication *BFDAuthentication `json:"authentication,omitempty"`
}

// BFDAuthenticationType is a keyed BFD authentication type (RFC 5880 §6.7.3,
// §6.7.4). Simple Password, which sends the key in clear, is not offered.
// +kubebuilder:validation:Enum=KeyedMD5;MeticulousKeyedMD5;KeyedSHA1;MeticulousKeyedSHA1
type BFDAuthenticationType string

// BFD authentication types.
const (
	BFDAuthKeyedMD5            BFDAuthenticationType = "KeyedMD5"
	BFDAuthMeticulousKeyedMD5  BFDAuthenticationType = "MeticulousKeyedMD5"
	BFDAuthKeyedSHA1           BFDAuthenticationType = "KeyedSHA1"
	BFDAuthMeticulousKeyedSHA1 BFDAuthenticationType = "MeticulousKeyedSHA1"
)

// BFDAuthentication is the shared key of BFD sessions.
type BFDAuthentication struct {
	// type is the authentication type. The meticulous types put a new
	// sequence number in every packet, so a captured packet cannot be
	// replayed; BIRD calls them "meticulous keyed md5|sha1".
	// +required
	Type BFDAuthenticationType `json:"type"`
	// keyID identifies the key on the wire; the router must use the same.
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=255
	// +kubebuilder:default=1
	// +optional
	KeyID *int32 `json:"keyID,omitempty"`
	// keySecret refers to the Secret (Opaque or kubernetes.io/basic-auth)
	// whose key holds the shared key: 1 to 16 bytes for the MD5 types, 1
	// to 20 for SHA1. The key never appears in this object or in logs. A
	// missing or malformed Secret is a warning at admission, and the
	// speakers leave the peers using this profile unconfigured until it
	// is fixed rather than run BFD without the key.
	// +required
	KeySecret SecretReference `json:"keySecret"`
}

// MaxKeyLength is the longest key of the type: 16 bytes for MD5, 20 for
// SHA1.
func (t BFDAuthenticationType) MaxKeyLength() int {
	switch t {
	case BFDAuthKeyedSHA1, BFDAuthMeticulousKeyedSHA1:
		return 20
	}
	return 16
}

// BFDProfile is a named set of BFD timers that BGPPeers refer to.
//
// +kubebuilder:object:root=true
// +kubebuilder:resource:scope=Cluster,categories=lbstack
// +kubebuilder:printcolumn:name="Receive",type=integer,JSONPath=`.spec.receiveInterval`
// +kubebuilder:printcolumn:name="Transmit",type=integer,JSONPath=`.spec.transmitInterval`
// +kubebuilder:printcolumn:name="Multiplier",type=integer,JSONPath=`.spec.detectMultiplier`
// +kubebuilder:printcolumn:name="Auth",type=string,JSONPath=`.spec.authentication.type`,priority=1
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type BFDProfile struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// spec holds the timers.
	// +optional
	Spec BFDProfileSpec `json:"spec,omitempty"`
}

// BFDProfileList is a list of BFDProfiles.
//
// +kubebuilder:object:root=true
type BFDProfileList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []BFDProfile `json:"items"`
}

func init() {
	SchemeBuilder.Register(&BFDProfile{}, &BFDProfileList{})
}
