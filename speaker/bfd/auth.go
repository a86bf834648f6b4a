package bfd

import (
	"crypto/md5"  //nolint:gosec // RFC 5880 §6.7.3 defines Keyed MD5; it is the peer's choice, not ours
	"crypto/sha1" //nolint:gosec // RFC 5880 §6.7.4 defines Keyed SHA1
	"crypto/subtle"
	"encoding/binary"
	"errors"
	"fmt"
)

// AuthType is the authentication type of a Control packet (RFC 5880
// §4.2). This package implements the keyed types; Simple Password sends
// the key in clear and is refused.
type AuthType uint8

// Authentication types, with their wire values.
const (
	AuthNone                AuthType = 0
	AuthSimplePassword      AuthType = 1
	AuthKeyedMD5            AuthType = 2
	AuthMeticulousKeyedMD5  AuthType = 3
	AuthKeyedSHA1           AuthType = 4
	AuthMeticulousKeyedSHA1 AuthType = 5
)

func (t AuthType) String() string {
	switch t {
	case AuthNone:
		return "None"
	case AuthSimplePassword:
		return "SimplePassword"
	case AuthKeyedMD5:
		return "KeyedMD5"
	case AuthMeticulousKeyedMD5:
		return "MeticulousKeyedMD5"
	case AuthKeyedSHA1:
		return "KeyedSHA1"
	case AuthMeticulousKeyedSHA1:
		return "MeticulousKeyedSHA1"
	default:
		return fmt.Sprintf("AuthType(%d)", uint8(t))
	}
}

// digestLen is the length of the Auth Key/Digest field of a keyed type, 0
// for the others.
func (t AuthType) digestLen() int {
	switch t {
	case AuthKeyedMD5, AuthMeticulousKeyedMD5:
		return md5.Size
	case AuthKeyedSHA1, AuthMeticulousKeyedSHA1:
		return sha1.Size
	}
	return 0
}

// MaxKeyLen is the longest key of a keyed type: 16 bytes for MD5, 20 for
// SHA1 (RFC 5880 §4.3, §4.4); 0 for the types this package does not sign.
func (t AuthType) MaxKeyLen() int { return t.digestLen() }

// Meticulous reports whether every packet must carry a new sequence number.
func (t AuthType) Meticulous() bool {
	return t == AuthMeticulousKeyedMD5 || t == AuthMeticulousKeyedSHA1
}

// authHeaderLen is the authentication section before the digest: type,
// length, key ID, reserved and the sequence number.
const authHeaderLen = 8

// ErrAuthFailed is wrapped by the error for a packet whose authentication
// does not check out: wrong type or key ID, a sequence number outside the
// window, a bad digest, or a packet with authentication where none is
// configured (or without where it is).
var ErrAuthFailed = errors.New("BFD authentication failed")

// Auth is the key of an authenticated session.
type Auth struct {
	// Type is a keyed type (KeyedMD5 ... MeticulousKeyedSHA1); AuthNone
	// means no authentication.
	Type AuthType
	// KeyID names the key on the wire; the peer must use the same one.
	KeyID uint8
	// Key is the shared secret, 1 to Type.MaxKeyLen() bytes. A string, so
	// that a SessionConfig stays comparable.
	Key string
}

func (a Auth) validate() error {
	if a.Type == AuthNone {
		return nil
	}
	if a.Type.digestLen() == 0 {
		return fmt.Errorf("authentication type %s is not supported (keyed MD5 or SHA1 only)", a.Type)
	}
	if len(a.Key) == 0 || len(a.Key) > a.Type.MaxKeyLen() {
		return fmt.Errorf("a %s key is 1 to %d bytes, not %d", a.Type, a.Type.MaxKeyLen(), len(a.Key))
	}
	return nil
}

// CheckKey says why key cannot be a's key (1 to Type.MaxKeyLen() bytes).
func (a Auth) CheckKey(key string) error {
	a.Key = key
	return a.validate()
}

// String hides the key.
func (a Auth) String() string {
	if a.Type == AuthNone {
		return "None"
	}
	return fmt.Sprintf("%s key %d", a.Type, a.KeyID)
}

// sign appends the authentication section of a to b, the encoded
// mandatory section with the A bit set and Length covering the section,
// and fills in the digest (RFC 5880 §6.7.3, §6.7.4): the hash of the
// whole packet with the key, zero-padded, in the digest field.
func (a Auth) sign(b []byte, seq uint32) []byte {
	n := a.Type.digestLen()
	start := len(b)
	b = append(b, byte(a.Type), byte(authHeaderLen+n), a.KeyID, 0)
	b = binary.BigEndian.AppendUint32(b, seq)
	key := make([]byte, n)
	copy(key, a.Key)
	b = append(b, key...)
	sum := a.hash(b[start-HeaderLen:])
	copy(b[start+authHeaderLen:], sum)
	return b
}

func (a Auth) hash(pkt []byte) []byte {
	switch a.Type.digestLen() {
	case md5.Size:
		s := md5.Sum(pkt) //nolint:gosec // see the import
		return s[:]
	default:
		s := sha1.Sum(pkt) //nolint:gosec // see the import
		return s[:]
	}
}

// verify checks the digest of pkt (the Length bytes of a received packet
// whose authentication section Unmarshal accepted for a's type) with a's
// key.
func (a Auth) verify(pkt []byte) bool {
	n := a.Type.digestLen()
	if len(pkt) != HeaderLen+authHeaderLen+n {
		return false
	}
	got := pkt[HeaderLen+authHeaderLen:]
	c := make([]byte, len(pkt))
	copy(c, pkt)
	key := c[HeaderLen+authHeaderLen:]
	clear(key)
	copy(key, a.Key)
	return subtle.ConstantTimeCompare(a.hash(c), got) == 1
}
