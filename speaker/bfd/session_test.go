package bfd_test

import (
	"errors"
	"math/rand/v2"
	"net/netip"
	"testing"
	"time"

	clocktesting "k8s.io/utils/clock/testing"

	"github.com/lbstack/lbstack/speaker/bfd"
)

const (
	localDiscr  = 0x0a0a0a0a
	remoteDiscr = 0x0b0b0b0b
)

var t0 = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

// fixedRand always draws the lowest (max false) or highest (max true)
// value, which gives the longest or the shortest jittered interval.
type fixedRand struct{ max bool }

func (r fixedRand) Int64N(n int64) int64 {
	if r.max {
		return n - 1
	}
	return 0
}

func (fixedRand) Uint32() uint32 { return 1 }

// harness drives one Session with a fake clock, as the Manager would.
type harness struct {
	t   *testing.T
	clk *clocktesting.FakeClock
	s   *bfd.Session
	// sent records every packet with the time it was sent.
	sent []sentPacket
	// changes records every state change.
	changes []bfd.StateChange
}

type sentPacket struct {
	at time.Time
	p  bfd.ControlPacket
}

func newHarness(t *testing.T, cfg bfd.SessionConfig, rnd bfd.Rand) *harness {
	t.Helper()
	if !cfg.Peer.IsValid() {
		cfg.Peer = netip.MustParseAddr("192.0.2.1")
	}
	if rnd == nil {
		rnd = rand.New(rand.NewPCG(1, 2))
	}
	clk := clocktesting.NewFakeClock(t0)
	s, err := bfd.NewSession(cfg, localDiscr, clk, rnd)
	if err != nil {
		t.Fatalf("NewSession() error = %v", err)
	}
	return &harness{t: t, clk: clk, s: s}
}

func (h *harness) record(out bfd.Output) bfd.Output {
	if out.Packet != nil {
		h.sent = append(h.sent, sentPacket{at: h.clk.Now(), p: *out.Packet})
	}
	if out.Change != nil {
		h.changes = append(h.changes, *out.Change)
	}
	return out
}

func (h *harness) recv(p bfd.ControlPacket) bfd.Output {
	h.t.Helper()
	out, err := h.s.Receive(&p)
	if err != nil {
		h.t.Fatalf("Receive(%+v) error = %v", p, err)
	}
	return h.record(out)
}

// runFor moves the clock forward by d, calling Tick at every deadline on
// the way.
func (h *harness) runFor(d time.Duration) {
	end := h.clk.Now().Add(d)
	for {
		dl := h.s.Deadline()
		if dl.IsZero() || dl.After(end) {
			h.clk.SetTime(end)
			return
		}
		if dl.After(h.clk.Now()) {
			h.clk.SetTime(dl)
		}
		h.record(h.s.Tick())
	}
}

func (h *harness) lastSent() bfd.ControlPacket {
	h.t.Helper()
	if len(h.sent) == 0 {
		h.t.Fatal("no packet sent")
	}
	return h.sent[len(h.sent)-1].p
}

func (h *harness) wantState(want bfd.State) {
	h.t.Helper()
	if got := h.s.State(); got != want {
		h.t.Fatalf("State() = %s, want %s", got, want)
	}
}

// peer builds the peer's packet. A nonzero yourDiscr is filled with ours.
func peer(state bfd.State, tx, rx time.Duration, mult uint8) bfd.ControlPacket {
	p := bfd.ControlPacket{
		State: state, DetectMult: mult, MyDiscriminator: remoteDiscr,
		DesiredMinTxInterval: tx, RequiredMinRxInterval: rx,
	}
	if state == bfd.StateInit || state == bfd.StateUp {
		p.YourDiscriminator = localDiscr
	}
	return p
}

func withFlags(p bfd.ControlPacket, poll, final bool) bfd.ControlPacket {
	p.Poll, p.Final = poll, final
	return p
}

// bringUp runs the three-way handshake and the Poll Sequence that follows
// it, with a peer that uses tx, rx and mult once Up.
func (h *harness) bringUp(tx, rx time.Duration, mult uint8) {
	h.t.Helper()
	h.recv(peer(bfd.StateDown, time.Second, rx, mult))
	h.recv(peer(bfd.StateUp, tx, rx, mult))
	h.wantState(bfd.StateUp)
	h.recv(withFlags(peer(bfd.StateUp, tx, rx, mult), false, true))
	if h.s.Status().PollActive {
		h.t.Fatal("poll still active after Final")
	}
	h.sent, h.changes = nil, nil
}

func TestSessionHandshake(t *testing.T) {
	type step struct {
		remote     bfd.State
		wantState  bfd.State
		wantChange bool
		wantSent   bool
	}
	tests := map[string]struct {
		passive bool
		steps   []step
	}{
		"peer Down, then Up": {steps: []step{
			{remote: bfd.StateDown, wantState: bfd.StateInit, wantChange: true, wantSent: true},
			{remote: bfd.StateUp, wantState: bfd.StateUp, wantChange: true, wantSent: true},
		}},
		"peer already Init": {steps: []step{
			{remote: bfd.StateInit, wantState: bfd.StateUp, wantChange: true, wantSent: true},
		}},
		"peer Down twice, then Init": {steps: []step{
			{remote: bfd.StateDown, wantState: bfd.StateInit, wantChange: true, wantSent: true},
			{remote: bfd.StateDown, wantState: bfd.StateInit},
			{remote: bfd.StateInit, wantState: bfd.StateUp, wantChange: true, wantSent: true},
		}},
		"peer Up while we are Down is ignored": {steps: []step{
			{remote: bfd.StateUp, wantState: bfd.StateDown},
		}},
		"peer AdminDown while we are Down is ignored": {steps: []step{
			{remote: bfd.StateAdminDown, wantState: bfd.StateDown},
		}},
		"passive answers the first packet": {passive: true, steps: []step{
			{remote: bfd.StateDown, wantState: bfd.StateInit, wantChange: true, wantSent: true},
			{remote: bfd.StateUp, wantState: bfd.StateUp, wantChange: true, wantSent: true},
		}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			h := newHarness(t, bfd.SessionConfig{DesiredMinTx: 100 * time.Millisecond, RequiredMinRx: 100 * time.Millisecond, Passive: tc.passive}, nil)
			if tc.passive {
				if d := h.s.Deadline(); !d.IsZero() {
					t.Fatalf("passive session has deadline %v before hearing from the peer", d)
				}
				if out := h.s.Tick(); out.Packet != nil {
					t.Fatalf("passive session sent %+v before hearing from the peer", out.Packet)
				}
			}
			for i, st := range tc.steps {
				old := h.s.State()
				out := h.recv(peer(st.remote, time.Second, 100*time.Millisecond, 3))
				if got := h.s.State(); got != st.wantState {
					t.Fatalf("step %d: State() = %s, want %s", i, got, st.wantState)
				}
				if (out.Change != nil) != st.wantChange {
					t.Fatalf("step %d: change = %+v, want one: %t", i, out.Change, st.wantChange)
				}
				if out.Change != nil {
					want := bfd.StateChange{Peer: netip.MustParseAddr("192.0.2.1"), Old: old, New: st.wantState, Diag: bfd.DiagNone, RemoteState: st.remote, At: t0}
					if *out.Change != want {
						t.Fatalf("step %d: change = %+v, want %+v", i, *out.Change, want)
					}
				}
				if (out.Packet != nil) != st.wantSent {
					t.Fatalf("step %d: packet = %+v, want one: %t", i, out.Packet, st.wantSent)
				}
				if out.Packet != nil {
					if out.Packet.State != st.wantState || out.Packet.YourDiscriminator != remoteDiscr || out.Packet.MyDiscriminator != localDiscr {
						t.Fatalf("step %d: sent %+v, want state %s between %#x and %#x", i, out.Packet, st.wantState, localDiscr, remoteDiscr)
					}
				}
			}
			if h.s.State() == bfd.StateUp {
				// Going Up lowers our Desired Min TX from the idle 1 s to
				// 100 ms, which the peer must confirm.
				p := h.lastSent()
				if !p.Poll || p.DesiredMinTxInterval != 100*time.Millisecond {
					t.Errorf("first Up packet = %+v, want a Poll with Desired Min TX 100ms", p)
				}
				if got := h.s.Status().Transitions; got != uint64(len(h.changes)) {
					t.Errorf("Transitions = %d, want %d", got, len(h.changes))
				}
			}
		})
	}
}

func TestSessionDetectionTimeout(t *testing.T) {
	tests := map[string]struct {
		ourRx      time.Duration
		remoteTx   time.Duration
		remoteMult uint8
		wantDetect time.Duration
	}{
		"remote TX decides":            {ourRx: 100 * time.Millisecond, remoteTx: 200 * time.Millisecond, remoteMult: 3, wantDetect: 600 * time.Millisecond},
		"our RX decides":               {ourRx: 500 * time.Millisecond, remoteTx: 100 * time.Millisecond, remoteMult: 3, wantDetect: 1500 * time.Millisecond},
		"remote multiplier, not ours":  {ourRx: 100 * time.Millisecond, remoteTx: 100 * time.Millisecond, remoteMult: 5, wantDetect: 500 * time.Millisecond},
		"remote multiplier 1, BIRD 50": {ourRx: 50 * time.Millisecond, remoteTx: 50 * time.Millisecond, remoteMult: 1, wantDetect: 50 * time.Millisecond},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			h := newHarness(t, bfd.SessionConfig{DesiredMinTx: 100 * time.Millisecond, RequiredMinRx: tc.ourRx, DetectMultiplier: 3}, nil)
			h.bringUp(tc.remoteTx, 100*time.Millisecond, tc.remoteMult)
			if got := h.s.Status().DetectionTime; got != tc.wantDetect {
				t.Fatalf("DetectionTime = %s, want %s", got, tc.wantDetect)
			}
			h.runFor(tc.wantDetect - time.Microsecond)
			h.wantState(bfd.StateUp)
			h.runFor(time.Microsecond)
			h.wantState(bfd.StateDown)
			if len(h.changes) != 1 {
				t.Fatalf("changes = %+v, want one", h.changes)
			}
			want := bfd.StateChange{Peer: netip.MustParseAddr("192.0.2.1"), Old: bfd.StateUp, New: bfd.StateDown, Diag: bfd.DiagControlDetectionTimeExpired, RemoteState: bfd.StateDown, At: t0.Add(tc.wantDetect)}
			if h.changes[0] != want {
				t.Errorf("change = %+v, want %+v", h.changes[0], want)
			}
			p := h.lastSent()
			if p.State != bfd.StateDown || p.Diag != bfd.DiagControlDetectionTimeExpired || p.YourDiscriminator != 0 || p.Poll {
				t.Errorf("packet after timeout = %+v, want Down, diag 1, no discriminator, no poll", p)
			}
			if p.DesiredMinTxInterval != bfd.SlowTxInterval {
				t.Errorf("Desired Min TX after timeout = %s, want %s", p.DesiredMinTxInterval, bfd.SlowTxInterval)
			}
			if st := h.s.Status(); st.RemoteDiscriminator != 0 || st.RemoteState != bfd.StateDown {
				t.Errorf("remote after timeout: discriminator %#x state %s, want 0 and Down", st.RemoteDiscriminator, st.RemoteState)
			}
		})
	}
}

func TestSessionInitTimesOut(t *testing.T) {
	h := newHarness(t, bfd.SessionConfig{}, nil)
	h.recv(peer(bfd.StateDown, time.Second, time.Second, 3))
	h.wantState(bfd.StateInit)
	h.runFor(3 * time.Second)
	h.wantState(bfd.StateDown)
	if c := h.changes[len(h.changes)-1]; c.Diag != bfd.DiagControlDetectionTimeExpired {
		t.Errorf("diag = %s, want %s", c.Diag, bfd.DiagControlDetectionTimeExpired)
	}
}

func TestSessionNeighborSignalsDown(t *testing.T) {
	tests := map[string]struct {
		up         bool
		remote     bfd.State
		wantState  bfd.State
		wantChange bool
	}{
		"Up, peer Down":        {up: true, remote: bfd.StateDown, wantState: bfd.StateDown, wantChange: true},
		"Up, peer AdminDown":   {up: true, remote: bfd.StateAdminDown, wantState: bfd.StateDown, wantChange: true},
		"Init, peer AdminDown": {remote: bfd.StateAdminDown, wantState: bfd.StateDown, wantChange: true},
		"Init, peer Down":      {remote: bfd.StateDown, wantState: bfd.StateInit},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			h := newHarness(t, bfd.SessionConfig{DesiredMinTx: 100 * time.Millisecond}, nil)
			if tc.up {
				h.bringUp(100*time.Millisecond, 100*time.Millisecond, 3)
			} else {
				h.recv(peer(bfd.StateDown, time.Second, time.Second, 3))
				h.wantState(bfd.StateInit)
				h.changes = nil
			}
			p := peer(tc.remote, time.Second, 100*time.Millisecond, 3)
			p.YourDiscriminator = localDiscr
			out := h.recv(p)
			h.wantState(tc.wantState)
			if !tc.wantChange {
				if out.Change != nil {
					t.Fatalf("change = %+v, want none", out.Change)
				}
				return
			}
			if out.Change == nil || out.Change.Diag != bfd.DiagNeighborSignaledDown || out.Change.RemoteState != tc.remote {
				t.Fatalf("change = %+v, want diag 3 with remote state %s", out.Change, tc.remote)
			}
			if out.Packet == nil || out.Packet.State != bfd.StateDown || out.Packet.Diag != bfd.DiagNeighborSignaledDown {
				t.Errorf("packet = %+v, want Down with diag 3 at once", out.Packet)
			}
		})
	}
}

func TestSessionAdminDown(t *testing.T) {
	h := newHarness(t, bfd.SessionConfig{DesiredMinTx: 100 * time.Millisecond, RequiredMinRx: 100 * time.Millisecond}, nil)
	h.bringUp(100*time.Millisecond, 100*time.Millisecond, 3)

	out := h.record(h.s.AdminDown())
	h.wantState(bfd.StateAdminDown)
	if out.Change == nil || out.Change.New != bfd.StateAdminDown || out.Change.Diag != bfd.DiagAdminDown {
		t.Fatalf("change = %+v, want AdminDown with diag 7", out.Change)
	}
	if out.Packet == nil || out.Packet.State != bfd.StateAdminDown || out.Packet.Diag != bfd.DiagAdminDown {
		t.Fatalf("packet = %+v, want AdminDown with diag 7", out.Packet)
	}
	if out := h.s.AdminDown(); out.Packet != nil || out.Change != nil {
		t.Errorf("second AdminDown() = %+v, want nothing", out)
	}
	// The peer's packets change nothing now, and no detection timer runs.
	if out := h.recv(peer(bfd.StateUp, 100*time.Millisecond, 100*time.Millisecond, 3)); out.Change != nil || out.Packet != nil {
		t.Errorf("Receive() in AdminDown = %+v, want nothing", out)
	}
	h.runFor(10 * time.Second)
	h.wantState(bfd.StateAdminDown)
	if !h.s.Done() {
		t.Fatal("Done() = false after 10s")
	}
	if n := len(h.sent); n != bfd.AdminDownPackets {
		t.Errorf("sent %d AdminDown packets, want %d", n, bfd.AdminDownPackets)
	}
	for _, sp := range h.sent {
		if sp.p.State != bfd.StateAdminDown || sp.p.Diag != bfd.DiagAdminDown || sp.p.Poll {
			t.Errorf("packet = %+v, want AdminDown, diag 7, no poll", sp.p)
		}
	}
	if d := h.s.Deadline(); !d.IsZero() {
		t.Errorf("Deadline() = %v after AdminDown finished, want none", d)
	}

	out = h.record(h.s.AdminUp())
	h.wantState(bfd.StateDown)
	if out.Change == nil || out.Change.Old != bfd.StateAdminDown || out.Packet == nil || out.Packet.State != bfd.StateDown {
		t.Fatalf("AdminUp() = %+v, want a change to Down and a Down packet", out)
	}
	if h.s.Done() {
		t.Error("Done() = true after AdminUp")
	}
}

func TestSessionPollFinal(t *testing.T) {
	const ms = time.Millisecond
	tests := map[string]struct {
		newTx, newRx                   time.Duration
		wantTxDuring, wantTxAfter      time.Duration
		wantDetectDuring, wantDetectAt time.Duration
	}{
		// A longer TX interval waits for the Final so that the peer has
		// stretched its detection time first.
		"slower TX": {newTx: 300 * ms, newRx: 100 * ms, wantTxDuring: 100 * ms, wantTxAfter: 300 * ms, wantDetectDuring: 300 * ms, wantDetectAt: 300 * ms},
		// A shorter TX interval is safe at once.
		"faster TX": {newTx: 50 * ms, newRx: 100 * ms, wantTxDuring: 100 * ms, wantTxAfter: 100 * ms, wantDetectDuring: 300 * ms, wantDetectAt: 300 * ms},
		// A shorter RX interval shortens our detection time only after the
		// Final, a longer one at once.
		"faster RX": {newTx: 100 * ms, newRx: 20 * ms, wantTxDuring: 100 * ms, wantTxAfter: 100 * ms, wantDetectDuring: 300 * ms, wantDetectAt: 150 * ms},
		"slower RX": {newTx: 100 * ms, newRx: 400 * ms, wantTxDuring: 100 * ms, wantTxAfter: 100 * ms, wantDetectDuring: 1200 * ms, wantDetectAt: 1200 * ms},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			cfg := bfd.SessionConfig{Peer: netip.MustParseAddr("192.0.2.1"), DesiredMinTx: 100 * ms, RequiredMinRx: 100 * ms}
			h := newHarness(t, cfg, nil)
			// The peer wants 100 ms from us and sends every 50 ms.
			h.bringUp(50*ms, 100*ms, 3)

			cfg.DesiredMinTx, cfg.RequiredMinRx = tc.newTx, tc.newRx
			out, err := h.s.Reconfigure(cfg)
			if err != nil {
				t.Fatalf("Reconfigure() error = %v", err)
			}
			h.record(out)
			h.wantState(bfd.StateUp)
			if out.Packet == nil || !out.Packet.Poll || out.Packet.DesiredMinTxInterval != tc.newTx || out.Packet.RequiredMinRxInterval != tc.newRx {
				t.Fatalf("packet = %+v, want a Poll advertising %s/%s at once", out.Packet, tc.newTx, tc.newRx)
			}
			st := h.s.Status()
			if !st.PollActive || st.TxInterval != tc.wantTxDuring || st.DetectionTime != tc.wantDetectDuring {
				t.Fatalf("during poll: active %t, TX %s, detection %s; want true, %s, %s", st.PollActive, st.TxInterval, st.DetectionTime, tc.wantTxDuring, tc.wantDetectDuring)
			}
			// Periodic packets keep the P bit until the Final.
			h.runFor(40 * ms)
			h.recv(peer(bfd.StateUp, 50*ms, 100*ms, 3))
			h.runFor(40 * ms)
			h.recv(peer(bfd.StateUp, 50*ms, 100*ms, 3))
			h.runFor(40 * ms)
			for _, sp := range h.sent {
				if !sp.p.Poll || sp.p.Final {
					t.Fatalf("packet during poll = %+v, want P and not F", sp.p)
				}
			}
			if len(h.sent) < 2 {
				t.Fatalf("sent %d packets in 120ms, want the Poll repeated", len(h.sent))
			}
			h.recv(withFlags(peer(bfd.StateUp, 50*ms, 100*ms, 3), false, true))
			st = h.s.Status()
			if st.PollActive || st.TxInterval != tc.wantTxAfter || st.DetectionTime != tc.wantDetectAt {
				t.Fatalf("after Final: active %t, TX %s, detection %s; want false, %s, %s", st.PollActive, st.TxInterval, st.DetectionTime, tc.wantTxAfter, tc.wantDetectAt)
			}
			h.sent = nil
			for range 10 {
				h.runFor(50 * ms)
				h.recv(peer(bfd.StateUp, 50*ms, 100*ms, 3))
			}
			if len(h.sent) == 0 {
				t.Fatal("sent nothing in 500ms after the Final")
			}
			for _, sp := range h.sent {
				if sp.p.Poll {
					t.Fatalf("packet after Final = %+v, want no P", sp.p)
				}
			}
			if len(h.changes) != 0 {
				t.Errorf("changes = %+v, want none: a timer change must not reset the session", h.changes)
			}
		})
	}
}

func TestSessionAnswersPoll(t *testing.T) {
	h := newHarness(t, bfd.SessionConfig{DesiredMinTx: 100 * time.Millisecond}, nil)
	h.bringUp(100*time.Millisecond, 100*time.Millisecond, 3)
	// The peer asks us to slow down to 400 ms.
	out := h.recv(withFlags(peer(bfd.StateUp, 100*time.Millisecond, 400*time.Millisecond, 3), true, false))
	if out.Packet == nil || !out.Packet.Final || out.Packet.Poll {
		t.Fatalf("answer = %+v, want F without P", out.Packet)
	}
	if got := h.s.Status().TxInterval; got != 400*time.Millisecond {
		t.Errorf("TxInterval = %s, want 400ms", got)
	}
}

func TestSessionPollWhilePolling(t *testing.T) {
	const ms = time.Millisecond
	cfg := bfd.SessionConfig{Peer: netip.MustParseAddr("192.0.2.1"), DesiredMinTx: 100 * ms, RequiredMinRx: 100 * ms}
	h := newHarness(t, cfg, nil)
	h.bringUp(100*ms, 100*ms, 3)
	cfg.DesiredMinTx = 200 * ms
	if _, err := h.s.Reconfigure(cfg); err != nil {
		t.Fatal(err)
	}
	cfg.DesiredMinTx = 300 * ms
	if _, err := h.s.Reconfigure(cfg); err != nil {
		t.Fatal(err)
	}
	// This Final may answer a Poll that advertised 200 ms: not enough.
	h.recv(withFlags(peer(bfd.StateUp, 100*ms, 100*ms, 3), false, true))
	if st := h.s.Status(); !st.PollActive || st.TxInterval != 100*ms {
		t.Fatalf("after first Final: poll %t, TX %s; want a new poll at the old 100ms", st.PollActive, st.TxInterval)
	}
	h.recv(withFlags(peer(bfd.StateUp, 100*ms, 100*ms, 3), false, true))
	if st := h.s.Status(); st.PollActive || st.TxInterval != 300*ms {
		t.Fatalf("after second Final: poll %t, TX %s; want done at 300ms", st.PollActive, st.TxInterval)
	}
}

// gaps returns the intervals between consecutive sent packets.
func (h *harness) gaps() []time.Duration {
	var out []time.Duration
	for i := 1; i < len(h.sent); i++ {
		out = append(out, h.sent[i].at.Sub(h.sent[i-1].at))
	}
	return out
}

func TestSessionSlowTxWhileDown(t *testing.T) {
	tests := map[string]struct {
		tx       time.Duration
		wantAdv  time.Duration
		min, max time.Duration
	}{
		"fast config idles at 1s": {tx: 100 * time.Millisecond, wantAdv: time.Second, min: 750 * time.Millisecond, max: time.Second},
		"slow config keeps 2s":    {tx: 2 * time.Second, wantAdv: 2 * time.Second, min: 1500 * time.Millisecond, max: 2 * time.Second},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			h := newHarness(t, bfd.SessionConfig{DesiredMinTx: tc.tx, RequiredMinRx: 100 * time.Millisecond}, nil)
			h.runFor(30 * time.Second)
			if len(h.sent) < 10 {
				t.Fatalf("sent %d packets in 30s", len(h.sent))
			}
			if h.sent[0].at != t0 {
				t.Errorf("first packet at %v, want at once", h.sent[0].at)
			}
			for _, sp := range h.sent {
				if sp.p.State != bfd.StateDown || sp.p.DesiredMinTxInterval != tc.wantAdv || sp.p.YourDiscriminator != 0 {
					t.Fatalf("packet = %+v, want Down advertising %s", sp.p, tc.wantAdv)
				}
			}
			for _, g := range h.gaps() {
				if g < tc.min || g > tc.max {
					t.Errorf("gap %s outside %s..%s", g, tc.min, tc.max)
				}
			}
		})
	}
}

func TestSessionJitter(t *testing.T) {
	const interval = 100 * time.Millisecond
	tests := map[string]struct {
		mult     uint8
		rnd      bfd.Rand
		min, max time.Duration
	}{
		"lowest draw, multiplier 3":  {mult: 3, rnd: fixedRand{max: false}, min: interval, max: interval},
		"highest draw, multiplier 3": {mult: 3, rnd: fixedRand{max: true}, min: 75 * time.Millisecond, max: 75 * time.Millisecond},
		"lowest draw, multiplier 1":  {mult: 1, rnd: fixedRand{max: false}, min: 90 * time.Millisecond, max: 90 * time.Millisecond},
		"highest draw, multiplier 1": {mult: 1, rnd: fixedRand{max: true}, min: 75 * time.Millisecond, max: 75 * time.Millisecond},
		"random, multiplier 3":       {mult: 3, rnd: rand.New(rand.NewPCG(3, 4)), min: 75 * time.Millisecond, max: interval},
		"random, multiplier 1":       {mult: 1, rnd: rand.New(rand.NewPCG(5, 6)), min: 75 * time.Millisecond, max: 90 * time.Millisecond},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			h := newHarness(t, bfd.SessionConfig{DesiredMinTx: interval, RequiredMinRx: interval, DetectMultiplier: tc.mult}, tc.rnd)
			h.bringUp(interval, interval, 3)
			// Keep the session Up while we watch our own transmissions.
			for range 100 {
				h.runFor(interval)
				h.recv(peer(bfd.StateUp, interval, interval, 3))
			}
			h.wantState(bfd.StateUp)
			gaps := h.gaps()
			if len(gaps) < 90 {
				t.Fatalf("only %d gaps in 10s", len(gaps))
			}
			lo, hi := gaps[0], gaps[0]
			for _, g := range gaps {
				lo, hi = min(lo, g), max(hi, g)
			}
			if lo < tc.min || hi > tc.max {
				t.Errorf("gaps span %s..%s, want within %s..%s", lo, hi, tc.min, tc.max)
			}
		})
	}
}

func TestSessionQuietTransmitter(t *testing.T) {
	tests := map[string]struct {
		p bfd.ControlPacket
	}{
		"peer requires no packets (Required Min RX 0)": {p: peer(bfd.StateUp, 100*time.Millisecond, 0, 3)},
		"peer in Demand mode": {p: func() bfd.ControlPacket {
			p := peer(bfd.StateUp, 100*time.Millisecond, 100*time.Millisecond, 3)
			p.Demand = true
			return p
		}()},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			h := newHarness(t, bfd.SessionConfig{DesiredMinTx: 100 * time.Millisecond, RequiredMinRx: 100 * time.Millisecond}, nil)
			h.bringUp(100*time.Millisecond, 100*time.Millisecond, 3)
			h.recv(tc.p)
			h.sent = nil
			h.runFor(250 * time.Millisecond)
			if len(h.sent) != 0 {
				t.Errorf("sent %d packets, want none", len(h.sent))
			}
			// A Poll is still answered.
			out := h.recv(withFlags(tc.p, true, false))
			if out.Packet == nil || !out.Packet.Final {
				t.Errorf("answer to Poll = %+v, want F", out.Packet)
			}
		})
	}
}

func TestSessionReceiveRejects(t *testing.T) {
	tests := map[string]bfd.ControlPacket{
		"other session's discriminator": func() bfd.ControlPacket {
			p := peer(bfd.StateUp, time.Second, time.Second, 3)
			p.YourDiscriminator = 99
			return p
		}(),
		"authentication": func() bfd.ControlPacket {
			p := peer(bfd.StateDown, time.Second, time.Second, 3)
			p.AuthPresent = true
			return p
		}(),
		"detect multiplier zero": peer(bfd.StateDown, time.Second, time.Second, 0),
	}
	for name, p := range tests {
		t.Run(name, func(t *testing.T) {
			h := newHarness(t, bfd.SessionConfig{}, nil)
			if _, err := h.s.Receive(&p); err == nil {
				t.Fatal("Receive() error = nil")
			}
			if st := h.s.Status(); st.RemoteDiscriminator != 0 || st.PacketsReceived != 0 {
				t.Errorf("rejected packet changed the session: %+v", st)
			}
		})
	}
}

// TestSessionUpIgnoresStrangers: once Up, a packet without the learned
// discriminators (a forged Down with Your Discriminator 0, or with ours but
// another sender's) is dropped and the session stays Up; after a Detection
// Time without the real peer the session goes Down and a restarted peer
// with a new discriminator brings it up again.
func TestSessionUpIgnoresStrangers(t *testing.T) {
	h := newHarness(t, bfd.SessionConfig{DesiredMinTx: 100 * time.Millisecond, RequiredMinRx: 100 * time.Millisecond, DetectMultiplier: 3}, nil)
	h.bringUp(100*time.Millisecond, 100*time.Millisecond, 3)
	forged := []bfd.ControlPacket{
		peer(bfd.StateDown, time.Second, time.Second, 3), // Your Discriminator 0
		func() bfd.ControlPacket {
			p := peer(bfd.StateDown, time.Second, time.Second, 3)
			p.YourDiscriminator, p.MyDiscriminator = localDiscr, 0x0c0c0c0c
			return p
		}(),
		func() bfd.ControlPacket {
			p := peer(bfd.StateAdminDown, time.Second, time.Second, 3)
			p.YourDiscriminator, p.MyDiscriminator = 0, remoteDiscr
			return p
		}(),
	}
	for _, p := range forged {
		if _, err := h.s.Receive(&p); !errors.Is(err, bfd.ErrUnexpectedSender) {
			t.Fatalf("Receive(%+v) error = %v, want ErrUnexpectedSender", p, err)
		}
		h.wantState(bfd.StateUp)
	}
	// The real peer's packets still count.
	h.recv(peer(bfd.StateUp, 100*time.Millisecond, 100*time.Millisecond, 3))
	h.wantState(bfd.StateUp)
	// The peer restarts with a new discriminator: its packets are ignored
	// until detection expires, then it is heard.
	restarted := peer(bfd.StateDown, time.Second, 100*time.Millisecond, 3)
	restarted.MyDiscriminator = 0x0d0d0d0d
	if _, err := h.s.Receive(&restarted); !errors.Is(err, bfd.ErrUnexpectedSender) {
		t.Fatalf("restarted peer while Up: error = %v", err)
	}
	h.runFor(time.Second)
	h.wantState(bfd.StateDown)
	h.recv(restarted)
	h.wantState(bfd.StateInit)
}

func TestNewSessionConfig(t *testing.T) {
	clk := clocktesting.NewFakeClock(t0)
	tests := map[string]struct {
		cfg     bfd.SessionConfig
		wantErr bool
		want    bfd.SessionStatus
	}{
		"defaults": {
			cfg:  bfd.SessionConfig{Peer: netip.MustParseAddr("::ffff:192.0.2.1")},
			want: bfd.SessionStatus{Peer: netip.MustParseAddr("192.0.2.1"), DesiredMinTx: time.Second, RequiredMinRx: bfd.DefaultRequiredMinRx, DetectMultiplier: bfd.DefaultDetectMultiplier},
		},
		"missing peer":         {cfg: bfd.SessionConfig{}, wantErr: true},
		"unspecified peer":     {cfg: bfd.SessionConfig{Peer: netip.IPv4Unspecified()}, wantErr: true},
		"multicast peer":       {cfg: bfd.SessionConfig{Peer: netip.MustParseAddr("ff02::1")}, wantErr: true},
		"mixed families":       {cfg: bfd.SessionConfig{Peer: netip.MustParseAddr("192.0.2.1"), Local: netip.MustParseAddr("2001:db8::1")}, wantErr: true},
		"negative interval":    {cfg: bfd.SessionConfig{Peer: netip.MustParseAddr("192.0.2.1"), DesiredMinTx: -time.Second}, wantErr: true},
		"interval too long":    {cfg: bfd.SessionConfig{Peer: netip.MustParseAddr("192.0.2.1"), RequiredMinRx: 2 * time.Hour}, wantErr: true},
		"sub-microsecond only": {cfg: bfd.SessionConfig{Peer: netip.MustParseAddr("192.0.2.1"), RequiredMinRx: time.Nanosecond}, wantErr: true},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			s, err := bfd.NewSession(tc.cfg, 1, clk, fixedRand{})
			if tc.wantErr {
				if err == nil {
					t.Fatal("NewSession() error = nil")
				}
				return
			}
			if err != nil {
				t.Fatalf("NewSession() error = %v", err)
			}
			got := s.Status()
			if got.Peer != tc.want.Peer || got.DesiredMinTx != tc.want.DesiredMinTx || got.RequiredMinRx != tc.want.RequiredMinRx || got.DetectMultiplier != tc.want.DetectMultiplier || got.State != bfd.StateDown {
				t.Errorf("Status() = %+v, want %+v", got, tc.want)
			}
		})
	}
	if _, err := bfd.NewSession(bfd.SessionConfig{Peer: netip.MustParseAddr("192.0.2.1")}, 0, clk, fixedRand{}); err == nil {
		t.Error("NewSession() with discriminator 0: error = nil")
	}
}

// TestSessionAuthSequence: an authenticated session accepts only packets
// of its type and key ID with a sequence number in the window of RFC 5880
// §6.7.3 (meticulous: strictly increasing, at most 3 × Detect Mult ahead;
// keyed: a repeat is allowed), and numbers its own packets one by one.
func TestSessionAuthSequence(t *testing.T) {
	auth := func(typ bfd.AuthType, seq uint32, id uint8) bfd.ControlPacket {
		p := peer(bfd.StateDown, time.Second, time.Second, 3)
		p.AuthPresent, p.AuthType, p.AuthKeyID, p.AuthSeq = true, typ, id, seq
		return p
	}
	for _, typ := range []bfd.AuthType{bfd.AuthMeticulousKeyedSHA1, bfd.AuthKeyedMD5} {
		t.Run(typ.String(), func(t *testing.T) {
			h := newHarness(t, bfd.SessionConfig{Auth: bfd.Auth{Type: typ, KeyID: 7, Key: "k3y"}}, nil)
			reject := func(p bfd.ControlPacket, why string) {
				t.Helper()
				if _, err := h.s.Receive(&p); !errors.Is(err, bfd.ErrAuthFailed) {
					t.Fatalf("%s: Receive() error = %v, want ErrAuthFailed", why, err)
				}
			}
			reject(peer(bfd.StateDown, time.Second, time.Second, 3), "no authentication")
			reject(auth(bfd.AuthKeyedSHA1, 100, 7), "another type")
			reject(auth(typ, 100, 8), "another key ID")
			h.recv(auth(typ, 100, 7)) // the first number is learned
			if typ.Meticulous() {
				reject(auth(typ, 100, 7), "a repeated number")
			} else {
				h.recv(auth(typ, 100, 7))
			}
			h.recv(auth(typ, 101, 7))
			reject(auth(typ, 101+3*3+1, 7), "a number too far ahead")
			reject(auth(typ, 50, 7), "an old number")
			h.recv(auth(typ, 101+3*3, 7))
			// Wrap-around is part of the window.
			h2 := newHarness(t, bfd.SessionConfig{Auth: bfd.Auth{Type: typ, KeyID: 7, Key: "k3y"}}, nil)
			for _, seq := range []uint32{0xfffffffe, 0xffffffff, 0, 1} {
				p := auth(typ, seq, 7)
				if _, err := h2.s.Receive(&p); err != nil {
					t.Fatalf("sequence %#x across the wrap: %v", seq, err)
				}
			}
			// Our packets carry the key and consecutive numbers.
			h.runFor(3 * time.Second)
			if len(h.sent) < 2 {
				t.Fatalf("sent %d packets", len(h.sent))
			}
			for i, sp := range h.sent {
				if !sp.p.AuthPresent || sp.p.AuthType != typ || sp.p.AuthKeyID != 7 || (i > 0 && sp.p.AuthSeq != h.sent[i-1].p.AuthSeq+1) {
					t.Fatalf("packet %d: %+v", i, sp.p)
				}
			}
		})
	}
	// A session without authentication refuses authenticated packets.
	h := newHarness(t, bfd.SessionConfig{}, nil)
	p := auth(bfd.AuthKeyedSHA1, 1, 1)
	if _, err := h.s.Receive(&p); !errors.Is(err, bfd.ErrAuthFailed) {
		t.Fatalf("authenticated packet on a plain session: %v", err)
	}
}
