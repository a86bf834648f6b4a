// Package l2 announces the virtual IPs this node owns on the local link: it
// answers ARP requests (IPv4) and Neighbor Solicitations (IPv6) for them with
// the MAC address of the receiving interface, sends gratuitous ARP and
// unsolicited Neighbor Advertisements when it starts announcing an address,
// reports the carrier state of the interfaces it announces on, and reports
// other hosts that claim an address it announces (split brain).
//
// The package decides nothing about ownership: the caller tells an Announcer
// which addresses it owns with SetOwned, as often as it likes, and the
// Announcer diffs that against what it does and acts incrementally.
//
// Sockets (AF_PACKET for ARP, raw ICMPv6 for NDP; both need CAP_NET_RAW) and
// the listing of interfaces sit behind small interfaces so that the unit
// tests run without privileges against in-memory fakes.
package l2
