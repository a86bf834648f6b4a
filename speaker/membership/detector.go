package membership

import (
	"slices"
	"time"
)

// Detector decides from heartbeat arrival times which peers are dead. It is
// pure: it opens no sockets, starts no goroutines and reads no clock; every
// method takes the current time from its caller. It is not safe for
// concurrent use.
//
// A peer is judged only after its first heartbeat has arrived (Heard); until
// then the Detector knows nothing of it. It is declared dead when no heartbeat
// has arrived for missed × interval, and alive again by its next heartbeat.
type Detector struct {
	interval time.Duration
	timeout  time.Duration
	peers    map[string]*peerState

	lastCheck  time.Time
	quietUntil time.Time
}

type peerState struct {
	lastHeard time.Time
	dead      bool
}

// NewDetector returns a Detector for heartbeats sent every interval that
// declares a peer dead after missed heartbeats in a row did not arrive, that
// is after missed × interval of silence. interval and missed must be
// positive.
func NewDetector(interval time.Duration, missed int) *Detector {
	return &Detector{
		interval: interval,
		timeout:  time.Duration(missed) * interval,
		peers:    make(map[string]*peerState),
	}
}

// Heard records that a heartbeat from name arrived at now. From then on the
// peer is judged by Check. It reports whether the peer had been declared dead
// and is now alive again.
func (d *Detector) Heard(name string, now time.Time) (revived bool) {
	p, ok := d.peers[name]
	if !ok {
		d.peers[name] = &peerState{lastHeard: now}
		return false
	}
	if now.After(p.lastHeard) {
		p.lastHeard = now
	}
	revived = p.dead
	p.dead = false
	return revived
}

// Check declares dead, at now, every peer that has been heard at least once,
// is not dead yet, and has been silent for longer than missed × interval. It
// returns their names, sorted.
//
// Check must be called several times per interval (Membership calls it four
// times). If more than one interval has passed since the previous call, the
// caller itself ran late: its process was paused or starved of CPU, and
// heartbeats that arrived meanwhile may still be queued, unread. Check then
// judges nobody until one further interval has passed, so that a node waking
// from a stall does not declare every peer dead before it has read their
// heartbeats.
func (d *Detector) Check(now time.Time) (dead []string) {
	prev := d.lastCheck
	d.lastCheck = now
	if !prev.IsZero() && now.Sub(prev) > d.interval {
		d.quietUntil = now.Add(d.interval)
	}
	if now.Before(d.quietUntil) {
		return nil
	}
	for name, p := range d.peers {
		if !p.dead && now.Sub(p.lastHeard) > d.timeout {
			p.dead = true
			dead = append(dead, name)
		}
	}
	slices.Sort(dead)
	return dead
}

// Forget stops judging name. A later Heard starts afresh, as for a peer never
// heard before.
func (d *Detector) Forget(name string) {
	delete(d.peers, name)
}

// Tracked reports whether name is judged: heard since it was last
// forgotten.
func (d *Detector) Tracked(name string) bool {
	_, ok := d.peers[name]
	return ok
}

// Dead reports whether name has been declared dead and not heard since.
func (d *Detector) Dead(name string) bool {
	p, ok := d.peers[name]
	return ok && p.dead
}

// LastHeard returns when name's last heartbeat arrived; zero if never, or
// since Forget.
func (d *Detector) LastHeard(name string) time.Time {
	if p, ok := d.peers[name]; ok {
		return p.lastHeard
	}
	return time.Time{}
}
