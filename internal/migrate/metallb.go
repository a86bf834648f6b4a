package migrate

import (
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// The MetalLB formats, written from MetalLB's API (go.universe.tf/metallb
// api/v1beta1 and api/v1beta2) and from the legacy ConfigMap parser
// (internal/config/config.go up to v0.12). Only what the conversion reads
// is declared; every other field of an object's spec is reported as
// dropped (see unknownFields), never ignored.

// object is one MetalLB custom resource: its metadata and its spec.
type object[S any] struct {
	Kind       string
	APIVersion string
	Meta       metav1.ObjectMeta
	Spec       S
	// Where names the object in findings: "BGPPeer metallb-system/peer1".
	Where string
}

// ipAddressPoolSpec is metallb.io/v1beta1 IPAddressPool.spec.
type ipAddressPoolSpec struct {
	Addresses         []string           `json:"addresses"`
	AutoAssign        *bool              `json:"autoAssign,omitempty"`
	AvoidBuggyIPs     bool               `json:"avoidBuggyIPs,omitempty"`
	ServiceAllocation *serviceAllocation `json:"serviceAllocation,omitempty"`
}

type serviceAllocation struct {
	Priority           int                    `json:"priority,omitempty"`
	Namespaces         []string               `json:"namespaces,omitempty"`
	NamespaceSelectors []metav1.LabelSelector `json:"namespaceSelectors,omitempty"`
	ServiceSelectors   []metav1.LabelSelector `json:"serviceSelectors,omitempty"`
}

// l2AdvertisementSpec is metallb.io/v1beta1 L2Advertisement.spec.
type l2AdvertisementSpec struct {
	IPAddressPools         []string                `json:"ipAddressPools,omitempty"`
	IPAddressPoolSelectors []metav1.LabelSelector  `json:"ipAddressPoolSelectors,omitempty"`
	NodeSelectors          []metav1.LabelSelector  `json:"nodeSelectors,omitempty"`
	Interfaces             []string                `json:"interfaces,omitempty"`
	ServiceSelectors       []metav1.LabelSelector  `json:"serviceSelectors,omitempty"`
	PreferredNodeSelectors []preferredNodeSelector `json:"preferredNodeSelectors,omitempty"`
}

type preferredNodeSelector struct {
	Weight     int32                `json:"weight"`
	Preference metav1.LabelSelector `json:"preference"`
}

// bgpAdvertisementSpec is metallb.io/v1beta1 BGPAdvertisement.spec.
type bgpAdvertisementSpec struct {
	AggregationLength      *int32                 `json:"aggregationLength,omitempty"`
	AggregationLengthV6    *int32                 `json:"aggregationLengthV6,omitempty"`
	LocalPref              uint32                 `json:"localPref,omitempty"`
	Communities            []string               `json:"communities,omitempty"`
	IPAddressPools         []string               `json:"ipAddressPools,omitempty"`
	IPAddressPoolSelectors []metav1.LabelSelector `json:"ipAddressPoolSelectors,omitempty"`
	NodeSelectors          []metav1.LabelSelector `json:"nodeSelectors,omitempty"`
	Peers                  []string               `json:"peers,omitempty"`
	ServiceSelectors       []metav1.LabelSelector `json:"serviceSelectors,omitempty"`
}

// bgpPeerSpec is metallb.io BGPPeer.spec, v1beta2 with the v1beta1
// fields (which v1beta2 kept under the same names; v1beta1's
// nodeSelectors have the shape of a LabelSelector).
type bgpPeerSpec struct {
	MyASN                  uint32                  `json:"myASN"`
	PeerASN                uint32                  `json:"peerASN,omitempty"`
	LocalASN               uint32                  `json:"localASN,omitempty"`
	DynamicASN             string                  `json:"dynamicASN,omitempty"`
	PeerAddress            string                  `json:"peerAddress,omitempty"`
	Interface              string                  `json:"interface,omitempty"`
	SourceAddress          string                  `json:"sourceAddress,omitempty"`
	PeerPort               uint16                  `json:"peerPort,omitempty"`
	HoldTime               *metav1.Duration        `json:"holdTime,omitempty"`
	KeepaliveTime          *metav1.Duration        `json:"keepaliveTime,omitempty"`
	ConnectTime            *metav1.Duration        `json:"connectTime,omitempty"`
	RouterID               string                  `json:"routerID,omitempty"`
	NodeSelectors          []metav1.LabelSelector  `json:"nodeSelectors,omitempty"`
	Password               string                  `json:"password,omitempty"`
	PasswordSecret         *corev1.SecretReference `json:"passwordSecret,omitempty"`
	BFDProfile             string                  `json:"bfdProfile,omitempty"`
	EnableGracefulRestart  bool                    `json:"enableGracefulRestart,omitempty"`
	EBGPMultiHop           bool                    `json:"ebgpMultiHop,omitempty"`
	VRF                    string                  `json:"vrf,omitempty"`
	DisableMP              bool                    `json:"disableMP,omitempty"`
	DualStackAddressFamily bool                    `json:"dualStackAddressFamily,omitempty"`
}

// bfdProfileSpec is metallb.io/v1beta1 BFDProfile.spec.
type bfdProfileSpec struct {
	ReceiveInterval  *uint32 `json:"receiveInterval,omitempty"`
	TransmitInterval *uint32 `json:"transmitInterval,omitempty"`
	DetectMultiplier *uint32 `json:"detectMultiplier,omitempty"`
	EchoInterval     *uint32 `json:"echoInterval,omitempty"`
	EchoMode         *bool   `json:"echoMode,omitempty"`
	PassiveMode      *bool   `json:"passiveMode,omitempty"`
	MinimumTTL       *uint32 `json:"minimumTtl,omitempty"`
}

// communitySpec is metallb.io/v1beta1 Community.spec.
type communitySpec struct {
	Communities []communityAlias `json:"communities,omitempty"`
}

type communityAlias struct {
	Name  string `json:"name,omitempty"`
	Value string `json:"value,omitempty"`
}

// legacyConfig is the `config` key of MetalLB's ConfigMap (MetalLB v0.12
// and earlier), with the spellings of older releases (a pool's `cidr`
// before `addresses`, `arp-network`).
type legacyConfig struct {
	Peers          []legacyPeer       `json:"peers,omitempty"`
	BGPCommunities map[string]string  `json:"bgp-communities,omitempty"`
	Pools          []legacyPool       `json:"address-pools,omitempty"`
	BFDProfiles    []legacyBFDProfile `json:"bfd-profiles,omitempty"`
}

type legacyPeer struct {
	MyASN         uint32               `json:"my-asn"`
	PeerASN       uint32               `json:"peer-asn"`
	PeerAddress   string               `json:"peer-address"`
	SourceAddress string               `json:"source-address,omitempty"`
	PeerPort      uint16               `json:"peer-port,omitempty"`
	HoldTime      legacyDuration       `json:"hold-time,omitempty"`
	KeepaliveTime legacyDuration       `json:"keepalive-time,omitempty"`
	RouterID      string               `json:"router-id,omitempty"`
	NodeSelectors []legacyNodeSelector `json:"node-selectors,omitempty"`
	Password      string               `json:"password,omitempty"`
	BFDProfile    string               `json:"bfd-profile,omitempty"`
	EBGPMultiHop  bool                 `json:"ebgp-multihop,omitempty"`
}

type legacyNodeSelector struct {
	MatchLabels      map[string]string   `json:"match-labels,omitempty"`
	MatchExpressions []legacyRequirement `json:"match-expressions,omitempty"`
}

type legacyRequirement struct {
	Key      string   `json:"key"`
	Operator string   `json:"operator"`
	Values   []string `json:"values,omitempty"`
}

type legacyPool struct {
	Name              string                   `json:"name"`
	Protocol          string                   `json:"protocol"`
	Addresses         []string                 `json:"addresses,omitempty"`
	CIDR              []string                 `json:"cidr,omitempty"`
	AvoidBuggyIPs     bool                     `json:"avoid-buggy-ips,omitempty"`
	AutoAssign        *bool                    `json:"auto-assign,omitempty"`
	BGPAdvertisements []legacyBGPAdvertisement `json:"bgp-advertisements,omitempty"`
	ARPNetwork        string                   `json:"arp-network,omitempty"`
}

type legacyBGPAdvertisement struct {
	AggregationLength   *int32   `json:"aggregation-length,omitempty"`
	AggregationLengthV6 *int32   `json:"aggregation-length-v6,omitempty"`
	LocalPref           *uint32  `json:"localpref,omitempty"`
	Communities         []string `json:"communities,omitempty"`
}

type legacyBFDProfile struct {
	Name             string  `json:"name"`
	ReceiveInterval  *uint32 `json:"receive-interval,omitempty"`
	TransmitInterval *uint32 `json:"transmit-interval,omitempty"`
	DetectMultiplier *uint32 `json:"detect-multiplier,omitempty"`
	EchoInterval     *uint32 `json:"echo-interval,omitempty"`
	EchoMode         bool    `json:"echo-mode,omitempty"`
	PassiveMode      bool    `json:"passive-mode,omitempty"`
	MinimumTTL       *uint32 `json:"minimum-ttl,omitempty"`
}

// legacyDuration is a hold-time or keepalive-time of the legacy format: a
// Go duration ("90s"). MetalLB's own example once wrote a bare number
// ("hold-time: 120"), which MetalLB refused; it is read as seconds, and
// Bare records that so the conversion can say so.
type legacyDuration struct {
	Set  bool
	Bare bool
	Raw  string
	D    time.Duration
}

// UnmarshalJSON reads a duration string or a bare number of seconds.
func (d *legacyDuration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err == nil {
		if s == "" {
			*d = legacyDuration{}
			return nil
		}
		v, err := time.ParseDuration(s)
		if err != nil {
			return fmt.Errorf("%q is not a duration such as 90s", s)
		}
		*d = legacyDuration{Set: true, Raw: s, D: v}
		return nil
	}
	var n json.Number
	if err := json.Unmarshal(b, &n); err != nil {
		return fmt.Errorf("%s is not a duration such as 90s", b)
	}
	secs, err := strconv.ParseFloat(n.String(), 64)
	if err != nil || secs < 0 || secs > 1e6 {
		return fmt.Errorf("%s is not a duration such as 90s", b)
	}
	*d = legacyDuration{Set: true, Bare: true, Raw: n.String(), D: time.Duration(secs * float64(time.Second))}
	return nil
}

// MarshalJSON writes the duration back as read; it is only here so that
// the unknown-field walker treats the type as a scalar.
func (d legacyDuration) MarshalJSON() ([]byte, error) { return json.Marshal(d.Raw) }
