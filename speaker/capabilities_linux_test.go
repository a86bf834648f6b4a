//go:build linux

package speaker

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/go-logr/logr/testr"
	"golang.org/x/sys/unix"

	"github.com/lbstack/lbstack/internal/render"
	"github.com/lbstack/lbstack/internal/testenv"
	"github.com/lbstack/lbstack/speaker/bfd"
	"github.com/lbstack/lbstack/speaker/bgp"
	"github.com/lbstack/lbstack/speaker/l2"
	"github.com/lbstack/lbstack/speaker/membership"
)

// capsChildEnv marks the child process of TestSocketsWithSpeakerCapabilities;
// its value says what the child must find: "granted" (every socket opens)
// or "denied" (the layer-2 sockets fail, the rest opens).
const capsChildEnv = "LBSTACK_CAPS_CHILD"

// TestSocketsWithSpeakerCapabilities opens every kind of socket the
// speaker opens — the layer-2 announcer's ARP and NDP sockets (with a
// gratuitous ARP, an unsolicited NA and a solicited-node multicast join),
// BFD listeners and senders with TTL 255, IP_RECVTTL and the
// network-control TOS (sessions come Up over IPv4 and IPv6), memberlist
// (two members join), an outgoing BGP connection and TCP-MD5 on a
// connecting socket — in a child process that runs as root with exactly
// the capabilities the rendered DaemonSet grants (render.SpeakerCapabilities)
// and no_new_privs, as runc starts the container. It runs the child again
// with no capability, where the layer-2 sockets must fail and the rest
// must still open, so the test proves which capability is needed. The
// child runs in a network namespace of its own with documentation
// addresses on a veth pair; the namespace is removed at the end. It needs
// root, iproute2 and util-linux's setpriv.
func TestSocketsWithSpeakerCapabilities(t *testing.T) {
	if mode := os.Getenv(capsChildEnv); mode != "" {
		capsChild(t, mode == "granted")
		return
	}
	if os.Geteuid() != 0 {
		testenv.Skip(t, "the capability test needs root (network namespaces, setpriv)")
	}
	for _, tool := range []string{"ip", "setpriv"} {
		if _, err := exec.LookPath(tool); err != nil {
			testenv.Skip(t, "the capability test needs %s", tool)
		}
	}
	ns := "lbs-caps-" + strconv.Itoa(os.Getpid())
	run := func(args ...string) {
		t.Helper()
		if out, err := exec.Command(args[0], args[1:]...).CombinedOutput(); err != nil {
			t.Fatalf("%s: %v: %s", strings.Join(args, " "), err, out)
		}
	}
	run("ip", "netns", "add", ns)
	t.Cleanup(func() {
		if out, err := exec.Command("ip", "netns", "del", ns).CombinedOutput(); err != nil {
			t.Errorf("removing namespace %s: %v: %s", ns, err, out)
		}
	})
	// DAD off before the veth exists, so its link-local addresses are
	// usable at once. (Inside the new namespace only.)
	run("ip", "netns", "exec", ns, "sh", "-c", "echo 0 > /proc/sys/net/ipv6/conf/all/accept_dad && echo 0 > /proc/sys/net/ipv6/conf/default/accept_dad")
	run("ip", "-n", ns, "link", "add", "lbs0", "type", "veth", "peer", "name", "lbs1")
	for _, a := range []struct{ dev, v4, v6 string }{{"lbs0", "192.0.2.1/24", "2001:db8::1/64"}, {"lbs1", "192.0.2.2/24", "2001:db8::2/64"}} {
		run("ip", "-n", ns, "addr", "add", a.v4, "dev", a.dev)
		run("ip", "-n", ns, "addr", "add", a.v6, "dev", a.dev, "nodad")
		run("ip", "-n", ns, "link", "set", a.dev, "up")
	}
	run("ip", "-n", ns, "link", "set", "lo", "up")

	granted := make([]string, 0, len(render.SpeakerCapabilities()))
	for _, c := range render.SpeakerCapabilities() {
		granted = append(granted, "+"+strings.ToLower(string(c)))
	}
	for _, tc := range []struct {
		mode, bounding string
	}{
		{"granted", "-all," + strings.Join(granted, ",")},
		{"denied", "-all"},
	} {
		t.Run(tc.mode, func(t *testing.T) {
			cmd := exec.Command("ip", "netns", "exec", ns,
				"setpriv", "--reuid=0", "--regid=0", "--clear-groups", "--no-new-privs",
				"--inh-caps=-all", "--bounding-set="+tc.bounding,
				os.Args[0], "-test.run=^TestSocketsWithSpeakerCapabilities$", "-test.v", "-test.count=1")
			cmd.Env = append(os.Environ(), capsChildEnv+"="+tc.mode)
			out, err := cmd.CombinedOutput()
			t.Logf("child with bounding set %s:\n%s", tc.bounding, out)
			if err != nil {
				t.Fatalf("child failed: %v", err)
			}
		})
	}
}

// capsChild is the child: it opens the sockets and checks the outcome.
func capsChild(t *testing.T, granted bool) {
	status, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.Lines(string(status)) {
		if strings.HasPrefix(line, "Cap") || strings.HasPrefix(line, "NoNewPrivs") || strings.HasPrefix(line, "Uid") {
			t.Log(strings.TrimSpace(line))
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	log := testr.NewWithOptions(t, testr.Options{Verbosity: 1})

	t.Run("layer 2", func(t *testing.T) {
		ann, err := l2.New(l2.Config{Logger: log.WithName("l2"), RescanInterval: 100 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		runCtx, stop := context.WithCancel(ctx)
		go func() { done <- ann.Run(runCtx) }()
		defer func() {
			stop()
			if err := <-done; err != nil {
				t.Error(err)
			}
		}()
		waitUntil(t, "the first scan", func() bool { return ann.Sockets().Scanned })
		ann.SetOwned(map[netip.Addr]l2.Target{
			netip.MustParseAddr("192.0.2.10"):   {Interfaces: []string{"lbs0"}},
			netip.MustParseAddr("2001:db8::10"): {Interfaces: []string{"lbs0"}},
		})
		st := ann.Sockets()
		t.Logf("sockets: %+v", st)
		if strings.Join(st.Interfaces, ",") != "lbs0,lbs1" {
			t.Fatalf("interfaces %v, want lbs0 and lbs1", st.Interfaces)
		}
		if !granted {
			if len(st.Failed) != 4 {
				t.Fatalf("without capabilities %d sockets failed, want ARP and NDP on both interfaces: %+v", len(st.Failed), st.Failed)
			}
			for _, f := range st.Failed {
				if !strings.Contains(f.Err, syscall.EPERM.Error()) {
					t.Errorf("%s on %s failed with %q, want EPERM", f.Protocol, f.Interface, f.Err)
				}
			}
			if JudgeReadiness(ReadinessState{L2: st})[ReadyLayer2] == nil {
				t.Error("the layer2 readiness check passes without the sockets")
			}
			return
		}
		if len(st.Failed) > 0 {
			t.Fatalf("sockets failed: %+v", st.Failed)
		}
		if err := JudgeReadiness(ReadinessState{L2: st})[ReadyLayer2]; err != nil {
			t.Errorf("layer2 readiness: %v", err)
		}
		waitUntil(t, "a gratuitous ARP and an unsolicited NA", func() bool {
			s := ann.Stats()
			return s.ARP.GratuitousSent > 0 && s.NDP.GratuitousSent > 0
		})
		if s := ann.Stats(); s.ARP.SendErrors+s.NDP.SendErrors > 0 {
			t.Errorf("send errors: %+v", s)
		}
		if got := ann.Announcing()[netip.MustParseAddr("2001:db8::10")]; len(got) != 1 {
			t.Errorf("the IPv6 address is announced on %v (joining its solicited-node group failed?)", got)
		}
	})

	t.Run("BFD", func(t *testing.T) {
		// One manager per end, each on its own address, with sessions
		// toward the other: Up needs TTL 255 sent and the TTL received.
		for _, pair := range [][2]string{{"192.0.2.1", "192.0.2.2"}, {"2001:db8::1", "2001:db8::2"}} {
			a, b := netip.MustParseAddr(pair[0]), netip.MustParseAddr(pair[1])
			ma := startBFD(ctx, t, a, b)
			startBFD(ctx, t, b, a)
			changes := ma.Subscribe(ctx)
			deadline := time.After(30 * time.Second)
			for up := false; !up; {
				select {
				case ch := <-changes:
					t.Logf("BFD %s → %s: %s → %s", a, b, ch.Old, ch.New)
					up = ch.New == bfd.StateUp
				case <-deadline:
					t.Fatalf("BFD session %s → %s not Up", a, b)
				}
			}
		}
	})

	t.Run("memberlist", func(t *testing.T) {
		var mems []*membership.Membership
		for i, addr := range []string{"192.0.2.1", "192.0.2.2"} {
			m, err := membership.New(membership.Config{NodeName: fmt.Sprintf("node-%d", i), BindAddr: addr, BindPort: 7946, Log: log.WithName("membership")})
			if err != nil {
				t.Fatal(err)
			}
			runCtx, stop := context.WithCancel(ctx)
			done := make(chan error, 1)
			go func() { done <- m.Run(runCtx) }()
			t.Cleanup(func() { stop(); <-done })
			mems = append(mems, m)
		}
		waitUntil(t, "both memberlists to run", func() bool { return mems[0].Live() != nil && mems[1].Live() != nil })
		if _, err := mems[0].Join([]string{"192.0.2.2:7946"}); err != nil {
			t.Fatal(err)
		}
		waitUntil(t, "two live members", func() bool { return len(mems[0].Live()) == 2 && len(mems[1].Live()) == 2 })
	})

	t.Run("BGP connects out", func(t *testing.T) {
		l, err := net.Listen("tcp", "192.0.2.2:1179")
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		accepted := make(chan error, 1)
		go func() {
			c, err := l.Accept()
			if err == nil {
				_ = c.Close()
			}
			accepted <- err
		}()
		spk, err := bgp.New(bgp.Config{RouterID: netip.MustParseAddr("192.0.2.1"), ASN: 64512, ListenPort: -1, Log: log.WithName("bgp")})
		if err != nil {
			t.Fatal(err)
		}
		runCtx, stop := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() { done <- spk.Run(runCtx) }()
		defer func() { stop(); <-done }()
		err = spk.SetPeers([]bgp.Peer{{Name: "router", Address: netip.MustParseAddr("192.0.2.2"), Port: 1179, PeerASN: 64513,
			SourceAddress: netip.MustParseAddr("192.0.2.1"), ConnectTime: time.Second}})
		if err != nil {
			t.Fatal(err)
		}
		select {
		case err := <-accepted:
			if err != nil {
				t.Fatal(err)
			}
		case <-time.After(30 * time.Second):
			t.Fatal("the BGP speaker did not connect")
		}
		if !spk.Running() {
			t.Error("the BGP speaker does not run")
		}
		// Remove the peer before stopping: gobgp's StopBgp races with a
		// session still opening (its own data race, seen with -race).
		if err := spk.SetPeers(nil); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("TCP-MD5 on a connecting socket", func(t *testing.T) {
		fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer unix.Close(fd)
		sig := unix.TCPMD5Sig{Keylen: 6}
		copy(sig.Key[:], "secret")
		sig.Addr.Family = unix.AF_INET
		copy(sig.Addr.Data[2:6], []byte{192, 0, 2, 2})
		err = unix.SetsockoptTCPMD5Sig(fd, unix.IPPROTO_TCP, unix.TCP_MD5SIG, &sig)
		switch {
		case errors.Is(err, unix.ENOPROTOOPT):
			t.Skip("this kernel has no TCP MD5 (ENOPROTOOPT), whatever the capabilities")
		case err != nil:
			t.Fatalf("TCP_MD5SIG: %v", err)
		}
	})
}

func startBFD(ctx context.Context, t *testing.T, local, peer netip.Addr) *bfd.Manager {
	t.Helper()
	m, err := bfd.NewManager(bfd.ManagerConfig{ListenAddr: local, Log: testr.New(t).WithName("bfd")})
	if err != nil {
		t.Fatalf("BFD on %s: %v", local, err)
	}
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- m.Run(runCtx) }()
	t.Cleanup(func() { stop(); <-done })
	if err := m.AddSession(bfd.SessionConfig{Peer: peer, Local: local, DesiredMinTx: 50 * time.Millisecond, RequiredMinRx: 50 * time.Millisecond}); err != nil {
		t.Fatalf("BFD session %s → %s: %v", local, peer, err)
	}
	return m
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
