package l2

import (
	"context"
	"errors"
	"io/fs"
	"maps"
	"net"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/go-logr/logr/testr"
	clocktesting "k8s.io/utils/clock/testing"
)

func TestNewValidatesConfig(t *testing.T) {
	tests := map[string]struct {
		cfg     Config
		wantErr string
	}{
		"zero value":                 {},
		"no gratuitous":              {cfg: Config{Gratuitous: []time.Duration{}}},
		"custom schedule":            {cfg: Config{Gratuitous: []time.Duration{0, time.Second}}},
		"negative rescan":            {cfg: Config{RescanInterval: -time.Second}, wantErr: "rescan interval"},
		"negative conflict interval": {cfg: Config{ConflictInterval: -time.Second}, wantErr: "conflict interval"},
		"negative offset":            {cfg: Config{Gratuitous: []time.Duration{-time.Second}}, wantErr: "gratuitous schedule"},
		"unordered offsets":          {cfg: Config{Gratuitous: []time.Duration{time.Second, 0}}, wantErr: "gratuitous schedule"},
		"repeated offset":            {cfg: Config{Gratuitous: []time.Duration{0, 0}}, wantErr: "gratuitous schedule"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			_, err := New(tc.cfg)
			switch {
			case tc.wantErr == "" && err != nil:
				t.Fatalf("New: %v", err)
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Fatalf("New error %v, want one about %q", err, tc.wantErr)
			}
		})
	}
}

func TestEligible(t *testing.T) {
	tests := map[string]struct {
		l    link
		want bool
	}{
		"Ethernet, up, running":   {l: ethLink("eth0", 2, mac0), want: true},
		"up without carrier":      {l: link{name: "eth0", mac: mac0, flags: net.FlagUp | net.FlagBroadcast | net.FlagMulticast}, want: true},
		"broadcast only (ARP)":    {l: link{name: "eth0", mac: mac0, flags: net.FlagUp | net.FlagBroadcast}, want: true},
		"multicast only (NDP)":    {l: link{name: "eth0", mac: mac0, flags: net.FlagUp | net.FlagMulticast}, want: true},
		"down":                    {l: link{name: "eth0", mac: mac0, flags: net.FlagBroadcast | net.FlagMulticast}},
		"loopback":                {l: link{name: "lo", mac: mac0, flags: upFlags | net.FlagLoopback}},
		"no MAC (tun, wireguard)": {l: link{name: "wg0", flags: upFlags}},
		"InfiniBand MAC":          {l: link{name: "ib0", mac: make(net.HardwareAddr, 20), flags: upFlags}},
		"bond slave":              {l: link{name: "eth0", mac: mac0, flags: upFlags, master: "bond0"}},
		"NOARP (dummy)":           {l: link{name: "kube-ipvs0", mac: mac0, flags: upFlags, noARP: true}},
		"point-to-point":          {l: link{name: "ppp0", mac: mac0, flags: net.FlagUp | net.FlagPointToPoint | net.FlagRunning}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			if got, why := eligible(tc.l); got != tc.want {
				t.Errorf("eligible = %t (%s), want %t", got, why, tc.want)
			}
		})
	}
}

func TestLinksFromSysfs(t *testing.T) {
	sysfs := fstest.MapFS{
		"eth0/flags":      {Data: []byte("0x1003\n")},
		"eth0/master":     {Data: []byte("../../../virtual/net/bond0"), Mode: 0o777 | fs.ModeSymlink},
		"bond0/uevent":    {Data: []byte("DEVTYPE=bond\nINTERFACE=bond0\nIFINDEX=5\n")},
		"eth1/master":     {Data: []byte("../../../virtual/net/br0"), Mode: 0o777 | fs.ModeSymlink},
		"br0/uevent":      {Data: []byte("DEVTYPE=bridge\nINTERFACE=br0\n")},
		"eth2/master":     {Data: []byte("../../../virtual/net/vrf-blue"), Mode: 0o777 | fs.ModeSymlink},
		"vrf-blue/flags":  {Data: []byte("0x40\n")},
		"vrf-blue/uevent": {Data: []byte("DEVTYPE=vrf\nINTERFACE=vrf-blue\n")},
		"dummy0/flags":    {Data: []byte("0xc3\n")},
		"eth3/flags":      {Data: []byte("garbage\n")},
	}
	ifis := []net.Interface{
		{Name: "eth0", Index: 2, HardwareAddr: mac0, Flags: upFlags},
		{Name: "eth1", Index: 3},
		{Name: "eth2", Index: 4},
		{Name: "dummy0", Index: 6},
		{Name: "eth3", Index: 7},
		{Name: "gone", Index: 8},
	}
	want := map[string]struct {
		master string
		noARP  bool
	}{
		"eth0":   {master: "bond0"},
		"eth1":   {master: "br0"},
		"eth2":   {},
		"dummy0": {noARP: true},
		"eth3":   {},
		"gone":   {},
	}
	got := linksFrom(ifis, sysfs)
	if len(got) != len(ifis) {
		t.Fatalf("linksFrom returned %d links, want %d", len(got), len(ifis))
	}
	for _, l := range got {
		w := want[l.name]
		if l.master != w.master || l.noARP != w.noARP {
			t.Errorf("%s: master %q noARP %t, want master %q noARP %t", l.name, l.master, l.noARP, w.master, w.noARP)
		}
	}
	if got[0].index != 2 || !slices.Equal(got[0].mac, mac0) || got[0].flags != upFlags {
		t.Errorf("eth0 = %+v, want the fields of net.Interface", got[0])
	}
}

func TestRescan(t *testing.T) {
	h := newHarness(t, Config{Gratuitous: []time.Duration{0}}, ethLink("eth0", 2, mac0))
	h.a.SetOwned(map[netip.Addr]Target{vip4: {}, vip6: {}})
	h.a.announceDue()
	announcing := func() map[netip.Addr][]string { return h.a.Announcing() }
	want := map[netip.Addr][]string{vip4: {"eth0"}, vip6: {"eth0"}}
	if got := announcing(); !maps.EqualFunc(got, want, slices.Equal) {
		t.Fatalf("Announcing() = %v, want %v", got, want)
	}

	// A new interface is picked up and announced on.
	h.links.set(ethLink("eth0", 2, mac0), ethLink("eth1", 3, mac1))
	h.a.Rescan()
	h.a.announceDue()
	want = map[netip.Addr][]string{vip4: {"eth0", "eth1"}, vip6: {"eth0", "eth1"}}
	if got := announcing(); !maps.EqualFunc(got, want, slices.Equal) {
		t.Fatalf("After adding eth1: Announcing() = %v, want %v", got, want)
	}
	eth1 := h.dial.arpConn(t, "eth1")
	if got := eth1.sentCount(); got != 2 {
		t.Errorf("Sent %d gratuitous ARP packets on the new interface, want 2", got)
	}
	if got := h.dial.ndpConn(t, "eth1").joined(); !slices.Equal(got, []netip.Addr{solicitedNode(vip6)}) {
		t.Errorf("Joined %v on the new interface", got)
	}
	eth1.inject(t, arpRequest(t, macPeer, peer4, vip4))
	if got := eth1.packets(t); len(got) != 3 || !slices.Equal(got[2].p.SenderHardwareAddr, mac1) {
		t.Errorf("No reply with eth1's MAC on eth1")
	}

	// A rescan with nothing changed opens nothing.
	h.a.Rescan()
	if arps, ndps := h.dial.opened("eth1"); arps != 1 || ndps != 1 {
		t.Errorf("Opened %d ARP and %d NDP sockets on eth1 over two rescans, want 1 each", arps, ndps)
	}

	// Down and enslaved interfaces are dropped and their sockets closed.
	down := ethLink("eth1", 3, mac1)
	down.flags &^= net.FlagUp
	h.links.set(ethLink("eth0", 2, mac0), down)
	h.a.Rescan()
	if !eth1.isClosed() || !h.dial.ndpConn(t, "eth1").isClosed() {
		t.Errorf("Sockets of the down interface left open")
	}
	want = map[netip.Addr][]string{vip4: {"eth0"}, vip6: {"eth0"}}
	if got := announcing(); !maps.EqualFunc(got, want, slices.Equal) {
		t.Fatalf("After eth1 went down: Announcing() = %v, want %v", got, want)
	}
	eth0 := h.dial.arpConn(t, "eth0")
	enslaved := ethLink("eth0", 2, mac0)
	enslaved.master = "bond0"
	h.links.set(enslaved)
	h.a.Rescan()
	if !eth0.isClosed() {
		t.Errorf("Sockets of the enslaved interface left open")
	}
	if got := announcing(); len(got) != 0 {
		t.Fatalf("After eth0 joined a bond: Announcing() = %v, want nothing", got)
	}

	// An interface whose MAC changed is reopened and announced again.
	h.links.set(ethLink("eth0", 2, mac0))
	h.a.Rescan()
	h.a.announceDue()
	h.links.set(ethLink("eth0", 2, macOther))
	h.a.Rescan()
	h.a.announceDue()
	if arps, _ := h.dial.opened("eth0"); arps != 3 {
		t.Fatalf("Opened %d ARP sockets on eth0, want 3", arps)
	}
	sent := h.dial.arpConn(t, "eth0").packets(t)
	if len(sent) != 2 || !slices.Equal(sent[0].p.SenderHardwareAddr, macOther) {
		t.Errorf("After the MAC changed, sent %d packets, want gratuitous ARP with the new MAC", len(sent))
	}
}

func TestRescanSkipInterface(t *testing.T) {
	h := newHarness(t, Config{SkipInterface: func(name string) bool { return strings.HasPrefix(name, "cali") }},
		ethLink("eth0", 2, mac0), ethLink("cali123", 9, mac1))
	if arps, _ := h.dial.opened("cali123"); arps != 0 {
		t.Fatalf("Opened sockets on a skipped interface")
	}
	if got := h.a.Health(); !slices.Equal(got.Running, []string{"eth0"}) {
		t.Fatalf("Health() = %+v, want only eth0", got)
	}
}

func TestRescanRetriesFailedSockets(t *testing.T) {
	h := newHarness(t, Config{Gratuitous: []time.Duration{0}})
	// eth0 appears while its link-local address is still tentative.
	h.dial.setNDPErr("eth0", errors.New("cannot assign requested address"))
	h.links.set(ethLink("eth0", 2, mac0))
	h.a.Rescan()
	h.a.SetOwned(map[netip.Addr]Target{vip4: {}, vip6: {}})
	want := map[netip.Addr][]string{vip4: {"eth0"}}
	if got := h.a.Announcing(); !maps.EqualFunc(got, want, slices.Equal) {
		t.Fatalf("Announcing() = %v, want %v", got, want)
	}
	h.a.Rescan()
	h.dial.setNDPErr("eth0", nil)
	h.a.Rescan()
	h.a.announceDue()
	want = map[netip.Addr][]string{vip4: {"eth0"}, vip6: {"eth0"}}
	if got := h.a.Announcing(); !maps.EqualFunc(got, want, slices.Equal) {
		t.Fatalf("After the NDP socket opened: Announcing() = %v, want %v", got, want)
	}
	if arps, ndps := h.dial.opened("eth0"); arps != 1 || ndps != 1 {
		t.Errorf("Opened %d ARP and %d NDP sockets, want 1 each", arps, ndps)
	}
	if got := len(h.dial.ndpConn(t, "eth0").messages()); got != 1 {
		t.Errorf("Sent %d unsolicited advertisements once NDP worked, want 1", got)
	}
}

func TestRescanKeepsInterfacesWhenListingFails(t *testing.T) {
	h := newHarness(t, Config{}, ethLink("eth0", 2, mac0))
	h.links.mu.Lock()
	h.links.err = errors.New("netlink: no buffer space")
	h.links.mu.Unlock()
	h.a.Rescan()
	if h.dial.arpConn(t, "eth0").isClosed() {
		t.Fatalf("A failed listing closed the interfaces")
	}
}

func TestHealth(t *testing.T) {
	h := newHarness(t, Config{Gratuitous: []time.Duration{0}}, ethLink("eth0", 2, mac0), ethLink("eth1", 3, mac1))
	if got, ok := h.lastHealth(t); !ok || !slices.Equal(got.Running, []string{"eth0", "eth1"}) || len(got.NoCarrier) != 0 {
		t.Fatalf("First health report %+v (reported %t), want eth0 and eth1 running", got, ok)
	}
	h.a.SetOwned(map[netip.Addr]Target{vip4: {Interfaces: []string{"eth1"}}})
	h.a.announceDue()

	// Nothing changed: no report.
	h.a.Rescan()
	if got, ok := h.lastHealth(t); ok {
		t.Fatalf("Health reported %+v without a change", got)
	}

	// eth1 loses carrier.
	noCarrier := ethLink("eth1", 3, mac1)
	noCarrier.flags &^= net.FlagRunning
	h.links.set(ethLink("eth0", 2, mac0), noCarrier)
	h.a.Rescan()
	got, ok := h.lastHealth(t)
	if !ok || !slices.Equal(got.Running, []string{"eth0"}) || !slices.Equal(got.NoCarrier, []string{"eth1"}) {
		t.Fatalf("After carrier loss: reported %+v (%t), want eth1 without carrier", got, ok)
	}
	if got.IsRunning("eth1") || !got.IsRunning("eth0") {
		t.Errorf("IsRunning disagrees with %+v", got)
	}
	if hl := h.a.Health(); !slices.Equal(hl.NoCarrier, []string{"eth1"}) {
		t.Errorf("Health() = %+v, want eth1 without carrier", hl)
	}
	// The interface keeps its sockets and still answers.
	eth1 := h.dial.arpConn(t, "eth1")
	if eth1.isClosed() {
		t.Fatalf("Carrier loss closed the sockets")
	}

	// Carrier returns: reported, and the address is announced again.
	h.links.set(ethLink("eth0", 2, mac0), ethLink("eth1", 3, mac1))
	h.a.Rescan()
	if got, ok := h.lastHealth(t); !ok || !slices.Equal(got.Running, []string{"eth0", "eth1"}) {
		t.Fatalf("After carrier returned: reported %+v (%t)", got, ok)
	}
	before := eth1.sentCount()
	h.a.announceDue()
	if got := eth1.sentCount() - before; got != 2 {
		t.Errorf("Sent %d gratuitous ARP packets when carrier returned, want 2", got)
	}

	// An interface that goes down disappears from the report.
	down := ethLink("eth1", 3, mac1)
	down.flags &^= net.FlagUp | net.FlagRunning
	h.links.set(ethLink("eth0", 2, mac0), down)
	h.a.Rescan()
	if got, ok := h.lastHealth(t); !ok || !slices.Equal(got.Running, []string{"eth0"}) || len(got.NoCarrier) != 0 {
		t.Fatalf("After eth1 went down: reported %+v (%t)", got, ok)
	}
}

// TestRun drives the real loop: gratuitous announcements start without
// waiting for the clock, the schedule runs on the clock, periodic rescans
// pick up interfaces, and cancelling the context closes every socket.
func TestRun(t *testing.T) {
	clk := clocktesting.NewFakeClock(epochTime)
	links := &fakeLinks{all: []link{ethLink("eth0", 2, mac0)}}
	dial := newFakeDialer()
	a, err := newAnnouncer(Config{Logger: testr.New(t), Clock: clk, RescanInterval: time.Second}, links, dial)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()

	eventually(t, "the first scan", func() bool { arps, _ := dial.opened("eth0"); return arps == 1 })
	if err := a.Run(ctx); err == nil {
		t.Errorf("A second Run did not fail")
	}
	a.SetOwned(map[netip.Addr]Target{vip4: {}})
	eth0 := dial.arpConn(t, "eth0")
	eventually(t, "the immediate gratuitous ARP", func() bool { return eth0.sentCount() >= 2 })
	eventually(t, "the whole gratuitous schedule", func() bool {
		clk.Step(50 * time.Millisecond)
		return eth0.sentCount() == 8
	})

	links.set(ethLink("eth0", 2, mac0), ethLink("eth1", 3, mac1))
	eventually(t, "a periodic rescan", func() bool {
		clk.Step(time.Second)
		arps, _ := dial.opened("eth1")
		return arps == 1
	})

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Run: %v", err)
		}
	case <-time.After(waitTimeout):
		t.Fatal("Run did not return after cancel")
	}
	if !eth0.isClosed() || !dial.arpConn(t, "eth1").isClosed() || !dial.ndpConn(t, "eth0").isClosed() {
		t.Errorf("Sockets left open after Run returned")
	}
	if got := a.Announcing(); len(got) != 0 {
		t.Errorf("Announcing() = %v after Run returned", got)
	}
	// Ownership set while stopped is kept for the next Run.
	a.SetOwned(map[netip.Addr]Target{vip4b: {}})
	ctx2, cancel2 := context.WithCancel(context.Background())
	defer cancel2()
	go func() { done <- a.Run(ctx2) }()
	eventually(t, "the second Run to announce", func() bool {
		_, ok := a.Announcing()[vip4b]
		return ok
	})
	cancel2()
	<-done
}

func TestSetOwnedIgnoresUnannounceableAddresses(t *testing.T) {
	h := newHarness(t, Config{}, ethLink("eth0", 2, mac0))
	h.a.SetOwned(map[netip.Addr]Target{
		{}:                                       {},
		netip.IPv4Unspecified():                  {},
		netip.MustParseAddr("127.0.0.1"):         {},
		netip.MustParseAddr("ff02::1"):           {},
		netip.MustParseAddr("::ffff:192.0.2.10"): {},
	})
	want := map[netip.Addr][]string{vip4: {"eth0"}}
	if got := h.a.Announcing(); !maps.EqualFunc(got, want, slices.Equal) {
		t.Fatalf("Announcing() = %v, want only the unmapped %s", got, vip4)
	}
}

func TestSetOwnedCopiesItsInput(t *testing.T) {
	h := newHarness(t, Config{}, ethLink("eth0", 2, mac0), ethLink("eth1", 3, mac1))
	ifaces := []string{"eth0"}
	owned := map[netip.Addr]Target{vip4: {Interfaces: ifaces}}
	h.a.SetOwned(owned)
	ifaces[0] = "eth1"
	owned[vip4b] = Target{}
	h.a.Rescan()
	want := map[netip.Addr][]string{vip4: {"eth0"}}
	if got := h.a.Announcing(); !maps.EqualFunc(got, want, slices.Equal) {
		t.Fatalf("Announcing() = %v, want %v", got, want)
	}
}
