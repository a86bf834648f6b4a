package speaker

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr/funcr"
	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	clocktesting "k8s.io/utils/clock/testing"

	lbv1 "github.com/lbstack/lbstack/api/v1alpha1"
	"github.com/lbstack/lbstack/speaker/dataplane"
	"github.com/lbstack/lbstack/speaker/l2"
	"github.com/lbstack/lbstack/speaker/membership"
)

// readyState is a state in which every check passes: two live members,
// sockets open, BGP with BFD running.
func readyState() ReadinessState {
	return ReadinessState{
		ConfigSynced: true,
		L2:           l2.SocketStatus{Scanned: true, Interfaces: []string{"eth0"}},
		BGP:          dataplane.BGPReadiness{Configured: true, Running: true, BFDWanted: true, BFDRunning: true},
		Self:         "a",
		Live:         []membership.Member{{Name: "a"}, {Name: "b"}},
		Expected:     []string{"b", "c"},
		Joined:       true,
	}
}

func TestJudgeReadiness(t *testing.T) {
	cases := map[string]struct {
		change func(*ReadinessState)
		// want maps the failing checks to a part of their message.
		want map[string]string
	}{
		"ready":                 {change: func(*ReadinessState) {}},
		"no configuration yet":  {change: func(s *ReadinessState) { s.ConfigSynced = false }, want: map[string]string{ReadyConfig: "no valid configuration"}},
		"interfaces not listed": {change: func(s *ReadinessState) { s.L2 = l2.SocketStatus{} }, want: map[string]string{ReadyLayer2: "not been scanned"}},
		"no eligible interface": {change: func(s *ReadinessState) { s.L2 = l2.SocketStatus{Scanned: true} }},
		"sockets failed": {
			change: func(s *ReadinessState) {
				s.L2.Failed = []l2.SocketFailure{
					{Interface: "eth0", Protocol: "ARP", Err: "opening ARP socket on eth0: operation not permitted"},
					{Interface: "eth0", Protocol: "NDP", Err: "listen ip6:ipv6-icmp: operation not permitted"},
				}
			},
			want: map[string]string{ReadyLayer2: "cannot open 2 socket(s) needed to answer ARP/NDP (retried every rescan): ARP on eth0: opening ARP socket on eth0: operation not permitted; NDP on eth0"},
		},
		"BGP not configured": {change: func(s *ReadinessState) { s.BGP = dataplane.BGPReadiness{Err: "stale"} }},
		"BGP speaker failed": {
			change: func(s *ReadinessState) {
				s.BGP.Running, s.BGP.Err = false, "invalid BGP configuration: router ID is not a valid IPv4 address"
			},
			want: map[string]string{ReadyBGP: "does not run: invalid BGP configuration: router ID"},
		},
		"BGP speaker starting": {change: func(s *ReadinessState) { s.BGP.Running = false }, want: map[string]string{ReadyBGP: "has not started yet"}},
		"BFD failed": {change: func(s *ReadinessState) {
			s.BGP.BFDRunning, s.BGP.BFDErr = false, "listening on 0.0.0.0:3784: address already in use"
		}, want: map[string]string{ReadyBGP: "BFD does not run: listening on 0.0.0.0:3784: address already in use"}},
		"BFD not wanted":                   {change: func(s *ReadinessState) { s.BGP.BFDWanted, s.BGP.BFDRunning = false, false }},
		"memberlist not up":                {change: func(s *ReadinessState) { s.Live = nil }, want: map[string]string{ReadyMembership: "memberlist does not run"}},
		"alone, others expected":           {change: func(s *ReadinessState) { s.Live = s.Live[:1] }, want: map[string]string{ReadyMembership: "joined no other speaker yet, though 2 other Ready node(s) should run one (b, c)"}},
		"joining":                          {change: func(s *ReadinessState) { s.Joined = false }, want: map[string]string{ReadyMembership: "joining: learning what the other speakers announce"}},
		"alone, key mismatch":              {change: func(s *ReadinessState) { s.Live, s.KeyMismatch = s.Live[:1], true }, want: map[string]string{ReadyMembership: "another speaker uses a different memberlist key"}},
		"joined, traffic from another key": {change: func(s *ReadinessState) { s.KeyMismatch = true }},
		"alone, none expected":             {change: func(s *ReadinessState) { s.Live, s.Expected = s.Live[:1], nil }},
		"joined one of several":            {change: func(s *ReadinessState) { s.Expected = []string{"b", "c", "d", "e", "f", "g"} }},
		"joined one not expected": {change: func(s *ReadinessState) {
			s.Live = []membership.Member{{Name: "a"}, {Name: "z"}}
		}},
		"everything wrong at once": {
			change: func(s *ReadinessState) {
				*s = ReadinessState{Self: "a", BGP: dataplane.BGPReadiness{Configured: true}, Expected: []string{"b"}}
			},
			want: map[string]string{ReadyConfig: "", ReadyLayer2: "", ReadyBGP: "", ReadyMembership: ""},
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			s := readyState()
			tc.change(&s)
			got := JudgeReadiness(s)
			if len(got) != len(ReadinessChecks) {
				t.Fatalf("judged %d checks, want %d", len(got), len(ReadinessChecks))
			}
			for _, c := range ReadinessChecks {
				want, fails := tc.want[c]
				switch err := got[c]; {
				case fails && err == nil:
					t.Errorf("%s passes, want a failure saying %q", c, want)
				case fails && !strings.Contains(err.Error(), want):
					t.Errorf("%s: %q, want it to say %q", c, err, want)
				case !fails && err != nil:
					t.Errorf("%s fails: %v", c, err)
				}
			}
		})
	}
}

func TestJudgeReadinessElidesLongLists(t *testing.T) {
	s := readyState()
	s.Live = s.Live[:1]
	s.Expected = []string{"b", "c", "d", "e", "f", "g", "h"}
	if err := JudgeReadiness(s)[ReadyMembership]; err == nil || !strings.Contains(err.Error(), "(b, c, d, e, f and 2 more)") {
		t.Errorf("membership: %v", err)
	}
}

// logLines collects log lines.
type logLines struct {
	mu    sync.Mutex
	lines []string
}

func (l *logLines) add(prefix, args string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lines = append(l.lines, strings.TrimPrefix(args, `"level"=0 `))
}

func (l *logLines) take() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := l.lines
	l.lines = nil
	return out
}

// TestReadinessLogsChanges: a line when a check starts failing, when its
// reason changes, when it passes again and when the speaker becomes ready;
// nothing while nothing changes.
func TestReadinessLogsChanges(t *testing.T) {
	var mu sync.Mutex
	state := readyState()
	state.ConfigSynced = false
	logs := &logLines{}
	r := &Readiness{
		Log: funcr.New(logs.add, funcr.Options{}),
		State: func() ReadinessState {
			mu.Lock()
			defer mu.Unlock()
			return state
		},
	}
	set := func(f func(*ReadinessState)) {
		mu.Lock()
		defer mu.Unlock()
		f(&state)
	}
	steps := []struct {
		name   string
		change func(*ReadinessState)
		want   []string
	}{
		{"first judgement", func(*ReadinessState) {},
			[]string{`"msg"="Readiness check failing" "check"="config" "reason"="no valid configuration read yet"`}},
		{"nothing changed", func(*ReadinessState) {}, nil},
		{"ready", func(s *ReadinessState) { s.ConfigSynced = true },
			[]string{`"msg"="Readiness check passing again" "check"="config"`, `"msg"="Speaker is ready"`}},
		{"still ready", func(*ReadinessState) {}, nil},
		{"a socket fails", func(s *ReadinessState) {
			s.L2.Failed = []l2.SocketFailure{{Interface: "eth0", Protocol: "ARP", Err: "operation not permitted"}}
		}, []string{`"msg"="Readiness check failing" "check"="layer2" "reason"="cannot open 1 socket(s) needed to answer ARP/NDP (retried every rescan): ARP on eth0: operation not permitted"`}},
		{"another reason", func(s *ReadinessState) { s.L2.Failed[0].Err = "no such device" },
			[]string{`"msg"="Readiness check failing" "check"="layer2" "reason"="cannot open 1 socket(s) needed to answer ARP/NDP (retried every rescan): ARP on eth0: no such device"`}},
		{"left alone", func(s *ReadinessState) { s.Live = s.Live[:1] },
			[]string{`"msg"="Readiness check failing" "check"="membership" "reason"="joined no other speaker yet, though 2 other Ready node(s) should run one (b, c); check that they run and that the memberlist port is open between nodes"`}},
		{"all well again", func(s *ReadinessState) { *s = readyState() },
			[]string{`"msg"="Readiness check passing again" "check"="layer2"`, `"msg"="Readiness check passing again" "check"="membership"`, `"msg"="Speaker is ready"`}},
	}
	for _, st := range steps {
		set(st.change)
		r.Judge()
		if diff := cmp.Diff(st.want, logs.take()); diff != "" {
			t.Errorf("%s: log lines (-want +got):\n%s", st.name, diff)
		}
	}
}

// TestReadinessRunJudgesOnItsOwn: Run logs a change without any probe.
func TestReadinessRunJudgesOnItsOwn(t *testing.T) {
	clk := clocktesting.NewFakeClock(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	var mu sync.Mutex
	state := readyState()
	logs := &logLines{}
	r := &Readiness{
		Log:   funcr.New(logs.add, funcr.Options{}),
		Clock: clk,
		State: func() ReadinessState {
			mu.Lock()
			defer mu.Unlock()
			return state
		},
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	}()
	step := func(what string) []string {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for {
			clk.Step(DefaultReadinessInterval)
			if got := logs.take(); len(got) > 0 {
				return got
			}
			if time.Now().After(deadline) {
				t.Fatalf("Run logged nothing for %s", what)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	if got := step("the first judgement"); len(got) != 1 || got[0] != `"msg"="Speaker is ready"` {
		t.Errorf("first judgement logged %q", got)
	}
	mu.Lock()
	state.Live = nil
	mu.Unlock()
	if got := step("the change"); !strings.Contains(got[0], `"check"="membership"`) {
		t.Errorf("logged %q", got)
	}
}

func TestExpectedSpeakers(t *testing.T) {
	ready := []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue}}
	node := func(name string, labels map[string]string, conds []corev1.NodeCondition, taints ...corev1.Taint) corev1.Node {
		l := map[string]string{corev1.LabelOSStable: "linux"}
		for k, v := range labels {
			l[k] = v
		}
		return corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: l}, Spec: corev1.NodeSpec{Taints: taints}, Status: corev1.NodeStatus{Conditions: conds}}
	}
	nodes := []corev1.Node{
		node("self", nil, ready),
		node("worker", nil, ready),
		node("edge", map[string]string{"edge": "true"}, ready),
		node("dead", nil, []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionUnknown}}, corev1.Taint{Key: corev1.TaintNodeUnreachable, Effect: corev1.TaintEffectNoExecute}),
		node("no-status", nil, nil),
		node("windows", map[string]string{corev1.LabelOSStable: "windows"}, ready),
		node("control-plane", nil, ready, corev1.Taint{Key: "node-role.kubernetes.io/control-plane", Effect: corev1.TaintEffectNoSchedule}),
		node("gpu", nil, ready, corev1.Taint{Key: "gpu", Value: "true", Effect: corev1.TaintEffectNoSchedule}),
		node("cordoned", nil, ready, corev1.Taint{Key: corev1.TaintNodeUnschedulable, Effect: corev1.TaintEffectNoSchedule}),
		node("prefers-not", nil, ready, corev1.Taint{Key: "spot", Effect: corev1.TaintEffectPreferNoSchedule}),
	}
	cases := map[string]struct {
		stack *lbv1.LoadBalancerStack
		want  []string
	}{
		"no stack: Linux nodes, control plane tolerated": {nil, []string{"control-plane", "cordoned", "edge", "prefers-not", "worker"}},
		"node selector": {&lbv1.LoadBalancerStack{Spec: lbv1.LoadBalancerStackSpec{Speaker: lbv1.SpeakerSpec{WorkloadSpec: lbv1.WorkloadSpec{
			NodeSelector: map[string]string{"edge": "true"}}}}}, []string{"edge"}},
		"own tolerations replace the control-plane ones": {&lbv1.LoadBalancerStack{Spec: lbv1.LoadBalancerStackSpec{Speaker: lbv1.SpeakerSpec{WorkloadSpec: lbv1.WorkloadSpec{
			Tolerations: []corev1.Toleration{{Key: "gpu", Operator: corev1.TolerationOpExists}}}}}}, []string{"cordoned", "edge", "gpu", "prefers-not", "worker"}},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			if diff := cmp.Diff(tc.want, expectedSpeakers(nodes, "self", tc.stack)); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}
