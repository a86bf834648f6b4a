// Package bfd implements single-hop Bidirectional Forwarding Detection for
// the lbstack speaker: RFC 5880 in asynchronous mode over the IPv4/IPv6
// transport of RFC 5881. The embedded gobgp has no BFD; the speaker runs a
// Manager beside it, adds a session per BGP peer, and shuts the BGP
// session down when its BFD session leaves Up.
//
// The package has three layers:
//
//   - The codec: ControlPacket, Marshal and Unmarshal, with the receive
//     checks of RFC 5880 §6.8.6 that need no session.
//   - Session: the state machine of one session without I/O. Its inputs are
//     received packets, timer expiry (Tick) and AdminDown/AdminUp; its
//     outputs are a packet to send and a state change. Clock and randomness
//     are injected.
//   - Manager: the sockets. One listener per address family on UDP port
//     3784, a sending socket per session bound to a port in 49152–65535 with
//     TTL 255, demultiplexing by Your Discriminator or, when that is zero, by
//     the peer's address (and interface, if the session names one), and one
//     goroutine that runs every session's timers.
//
// Behaviour worth knowing:
//
//   - GTSM (RFC 5881 §5): packets are sent with TTL/hop limit 255, and
//     received packets whose TTL/hop limit is not 255 are dropped, always.
//     Loopback keeps the TTL we set, so tests need no exception.
//   - While a session is not Up it advertises and uses a Desired Min TX of
//     at least one second (RFC 5880 §6.8.3). A change of the advertised
//     intervals (going Up, leaving Up, AddSession with new timers) starts a
//     Poll Sequence when the peer is known; a longer TX interval or a
//     shorter detection time takes effect only once the peer answers with
//     Final, as in BIRD. A session sends at once when its state changes and
//     answers a Poll at once.
//   - Our packets are spaced by the negotiated interval reduced by 0–25%
//     (10–25% with a detect multiplier of 1).
//   - Authentication is not implemented: packets with the A bit are dropped
//     and counted as Rejected. Demand mode and the Echo function are not
//     implemented (we advertise a Required Min Echo RX of 0), but a peer's
//     Demand mode is honoured. The C bit is always 0.
//   - RemoveSession sends AdminDown (diag 7) at least AdminDownPackets
//     times over at least the peer's detection time before dropping the
//     session. A peer that receives AdminDown reports Down with
//     StateChange.RemoteState == StateAdminDown, which RFC 5882 §3.2 says a
//     client should not take as a path failure. Stopping Run sends nothing:
//     peers see the silence as a failure.
//   - Sessions are keyed by peer address without zone: one session per
//     peer. A packet with a nonzero Your Discriminator must also come from
//     that session's peer address.
//   - Malformed packets, packets with a TTL other than 255, packets for no
//     session and packets a session refuses are dropped and counted
//     (Manager.Counters); they never reach the caller.
//   - The Manager sends each packet while it holds its lock, so a session's
//     packets leave in the order the session made them (a stale Down
//     overtaking an Init would take the peer down again).
//   - Like any user-space BFD, a speaker process that is not scheduled for
//     longer than a Detection Time reports its peers Down: keep detection
//     times (interval × multiplier) well above the node's worst pauses.
package bfd
