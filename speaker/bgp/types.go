package bgp

import (
	"errors"
	"fmt"
	"net/netip"
	"time"

	"github.com/go-logr/logr"
	"k8s.io/utils/clock"
)

// Config configures a Speaker.
type Config struct {
	// RouterID is the BGP router ID, an IPv4 address. Required.
	RouterID netip.Addr
	// ASN is the global AS number; a Peer's LocalASN may override it.
	// Required.
	ASN uint32
	// ListenPort is the TCP port gobgp listens on for sessions that routers
	// open: 0 means 179, -1 does not listen (the speaker only connects out,
	// the usual setting).
	ListenPort int32
	// ListenAddresses are the addresses to listen on when ListenPort is not
	// -1; empty means every IPv4 and IPv6 address.
	ListenAddresses []string
	// Clock stamps PeerEvents; nil means the real clock.
	Clock clock.PassiveClock
	// Log receives the speaker's and gobgp's logs.
	Log logr.Logger
}

func (c Config) validate() error {
	var errs []error
	if !c.RouterID.Is4() {
		errs = append(errs, fmt.Errorf("router ID %v is not an IPv4 address", c.RouterID))
	}
	if c.ASN == 0 {
		errs = append(errs, errors.New("ASN must not be 0"))
	}
	if c.ListenPort < -1 || c.ListenPort > 65535 {
		errs = append(errs, fmt.Errorf("listen port %d is out of range (-1 to 65535)", c.ListenPort))
	}
	for _, a := range c.ListenAddresses {
		if _, err := netip.ParseAddr(a); err != nil {
			errs = append(errs, fmt.Errorf("listen address: %w", err))
		}
	}
	return errors.Join(errs...)
}

// Peer is one BGP neighbor, a router the speaker connects to.
type Peer struct {
	// Name identifies the peer in Path.Peers, PeerStatus and PeerEvent.
	// Required and unique.
	Name string
	// Address is the router's address. Required and unique: gobgp keys
	// neighbors by address.
	Address netip.Addr
	// Interface makes the session unnumbered: Address is then the
	// router's IPv6 link-local address on this interface, with the
	// interface as its zone (the caller resolves it), and the session
	// carries IPv4 and IPv6 (IPv4 with the link-local next hop, RFC 8950).
	Interface string
	// Port is the router's TCP port; 0 means 179.
	Port uint16
	// LocalASN is our AS number on this session; 0 means Config.ASN.
	LocalASN uint32
	// PeerASN is the router's AS number. Equal to the local ASN makes an
	// iBGP session, otherwise eBGP. Required unless DynamicASN is set.
	PeerASN uint32
	// DynamicASN, instead of PeerASN, accepts the AS number the router
	// announces as long as it is of this kind: DynamicInternal (our own
	// AS, iBGP) or DynamicExternal (another AS, eBGP). A router of the
	// other kind gets its session reset right after OPEN; gobgp tries
	// again after its idle hold time.
	DynamicASN DynamicASN
	// SourceAddress, if valid, is the local address the session is opened
	// from; it must be of Address's family. The zero Addr lets the kernel
	// choose.
	SourceAddress netip.Addr
	// EBGPMultiHop sends with TTL 255 instead of 1 on an eBGP session, for
	// routers that are not directly connected.
	EBGPMultiHop bool
	// HoldTime, KeepaliveTime and ConnectTime are whole seconds; 0 means
	// gobgp's default (hold time 90 s, keepalive a third of the hold time,
	// 120 s between connection attempts). A hold time must be at least 3 s
	// and the keepalive time shorter than it.
	HoldTime, KeepaliveTime, ConnectTime time.Duration
	// Password enables TCP MD5 signatures (RFC 2385). It is never logged;
	// String, GoString and MarshalLog hide it.
	Password string
	// GracefulRestart advertises graceful restart (RFC 4724) with a restart
	// time of 120 s for every family of the session; see the package doc.
	GracefulRestart bool
	// DualStack adds the other address family to the session: IPv6
	// unicast on an IPv4 session or IPv4 unicast on an IPv6 one (MP-BGP).
	// Without it a session carries only Address's family.
	DualStack bool
}

// DynamicASN is the kind of router AS a peer without a fixed PeerASN accepts.
type DynamicASN string

// The kinds of DynamicASN.
const (
	DynamicInternal DynamicASN = "internal"
	DynamicExternal DynamicASN = "external"
)

// redactedPeer is Peer without its methods, so that formatting it does not
// recurse into String or MarshalLog.
type redactedPeer Peer

func (p Peer) redacted() redactedPeer {
	r := redactedPeer(p)
	if r.Password != "" {
		r.Password = redactedText
	}
	return r
}

// String formats the peer with its password hidden.
func (p Peer) String() string {
	return fmt.Sprintf("%+v", p.redacted())
}

// GoString formats the peer for %#v with its password hidden.
func (p Peer) GoString() string {
	return fmt.Sprintf("%#v", p.redacted())
}

// MarshalLog implements logr.Marshaler: a logged Peer never shows its
// password.
func (p Peer) MarshalLog() any {
	return p.redacted()
}

// localASN is the AS number we use on the session.
func (p Peer) localASN(global uint32) uint32 {
	if p.LocalASN != 0 {
		return p.LocalASN
	}
	return global
}

// families are the address families the session carries: IPv4 and/or
// IPv6, by Address's family and DualStack.
func (p Peer) families() (v4, v6 bool) {
	v4, v6 = p.Address.Is4(), p.Address.Is6()
	if p.DualStack || p.Interface != "" {
		v4, v6 = true, true
	}
	return v4, v6
}

func (p Peer) validate() error {
	var errs []error
	if p.Name == "" {
		errs = append(errs, errors.New("name is empty"))
	}
	switch {
	case p.Interface != "":
		if !p.Address.Is6() || !p.Address.IsLinkLocalUnicast() || p.Address.Zone() != p.Interface {
			errs = append(errs, fmt.Errorf("address %v is not an IPv6 link-local address on interface %s", p.Address, p.Interface))
		}
		if p.Password != "" || p.SourceAddress.IsValid() || p.EBGPMultiHop {
			errs = append(errs, errors.New("an unnumbered session takes no password, source address or multi-hop"))
		}
	case !p.Address.IsValid() || p.Address.IsUnspecified() || p.Address.Zone() != "":
		errs = append(errs, fmt.Errorf("address %v is not a unicast address without zone", p.Address))
	case p.Address.Is4In6():
		errs = append(errs, fmt.Errorf("address %v is an IPv4-mapped IPv6 address; use the IPv4 form", p.Address))
	}
	switch {
	case p.PeerASN == 0 && p.DynamicASN == "":
		errs = append(errs, errors.New("peer ASN must not be 0 without a dynamic ASN"))
	case p.PeerASN != 0 && p.DynamicASN != "":
		errs = append(errs, errors.New("peer ASN and dynamic ASN are exclusive"))
	case p.DynamicASN != "" && p.DynamicASN != DynamicInternal && p.DynamicASN != DynamicExternal:
		errs = append(errs, fmt.Errorf("dynamic ASN %q is neither internal nor external", p.DynamicASN))
	}
	if p.SourceAddress.IsValid() && p.SourceAddress.Is4() != p.Address.Is4() {
		errs = append(errs, fmt.Errorf("source address %v is not of the family of %v", p.SourceAddress, p.Address))
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{{"hold time", p.HoldTime}, {"keepalive time", p.KeepaliveTime}, {"connect time", p.ConnectTime}} {
		if d.v < 0 || d.v%time.Second != 0 {
			errs = append(errs, fmt.Errorf("%s %v is not a whole number of seconds", d.name, d.v))
		}
	}
	if p.HoldTime != 0 && p.HoldTime < 3*time.Second {
		errs = append(errs, fmt.Errorf("hold time %v is less than 3s", p.HoldTime))
	}
	if p.KeepaliveTime != 0 && p.HoldTime != 0 && p.KeepaliveTime >= p.HoldTime {
		errs = append(errs, fmt.Errorf("keepalive time %v is not shorter than hold time %v", p.KeepaliveTime, p.HoldTime))
	}
	return errors.Join(errs...)
}

// Path is one advertisement: a prefix and its attributes.
type Path struct {
	// Prefix is announced; usually a /32 or /128 Service IP, or an
	// aggregate. Its host bits must be zero.
	Prefix netip.Prefix
	// NextHop, if valid, is the next hop to announce; it must be of
	// Prefix's family. The zero Addr means the session's local address
	// (next-hop-self); see the package doc for prefixes of the other family.
	NextHop netip.Addr
	// LocalPref, if set, is the LOCAL_PREF attribute. It is sent to iBGP
	// peers only.
	LocalPref *uint32
	// Communities are standard communities (RFC 1997) as 32-bit values,
	// ASN<<16 | value.
	Communities []uint32
	// LargeCommunities are large communities (RFC 8092). Those with global
	// administrator 4294967295 and first local part 1818391412 are reserved
	// for lbstack's withdraw markers.
	LargeCommunities [][3]uint32
	// Peers names the peers the path goes to; empty means every peer.
	// Names of peers that are not configured are allowed and match nothing.
	Peers []string
}

// PeerStatus is a peer's session as gobgp reports it.
type PeerStatus struct {
	// Name and Address identify the peer.
	Name    string
	Address netip.Addr
	// State is gobgp's FSM state in lower case: "idle", "connect",
	// "active", "opensent", "openconfirm" or "established".
	State string
	// Up is true when the session is established.
	Up bool
	// AdminDown is true while SetPeerDown holds the session down.
	AdminDown bool
	// Since is when the session was established (second precision); zero
	// while it is not up.
	Since time.Time
	// UpdatesSent counts the UPDATE messages sent on the session since
	// gobgp created the neighbor.
	UpdatesSent uint64
	// PrefixesAdvertised counts the prefixes our export policy accepts for
	// the peer over all its families (gobgp's Adj-RIB-Out count, without
	// End-of-RIB markers); 0 while the session is down.
	PrefixesAdvertised int
	// LastError is the most recent reason the session went down or failed
	// to come up, as gobgp logged it: a NOTIFICATION sent or received
	// ("notification-received cease/administrative-shutdown"), a TCP error
	// ("connecting: dial tcp ...: connect: connection refused"), an expired
	// hold timer. It is kept after the session recovers. A TCP MD5 password
	// mismatch produces no error from the router: its kernel silently drops
	// our segments, so it shows as the session never establishing, with
	// connection attempts that time out.
	LastError string
}

// PeerEvent reports that a session came up or went down.
type PeerEvent struct {
	// Name and Address identify the peer; Name is empty for a peer that was
	// deleted before its event was handled.
	Name    string
	Address netip.Addr
	// Up is true when the session became established, false when it left
	// that state.
	Up bool
	// State is the new FSM state, as in PeerStatus.
	State string
	// At is when the speaker saw the change.
	At time.Time
	// Reason is why a session went down: "administratively down" after
	// SetPeerDown, "peer deleted" when SetPeers removed or re-created the
	// peer, else as in PeerStatus.LastError. Empty for Up.
	Reason string
}
