package bgp

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"slices"
	"strings"
	"testing"
	"time"
	"unsafe"

	api "github.com/osrg/gobgp/v3/api"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"
)

// The speaker is 127.0.0.1 (or ::1); routers listen on other loopback
// addresses with ports of their own. The speaker does not listen.

const (
	speakerASN = 64512
	ebgpASN    = 64513
)

func speakerConfig(logs *logCapture) Config {
	return Config{
		RouterID:   netip.MustParseAddr("10.255.0.1"),
		ASN:        speakerASN,
		ListenPort: -1,
		Log:        logs.logger(),
	}
}

// peerFor is a speaker peer pointing at r, reconnecting quickly.
func peerFor(name string, r *router) Peer {
	src := netip.MustParseAddr("127.0.0.1")
	if r.addr.Is6() {
		src = netip.IPv6Loopback()
	}
	return Peer{
		Name:          name,
		Address:       r.addr,
		Port:          r.port,
		PeerASN:       r.asn,
		SourceAddress: src,
		ConnectTime:   time.Second,
	}
}

func TestSessionsAndAttributes(t *testing.T) {
	logs := &logCapture{}
	logs.dumpOnFailure(t)
	ibgp := newRouter(t, "127.0.0.2", speakerASN, "10.255.0.2")
	ibgp.addNeighbor("127.0.0.1", speakerASN, neighborOpts{gracefulRestart: true})
	ebgp := newRouter(t, "127.0.0.3", ebgpASN, "10.255.0.3")
	ebgp.addNeighbor("127.0.0.1", speakerASN, neighborOpts{})

	s, err := New(speakerConfig(logs))
	if err != nil {
		t.Fatal(err)
	}
	// State set before Run is applied when Run starts.
	ipeer := peerFor("ibgp", ibgp)
	ipeer.GracefulRestart = true
	if err := s.SetPeers([]Peer{ipeer, peerFor("ebgp", ebgp)}); err != nil {
		t.Fatalf("SetPeers: %v", err)
	}
	paths := []Path{
		{
			Prefix:           netip.MustParsePrefix("192.0.2.10/32"),
			LocalPref:        u32(200),
			Communities:      []uint32{community(65000, 100), community(65000, 1)},
			LargeCommunities: [][3]uint32{{speakerASN, 1, 2}},
		},
		// Merged with the one above.
		{Prefix: netip.MustParsePrefix("192.0.2.10/32"), Communities: []uint32{community(65000, 100), community(65000, 7)}},
		{Prefix: netip.MustParsePrefix("192.0.2.11/32"), NextHop: netip.MustParseAddr("198.51.100.7")},
		{Prefix: netip.MustParsePrefix("198.18.0.0/24")},
	}
	if err := s.SetPaths(paths); err != nil {
		t.Fatalf("SetPaths: %v", err)
	}
	events := collectEvents(t, s)
	runSpeaker(t, s)

	ibgp.waitPrefixes("192.0.2.10/32", "192.0.2.11/32", "198.18.0.0/24")
	ebgp.waitPrefixes("192.0.2.10/32", "192.0.2.11/32", "198.18.0.0/24")

	wantIBGP := map[string]route{
		"192.0.2.10/32": {
			NextHop:     "127.0.0.1",
			LocalPref:   u32(200),
			Communities: []uint32{community(65000, 1), community(65000, 7), community(65000, 100)},
			Large:       [][3]uint32{{speakerASN, 1, 2}},
		},
		"192.0.2.11/32": {NextHop: "198.51.100.7", LocalPref: u32(100)},
		"198.18.0.0/24": {NextHop: "127.0.0.1", LocalPref: u32(100)},
	}
	if diff := cmp.Diff(wantIBGP, ibgp.routes()); diff != "" {
		t.Errorf("iBGP router's routes (-want +got):\n%s", diff)
	}
	wantEBGP := map[string]route{
		// No LOCAL_PREF over eBGP.
		"192.0.2.10/32": {
			NextHop:     "127.0.0.1",
			Communities: []uint32{community(65000, 1), community(65000, 7), community(65000, 100)},
			Large:       [][3]uint32{{speakerASN, 1, 2}},
			ASPath:      "64512",
		},
		"192.0.2.11/32": {NextHop: "198.51.100.7", ASPath: "64512"},
		"198.18.0.0/24": {NextHop: "127.0.0.1", ASPath: "64512"},
	}
	if diff := cmp.Diff(wantEBGP, ebgp.routes()); diff != "" {
		t.Errorf("eBGP router's routes (-want +got):\n%s", diff)
	}

	for _, name := range []string{"ibgp", "ebgp"} {
		st := waitPeerUp(t, s, name)
		if st.State != "established" || st.PrefixesAdvertised != 3 || st.Since.IsZero() || time.Since(st.Since) > time.Minute {
			t.Errorf("Peer %s status = %+v, want established with 3 prefixes advertised since just now", name, st)
		}
		eventually(t, waitUp, "an up event for "+name, func() (bool, string) {
			evs := events.of(name)
			return len(evs) == 1 && evs[0].Up && evs[0].State == "established", fmt.Sprintf("%+v", evs)
		})
	}
}

func TestIPv6AndDualStack(t *testing.T) {
	logs := &logCapture{}
	logs.dumpOnFailure(t)
	r := newRouter(t, "::1", ebgpASN, "10.255.0.6")
	r.addNeighbor("::1", speakerASN, neighborOpts{})
	s := startSpeaker(t, speakerConfig(logs))
	p := peerFor("v6", r)
	p.DualStack = true
	if err := s.SetPeers([]Peer{p}); err != nil {
		t.Fatalf("SetPeers: %v", err)
	}
	err := s.SetPaths([]Path{
		{Prefix: netip.MustParsePrefix("2001:db8::10/128"), Communities: []uint32{community(65000, 6)}},
		{Prefix: netip.MustParsePrefix("2001:db8:1::/64"), NextHop: netip.MustParseAddr("2001:db8::1")},
		// IPv4 over the IPv6 session: the next hop is the node's IPv4
		// address, or the session's IPv6 address (RFC 8950).
		{Prefix: netip.MustParsePrefix("192.0.2.20/32"), NextHop: netip.MustParseAddr("198.51.100.20")},
		{Prefix: netip.MustParsePrefix("192.0.2.21/32")},
	})
	if err != nil {
		t.Fatalf("SetPaths: %v", err)
	}
	r.waitPrefixes("2001:db8::10/128", "2001:db8:1::/64", "192.0.2.20/32", "192.0.2.21/32")
	want := map[string]route{
		"2001:db8::10/128": {NextHop: "::1", Communities: []uint32{community(65000, 6)}, ASPath: "64512"},
		"2001:db8:1::/64":  {NextHop: "2001:db8::1", ASPath: "64512"},
		"192.0.2.20/32":    {NextHop: "198.51.100.20", ASPath: "64512"},
		"192.0.2.21/32":    {NextHop: "::1", ASPath: "64512"},
	}
	if diff := cmp.Diff(want, r.routes()); diff != "" {
		t.Errorf("Router's routes (-want +got):\n%s", diff)
	}
	if st := waitPeerUp(t, s, "v6"); st.PrefixesAdvertised != 4 || st.Address != netip.IPv6Loopback() {
		t.Errorf("Peer status = %+v, want 4 prefixes advertised to ::1", st)
	}

	// Without DualStack the session carries IPv6 only. Changing the
	// families re-creates the peer.
	p.DualStack = false
	if err := s.SetPeers([]Peer{p}); err != nil {
		t.Fatalf("SetPeers: %v", err)
	}
	eventually(t, waitLong, "the IPv6-only session", func() (bool, string) {
		got := r.prefixes()
		return slices.Equal(got, []string{"2001:db8:1::/64", "2001:db8::10/128"}), fmt.Sprintf("router has %v", got)
	})
	if st := waitPeerUp(t, s, "v6"); st.PrefixesAdvertised != 2 {
		t.Errorf("Peer status = %+v, want 2 prefixes advertised", st)
	}
}

func TestPerPeerRestriction(t *testing.T) {
	logs := &logCapture{}
	logs.dumpOnFailure(t)
	a := newWatchingRouter(t, "127.0.0.2", ebgpASN, "10.255.0.2")
	a.addNeighbor("127.0.0.1", speakerASN, neighborOpts{})
	b := newWatchingRouter(t, "127.0.0.3", ebgpASN+1, "10.255.0.3")
	b.addNeighbor("127.0.0.1", speakerASN, neighborOpts{})
	s := startSpeaker(t, speakerConfig(logs))
	if err := s.SetPeers([]Peer{peerFor("a", a), peerFor("b", b)}); err != nil {
		t.Fatalf("SetPeers: %v", err)
	}
	waitPeerUp(t, s, "a")
	waitPeerUp(t, s, "b")

	const p1, p2 = "192.0.2.1/32", "192.0.2.2/32"
	lc := [][3]uint32{{speakerASN, 9, 9}}
	set := func(p1Peers ...string) {
		t.Helper()
		err := s.SetPaths([]Path{
			{Prefix: netip.MustParsePrefix(p1), Peers: p1Peers, LargeCommunities: lc},
			{Prefix: netip.MustParsePrefix(p2), LargeCommunities: lc},
		})
		if err != nil {
			t.Fatalf("SetPaths: %v", err)
		}
	}
	// checkStable waits for the RIBs and checks that the routers saw no
	// withdrawal of the prefixes they keep and never saw a marker.
	checkStable := func(step string, wantA, wantB []string) {
		t.Helper()
		a.waitPrefixes(wantA...)
		b.waitPrefixes(wantB...)
		time.Sleep(settle)
		a.waitPrefixes(wantA...)
		b.waitPrefixes(wantB...)
		for _, r := range []*router{a, b} {
			for prefix, rt := range r.routes() {
				if diff := cmp.Diff(lc, rt.Large); diff != "" {
					t.Errorf("%s: router %v, %s: large communities (-want +got):\n%s", step, r.addr, prefix, diff)
				}
			}
		}
		for _, x := range []struct {
			r    *router
			keep []string
		}{{a, wantA}, {b, wantB}} {
			for _, w := range withdrawals(x.r.takeEvents()) {
				if slices.Contains(x.keep, w) {
					t.Errorf("%s: router %v saw %s withdrawn", step, x.r.addr, w)
				}
			}
		}
	}

	set("a")
	checkStable("p1 to a", []string{p1, p2}, []string{p2})
	if st, _ := peerStatusOf(s, "b"); st.PrefixesAdvertised != 1 {
		t.Errorf("Peer b status = %+v, want 1 prefix advertised", st)
	}
	set("b")
	checkStable("p1 moved to b", []string{p2}, []string{p1, p2})
	set("a", "b")
	checkStable("p1 to both", []string{p1, p2}, []string{p1, p2})
	set()
	checkStable("p1 to every peer", []string{p1, p2}, []string{p1, p2})
	set("a", "unknown")
	checkStable("p1 back to a", []string{p1, p2}, []string{p2})
	set("unknown")
	checkStable("p1 to nobody", []string{p2}, []string{p2})

	// A new peer gets the prefixes meant for every peer and for it.
	c := newRouter(t, "127.0.0.4", ebgpASN+2, "10.255.0.4")
	c.addNeighbor("127.0.0.1", speakerASN, neighborOpts{})
	if err := s.SetPeers([]Peer{peerFor("a", a), peerFor("b", b), peerFor("unknown", c)}); err != nil {
		t.Fatalf("SetPeers: %v", err)
	}
	c.waitPrefixes(p1, p2)
	checkStable("peer for p1 added", []string{p2}, []string{p2})
}

func TestSetPathsIsIncremental(t *testing.T) {
	logs := &logCapture{}
	logs.dumpOnFailure(t)
	r := newWatchingRouter(t, "127.0.0.2", ebgpASN, "10.255.0.2")
	r.addNeighbor("127.0.0.1", speakerASN, neighborOpts{})
	s := startSpeaker(t, speakerConfig(logs))
	if err := s.SetPeers([]Peer{peerFor("r", r)}); err != nil {
		t.Fatalf("SetPeers: %v", err)
	}
	paths := []Path{
		{Prefix: netip.MustParsePrefix("192.0.2.1/32")},
		{Prefix: netip.MustParsePrefix("192.0.2.2/32")},
	}
	if err := s.SetPaths(paths); err != nil {
		t.Fatalf("SetPaths: %v", err)
	}
	r.waitPrefixes("192.0.2.1/32", "192.0.2.2/32")
	// The count settles once the initial table and End-of-RIB are in.
	var count uint64
	eventually(t, waitUp, "the update count to settle", func() (bool, string) {
		before := r.receivedUpdates("127.0.0.1")
		time.Sleep(settle)
		count = r.receivedUpdates("127.0.0.1")
		return before == count, fmt.Sprintf("%d then %d", before, count)
	})
	r.takeEvents()

	step := func(name string, paths []Path, want []string) {
		t.Helper()
		if err := s.SetPaths(paths); err != nil {
			t.Fatalf("%s: SetPaths: %v", name, err)
		}
		r.waitPrefixes(want...)
		time.Sleep(settle)
		if got := r.receivedUpdates("127.0.0.1"); got != count+1 {
			t.Errorf("%s: the router received %d updates, want 1", name, got-count)
		}
		count = r.receivedUpdates("127.0.0.1")
	}

	// One more Service: one UPDATE, nothing withdrawn.
	paths = append(paths, Path{Prefix: netip.MustParsePrefix("192.0.2.3/32")})
	step("add", paths, []string{"192.0.2.1/32", "192.0.2.2/32", "192.0.2.3/32"})
	if evs := r.takeEvents(); len(evs) != 1 || evs[0] != (routeEvent{prefix: "192.0.2.3/32"}) {
		t.Errorf("Best path changes after adding a path = %+v, want only 192.0.2.3/32 added", evs)
	}
	// The same paths again: nothing at all.
	if err := s.SetPaths(slices.Clone(paths)); err != nil {
		t.Fatalf("SetPaths: %v", err)
	}
	time.Sleep(settle)
	if got := r.receivedUpdates("127.0.0.1"); got != count {
		t.Errorf("Setting the same paths sent %d updates, want none", got-count)
	}
	// Changed attributes: one UPDATE for that prefix.
	paths[0].Communities = []uint32{community(65000, 1)}
	step("change", paths, []string{"192.0.2.1/32", "192.0.2.2/32", "192.0.2.3/32"})
	if got := r.routes()["192.0.2.1/32"].Communities; !slices.Equal(got, []uint32{community(65000, 1)}) {
		t.Errorf("Communities of 192.0.2.1/32 = %v after the change", got)
	}
	// One Service less: one withdrawal.
	paths = slices.Delete(paths, 1, 2)
	step("remove", paths, []string{"192.0.2.1/32", "192.0.2.3/32"})
	if evs := r.takeEvents(); !slices.Equal(withdrawals(evs), []string{"192.0.2.2/32"}) || len(evs) != 2 {
		t.Errorf("Best path changes after the change and the removal = %+v, want 192.0.2.1/32 updated and 192.0.2.2/32 withdrawn", evs)
	}
}

func TestSetPeersLeavesOtherSessionsAlone(t *testing.T) {
	logs := &logCapture{}
	logs.dumpOnFailure(t)
	a := newRouter(t, "127.0.0.2", ebgpASN, "10.255.0.2")
	a.addNeighbor("127.0.0.1", speakerASN, neighborOpts{})
	b := newRouter(t, "127.0.0.3", speakerASN, "10.255.0.3")
	b.addNeighbor("127.0.0.1", speakerASN, neighborOpts{})
	c := newRouter(t, "127.0.0.4", ebgpASN, "10.255.0.4")
	c.addNeighbor("127.0.0.1", speakerASN, neighborOpts{})
	s := startSpeaker(t, speakerConfig(logs))
	events := collectEvents(t, s)
	pa, pb, pc := peerFor("a", a), peerFor("b", b), peerFor("c", c)
	if err := s.SetPeers([]Peer{pa, pb}); err != nil {
		t.Fatalf("SetPeers: %v", err)
	}
	if err := s.SetPaths([]Path{{Prefix: netip.MustParsePrefix("192.0.2.1/32")}}); err != nil {
		t.Fatalf("SetPaths: %v", err)
	}
	a.waitPrefixes("192.0.2.1/32")
	b.waitPrefixes("192.0.2.1/32")
	sinceA := waitPeerUp(t, s, "a").Since
	sinceB := waitPeerUp(t, s, "b").Since

	// checkA checks that a's session never went down.
	checkA := func(step string) {
		t.Helper()
		if st, _ := peerStatusOf(s, "a"); !st.Up || !st.Since.Equal(sinceA) {
			t.Errorf("%s: peer a = %+v, want up since %v", step, st, sinceA)
		}
		if evs := events.of("a"); len(evs) != 1 || !evs[0].Up {
			t.Errorf("%s: events of peer a = %+v, want only its first up", step, evs)
		}
		if !a.established("127.0.0.1") {
			t.Errorf("%s: router a's session is down", step)
		}
	}

	// A new peer.
	if err := s.SetPeers([]Peer{pa, pb, pc}); err != nil {
		t.Fatalf("SetPeers: %v", err)
	}
	c.waitPrefixes("192.0.2.1/32")
	waitPeerUp(t, s, "c")
	checkA("adding c")

	// Timers change without a reset.
	pb.HoldTime, pb.KeepaliveTime = 30*time.Second, 10*time.Second
	if err := s.SetPeers([]Peer{pa, pb, pc}); err != nil {
		t.Fatalf("SetPeers: %v", err)
	}
	time.Sleep(settle)
	if st, _ := peerStatusOf(s, "b"); !st.Up || !st.Since.Equal(sinceB) {
		t.Errorf("Peer b after a timer change = %+v, want up since %v", st, sinceB)
	}
	if evs := events.of("b"); len(evs) != 1 {
		t.Errorf("Events of peer b after a timer change = %+v, want only its first up", evs)
	}
	checkA("changing b's timers")

	// Another source address re-creates only that peer.
	pb.SourceAddress = netip.Addr{}
	if err := s.SetPeers([]Peer{pa, pb, pc}); err != nil {
		t.Fatalf("SetPeers: %v", err)
	}
	eventually(t, waitLong, "peer b to go down and up again", func() (bool, string) {
		evs := events.of("b")
		return len(evs) == 3 && !evs[1].Up && evs[2].Up, fmt.Sprintf("%+v", evs)
	})
	b.waitPrefixes("192.0.2.1/32")
	checkA("re-creating b")

	// Removing a peer.
	if err := s.SetPeers([]Peer{pa, pb}); err != nil {
		t.Fatalf("SetPeers: %v", err)
	}
	eventually(t, waitUp, "peer c to be deleted", func() (bool, string) {
		evs := events.of("c")
		return len(evs) == 2 && !evs[1].Up && evs[1].Reason == "peer deleted", fmt.Sprintf("%+v", evs)
	})
	c.waitPrefixes()
	if _, ok := peerStatusOf(s, "c"); ok {
		t.Errorf("Peers still lists c after it was removed")
	}
	checkA("removing c")
}

func TestSetPeerDown(t *testing.T) {
	logs := &logCapture{}
	logs.dumpOnFailure(t)
	r := newRouter(t, "127.0.0.2", ebgpASN, "10.255.0.2")
	r.addNeighbor("127.0.0.1", speakerASN, neighborOpts{})
	s := startSpeaker(t, speakerConfig(logs))
	events := collectEvents(t, s)
	if err := s.SetPeerDown("r", true); err == nil {
		t.Errorf("SetPeerDown of an unknown peer succeeded")
	}
	if err := s.SetPeers([]Peer{peerFor("r", r)}); err != nil {
		t.Fatalf("SetPeers: %v", err)
	}
	if err := s.SetPaths([]Path{{Prefix: netip.MustParsePrefix("192.0.2.1/32")}}); err != nil {
		t.Fatalf("SetPaths: %v", err)
	}
	r.waitPrefixes("192.0.2.1/32")
	waitPeerUp(t, s, "r")

	if err := s.SetPeerDown("r", true); err != nil {
		t.Fatalf("SetPeerDown: %v", err)
	}
	r.waitPrefixes()
	eventually(t, waitUp, "peer r to be down", func() (bool, string) {
		st, _ := peerStatusOf(s, "r")
		evs := events.of("r")
		return !st.Up && st.AdminDown && st.State == "idle" && len(evs) == 2 && !evs[1].Up,
			fmt.Sprintf("status %+v, events %+v", st, evs)
	})
	if evs := events.of("r"); evs[1].Reason != "administratively down" {
		t.Errorf("Down event = %+v, want administratively down", evs[1])
	}
	// It stays down.
	time.Sleep(settle)
	if st, _ := peerStatusOf(s, "r"); st.Up || r.established("127.0.0.1") {
		t.Errorf("Peer r = %+v came back up while shut down", st)
	}

	if err := s.SetPeerDown("r", false); err != nil {
		t.Fatalf("SetPeerDown: %v", err)
	}
	if st := waitPeerUp(t, s, "r"); st.AdminDown {
		t.Errorf("Peer r = %+v after enabling it", st)
	}
	r.waitPrefixes("192.0.2.1/32")
}

// md5Available reports whether this process may set TCP_MD5SIG.
func md5Available(t *testing.T) bool {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("Listening: %v", err)
	}
	defer l.Close()
	raw, err := l.(*net.TCPListener).SyscallConn()
	if err != nil {
		t.Fatalf("SyscallConn: %v", err)
	}
	var sockErr error
	err = raw.Control(func(fd uintptr) {
		sig := &unix.TCPMD5Sig{Keylen: 4}
		copy(sig.Key[:], "test")
		sa := (*unix.RawSockaddrInet4)(unsafe.Pointer(&sig.Addr))
		sa.Family = unix.AF_INET
		sa.Addr = [4]byte{127, 0, 0, 1}
		sockErr = unix.SetsockoptTCPMD5Sig(int(fd), unix.IPPROTO_TCP, unix.TCP_MD5SIG, sig)
	})
	if err != nil {
		t.Fatalf("Control: %v", err)
	}
	if sockErr != nil {
		t.Logf("TCP_MD5SIG is not available: %v", sockErr)
		return false
	}
	return true
}

// TestPasswordsNeverLogged runs everything that handles passwords and
// checks the log. It needs no working TCP MD5.
func TestPasswordsNeverLogged(t *testing.T) {
	const first, second = "first-secret-password-0417", "second-secret-password-5521"
	logs := &logCapture{}
	logs.dumpOnFailure(t)
	r := newRouter(t, "127.0.0.2", ebgpASN, "10.255.0.2")
	r.addNeighbor("127.0.0.1", speakerASN, neighborOpts{password: first})
	s, err := New(speakerConfig(logs))
	if err != nil {
		t.Fatal(err)
	}
	p := peerFor("r", r)
	p.Password = first
	if err := s.SetPeers([]Peer{p}); err != nil {
		t.Fatalf("SetPeers: %v", err)
	}
	runSpeaker(t, s)
	if err := s.SetPaths([]Path{{Prefix: netip.MustParsePrefix("192.0.2.1/32")}}); err != nil {
		t.Fatalf("SetPaths: %v", err)
	}
	// Up (with MD5) or failing to connect (without), gobgp has logged
	// about the session.
	eventually(t, waitUp, "the session to come up or fail", func() (bool, string) {
		st, _ := peerStatusOf(s, "r")
		return st.Up || st.LastError != "", fmt.Sprintf("%+v", st)
	})
	p.Password = second
	if err := s.SetPeers([]Peer{p}); err != nil {
		t.Fatalf("SetPeers: %v", err)
	}
	if err := s.SetPeerDown("r", true); err != nil {
		t.Fatalf("SetPeerDown: %v", err)
	}
	if err := s.SetPeers(nil); err != nil {
		t.Fatalf("SetPeers: %v", err)
	}
	// A Peer logged by mistake hides its password too.
	s.log.Info("Logging a peer", "peer", p, "text", fmt.Sprint(p), "err", fmt.Errorf("wrapped: %v", p))
	time.Sleep(settle)

	out := logs.all()
	for _, secret := range []string{first, second} {
		if strings.Contains(out, secret) {
			t.Errorf("The log contains the password %q", secret)
		}
	}
	if got := strings.Count(out, redactedText); got < 3 {
		t.Errorf("The logged peer shows %q %d times, want 3", redactedText, got)
	}
}

// TestMD5 checks TCP MD5 passwords end to end. It needs a kernel with
// TCP_MD5SIG and the right to use it.
func TestMD5(t *testing.T) {
	if !md5Available(t) {
		if os.Getenv("CI") == "true" && os.Geteuid() != 0 {
			t.Fatalf("TCP MD5 signatures are not available to uid %d; CI must run this test as root", os.Geteuid())
		}
		// The router side of this test is a gobgp server that sets TCP MD5
		// on its listening socket; some kernels refuse that (this one
		// answers ENOPROTOOPT even for root) while allowing it on
		// connecting sockets, which is all the speaker uses. MD5 is then
		// proven end to end against BIRD in test/e2e (TestBGPPassword),
		// which CI runs.
		t.Skipf("SKIPPING TCP MD5 TEST: this kernel does not let uid %d set TCP_MD5SIG on a listening socket; test/e2e TestBGPPassword covers MD5 against BIRD", os.Geteuid())
	}
	const (
		rightPassword = "right-horse-battery-staple"
		routerSecret  = "routers-own-secret-9931"
		wrongPassword = "wrong-password-1234"
	)
	logs := &logCapture{}
	logs.dumpOnFailure(t)
	good := newRouter(t, "127.0.0.2", ebgpASN, "10.255.0.2")
	good.addNeighbor("127.0.0.1", speakerASN, neighborOpts{password: rightPassword})
	bad := newRouter(t, "127.0.0.3", ebgpASN, "10.255.0.3")
	bad.addNeighbor("127.0.0.1", speakerASN, neighborOpts{password: routerSecret})
	s := startSpeaker(t, speakerConfig(logs))
	pgood, pbad := peerFor("good", good), peerFor("bad", bad)
	pgood.Password, pbad.Password = rightPassword, wrongPassword
	if err := s.SetPeers([]Peer{pgood, pbad}); err != nil {
		t.Fatalf("SetPeers: %v", err)
	}
	if err := s.SetPaths([]Path{{Prefix: netip.MustParsePrefix("192.0.2.1/32")}}); err != nil {
		t.Fatalf("SetPaths: %v", err)
	}
	good.waitPrefixes("192.0.2.1/32")
	waitPeerUp(t, s, "good")

	// The wrong password: the router's kernel drops our SYNs, so the
	// session never comes up and connection attempts time out.
	eventually(t, waitUp, "a connection error for the peer with the wrong password", func() (bool, string) {
		st, _ := peerStatusOf(s, "bad")
		return !st.Up && strings.Contains(st.LastError, "connecting"), fmt.Sprintf("%+v", st)
	})
	time.Sleep(3 * time.Second)
	if st, _ := peerStatusOf(s, "bad"); st.Up || bad.established("127.0.0.1") {
		t.Errorf("The session with the wrong password came up: %+v", st)
	}
	bad.waitPrefixes()

	// Change the password: the peer is re-created and comes up.
	pbad.Password = routerSecret
	if err := s.SetPeers([]Peer{pgood, pbad}); err != nil {
		t.Fatalf("SetPeers: %v", err)
	}
	bad.waitPrefixes("192.0.2.1/32")
	waitPeerUp(t, s, "bad")

	out := logs.all()
	for _, secret := range []string{rightPassword, routerSecret, wrongPassword} {
		if strings.Contains(out, secret) {
			t.Errorf("The log contains the password %q", secret)
		}
	}
}

// TestRoutesFromRoutersAreIgnored checks the import policy: what routers
// send never enters the speaker's RIB, is never passed on, and cannot
// displace the speaker's own path for the same prefix.
func TestRoutesFromRoutersAreIgnored(t *testing.T) {
	logs := &logCapture{}
	logs.dumpOnFailure(t)
	a := newRouter(t, "127.0.0.2", ebgpASN, "10.255.0.2")
	a.addNeighbor("127.0.0.1", speakerASN, neighborOpts{})
	b := newRouter(t, "127.0.0.3", speakerASN, "10.255.0.3")
	b.addNeighbor("127.0.0.1", speakerASN, neighborOpts{})
	// Router a offers the Service prefix too, and another one.
	a.originate("203.0.113.0/24")
	a.originate("192.0.2.1/32")
	s := startSpeaker(t, speakerConfig(logs))
	if err := s.SetPeers([]Peer{peerFor("a", a), peerFor("b", b)}); err != nil {
		t.Fatalf("SetPeers: %v", err)
	}
	if err := s.SetPaths([]Path{{Prefix: netip.MustParsePrefix("192.0.2.1/32"), LocalPref: u32(50)}}); err != nil {
		t.Fatalf("SetPaths: %v", err)
	}
	waitPeerUp(t, s, "a")
	waitPeerUp(t, s, "b")
	b.waitPrefixes("192.0.2.1/32")
	time.Sleep(settle)
	b.waitPrefixes("192.0.2.1/32")
	if got := b.routes()["192.0.2.1/32"]; got.NextHop != "127.0.0.1" || got.ASPath != "" {
		t.Errorf("Router b's route for the Service = %+v, want the speaker's own", got)
	}
	var rib []string
	err := s.gobgp.ListPath(t.Context(), &api.ListPathRequest{TableType: api.TableType_GLOBAL, Family: familyIPv4()}, func(d *api.Destination) {
		for range d.GetPaths() {
			rib = append(rib, d.GetPrefix())
		}
	})
	if err != nil {
		t.Fatalf("ListPath: %v", err)
	}
	if !slices.Equal(rib, []string{"192.0.2.1/32"}) {
		t.Errorf("The speaker's RIB has paths for %v, want only its own 192.0.2.1/32", rib)
	}
	if n := a.neighbor("127.0.0.1").GetAfiSafis()[0].GetState().GetAdvertised(); n == 0 {
		t.Errorf("Router a advertised nothing; the test proves nothing")
	}
}

// TestRunning: Running is true from gobgp's start to the end of Run.
func TestRunning(t *testing.T) {
	logs := &logCapture{}
	logs.dumpOnFailure(t)
	s, err := New(speakerConfig(logs))
	if err != nil {
		t.Fatal(err)
	}
	if s.Running() {
		t.Fatal("Running before Run")
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	eventually(t, waitUp, "the speaker to run", func() (bool, string) { return s.Running(), "not running" })
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
	if s.Running() {
		t.Error("Running after Run returned")
	}
}
