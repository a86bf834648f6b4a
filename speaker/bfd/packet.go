package bfd

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"time"
)

// Version is the BFD protocol version this package speaks (RFC 5880 §4.1).
const Version = 1

// HeaderLen is the length of the mandatory section of a BFD Control packet,
// the only length this package sends.
const HeaderLen = 24

// minAuthLen is the shortest valid Control packet with the A bit set: the
// mandatory section plus the type and length octets of the authentication
// section (RFC 5880 §6.8.6).
const minAuthLen = HeaderLen + 2

// MaxInterval is the longest interval a Control packet can carry: 2^32-1
// microseconds, a little over 71 minutes.
const MaxInterval = time.Duration(math.MaxUint32) * time.Microsecond

var (
	// ErrInvalidPacket is wrapped by every error for a Control packet that
	// RFC 5880 §6.8.6 says to discard because it is malformed or
	// inconsistent.
	ErrInvalidPacket = errors.New("invalid BFD control packet")
	// ErrAuthUnsupported is wrapped by the error for a well-formed Control
	// packet with an authentication type this package does not implement
	// (Simple Password, or an unknown type), which RFC 5880 §6.8.6 says to
	// discard.
	ErrAuthUnsupported = errors.New("BFD authentication type is not supported")
)

// State is a BFD session state (RFC 5880 §4.1, §6.2).
type State uint8

// The session states, with their wire values.
const (
	StateAdminDown State = 0
	StateDown      State = 1
	StateInit      State = 2
	StateUp        State = 3
)

func (s State) String() string {
	switch s {
	case StateAdminDown:
		return "AdminDown"
	case StateDown:
		return "Down"
	case StateInit:
		return "Init"
	case StateUp:
		return "Up"
	default:
		return fmt.Sprintf("State(%d)", uint8(s))
	}
}

// Diag is a BFD diagnostic code: the local system's reason for the last
// change in session state (RFC 5880 §4.1).
type Diag uint8

// The diagnostic codes of RFC 5880 §4.1. Values 9 to 31 are reserved; they
// are accepted on receipt and printed as numbers.
const (
	DiagNone                        Diag = 0
	DiagControlDetectionTimeExpired Diag = 1
	DiagEchoFunctionFailed          Diag = 2
	DiagNeighborSignaledDown        Diag = 3
	DiagForwardingPlaneReset        Diag = 4
	DiagPathDown                    Diag = 5
	DiagConcatenatedPathDown        Diag = 6
	DiagAdminDown                   Diag = 7
	DiagReverseConcatenatedPathDown Diag = 8
)

func (d Diag) String() string {
	switch d {
	case DiagNone:
		return "NoDiagnostic"
	case DiagControlDetectionTimeExpired:
		return "ControlDetectionTimeExpired"
	case DiagEchoFunctionFailed:
		return "EchoFunctionFailed"
	case DiagNeighborSignaledDown:
		return "NeighborSignaledSessionDown"
	case DiagForwardingPlaneReset:
		return "ForwardingPlaneReset"
	case DiagPathDown:
		return "PathDown"
	case DiagConcatenatedPathDown:
		return "ConcatenatedPathDown"
	case DiagAdminDown:
		return "AdministrativelyDown"
	case DiagReverseConcatenatedPathDown:
		return "ReverseConcatenatedPathDown"
	default:
		return fmt.Sprintf("Diag(%d)", uint8(d))
	}
}

// Bits of the second octet of a Control packet, after the two state bits.
const (
	flagPoll       = 1 << 5
	flagFinal      = 1 << 4
	flagCPI        = 1 << 3
	flagAuth       = 1 << 2
	flagDemand     = 1 << 1
	flagMultipoint = 1 << 0
	diagMask       = 0x1f
	maxDiag        = diagMask
	versionShift   = 5
	stateShift     = 6
	maxStateOnWire = 3
)

// ControlPacket is the mandatory section of a BFD Control packet (RFC 5880
// §4.1). Intervals are carried on the wire in microseconds; finer parts of
// a time.Duration are truncated by Marshal.
type ControlPacket struct {
	Diag  Diag
	State State
	// Poll (P) asks the peer to confirm a parameter change.
	Poll bool
	// Final (F) answers a packet with the Poll bit set.
	Final bool
	// ControlPlaneIndependent (C) says the sender's BFD does not share fate
	// with its control plane. lbstack always sends 0: BFD runs in the same
	// process as BGP.
	ControlPlaneIndependent bool
	// AuthPresent (A) says an authentication section follows: AuthType,
	// AuthKeyID and AuthSeq describe it (keyed types only; Unmarshal
	// rejects the others with ErrAuthUnsupported). Marshal refuses it:
	// AppendSigned encodes and signs an authenticated packet.
	AuthPresent bool
	// Demand (D) says the sender wishes to run in Demand mode.
	Demand bool
	// Multipoint (M) is reserved and must be 0.
	Multipoint bool

	DetectMult        uint8
	MyDiscriminator   uint32
	YourDiscriminator uint32

	DesiredMinTxInterval      time.Duration
	RequiredMinRxInterval     time.Duration
	RequiredMinEchoRxInterval time.Duration

	AuthType  AuthType
	AuthKeyID uint8
	// AuthSeq is the authentication sequence number.
	AuthSeq uint32
}

// Marshal encodes the packet into a new HeaderLen-byte slice.
func (p *ControlPacket) Marshal() ([]byte, error) {
	return p.AppendTo(make([]byte, 0, HeaderLen))
}

// AppendTo appends the encoded packet to b. It refuses only what the wire
// format cannot carry (and authentication, which this package does not
// implement); it does not apply the receive checks of Validate, so tests
// can build invalid packets with it.
func (p *ControlPacket) AppendTo(b []byte) ([]byte, error) {
	if p.Diag > maxDiag {
		return b, fmt.Errorf("diagnostic %d does not fit in 5 bits", p.Diag)
	}
	if p.State > maxStateOnWire {
		return b, fmt.Errorf("state %d does not fit in 2 bits", p.State)
	}
	if p.AuthPresent {
		return b, errors.New("marshalling control packet: an authenticated packet is encoded with AppendSigned")
	}
	return p.appendHeader(b, HeaderLen, 0)
}

// AppendSigned appends the packet with the authentication section of a
// (its type and key ID, p.AuthSeq) and the digest over the whole packet
// (RFC 5880 §6.7.3, §6.7.4).
func (p *ControlPacket) AppendSigned(b []byte, a Auth) ([]byte, error) {
	if a.Type == AuthNone {
		return b, errors.New("signing control packet: no authentication type")
	}
	if err := a.validate(); err != nil {
		return b, fmt.Errorf("signing control packet: %w", err)
	}
	start := len(b)
	b, err := p.appendHeader(b, HeaderLen+authHeaderLen+a.Type.digestLen(), flagAuth)
	if err != nil {
		return b[:start], err
	}
	return a.sign(b, p.AuthSeq), nil
}

func (p *ControlPacket) appendHeader(b []byte, length int, extra byte) ([]byte, error) {
	tx, err := micros("desired min TX interval", p.DesiredMinTxInterval)
	if err != nil {
		return b, err
	}
	rx, err := micros("required min RX interval", p.RequiredMinRxInterval)
	if err != nil {
		return b, err
	}
	echo, err := micros("required min echo RX interval", p.RequiredMinEchoRxInterval)
	if err != nil {
		return b, err
	}
	flags := byte(p.State)<<stateShift | extra
	for _, f := range []struct {
		set bool
		bit byte
	}{
		{p.Poll, flagPoll},
		{p.Final, flagFinal},
		{p.ControlPlaneIndependent, flagCPI},
		{p.Demand, flagDemand},
		{p.Multipoint, flagMultipoint},
	} {
		if f.set {
			flags |= f.bit
		}
	}
	b = append(b, Version<<versionShift|byte(p.Diag), flags, p.DetectMult, byte(length))
	b = binary.BigEndian.AppendUint32(b, p.MyDiscriminator)
	b = binary.BigEndian.AppendUint32(b, p.YourDiscriminator)
	b = binary.BigEndian.AppendUint32(b, tx)
	b = binary.BigEndian.AppendUint32(b, rx)
	b = binary.BigEndian.AppendUint32(b, echo)
	return b, nil
}

func micros(name string, d time.Duration) (uint32, error) {
	if d < 0 || d > MaxInterval {
		return 0, fmt.Errorf("%s %s is outside 0..%s", name, d, MaxInterval)
	}
	return uint32(d / time.Microsecond), nil
}

// Unmarshal decodes and validates a BFD Control packet received as the
// payload of a UDP datagram. It applies the checks of RFC 5880 §6.8.6 that
// need no session: version, length, detect multiplier, the Multipoint bit,
// My Discriminator, Your Discriminator against the State field, and Poll
// together with Final (which §4.1 forbids; BIRD drops such packets too).
// Bytes after Length are ignored. Errors wrap ErrInvalidPacket, or
// ErrAuthUnsupported for a well-formed packet that carries authentication.
func Unmarshal(b []byte) (ControlPacket, error) {
	if len(b) < HeaderLen {
		return ControlPacket{}, fmt.Errorf("%w: %d bytes, want at least %d", ErrInvalidPacket, len(b), HeaderLen)
	}
	if v := b[0] >> versionShift; v != Version {
		return ControlPacket{}, fmt.Errorf("%w: version %d", ErrInvalidPacket, v)
	}
	flags := b[1]
	p := ControlPacket{
		Diag:                      Diag(b[0] & diagMask),
		State:                     State(flags >> stateShift),
		Poll:                      flags&flagPoll != 0,
		Final:                     flags&flagFinal != 0,
		ControlPlaneIndependent:   flags&flagCPI != 0,
		AuthPresent:               flags&flagAuth != 0,
		Demand:                    flags&flagDemand != 0,
		Multipoint:                flags&flagMultipoint != 0,
		DetectMult:                b[2],
		MyDiscriminator:           binary.BigEndian.Uint32(b[4:8]),
		YourDiscriminator:         binary.BigEndian.Uint32(b[8:12]),
		DesiredMinTxInterval:      time.Duration(binary.BigEndian.Uint32(b[12:16])) * time.Microsecond,
		RequiredMinRxInterval:     time.Duration(binary.BigEndian.Uint32(b[16:20])) * time.Microsecond,
		RequiredMinEchoRxInterval: time.Duration(binary.BigEndian.Uint32(b[20:24])) * time.Microsecond,
	}
	length := int(b[3])
	minLen := HeaderLen
	if p.AuthPresent {
		minLen = minAuthLen
	}
	if length < minLen {
		return ControlPacket{}, fmt.Errorf("%w: length field %d, want at least %d", ErrInvalidPacket, length, minLen)
	}
	if length > len(b) {
		return ControlPacket{}, fmt.Errorf("%w: length field %d exceeds the %d-byte payload", ErrInvalidPacket, length, len(b))
	}
	if err := p.Validate(); err != nil {
		return ControlPacket{}, err
	}
	if p.AuthPresent {
		p.AuthType, p.AuthKeyID = AuthType(b[HeaderLen]), 0
		n := p.AuthType.digestLen()
		if n == 0 {
			return ControlPacket{}, fmt.Errorf("packet from discriminator %d with authentication type %s: %w", p.MyDiscriminator, p.AuthType, ErrAuthUnsupported)
		}
		if alen := int(b[HeaderLen+1]); alen != authHeaderLen+n || length != HeaderLen+alen {
			return ControlPacket{}, fmt.Errorf("%w: %s section of %d bytes in a packet of %d, want %d in %d", ErrInvalidPacket, p.AuthType, alen, length, authHeaderLen+n, HeaderLen+authHeaderLen+n)
		}
		p.AuthKeyID = b[HeaderLen+2]
		p.AuthSeq = binary.BigEndian.Uint32(b[HeaderLen+4 : HeaderLen+8])
	}
	return p, nil
}

// Validate applies the receive checks of RFC 5880 §6.8.6 that concern the
// decoded fields alone. Errors wrap ErrInvalidPacket.
func (p *ControlPacket) Validate() error {
	switch {
	case p.DetectMult == 0:
		return fmt.Errorf("%w: detect multiplier is zero", ErrInvalidPacket)
	case p.Multipoint:
		return fmt.Errorf("%w: multipoint bit set", ErrInvalidPacket)
	case p.Poll && p.Final:
		return fmt.Errorf("%w: poll and final bits both set", ErrInvalidPacket)
	case p.MyDiscriminator == 0:
		return fmt.Errorf("%w: my discriminator is zero", ErrInvalidPacket)
	case p.YourDiscriminator == 0 && p.State != StateDown && p.State != StateAdminDown:
		return fmt.Errorf("%w: your discriminator is zero in state %s", ErrInvalidPacket, p.State)
	case p.State > maxStateOnWire:
		return fmt.Errorf("%w: state %d", ErrInvalidPacket, p.State)
	}
	return nil
}
