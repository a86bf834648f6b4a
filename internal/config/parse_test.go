package config

import (
	"math/big"
	"net/netip"
	"strings"
	"testing"
)

func pow2(n uint) *big.Int { return new(big.Int).Lsh(big.NewInt(1), n) }

var goodRanges = map[string]struct {
	first, last string
	// cidr is set when the input is a CIDR.
	cidr bool
	size *big.Int
	// minPrefixLen is Range.MinPrefixLen.
	minPrefixLen int
}{
	"192.0.2.0/24":                                {"192.0.2.0", "192.0.2.255", true, big.NewInt(256), 24},
	"192.0.2.7/32":                                {"192.0.2.7", "192.0.2.7", true, big.NewInt(1), 32},
	"0.0.0.0/0":                                   {"0.0.0.0", "255.255.255.255", true, pow2(32), 0},
	"10.0.0.0/8":                                  {"10.0.0.0", "10.255.255.255", true, pow2(24), 8},
	" 192.0.2.0/26 ":                              {"192.0.2.0", "192.0.2.63", true, big.NewInt(64), 26},
	"2001:db8::/48":                               {"2001:db8::", "2001:db8:0:ffff:ffff:ffff:ffff:ffff", true, pow2(80), 48},
	"2001:db8::/64":                               {"2001:db8::", "2001:db8::ffff:ffff:ffff:ffff", true, pow2(64), 64},
	"2001:db8::1/128":                             {"2001:db8::1", "2001:db8::1", true, big.NewInt(1), 128},
	"::/0":                                        {"::", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", true, pow2(128), 0},
	"192.0.2.0-192.0.2.255":                       {"192.0.2.0", "192.0.2.255", false, big.NewInt(256), 24},
	"192.0.2.1-192.0.2.6":                         {"192.0.2.1", "192.0.2.6", false, big.NewInt(6), 31},
	"192.0.2.10-192.0.2.20":                       {"192.0.2.10", "192.0.2.20", false, big.NewInt(11), 30},
	"192.0.2.5-192.0.2.5":                         {"192.0.2.5", "192.0.2.5", false, big.NewInt(1), 32},
	"192.0.2.1-192.0.2.2":                         {"192.0.2.1", "192.0.2.2", false, big.NewInt(2), 32},
	"192.0.2.0-192.0.2.1":                         {"192.0.2.0", "192.0.2.1", false, big.NewInt(2), 31},
	"192.0.2.1-192.0.2.254":                       {"192.0.2.1", "192.0.2.254", false, big.NewInt(254), 26},
	"192.0.2.128-192.0.3.127":                     {"192.0.2.128", "192.0.3.127", false, big.NewInt(256), 25},
	"10.0.0.0-10.2.255.255":                       {"10.0.0.0", "10.2.255.255", false, big.NewInt(3 << 16), 15},
	"10.1.0.0-10.2.255.255":                       {"10.1.0.0", "10.2.255.255", false, big.NewInt(2 << 16), 16},
	"0.0.0.0-255.255.255.255":                     {"0.0.0.0", "255.255.255.255", false, pow2(32), 0},
	"192.0.2.10 - 192.0.2.20":                     {"192.0.2.10", "192.0.2.20", false, big.NewInt(11), 30},
	"2001:db8::-2001:db8::ffff":                   {"2001:db8::", "2001:db8::ffff", false, big.NewInt(1 << 16), 112},
	"2001:db8::1-2001:db8::ff":                    {"2001:db8::1", "2001:db8::ff", false, big.NewInt(255), 121},
	"::-ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff":  {"::", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", false, pow2(128), 0},
	"::1-ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffe": {"::1", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffe", false, new(big.Int).Sub(pow2(128), big.NewInt(2)), 2},
}

// badRanges maps invalid pool addresses to part of their error.
var badRanges = map[string]string{
	"":                                  "empty address",
	"   ":                               "empty address",
	"192.0.2.1":                         "a single address is written as a CIDR; did you mean 192.0.2.1/32?",
	"2001:db8::1":                       "did you mean 2001:db8::1/128?",
	"pool":                              "must be a CIDR",
	"192.0.2.300/24":                    `not a CIDR: "192.0.2.300" is not an IP address`,
	"192.0.2.0/33":                      `the prefix length "33" must be a number from 0 to 32`,
	"2001:db8::/129":                    `the prefix length "129" must be a number from 0 to 128`,
	"192.0.2.0/-1":                      `the prefix length "-1"`,
	"192.0.2.0/":                        `the prefix length ""`,
	"192.0.2.0/024":                     `the prefix length "024"`,
	"192.0.2.0/24/24":                   `the prefix length "24/24"`,
	"/24":                               `"" is not an IP address`,
	"192.0.2.1/24":                      "bits are set after the prefix length; did you mean 192.0.2.0/24?",
	"2001:db8::1/64":                    "did you mean 2001:db8::/64?",
	"::ffff:192.0.2.0/120":              "IPv4-mapped IPv6 addresses are not allowed",
	"fe80::%eth0/64":                    "an address must not have a zone",
	"192.0.2.1-192.0.2.5/32":            `not a CIDR: "192.0.2.1-192.0.2.5" is not an IP address`,
	"192.0.2.1-":                        `range end: "" is not an IP address`,
	"-192.0.2.1":                        `range start: "" is not an IP address`,
	"-":                                 "range start",
	"192.0.2.1-192.0.2.5-192.0.2.9":     `range end: "192.0.2.5-192.0.2.9" is not an IP address`,
	"192.0.2.1-2001:db8::1":             "a range must not mix IPv4 and IPv6",
	"2001:db8::1-192.0.2.1":             "a range must not mix IPv4 and IPv6",
	"192.0.2.20-192.0.2.10":             "range starts at 192.0.2.20, after its end 192.0.2.10",
	"2001:db8::20-2001:db8::1f":         "range starts at 2001:db8::20, after its end 2001:db8::1f",
	"::ffff:192.0.2.1-::ffff:192.0.2.9": "IPv4-mapped IPv6 addresses are not allowed; write the IPv4 address",
	"192.0.2.1-::ffff:192.0.2.9":        `range end: "::ffff:192.0.2.9": IPv4-mapped`,
	"fe80::1%eth0-fe80::9%eth0":         "an address must not have a zone",
	"192.0.2.010-192.0.2.20":            `range start: "192.0.2.010" is not an IP address`,
}

func TestParseRange(t *testing.T) {
	for in, want := range goodRanges {
		t.Run(in, func(t *testing.T) {
			r, err := ParseRange(in)
			if err != nil {
				t.Fatalf("ParseRange: %v", err)
			}
			check(t, "First", r.First, netip.MustParseAddr(want.first))
			check(t, "Last", r.Last, netip.MustParseAddr(want.last))
			check(t, "is a CIDR", r.Prefix.IsValid(), want.cidr)
			check(t, "String", r.String(), strings.Join(strings.Fields(in), ""))
			if r.Size().Cmp(want.size) != 0 {
				t.Errorf("Size = %s, want %s", r.Size(), want.size)
			}
			check(t, "MinPrefixLen", r.MinPrefixLen(), want.minPrefixLen)
		})
	}
	for in, want := range badRanges {
		t.Run("bad "+in, func(t *testing.T) {
			r, err := ParseRange(in)
			if err == nil {
				t.Fatalf("ParseRange accepted it as %v", r)
			}
			if !strings.Contains(err.Error(), want) {
				t.Errorf("error %q does not contain %q", err, want)
			}
		})
	}
}

func TestRangeContainsOverlaps(t *testing.T) {
	r := func(s string) Range { return mustRange(t, s) }
	a := netip.MustParseAddr
	check(t, "first", r("192.0.2.10-192.0.2.20").Contains(a("192.0.2.10")), true)
	check(t, "last", r("192.0.2.10-192.0.2.20").Contains(a("192.0.2.20")), true)
	check(t, "after", r("192.0.2.10-192.0.2.20").Contains(a("192.0.2.21")), false)
	check(t, "other family", r("::/0").Contains(a("192.0.2.1")), false)
	check(t, "touching", r("192.0.2.0/25").Overlaps(r("192.0.2.127-192.0.2.200")), true)
	check(t, "adjacent", r("192.0.2.0/25").Overlaps(r("192.0.2.128/25")), false)
	check(t, "inside", r("2001:db8::/32").Overlaps(r("2001:db8:1::5-2001:db8:1::6")), true)
	check(t, "families", r("0.0.0.0/0").Overlaps(r("::/0")), false)
}

var goodCommunities = map[string]Community{
	"0:0":                            {},
	"65000:100":                      {Standard: 65000<<16 | 100},
	"65535:65281":                    {Standard: 0xffffff01},
	"65535:65535":                    {Standard: 0xffffffff},
	"00065000:0100":                  {Standard: 65000<<16 | 100},
	"large:0:0:0":                    {Large: true},
	"large:64512:1:2":                {Large: true, Global: 64512, Local1: 1, Local2: 2},
	"large:4294967295:4294967295:1":  {Large: true, Global: 4294967295, Local1: 4294967295, Local2: 1},
	"large:1:2:4294967295":           {Large: true, Global: 1, Local1: 2, Local2: 4294967295},
	"large:00000000004294967295:0:0": {Large: true, Global: 4294967295},
}

// badCommunities maps invalid communities to part of their error.
var badCommunities = map[string]string{
	"":                       "must be a:b (numbers 0-65535) or large:a:b:c (numbers 0-4294967295)",
	"65000":                  "must be a:b",
	"no-export":              "must be a:b",
	"1:2:3":                  "must be a:b",
	"large:1:2":              "must be a:b",
	"large:1:2:3:4":          "must be a:b",
	"LARGE:1:2:3":            "must be a:b",
	"65536:1":                `ASN part "65536" is out of range 0-65535`,
	"1:65536":                `value part "65536" is out of range 0-65535`,
	"99999999999999999999:1": `ASN part "99999999999999999999" is out of range 0-65535`,
	":1":                     `ASN part "" is not a number`,
	"1:":                     `value part "" is not a number`,
	"-1:5":                   `ASN part "-1" is not a number`,
	"+1:5":                   `ASN part "+1" is not a number`,
	" 1:5":                   `ASN part " 1" is not a number`,
	"0x10:5":                 `ASN part "0x10" is not a number`,
	"1:5 ":                   `value part "5 " is not a number`,
	"1_000:5":                `ASN part "1_000" is not a number`,
	"large:4294967296:1:1":   `part 1 "4294967296" is out of range 0-4294967295`,
	"large:1:4294967296:1":   `part 2 "4294967296" is out of range 0-4294967295`,
	"large:1:2:4294967296":   `part 3 "4294967296" is out of range 0-4294967295`,
	"large:1:2:x":            `part 3 "x" is not a number`,
	"large::1:2":             `part 1 "" is not a number`,
	"large:-1:2:3":           `part 1 "-1" is not a number`,
}

func TestParseCommunity(t *testing.T) {
	for in, want := range goodCommunities {
		t.Run(in, func(t *testing.T) {
			c, err := ParseCommunity(in)
			if err != nil {
				t.Fatalf("ParseCommunity: %v", err)
			}
			check(t, "community", c, want)
			back, err := ParseCommunity(c.String())
			if err != nil || back != c {
				t.Errorf("String() = %q parses back as %v, %v", c.String(), back, err)
			}
			check(t, "IsCommunityValue", IsCommunityValue(in), true)
		})
	}
	for in, want := range badCommunities {
		t.Run("bad "+in, func(t *testing.T) {
			c, err := ParseCommunity(in)
			if err == nil {
				t.Fatalf("ParseCommunity accepted it as %v", c)
			}
			if !strings.Contains(err.Error(), want) {
				t.Errorf("error %q does not contain %q", err, want)
			}
		})
	}
}

func TestCommunityString(t *testing.T) {
	for want, c := range map[string]Community{
		"0:0":                  {},
		"65000:100":            {Standard: 65000<<16 | 100},
		"65535:65535":          {Standard: 0xffffffff},
		"large:1:2:3":          {Large: true, Global: 1, Local1: 2, Local2: 3},
		"large:4294967295:0:0": {Large: true, Global: 4294967295},
	} {
		check(t, "String", c.String(), want)
	}
}

func FuzzParseRange(f *testing.F) {
	for s := range goodRanges {
		f.Add(s)
	}
	for s := range badRanges {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		r, err := ParseRange(s)
		if _, bad := badRanges[s]; bad && err == nil {
			t.Fatalf("ParseRange(%q) accepted an input the table calls invalid: %v", s, r)
		}
		if _, good := goodRanges[s]; good && err != nil {
			t.Fatalf("ParseRange(%q) refused an input the table calls valid: %v", s, err)
		}
		if err != nil {
			if err.Error() == "" {
				t.Fatalf("ParseRange(%q): empty error", s)
			}
			return
		}
		checkRange(t, s, r)
		// Whatever is accepted is written back as something that parses
		// to the same range.
		back, err := ParseRange(r.String())
		if err != nil {
			t.Fatalf("ParseRange(%q) = %v, whose String %q does not parse: %v", s, r, r.String(), err)
		}
		if back != r {
			t.Fatalf("ParseRange(%q) = %#v, but its String %q parses as %#v", s, r, r.String(), back)
		}
	})
}

// checkRange checks the invariants of a parsed Range.
func checkRange(t *testing.T, s string, r Range) {
	t.Helper()
	if !r.First.IsValid() || !r.Last.IsValid() {
		t.Fatalf("ParseRange(%q) = %v: invalid ends", s, r)
	}
	if r.First.Is4() != r.Last.Is4() {
		t.Fatalf("ParseRange(%q) = %v: ends of different families", s, r)
	}
	for _, a := range []netip.Addr{r.First, r.Last} {
		if a.Zone() != "" || a.Is4In6() {
			t.Fatalf("ParseRange(%q) = %v: end %v has a zone or is IPv4-mapped", s, r, a)
		}
	}
	if r.Last.Less(r.First) {
		t.Fatalf("ParseRange(%q) = %v: First after Last", s, r)
	}
	if !r.Contains(r.First) || !r.Contains(r.Last) || !r.Overlaps(r) {
		t.Fatalf("ParseRange(%q) = %v does not contain its ends", s, r)
	}
	if r.Size().Sign() <= 0 || r.Size().Cmp(pow2(uint(r.First.BitLen()))) > 0 {
		t.Fatalf("ParseRange(%q) = %v: Size %s out of bounds", s, r, r.Size())
	}
	m := r.MinPrefixLen()
	if m < 0 || m > r.First.BitLen() {
		t.Fatalf("ParseRange(%q) = %v: MinPrefixLen %d out of bounds", s, r, m)
	}
	if p := r.Prefix; p.IsValid() {
		if p.Masked() != p {
			t.Fatalf("ParseRange(%q) = %v: CIDR with host bits", s, r)
		}
		if p.Addr() != r.First || lastAddr(p) != r.Last || m != p.Bits() {
			t.Fatalf("ParseRange(%q) = %#v: ends or MinPrefixLen do not match the CIDR", s, r)
		}
		if r.Size().Cmp(pow2(uint(p.Addr().BitLen()-p.Bits()))) != 0 {
			t.Fatalf("ParseRange(%q) = %v: Size %s is not 2^(bits-len)", s, r, r.Size())
		}
		return
	}
	// For an a-b range, MinPrefixLen is the length of the largest CIDR
	// block inside the range: a /m block fits, a /(m-1) does not.
	if !blockFits(r, m) {
		t.Fatalf("ParseRange(%q) = %v: no /%d block fits, but MinPrefixLen is %d", s, r, m, m)
	}
	if m > 0 && blockFits(r, m-1) {
		t.Fatalf("ParseRange(%q) = %v: a /%d block fits, but MinPrefixLen is %d", s, r, m-1, m)
	}
}

// blockFits reports whether an aligned CIDR block of length l lies inside
// r, computed with integers: the first block at or after First must end
// by Last.
func blockFits(r Range, l int) bool {
	size := pow2(uint(r.First.BitLen() - l))
	start := new(big.Int).Add(addrInt(r.First), new(big.Int).Sub(size, big.NewInt(1)))
	start.Div(start, size).Mul(start, size)
	end := new(big.Int).Add(start, new(big.Int).Sub(size, big.NewInt(1)))
	return end.Cmp(addrInt(r.Last)) <= 0
}

func FuzzParseCommunity(f *testing.F) {
	for s := range goodCommunities {
		f.Add(s)
	}
	for s := range badCommunities {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		c, err := ParseCommunity(s)
		if _, bad := badCommunities[s]; bad && err == nil {
			t.Fatalf("ParseCommunity(%q) accepted an input the table calls invalid: %v", s, c)
		}
		if _, good := goodCommunities[s]; good && err != nil {
			t.Fatalf("ParseCommunity(%q) refused an input the table calls valid: %v", s, err)
		}
		if err != nil {
			if c != (Community{}) {
				t.Fatalf("ParseCommunity(%q) returned %v with its error", s, c)
			}
			return
		}
		if !c.Large && (c.Global != 0 || c.Local1 != 0 || c.Local2 != 0) {
			t.Fatalf("ParseCommunity(%q) = %#v: a standard community with large parts", s, c)
		}
		if c.Large && c.Standard != 0 {
			t.Fatalf("ParseCommunity(%q) = %#v: a large community with a standard value", s, c)
		}
		if !IsCommunityValue(s) {
			t.Fatalf("ParseCommunity(%q) accepted what IsCommunityValue calls an alias name", s)
		}
		back, err := ParseCommunity(c.String())
		if err != nil || back != c {
			t.Fatalf("ParseCommunity(%q) = %#v, whose String %q parses back as %#v, %v", s, c, c.String(), back, err)
		}
		// Written without leading zeros, the input is the String.
		if !hasLeadingZero(s) && c.String() != s {
			t.Fatalf("ParseCommunity(%q).String() = %q", s, c.String())
		}
	})
}

// hasLeadingZero reports whether a number in a community has a leading zero.
func hasLeadingZero(s string) bool {
	for _, n := range strings.Split(strings.TrimPrefix(s, "large:"), ":") {
		if len(n) > 1 && n[0] == '0' {
			return true
		}
	}
	return false
}
