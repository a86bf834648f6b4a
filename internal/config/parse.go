package config

import (
	"fmt"
	"math/big"
	"net/netip"
	"strconv"
	"strings"
)

// Range is an inclusive range of addresses of one family. A CIDR is the
// range from its first to its last address.
type Range struct {
	// First and Last are the range's ends, First <= Last, same family.
	First, Last netip.Addr
	// Prefix is the CIDR the range was written as; invalid for an "a-b" range.
	Prefix netip.Prefix
}

// ParseRange parses a pool address: a CIDR ("192.0.2.0/24", no bits set
// after the prefix) or an inclusive range "start-end" of one family.
// Errors say what is wrong in words a user understands.
func ParseRange(s string) (Range, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return Range{}, fmt.Errorf("empty address")
	}
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return Range{}, cidrError(s)
		}
		if p.Addr().Is4In6() {
			return Range{}, fmt.Errorf("IPv4-mapped IPv6 addresses are not allowed; write the IPv4 address")
		}
		if p.Masked() != p {
			return Range{}, fmt.Errorf("bits are set after the prefix length; did you mean %s?", p.Masked())
		}
		return Range{First: p.Addr(), Last: lastAddr(p), Prefix: p}, nil
	}
	a, b, ok := strings.Cut(s, "-")
	if !ok {
		if one, err := parseAddr(s); err == nil {
			return Range{}, fmt.Errorf("a single address is written as a CIDR; did you mean %s?", netip.PrefixFrom(one, one.BitLen()))
		}
		return Range{}, fmt.Errorf("must be a CIDR such as 192.0.2.0/24 or a range such as 192.0.2.10-192.0.2.20")
	}
	first, err := parseAddr(strings.TrimSpace(a))
	if err != nil {
		return Range{}, fmt.Errorf("range start: %w", err)
	}
	last, err := parseAddr(strings.TrimSpace(b))
	if err != nil {
		return Range{}, fmt.Errorf("range end: %w", err)
	}
	if first.Is4() != last.Is4() {
		return Range{}, fmt.Errorf("a range must not mix IPv4 and IPv6")
	}
	if last.Less(first) {
		return Range{}, fmt.Errorf("range starts at %s, after its end %s", first, last)
	}
	return Range{First: first, Last: last}, nil
}

// cidrError says in words why s, which netip.ParsePrefix refused, is not
// a CIDR: netip's own messages name Go functions.
func cidrError(s string) error {
	addr, bits, _ := strings.Cut(s, "/")
	a, err := parseAddr(addr)
	if err != nil {
		return fmt.Errorf("not a CIDR: %w", err)
	}
	return fmt.Errorf("not a CIDR: the prefix length %q must be a number from 0 to %d", bits, a.BitLen())
}

// ParseIP parses a single IP address (no zone, no IPv4-mapped IPv6).
func ParseIP(s string) (netip.Addr, error) { return parseAddr(s) }

func parseAddr(s string) (netip.Addr, error) {
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("%q is not an IP address", s)
	}
	if a.Zone() != "" {
		return netip.Addr{}, fmt.Errorf("%q: an address must not have a zone", s)
	}
	if a.Is4In6() {
		return netip.Addr{}, fmt.Errorf("%q: IPv4-mapped IPv6 addresses are not allowed; write the IPv4 address", s)
	}
	return a, nil
}

func lastAddr(p netip.Prefix) netip.Addr {
	b := p.Addr().AsSlice()
	bits := p.Bits()
	for i := range b {
		for bit := 0; bit < 8; bit++ {
			if i*8+bit >= bits {
				b[i] |= 0x80 >> bit
			}
		}
	}
	a, _ := netip.AddrFromSlice(b)
	return a
}

// Is4 reports whether the range is IPv4.
func (r Range) Is4() bool { return r.First.Is4() }

// Contains reports whether a is in the range.
func (r Range) Contains(a netip.Addr) bool {
	return a.Is4() == r.First.Is4() && !a.Less(r.First) && !r.Last.Less(a)
}

// Overlaps reports whether two ranges share an address.
func (r Range) Overlaps(o Range) bool {
	return r.Is4() == o.Is4() && !r.Last.Less(o.First) && !o.Last.Less(r.First)
}

// Size is the exact number of addresses in the range.
func (r Range) Size() *big.Int {
	n := new(big.Int).Sub(addrInt(r.Last), addrInt(r.First))
	return n.Add(n, big.NewInt(1))
}

// String writes the range as it would be written in a pool.
func (r Range) String() string {
	if r.Prefix.IsValid() {
		return r.Prefix.String()
	}
	return r.First.String() + "-" + r.Last.String()
}

// MinPrefixLen is the shortest aggregation length the range permits: a
// CIDR's own length (a shorter aggregate would include addresses outside
// it), or for an "a-b" range the length of the largest CIDR block inside
// it, as MetalLB does. For example 192.0.2.1-192.0.2.6 permits /31
// (192.0.2.2/31 and 192.0.2.4/31 lie inside it), although the aggregates
// of its ends, 192.0.2.0/31 and 192.0.2.6/31, reach outside it.
func (r Range) MinPrefixLen() int {
	if r.Prefix.IsValid() {
		return r.Prefix.Bits()
	}
	bits := r.First.BitLen()
	best := bits
	// Walk the range as aligned CIDR blocks, keeping the largest.
	cur := r.First
	for {
		l := bits
		for l > 0 {
			p := netip.PrefixFrom(cur, l-1)
			if p.Masked().Addr() != cur || r.Last.Less(lastAddr(p)) {
				break
			}
			l--
		}
		if l < best {
			best = l
		}
		end := lastAddr(netip.PrefixFrom(cur, l))
		if end == r.Last {
			return best
		}
		cur = end.Next()
	}
}

func addrInt(a netip.Addr) *big.Int { return new(big.Int).SetBytes(a.AsSlice()) }

// Community is a parsed BGP community.
type Community struct {
	// Large is set for a large community (RFC 8092).
	Large bool
	// Standard holds a standard community (RFC 1997) as ASN<<16 | value.
	Standard uint32
	// Global, Local1, Local2 hold a large community.
	Global, Local1, Local2 uint32
}

// String writes the community as a user would: "a:b" or "large:a:b:c".
func (c Community) String() string {
	if c.Large {
		return fmt.Sprintf("large:%d:%d:%d", c.Global, c.Local1, c.Local2)
	}
	return fmt.Sprintf("%d:%d", c.Standard>>16, c.Standard&0xffff)
}

// IsCommunityValue reports whether s is written as a community value rather
// than an alias name: values contain ':', alias names never do.
func IsCommunityValue(s string) bool { return strings.Contains(s, ":") }

// ParseCommunity parses "a:b" (two numbers 0-65535) or "large:a:b:c"
// (three numbers 0-4294967295). Like ParseRange's, its errors do not
// repeat s: the caller shows it.
func ParseCommunity(s string) (Community, error) {
	parts := strings.Split(s, ":")
	if len(parts) == 4 && parts[0] == "large" {
		var v [3]uint32
		for i, p := range parts[1:] {
			n, err := parseUint(p, 32)
			if err != nil {
				return Community{}, fmt.Errorf("part %d %w", i+1, err)
			}
			v[i] = uint32(n)
		}
		return Community{Large: true, Global: v[0], Local1: v[1], Local2: v[2]}, nil
	}
	if len(parts) == 2 {
		hi, err := parseUint(parts[0], 16)
		if err != nil {
			return Community{}, fmt.Errorf("ASN part %w", err)
		}
		lo, err := parseUint(parts[1], 16)
		if err != nil {
			return Community{}, fmt.Errorf("value part %w", err)
		}
		return Community{Standard: uint32(hi)<<16 | uint32(lo)}, nil
	}
	return Community{}, fmt.Errorf("must be a:b (numbers 0-65535) or large:a:b:c (numbers 0-4294967295)")
}

func parseUint(s string, bits int) (uint64, error) {
	if s == "" || strings.TrimLeft(s, "0123456789") != "" {
		return 0, fmt.Errorf("%q is not a number", s)
	}
	n, err := strconv.ParseUint(s, 10, bits)
	if err != nil {
		return 0, fmt.Errorf("%q is out of range 0-%d", s, uint64(1)<<bits-1)
	}
	return n, nil
}
