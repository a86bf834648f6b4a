// Package speaker is the node daemon of lbstack: it watches Services,
// EndpointSlices, Nodes and the lbstack configuration, elects per IP the
// node that announces it, and drives the protocol packages (layer 2 with
// ARP/NDP, BGP with embedded gobgp and BFD). See docs/ARCHITECTURE.md.
package speaker
