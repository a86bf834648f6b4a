//go:build linux

package l2

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"testing/fstest"
	"time"

	"github.com/go-logr/logr/testr"
	"github.com/mdlayher/arp"
	"github.com/mdlayher/ndp"
	"golang.org/x/sys/unix"
)

// TestNetns runs the announcer with its production sockets on one end of a
// veth pair between two network namespaces, and a client on the other end:
// resolution over ARP and NDP, gratuitous announcements, release, conflict
// detection and carrier loss. It needs root; it skips without it, except
// when CI=true, where it fails. It uses only documentation addresses
// (192.0.2.0/24, 2001:db8::/64) and removes the namespaces it created.
func TestNetns(t *testing.T) {
	requireNetns(t)
	suffix := strconv.Itoa(os.Getpid())
	nsA, nsB := "lbs-l2a-"+suffix, "lbs-l2b-"+suffix
	vethA, vethB := "l2a"+suffix, "l2b"+suffix
	setUpVethPair(t, nsA, nsB, vethA, vethB)

	var macA, macB net.HardwareAddr
	var ifiB *net.Interface
	if err := inNetns(nsA, func() error {
		ifi, err := net.InterfaceByName(vethA)
		if err == nil {
			macA = ifi.HardwareAddr
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}

	// The client side, in B: the kernel would do, but a socket of our own
	// also sees the gratuitous announcements and can claim the address.
	var client *arp.Client
	var nc *ndp.Conn
	if err := inNetns(nsB, func() error {
		var err error
		if ifiB, err = net.InterfaceByName(vethB); err != nil {
			return err
		}
		macB = ifiB.HardwareAddr
		if client, err = arp.Dial(ifiB); err != nil {
			return fmt.Errorf("opening ARP client: %w", err)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	// The link-local address appears once the pair has carrier.
	eventually(t, "a link-local address on "+vethB+" for the NDP client", func() bool {
		return inNetns(nsB, func() error {
			var err error
			nc, _, err = ndp.Listen(ifiB, ndp.LinkLocal)
			return err
		}) == nil
	})
	t.Cleanup(func() {
		_ = client.Close()
		_ = nc.Close()
	})

	var mu sync.Mutex
	var conflicts []conflictEvent
	var health []Health
	a, err := newAnnouncer(Config{
		Logger:         testr.NewWithOptions(t, testr.Options{Verbosity: 2}),
		RescanInterval: 100 * time.Millisecond,
		OnConflict: func(ip netip.Addr, ifname string, ourMAC, theirMAC net.HardwareAddr) {
			mu.Lock()
			defer mu.Unlock()
			conflicts = append(conflicts, conflictEvent{ip: ip, ifname: ifname, ourMAC: ourMAC.String(), theirMAC: theirMAC.String()})
		},
		OnHealth: func(h Health) {
			mu.Lock()
			defer mu.Unlock()
			health = append(health, h)
		},
	}, netnsLinks{ns: nsA}, netnsDialer{ns: nsA})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	eventually(t, "the announcer to use "+vethA, func() bool { return a.Health().IsRunning(vethA) })

	// Not owned yet: no answer.
	if mac, err := resolve(client, vip4); err == nil {
		t.Fatalf("%s resolved to %s before it was owned", vip4, mac)
	}

	a.SetOwned(map[netip.Addr]Target{vip4: {}, vip6: {Interfaces: []string{vethA}}})
	eventually(t, "both addresses announced", func() bool { return len(a.Announcing()) == 2 })

	t.Run("gratuitous", func(t *testing.T) {
		var ops []arp.Operation
		deadline := time.Now().Add(2 * time.Second)
		for len(ops) < 2 && time.Now().Before(deadline) {
			_ = client.SetReadDeadline(deadline)
			p, _, err := client.Read()
			if err != nil {
				break
			}
			if p.SenderIP == vip4 && p.TargetIP == vip4 && bytes.Equal(p.SenderHardwareAddr, macA) {
				ops = append(ops, p.Operation)
			}
		}
		if !slices.Contains(ops, arp.OperationRequest) || !slices.Contains(ops, arp.OperationReply) {
			t.Errorf("Received gratuitous ARP %v, want a request and a reply", ops)
		}
		if na := readNA(nc, vip6, 2*time.Second); na == nil || na.Solicited || !na.Override ||
			!bytes.Equal(linkLayerAddr(na.Options, ndp.Target), macA) {
			t.Errorf("Unsolicited Neighbor Advertisement %+v, want Override with %s", na, macA)
		}
	})

	t.Run("resolution", func(t *testing.T) {
		if mac, err := resolve(client, vip4); err != nil || !bytes.Equal(mac, macA) {
			t.Errorf("ARP resolution of %s = %s, %v; want %s", vip4, mac, err, macA)
		}
		if na := solicit(t, nc, ifiB, vip6); na == nil || !na.Solicited || !na.Override ||
			!bytes.Equal(linkLayerAddr(na.Options, ndp.Target), macA) {
			t.Errorf("Neighbor Advertisement %+v, want Solicited and Override with %s", na, macA)
		}
		// The kernel of B agrees.
		out, _ := exec.Command("ip", "netns", "exec", nsB, "ping", "-c1", "-W1", vip4.String()).CombinedOutput()
		neigh, err := exec.Command("ip", "-n", nsB, "neigh", "show", vip4.String(), "dev", vethB).CombinedOutput()
		if err != nil || !strings.Contains(string(neigh), macA.String()) {
			t.Errorf("Neighbour table of B: %s (%v), want %s; ping said %s", neigh, err, macA, out)
		}
	})

	t.Run("conflict", func(t *testing.T) {
		claim, err := arp.NewPacket(arp.OperationReply, macB, vip4, broadcastMAC(), vip4)
		if err != nil {
			t.Fatal(err)
		}
		if err := client.SetWriteDeadline(time.Now().Add(time.Second)); err != nil {
			t.Fatal(err)
		}
		for range 3 {
			if err := client.WriteTo(claim, broadcastMAC()); err != nil {
				t.Fatal(err)
			}
		}
		want := conflictEvent{ip: vip4, ifname: vethA, ourMAC: macA.String(), theirMAC: macB.String()}
		eventually(t, "the conflict report", func() bool {
			mu.Lock()
			defer mu.Unlock()
			return len(conflicts) > 0
		})
		time.Sleep(100 * time.Millisecond)
		mu.Lock()
		got := slices.Clone(conflicts)
		mu.Unlock()
		if !slices.Equal(got, []conflictEvent{want}) {
			t.Errorf("Conflicts %+v, want once %+v", got, want)
		}
	})

	t.Run("release", func(t *testing.T) {
		a.SetOwned(nil)
		// Forget what arrived before the release (the tail of the
		// gratuitous schedule).
		drain(client, nc)
		if mac, err := resolve(client, vip4); err == nil {
			t.Errorf("%s still resolves to %s after the release", vip4, mac)
		}
		if na := solicit(t, nc, ifiB, vip6); na != nil {
			t.Errorf("Neighbor Advertisement %+v after the release", na)
		}
	})

	t.Run("carrier loss", func(t *testing.T) {
		runIP(t, "-n", nsB, "link", "set", vethB, "down")
		eventually(t, vethA+" reported without carrier", func() bool {
			mu.Lock()
			defer mu.Unlock()
			last := health[len(health)-1]
			return slices.Contains(last.NoCarrier, vethA) && !last.IsRunning(vethA)
		})
		runIP(t, "-n", nsB, "link", "set", vethB, "up")
		eventually(t, vethA+" reported running again", func() bool { return a.Health().IsRunning(vethA) })
	})

	st := a.Stats()
	t.Logf("Stats: %+v", st)
	if st.ARP.RepliesSent == 0 || st.NDP.RepliesSent == 0 || st.ARP.GratuitousSent == 0 || st.NDP.GratuitousSent == 0 || st.ARP.Conflicts == 0 {
		t.Errorf("Stats %+v, want replies, gratuitous and conflicts counted", st)
	}
}

// requireNetns skips the test (loudly) unless it can create network
// namespaces; with CI=true it fails instead.
func requireNetns(t *testing.T) {
	t.Helper()
	problem := ""
	if os.Geteuid() != 0 {
		problem = "not root"
	} else {
		for _, tool := range []string{"ip", "ping"} {
			if _, err := exec.LookPath(tool); err != nil {
				problem = "no " + tool + " command"
			}
		}
	}
	if problem == "" {
		return
	}
	msg := "the network namespace test of speaker/l2 cannot run (" + problem + "): it needs root, iproute2 and ping"
	if os.Getenv("CI") == "true" {
		t.Fatal("FAILING because CI=true: " + msg)
	}
	t.Skip("SKIPPING: " + msg)
}

// setUpVethPair creates two namespaces joined by a veth pair with
// documentation addresses (.1 / ::1 in A, .2 / ::2 in B), without DAD, and
// removes the namespaces (and with them the pair) at cleanup.
func setUpVethPair(t *testing.T, nsA, nsB, vethA, vethB string) {
	t.Helper()
	for _, ns := range []string{nsA, nsB} {
		runIP(t, "netns", "add", ns)
		t.Cleanup(func() {
			if out, err := exec.Command("ip", "netns", "del", ns).CombinedOutput(); err != nil {
				t.Errorf("Removing namespace %s: %v: %s", ns, err, out)
			}
		})
		// Before the veth exists, so that its link-local address is usable
		// at once.
		if err := inNetns(ns, func() error {
			for _, f := range []string{"all", "default"} {
				if err := os.WriteFile("/proc/sys/net/ipv6/conf/"+f+"/accept_dad", []byte("0"), 0o644); err != nil {
					return err
				}
			}
			return nil
		}); err != nil {
			t.Fatalf("Disabling DAD in %s: %v", ns, err)
		}
	}
	runIP(t, "link", "add", vethA, "netns", nsA, "type", "veth", "peer", "name", vethB, "netns", nsB)
	for _, s := range []struct{ ns, dev, v4, v6 string }{
		{nsA, vethA, "192.0.2.1/24", "2001:db8::1/64"},
		{nsB, vethB, "192.0.2.2/24", "2001:db8::2/64"},
	} {
		runIP(t, "-n", s.ns, "addr", "add", s.v4, "dev", s.dev)
		runIP(t, "-n", s.ns, "addr", "add", s.v6, "dev", s.dev, "nodad")
		runIP(t, "-n", s.ns, "link", "set", s.dev, "up")
		runIP(t, "-n", s.ns, "link", "set", "lo", "up")
	}
}

func runIP(t *testing.T, args ...string) {
	t.Helper()
	if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
		t.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, out)
	}
}

// inNetns runs fn on an OS thread inside the named network namespace.
// Sockets opened by fn stay in that namespace. The thread is never unlocked:
// it exits with its goroutine, so the namespace cannot leak to other
// goroutines.
func inNetns(ns string, fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		f, err := os.Open(filepath.Join("/run/netns", ns))
		if err != nil {
			errc <- err
			return
		}
		defer f.Close()
		if err := unix.Setns(int(f.Fd()), unix.CLONE_NEWNET); err != nil {
			errc <- fmt.Errorf("entering namespace %s: %w", ns, err)
			return
		}
		errc <- fn()
	}()
	return <-errc
}

// netnsLinks lists the interfaces of a namespace. sysfs shows the host's
// namespace, so it is not consulted.
type netnsLinks struct{ ns string }

func (n netnsLinks) links() ([]link, error) {
	var out []link
	err := inNetns(n.ns, func() error {
		ifis, err := net.Interfaces()
		out = linksFrom(ifis, fstest.MapFS{})
		return err
	})
	return out, err
}

// netnsDialer opens the production sockets inside a namespace.
type netnsDialer struct{ ns string }

func (n netnsDialer) dialARP(l link) (net.PacketConn, error) {
	var c net.PacketConn
	err := inNetns(n.ns, func() error {
		var err error
		c, err = osDialer{}.dialARP(l)
		return err
	})
	return c, err
}

func (n netnsDialer) dialNDP(l link) (ndpConn, error) {
	var c ndpConn
	err := inNetns(n.ns, func() error {
		var err error
		c, err = osDialer{}.dialNDP(l)
		return err
	})
	return c, err
}

func resolve(c *arp.Client, ip netip.Addr) (net.HardwareAddr, error) {
	if err := c.SetDeadline(time.Now().Add(time.Second)); err != nil {
		return nil, err
	}
	return c.Resolve(ip)
}

// solicit sends a Neighbor Solicitation for target to its solicited-node
// group and returns the advertisement that answers it, or nil.
func solicit(t *testing.T, c *ndp.Conn, ifi *net.Interface, target netip.Addr) *ndp.NeighborAdvertisement {
	t.Helper()
	if err := c.WriteTo(solicitation(target, ifi.HardwareAddr), nil, solicitedNode(target)); err != nil {
		t.Fatalf("Sending Neighbor Solicitation: %v", err)
	}
	return readNA(c, target, time.Second)
}

func readNA(c *ndp.Conn, target netip.Addr, wait time.Duration) *ndp.NeighborAdvertisement {
	deadline := time.Now().Add(wait)
	for {
		if err := c.SetReadDeadline(deadline); err != nil {
			return nil
		}
		m, _, _, err := c.ReadFrom()
		if err != nil {
			// Timed out, or the socket failed: no advertisement.
			return nil
		}
		if na, ok := m.(*ndp.NeighborAdvertisement); ok && na.TargetAddress == target {
			return na
		}
	}
}

// drain reads and drops whatever the client sockets hold.
func drain(c *arp.Client, nc *ndp.Conn) {
	for {
		_ = c.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
		if _, _, err := c.Read(); err != nil {
			break
		}
	}
	for {
		_ = nc.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
		if _, _, _, err := nc.ReadFrom(); err != nil {
			break
		}
	}
}
