package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// AnnouncementProtocol is how an IP is made reachable.
// +kubebuilder:validation:Enum=layer2;bgp
type AnnouncementProtocol string

// Announcement protocols.
const (
	// ProtocolLayer2 answers ARP (IPv4) and NDP (IPv6) from one elected node.
	ProtocolLayer2 AnnouncementProtocol = "layer2"
	// ProtocolBGP advertises the IP to routers from every eligible node.
	ProtocolBGP AnnouncementProtocol = "bgp"
)

// AnnouncingNode is one node that announces the Service's IPs.
type AnnouncingNode struct {
	// node is the name of the announcing node.
	// +kubebuilder:validation:MaxLength=253
	// +required
	Node string `json:"node"`

	// protocol the node announces with.
	// +required
	Protocol AnnouncementProtocol `json:"protocol"`

	// interface is the network interface that answers ARP/NDP (layer2).
	// +kubebuilder:validation:MaxLength=15
	// +optional
	Interface string `json:"interface,omitempty"`

	// mac is the hardware address in the answers (layer2), for example
	// "02:00:00:00:00:01"; it is what clients' neighbour tables show.
	// +kubebuilder:validation:MaxLength=32
	// +optional
	MAC string `json:"mac,omitempty"`

	// peers are the BGPPeers the node advertises the IPs to (bgp).
	// +kubebuilder:validation:MaxItems=256
	// +kubebuilder:validation:items:MaxLength=253
	// +listType=set
	// +optional
	Peers []string `json:"peers,omitempty"`

	// since is when this node started announcing.
	// +required
	Since metav1.Time `json:"since"`
}

// AnnouncementMove records the last time the announcement changed hands.
type AnnouncementMove struct {
	// from is the node that announced before; empty for the first announcement.
	// +kubebuilder:validation:MaxLength=253
	// +optional
	From string `json:"from,omitempty"`

	// to is the node that announces now; empty when nobody does.
	// +kubebuilder:validation:MaxLength=253
	// +optional
	To string `json:"to,omitempty"`

	// reason is a machine-readable word for the move: "Assigned" (the
	// address was new, or had no owner), "NodeFailed" (the owner stopped
	// heartbeating), "NodeLeft" (the owner's speaker stopped cleanly),
	// "InterfaceDown" (the owner's announcing interfaces lost carrier),
	// "NotEligible" (node selector, exclusion label, NetworkUnavailable, or
	// no ready endpoint with externalTrafficPolicy Local), "APIUnreachable"
	// (the owner could not reach the API server while this node could, so
	// it withdrew; see the speaker's --api-stale-after) or "Rebalanced" (a
	// node joined or became eligible and the election gave it the address).
	// +kubebuilder:validation:MaxLength=64
	// +required
	Reason string `json:"reason"`

	// message explains the move to a person.
	// +kubebuilder:validation:MaxLength=1024
	// +optional
	Message string `json:"message,omitempty"`

	// at is when the new owner took over.
	// +required
	At metav1.Time `json:"at"`

	// detectionTime is how long the failure took to notice, from the last
	// sign of life of the old owner to the takeover.
	// +optional
	DetectionTime *metav1.Duration `json:"detectionTime,omitempty"`
}

// ServiceAnnouncementStatus tells who makes a Service's IPs reachable.
type ServiceAnnouncementStatus struct {
	// service is the name of the Service (same namespace as this object).
	// +kubebuilder:validation:MaxLength=253
	// +optional
	Service string `json:"service,omitempty"`

	// ips are the Service's announced IPs.
	// +kubebuilder:validation:MaxItems=2
	// +kubebuilder:validation:items:MaxLength=45
	// +listType=set
	// +optional
	IPs []string `json:"ips,omitempty"`

	// protocol is layer2 or bgp.
	// +optional
	Protocol AnnouncementProtocol `json:"protocol,omitempty"`

	// nodes are the announcing nodes: one for layer2, each advertising node for bgp.
	// +listType=map
	// +listMapKey=node
	// +listMapKey=protocol
	// +optional
	Nodes []AnnouncingNode `json:"nodes,omitempty"`

	// nodeNames is nodes[].node joined by commas, for kubectl get.
	// +kubebuilder:validation:MaxLength=4096
	// +optional
	NodeNames string `json:"nodeNames,omitempty"`

	// since is when the current set of announcing nodes started.
	// +optional
	Since *metav1.Time `json:"since,omitempty"`

	// lastMove is the last change of announcing node and why it happened.
	// +optional
	LastMove *AnnouncementMove `json:"lastMove,omitempty"`
}

// ServiceAnnouncement is the speakers' record of how one Service of type
// LoadBalancer is announced: which node(s), with which protocol, on which
// interface and MAC or to which BGP peers, since when, and why it last
// moved. It has the Service's namespace and name. Users only read it.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=lbann,categories=lbstack
// +kubebuilder:printcolumn:name="Service",type=string,JSONPath=`.status.service`
// +kubebuilder:printcolumn:name="IPs",type=string,JSONPath=`.status.ips`
// +kubebuilder:printcolumn:name="Protocol",type=string,JSONPath=`.status.protocol`
// +kubebuilder:printcolumn:name="Nodes",type=string,JSONPath=`.status.nodeNames`
// +kubebuilder:printcolumn:name="Since",type=date,JSONPath=`.status.since`
// +kubebuilder:printcolumn:name="Last Move",type=string,JSONPath=`.status.lastMove.reason`,priority=1
type ServiceAnnouncement struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// status is written by the speakers.
	// +optional
	Status ServiceAnnouncementStatus `json:"status,omitempty"`
}

// ServiceAnnouncementList is a list of ServiceAnnouncements.
//
// +kubebuilder:object:root=true
type ServiceAnnouncementList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []ServiceAnnouncement `json:"items"`
}

func init() {
	SchemeBuilder.Register(&ServiceAnnouncement{}, &ServiceAnnouncementList{})
}
