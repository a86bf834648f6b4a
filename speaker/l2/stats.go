package l2

import "sync/atomic"

// ProtocolStats are the counters of one protocol (ARP or NDP), for metrics.
// They only grow for the life of the Announcer.
type ProtocolStats struct {
	// RequestsReceived are the well-formed ARP requests / Neighbor
	// Solicitations received, whatever address they ask for.
	RequestsReceived uint64
	// RepliesSent are the ARP replies / solicited Neighbor Advertisements
	// sent for owned addresses.
	RepliesSent uint64
	// GratuitousSent are the gratuitous ARP packets (each form counts) /
	// unsolicited Neighbor Advertisements sent.
	GratuitousSent uint64
	// Conflicts are the packets in which another MAC claimed an announced
	// address. Unlike Config.OnConflict they are not rate-limited.
	Conflicts uint64
	// Malformed are the packets dropped because they failed validation.
	Malformed uint64
	// SendErrors are the packets that could not be sent.
	SendErrors uint64
}

// Stats are the counters of an Announcer.
type Stats struct {
	ARP ProtocolStats
	NDP ProtocolStats
	// ConflictsSuppressed are the conflicts not reported because more
	// foreign MACs than a real second announcer has already claimed the
	// same address within the conflict interval (a spoofing storm).
	ConflictsSuppressed uint64
}

type protocolCounters struct {
	requests, replies, gratuitous, conflicts, malformed, sendErrors atomic.Uint64
}

func (c *protocolCounters) snapshot() ProtocolStats {
	return ProtocolStats{
		RequestsReceived: c.requests.Load(),
		RepliesSent:      c.replies.Load(),
		GratuitousSent:   c.gratuitous.Load(),
		Conflicts:        c.conflicts.Load(),
		Malformed:        c.malformed.Load(),
		SendErrors:       c.sendErrors.Load(),
	}
}

type counters struct {
	arp, ndp            protocolCounters
	conflictsSuppressed atomic.Uint64
}

// Stats returns a snapshot of the counters.
func (a *Announcer) Stats() Stats {
	return Stats{ARP: a.stats.arp.snapshot(), NDP: a.stats.ndp.snapshot(), ConflictsSuppressed: a.stats.conflictsSuppressed.Load()}
}
