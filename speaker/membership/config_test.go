package membership

import (
	"strings"
	"testing"
	"time"

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
