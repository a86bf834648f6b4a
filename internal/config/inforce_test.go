package config

import (
	"slices"
	"strings"
	"testing"
)

func ignoredItems(ig []Ignored) []string {
	var out []string
	for _, i := range ig {
		out = append(out, i.String())
	}
	return out
}

// TestInForceIgnoresTheLaterOfTwoConflictingItems: objects admitted at the
// same moment that conflict leave the later one out, never the whole
// configuration; the decision does not depend on the order of the input.
func TestInForceIgnoresTheLaterOfTwoConflictingItems(t *testing.T) {
	cases := []struct {
		name        string
		objs        Objects
		wantIgnored []string
		check       func(t *testing.T, cfg *Config)
	}{{
		name:        "overlapping pools: the one created later",
		objs:        objects(created(pool("zzz", "198.51.100.0/24"), 1), created(pool("aaa", "198.51.100.128/25"), 2), pool("other", "203.0.113.0/24")),
		wantIgnored: []string{"IPAddressPool[aaa]"},
		check: func(t *testing.T, cfg *Config) {
			if cfg.Pools["zzz"] == nil || cfg.Pools["other"] == nil || cfg.Pools["aaa"] != nil {
				t.Errorf("pools in force %v", keys(cfg.Pools))
			}
		},
	}, {
		name:        "overlapping pools created in the same second: by name",
		objs:        objects(created(pool("b", "198.51.100.0/24"), 1), created(pool("a", "198.51.100.0/25"), 1)),
		wantIgnored: []string{"IPAddressPool[b]"},
	}, {
		name:        "one peer address on every node",
		objs:        objects(created(peer("tor", "192.0.2.1"), 1), created(peer("tor-again", "192.0.2.1"), 3)),
		wantIgnored: []string{"BGPPeer[tor-again]"},
	}, {
		name:        "one community alias twice",
		objs:        objects(created(community("late", "gold", "65000:2"), 5), created(community("early", "gold", "65000:1"), 4)),
		wantIgnored: []string{"Community[late]"},
		check: func(t *testing.T, cfg *Config) {
			if c, err := ParseCommunity("65000:1"); err != nil || cfg.CommunityAliases["gold"] != c {
				t.Errorf("alias gold = %v, want the earlier definition 65000:1", cfg.CommunityAliases["gold"])
			}
		},
	}, {
		name:        "a second stack",
		objs:        objects(stack(inPools(pool("a", "198.51.100.0/24"))), stackAt("second", t0.Add(1e9))),
		wantIgnored: []string{"LoadBalancerStack[second]"},
	}, {
		name: "two inline pools overlapping older standalone ones",
		objs: objects(created(pool("x", "198.51.100.0/24"), -5), created(pool("y", "203.0.113.0/24"), -5),
			stack(inPools(pool("a", "198.51.100.0/25"), pool("keep", "192.0.2.0/24"), pool("b", "203.0.113.0/25")))),
		wantIgnored: []string{"LoadBalancerStack[lbstack].spec.pools[a]", "LoadBalancerStack[lbstack].spec.pools[b]"},
		check: func(t *testing.T, cfg *Config) {
			if got := keys(cfg.Pools); !slices.Equal(got, []string{"keep", "x", "y"}) {
				t.Errorf("pools in force %v, want keep, x, y", got)
			}
		},
	}}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if _, _, errs := Build(c.objs); len(errs) == 0 {
				t.Fatal("Build accepts the conflict; admission would refuse nothing")
			}
			cfg, ig, _, errs := InForce(c.objs)
			if len(errs) > 0 {
				t.Fatalf("the whole configuration is invalid: %v", errs)
			}
			if got := ignoredItems(ig); !slices.Equal(got, c.wantIgnored) {
				t.Fatalf("ignored %v, want %v", got, c.wantIgnored)
			}
			for _, i := range ig {
				if len(i.Errors) == 0 {
					t.Errorf("%s is ignored without a reason", i)
				}
			}
			if c.check != nil {
				c.check(t, cfg)
			}
			// The same decision from the input in another order.
			rev := c.objs
			slices.Reverse(rev.Pools)
			slices.Reverse(rev.Peers)
			slices.Reverse(rev.Communities)
			slices.Reverse(rev.Stacks)
			if _, ig2, _, _ := InForce(rev); !slices.Equal(ignoredItems(ig2), c.wantIgnored) {
				t.Errorf("reversed input: ignored %v, want %v", ignoredItems(ig2), c.wantIgnored)
			}
		})
	}
}

// TestInForceKeepsOtherErrorsFatal: an error that is not a conflict
// between two items makes the configuration invalid, as Build does.
func TestInForceKeepsOtherErrorsFatal(t *testing.T) {
	objs := objects(created(pool("a", "198.51.100.0/24"), 1), created(pool("b", "198.51.100.0/25"), 2), pool("bad", "not-a-cidr"))
	cfg, _, _, errs := InForce(objs)
	if cfg != nil || len(errs) == 0 {
		t.Fatalf("got a configuration with an invalid pool in it")
	}
	if !strings.Contains(errs.ToAggregate().Error(), "IPAddressPool[bad]") {
		t.Errorf("errors %v do not name the invalid pool", errs)
	}
}

func keys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}
