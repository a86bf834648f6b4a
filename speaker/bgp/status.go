package bgp

import (
	"errors"
	"fmt"
	"net/netip"
	"sync"
	"time"

	api "github.com/osrg/gobgp/v3/api"
	gobgplog "github.com/osrg/gobgp/v3/pkg/log"
	"github.com/osrg/gobgp/v3/pkg/packet/bgp"
)

// status follows sessions from gobgp's peer events and logs. gobgp calls
// into it from its own goroutines, some while the Speaker's mutex is held
// and gobgp's main loop is busy with our request, so it has its own mutex
// and never calls gobgp.
type status struct {
	mu    sync.Mutex
	peers map[netip.Addr]*addrStatus
}

type addrStatus struct {
	name string
	// configured is false once the peer is deleted.
	configured bool
	up         bool
	lastError  string
	// errorSinceUp tells whether lastError is about the current down
	// period.
	errorSinceUp bool
	// dynamic is the peer's DynamicASN and localAS our AS on the session:
	// a session whose peer AS is of the other kind is refused.
	dynamic DynamicASN
	localAS uint32
	// refused is why the last session was refused (its AS was of the
	// wrong kind); it stands for lastError until a session is accepted,
	// since the reset that follows logs its own NOTIFICATION.
	refused string
}

func newStatus() *status {
	return &status{peers: map[netip.Addr]*addrStatus{}}
}

// setPeers records the configured peers' names by address.
func (s *status) setPeers(byAddr map[netip.Addr]string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for a, st := range s.peers {
		name, ok := byAddr[a]
		st.configured = ok
		if ok {
			st.name = name
		} else if !st.up {
			delete(s.peers, a)
		}
	}
	for a, name := range byAddr {
		if _, ok := s.peers[a]; !ok {
			s.peers[a] = &addrStatus{name: name, configured: true}
		}
	}
}

// configure records a peer about to be added, so that no event of its
// session is missed.
func (s *status) configure(a netip.Addr, name string, dynamic DynamicASN, localAS uint32) {
	s.mu.Lock()
	defer s.mu.Unlock()
	st, ok := s.peers[a]
	if !ok {
		st = &addrStatus{}
		s.peers[a] = st
	}
	st.name, st.configured, st.dynamic, st.localAS, st.refused = name, true, dynamic, localAS, ""
}

// refuse records why the session with a was refused.
func (s *status) refuse(a netip.Addr, why string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if st, ok := s.peers[a]; ok {
		st.refused = why
	}
}

// asMismatch says why a session with a whose peer announced peerAS must
// be refused (its DynamicASN wants the other kind), "" when it may stay.
func (s *status) asMismatch(a netip.Addr, peerAS uint32) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	st, ok := s.peers[a]
	if !ok || st.dynamic == "" || peerAS == 0 {
		return ""
	}
	internal := peerAS == st.localAS
	switch {
	case st.dynamic == DynamicInternal && !internal:
		return fmt.Sprintf("refused: the router's AS %d is not ours (%d), and dynamicASN is internal", peerAS, st.localAS)
	case st.dynamic == DynamicExternal && internal:
		return fmt.Sprintf("refused: the router's AS %d is ours, and dynamicASN is external", peerAS)
	}
	return ""
}

// unconfigure marks the peer at a as deleted, before it is, so that its
// down event says so.
func (s *status) unconfigure(a netip.Addr) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if st, ok := s.peers[a]; ok {
		st.configured = false
	}
}

func (s *status) lastError(a netip.Addr) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if st, ok := s.peers[a]; ok {
		if st.refused != "" {
			return st.refused
		}
		return st.lastError
	}
	return ""
}

func (s *status) setError(a netip.Addr, reason string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	st, ok := s.peers[a]
	if !ok {
		return
	}
	st.lastError, st.errorSinceUp = reason, true
}

// transition records a session state and returns the event to send when
// the session came up or went down.
func (s *status) transition(a netip.Addr, state string, adminDown bool, at time.Time) (PeerEvent, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	st, ok := s.peers[a]
	if !ok {
		return PeerEvent{}, false
	}
	up := state == "established"
	if up == st.up {
		return PeerEvent{}, false
	}
	st.up = up
	ev := PeerEvent{Name: st.name, Address: a, Up: up, State: state, At: at}
	switch {
	case up:
		st.errorSinceUp, st.refused = false, ""
	case !st.configured:
		ev.Reason = "peer deleted"
		delete(s.peers, a)
	case adminDown:
		ev.Reason = "administratively down"
	case st.errorSinceUp:
		ev.Reason = st.lastError
	default:
		ev.Reason = "session closed"
	}
	return ev, true
}

// observe reads session errors from gobgp's log messages: the API has no
// reason for a state change.
func (s *status) observe(msg string, f gobgplog.Fields, redact func(string) string) {
	if f["Topic"] != "Peer" {
		return
	}
	key, _ := f["Key"].(string)
	addr, err := netip.ParseAddr(key)
	if err != nil {
		return
	}
	var reason string
	switch msg {
	case "Peer Down":
		reason = fmt.Sprint(f["Reason"])
		if reason == "dying" {
			// gobgp stopped the session: deleted or re-created.
			reason = "peer deconfigured"
		}
	case "received notification":
		reason = "notification-received " + notificationText(f)
	case "sent notification":
		reason = "notification-sent " + notificationText(f)
	case "failed to connect":
		reason = fmt.Sprintf("connecting: %v", f["Error"])
	case "hold timer expired":
		reason = "hold-timer-expired"
	default:
		return
	}
	s.setError(addr.Unmap(), redact(reason))
}

// notificationText describes the NOTIFICATION in a gobgp log message.
func notificationText(f gobgplog.Fields) string {
	code, okCode := f["Code"].(uint8)
	subcode, okSub := f["Subcode"].(uint8)
	text := "unknown"
	switch {
	case okCode && okSub:
		text = bgp.NewNotificationErrorCode(code, subcode).String()
	default:
		var me *bgp.MessageError
		if err, ok := f["Data"].(error); ok && errors.As(err, &me) {
			text = fmt.Sprintf("%v: %s", bgp.NewNotificationErrorCode(me.TypeCode, me.SubTypeCode), me.Message)
		}
	}
	if c, _ := f["Communicated-Reason"].(string); c != "" {
		text += fmt.Sprintf(" (%q)", c)
	}
	return text
}

// peerEvent extracts the address, state and admin state of a gobgp peer
// event.
func peerEvent(r *api.WatchEventResponse) (addr netip.Addr, state string, adminDown bool, peerAS uint32, ok bool) {
	pe := r.GetPeer()
	// A deleted peer's last event has type UNKNOWN.
	if t := pe.GetType(); pe == nil || t == api.WatchEventResponse_PeerEvent_INIT || t == api.WatchEventResponse_PeerEvent_END_OF_INIT {
		return netip.Addr{}, "", false, 0, false
	}
	st := pe.GetPeer().GetState()
	addr, err := netip.ParseAddr(st.GetNeighborAddress())
	if err != nil {
		return netip.Addr{}, "", false, 0, false
	}
	return addr.Unmap(), stateName(st.GetSessionState()), st.GetAdminState() == api.PeerState_DOWN, st.GetPeerAsn(), true
}
