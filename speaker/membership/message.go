package membership

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// The messages this package sends to other members as memberlist user
// messages (memberlist encrypts and authenticates them with the cluster key).
// Layout, big-endian:
//
//	0      type (msgHeartbeat, msgLeave)
//	1      flags (flagWatching)
//	2..9   epoch: identifies one run of the sender
//	10..17 seq: the sender's heartbeat round within its epoch
//	18     length n of the sender's node name, 1..maxNameLen
//	19..   the sender's node name (n bytes)
//
// Bytes after the name are ignored, so later versions may append fields;
// unknown types are ignored by the receiver.
type msgType byte

const (
	// msgHeartbeat says "I am alive"; with flagWatching it also asks the
	// receiver to heartbeat the sender.
	msgHeartbeat msgType = 1
	// msgLeave says "I am leaving now": the receiver drops the sender at once
	// instead of waiting for memberlist to spread the leave.
	msgLeave msgType = 2
)

// flagWatching: the sender watches the receiver and needs its heartbeats.
const flagWatching byte = 1 << 0

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
	typ      msgType
	watching bool
	epoch    uint64
	seq      uint64
	name     string
}

// appendTo appends the encoded message to b. The name must be 1..maxNameLen
// bytes long (New checks the local node name).
func (m message) appendTo(b []byte) []byte {
	var flags byte
	if m.watching {
		flags |= flagWatching
	}
	b = append(b, byte(m.typ), flags)
	b = binary.BigEndian.AppendUint64(b, m.epoch)
	b = binary.BigEndian.AppendUint64(b, m.seq)
	b = append(b, byte(len(m.name)))
	return append(b, m.name...)
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
	if m.typ != msgHeartbeat && m.typ != msgLeave {
		return message{}, fmt.Errorf("%w %d", errUnknownType, b[0])
	}
	n := int(b[18])
	if n == 0 || n > maxNameLen {
		return message{}, fmt.Errorf("invalid name length %d", n)
	}
	if len(b) < headerLen+n {
		return message{}, fmt.Errorf("%w: name of %d bytes in %d bytes", errShortMessage, n, len(b))
	}
	m.name = string(b[headerLen : headerLen+n])
	return m, nil
}
