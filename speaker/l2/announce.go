package l2

import (
	"maps"
	"net/netip"
	"slices"
	"time"
)

// announcement is the progress of the gratuitous schedule of one address
// on one interface.
type announcement struct {
	start time.Time
	step  int
}

// reconcileLocked brings, on every interface, the announced addresses and
// the joined solicited-node groups in line with the owned addresses, and
// schedules gratuitous announcements for newly announced ones. It reports
// whether it scheduled any.
func (a *Announcer) reconcileLocked(now time.Time) bool {
	scheduled := false
	for _, ifc := range a.ifaces {
		want := map[netip.Addr]struct{}{}
		for ip, t := range a.owned {
			if !t.allows(ifc.name) || (ip.Is4() && ifc.arp == nil) || (ip.Is6() && ifc.ndp == nil) {
				continue
			}
			want[ip] = struct{}{}
		}
		for ip := range ifc.active {
			if _, ok := want[ip]; !ok {
				delete(ifc.active, ip)
				delete(ifc.pending, ip)
				a.log.V(1).Info("Stopped announcing address on interface", "ip", ip, "interface", ifc.name)
			}
		}
		for ip := range want {
			if _, ok := ifc.active[ip]; ok {
				continue
			}
			ifc.active[ip] = struct{}{}
			a.log.V(1).Info("Announcing address on interface", "ip", ip, "interface", ifc.name)
			if ifc.link.running() && len(a.gratuitous) > 0 {
				ifc.pending[ip] = &announcement{start: now}
				scheduled = true
			}
		}
		if ifc.ndp != nil {
			a.reconcileGroupsLocked(ifc)
		}
	}
	return scheduled
}

// reconcileGroupsLocked joins the solicited-node groups of the IPv6
// addresses announced on ifc and leaves the others. A failed join is retried
// at the next reconcile.
func (a *Announcer) reconcileGroupsLocked(ifc *iface) {
	want := map[netip.Addr]struct{}{}
	for ip := range ifc.active {
		if ip.Is6() {
			want[solicitedNode(ip)] = struct{}{}
		}
	}
	for g := range ifc.groups {
		if _, ok := want[g]; ok {
			continue
		}
		if err := ifc.ndp.LeaveGroup(g); err != nil {
			a.log.Error(err, "Leaving solicited-node multicast group failed", "interface", ifc.name, "group", g)
		}
		delete(ifc.groups, g)
	}
	for _, g := range slices.SortedFunc(maps.Keys(want), netip.Addr.Compare) {
		if _, ok := ifc.groups[g]; ok {
			continue
		}
		if err := ifc.ndp.JoinGroup(g); err != nil {
			a.log.Error(err, "Joining solicited-node multicast group failed, retrying at the next rescan", "interface", ifc.name, "group", g)
			continue
		}
		ifc.groups[g] = struct{}{}
	}
}

// announceDue sends the gratuitous announcements that are due and returns
// when the next one is, or the zero time if none is pending. A step that is
// overdue because the loop ran late is sent once, not in a burst.
func (a *Announcer) announceDue() time.Time {
	now := a.clock.Now()
	var next time.Time
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, ifc := range a.ifaces {
		for ip, ann := range ifc.pending {
			if ann.start.Add(a.gratuitous[ann.step]).After(now) {
				next = earliest(next, ann.start.Add(a.gratuitous[ann.step]))
				continue
			}
			if ip.Is4() {
				a.gratuitousARPLocked(ifc, ip)
			} else {
				a.gratuitousNDPLocked(ifc, ip)
			}
			for ann.step < len(a.gratuitous) && !ann.start.Add(a.gratuitous[ann.step]).After(now) {
				ann.step++
			}
			if ann.step == len(a.gratuitous) {
				delete(ifc.pending, ip)
				continue
			}
			next = earliest(next, ann.start.Add(a.gratuitous[ann.step]))
		}
	}
	return next
}

func earliest(a, b time.Time) time.Time {
	if a.IsZero() || b.Before(a) {
		return b
	}
	return a
}

// Reannounce restarts the gratuitous schedule (Config.Gratuitous) of the
// given owned addresses on every interface they are announced on, so that
// clients whose neighbour entry follows another host come back. Addresses
// not owned are ignored.
func (a *Announcer) Reannounce(ips []netip.Addr) {
	now := a.clock.Now()
	scheduled := false
	a.mu.Lock()
	for _, ifc := range a.ifaces {
		if !ifc.link.running() || len(a.gratuitous) == 0 {
			continue
		}
		for _, ip := range ips {
			if _, ok := ifc.active[ip.Unmap()]; ok {
				ifc.pending[ip.Unmap()] = &announcement{start: now}
				scheduled = true
			}
		}
	}
	a.mu.Unlock()
	if scheduled {
		a.wakeRun()
	}
}
