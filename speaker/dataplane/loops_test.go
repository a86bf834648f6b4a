package dataplane

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr/testr"
	clocktesting "k8s.io/utils/clock/testing"

	"github.com/lbstack/lbstack/speaker/l2"
	"github.com/lbstack/lbstack/speaker/membership"
)

// fakeJoiner records joins; live is how many members it reports.
type fakeJoiner struct {
	mu     sync.Mutex
	joins  [][]string
	live   int
	joined chan struct{}
}

func (f *fakeJoiner) Join(addrs []string) (int, error) {
	f.mu.Lock()
	f.joins = append(f.joins, slices.Clone(addrs))
	f.mu.Unlock()
	f.joined <- struct{}{}
	return len(addrs), nil
}

func (f *fakeJoiner) Live() []membership.Member {
	f.mu.Lock()
	defer f.mu.Unlock()
	return make([]membership.Member, f.live)
}

func (f *fakeJoiner) setLive(n int) { f.mu.Lock(); f.live = n; f.mu.Unlock() }

// TestJoinLoop: a new peer list is joined at once; while fewer members are
// live than peers listed (plus this node) the loop tries again every
// JoinRetryInterval, and stops trying once all are live.
func TestJoinLoop(t *testing.T) {
	clk := clocktesting.NewFakeClock(time.Unix(1000, 0))
	mem := &fakeJoiner{joined: make(chan struct{}, 16), live: 1}
	peers := make(chan []string, 1)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() { defer close(done); JoinLoop(ctx, clk, mem, peers, testr.New(t)) }()
	defer func() { cancel(); <-done }()

	waitJoin := func(what string) {
		t.Helper()
		select {
		case <-mem.joined:
		case <-time.After(5 * time.Second):
			t.Fatalf("no join: %s", what)
		}
	}
	noJoin := func(what string) {
		t.Helper()
		select {
		case <-mem.joined:
			t.Fatalf("joined: %s", what)
		case <-time.After(50 * time.Millisecond):
		}
	}
	noJoin("before any peer list")
	peers <- []string{"192.0.2.2:7946", "192.0.2.3:7946"}
	waitJoin("a new peer list")
	for !clk.HasWaiters() {
		time.Sleep(time.Millisecond)
	}
	clk.Step(JoinRetryInterval)
	waitJoin("two peers listed, none live: retry")
	mem.setLive(3)
	clk.Step(JoinRetryInterval)
	noJoin("every peer live")
	mem.mu.Lock()
	defer mem.mu.Unlock()
	if len(mem.joins) != 2 || !slices.Equal(mem.joins[1], []string{"192.0.2.2:7946", "192.0.2.3:7946"}) {
		t.Errorf("joins %v", mem.joins)
	}
}

// fakeKeys records the keys WatchKey rotates to.
type fakeKeys struct {
	keys chan []byte
	err  error
}

func (f *fakeKeys) SetKey(k []byte) error {
	f.keys <- slices.Clone(k)
	return f.err
}

// TestWatchKey: a changed key file rotates the key once; an unchanged one
// does nothing.
func TestWatchKey(t *testing.T) {
	clk := clocktesting.NewFakeClock(time.Unix(1000, 0))
	path := filepath.Join(t.TempDir(), "key")
	old := []byte("0123456789abcdef")
	if err := os.WriteFile(path, old, 0o600); err != nil {
		t.Fatal(err)
	}
	mem := &fakeKeys{keys: make(chan []byte, 4)}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() { defer close(done); WatchKey(ctx, clk, path, old, mem, testr.New(t)) }()
	defer func() { cancel(); <-done }()
	step := func() {
		for !clk.HasWaiters() {
			time.Sleep(time.Millisecond)
		}
		clk.Step(KeyCheckInterval)
	}
	step()
	step() // the first check has read the unchanged file when the second timer waits
	select {
	case k := <-mem.keys:
		t.Fatalf("rotated to %q although the file did not change", k)
	default:
	}
	// Replaced at once, as the kubelet swaps a Secret volume's files.
	newKey := []byte("fedcba9876543210")
	if err := os.WriteFile(path+".new", newKey, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(path+".new", path); err != nil {
		t.Fatal(err)
	}
	step()
	select {
	case k := <-mem.keys:
		if string(k) != string(newKey) {
			t.Fatalf("rotated to %q, want the new file's key", k)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the new key file was not rotated to")
	}
	step()
	step()
	select {
	case k := <-mem.keys:
		t.Fatalf("rotated again to %q", k)
	default:
	}
}

type fakeMeta struct{ metas chan []byte }

func (f *fakeMeta) SetMeta(b []byte) error { f.metas <- b; return errors.New("not running") }

// TestPublishMeta: each health report and each change of the node's own
// state becomes the membership metadata that healthyFor and decodeMeta
// read back; before the first interface scan the node says
// nothing of its interfaces (and counts as healthy).
func TestPublishMeta(t *testing.T) {
	mem := &fakeMeta{metas: make(chan []byte, 1)}
	health := make(chan l2.Health, 1)
	self := make(chan SelfMeta, 1)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() { defer close(done); PublishMeta(ctx, health, self, mem, testr.New(t)) }()
	defer func() { cancel(); <-done }()

	self <- SelfMeta{Fresh: true}
	meta := <-mem.metas
	if !decodeMeta(meta).fresh() || decodeMeta(meta).Withdrawn || !healthyFor(meta, []string{"eth1"}) {
		t.Errorf("before any scan: metadata %s does not say fresh, not withdrawn, interfaces unknown", meta)
	}
	health <- l2.Health{Running: []string{"eth0"}}
	meta = <-mem.metas
	if !healthyFor(meta, []string{"eth0"}) || healthyFor(meta, []string{"eth1"}) {
		t.Errorf("metadata %s does not say eth0 has carrier and eth1 not", meta)
	}
	if !decodeMeta(meta).fresh() {
		t.Errorf("metadata %s lost the node's fresh view on a health report", meta)
	}
	self <- SelfMeta{Withdrawn: true}
	meta = <-mem.metas
	if decodeMeta(meta).fresh() || !decodeMeta(meta).Withdrawn || !healthyFor(meta, []string{"eth0"}) {
		t.Errorf("metadata %s does not say withdrawn, stale, eth0 with carrier", meta)
	}
}
