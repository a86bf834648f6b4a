package membership

import (
	"net/netip"
	"slices"
	"testing"
	"time"
)

var (
	key1 = netip.MustParseAddr("192.0.2.10")
	key2 = netip.MustParseAddr("2001:db8::10")
)

func claimants(n *testNode, k netip.Addr) []string {
	var out []string
	for _, c := range n.m.Claims()[k] {
		out = append(out, c.Node)
	}
	return out
}

func claims(keys ...netip.Addr) []Claim {
	var out []Claim
	for _, k := range keys {
		out = append(out, Claim{Key: k})
	}
	return out
}

// TestClaimsPropagate: what one node claims, every live member learns
// within a few heartbeats (the digest in the heartbeats tells them to ask),
// a withdrawn claim disappears, and a crashed node's claims stop counting
// once it is dead.
func TestClaimsPropagate(t *testing.T) {
	nodes := startCluster(t, testKey, "a", "b", "c")
	a, b, c := nodes[0], nodes[1], nodes[2]
	a.m.SetClaims(append(claims(key2, key1, key1), Claim{Key: key1, Gen: 9}))
	b.m.SetClaims([]Claim{{Key: key2, Gen: 3, View: 2}})
	took := waitFor(t, 3*time.Second, "every node knows the claims", func() bool {
		return slices.Equal(claimants(b, key1), []string{"a"}) && slices.Equal(claimants(c, key1), []string{"a"}) &&
			slices.Equal(claimants(c, key2), []string{"a", "b"}) && slices.Equal(claimants(a, key2), []string{"b"})
	})
	t.Logf("claims known everywhere after %s", took)
	if got := c.m.Claims()[key2]; len(got) != 2 || got[1] != (Claimant{Node: "b", Gen: 3, View: 2}) {
		t.Errorf("claimants of %s on c = %+v, want b's claim of generation 3, view 2", key2, got)
	}
	if got := claimants(a, key1); got != nil {
		t.Errorf("a's own claim listed by a: %q (Claims lists other members only)", got)
	}

	a.m.SetClaims(claims(key2))
	waitFor(t, 3*time.Second, "the withdrawn claim disappears", func() bool {
		return claimants(b, key1) == nil && claimants(c, key1) == nil
	})

	b.crash()
	waitFor(t, 3*time.Second, "a dead node's claims stop counting", func() bool {
		return slices.Equal(claimants(c, key2), []string{"a"})
	})
}

// TestJoinLearnsClaimsAndSettles: a node that joins knows the claims of the
// node it joined when Join returns (memberlist's push/pull carries them),
// and is Settled once it knows every live member's.
func TestJoinLearnsClaimsAndSettles(t *testing.T) {
	nodes := startCluster(t, testKey, "a", "b")
	nodes[0].m.SetClaims(claims(key1))
	nodes[1].m.SetClaims(claims(key2))
	n := startNode(t, "n", testKey, nil)
	if n.m.Settled() {
		t.Fatal("Settled before joining anyone")
	}
	if _, err := n.m.Join([]string{nodes[0].addr(), nodes[1].addr()}); err != nil {
		t.Fatal(err)
	}
	if got := claimants(n, key1); !slices.Equal(got, []string{"a"}) {
		t.Errorf("right after Join, claimants of %s = %q, want [a]", key1, got)
	}
	waitFor(t, 3*time.Second, "n settles", n.m.Settled)
}

// TestOneWayLoss: when b stops hearing a while a still hears b, b declares a
// dead and a learns, from b's marked heartbeats, that b suspects it; when
// the path heals the mark clears and b sees a again.
func TestOneWayLoss(t *testing.T) {
	nodes := startCluster(t, testKey, "a", "b")
	a, b := nodes[0], nodes[1]
	suspected := func() bool {
		for _, m := range a.m.Live() {
			if m.Name == "b" {
				return m.SuspectsUs
			}
		}
		return false
	}
	drop := func(name string) bool { return name == "a" }
	b.m.dropFrom.Store(&drop)
	start := time.Now()
	waitFor(t, 3*time.Second, "b declares a dead", func() bool { return !b.sees("a") })
	dead := time.Since(start)
	waitFor(t, 3*time.Second, "a learns that b suspects it", suspected)
	t.Logf("b declared a dead after %s; a knew after %s", dead, time.Since(start))
	if !a.sees("b") {
		t.Error("a dropped b, which it still hears")
	}
	b.m.dropFrom.Store(nil)
	waitFor(t, 3*time.Second, "the mark clears and b sees a again", func() bool { return !suspected() && b.sees("a") })
}

// TestKeyRotation: a node with a new key cannot join nodes with the old
// one; once they rotate to the new key (keeping the old for decryption) it
// joins them, and they keep understanding each other throughout.
func TestKeyRotation(t *testing.T) {
	nodes := startCluster(t, testKey, "a", "b")
	a, b := nodes[0], nodes[1]
	newKey := []byte("a-brand-new-memberlist-key-32-by")
	n := startNode(t, "n", newKey, nil)
	if _, err := n.m.Join([]string{a.addr()}); err == nil {
		t.Fatal("a node with another key joined")
	}
	if n.m.Foreign() == 0 && a.m.Foreign() == 0 {
		t.Error("neither side counted undecryptable traffic")
	}
	// Every speaker rotates when the Secret changes (within the kubelet's
	// sync of the key file).
	for _, x := range []*testNode{a, b} {
		if err := x.m.SetKey(newKey); err != nil {
			t.Fatal(err)
		}
	}
	if err := a.m.SetKey(newKey); err != nil {
		t.Errorf("setting the current key again: %v", err)
	}
	if _, err := n.m.Join([]string{a.addr()}); err != nil {
		t.Fatalf("joining after the rotation: %v", err)
	}
	waitClusterFormed(t, []*testNode{a, b, n})
	if err := startNode(t, "plain", nil, nil).m.SetKey(newKey); err == nil {
		t.Error("a node without encryption started encrypting")
	}
	if err := a.m.SetKey([]byte("short")); err == nil {
		t.Error("a 5-byte key was accepted")
	}
}

// TestNewlyWatchedPeerJudgedFromLastHeartbeat: a node that starts watching a
// peer it has been hearing (here: the peer watched it) judges that peer from
// its last heartbeat, so a crash right after the watch begins is noticed by
// heartbeats, not seconds later by memberlist.
func TestNewlyWatchedPeerJudgedFromLastHeartbeat(t *testing.T) {
	nodes := startCluster(t, testKey, "a", "b")
	a, b := nodes[0], nodes[1]
	a.m.SetWatched([]string{}) // a watches nobody, but b watches a: a hears b
	waitFor(t, 3*time.Second, "a hears b while not watching it", func() bool {
		a.m.mu.Lock()
		defer a.m.mu.Unlock()
		return !a.m.eligible["b"] && time.Since(a.m.lastHB["b"]) < 200*time.Millisecond
	})
	a.m.SetWatched([]string{"b"})
	b.crash()
	took := waitFor(t, 3*time.Second, "a drops b", func() bool { return !a.sees("b") })
	if took > 1500*time.Millisecond {
		t.Errorf("a dropped b after %s: judged by memberlist, not from b's last heartbeat", took)
	}
	t.Logf("a dropped b %s after the crash", took)
}
