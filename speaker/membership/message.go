package membership

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
)

// The messages this package sends to other members as memberlist user
// messages (memberlist encrypts and authenticates them with the cluster key).
// Layout, big-endian:
//
//	0      type (msgHeartbeat, msgLeave, msgClaimsRequest, msgClaims, msgDigest)
//	1      flags (flagWatching, flagSuspectsYou, flagDigest)
//	2..9   epoch: identifies one run of the sender
//	10..17 seq: the sender's heartbeat round within its epoch (msgClaims:
//	       the version of its claims)
//	18     length n of the sender's node name, 1..maxNameLen
//	19..   the sender's node name (n bytes)
//
// After the name, a heartbeat with flagDigest and msgDigest carry the digest
// of the sender's claims (8 bytes); msgClaims carries the claims: a count
// (uint32) and per claim the key's length (4 or 16) and bytes, the claim's
// generation (uint32) and view (uint16; see Claim). Bytes after
// these are ignored, so later versions may append fields; unknown types are
// rejected (and the receiver ignores the message).
type msgType byte

const (
	// msgHeartbeat says "I am alive"; with flagWatching it also asks the
	// receiver to heartbeat the sender.
	msgHeartbeat msgType = 1
	// msgLeave says "I am leaving now": the receiver drops the sender at once
	// instead of waiting for memberlist to spread the leave.
	msgLeave msgType = 2
	// msgClaimsRequest asks the receiver to send its claims (msgClaims).
	msgClaimsRequest msgType = 3
	// msgClaims is the sender's whole claim set: the election keys of the
	// addresses it announces. Sent over TCP (it may be long), in answer to
	// msgClaimsRequest and as memberlist's push/pull local state.
	msgClaims msgType = 4
	// msgDigest announces, by gossip, the version and digest of the
	// sender's claims: a member whose copy is older asks for them.
	msgDigest msgType = 5
)

const (
	// flagWatching: the sender watches the receiver and needs its heartbeats.
	flagWatching byte = 1 << 0
	// flagSuspectsYou: the sender has declared the receiver dead (it hears
	// no heartbeats from it), though the receiver hears the sender.
	flagSuspectsYou byte = 1 << 1
	// flagDigest: a heartbeat carries the digest of the sender's claims.
	flagDigest byte = 1 << 3
)

// maxClaims bounds the keys in one msgClaims (about 1.1 MB of IPv6 keys).
const maxClaims = 1 << 16

const (
	headerLen = 19
	// maxNameLen is the longest node name, the Kubernetes limit for a
	// Node's name (a DNS subdomain).
	maxNameLen = 253
)

var (
	errShortMessage = errors.New("message too short")
	errUnknownType  = errors.New("unknown message type")
)

type message struct {
	typ         msgType
	watching    bool
	suspectsYou bool
	hasDigest   bool
	epoch       uint64
	seq         uint64
	name        string
	// digest is the sender's claims digest (heartbeats with hasDigest).
	digest uint64
	// claims are the sender's claims (msgClaims), sorted by key.
	claims []Claim
}

// appendTo appends the encoded message to b. The name must be 1..maxNameLen
// bytes long (New checks the local node name).
func (m message) appendTo(b []byte) []byte {
	var flags byte
	for _, f := range []struct {
		set  bool
		flag byte
	}{{m.watching, flagWatching}, {m.suspectsYou, flagSuspectsYou}, {m.hasDigest && m.typ == msgHeartbeat, flagDigest}} {
		if f.set {
			flags |= f.flag
		}
	}
	b = append(b, byte(m.typ), flags)
	b = binary.BigEndian.AppendUint64(b, m.epoch)
	b = binary.BigEndian.AppendUint64(b, m.seq)
	b = append(b, byte(len(m.name)))
	b = append(b, m.name...)
	switch {
	case m.typ == msgHeartbeat && m.hasDigest, m.typ == msgDigest:
		b = binary.BigEndian.AppendUint64(b, m.digest)
	case m.typ == msgClaims:
		b = binary.BigEndian.AppendUint32(b, uint32(len(m.claims)))
		for _, c := range m.claims {
			s := c.Key.AsSlice()
			b = append(b, byte(len(s)))
			b = append(b, s...)
			b = binary.BigEndian.AppendUint32(b, c.Gen)
			b = binary.BigEndian.AppendUint16(b, c.View)
		}
	}
	return b
}

// decodeMessage parses a message received from the network. It never
// panics, whatever b holds.
func decodeMessage(b []byte) (message, error) {
	if len(b) < headerLen {
		return message{}, fmt.Errorf("%w: %d bytes", errShortMessage, len(b))
	}
	m := message{
		typ:      msgType(b[0]),
		watching: b[1]&flagWatching != 0,
		epoch:    binary.BigEndian.Uint64(b[2:10]),
		seq:      binary.BigEndian.Uint64(b[10:18]),
	}
	if m.typ < msgHeartbeat || m.typ > msgDigest {
		return message{}, fmt.Errorf("%w %d", errUnknownType, b[0])
	}
	m.suspectsYou = b[1]&flagSuspectsYou != 0
	n := int(b[18])
	if n == 0 || n > maxNameLen {
		return message{}, fmt.Errorf("invalid name length %d", n)
	}
	if len(b) < headerLen+n {
		return message{}, fmt.Errorf("%w: name of %d bytes in %d bytes", errShortMessage, n, len(b))
	}
	m.name = string(b[headerLen : headerLen+n])
	rest := b[headerLen+n:]
	switch m.typ {
	case msgHeartbeat:
		if b[1]&flagDigest != 0 {
			if len(rest) < 8 {
				return message{}, fmt.Errorf("%w: heartbeat digest of %d bytes", errShortMessage, len(rest))
			}
			m.hasDigest, m.digest = true, binary.BigEndian.Uint64(rest)
		}
	case msgDigest:
		if len(rest) < 8 {
			return message{}, fmt.Errorf("%w: digest of %d bytes", errShortMessage, len(rest))
		}
		m.digest = binary.BigEndian.Uint64(rest)
	case msgClaims:
		if len(rest) < 4 {
			return message{}, fmt.Errorf("%w: claims without a count", errShortMessage)
		}
		count := binary.BigEndian.Uint32(rest)
		rest = rest[4:]
		if count > maxClaims || int(count) > len(rest)/11 {
			return message{}, fmt.Errorf("claims count %d does not fit in %d bytes", count, len(rest))
		}
		for range count {
			if len(rest) < 1 || (rest[0] != 4 && rest[0] != 16) || len(rest) < 1+int(rest[0]) {
				return message{}, fmt.Errorf("%w: malformed claimed key", errShortMessage)
			}
			a, _ := netip.AddrFromSlice(rest[1 : 1+rest[0]])
			rest = rest[1+int(rest[0]):]
			if len(rest) < 6 {
				return message{}, fmt.Errorf("%w: claim of %s cut short", errShortMessage, a)
			}
			m.claims = append(m.claims, Claim{Key: a, Gen: binary.BigEndian.Uint32(rest), View: binary.BigEndian.Uint16(rest[4:])})
			rest = rest[6:]
		}
	}
	return m, nil
}
