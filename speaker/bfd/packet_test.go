package bfd_test

import (
	"encoding/hex"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/lbstack/lbstack/speaker/bfd"
)

// hexBytes decodes hex with spaces for readability.
func hexBytes(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.ReplaceAll(s, " ", ""))
	if err != nil {
		t.Fatalf("decoding %q: %v", s, err)
	}
	return b
}

// downHello is BIRD's first packet with min tx/rx 100 ms: Down, idle TX of
// 1 s, discriminator 0x11223344, nobody's discriminator yet.
const downHello = "20 40 03 18 11223344 00000000 000f4240 000186a0 00000000"

func TestUnmarshal(t *testing.T) {
	tests := map[string]struct {
		in      string
		want    bfd.ControlPacket
		wantErr error
	}{
		"BIRD Down hello": {
			in: downHello,
			want: bfd.ControlPacket{
				State: bfd.StateDown, DetectMult: 3, MyDiscriminator: 0x11223344,
				DesiredMinTxInterval: time.Second, RequiredMinRxInterval: 100 * time.Millisecond,
			},
		},
		"Up with poll and diag 3": {
			in: "23 e0 05 18 00000001 00000002 000186a0 000186a0 00000032",
			want: bfd.ControlPacket{
				Diag: bfd.DiagNeighborSignaledDown, State: bfd.StateUp, Poll: true, DetectMult: 5,
				MyDiscriminator: 1, YourDiscriminator: 2,
				DesiredMinTxInterval: 100 * time.Millisecond, RequiredMinRxInterval: 100 * time.Millisecond,
				RequiredMinEchoRxInterval: 50 * time.Microsecond,
			},
		},
		"Init with final, C and D bits": {
			in: "20 9a 01 18 ffffffff 00000007 ffffffff 00000000 00000000",
			want: bfd.ControlPacket{
				State: bfd.StateInit, Final: true, ControlPlaneIndependent: true, Demand: true, DetectMult: 1,
				MyDiscriminator: 0xffffffff, YourDiscriminator: 7, DesiredMinTxInterval: bfd.MaxInterval,
			},
		},
		"AdminDown without your discriminator": {
			in:   "27 00 03 18 00000009 00000000 000f4240 000f4240 00000000",
			want: bfd.ControlPacket{Diag: bfd.DiagAdminDown, State: bfd.StateAdminDown, DetectMult: 3, MyDiscriminator: 9, DesiredMinTxInterval: time.Second, RequiredMinRxInterval: time.Second},
		},
		"trailing bytes beyond length are ignored": {
			in:   downHello + " deadbeef",
			want: bfd.ControlPacket{State: bfd.StateDown, DetectMult: 3, MyDiscriminator: 0x11223344, DesiredMinTxInterval: time.Second, RequiredMinRxInterval: 100 * time.Millisecond},
		},
		"length larger than 24 within the payload": {
			in:   "20 40 03 1c 11223344 00000000 000f4240 000186a0 00000000 00000000",
			want: bfd.ControlPacket{State: bfd.StateDown, DetectMult: 3, MyDiscriminator: 0x11223344, DesiredMinTxInterval: time.Second, RequiredMinRxInterval: 100 * time.Millisecond},
		},
		"empty":                            {in: "", wantErr: bfd.ErrInvalidPacket},
		"too short":                        {in: "20 40 03 18 11223344 00000000 000f4240 000186a0 000000", wantErr: bfd.ErrInvalidPacket},
		"version 0":                        {in: "00 40 03 18 11223344 00000000 000f4240 000186a0 00000000", wantErr: bfd.ErrInvalidPacket},
		"version 2":                        {in: "40 40 03 18 11223344 00000000 000f4240 000186a0 00000000", wantErr: bfd.ErrInvalidPacket},
		"length field below 24":            {in: "20 40 03 17 11223344 00000000 000f4240 000186a0 00000000", wantErr: bfd.ErrInvalidPacket},
		"length field beyond payload":      {in: "20 40 03 19 11223344 00000000 000f4240 000186a0 00000000", wantErr: bfd.ErrInvalidPacket},
		"detect multiplier zero":           {in: "20 40 00 18 11223344 00000000 000f4240 000186a0 00000000", wantErr: bfd.ErrInvalidPacket},
		"multipoint":                       {in: "20 41 03 18 11223344 00000000 000f4240 000186a0 00000000", wantErr: bfd.ErrInvalidPacket},
		"poll and final":                   {in: "20 70 03 18 11223344 00000000 000f4240 000186a0 00000000", wantErr: bfd.ErrInvalidPacket},
		"my discriminator zero":            {in: "20 40 03 18 00000000 00000000 000f4240 000186a0 00000000", wantErr: bfd.ErrInvalidPacket},
		"Init without your discriminator":  {in: "20 80 03 18 11223344 00000000 000f4240 000186a0 00000000", wantErr: bfd.ErrInvalidPacket},
		"Up without your discriminator":    {in: "20 c0 03 18 11223344 00000000 000f4240 000186a0 00000000", wantErr: bfd.ErrInvalidPacket},
		"auth with length 24":              {in: "20 44 03 18 11223344 00000000 000f4240 000186a0 00000000", wantErr: bfd.ErrInvalidPacket},
		"auth, simple password":            {in: "20 44 03 1d 11223344 00000000 000f4240 000186a0 00000000 01 05 01 61 62", wantErr: bfd.ErrAuthUnsupported},
		"auth is checked after the header": {in: "20 44 00 1d 11223344 00000000 000f4240 000186a0 00000000 01 05 01 61 62", wantErr: bfd.ErrInvalidPacket},
		"auth, keyed MD5": {in: "20 44 03 30 11223344 00000000 000f4240 000186a0 00000000 02 18 07 00 0000002a" + zeros(16),
			want: bfd.ControlPacket{State: bfd.StateDown, DetectMult: 3, MyDiscriminator: 0x11223344, DesiredMinTxInterval: time.Second, RequiredMinRxInterval: 100 * time.Millisecond,
				AuthPresent: true, AuthType: bfd.AuthKeyedMD5, AuthKeyID: 7, AuthSeq: 42}},
		"auth, meticulous keyed SHA1": {in: "20 44 03 34 11223344 00000000 000f4240 000186a0 00000000 05 1c 01 00 ffffffff" + zeros(20),
			want: bfd.ControlPacket{State: bfd.StateDown, DetectMult: 3, MyDiscriminator: 0x11223344, DesiredMinTxInterval: time.Second, RequiredMinRxInterval: 100 * time.Millisecond,
				AuthPresent: true, AuthType: bfd.AuthMeticulousKeyedSHA1, AuthKeyID: 1, AuthSeq: 0xffffffff}},
		"auth, MD5 section too short":   {in: "20 44 03 2c 11223344 00000000 000f4240 000186a0 00000000 02 14 07 00 0000002a" + zeros(12), wantErr: bfd.ErrInvalidPacket},
		"auth, SHA1 length field wrong": {in: "20 44 03 30 11223344 00000000 000f4240 000186a0 00000000 04 1c 01 00 00000001" + zeros(20), wantErr: bfd.ErrInvalidPacket},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got, err := bfd.Unmarshal(hexBytes(t, tc.in))
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("Unmarshal() error = %v, want %v", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("Unmarshal() error = %v", err)
			}
			if got != tc.want {
				t.Errorf("Unmarshal() = %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestMarshal(t *testing.T) {
	tests := map[string]struct {
		in      bfd.ControlPacket
		want    string
		wantErr bool
	}{
		"BIRD Down hello": {
			in:   bfd.ControlPacket{State: bfd.StateDown, DetectMult: 3, MyDiscriminator: 0x11223344, DesiredMinTxInterval: time.Second, RequiredMinRxInterval: 100 * time.Millisecond},
			want: downHello,
		},
		"every flag but A and diag 31": {
			in: bfd.ControlPacket{
				Diag: 31, State: bfd.StateUp, Poll: true, Final: true, ControlPlaneIndependent: true, Demand: true, Multipoint: true,
				DetectMult: 255, MyDiscriminator: 1, YourDiscriminator: 2, DesiredMinTxInterval: bfd.MaxInterval,
				RequiredMinRxInterval: time.Microsecond, RequiredMinEchoRxInterval: 1500 * time.Nanosecond,
			},
			want: "3f fb ff 18 00000001 00000002 ffffffff 00000001 00000001",
		},
		"diag beyond 5 bits":     {in: bfd.ControlPacket{Diag: 32}, wantErr: true},
		"state beyond 2 bits":    {in: bfd.ControlPacket{State: 4}, wantErr: true},
		"authentication":         {in: bfd.ControlPacket{AuthPresent: true}, wantErr: true},
		"negative interval":      {in: bfd.ControlPacket{DesiredMinTxInterval: -time.Microsecond}, wantErr: true},
		"interval beyond 32 bit": {in: bfd.ControlPacket{RequiredMinRxInterval: bfd.MaxInterval + time.Microsecond}, wantErr: true},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got, err := tc.in.Marshal()
			if tc.wantErr {
				if err == nil {
					t.Fatalf("Marshal() = %x, want an error", got)
				}
				return
			}
			if err != nil {
				t.Fatalf("Marshal() error = %v", err)
			}
			if want := hexBytes(t, tc.want); string(got) != string(want) {
				t.Errorf("Marshal() = % x, want % x", got, want)
			}
		})
	}
}

func TestStringers(t *testing.T) {
	tests := map[string]struct {
		got, want string
	}{
		"AdminDown":  {bfd.StateAdminDown.String(), "AdminDown"},
		"Up":         {bfd.StateUp.String(), "Up"},
		"bad state":  {bfd.State(9).String(), "State(9)"},
		"diag 1":     {bfd.DiagControlDetectionTimeExpired.String(), "ControlDetectionTimeExpired"},
		"diag 3":     {bfd.DiagNeighborSignaledDown.String(), "NeighborSignaledSessionDown"},
		"diag 7":     {bfd.DiagAdminDown.String(), "AdministrativelyDown"},
		"diag 30":    {bfd.Diag(30).String(), "Diag(30)"},
		"diag none ": {bfd.DiagNone.String(), "NoDiagnostic"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			if tc.got != tc.want {
				t.Errorf("String() = %q, want %q", tc.got, tc.want)
			}
		})
	}
}

// FuzzUnmarshal checks that Unmarshal never panics, that what it accepts
// passes Validate and survives a Marshal/Unmarshal round trip, and that a
// 24-byte packet it accepts is re-encoded byte for byte.
func FuzzUnmarshal(f *testing.F) {
	for _, s := range []string{
		downHello,
		"23 e0 05 18 00000001 00000002 000186a0 000186a0 00000032",
		"20 44 03 1d 11223344 00000000 000f4240 000186a0 00000000 01 05 01 61 62",
		"20 70 03 18 11223344 00000000 000f4240 000186a0 00000000",
	} {
		f.Add(hexBytes(f, s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := bfd.Unmarshal(b)
		if err != nil {
			if !errors.Is(err, bfd.ErrInvalidPacket) && !errors.Is(err, bfd.ErrAuthUnsupported) {
				t.Fatalf("Unmarshal() error %v wraps neither sentinel", err)
			}
			return
		}
		if err := p.Validate(); err != nil {
			t.Fatalf("Unmarshal() accepted a packet that Validate rejects: %v", err)
		}
		var enc []byte
		if p.AuthPresent {
			// A keyed type (Unmarshal refuses the others): re-signed with
			// some key of the type's length the fields must come back.
			enc, err = p.AppendSigned(nil, bfd.Auth{Type: p.AuthType, KeyID: p.AuthKeyID, Key: strings.Repeat("k", p.AuthType.MaxKeyLen())})
		} else {
			enc, err = p.Marshal()
		}
		if err != nil {
			t.Fatalf("encoding an accepted packet: %v", err)
		}
		again, err := bfd.Unmarshal(enc)
		if err != nil {
			t.Fatalf("Unmarshal(Marshal()) error = %v", err)
		}
		if again != p {
			t.Fatalf("round trip: got %+v, want %+v", again, p)
		}
		if !p.AuthPresent && b[3] == bfd.HeaderLen && string(enc) != string(b[:bfd.HeaderLen]) {
			t.Fatalf("re-encoding: got % x, want % x", enc, b[:bfd.HeaderLen])
		}
	})
}

// zeros is n zero bytes in hexBytes notation.
func zeros(n int) string { return " " + strings.Repeat("00", n) }
