package speaker

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/go-logr/logr"
	"k8s.io/utils/clock"
	"sigs.k8s.io/controller-runtime/pkg/healthz"

	"github.com/lbstack/lbstack/speaker/dataplane"
	"github.com/lbstack/lbstack/speaker/l2"
	"github.com/lbstack/lbstack/speaker/membership"
)

// The speaker's readiness checks. Each is a check of its own under
// /readyz, so `GET /readyz` names the failing ones and
// `GET /readyz/<name>` tells why; every change is also logged.
const (
	// ReadyConfig: a valid configuration has been read.
	ReadyConfig = "config"
	// ReadyLayer2: the layer-2 announcer has the sockets it needs.
	ReadyLayer2 = "layer2"
	// ReadyBGP: the BGP speaker (and BFD) run when BGP is configured.
	ReadyBGP = "bgp"
	// ReadyMembership: memberlist runs and, when other speakers are
	// expected, this one has joined at least one of them.
	ReadyMembership = "membership"
)

// ReadinessChecks lists the readiness checks in the order they are judged.
var ReadinessChecks = []string{ReadyConfig, ReadyLayer2, ReadyBGP, ReadyMembership}

// ReadinessState is what the speaker's readiness is judged on, read from
// the loops that own each part.
type ReadinessState struct {
	// ConfigSynced is true once the watcher built a snapshot from a valid
	// configuration.
	ConfigSynced bool
	// L2 is the state of the layer-2 announcer's sockets.
	L2 l2.SocketStatus
	// BGP is the state of the BGP speaker and BFD.
	BGP dataplane.BGPReadiness
	// Self is this node's name.
	Self string
	// Live are the live members, self included; nil while memberlist does
	// not run.
	Live []membership.Member
	// Expected are the other nodes on which a live speaker is expected
	// (Watcher.ExpectedPeers).
	Expected []string
	// Joined is true once the speaker has joined the others and learned
	// what they announce, or waited its join timeout (Core.Joined).
	Joined bool
	// KeyMismatch is true while the speaker receives memberlist traffic it
	// cannot decrypt (MembershipReporter.KeyMismatch).
	KeyMismatch bool
}

// JudgeReadiness returns, for every check of ReadinessChecks, nil when it
// passes or an error that says why not:
//
//   - config: the watcher has built a snapshot from a valid configuration;
//   - layer2: the announcer has scanned the interfaces since it started and
//     no socket an eligible interface needs failed to open (ARP on
//     interfaces that can broadcast, NDP on interfaces with a usable IPv6
//     link-local address; see l2.SocketStatus). A node with no eligible
//     interface passes: it has nothing to open;
//   - bgp: passes when this node's plan has no BGP peers; otherwise the
//     embedded BGP speaker must run, and BFD too when a peer has a BFD
//     profile;
//   - membership: memberlist runs; the speaker has finished joining (it
//     elects nothing before); and, when speakers are expected on other
//     Ready nodes, at least one other member is live — the message names a
//     memberlist key mismatch when one is seen. A lone speaker (no other
//     node expected) is ready on its own.
func JudgeReadiness(s ReadinessState) map[string]error {
	out := make(map[string]error, len(ReadinessChecks))
	for _, c := range ReadinessChecks {
		out[c] = nil
	}
	if !s.ConfigSynced {
		out[ReadyConfig] = errors.New("no valid configuration read yet")
	}

	switch {
	case !s.L2.Scanned:
		out[ReadyLayer2] = errors.New("the network interfaces have not been scanned yet")
	case len(s.L2.Failed) > 0:
		msgs := make([]string, 0, len(s.L2.Failed))
		for _, f := range s.L2.Failed {
			msgs = append(msgs, fmt.Sprintf("%s on %s: %s", f.Protocol, f.Interface, f.Err))
		}
		out[ReadyLayer2] = fmt.Errorf("cannot open %d socket(s) needed to answer ARP/NDP (retried every rescan): %s", len(s.L2.Failed), elide(msgs, 4, "; "))
	}

	b := s.BGP
	switch {
	case !b.Configured:
	case !b.Running && b.Err != "":
		out[ReadyBGP] = fmt.Errorf("BGP peers are configured but the BGP speaker does not run: %s", b.Err)
	case !b.Running:
		out[ReadyBGP] = errors.New("BGP peers are configured and the BGP speaker has not started yet")
	case b.BFDWanted && !b.BFDRunning && b.BFDErr != "":
		out[ReadyBGP] = fmt.Errorf("a BGP peer has a BFD profile but BFD does not run: %s", b.BFDErr)
	case b.BFDWanted && !b.BFDRunning:
		out[ReadyBGP] = errors.New("a BGP peer has a BFD profile and BFD has not started yet")
	}

	alone := len(s.Expected) > 0 && !slices.ContainsFunc(s.Live, func(m membership.Member) bool { return m.Name != s.Self })
	switch {
	case s.Live == nil:
		out[ReadyMembership] = errors.New("memberlist does not run yet")
	case alone && s.KeyMismatch:
		out[ReadyMembership] = fmt.Errorf("joined no other speaker: it receives memberlist traffic it cannot decrypt, so another speaker uses a different memberlist key; %d other Ready node(s) should run one (%s)",
			len(s.Expected), elide(s.Expected, 5, ", "))
	case alone:
		out[ReadyMembership] = fmt.Errorf("joined no other speaker yet, though %d other Ready node(s) should run one (%s); check that they run and that the memberlist port is open between nodes",
			len(s.Expected), elide(s.Expected, 5, ", "))
	case !s.Joined:
		out[ReadyMembership] = errors.New("joining: learning what the other speakers announce before electing")
	}
	return out
}

// elide joins the first max items with sep and counts the rest.
func elide(items []string, max int, sep string) string {
	if len(items) <= max {
		return strings.Join(items, sep)
	}
	return fmt.Sprintf("%s and %d more", strings.Join(items[:max], sep), len(items)-max)
}

// DefaultReadinessInterval is how often Readiness.Run judges readiness when
// no probe asks, so that changes are logged soon.
const DefaultReadinessInterval = time.Second

// Readiness serves the speaker's readiness checks and logs every change of
// a check's outcome: a check that starts failing, fails for another reason,
// or passes again, and the speaker becoming ready.
type Readiness struct {
	// State reads the current state; it must be safe to call from any
	// goroutine.
	State func() ReadinessState
	// Log receives a line on every change.
	Log logr.Logger
	// Clock drives Run; the real clock when nil.
	Clock clock.WithTicker
	// Interval is Run's period; DefaultReadinessInterval when zero.
	Interval time.Duration

	mu sync.Mutex
	// last is the message of each failing check, "" for a passing one;
	// nil before the first judgement.
	last map[string]string
	// result and judged are the latest judgement and its time: the checks
	// of one probe share it instead of reading the state once each.
	result map[string]error
	judged time.Time
}

// Checker returns the healthz checker of one check. It answers from the
// latest judgement when that is younger than Interval (Run judges every
// Interval), and judges now otherwise.
func (r *Readiness) Checker(name string) healthz.Checker {
	return func(*http.Request) error {
		r.mu.Lock()
		res, fresh := r.result, r.clock().Since(r.judged) < r.interval()
		r.mu.Unlock()
		if res == nil || !fresh {
			res = r.Judge()
		}
		return res[name]
	}
}

func (r *Readiness) clock() clock.WithTicker {
	if r.Clock == nil {
		return clock.RealClock{}
	}
	return r.Clock
}

func (r *Readiness) interval() time.Duration {
	if r.Interval <= 0 {
		return DefaultReadinessInterval
	}
	return r.Interval
}

// Judge judges readiness now, logs what changed since the last judgement
// and returns the outcome of every check.
func (r *Readiness) Judge() map[string]error {
	// Under the lock, so that judgements are logged in the order made.
	r.mu.Lock()
	defer r.mu.Unlock()
	res := JudgeReadiness(r.State())
	r.result, r.judged = res, r.clock().Now()
	first := r.last == nil
	if first {
		r.last = map[string]string{}
	}
	changed, ready := false, true
	for _, c := range ReadinessChecks {
		msg := ""
		if err := res[c]; err != nil {
			msg, ready = err.Error(), false
		}
		prev, seen := r.last[c]
		if seen && prev == msg {
			continue
		}
		r.last[c] = msg
		switch {
		case msg != "":
			changed = true
			r.Log.Info("Readiness check failing", "check", c, "reason", msg)
		case !first && prev != "":
			changed = true
			r.Log.Info("Readiness check passing again", "check", c)
		}
	}
	if ready && (first || changed) {
		r.Log.Info("Speaker is ready")
	}
	return res
}

// Run judges readiness every Interval until ctx ends, so that changes are
// logged even when nothing probes; the first judgement waits one Interval,
// by when the loops have started. It returns nil.
func (r *Readiness) Run(ctx context.Context) error {
	clk, every := r.clock(), r.interval()
	t := clk.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C():
			r.Judge()
		}
	}
}
