package membership

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr/funcr"

	"k8s.io/utils/clock"
)

func TestConfigDefaults(t *testing.T) {
	c, err := Config{NodeName: "a"}.withDefaults()
	if err != nil {
		t.Fatalf("withDefaults: %v", err)
	}
	if c.BindAddr != "0.0.0.0" || c.BindPort != 0 || c.HeartbeatInterval != DefaultHeartbeatInterval ||
		c.MissedHeartbeats != DefaultMissedHeartbeats || c.MaxPeers != DefaultMaxPeers ||
		c.ProbeInterval != DefaultProbeInterval || c.ProbeTimeout != DefaultProbeTimeout {
		t.Errorf("withDefaults = %+v", c)
	}
	if _, ok := c.Clock.(clock.RealClock); !ok {
		t.Errorf("Clock = %T, want clock.RealClock", c.Clock)
	}
}

func TestConfigInvalid(t *testing.T) {
	secret := []byte("0123456789abcdefX") // 17 bytes
	tests := map[string]struct {
		cfg  Config
		want []string
	}{
		"no name": {
			cfg:  Config{},
			want: []string{"NodeName must be 1 to 253 bytes long, not 0"},
		},
		"name too long": {
			cfg:  Config{NodeName: strings.Repeat("n", 254)},
			want: []string{"NodeName must be 1 to 253 bytes long, not 254"},
		},
		"bad addresses and port": {
			cfg:  Config{NodeName: "a", BindAddr: "node-a", AdvertiseAddr: "10.0.0.300", BindPort: 70000},
			want: []string{"BindAddr", "AdvertiseAddr", "BindPort 70000 is out of range"},
		},
		"bad key length, without the key": {
			cfg:  Config{NodeName: "a", SecretKey: secret},
			want: []string{"SecretKey must be 16, 24 or 32 bytes long, not 17"},
		},
		"bad timings": {
			cfg: Config{
				NodeName: "a", HeartbeatInterval: time.Millisecond, MissedHeartbeats: 1, MaxPeers: -1,
				ProbeInterval: time.Second, ProbeTimeout: 2 * time.Second,
			},
			want: []string{
				"HeartbeatInterval 1ms is shorter than 10ms", "MissedHeartbeats must be at least 2, not 1",
				"MaxPeers must be positive, not -1", "ProbeTimeout 2s must be positive and shorter than ProbeInterval 1s",
			},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			_, err := New(tc.cfg)
			if err == nil {
				t.Fatal("New succeeded, want an error")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
			if strings.Contains(err.Error(), string(secret)) {
				t.Errorf("error %q contains the secret key", err)
			}
		})
	}
}

func TestParseLogLine(t *testing.T) {
	tests := map[string]struct {
		in, level, msg string
	}{
		"warning": {
			in:    "[WARN] memberlist: Refuting a suspect message (from: b)\n",
			level: "WARN", msg: "Refuting a suspect message (from: b)",
		},
		"lower case, trailing period": {
			in:    "[DEBUG] memberlist: failed to join 127.0.0.1: refused.\n",
			level: "DEBUG", msg: "Failed to join 127.0.0.1: refused",
		},
		"no level": {in: "something odd", level: "", msg: "Something odd"},
		"empty":    {in: "", level: "", msg: ""},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			level, msg := parseLogLine([]byte(tc.in))
			if level != tc.level || msg != tc.msg {
				t.Errorf("parseLogLine = %q, %q; want %q, %q", level, msg, tc.level, tc.msg)
			}
		})
	}
}

// TestRemoteMessagesAreRateLimited: memberlist's complaints about single
// remote packets or streams are logged once per kind per interval, with the
// count left out; the foreign counter still sees every undecryptable one;
// other messages are never held back.
func TestRemoteMessagesAreRateLimited(t *testing.T) {
	var lines []string
	logger := funcr.New(func(prefix, args string) { lines = append(lines, args) }, funcr.Options{})
	now := time.Unix(1000, 0)
	foreign := 0
	w := logWriter{log: logger, foreign: func(string) { foreign++ }, limit: newRemoteLimiter(func() time.Time { return now })}
	write := func(s string) {
		if _, err := w.Write([]byte(s)); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 100 {
		write(fmt.Sprintf("[ERR] memberlist: Discarding stream with unacceptable label \"\": from=192.0.2.100:%d\n", 40000+i))
		write(fmt.Sprintf("[ERR] memberlist: Failed to receive and remove the stream label header: read tcp 192.0.2.11:7946->192.0.2.100:%d: i/o timeout from=192.0.2.100:%d\n", 50000+i, 50000+i))
		write("[WARN] memberlist: Refuting a suspect message (from: node2)\n")
	}
	if len(lines) != 2+100 {
		t.Fatalf("logged %d lines, want one per remote kind and every other message (102):\n%s", len(lines), strings.Join(lines, "\n"))
	}
	if foreign != 100 {
		t.Errorf("foreign saw %d undecryptable streams, want 100", foreign)
	}
	now = now.Add(remoteLogInterval)
	lines = nil
	write("[ERR] memberlist: Discarding stream with unacceptable label \"\": from=192.0.2.100:1\n")
	if len(lines) != 1 || !strings.Contains(lines[0], `"suppressedSinceLast"=99`) {
		t.Errorf("after the interval: %q, want one line saying 99 were left out", lines)
	}
}
