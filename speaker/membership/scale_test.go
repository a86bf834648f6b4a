package membership

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"slices"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/go-logr/logr"
)

// BenchmarkMembershipScale spreads its members over child processes: the
// test binary runs itself again with scaleHelperEnv set to a JSON
// scaleSpec, and TestMain then hosts that share of the members instead of
// running tests. Parent and child talk in JSON lines: commands
// (scaleCommand) on the child's stdin, events (scaleEvent) on its stdout.
const scaleHelperEnv = "LBSTACK_MEMBERSHIP_HELPER"

func TestMain(m *testing.M) {
	if spec := os.Getenv(scaleHelperEnv); spec != "" {
		os.Exit(runScaleHelper(spec))
	}
	os.Exit(m.Run())
}

// scaleSpec is a child's share: members named scaleName(First) to
// scaleName(First+Count-1), each watching at most Watch peers.
type scaleSpec struct {
	First, Count, Watch int
}

func scaleName(i int) string { return fmt.Sprintf("m-%03d", i) }

// scaleCommand is a command to a child:
//
//   - join: each member joins one of Seeds (retrying others);
//   - status: how far the cluster has formed, as the child's members see it;
//   - sample: traffic and CPU counters;
//   - watch: report when each member that watches Victim has dropped it;
//   - crash: crash Victim (heartbeats and memberlist stop, no goodbye).
type scaleCommand struct {
	Op     string   `json:"op"`
	Seeds  []string `json:"seeds,omitempty"`
	Victim string   `json:"victim,omitempty"`
}

// scaleEvent is a child's answer; Ev names the command answered ("dropped"
// follows "watching").
type scaleEvent struct {
	Ev  string `json:"ev"`
	Err string `json:"err,omitempty"`
	// started
	Addrs map[string]string `json:"addrs,omitempty"`
	// joined
	Failed int `json:"failed,omitempty"`
	// status: the fewest live members any member sees, and how many
	// members have not yet heard every peer they watch.
	MinLive int `json:"minLive,omitempty"`
	Unheard int `json:"unheard,omitempty"`
	// sample: UDP packets and bytes sent, members declared dead by
	// heartbeat (sums over the child's members), and the child's CPU time.
	Packets uint64 `json:"packets,omitempty"`
	Bytes   uint64 `json:"bytes,omitempty"`
	Dead    uint64 `json:"dead,omitempty"`
	CPU     int64  `json:"cpuNs,omitempty"`
	// watching, dropped, crashed
	Victim   string `json:"victim,omitempty"`
	Watchers int    `json:"watchers,omitempty"`
	// crashed: when the victim was stopped; dropped: when each watcher
	// dropped it (Unix ns), how many of them by their heartbeat detector.
	At          int64   `json:"at,omitempty"`
	Times       []int64 `json:"times,omitempty"`
	ByHeartbeat int     `json:"byHeartbeat,omitempty"`
	TimedOut    bool    `json:"timedOut,omitempty"`
}

type scaleMember struct {
	name    string
	index   int
	m       *Membership
	cancel  context.CancelFunc
	done    chan error
	crashed bool
}

// runScaleHelper is a child process: it runs its members until its stdin
// closes or it is killed, and returns the exit code.
func runScaleHelper(specJSON string) int {
	var spec scaleSpec
	if err := json.Unmarshal([]byte(specJSON), &spec); err != nil || spec.Count < 1 || spec.Watch < 1 {
		fmt.Fprintf(os.Stderr, "membership helper: bad %s=%q: %v\n", scaleHelperEnv, specJSON, err)
		return 2
	}
	var outMu sync.Mutex
	enc := json.NewEncoder(os.Stdout)
	emit := func(e scaleEvent) {
		outMu.Lock()
		defer outMu.Unlock()
		_ = enc.Encode(e)
	}

	members := make([]*scaleMember, spec.Count)
	byName := make(map[string]*scaleMember, spec.Count)
	addrs := make(map[string]string, spec.Count)
	for i := range members {
		x := &scaleMember{name: scaleName(spec.First + i), index: spec.First + i, done: make(chan error, 1)}
		m, err := New(Config{NodeName: x.name, BindAddr: "127.0.0.1", SecretKey: testKey, MaxPeers: spec.Watch, Log: logr.Discard()})
		if err != nil {
			fmt.Fprintf(os.Stderr, "membership helper: %v\n", err)
			return 1
		}
		x.m = m
		ctx, cancel := context.WithCancel(context.Background())
		x.cancel = cancel
		go func() { x.done <- m.Run(ctx) }()
		<-m.started
		m.mu.Lock()
		running, addr := m.ml != nil, m.members[x.name].addr
		m.mu.Unlock()
		if !running {
			fmt.Fprintf(os.Stderr, "membership helper: Run(%s): %v\n", x.name, <-x.done)
			return 1
		}
		members[i], byName[x.name], addrs[x.name] = x, x, addr.String()
	}
	emit(scaleEvent{Ev: "started", Addrs: addrs})

	in := bufio.NewScanner(os.Stdin)
	in.Buffer(make([]byte, 64<<10), 16<<20)
	for in.Scan() {
		var c scaleCommand
		if err := json.Unmarshal(in.Bytes(), &c); err != nil {
			emit(scaleEvent{Ev: "error", Err: err.Error()})
			continue
		}
		switch c.Op {
		case "join":
			emit(scaleEvent{Ev: "joined", Failed: scaleJoin(members, c.Seeds, false)})
		case "sync":
			emit(scaleEvent{Ev: "synced", Failed: scaleJoin(members, c.Seeds, true)})
		case "status":
			e := scaleEvent{Ev: "status", MinLive: -1}
			for _, x := range members {
				if x.crashed {
					continue
				}
				x.m.mu.Lock()
				l := 0
				for name := range x.m.members {
					if x.m.liveLocked(name) {
						l++
					}
				}
				if e.MinLive < 0 || l < e.MinLive {
					e.MinLive = l
					// Why a member it knows is not live to it.
					e.Err = ""
					for name := range x.m.members {
						if !x.m.liveLocked(name) {
							_, bye := x.m.goodbyes[name]
							e.Err += fmt.Sprintf("%s: %s not live (dead by heartbeat %v, watched %v, goodbye %v, heard %v ago); ", x.name, name,
								x.m.det.Dead(name), x.m.eligible[name], bye, time.Since(x.m.lastHB[name]).Round(time.Millisecond))
						}
					}
					e.Err += fmt.Sprintf("%s knows %d", x.name, len(x.m.members))
				}
				for name := range x.m.eligible {
					if !x.m.det.Tracked(name) {
						e.Unheard++
						break
					}
				}
				x.m.mu.Unlock()
			}
			emit(e)
		case "sample":
			e := scaleEvent{Ev: "sample"}
			for _, x := range members {
				p, by, _ := x.m.Traffic()
				e.Packets += p
				e.Bytes += by
				e.Dead += x.m.declaredDead.Load()
			}
			var ru syscall.Rusage
			_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
			e.CPU = ru.Utime.Nano() + ru.Stime.Nano()
			emit(e)
		case "watch":
			var watchers []*scaleMember
			for _, x := range members {
				if x.crashed || x.name == c.Victim {
					continue
				}
				x.m.mu.Lock()
				if x.m.eligible[c.Victim] {
					watchers = append(watchers, x)
				}
				x.m.mu.Unlock()
			}
			emit(scaleEvent{Ev: "watching", Victim: c.Victim, Watchers: len(watchers)})
			if len(watchers) > 0 {
				go func() { emit(scaleWatch(watchers, c.Victim)) }()
			}
		case "crash":
			x, ok := byName[c.Victim]
			if !ok || x.crashed {
				emit(scaleEvent{Ev: "crashed", Victim: c.Victim, Err: "no such running member"})
				continue
			}
			at := time.Now().UnixNano()
			x.m.noLeave.Store(true)
			x.cancel()
			err := <-x.done
			x.crashed = true
			e := scaleEvent{Ev: "crashed", Victim: c.Victim, At: at}
			if err != nil {
				e.Err = err.Error()
			}
			emit(e)
		default:
			emit(scaleEvent{Ev: "error", Err: "unknown command " + c.Op})
		}
	}
	// stdin closed: the benchmark is over (or its process died). Exit
	// without leaving, as a crash would.
	return 0
}

// scaleJoin makes each member join the cluster through one of seeds (a
// different one per member, so that no seed carries every push/pull),
// trying the next seeds if it fails, a few members at a time. It returns
// how many members could not join. With direct, it calls memberlist's Join,
// which exchanges state (a push/pull) even with a member already known.
func scaleJoin(members []*scaleMember, seeds []string, direct bool) int {
	if len(seeds) == 0 {
		return 0
	}
	var (
		wg     sync.WaitGroup
		mu     sync.Mutex
		failed int
	)
	sem := make(chan struct{}, 2)
	for _, x := range members {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			var err error
			for try := range 8 {
				if x.crashed {
					return
				}
				seed := seeds[(x.index*7+try)%len(seeds)]
				if direct {
					x.m.mu.Lock()
					ml := x.m.ml
					x.m.mu.Unlock()
					_, err = ml.Join([]string{seed})
				} else {
					_, err = x.m.Join([]string{seed})
				}
				if err == nil {
					return
				}
				time.Sleep(500 * time.Millisecond)
			}
			fmt.Fprintf(os.Stderr, "membership helper: %s could not join: %v\n", x.name, err)
			mu.Lock()
			failed++
			mu.Unlock()
		})
	}
	wg.Wait()
	return failed
}

// scaleWatch polls, every millisecond, until each of watchers has dropped
// victim from Live (for up to a minute).
func scaleWatch(watchers []*scaleMember, victim string) scaleEvent {
	e := scaleEvent{Ev: "dropped", Victim: victim, Watchers: len(watchers), Times: make([]int64, len(watchers))}
	left := len(watchers)
	deadline := time.Now().Add(time.Minute)
	for left > 0 {
		if time.Now().After(deadline) {
			e.TimedOut = true
			break
		}
		for i, w := range watchers {
			if e.Times[i] != 0 {
				continue
			}
			w.m.mu.Lock()
			live, dead := w.m.liveLocked(victim), w.m.det.Dead(victim)
			w.m.mu.Unlock()
			if !live {
				e.Times[i] = time.Now().UnixNano()
				left--
				if dead {
					e.ByHeartbeat++
				}
			}
		}
		time.Sleep(time.Millisecond)
	}
	return e
}

// scaleProc is a child process, seen from the benchmark.
type scaleProc struct {
	first, count int
	cmd          *exec.Cmd
	in           io.WriteCloser
	events       chan scaleEvent
	stash        []scaleEvent // events received while waiting for another
}

// startScaleProc starts a child hosting count members from first on. It is
// killed (by its PID) when the benchmark ends, and by the kernel if this
// process dies first.
func startScaleProc(tb testing.TB, first, count, watch int) *scaleProc {
	tb.Helper()
	spec, _ := json.Marshal(scaleSpec{First: first, Count: count, Watch: watch})
	cmd := exec.Command(os.Args[0], "-test.run=^$", "-test.bench=^$")
	cmd.Env = append(os.Environ(), scaleHelperEnv+"="+string(spec))
	if os.Getenv("GOMAXPROCS") == "" {
		// The children share the machine's cores: with one P each, their
		// idle schedulers do not spin for work.
		cmd.Env = append(cmd.Env, "GOMAXPROCS=1")
	}
	cmd.Stderr = os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	in, err := cmd.StdinPipe()
	if err != nil {
		tb.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		tb.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	p := &scaleProc{first: first, count: count, cmd: cmd, in: in, events: make(chan scaleEvent, 16)}
	quit := make(chan struct{})
	go func() {
		defer close(p.events)
		sc := bufio.NewScanner(out)
		sc.Buffer(make([]byte, 64<<10), 16<<20)
		for sc.Scan() {
			var e scaleEvent
			if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
				fmt.Fprintf(os.Stderr, "membership helper %d: %s\n", cmd.Process.Pid, sc.Text())
				continue
			}
			select {
			case p.events <- e:
			case <-quit:
				return
			}
		}
	}()
	tb.Cleanup(func() {
		close(quit)
		_ = in.Close()
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	return p
}

func (p *scaleProc) send(tb testing.TB, c scaleCommand) {
	tb.Helper()
	b, _ := json.Marshal(c)
	if _, err := p.in.Write(append(b, '\n')); err != nil {
		tb.Fatalf("helper %d: %v", p.cmd.Process.Pid, err)
	}
}

// wait returns the next event named ev, keeping others for later.
func (p *scaleProc) wait(tb testing.TB, ev string, timeout time.Duration) scaleEvent {
	tb.Helper()
	if i := slices.IndexFunc(p.stash, func(e scaleEvent) bool { return e.Ev == ev }); i >= 0 {
		e := p.stash[i]
		p.stash = slices.Delete(p.stash, i, i+1)
		return e
	}
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	for {
		select {
		case e, ok := <-p.events:
			switch {
			case !ok:
				tb.Fatalf("helper %d (members %d to %d) exited while the benchmark waited for %q", p.cmd.Process.Pid, p.first, p.first+p.count-1, ev)
			case e.Ev == "error":
				tb.Fatalf("helper %d: %s", p.cmd.Process.Pid, e.Err)
			case e.Ev == ev:
				return e
			}
			p.stash = append(p.stash, e)
		case <-timer.C:
			tb.Fatalf("helper %d: no %q after %s", p.cmd.Process.Pid, ev, timeout)
		}
	}
}

// askAll sends c to every child and returns their answers, named ev.
func askAll(tb testing.TB, procs []*scaleProc, c scaleCommand, ev string, timeout time.Duration) []scaleEvent {
	tb.Helper()
	for _, p := range procs {
		p.send(tb, c)
	}
	out := make([]scaleEvent, len(procs))
	for i, p := range procs {
		out[i] = p.wait(tb, ev, timeout)
	}
	return out
}
