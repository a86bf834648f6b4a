package l2

import (
	"cmp"
	"context"
	"net"
	"net/netip"
	"slices"
	"strings"
	"time"
)

// iface is an eligible interface with its sockets.
type iface struct {
	// name and mac do not change for the life of an iface: a link whose
	// index or MAC changes gets a new iface.
	name string
	mac  net.HardwareAddr

	// ctx is the context of the readers of the interface, cancelled when
	// it is dropped or Run ends.
	ctx    context.Context
	cancel context.CancelFunc
	link   link
	arp    net.PacketConn
	ndp    ndpConn
	// arpErr and ndpErr are the last errors opening the sockets, so that a
	// failure repeated at every rescan is logged once.
	arpErr, ndpErr string
	// ndpIdle is true while the interface has no NDP socket because it has
	// no usable IPv6 link-local address (see ndpNotApplicable): nothing to
	// answer, not a failure.
	ndpIdle bool
	closed  bool
	// active are the owned addresses announced on this interface.
	active map[netip.Addr]struct{}
	// groups are the solicited-node multicast groups joined on ndp.
	groups map[netip.Addr]struct{}
	// pending are the gratuitous announcements still to send.
	pending map[netip.Addr]*announcement
}

// scan lists the interfaces and brings the open ones in line: it drops
// those that went away, went down or changed device, opens sockets on new
// ones (and retries those that failed), follows carrier and reports health.
// Sockets are opened without holding mu, so that answering on the other
// interfaces does not wait.
func (a *Announcer) scan() {
	a.scanMu.Lock()
	defer a.scanMu.Unlock()
	a.mu.RLock()
	ctx := a.runCtx
	a.mu.RUnlock()
	if ctx == nil {
		return
	}

	eligibleLinks, macs, err := a.listLinks()
	if err != nil {
		a.log.Error(err, "Listing interfaces failed, keeping the current ones")
		return
	}

	a.mu.Lock()
	a.ourMACs = macs
	closing := a.dropStaleLocked(eligibleLinks)
	openings := a.planOpeningsLocked(eligibleLinks)
	a.mu.Unlock()

	a.closeIfaces(closing)
	a.dialAll(openings)

	a.mu.Lock()
	now := a.clock.Now()
	a.installLocked(ctx, openings)
	scheduled := a.followCarrierLocked(eligibleLinks, now)
	if a.reconcileLocked(now) {
		scheduled = true
	}
	health := a.healthLocked()
	report := !a.healthReported || !health.equal(a.health)
	a.health, a.healthReported = health, true
	a.scanned = true
	a.mu.Unlock()

	if scheduled {
		a.wakeRun()
	}
	if report && a.onHealth != nil {
		a.onHealth(health)
	}
}

// listLinks returns the eligible links by name and the MAC addresses of all
// links.
func (a *Announcer) listLinks() (map[string]link, map[string]struct{}, error) {
	all, err := a.links.links()
	if err != nil {
		return nil, nil, err
	}
	eligibleLinks := map[string]link{}
	macs := map[string]struct{}{}
	for _, l := range all {
		if len(l.mac) > 0 {
			macs[string(l.mac)] = struct{}{}
		}
		ok, why := eligible(l)
		if ok && a.skipInterface != nil && a.skipInterface(l.name) {
			ok, why = false, "excluded by configuration"
		}
		if !ok {
			a.log.V(5).Info("Skipping interface", "interface", l.name, "reason", why)
			continue
		}
		eligibleLinks[l.name] = l
	}
	return eligibleLinks, macs, nil
}

// dropStaleLocked removes the interfaces that are no longer eligible or are
// now another device, and returns them for closeIfaces.
func (a *Announcer) dropStaleLocked(eligibleLinks map[string]link) []*iface {
	var closing []*iface
	for name, ifc := range a.ifaces {
		if l, ok := eligibleLinks[name]; !ok || !l.sameDevice(ifc.link) {
			closing = append(closing, a.removeIfaceLocked(ifc))
		}
	}
	return closing
}

// opening is a socket to open on a link, and the outcome.
type opening struct {
	link             link
	wantARP, wantNDP bool
	arp              net.PacketConn
	ndp              ndpConn
	arpErr, ndpErr   error
}

// planOpeningsLocked lists the new interfaces and the sockets missing on
// known ones.
func (a *Announcer) planOpeningsLocked(eligibleLinks map[string]link) []*opening {
	var openings []*opening
	for name, l := range eligibleLinks {
		ifc := a.ifaces[name]
		o := &opening{
			link:    l,
			wantARP: l.canARP() && (ifc == nil || ifc.arp == nil),
			wantNDP: l.canNDP() && (ifc == nil || ifc.ndp == nil),
		}
		if ifc == nil || o.wantARP || o.wantNDP {
			openings = append(openings, o)
		}
	}
	return openings
}

func (a *Announcer) dialAll(openings []*opening) {
	for _, o := range openings {
		if o.wantARP {
			o.arp, o.arpErr = a.dial.dialARP(o.link)
		}
		if o.wantNDP {
			o.ndp, o.ndpErr = a.dial.dialNDP(o.link)
		}
	}
}

// installLocked adds the new interfaces and starts a reader on every socket
// opened.
func (a *Announcer) installLocked(ctx context.Context, openings []*opening) {
	for _, o := range openings {
		ifc := a.ifaces[o.link.name]
		if ifc == nil {
			ifcCtx, cancel := context.WithCancel(ctx)
			ifc = &iface{
				ctx:     ifcCtx,
				cancel:  cancel,
				name:    o.link.name,
				mac:     o.link.mac,
				link:    o.link,
				active:  map[netip.Addr]struct{}{},
				groups:  map[netip.Addr]struct{}{},
				pending: map[netip.Addr]*announcement{},
			}
			a.ifaces[ifc.name] = ifc
			a.log.Info("Using interface", "interface", ifc.name, "mac", ifc.mac.String(), "running", o.link.running())
		}
		if o.wantARP {
			ifc.arpErr = a.installed(ifc, "ARP", o.arpErr, ifc.arpErr)
			if o.arp != nil {
				ifc.arp = o.arp
				a.wg.Add(1)
				go a.readARP(ifc.ctx, ifc, o.arp)
			}
		}
		if o.wantNDP {
			if ndpNotApplicable(o.ndpErr) {
				if !ifc.ndpIdle || o.ndpErr.Error() != ifc.ndpErr {
					a.log.V(1).Info("No usable IPv6 link-local address, not answering NDP until one appears", "interface", ifc.name, "reason", o.ndpErr.Error())
				}
				ifc.ndpErr, ifc.ndpIdle = o.ndpErr.Error(), true
			} else {
				last := ifc.ndpErr
				if ifc.ndpIdle {
					last = "" // waiting for an address was no failure
				}
				ifc.ndpErr, ifc.ndpIdle = a.installed(ifc, "NDP", o.ndpErr, last), false
			}
			if o.ndp != nil {
				ifc.ndp = o.ndp
				a.wg.Add(1)
				go a.readNDP(ifc.ctx, ifc, o.ndp)
			}
		}
	}
}

// followCarrierLocked records the flags of the links. An interface that
// loses carrier stops its gratuitous schedule; one that regains it announces
// its addresses again, since switches and neighbours may have forgotten
// them. It reports whether it scheduled announcements.
func (a *Announcer) followCarrierLocked(eligibleLinks map[string]link, now time.Time) bool {
	scheduled := false
	for name, l := range eligibleLinks {
		ifc := a.ifaces[name]
		wasRunning := ifc.link.running()
		ifc.link = l
		switch {
		case wasRunning && !l.running():
			a.log.Info("Interface lost carrier", "interface", name)
			clear(ifc.pending)
		case !wasRunning && l.running():
			a.log.Info("Interface regained carrier, announcing its addresses again", "interface", name)
			if len(a.gratuitous) == 0 {
				continue
			}
			for ip := range ifc.active {
				ifc.pending[ip] = &announcement{start: now}
				scheduled = true
			}
		}
	}
	return scheduled
}

// installed logs the outcome of opening a socket, once per distinct error,
// and returns the error to remember.
func (a *Announcer) installed(ifc *iface, proto string, err error, last string) string {
	if err == nil {
		if last != "" {
			a.log.Info("Opened socket after earlier failures", "interface", ifc.name, "protocol", proto)
		}
		return ""
	}
	if err.Error() != last {
		a.log.Error(err, "Opening socket failed, retrying at the next rescan", "interface", ifc.name, "protocol", proto)
	}
	return err.Error()
}

// removeIfaceLocked forgets ifc and cancels its readers; its sockets must be
// closed (closeIfaces) once mu is released.
func (a *Announcer) removeIfaceLocked(ifc *iface) *iface {
	ifc.closed = true
	ifc.cancel()
	delete(a.ifaces, ifc.name)
	if len(ifc.active) > 0 {
		a.log.Info("Stopped announcing on interface", "interface", ifc.name, "addresses", len(ifc.active))
	} else {
		a.log.Info("Stopped using interface", "interface", ifc.name)
	}
	return ifc
}

func (a *Announcer) closeIfaces(ifcs []*iface) {
	for _, ifc := range ifcs {
		if ifc.arp != nil {
			if err := ifc.arp.Close(); err != nil {
				a.log.Error(err, "Closing ARP socket failed", "interface", ifc.name)
			}
		}
		if ifc.ndp != nil {
			if err := ifc.ndp.Close(); err != nil {
				a.log.Error(err, "Closing NDP socket failed", "interface", ifc.name)
			}
		}
	}
}

func (a *Announcer) healthLocked() Health {
	h := Health{Running: []string{}, NoCarrier: []string{}}
	for name, ifc := range a.ifaces {
		if ifc.link.running() {
			h.Running = append(h.Running, name)
		} else {
			h.NoCarrier = append(h.NoCarrier, name)
		}
	}
	slices.Sort(h.Running)
	slices.Sort(h.NoCarrier)
	return h
}

// SocketStatus says whether the announcer has the sockets it needs on the
// eligible interfaces.
type SocketStatus struct {
	// Scanned is true once the current Run has listed the interfaces and
	// tried to open their sockets.
	Scanned bool
	// Interfaces are the eligible interfaces in use, sorted.
	Interfaces []string
	// Failed are the sockets an eligible interface needs that could not be
	// opened at the last attempt (they are retried at every rescan), sorted
	// by interface and protocol. ARP is needed on every interface that can
	// broadcast; NDP on every interface that can multicast and has a usable
	// IPv6 link-local address. An interface without one (IPv6 disabled, no
	// carrier yet, duplicate address detection pending) has no NDP to
	// answer, so its missing NDP socket is not a failure.
	Failed []SocketFailure
}

// SocketFailure is a socket that could not be opened.
type SocketFailure struct {
	// Interface is the interface's name.
	Interface string
	// Protocol is "ARP" or "NDP".
	Protocol string
	// Err is the error of the last attempt.
	Err string
}

// Sockets returns the state of the sockets as of the last scan.
func (a *Announcer) Sockets() SocketStatus {
	a.mu.RLock()
	defer a.mu.RUnlock()
	st := SocketStatus{Scanned: a.scanned, Interfaces: make([]string, 0, len(a.ifaces))}
	for name, ifc := range a.ifaces {
		st.Interfaces = append(st.Interfaces, name)
		if ifc.link.canARP() && ifc.arp == nil {
			st.Failed = append(st.Failed, SocketFailure{Interface: name, Protocol: "ARP", Err: ifc.arpErr})
		}
		if ifc.link.canNDP() && ifc.ndp == nil && !ifc.ndpIdle {
			st.Failed = append(st.Failed, SocketFailure{Interface: name, Protocol: "NDP", Err: ifc.ndpErr})
		}
	}
	slices.Sort(st.Interfaces)
	slices.SortFunc(st.Failed, func(x, y SocketFailure) int {
		return cmp.Or(strings.Compare(x.Interface, y.Interface), strings.Compare(x.Protocol, y.Protocol))
	})
	return st
}
