package election

import (
	"fmt"
	"math"
	"net/netip"
	"slices"
	"testing"
)

func keys(n int) []netip.Addr {
	if n > 65536 {
		panic("too many keys")
	}
	out := make([]netip.Addr, n)
	base := netip.MustParseAddr("2001:db8::").As16()
	for i := range out {
		b := base
		b[14], b[15] = byte(i>>8), byte(i)
		out[i] = netip.AddrFrom16(b)
	}
	return out
}

func nodes(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("node-%d", i)
	}
	return out
}

func TestOwnerBasics(t *testing.T) {
	ip := netip.MustParseAddr("192.0.2.10")
	cases := map[string]struct {
		candidates []string
		want       func(string) bool
	}{
		"none":       {nil, func(o string) bool { return o == "" }},
		"one":        {[]string{"a"}, func(o string) bool { return o == "a" }},
		"duplicates": {[]string{"a", "a"}, func(o string) bool { return o == "a" }},
		"some":       {[]string{"a", "b", "c"}, func(o string) bool { return slices.Contains([]string{"a", "b", "c"}, o) }},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			if got := Owner(ip, tc.candidates); !tc.want(got) {
				t.Errorf("Owner = %q", got)
			}
		})
	}
}

// TestOwnerOrderIndependent: every speaker lists members in its own order
// and must still agree.
func TestOwnerOrderIndependent(t *testing.T) {
	n := nodes(7)
	for _, k := range keys(200) {
		want := Owner(k, n)
		r := slices.Clone(n)
		slices.Reverse(r)
		if got := Owner(k, r); got != want {
			t.Fatalf("%s: %q reversed vs %q", k, got, want)
		}
		if rank := Ranking(k, r); rank[0] != want {
			t.Fatalf("%s: ranking starts with %q, owner %q", k, rank[0], want)
		}
	}
}

// TestSpread: 3,000 keys over 3 nodes land within 10% of even.
func TestSpread(t *testing.T) {
	n := nodes(3)
	count := map[string]int{}
	ks := keys(3000)
	for _, k := range ks {
		count[Owner(k, n)]++
	}
	for _, node := range n {
		if math.Abs(float64(count[node])-1000) > 100 {
			t.Errorf("uneven spread: %v", count)
		}
	}
}

// TestJoinMovesOnlyItsShare: when a 4th node joins 3, only keys moving to
// the new node move (about 1/4 of them), and none moves between old nodes.
func TestJoinMovesOnlyItsShare(t *testing.T) {
	old, grown := nodes(3), nodes(4)
	moved := 0
	ks := keys(4000)
	for _, k := range ks {
		a, b := Owner(k, old), Owner(k, grown)
		if a == b {
			continue
		}
		moved++
		if b != "node-3" {
			t.Fatalf("%s moved from %s to %s, not to the new node", k, a, b)
		}
	}
	share := float64(moved) / float64(len(ks))
	if share < 0.22 || share > 0.28 {
		t.Errorf("%.3f of the keys moved, want about 0.25", share)
	}
}

// TestLeaveMovesOnlyItsKeys: when a node goes, only its keys move, and
// each goes to the node next in its ranking.
func TestLeaveMovesOnlyItsKeys(t *testing.T) {
	all := nodes(5)
	without := slices.DeleteFunc(slices.Clone(all), func(s string) bool { return s == "node-2" })
	for _, k := range keys(2000) {
		a, b := Owner(k, all), Owner(k, without)
		if a != "node-2" && a != b {
			t.Fatalf("%s moved from %s to %s although %s stayed", k, a, b, a)
		}
		if a == "node-2" && b != Ranking(k, all)[1] {
			t.Fatalf("%s went to %s, not the runner-up %s", k, b, Ranking(k, all)[1])
		}
	}
}

func BenchmarkOwner(b *testing.B) {
	n := nodes(100)
	k := netip.MustParseAddr("198.51.100.7")
	for b.Loop() {
		_ = Owner(k, n)
	}
}

// BenchmarkJoinShare reports the share of 10,000 addresses that move when
// a 4th node joins 3 (ideal: 0.25, and only to the new node).
func BenchmarkJoinShare(b *testing.B) {
	old, grown := nodes(3), nodes(4)
	ks := keys(10000)
	moved := 0
	for b.Loop() {
		moved = 0
		for _, k := range ks {
			if Owner(k, old) != Owner(k, grown) {
				moved++
			}
		}
	}
	b.ReportMetric(float64(moved)/float64(len(ks)), "moved-share")
}

// TestNameOwner: names (a Service's namespace/name) spread evenly over the
// nodes whatever their order, and a node that goes moves only its names.
func TestNameOwner(t *testing.T) {
	n := nodes(3)
	count := map[string]int{}
	moved := 0
	for i := range 3000 {
		name := fmt.Sprintf("default/svc-%d", i)
		owner := NameOwner(name, n)
		r := slices.Clone(n)
		slices.Reverse(r)
		if got := NameOwner(name, r); got != owner {
			t.Fatalf("%s: %q reversed vs %q", name, got, owner)
		}
		count[owner]++
		if after := NameOwner(name, n[1:]); after != owner {
			moved++
			if owner != n[0] {
				t.Fatalf("%s moved from %s to %s when %s left", name, owner, after, n[0])
			}
		}
	}
	for _, node := range n {
		if math.Abs(float64(count[node])-1000) > 100 {
			t.Errorf("uneven spread: %v", count)
		}
	}
	if moved != count[n[0]] {
		t.Errorf("%d names moved, %s had %d", moved, n[0], count[n[0]])
	}
	if NameOwner("x", nil) != "" {
		t.Error("an owner without candidates")
	}
}
