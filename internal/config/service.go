package config

import "net/netip"

// PoolOf returns the name of the pool holding a, or "". The rule for the
// pool of a Service's address (which also weighs the pool the controller
// recorded) is lbservice.PoolOf.
func (c *Config) PoolOf(a netip.Addr) string {
	for name, p := range c.Pools {
		if p.Contains(a) {
			return name
		}
	}
	return ""
}
