package l2

import (
	"errors"
	"fmt"
	"net"
	"slices"
	"syscall"
	"testing"
)

// TestSockets: Sockets reports every socket an eligible interface needs and
// lacks, and does not count a missing NDP socket on an interface without a
// usable link-local address as a failure.
func TestSockets(t *testing.T) {
	eperm := fmt.Errorf("opening ARP socket on eth0: %w", syscall.EPERM)
	cases := map[string]struct {
		links      []link
		arpErr     map[string]error
		ndpErr     map[string]error
		wantFailed []SocketFailure
	}{
		"every socket open": {
			links: []link{ethLink("eth0", 2, mac0), ethLink("eth1", 3, mac1)},
		},
		"no interface": {},
		"no capability": {
			links:  []link{ethLink("eth0", 2, mac0)},
			arpErr: map[string]error{"eth0": eperm},
			ndpErr: map[string]error{"eth0": fmt.Errorf("opening NDP socket on eth0: %w", syscall.EPERM)},
			wantFailed: []SocketFailure{
				{Interface: "eth0", Protocol: "ARP", Err: eperm.Error()},
				{Interface: "eth0", Protocol: "NDP", Err: "opening NDP socket on eth0: operation not permitted"},
			},
		},
		"IPv6 disabled: no NDP needed": {
			links:  []link{ethLink("eth0", 2, mac0)},
			ndpErr: map[string]error{"eth0": fmt.Errorf("opening NDP socket on eth0: %w", errNoLinkLocal)},
		},
		"link-local address tentative: no NDP needed yet": {
			links:  []link{ethLink("eth0", 2, mac0)},
			ndpErr: map[string]error{"eth0": &net.OpError{Op: "listen", Err: syscall.EADDRNOTAVAIL}},
		},
		"NDP fails otherwise on one interface": {
			links:      []link{ethLink("eth0", 2, mac0), ethLink("eth1", 3, mac1)},
			ndpErr:     map[string]error{"eth1": errors.New("setting ICMPv6 filter on eth1: boom")},
			wantFailed: []SocketFailure{{Interface: "eth1", Protocol: "NDP", Err: "setting ICMPv6 filter on eth1: boom"}},
		},
		"ARP not needed without broadcast": {
			links:  []link{{name: "wg0", index: 4, mtu: 1420, mac: mac1, flags: net.FlagUp | net.FlagMulticast | net.FlagRunning}},
			arpErr: map[string]error{"wg0": eperm},
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			h := newHarness(t, Config{})
			for n, err := range tc.arpErr {
				h.dial.setARPErr(n, err)
			}
			for n, err := range tc.ndpErr {
				h.dial.setNDPErr(n, err)
			}
			h.links.set(tc.links...)
			h.a.Rescan()
			st := h.a.Sockets()
			if !st.Scanned {
				t.Error("Scanned = false after a scan")
			}
			if len(st.Interfaces) != len(tc.links) {
				t.Errorf("Interfaces = %v, want %d", st.Interfaces, len(tc.links))
			}
			if !slices.Equal(st.Failed, tc.wantFailed) {
				t.Errorf("Failed = %+v, want %+v", st.Failed, tc.wantFailed)
			}
		})
	}
}

// TestSocketsRecover: a failed socket stops being reported once a rescan
// opens it, and Scanned is false outside Run.
func TestSocketsRecover(t *testing.T) {
	a, err := newAnnouncer(Config{}, &fakeLinks{}, newFakeDialer())
	if err != nil {
		t.Fatal(err)
	}
	if a.Sockets().Scanned {
		t.Error("Scanned before Run")
	}
	h := newHarness(t, Config{})
	h.dial.setARPErr("eth0", syscall.EPERM)
	h.links.set(ethLink("eth0", 2, mac0))
	h.a.Rescan()
	if got := h.a.Sockets().Failed; len(got) != 1 || got[0].Protocol != "ARP" {
		t.Fatalf("Failed = %+v, want the ARP socket", got)
	}
	h.dial.setARPErr("eth0", nil)
	h.a.Rescan()
	if got := h.a.Sockets().Failed; len(got) != 0 {
		t.Fatalf("Failed = %+v after the socket opened", got)
	}
}
