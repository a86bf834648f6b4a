package l2

import (
	"net"
	"net/netip"
	"slices"
	"time"
)

// conflictKey identifies a conflict for the rate limit.
type conflictKey struct {
	ip  netip.Addr
	mac string
}

// conflict reports that theirMAC claims ip, announced on ifname, at most
// once per ip and MAC within the conflict interval, and for at most
// maxConflictMACsPerAddress MACs per address within it: a real second
// announcer has one MAC, a storm of spoofed ones must not become a storm
// of events (every claim still counts in the Stats).
func (a *Announcer) conflict(ip netip.Addr, ifname string, ourMAC, theirMAC net.HardwareAddr) {
	if ip.Is4() {
		a.stats.arp.conflicts.Add(1)
	} else {
		a.stats.ndp.conflicts.Add(1)
	}
	now := a.clock.Now()
	key := conflictKey{ip: ip, mac: string(theirMAC)}
	a.conflictMu.Lock()
	// Re-assert at once, at most once per ReassertInterval per address:
	// clients that followed the other host's announcement come back, and if
	// the other host is a speaker that has given the address up meanwhile,
	// nothing is left pointing at it.
	last, asserted := a.reasserted[ip]
	reassert := !asserted || now.Sub(last) >= a.reassertInterval
	if reassert && (asserted || len(a.reasserted) < maxConflictKeys) {
		a.reasserted[ip] = now
	} else {
		reassert = false
	}
	last, seen := a.conflictSeen[key]
	report := !seen || now.Sub(last) >= a.conflictInterval
	if report && !seen && len(a.conflictSeen) >= maxConflictKeys {
		a.pruneConflictsLocked(now)
		report = len(a.conflictSeen) < maxConflictKeys
	}
	if report && !seen && a.conflictMACs[ip] >= maxConflictMACsPerAddress {
		report = false
		a.stats.conflictsSuppressed.Add(1)
	}
	if report {
		if !seen {
			a.conflictMACs[ip]++
		}
		a.conflictSeen[key] = now
	}
	a.conflictMu.Unlock()
	if reassert {
		a.Reannounce([]netip.Addr{ip})
	}
	if !report {
		return
	}
	a.log.Info("Another host claims an address announced here", "ip", ip, "interface", ifname, "ourMAC", ourMAC.String(), "theirMAC", theirMAC.String())
	if a.onConflict != nil {
		a.onConflict(ip, ifname, slices.Clone(ourMAC), slices.Clone(theirMAC))
	}
}

func (a *Announcer) pruneConflicts() {
	a.conflictMu.Lock()
	defer a.conflictMu.Unlock()
	a.pruneConflictsLocked(a.clock.Now())
}

func (a *Announcer) pruneConflictsLocked(now time.Time) {
	for k, t := range a.conflictSeen {
		if now.Sub(t) >= a.conflictInterval {
			delete(a.conflictSeen, k)
			if a.conflictMACs[k.ip]--; a.conflictMACs[k.ip] <= 0 {
				delete(a.conflictMACs, k.ip)
			}
		}
	}
	for ip, t := range a.reasserted {
		if now.Sub(t) >= a.reassertInterval {
			delete(a.reasserted, ip)
		}
	}
}
