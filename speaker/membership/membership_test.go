package membership

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"maps"
	"net/netip"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/go-logr/logr/funcr"
	"github.com/hashicorp/memberlist"
	testingclock "k8s.io/utils/clock/testing"
)

// These tests run real Memberships on 127.0.0.1. Their time bounds are
// generous (several times the expected figure) so that a loaded machine
// does not fail them; BenchmarkFailover measures.

var (
	testKey  = []byte("0123456789abcdef0123456789abcdef")
	otherKey = []byte("fedcba9876543210")
)

// testLogger logs to t until the test's cleanups end, and drops what
// memberlist's goroutines log after that.
func testLogger(t testing.TB) logr.Logger {
	var mu sync.RWMutex
	active := true
	t.Cleanup(func() {
		mu.Lock()
		defer mu.Unlock()
		active = false
	})
	return funcr.New(func(prefix, args string) {
		mu.RLock()
		defer mu.RUnlock()
		if active {
			t.Log(prefix, args)
		}
	}, funcr.Options{Verbosity: 1})
}

type testNode struct {
	t      testing.TB
	name   string
	m      *Membership
	cancel context.CancelFunc
	done   chan error
	once   sync.Once
}

// startNode runs a Membership named name on 127.0.0.1 with a free port and
// stops it (gracefully) when the test ends.
func startNode(t testing.TB, name string, key []byte, edit func(*Config)) *testNode {
	t.Helper()
	cfg := Config{NodeName: name, BindAddr: "127.0.0.1", SecretKey: key, Log: testLogger(t)}
	if edit != nil {
		edit(&cfg)
	}
	m, err := New(cfg)
	if err != nil {
		t.Fatalf("New(%s): %v", name, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	n := &testNode{t: t, name: name, m: m, cancel: cancel, done: make(chan error, 1)}
	go func() { n.done <- m.Run(ctx) }()
	<-m.started
	if !n.running() {
		cancel()
		t.Fatalf("Run(%s): %v", name, <-n.done)
	}
	t.Cleanup(n.stop)
	return n
}

func (n *testNode) running() bool { return n.memberlist() != nil }

func (n *testNode) memberlist() *memberlist.Memberlist {
	n.m.mu.Lock()
	defer n.m.mu.Unlock()
	return n.m.ml
}

// stop stops the node gracefully: goodbye, leave, shutdown.
func (n *testNode) stop() {
	n.once.Do(func() {
		n.cancel()
		if err := <-n.done; err != nil {
			n.t.Errorf("Run(%s): %v", n.name, err)
		}
	})
}

// crash stops the node as a crash would: its heartbeats stop and memberlist
// shuts down without a goodbye or a leave.
func (n *testNode) crash() {
	n.m.noLeave.Store(true)
	n.stop()
}

func (n *testNode) addr() string {
	n.m.mu.Lock()
	defer n.m.mu.Unlock()
	return n.m.members[n.name].addr.String()
}

// heard reports whether the node's detector judges peer: its heartbeat has
// arrived.
func (n *testNode) heard(peer string) bool {
	n.m.mu.Lock()
	defer n.m.mu.Unlock()
	_, ok := n.m.det.peers[peer]
	return ok
}

func (n *testNode) debug() string {
	n.m.mu.Lock()
	defer n.m.mu.Unlock()
	return fmt.Sprintf("%s watches %v, is watched by %v, judges %v", n.name,
		slices.Sorted(maps.Keys(n.m.eligible)), slices.Sorted(maps.Keys(n.m.watchers)), slices.Sorted(maps.Keys(n.m.det.peers)))
}

func (n *testNode) live() []string {
	var names []string
	for _, m := range n.m.Live() {
		names = append(names, m.Name)
	}
	return names
}

func (n *testNode) sees(peer string) bool { return slices.Contains(n.live(), peer) }

// waitFor polls cond every millisecond until it holds and returns how long
// that took; it fails the test after timeout.
func waitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for !cond() {
		if time.Since(start) > timeout {
			t.Fatalf("Timed out after %s waiting until %s", timeout, what)
		}
		time.Sleep(time.Millisecond)
	}
	return time.Since(start)
}

// startCluster starts the named nodes, joins them, and waits until each
// sees all and has heard every other's heartbeat.
func startCluster(t testing.TB, key []byte, names ...string) []*testNode {
	t.Helper()
	nodes := make([]*testNode, len(names))
	for i, name := range names {
		nodes[i] = startNode(t, name, key, nil)
	}
	for _, n := range nodes[1:] {
		if _, err := n.m.Join([]string{nodes[0].addr()}); err != nil {
			t.Fatalf("Join(%s): %v", n.name, err)
		}
	}
	waitClusterFormed(t, nodes)
	return nodes
}

func waitClusterFormed(t testing.TB, nodes []*testNode) {
	t.Helper()
	start := time.Now()
	for {
		missing := formed(nodes)
		if missing == "" {
			return
		}
		if time.Since(start) > 10*time.Second {
			t.Fatalf("Timed out waiting for the cluster to form: %s", missing)
		}
		time.Sleep(time.Millisecond)
	}
}

// formed says what is missing for the nodes to see and hear each other.
func formed(nodes []*testNode) string {
	for _, n := range nodes {
		for _, p := range nodes {
			switch {
			case !n.sees(p.name):
				return fmt.Sprintf("%s does not see %s (it sees %q)", n.name, p.name, n.live())
			case p != n && !n.heard(p.name):
				return fmt.Sprintf("%s has not heard %s (%s; %s)", n.name, p.name, n.debug(), p.debug())
			}
		}
	}
	return ""
}

func drain(c <-chan struct{}) {
	select {
	case <-c:
	default:
	}
}

func TestClusterDetectsCrash(t *testing.T) {
	nodes := startCluster(t, testKey, "a", "b", "c", "d")
	for _, n := range nodes {
		if got, want := n.live(), []string{"a", "b", "c", "d"}; !slices.Equal(got, want) {
			t.Fatalf("%s: Live = %q, want %q", n.name, got, want)
		}
	}
	a := nodes[0]
	drain(a.m.Changed())

	nodes[3].crash()
	// memberlist alone needs about 5 s; the heartbeats 0.3 to 0.5 s.
	took := waitFor(t, 3*time.Second, "the others drop the crashed node", func() bool {
		for _, n := range nodes[:3] {
			if n.sees("d") {
				return false
			}
		}
		return true
	})
	t.Logf("Crash detected by all in %s", took)
	select {
	case <-a.m.Changed():
	default:
		t.Error("Changed was not signalled")
	}
	for _, n := range nodes[:3] {
		if got, want := n.live(), []string{"a", "b", "c"}; !slices.Equal(got, want) {
			t.Errorf("%s: Live = %q, want %q", n.name, got, want)
		}
		d, ok := n.m.Departure("d")
		if !ok || d.Graceful || d.LastHeard.IsZero() || !d.At.After(d.LastHeard) {
			t.Errorf("%s: Departure(d) = %+v, %v; want a failure with its last heartbeat before it", n.name, d, ok)
		}
	}
	if _, ok := a.m.Departure("b"); ok {
		t.Error("a live member has a departure")
	}
}

func TestGracefulLeave(t *testing.T) {
	nodes := startCluster(t, testKey, "a", "b", "c")
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		nodes[2].stop()
	}()
	// The goodbye is one packet: tens of milliseconds. Without it,
	// memberlist gossips the leave at its next gossip interval.
	took := waitFor(t, 2*time.Second, "the others drop the node that left", func() bool {
		return !nodes[0].sees("c") && !nodes[1].sees("c")
	})
	t.Logf("Leave seen by all after %s", took)
	for _, n := range nodes[:2] {
		if d, ok := n.m.Departure("c"); !ok || !d.Graceful {
			t.Errorf("%s: Departure(c) = %+v, %v; want graceful", n.name, d, ok)
		}
	}
	<-stopped
	if nodes[2].m.Live() != nil {
		t.Errorf("Live on a stopped node = %v, want nil", nodes[2].m.Live())
	}
}

// TestGoodbye checks the goodbye handling on its own: it drops the sender at
// once, heartbeats it sent before are ignored, and a new run of it is back.
func TestGoodbye(t *testing.T) {
	nodes := startCluster(t, testKey, "a", "b")
	a, b := nodes[0], nodes[1]
	b.m.mu.Lock()
	epoch, seq := b.m.epoch, b.m.seq
	b.m.mu.Unlock()

	// Far ahead of b's sequence: b's real heartbeats all count as sent
	// before it.
	a.m.receive(message{typ: msgLeave, epoch: epoch, seq: seq + 1000, name: "b"}.appendTo(nil))
	if a.sees("b") {
		t.Fatal("b still live right after its goodbye")
	}
	time.Sleep(5 * DefaultHeartbeatInterval)
	if a.sees("b") {
		t.Fatal("b live again after heartbeats older than its goodbye")
	}
	a.m.receive(message{typ: msgHeartbeat, epoch: epoch + 1, seq: 1, name: "b"}.appendTo(nil))
	if !a.sees("b") {
		t.Error("b not live after a heartbeat from a new run")
	}
}

// TestMemberlistFailureOverruledByHeartbeats: memberlist reports a member
// failed — as it does when a node that was cut off heals and gossips the
// "dead" it concluded meanwhile — while the member's heartbeats arrive:
// the member stays live (no takeover, no second announcer). Once its
// heartbeats stop, it is declared dead as ever.
func TestMemberlistFailureOverruledByHeartbeats(t *testing.T) {
	nodes := startCluster(t, testKey, "a", "b")
	a, b := nodes[0], nodes[1]
	waitFor(t, 5*time.Second, "a hears b's heartbeats", func() bool { return a.heard("b") })
	a.m.memberDown(&memberlist.Node{Name: "b", State: memberlist.StateDead})
	if !a.sees("b") {
		t.Fatal("b dropped on memberlist's word although its heartbeats arrive")
	}
	time.Sleep(10 * DefaultHeartbeatInterval)
	if !a.sees("b") {
		t.Fatal("b dropped later although its heartbeats arrive")
	}
	if n := a.m.overruled.Load(); n != 1 {
		t.Errorf("overruled %d memberlist failures, want 1", n)
	}
	b.crash()
	took := waitFor(t, 5*time.Second, "a drops b once its heartbeats stop", func() bool { return !a.sees("b") })
	t.Logf("b dropped %s after its crash", took)
}

func TestMetadataPropagates(t *testing.T) {
	a := startNode(t, "a", testKey, nil)
	b, err := New(Config{NodeName: "b", BindAddr: "127.0.0.1", SecretKey: testKey, Log: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.SetMeta([]byte("initial")); err != nil {
		t.Fatalf("SetMeta before Run: %v", err)
	}
	bn := runNode(t, b)
	if _, err := bn.m.Join([]string{a.addr()}); err != nil {
		t.Fatal(err)
	}
	metaOf := func(n *testNode, name string) string {
		for _, m := range n.m.Live() {
			if m.Name == name {
				return string(m.Meta)
			}
		}
		return "<not live>"
	}
	waitFor(t, 5*time.Second, "a sees b's initial metadata", func() bool { return metaOf(a, "b") == "initial" })

	drain(a.m.Changed())
	start := time.Now()
	if err := b.SetMeta([]byte("carrier-lost")); err != nil {
		t.Fatalf("SetMeta: %v", err)
	}
	waitFor(t, 5*time.Second, "a sees b's new metadata", func() bool { return metaOf(a, "b") == "carrier-lost" })
	took := time.Since(start)
	t.Logf("Metadata propagated in %s", took)
	select {
	case <-a.m.Changed():
	default:
		t.Error("Changed was not signalled for a metadata change")
	}
	if got := metaOf(bn, "b"); got != "carrier-lost" {
		t.Errorf("b's own metadata = %q", got)
	}
	if metaOf(a, "a") != "" {
		t.Errorf("a's metadata = %q, want none", metaOf(a, "a"))
	}
	if err := b.SetMeta(make([]byte, MaxMetaSize+1)); err == nil {
		t.Error("SetMeta accepted metadata over the limit")
	}
}

// runNode runs an already created Membership like startNode.
func runNode(t testing.TB, m *Membership) *testNode {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	n := &testNode{t: t, name: m.cfg.NodeName, m: m, cancel: cancel, done: make(chan error, 1)}
	go func() { n.done <- m.Run(ctx) }()
	<-m.started
	if !n.running() {
		cancel()
		t.Fatalf("Run(%s): %v", n.name, <-n.done)
	}
	t.Cleanup(n.stop)
	return n
}

func TestOutsiderNotAdmitted(t *testing.T) {
	tests := map[string][]byte{
		"wrong key": otherKey,
		"no key":    nil,
	}
	for name, key := range tests {
		t.Run(name, func(t *testing.T) {
			nodes := startCluster(t, testKey, "a", "b")
			x := startNode(t, "x", key, nil)
			if _, err := x.m.Join([]string{nodes[0].addr()}); err == nil {
				t.Error("outsider joined the cluster")
			}
			if _, err := nodes[1].m.Join([]string{x.addr()}); err == nil {
				t.Error("member joined the outsider")
			}
			time.Sleep(5 * DefaultHeartbeatInterval)
			for _, n := range nodes {
				if got, want := n.live(), []string{"a", "b"}; !slices.Equal(got, want) {
					t.Errorf("%s: Live = %q, want %q", n.name, got, want)
				}
			}
			if got, want := x.live(), []string{"x"}; !slices.Equal(got, want) {
				t.Errorf("outsider: Live = %q, want %q", got, want)
			}
		})
	}
}

// TestSilentMemberStaysLive: a member whose heartbeats never arrive (here a
// bare memberlist node) is left to memberlist: it is not declared dead.
func TestSilentMemberStaysLive(t *testing.T) {
	nodes := startCluster(t, testKey, "a", "b")
	c := memberlist.DefaultLANConfig()
	c.Name, c.BindAddr, c.BindPort = "silent", "127.0.0.1", 0
	c.SecretKey, c.Label = testKey, clusterLabel
	c.Logger = log.New(io.Discard, "", 0)
	silent, err := memberlist.Create(c)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = silent.Shutdown() })
	if _, err := silent.Join([]string{nodes[0].addr()}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "all see the silent member", func() bool {
		return nodes[0].sees("silent") && nodes[1].sees("silent")
	})
	time.Sleep(15 * DefaultHeartbeatInterval)
	for _, n := range nodes {
		if !n.sees("silent") {
			t.Errorf("%s dropped the silent member", n.name)
		}
	}
}

// TestPausedMemberDroppedAndBack pauses a node's heartbeats (its clock
// stops) while its memberlist keeps answering: the others drop it, then
// take it back when it resumes.
func TestPausedMemberDroppedAndBack(t *testing.T) {
	nodes := startCluster(t, testKey, "a", "b")
	fake := testingclock.NewFakeClock(time.Now())
	p := startNode(t, "p", testKey, func(c *Config) { c.Clock = fake })

	var mu sync.Mutex
	paused := false
	ctx, cancel := context.WithCancel(context.Background())
	stepped := make(chan struct{})
	go func() {
		defer close(stepped)
		tick := time.NewTicker(5 * time.Millisecond)
		defer tick.Stop()
		last := time.Now()
		for {
			select {
			case <-ctx.Done():
				return
			case now := <-tick.C:
				mu.Lock()
				if !paused {
					fake.Step(now.Sub(last))
				}
				mu.Unlock()
				last = now
			}
		}
	}()
	t.Cleanup(func() { cancel(); <-stepped })
	setPaused := func(v bool) {
		mu.Lock()
		defer mu.Unlock()
		paused = v
	}

	if _, err := p.m.Join([]string{nodes[0].addr()}); err != nil {
		t.Fatal(err)
	}
	waitClusterFormed(t, append(nodes, p))

	setPaused(true)
	took := waitFor(t, 3*time.Second, "the others drop the paused node", func() bool {
		return !nodes[0].sees("p") && !nodes[1].sees("p")
	})
	t.Logf("Paused node dropped after %s", took)
	setPaused(false)
	took = waitFor(t, 3*time.Second, "the others take the node back", func() bool {
		return nodes[0].sees("p") && nodes[1].sees("p")
	})
	t.Logf("Resumed node back after %s", took)
	if got, want := p.live(), []string{"a", "b", "p"}; !slices.Equal(got, want) {
		t.Errorf("paused node: Live = %q, want %q", got, want)
	}
}

// TestWatchedAndReplies: a node that watches nobody still answers the
// heartbeats of those that watch it, and judges nobody itself.
func TestWatchedAndReplies(t *testing.T) {
	a := startNode(t, "a", testKey, nil)
	a.m.SetWatched([]string{})
	b := startNode(t, "b", testKey, nil)
	c := startNode(t, "c", testKey, nil)
	for _, n := range []*testNode{b, c} {
		if _, err := n.m.Join([]string{a.addr()}); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, 10*time.Second, "b and c see all and hear each other and a", func() bool {
		for _, n := range []*testNode{a, b, c} {
			if len(n.live()) != 3 {
				return false
			}
		}
		return b.heard("a") && b.heard("c") && c.heard("a") && c.heard("b")
	})
	time.Sleep(3 * DefaultHeartbeatInterval)
	if a.heard("b") || a.heard("c") {
		t.Error("a judges peers it does not watch")
	}

	c.crash()
	took := waitFor(t, 3*time.Second, "b drops c", func() bool { return !b.sees("c") })
	t.Logf("Watcher dropped the crashed node after %s", took)
	if !a.sees("c") {
		t.Error("a, which does not watch c, dropped it before memberlist could")
	}

	// Watching again: a judges b from its next heartbeat.
	a.m.SetWatched(nil)
	waitFor(t, 3*time.Second, "a hears b", func() bool { return a.heard("b") })
}

func TestMalformedMessagesIgnored(t *testing.T) {
	nodes := startCluster(t, testKey, "a", "b")
	a, b := nodes[0], nodes[1]
	garbage := [][]byte{
		nil,
		{0},
		{0xff, 0, 1, 2},
		bytes.Repeat([]byte{1}, headerLen),
		append(message{typ: msgHeartbeat, name: "b"}.appendTo(nil)[:headerLen-1], 200),
		message{typ: 9, name: "b"}.appendTo(nil),
		message{typ: msgLeave, name: "a"}.appendTo(nil), // from itself
	}
	for _, g := range garbage {
		a.m.receive(g)
		if err := b.memberlist().SendToAddress(memberlist.Address{Addr: a.addr(), Name: "a"}, g); err != nil {
			t.Fatalf("sending: %v", err)
		}
	}
	time.Sleep(3 * DefaultHeartbeatInterval)
	if got, want := a.live(), []string{"a", "b"}; !slices.Equal(got, want) {
		t.Errorf("Live = %q, want %q", got, want)
	}
}

func TestLifecycleErrors(t *testing.T) {
	m, err := New(Config{NodeName: "a", BindAddr: "127.0.0.1", Log: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.Join([]string{"127.0.0.1:1"}); !errors.Is(err, ErrNotRunning) {
		t.Errorf("Join before Run = %v, want ErrNotRunning", err)
	}
	if m.Live() != nil {
		t.Error("Live before Run is not nil")
	}
	a := runNode(t, m)
	select {
	case <-m.Changed():
	default:
		t.Error("Changed not signalled on start")
	}
	// A cancelled context: should Run wrongly start, it stops at once.
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	if err := m.Run(cancelled); err == nil {
		t.Error("second Run succeeded")
	}

	// Another node on the same port cannot start.
	port := netip.MustParseAddrPort(a.addr()).Port()
	busy, err := New(Config{NodeName: "b", BindAddr: "127.0.0.1", BindPort: int(port), Log: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	if err := busy.Run(cancelled); err == nil {
		t.Error("Run on a busy port succeeded")
	}

	// Joining live members again contacts nobody.
	b := startNode(t, "b", nil, nil)
	if _, err := b.m.Join([]string{a.addr()}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "a and b see each other", func() bool { return a.sees("b") && b.sees("a") })
	// A bare IP means the configured port: "127.0.0.1" is b itself.
	if n, err := b.m.Join([]string{a.addr(), b.addr(), "127.0.0.1"}); n != 0 || err != nil {
		t.Errorf("Join of live members = %d, %v; want 0, nil", n, err)
	}
}

// TestUnwatchedDeadStaysDead: the speaker stops watching a peer once it is
// dead (it is no longer a candidate). The peer must stay dead until
// memberlist drops it or it heartbeats again — forgetting it would make a
// crashed node live again and hand it addresses.
func TestUnwatchedDeadStaysDead(t *testing.T) {
	nodes := startCluster(t, testKey, "a", "b", "c")
	a := nodes[0]
	nodes[2].crash()
	waitFor(t, 3*time.Second, "a drops the crashed node", func() bool { return !a.sees("c") })
	a.m.SetWatched([]string{"b"})
	// Several heartbeat rounds: long enough for a to apply the new set,
	// short of memberlist's own failure detection (seconds).
	time.Sleep(500 * time.Millisecond)
	if a.sees("c") {
		t.Fatalf("a crashed node came back to life when it stopped being watched: %s", a.debug())
	}
}

// TestUnwatchedDeadRevivedWhenPathHeals: a declared b dead while it watched
// it (a's path from b lost packets), then stopped watching it. b watches
// other nodes, so only a's marked heartbeats tell it that a takes it for
// dead: b must answer them, or a keeps b dead for as long as memberlist
// keeps it — a live node that can never be elected.
func TestUnwatchedDeadRevivedWhenPathHeals(t *testing.T) {
	nodes := startCluster(t, testKey, "a", "b", "c")
	a, b := nodes[0], nodes[1]
	a.m.SetWatched([]string{"b"})
	b.m.SetWatched([]string{"c"})
	drop := func(name string) bool { return name == "b" }
	a.m.dropFrom.Store(&drop)
	waitFor(t, 3*time.Second, "a declares b dead", func() bool { return !a.sees("b") })
	a.m.SetWatched([]string{"c"})
	// Longer than b's reply window for a's earlier watching heartbeats.
	time.Sleep(time.Duration(replyTimeouts*DefaultMissedHeartbeats)*DefaultHeartbeatInterval + 500*time.Millisecond)
	a.m.dropFrom.Store(nil)
	took := waitFor(t, 2*time.Second, "a sees b again once the path heals", func() bool { return a.sees("b") })
	t.Logf("a saw b again %s after the heal", took)
}
