package membership

import (
	"fmt"
	"slices"
	"testing"
)

func TestSelectPeers(t *testing.T) {
	tests := map[string]struct {
		self       string
		candidates []string
		max        int
		want       []string
	}{
		"no candidates": {self: "a", max: 4, want: []string{}},
		"fewer than max: all, sorted, without self or duplicates": {
			self: "b", candidates: []string{"d", "b", "a", "d", "c"}, max: 4,
			want: []string{"a", "c", "d"},
		},
		"exactly max": {
			self: "a", candidates: []string{"b", "c"}, max: 2,
			want: []string{"b", "c"},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			if got := selectPeers(tc.self, tc.candidates, tc.max); !slices.Equal(got, tc.want) {
				t.Errorf("selectPeers = %q, want %q", got, tc.want)
			}
		})
	}
}

// TestSelectPeersRing checks the properties of the bounded selection over
// whole clusters: at most max peers, never self, deterministic whatever the
// order of the candidates, and mutual for an even max.
func TestSelectPeersRing(t *testing.T) {
	for _, n := range []int{5, 66, 200} {
		for _, max := range []int{2, 4, 64} {
			t.Run(fmt.Sprintf("%d nodes, max %d", n, max), func(t *testing.T) {
				nodes := make([]string, n)
				for i := range nodes {
					nodes[i] = fmt.Sprintf("worker-%03d", i)
				}
				reversed := slices.Clone(nodes)
				slices.Reverse(reversed)
				watches := make(map[string]map[string]bool)
				for _, self := range nodes {
					got := selectPeers(self, nodes, max)
					if want := min(max, n-1); len(got) != want {
						t.Fatalf("%s watches %d peers, want %d", self, len(got), want)
					}
					if slices.Contains(got, self) {
						t.Fatalf("%s watches itself", self)
					}
					if again := selectPeers(self, reversed, max); !slices.Equal(got, again) {
						t.Fatalf("%s: selection depends on candidate order: %q vs %q", self, got, again)
					}
					watches[self] = make(map[string]bool)
					for _, p := range got {
						watches[self][p] = true
					}
				}
				for a, peers := range watches {
					for b := range peers {
						if !watches[b][a] {
							t.Errorf("%s watches %s but not the reverse", a, b)
						}
					}
				}
			})
		}
	}
}
