// Package config holds lbstack's one definition of "valid": Build turns the
// complete set of lbstack objects (standalone ones and those inline in a
// LoadBalancerStack) into a typed, validated Config, or a field.ErrorList
// with every problem at once. The admission webhooks, the controller and the
// speakers all call it; no rule is written twice.
//
// Every error's field path starts at the object it is about, written as
// Kind[name], for example
//
//	IPAddressPool[test].spec.addresses[0]: Invalid value: "192.0.2.0/24": overlaps IPAddressPool "prod" at IPAddressPool[prod].spec.addresses[1] (192.0.2.128/25); pools must not share addresses
//	LoadBalancerStack[lbstack].spec.bgpPeers[0].holdTime: Invalid value: "2s": must be 0s or between 3s and 65535s (RFC 4271)
//
// References: a BGPPeer's bfdProfile and a community alias that do not
// exist are errors (the session or announcement cannot be built without
// them, and deleting a referenced BFDProfile or Community is refused); an
// advertisement's pool or peer that does not exist is a warning (it simply
// announces nothing until the pool or peer is created, which lets GitOps
// tools apply objects in any order).
package config

import (
	"math/big"
	"net/netip"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"

	lbv1 "github.com/lbstack/lbstack/api/v1alpha1"
)

// Objects is everything Build reads. Validity never depends on Node
// labels: two peers with one address and port whose node selectors differ
// are valid, and a node that both select keeps the older one at run time.
type Objects struct {
	Stacks            []lbv1.LoadBalancerStack
	Pools             []lbv1.IPAddressPool
	L2Advertisements  []lbv1.L2Advertisement
	BGPAdvertisements []lbv1.BGPAdvertisement
	Peers             []lbv1.BGPPeer
	BFDProfiles       []lbv1.BFDProfile
	Communities       []lbv1.Community
}

// Config is the validated configuration.
type Config struct {
	// Stack is the name of the LoadBalancerStack in force, "" when there is none.
	Stack string
	// LoadBalancerClass is the class of the Services lbstack serves ("" = no class).
	LoadBalancerClass string
	// Pools by name.
	Pools map[string]*Pool
	// Peers by name.
	Peers map[string]*Peer
	// BFDProfiles by name.
	BFDProfiles map[string]*BFDProfile
	// CommunityAliases maps alias name to value.
	CommunityAliases map[string]Community
	// L2Advertisements and BGPAdvertisements in name order.
	L2Advertisements  []*L2Advertisement
	BGPAdvertisements []*BGPAdvertisement
}

// Source says where an item was declared.
type Source struct {
	// Kind and Name of the standalone object, or Kind LoadBalancerStack and
	// the stack's name for an inline item.
	Kind, Name string
	// Owner is the UID of the stack that owns a standalone child, if any.
	Owner types.UID
	// Created is the object's creation time (the stack's for an inline
	// item); zero for an object being admitted. It decides which of two
	// conflicting items is the later one.
	Created metav1.Time
}

// Before reports whether the item a (named an) was declared before b
// (named bn): created earlier, or at the same time and named first. An
// object not yet created comes last. Of two conflicting items, the one
// not Before the other is the later one, ignored at run time.
func Before(a Source, an string, b Source, bn string) bool {
	ta, tb := a.Created, b.Created
	if !ta.Equal(&tb) {
		if ta.IsZero() || tb.IsZero() {
			return tb.IsZero()
		}
		return ta.Before(&tb)
	}
	if an != bn {
		return an < bn
	}
	return a.Kind+"/"+a.Name < b.Kind+"/"+b.Name
}

// Pool is a validated IPAddressPool.
type Pool struct {
	Name   string
	Source Source
	Labels labels.Set
	// Ranges in the order written.
	Ranges        []Range
	AutoAssign    bool
	AvoidBuggyIPs bool
	// Priority orders pools; nil sorts after every set priority.
	Priority           *int32
	Namespaces         []string
	NamespaceSelectors []labels.Selector
	ServiceSelectors   []labels.Selector
}

// Size is the exact number of addresses of one family in the pool.
func (p *Pool) Size(ipv4 bool) *big.Int {
	n := new(big.Int)
	for _, r := range p.Ranges {
		if r.Is4() == ipv4 {
			n.Add(n, r.Size())
		}
	}
	return n
}

// Contains reports whether the pool holds a.
func (p *Pool) Contains(a netip.Addr) bool {
	for _, r := range p.Ranges {
		if r.Contains(a) {
			return true
		}
	}
	return false
}

// Peer is a validated BGPPeer with defaults applied.
type Peer struct {
	Name           string
	Source         Source
	MyASN, PeerASN uint32
	// DynamicASN, when set, stands for PeerASN (which is then 0).
	DynamicASN lbv1.DynamicASNMode
	// Address is the router's address; invalid for an unnumbered peer.
	Address netip.Addr
	// Interface is an unnumbered peer's interface ("" otherwise).
	Interface              string
	Port                   uint16
	SourceAddress          netip.Addr
	RouterID               netip.Addr
	HoldTime               time.Duration
	KeepaliveTime          time.Duration
	ConnectTime            time.Duration
	EBGPMultiHop           bool
	PasswordSecret         *lbv1.SecretReference
	BFDProfile             string
	GracefulRestart        bool
	NodeSelectors          []labels.Selector
	DualStackAddressFamily bool
}

// IBGP reports whether the session is internal BGP.
func (p *Peer) IBGP() bool {
	if p.DynamicASN != "" {
		return p.DynamicASN == lbv1.DynamicASNInternal
	}
	return p.MyASN == p.PeerASN
}

// BFDProfile is a validated BFDProfile with defaults applied.
type BFDProfile struct {
	Name                              string
	ReceiveInterval, TransmitInterval time.Duration
	DetectMultiplier                  uint8
	PassiveMode                       bool
	MinimumTTL                        uint8
	// Auth is the profile's authentication, nil for none.
	Auth *BFDAuth
}

// BFDAuth is a BFD profile's authentication.
type BFDAuth struct {
	Type      lbv1.BFDAuthenticationType
	KeyID     uint8
	KeySecret lbv1.SecretReference
}

// L2Advertisement is a validated L2Advertisement with its pools resolved.
type L2Advertisement struct {
	Name             string
	Pools            []string
	NodeSelectors    []labels.Selector
	Interfaces       []string
	ServiceSelectors []labels.Selector
}

// BGPAdvertisement is a validated BGPAdvertisement with its pools, peers
// and communities resolved.
type BGPAdvertisement struct {
	Name                string
	Source              Source
	Pools               []string
	AggregationLength   int
	AggregationLengthV6 int
	LocalPref           *uint32
	Communities         []Community
	NodeSelectors       []labels.Selector
	// Peers is nil for every peer.
	Peers            []string
	ServiceSelectors []labels.Selector
}
