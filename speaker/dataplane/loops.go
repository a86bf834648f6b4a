package dataplane

import (
	"bytes"
	"context"
	"errors"
	"os"
	"time"

	"github.com/go-logr/logr"
	"k8s.io/utils/clock"

	"github.com/lbstack/lbstack/speaker/membership"
)

// Joiner is what JoinLoop needs of membership (*membership.Membership).
type Joiner interface {
	Join(addrs []string) (int, error)
	Live() []membership.Member
}

// JoinRetryInterval is how often JoinLoop tries again while some of the
// other nodes' speakers are not members yet (they may not run yet).
const JoinRetryInterval = 2 * time.Second

// JoinLoop joins the other nodes' speakers whenever their address list
// changes (peers delivers the newest list), and every JoinRetryInterval
// while fewer are live than listed. It returns when ctx ends.
func JoinLoop(ctx context.Context, clk clock.WithTicker, mem Joiner, peers <-chan []string, log logr.Logger) {
	var want []string
	retry := clk.NewTicker(JoinRetryInterval)
	defer retry.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case want = <-peers:
		case <-retry.C():
			if len(want) == 0 || len(mem.Live()) > len(want) {
				continue
			}
		}
		if len(want) == 0 {
			continue
		}
		if n, err := mem.Join(want); err != nil && !errors.Is(err, membership.ErrNotRunning) {
			log.V(1).Info("Joining speakers", "contacted", n, "error", err.Error())
		}
	}
}

// KeySetter is what WatchKey needs of membership (*membership.Membership).
type KeySetter interface {
	SetKey(key []byte) error
}

// KeyCheckInterval is how often WatchKey reads the key file again (the
// kubelet updates a Secret volume within about a minute of the change).
const KeyCheckInterval = 10 * time.Second

// WatchKey rotates the memberlist key when the key file at path changes
// (the operator's Secret was replaced): the new key encrypts, the old ones
// still decrypt, so that speakers that have rotated and those that have not
// yet, and those that start with the new key, all understand each other.
// current is the key in use. It returns when ctx ends.
func WatchKey(ctx context.Context, clk clock.Clock, path string, current []byte, mem KeySetter, log logr.Logger) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-clk.After(KeyCheckInterval):
		}
		b, err := os.ReadFile(path)
		if err != nil || bytes.Equal(b, current) {
			continue
		}
		if err := mem.SetKey(b); err != nil {
			log.Error(err, "The memberlist key file changed, but the new key cannot be used", "file", path)
			current = b // report once per change
			continue
		}
		log.Info("The memberlist key file changed: rotated to the new key", "file", path)
		current = b
	}
}

// MetaSetter is what PublishMeta needs of membership
// (*membership.Membership).
type MetaSetter interface {
	SetMeta(meta []byte) error
}
