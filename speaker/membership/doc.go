// Package membership tells each speaker which speakers are alive, fast
// enough for sub-second failover of the addresses they announce.
//
// # Two layers
//
// hashicorp/memberlist does discovery, membership and graceful leave: nodes
// Join known addresses, learn every other member by gossip, and carry a small
// piece of metadata each (SetMeta). Its own failure detection (SWIM probes)
// is robust but slow: with the LAN defaults a failed node is noticed after
// 5.6 s at the median. So on top of it each node sends a direct heartbeat to
// the peers it watches, every HeartbeatInterval (100 ms), and declares a
// peer dead when MissedHeartbeats (4) heartbeats in a row did not arrive,
// that is after 400 ms of silence; the detector runs four times per
// interval, so a crash is noticed 300 to 425 ms after it happens, whatever
// the cluster size, since watchers hear a peer directly (BenchmarkFailover,
// 30 crashes on a loaded 2-core machine: median 374 ms, maximum 423 ms). A
// member is live (Live) when memberlist considers it alive and the
// heartbeat detector has not declared it dead. The heartbeats are
// memberlist user messages sent over memberlist's UDP transport, so the
// cluster key (SecretKey, AES-GCM) encrypts and authenticates them like the
// gossip. Peers a node does not watch are left to memberlist alone.
//
// The Detector is the pure core: arrival times in, deaths out, the current
// time passed in by the caller. Two rules keep it from declaring healthy
// peers dead:
//
//   - A peer is judged only after its first heartbeat has arrived. Gossip
//     introduces members before their heartbeats reach us (and a member
//     that never heartbeats at all, say an older version, must not be
//     killed): until then memberlist alone decides.
//   - When the detector itself ran late, more than one interval after its
//     previous run, it judges nobody for one interval. A node waking from a
//     stall (paused, or starved of CPU) has its peers' heartbeats still
//     queued, unread; judging first would declare everyone dead.
//
// With these, a node paused for 250 ms neither loses its peers nor is lost
// by them (250 ms + one interval of silence stays under 400 ms). Five nodes
// in one process, under three busy loops on two cores for 30 s and then
// frozen whole three times for 1 s (SIGSTOP), saw no false death; without
// the second rule, the freezes caused 50. A peer declared dead is alive
// again with its next heartbeat.
//
// A node that stops (Run's context is done) first sends every member a
// goodbye, so that they drop it within milliseconds and take over its
// addresses at once (BenchmarkLeave: median 1.4 ms, maximum 4.7 ms), then
// has memberlist gossip its leave and shuts down.
// memberlist hands user messages over newest first, so heartbeats carry a
// per-run epoch and a sequence number, and a heartbeat sent before a goodbye
// but delivered after it is ignored.
//
// # Whom a node heartbeats, and the scale limit
//
// A full mesh costs N² heartbeats per interval, so the heartbeats are
// bounded. A node watches at most MaxPeers (64) peers:
//
//   - By default it watches every member: a full mesh up to 65 nodes.
//   - The caller may narrow that with SetWatched, naming the nodes whose
//     failure this node must notice fast: the speaker passes the nodes that
//     could take over this node's addresses or whose addresses this node
//     could take over.
//   - When more than MaxPeers members remain, the node watches the MaxPeers
//     nearest to it on a ring ordered by a hash of the node names, half on
//     each side. Nodes that see the same members compute the same ring, so
//     watching is mutual, and hashing spreads a node's watchers over the
//     cluster rather than over its rack.
//
// A node sends heartbeats to the peers it watches, marked "watching you",
// and answers every member whose heartbeats carry that mark (until 10
// detection timeouts after the last one). So a watcher keeps hearing from a
// peer even while their watched sets disagree, for instance during a
// configuration change, rather than declaring it dead; and a node forgets,
// without judging, the peers it stops watching. With mutual sets, the
// default, a node thus
// sends MaxPeers heartbeats per interval and receives as many: 640 packets
// per second each way at the defaults, about 100 bytes each on the wire
// (some 64 KB/s), whatever the cluster size. Cluster-wide the cost is
// N × MaxPeers per interval, linear in N.
//
// The limit: failures are noticed in under half a second by the watchers
// only. In a cluster of more than MaxPeers + 1 nodes, a node that must take
// over from a failed node it does not watch learns of the failure from
// memberlist, in seconds; the speaker avoids that by passing the nodes it
// could take over from to SetWatched, and by keeping the candidates for
// each address to at most MaxPeers. Raising MaxPeers trades CPU and
// bandwidth (linear) for a larger full mesh. memberlist itself scales to
// thousands of nodes.
//
// memberlist spreads a join by gossip, which may be slow to reach everyone
// while other members are failing; the speaker therefore passes every node's
// address to Join, which skips those already members.
//
// # Time
//
// Heartbeats and the detector use Config.Clock (k8s.io/utils/clock), so
// they can be driven by a fake clock; memberlist's own timers use real time.
package membership
