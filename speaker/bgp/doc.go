// Package bgp announces Service IPs to routers over BGP for the lbstack
// speaker. It is a thin wrapper around one embedded gobgp v3 BgpServer
// (github.com/osrg/gobgp/v3/pkg/server, driven through its API structs,
// never over gRPC) per speaker. Every eligible node advertises each Service
// IP, so the router spreads traffic over the nodes with ECMP.
//
// The caller describes the whole desired state with SetPeers and SetPaths;
// both diff it against what gobgp already has and change only that:
//
//   - SetPeers adds new peers, deletes removed ones and updates changed
//     ones; sessions of unchanged peers are never reset. Timer and
//     multihop changes go through gobgp's UpdatePeer without a reset (new
//     timers take effect when the session next opens); any other change
//     (address, port, ASNs, source address, password, graceful restart,
//     families) re-creates that one peer, which resets its session.
//   - SetPaths adds new and changed paths and withdraws removed ones:
//     announcing one more Service sends one UPDATE per peer and touches no
//     other prefix.
//
// # Per-peer restriction
//
// gobgp has one global RIB, so Path.Peers is implemented with export
// policy. gobgp v3 applies a neighbor's own policy assignment to
// route-server clients only; every other neighbor is filtered by the
// global export policy. So there is one global export policy, default
// action reject, and every peer adds three statements to it, each matching
// the peer's address with a neighbor set:
//
//  1. reject a path that carries this peer's withdraw marker (below);
//  2. accept a path whose prefix is in the peer's IPv4 prefix set;
//  3. accept a path whose prefix is in the peer's IPv6 prefix set.
//
// Both accepting statements also strip every withdraw marker, so routers
// never see one. A prefix is put in a peer's set before its path is added,
// so the export evaluation at add time already allows it. When a prefix
// gains a peer while its attributes stay the same, the prefix is added to
// that peer's set and only that peer gets a soft reset out (which resends
// it every path it is allowed, unchanged ones included).
//
// gobgp v3.37 keeps no Adj-RIB-Out, and its soft reset out does not
// withdraw a path that an export policy now rejects (fixed upstream only
// after v3.37, osrg/gobgp#3434). So a prefix that loses a peer is
// withdrawn from that peer with a marker instead: the path is re-added with
// a private large community [4294967295:1818391412:<peer id>] per losing
// peer (4294967295 is a reserved ASN); that peer's statements reject the
// new path while still accepting the old one, which makes gobgp send that
// peer a withdrawal, and the other peers get the same attributes again.
// Then the prefix leaves the losing peers' sets and the path is re-added
// without markers. The peers that keep the prefix see two UPDATEs with
// unchanged attributes and never a withdrawal.
//
// A global import policy accepts only locally originated paths, so routes
// the routers send us never enter the RIB: they can neither be exported
// elsewhere nor win best path selection over our own path for a Service
// prefix that a router reflects back.
//
// # Limits
//
//   - Communities, large communities, local preference and next hop belong
//     to the one global path of a prefix: the same prefix cannot carry
//     different attributes to different peers. Paths with the same prefix
//     are merged (union of communities and peers; local preferences must
//     agree).
//   - A withdrawal (a prefix removed from SetPaths) goes to every peer,
//     including peers the prefix was never sent to; routers ignore it.
//   - Local preference is sent to iBGP peers only (gobgp strips it for
//     eBGP).
//   - Without a NextHop, gobgp uses the session's local address. An IPv4
//     prefix sent over an IPv6 session (Peer.DualStack) then gets an IPv6
//     next hop with the extended next hop capability (RFC 8950), which the
//     router must support. An IPv6 prefix over an IPv4 session needs an
//     explicit IPv6 NextHop.
//   - gobgp's Serve loop has no way to stop: after Run returns, that one
//     goroutine stays blocked for the life of the process (one Speaker per
//     speaker process, so one goroutine).
//
// # Graceful restart
//
// Peer.GracefulRestart advertises the graceful restart capability (RFC
// 4724) with a restart time of 120 s for every family of the peer. A router
// that supports it keeps our routes for that time when the session drops
// without a NOTIFICATION (the speaker crashed or was killed, the node
// rebooted). When Run's context ends, gobgp closes every session with a
// Cease NOTIFICATION and the routers withdraw our routes at once; the
// RFC 8538 N-bit is not advertised, so deleting a peer or stopping cleanly
// never leaves stale routes on a router.
//
// # Logging
//
// gobgp's own logs go through the Config.Log logr.Logger (name "gobgp"):
// warnings at V(0), info at V(1), debug at V(4); errors as errors. Messages
// are capitalised and field keys lowerCamel. Every configured BGP password
// is replaced by "[redacted]" in gobgp's log values, and Peer never prints
// its password.
package bgp
