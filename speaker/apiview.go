package speaker

import (
	"context"
	"net/http"
	"sync"
	"time"

	"k8s.io/client-go/discovery"
	"k8s.io/client-go/rest"
	"k8s.io/utils/clock"

	"github.com/lbstack/lbstack/speaker/dataplane"
)

// DefaultAPIStaleAfter is the default --api-stale-after: how long a speaker
// that cannot reach the API server may go on announcing from its last view
// while another speaker reaches it.
const DefaultAPIStaleAfter = 3 * time.Second

// APIView tells how current the speaker's view of the API server is, by
// asking the API server's /readyz every Interval. The watches behind the
// view share the connection (and its fate) with these requests: while they
// are answered, a deletion reaches the speaker within a second or so; once
// they have gone unanswered for StaleAfter, it may have missed any.
type APIView struct {
	// Check asks the API server once (GET /readyz); nil error: answered.
	Check func(ctx context.Context) error
	Clock clock.WithTicker
	// StaleAfter is the stale bound (--api-stale-after): the view is
	// Fresh while the API server answered within half of it, and
	// Unreached once it has not for all of it.
	StaleAfter time.Duration
	// Interval is how often Check runs (0: StaleAfter/6), and Timeout
	// bounds each (0: StaleAfter/3).
	Interval, Timeout time.Duration
	// SettleFor is how long the API server must have answered without a
	// gap before the view counts as Settled (0: StaleAfter*2/3): the
	// watches re-list after a cut, and a speaker that withdrew waits for
	// them before it announces again.
	SettleFor time.Duration
	// OnChange is called (from Run) when the state changes; it must not
	// block.
	OnChange func(dataplane.APIState)

	mu      sync.Mutex
	start   time.Time
	lastOK  time.Time
	okSince time.Time
}

func (v *APIView) interval() time.Duration {
	if v.Interval > 0 {
		return v.Interval
	}
	return v.StaleAfter / 6
}

func (v *APIView) timeout() time.Duration {
	if v.Timeout > 0 {
		return v.Timeout
	}
	return v.StaleAfter / 3
}

func (v *APIView) settleFor() time.Duration {
	if v.SettleFor > 0 {
		return v.SettleFor
	}
	return v.StaleAfter * 2 / 3
}

// observe records one check at now: answered or not.
func (v *APIView) observe(now time.Time, ok bool) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.start.IsZero() {
		v.start = now
	}
	if !ok {
		return
	}
	if v.lastOK.IsZero() || now.Sub(v.lastOK) >= v.StaleAfter/2 {
		// The first answer, or the first after a gap: the watches may be
		// re-listing; the view settles from here.
		v.okSince = now
	}
	v.lastOK = now
}

// State is the view's state now.
func (v *APIView) State() dataplane.APIState {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.stateLocked(v.Clock.Now())
}

func (v *APIView) stateLocked(now time.Time) dataplane.APIState {
	if v.start.IsZero() {
		return dataplane.APIState{} // not asked yet: neither fresh nor unreached
	}
	last := v.lastOK
	if last.Before(v.start) {
		last = v.start
	}
	fresh := !v.lastOK.IsZero() && now.Sub(v.lastOK) < v.StaleAfter/2
	return dataplane.APIState{
		Fresh:     fresh,
		Unreached: now.Sub(last) >= v.StaleAfter,
		Settled:   fresh && now.Sub(v.okSince) >= v.settleFor(),
	}
}

// Run checks every Interval until ctx ends, and calls OnChange when the
// state changes. The state is looked at every tenth of the stale bound,
// apart from the checks: Fresh and Unreached end by time, and a check of an
// API server that does not answer takes its whole Timeout; the peers must
// learn that this node's view went stale promptly.
func (v *APIView) Run(ctx context.Context) {
	checked := make(chan struct{}, 1)
	done := make(chan struct{})
	go func() {
		defer close(done)
		tick := v.Clock.NewTicker(v.interval())
		defer tick.Stop()
		for {
			cctx, cancel := context.WithTimeout(ctx, v.timeout())
			err := v.Check(cctx)
			cancel()
			if ctx.Err() != nil {
				return
			}
			v.observe(v.Clock.Now(), err == nil)
			select {
			case checked <- struct{}{}:
			default:
			}
			select {
			case <-ctx.Done():
				return
			case <-tick.C():
			}
		}
	}()
	defer func() { <-done }()
	look := v.Clock.NewTicker(max(v.StaleAfter/10, time.Millisecond))
	defer look.Stop()
	var last dataplane.APIState
	for {
		select {
		case <-ctx.Done():
			return
		case <-checked:
		case <-look.C():
		}
		st := v.State()
		if st != last && v.OnChange != nil {
			v.OnChange(st)
		}
		last = st
	}
}

// ReadyzCheck returns a Check that asks the API server's /readyz over cfg
// and hc, the manager's HTTP client, so that it shares the watches'
// connection and fate (allowed to everyone by system:public-info-viewer).
// Any answer but 200 counts as not answered: an API server that is not
// ready serves no watch.
func ReadyzCheck(cfg *rest.Config, hc *http.Client) (func(ctx context.Context) error, error) {
	d, err := discovery.NewDiscoveryClientForConfigAndClient(cfg, hc)
	if err != nil {
		return nil, err
	}
	rc := d.RESTClient()
	return func(ctx context.Context) error {
		return rc.Get().AbsPath("/readyz").Do(ctx).Error()
	}, nil
}
