package membership

import (
	"bytes"
	"errors"
	"net/netip"
	"reflect"
	"strings"
	"testing"
)

func TestMessageRoundTrip(t *testing.T) {
	tests := map[string]message{
		"heartbeat watching":                {typ: msgHeartbeat, watching: true, epoch: 1 << 60, seq: 7, name: "node-a"},
		"heartbeat reply":                   {typ: msgHeartbeat, epoch: 3, seq: 1 << 40, name: "b"},
		"leave":                             {typ: msgLeave, epoch: 9, seq: 12, name: "worker-1.example.com"},
		"longest name":                      {typ: msgHeartbeat, name: strings.Repeat("n", maxNameLen)},
		"heartbeat with digest, suspecting": {typ: msgHeartbeat, suspectsYou: true, hasDigest: true, digest: 0xfeedbeef, epoch: 1, seq: 2, name: "c"},
		"claims request":                    {typ: msgClaimsRequest, epoch: 4, seq: 5, name: "d"},
		"claims":                            {typ: msgClaims, epoch: 4, seq: 9, name: "e", claims: []Claim{{Key: netip.MustParseAddr("192.0.2.1")}, {Key: netip.MustParseAddr("2001:db8::1"), Gen: 1 << 31, View: 300}}},
		"no claims":                         {typ: msgClaims, epoch: 4, seq: 10, name: "f"},
	}
	for name, want := range tests {
		t.Run(name, func(t *testing.T) {
			b := want.appendTo(nil)
			got, err := decodeMessage(b)
			if err != nil {
				t.Fatalf("decodeMessage: %v", err)
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("decodeMessage = %+v, want %+v", got, want)
			}
			// Later versions may append fields.
			got, err = decodeMessage(append(b, 1, 2, 3))
			if err != nil || !reflect.DeepEqual(got, want) {
				t.Errorf("decodeMessage with trailing bytes = %+v, %v; want %+v", got, err, want)
			}
		})
	}
}

func TestDecodeMessageRejects(t *testing.T) {
	valid := message{typ: msgHeartbeat, epoch: 1, seq: 2, name: "node-a"}.appendTo(nil)
	with := func(i int, v byte) []byte {
		b := bytes.Clone(valid)
		b[i] = v
		return b
	}
	tests := map[string]struct {
		in      []byte
		wantErr error
	}{
		"empty":             {in: nil, wantErr: errShortMessage},
		"one byte":          {in: []byte{byte(msgHeartbeat)}, wantErr: errShortMessage},
		"header only":       {in: valid[:headerLen], wantErr: errShortMessage},
		"truncated name":    {in: valid[:len(valid)-1], wantErr: errShortMessage},
		"unknown type":      {in: with(0, 0x7f), wantErr: errUnknownType},
		"type zero":         {in: with(0, 0), wantErr: errUnknownType},
		"zero name length":  {in: with(18, 0)},
		"name too long":     {in: append(with(18, 254), bytes.Repeat([]byte("x"), 254)...)},
		"name beyond input": {in: with(18, 200), wantErr: errShortMessage},
		"digest cut short":  {in: append(with(1, flagDigest), 1, 2, 3), wantErr: errShortMessage},
		"claims no count":   {in: with(0, byte(msgClaims)), wantErr: errShortMessage},
		"claims count lies": {in: append(with(0, byte(msgClaims)), 0, 0, 0, 9, 4, 192, 0, 2, 1, 0, 0, 0, 1, 0, 3)},
		"claims bad length": {in: append(with(0, byte(msgClaims)), 0, 0, 0, 1, 5, 1, 2, 3, 4, 5, 0, 0, 0, 0, 0, 0), wantErr: errShortMessage},
		"claim cut short":   {in: append(append(with(0, byte(msgClaims)), 0, 0, 0, 1, 16), append(bytes.Repeat([]byte{0x20}, 16), 0, 0, 1)...), wantErr: errShortMessage},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			_, err := decodeMessage(tc.in)
			if err == nil {
				t.Fatal("decodeMessage succeeded, want an error")
			}
			if tc.wantErr != nil && !errors.Is(err, tc.wantErr) {
				t.Errorf("decodeMessage error = %v, want %v", err, tc.wantErr)
			}
		})
	}
}

// FuzzDecodeMessage: whatever arrives, decoding must not panic, and what
// decodes must encode back to the same message.
func FuzzDecodeMessage(f *testing.F) {
	f.Add(message{typ: msgHeartbeat, watching: true, epoch: 1, seq: 2, name: "a"}.appendTo(nil))
	f.Add(message{typ: msgLeave, epoch: 5, seq: 6, name: "node-b"}.appendTo(nil))
	f.Add(message{typ: msgClaims, epoch: 5, seq: 6, name: "c", claims: []Claim{{Key: netip.MustParseAddr("203.0.113.9"), Gen: 7}}}.appendTo(nil))
	f.Add(message{typ: msgHeartbeat, hasDigest: true, digest: 3, name: "d"}.appendTo(nil))
	f.Add([]byte{})
	f.Add([]byte{1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 255})
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := decodeMessage(b)
		if err != nil {
			return
		}
		again, err := decodeMessage(m.appendTo(nil))
		if err != nil || !reflect.DeepEqual(again, m) {
			t.Fatalf("re-decoding %+v = %+v, %v", m, again, err)
		}
	})
}
