package bgp

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	api "github.com/osrg/gobgp/v3/api"
	gobgplog "github.com/osrg/gobgp/v3/pkg/log"
	"github.com/osrg/gobgp/v3/pkg/packet/bgp"

	"github.com/go-logr/logr"
	"github.com/go-logr/logr/funcr"
	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	clocktesting "k8s.io/utils/clock/testing"
)

func TestNewValidatesConfig(t *testing.T) {
	good := Config{RouterID: netip.MustParseAddr("10.0.0.1"), ASN: 64512, ListenPort: -1}
	tests := map[string]struct {
		change  func(*Config)
		wantErr string
	}{
		"valid":                  {change: func(*Config) {}},
		"listen on 179":          {change: func(c *Config) { c.ListenPort = 0 }},
		"listen addresses":       {change: func(c *Config) { c.ListenAddresses = []string{"127.0.0.1", "::1"} }},
		"no router ID":           {change: func(c *Config) { c.RouterID = netip.Addr{} }, wantErr: "router ID"},
		"IPv6 router ID":         {change: func(c *Config) { c.RouterID = netip.IPv6Loopback() }, wantErr: "router ID"},
		"no ASN":                 {change: func(c *Config) { c.ASN = 0 }, wantErr: "ASN"},
		"port too low":           {change: func(c *Config) { c.ListenPort = -2 }, wantErr: "listen port"},
		"port too high":          {change: func(c *Config) { c.ListenPort = 65536 }, wantErr: "listen port"},
		"invalid listen address": {change: func(c *Config) { c.ListenAddresses = []string{"nope"} }, wantErr: "listen address"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			cfg := good
			tc.change(&cfg)
			_, err := New(cfg)
			checkErr(t, err, tc.wantErr)
		})
	}
}

func checkErr(t *testing.T, err error, want string) {
	t.Helper()
	switch {
	case want == "" && err != nil:
		t.Fatalf("Unexpected error: %v", err)
	case want != "" && (err == nil || !strings.Contains(err.Error(), want)):
		t.Fatalf("Error = %v, want one containing %q", err, want)
	}
}

func TestValidatePeers(t *testing.T) {
	ok := Peer{Name: "a", Address: netip.MustParseAddr("192.0.2.1"), PeerASN: 64513}
	with := func(f func(*Peer)) Peer {
		p := ok
		f(&p)
		return p
	}
	tests := map[string]struct {
		peers   []Peer
		wantErr string
	}{
		"none":                  {},
		"valid":                 {peers: []Peer{ok, with(func(p *Peer) { p.Name, p.Address = "b", netip.MustParseAddr("2001:db8::1") })}},
		"timers":                {peers: []Peer{with(func(p *Peer) { p.HoldTime, p.KeepaliveTime, p.ConnectTime = 9*time.Second, 3*time.Second, time.Second })}},
		"no name":               {peers: []Peer{with(func(p *Peer) { p.Name = "" })}, wantErr: "name is empty"},
		"no address":            {peers: []Peer{with(func(p *Peer) { p.Address = netip.Addr{} })}, wantErr: "address"},
		"unspecified address":   {peers: []Peer{with(func(p *Peer) { p.Address = netip.IPv4Unspecified() })}, wantErr: "address"},
		"zone":                  {peers: []Peer{with(func(p *Peer) { p.Address = netip.MustParseAddr("fe80::1%eth0") })}, wantErr: "zone"},
		"mapped":                {peers: []Peer{with(func(p *Peer) { p.Address = netip.MustParseAddr("::ffff:192.0.2.1") })}, wantErr: "IPv4-mapped"},
		"no peer ASN":           {peers: []Peer{with(func(p *Peer) { p.PeerASN = 0 })}, wantErr: "peer ASN"},
		"source of other":       {peers: []Peer{with(func(p *Peer) { p.SourceAddress = netip.IPv6Loopback() })}, wantErr: "source address"},
		"fractional hold time":  {peers: []Peer{with(func(p *Peer) { p.HoldTime = 3500 * time.Millisecond })}, wantErr: "whole number"},
		"short hold time":       {peers: []Peer{with(func(p *Peer) { p.HoldTime = 2 * time.Second })}, wantErr: "less than 3s"},
		"negative connect time": {peers: []Peer{with(func(p *Peer) { p.ConnectTime = -time.Second })}, wantErr: "connect time"},
		"keepalive too long":    {peers: []Peer{with(func(p *Peer) { p.HoldTime, p.KeepaliveTime = 9*time.Second, 9*time.Second })}, wantErr: "keepalive"},
		"duplicate name":        {peers: []Peer{ok, with(func(p *Peer) { p.Address = netip.MustParseAddr("192.0.2.2") })}, wantErr: "a second peer of this name"},
		"duplicate address":     {peers: []Peer{ok, with(func(p *Peer) { p.Name = "b" })}, wantErr: `also peer "a"`},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			want, skipped := validatePeers(tc.peers)
			var err error
			if len(skipped) > 0 {
				err = &SkippedPeersError{Peers: skipped}
			}
			checkErr(t, err, tc.wantErr)
			if len(want)+len(skipped) != len(tc.peers) {
				t.Errorf("%d peers kept and %d skipped of %d", len(want), len(skipped), len(tc.peers))
			}
		})
	}
}

func TestMergePaths(t *testing.T) {
	p := netip.MustParsePrefix
	tests := map[string]struct {
		paths   []Path
		want    map[netip.Prefix]*pathSpec
		wantErr string
	}{
		"empty": {want: map[netip.Prefix]*pathSpec{}},
		"one path to every peer": {
			paths: []Path{{Prefix: p("192.0.2.1/32"), Communities: []uint32{3, 1, 3}}},
			want: map[netip.Prefix]*pathSpec{
				p("192.0.2.1/32"): {prefix: p("192.0.2.1/32"), attrs: attrs{communities: []uint32{1, 3}}, all: true},
			},
		},
		"merged": {
			paths: []Path{
				{Prefix: p("2001:db8::1/128"), LocalPref: u32(50), Communities: []uint32{2}, LargeCommunities: [][3]uint32{{1, 2, 3}}, Peers: []string{"b"}},
				{Prefix: p("2001:db8::1/128"), NextHop: netip.MustParseAddr("2001:db8::9"), Communities: []uint32{1, 2}, LargeCommunities: [][3]uint32{{1, 2, 3}, {1, 1, 1}}, Peers: []string{"a", "b"}},
				{Prefix: p("2001:db8::1/128"), LocalPref: u32(50)},
			},
			want: map[netip.Prefix]*pathSpec{
				p("2001:db8::1/128"): {
					prefix: p("2001:db8::1/128"),
					attrs: attrs{
						nextHop:      netip.MustParseAddr("2001:db8::9"),
						hasLocalPref: true, localPref: 50,
						communities: []uint32{1, 2},
						large:       [][3]uint32{{1, 1, 1}, {1, 2, 3}},
					},
					// The third path goes to every peer.
					all: true,
				},
			},
		},
		"restricted": {
			paths: []Path{{Prefix: p("10.0.0.0/8"), Peers: []string{"a"}}, {Prefix: p("10.0.0.0/8"), Peers: []string{"c", "a"}}},
			want: map[netip.Prefix]*pathSpec{
				p("10.0.0.0/8"): {prefix: p("10.0.0.0/8"), peers: map[string]struct{}{"a": {}, "c": {}}},
			},
		},
		"conflicting local preferences": {
			paths:   []Path{{Prefix: p("192.0.2.1/32"), LocalPref: u32(1)}, {Prefix: p("192.0.2.1/32"), LocalPref: u32(2)}},
			wantErr: "path 192.0.2.1/32: conflicting local preferences 1 and 2",
		},
		"conflicting next hops": {
			paths: []Path{
				{Prefix: p("192.0.2.1/32"), NextHop: netip.MustParseAddr("192.0.2.8")},
				{Prefix: p("192.0.2.1/32"), NextHop: netip.MustParseAddr("192.0.2.9")},
			},
			wantErr: "conflicting next hops",
		},
		"invalid prefix":     {paths: []Path{{}}, wantErr: "prefix is not valid"},
		"host bits":          {paths: []Path{{Prefix: p("192.0.2.1/24")}}, wantErr: "did you mean 192.0.2.0/24"},
		"mapped prefix":      {paths: []Path{{Prefix: p("::ffff:192.0.2.1/128")}}, wantErr: "IPv4-mapped"},
		"next hop of other":  {paths: []Path{{Prefix: p("192.0.2.1/32"), NextHop: netip.IPv6Loopback()}}, wantErr: "family"},
		"reserved community": {paths: []Path{{Prefix: p("192.0.2.1/32"), LargeCommunities: [][3]uint32{{markerGlobalAdmin, markerLocal1, 7}}}}, wantErr: "reserved"},
		"empty peer name":    {paths: []Path{{Prefix: p("192.0.2.1/32"), Peers: []string{""}}}, wantErr: "empty peer name"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got, err := mergePaths(tc.paths)
			checkErr(t, err, tc.wantErr)
			if tc.wantErr != "" {
				return
			}
			if diff := cmp.Diff(tc.want, got, cmp.AllowUnexported(pathSpec{}, attrs{}), cmpopts.EquateComparable(netip.Addr{}, netip.Prefix{})); diff != "" {
				t.Errorf("mergePaths (-want +got):\n%s", diff)
			}
		})
	}
}

func TestPathSpecAllows(t *testing.T) {
	all := &pathSpec{all: true}
	some := &pathSpec{peers: map[string]struct{}{"a": {}}}
	for _, tc := range []struct {
		spec *pathSpec
		peer string
		want bool
	}{{all, "x", true}, {some, "a", true}, {some, "b", false}} {
		if got := tc.spec.allows(tc.peer); got != tc.want {
			t.Errorf("%+v allows %q = %t, want %t", tc.spec, tc.peer, got, tc.want)
		}
	}
}

func TestPeerHidesPassword(t *testing.T) {
	p := Peer{Name: "r", Address: netip.MustParseAddr("192.0.2.1"), PeerASN: 1, Password: "hunter2-secret"}
	var logged strings.Builder
	log := funcr.New(func(prefix, args string) { logged.WriteString(args) }, funcr.Options{})
	log.Info("Peer", "peer", p, "pointer", &p)
	for name, s := range map[string]string{
		"String": p.String(),
		"%v":     fmt.Sprintf("%v", p),
		"%+v":    fmt.Sprintf("%+v", p),
		"%#v":    fmt.Sprintf("%#v", p),
		"%s ptr": fmt.Sprintf("%s", &p),
		"logr":   logged.String(),
	} {
		if strings.Contains(s, "hunter2") || !strings.Contains(s, redactedText) {
			t.Errorf("%s = %s, want the password redacted", name, s)
		}
	}
	if (Peer{Name: "x"}).String() == "" || strings.Contains((Peer{Name: "x"}).String(), redactedText) {
		t.Errorf("A peer without password should not show %q", redactedText)
	}
}

// capture is a logr sink that keeps lines with their verbosity.
func capture(verbosity int) (logr.Logger, *[]string) {
	var lines []string
	return funcr.New(func(prefix, args string) { lines = append(lines, args) }, funcr.Options{Verbosity: verbosity}), &lines
}

func TestLogAdapter(t *testing.T) {
	log, lines := capture(1)
	var observed []string
	a := newLogAdapter(log, func(msg string, _ gobgplog.Fields) { observed = append(observed, msg) })
	a.setSecrets([]string{"s3cret", ""})

	a.Warn("failed to set md5", gobgplog.Fields{"Topic": "Peer", "Key": "192.0.2.1", "Err": errors.New("bad s3cret"), gobgplog.FieldFacility: "x"})
	a.Info("add a peer configuration.", gobgplog.Fields{"Communicated-Reason": "key s3cret", "PeerID": 7, "Data": []byte("s3cret")})
	a.Debug("hidden at V(4)", gobgplog.Fields{"Key": "s3cret"})
	a.Error("failed to connect", gobgplog.Fields{"Error": errors.New("dial s3cret"), "AS": uint32(5)})
	a.Fatal("logic bug", nil)
	a.SetLevel(gobgplog.InfoLevel)
	if a.GetLevel() != gobgplog.DebugLevel {
		t.Errorf("GetLevel = %v, want debug", a.GetLevel())
	}

	want := []string{
		`"level"=0 "msg"="Failed to set md5" "key"="192.0.2.1" "topic"="Peer" "error"="bad [redacted]"`,
		`"level"=1 "msg"="Add a peer configuration" "communicatedReason"="key [redacted]" "data"="[115 51 99 114 101 116]" "peerID"=7`,
		`"msg"="Failed to connect" "error"="dial [redacted]" "as"=5`,
		`"msg"="Logic bug" "error"=null "severity"="fatal"`,
	}
	if diff := cmp.Diff(want, *lines); diff != "" {
		t.Errorf("Log lines (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"failed to set md5", "add a peer configuration.", "hidden at V(4)", "failed to connect", "logic bug"}, observed); diff != "" {
		t.Errorf("Observed messages (-want +got):\n%s", diff)
	}

	defer func() {
		if r := recover(); r != "code logic bug" {
			t.Errorf("Panic recovered %v, want the message", r)
		}
	}()
	a.Panic("code logic bug", nil)
}

func TestLogKeysAndMessages(t *testing.T) {
	for in, want := range map[string]string{
		"Topic": "topic", "Key": "key", "Communicated-Reason": "communicatedReason", "PeerID": "peerID",
		"AS": "as", "VRF": "vrf", "old": "old", "Duration": "duration", "_x": "x",
	} {
		if got := lowerCamel(in); got != want {
			t.Errorf("lowerCamel(%q) = %q, want %q", in, got, want)
		}
	}
	for in, want := range map[string]string{
		"": "", "peer up": "Peer up", "Peer Down": "Peer Down", "freed fsm.h.": "Freed fsm.h", "état": "État",
	} {
		if got := capitalise(in); got != want {
			t.Errorf("capitalise(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestStatusObserve(t *testing.T) {
	addr := netip.MustParseAddr("192.0.2.1")
	tests := map[string]struct {
		msg    string
		fields gobgplog.Fields
		want   string
	}{
		"peer down": {msg: "Peer Down", fields: gobgplog.Fields{"Reason": "hold-timer-expired"}, want: "hold-timer-expired"},
		"stopped":   {msg: "Peer Down", fields: gobgplog.Fields{"Reason": "dying"}, want: "peer deconfigured"},
		"received notification": {
			msg:    "received notification",
			fields: gobgplog.Fields{"Code": uint8(bgp.BGP_ERROR_CEASE), "Subcode": uint8(bgp.BGP_ERROR_SUB_ADMINISTRATIVE_SHUTDOWN), "Communicated-Reason": "maintenance"},
			want:   `notification-received code 6(cease) subcode 2(administrative shutdown) ("maintenance")`,
		},
		"sent notification": {
			msg:    "sent notification",
			fields: gobgplog.Fields{"Data": bgp.NewMessageError(bgp.BGP_ERROR_OPEN_MESSAGE_ERROR, bgp.BGP_ERROR_SUB_BAD_PEER_AS, nil, "bad AS")},
			want:   "notification-sent code 2(open) subcode 2(bad peer as): bad AS",
		},
		"connection refused": {
			msg:    "failed to connect",
			fields: gobgplog.Fields{"Error": errors.New("dial tcp: connection refused with password pw1")},
			want:   "connecting: dial tcp: connection refused with password [redacted]",
		},
		"hold timer":     {msg: "hold timer expired", want: "hold-timer-expired"},
		"other message":  {msg: "Peer Up"},
		"other topic":    {msg: "Peer Down", fields: gobgplog.Fields{"Topic": "Table"}},
		"unknown peer":   {msg: "Peer Down", fields: gobgplog.Fields{"Key": "192.0.2.99"}},
		"not an address": {msg: "Peer Down", fields: gobgplog.Fields{"Key": "eth0"}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			s := newStatus()
			s.setPeers(map[netip.Addr]string{addr: "r"})
			f := gobgplog.Fields{"Topic": "Peer", "Key": addr.String()}
			for k, v := range tc.fields {
				f[k] = v
			}
			redact := func(x string) string { return strings.ReplaceAll(x, "pw1", redactedText) }
			s.observe(tc.msg, f, redact)
			if got := s.lastError(addr); got != tc.want {
				t.Errorf("Last error = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestStatusTransitions(t *testing.T) {
	a := netip.MustParseAddr("192.0.2.1")
	at := time.Unix(1000, 0)
	s := newStatus()
	s.setPeers(map[netip.Addr]string{a: "r"})
	type result struct {
		ev PeerEvent
		ok bool
	}
	step := func(state string, adminDown bool) result {
		ev, ok := s.transition(a, state, adminDown, at)
		return result{ev, ok}
	}
	s.setError(a, "connecting: refused")
	for _, tc := range []struct {
		name  string
		do    func() result
		want  result
		after func()
	}{
		{name: "active is not a change", do: func() result { return step("active", false) }},
		{name: "up", do: func() result { return step("established", false) }, want: result{PeerEvent{Name: "r", Address: a, Up: true, State: "established", At: at}, true}},
		{name: "up again is not a change", do: func() result { return step("established", false) }},
		{name: "down without a new error", do: func() result { return step("idle", false) }, want: result{PeerEvent{Name: "r", Address: a, State: "idle", At: at, Reason: "session closed"}, true}},
		{name: "up", do: func() result { return step("established", false) }, want: result{PeerEvent{Name: "r", Address: a, Up: true, State: "established", At: at}, true}},
		{name: "down with an error", do: func() result {
			s.setError(a, "hold-timer-expired")
			return step("active", false)
		}, want: result{PeerEvent{Name: "r", Address: a, State: "active", At: at, Reason: "hold-timer-expired"}, true}},
		{name: "up", do: func() result { return step("established", false) }, want: result{PeerEvent{Name: "r", Address: a, Up: true, State: "established", At: at}, true}},
		{name: "admin down", do: func() result { return step("idle", true) }, want: result{PeerEvent{Name: "r", Address: a, State: "idle", At: at, Reason: "administratively down"}, true}},
		{name: "up", do: func() result { return step("established", false) }, want: result{PeerEvent{Name: "r", Address: a, Up: true, State: "established", At: at}, true}},
		{name: "admin down wins over an error", do: func() result {
			s.setError(a, "read-failed")
			return step("idle", true)
		}, want: result{PeerEvent{Name: "r", Address: a, State: "idle", At: at, Reason: "administratively down"}, true}},
		{name: "up", do: func() result { return step("established", false) }, want: result{PeerEvent{Name: "r", Address: a, Up: true, State: "established", At: at}, true}},
		{name: "deleted", do: func() result {
			s.unconfigure(a)
			return step("idle", false)
		}, want: result{PeerEvent{Name: "r", Address: a, State: "idle", At: at, Reason: "peer deleted"}, true}},
		{name: "forgotten", do: func() result { return step("established", false) }},
	} {
		if diff := cmp.Diff(tc.want, tc.do(), cmp.AllowUnexported(result{}), cmpopts.EquateComparable(netip.Addr{})); diff != "" {
			t.Errorf("%s (-want +got):\n%s", tc.name, diff)
		}
	}
}

func TestEventsDropOldest(t *testing.T) {
	clk := clocktesting.NewFakePassiveClock(time.Unix(1, 0))
	s, err := New(Config{RouterID: netip.MustParseAddr("10.0.0.1"), ASN: 1, ListenPort: -1, Clock: clk, Log: logr.Discard()})
	if err != nil {
		t.Fatal(err)
	}
	a := netip.MustParseAddr("192.0.2.1")
	s.status.setPeers(map[netip.Addr]string{a: "r"})
	state := func(st api.PeerState_SessionState) *api.WatchEventResponse {
		return &api.WatchEventResponse{Event: &api.WatchEventResponse_Peer{Peer: &api.WatchEventResponse_PeerEvent{
			Type: api.WatchEventResponse_PeerEvent_STATE,
			Peer: &api.Peer{State: &api.PeerState{NeighborAddress: a.String(), SessionState: st}},
		}}}
	}
	const n = 3 * eventBuffer
	for i := range n {
		clk.SetTime(time.Unix(int64(i), 0))
		s.onWatchEvent(state(api.PeerState_ESTABLISHED))
		s.onWatchEvent(state(api.PeerState_ACTIVE))
	}
	if got := len(s.Events()); got != eventBuffer {
		t.Fatalf("%d events buffered, want %d", got, eventBuffer)
	}
	first := <-s.Events()
	if want := time.Unix(n-eventBuffer/2, 0); !first.At.Equal(want) || !first.Up {
		t.Errorf("Oldest kept event = %+v, want the up at %v", first, want)
	}
	// An INIT event is not a change.
	init := state(api.PeerState_ESTABLISHED)
	init.GetPeer().Type = api.WatchEventResponse_PeerEvent_INIT
	s.onWatchEvent(init)
	if got := len(s.Events()); got != eventBuffer-1 {
		t.Errorf("%d events buffered after an INIT event, want %d", got, eventBuffer-1)
	}
}

func TestRunOnceAndStopped(t *testing.T) {
	s, err := New(Config{RouterID: netip.MustParseAddr("10.0.0.1"), ASN: 1, ListenPort: -1, Log: logr.Discard()})
	if err != nil {
		t.Fatal(err)
	}
	if s.Peers() != nil {
		t.Errorf("Peers before Run = %v, want none", s.Peers())
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := s.Run(ctx); err != nil {
		t.Fatalf("Run: %v", err)
	}
	if err := s.Run(context.Background()); err == nil {
		t.Errorf("Second Run succeeded")
	}
	if err := s.SetPeers(nil); !errors.Is(err, ErrStopped) {
		t.Errorf("SetPeers after Run = %v, want ErrStopped", err)
	}
	if err := s.SetPaths(nil); !errors.Is(err, ErrStopped) {
		t.Errorf("SetPaths after Run = %v, want ErrStopped", err)
	}
	if err := s.SetPeerDown("x", true); !errors.Is(err, ErrStopped) {
		t.Errorf("SetPeerDown after Run = %v, want ErrStopped", err)
	}
}

func TestSettersSkipInvalidPeersRejectInvalidPaths(t *testing.T) {
	s, err := New(Config{RouterID: netip.MustParseAddr("10.0.0.1"), ASN: 1, ListenPort: -1, Log: logr.Discard()})
	if err != nil {
		t.Fatal(err)
	}
	good := Peer{Name: "a", Address: netip.MustParseAddr("192.0.2.1"), PeerASN: 2}
	if err := s.SetPeers([]Peer{good}); err != nil {
		t.Fatalf("SetPeers: %v", err)
	}
	// One peer that cannot be configured is left out; the others are
	// applied (one bad peer never takes the node's other sessions down).
	other := Peer{Name: "c", Address: netip.MustParseAddr("192.0.2.3"), PeerASN: 2}
	sameAddr := Peer{Name: "d", Address: netip.MustParseAddr("192.0.2.1"), PeerASN: 3}
	err = s.SetPeers([]Peer{good, {Name: "b"}, other, sameAddr})
	var skipped *SkippedPeersError
	if !errors.As(err, &skipped) {
		t.Fatalf("SetPeers with an invalid peer returned %v, want a *SkippedPeersError", err)
	}
	if len(skipped.Peers) != 2 || skipped.Peers["b"] == nil || skipped.Peers["d"] == nil {
		t.Errorf("skipped %v, want b (invalid) and d (a's address)", skipped.Peers)
	}
	if _, ok := s.wantPeers["a"]; !ok || len(s.wantPeers) != 2 || s.wantPeers["c"] != other {
		t.Errorf("peers after a SetPeers with one bad peer: %v, want a and c", s.wantPeers)
	}
	if err := s.SetPaths([]Path{{Prefix: netip.MustParsePrefix("192.0.2.0/24")}, {}}); err == nil {
		t.Fatalf("SetPaths with an invalid path succeeded")
	}
	if len(s.wantPaths) != 0 {
		t.Errorf("An invalid SetPaths changed the paths to %v", s.wantPaths)
	}
	// SetPeerDown knows configured peers before Run.
	if err := s.SetPeerDown("a", true); err != nil {
		t.Errorf("SetPeerDown before Run: %v", err)
	}
	if err := s.SetPeerDown("b", true); err == nil {
		t.Errorf("SetPeerDown of an unknown peer succeeded")
	}
}

func TestAPIPeer(t *testing.T) {
	p := Peer{
		Name: "r", Address: netip.MustParseAddr("2001:db8::1"), Port: 1179, PeerASN: 65001,
		SourceAddress: netip.MustParseAddr("2001:db8::2"), EBGPMultiHop: true,
		HoldTime: 9 * time.Second, KeepaliveTime: 3 * time.Second, ConnectTime: 5 * time.Second,
		Password: "pw", GracefulRestart: true, DualStack: true,
	}
	got := apiPeer(p, 64512, true)
	checks := map[string]bool{
		"address":       got.Conf.NeighborAddress == "2001:db8::1",
		"ASNs":          got.Conf.PeerAsn == 65001 && got.Conf.LocalAsn == 64512,
		"password":      got.Conf.AuthPassword == "pw",
		"admin down":    got.Conf.AdminDown,
		"transport":     got.Transport.RemotePort == 1179 && got.Transport.LocalAddress == "2001:db8::2",
		"timers":        got.Timers.Config.HoldTime == 9 && got.Timers.Config.KeepaliveInterval == 3 && got.Timers.Config.ConnectRetry == 5,
		"multihop":      got.EbgpMultihop.GetEnabled() && got.EbgpMultihop.GetMultihopTtl() == 255,
		"GR":            got.GracefulRestart.GetEnabled() && got.GracefulRestart.GetRestartTime() == 120,
		"two families":  len(got.AfiSafis) == 2 && got.AfiSafis[0].Config.Family.Afi == api.Family_AFI_IP && got.AfiSafis[1].Config.Family.Afi == api.Family_AFI_IP6,
		"GR per family": got.AfiSafis[0].MpGracefulRestart.Config.Enabled && got.AfiSafis[1].MpGracefulRestart.Config.Enabled,
	}
	for name, ok := range checks {
		if !ok {
			t.Errorf("apiPeer: wrong %s in %v", name, got)
		}
	}
	plain := apiPeer(Peer{Name: "r", Address: netip.MustParseAddr("192.0.2.1"), PeerASN: 1, LocalASN: 7}, 64512, false)
	if plain.EbgpMultihop != nil || plain.GracefulRestart != nil || len(plain.AfiSafis) != 1 || plain.Conf.LocalAsn != 7 || plain.Transport.LocalAddress != "" {
		t.Errorf("apiPeer of a plain IPv4 peer = %v", plain)
	}
}
