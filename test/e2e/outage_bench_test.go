package e2e

import (
	"syscall"
	"testing"
	"time"

	"github.com/lbstack/lbstack/test/e2e/lab"
)

// BenchmarkL2Outage measures layer-2 faults as a client sees them: the HTTP
// probe in the client namespace opens a fresh connection to the Service IP
// every 5 ms, and each trial reports the time from the fault to the first
// answer from another node than the owner. Faults:
//
//   - partition: the owner's bridge port detached (its link keeps carrier),
//     healed after 1 s; then ARP from the client must find exactly one MAC
//     from 1 s after the heal on (heal-one-mac-pct);
//   - freeze: every process of the owner node stopped (SIGSTOP: its speaker
//     and its backend), resumed after 1 s, then the same check;
//   - kill: SIGKILL of the owner's speaker, started again at once (the node
//     keeps serving, so few probes are lost; the address moves unless the
//     speaker is back before the others notice, counted as no-move);
//   - restart: SIGTERM of the owner's speaker and a start at once, as in a
//     rolling update (lost probes counted: the target is none).
//
// LBSTACK_BENCH_TRIALS overrides the 20 trials per fault.
//
//	KUBEBUILDER_ASSETS=$(ls -d $PWD/bin/envtest/k8s-*) go test -run '^$' \
//	    -bench BenchmarkL2Outage -benchtime=1x ./test/e2e/
func BenchmarkL2Outage(b *testing.B) {
	trials := benchTrials(b)
	for _, tc := range l2Settings {
		b.Run(tc.name, func(b *testing.B) {
			f := newL2Fixture(b, "outage", "192.0.2.230-192.0.2.239", 1, tc.args...)
			for range b.N {
				for _, fault := range []string{"partition", "freeze", "kill", "restart"} {
					var outages []time.Duration
					lost, healOK, healed, stayed := 0, 0, 0, 0
					for range trials {
						r := f.trial(b, fault)
						if r.moved {
							outages = append(outages, r.outage)
						} else {
							stayed++
						}
						lost += r.lostProbes
						if r.healChecked {
							healed++
							if r.healOneMAC {
								healOK++
							}
						}
					}
					if len(outages) > 0 {
						b.ReportMetric(quantile(outages, 0.5)/1000, fault+"-s-p50")
						b.ReportMetric(quantile(outages, 0.99)/1000, fault+"-s-p99")
					}
					if fault == "restart" || fault == "kill" {
						b.ReportMetric(float64(lost), fault+"-lost-probes")
						b.ReportMetric(float64(stayed), fault+"-no-move")
					}
					if healed > 0 {
						b.ReportMetric(100*float64(healOK)/float64(healed), fault+"-heal-one-mac-pct")
					}
					b.Logf("%s: outages %v; %d trials without a move; lost probes %d; one MAC within 1 s of the heal in %d of %d", fault, outages, stayed, lost, healOK, healed)
				}
			}
			b.ReportMetric(0, "ns/op")
		})
	}
}

type trialResult struct {
	// outage is the time from the fault to the first answer from the new
	// owner, when the address moved.
	outage      time.Duration
	moved       bool
	lostProbes  int
	healChecked bool
	healOneMAC  bool
}

// trial applies one fault to the current owner and measures it.
func (f *l2Fixture) trial(b testing.TB, fault string) trialResult {
	ip, url := f.ips[0], f.urls[0]
	owner := f.owner(b, ip)
	var r trialResult
	at := time.Now()
	var heal func() error
	switch fault {
	case "partition":
		if err := f.c.Lab.Cut(owner, true); err != nil {
			b.Fatal(err)
		}
		heal = func() error { return f.c.Lab.Cut(owner, false) }
	case "freeze":
		procs := []*lab.Proc{f.c.Speakers[owner.Name], f.c.Backends[owner.Name]}
		for _, p := range procs {
			if err := p.Signal(syscall.SIGSTOP); err != nil {
				b.Fatal(err)
			}
		}
		heal = func() error {
			for _, p := range procs {
				if err := p.Signal(syscall.SIGCONT); err != nil {
					return err
				}
			}
			return nil
		}
	case "kill", "restart":
		sig := syscall.SIGKILL
		if fault == "restart" {
			sig = syscall.SIGTERM
		}
		f.restartSpeaker(b, owner, sig)
	}
	if heal != nil {
		next := f.answeredBy(b, url, at, owner.Name)
		first, _ := f.probe.FirstAnswer(url, at, func(n string) bool { return n == next })
		r.outage, r.moved = first.Sub(at), true
		time.Sleep(time.Until(at.Add(time.Second)))
		healed := time.Now()
		if err := heal(); err != nil {
			b.Fatal(err)
		}
		time.Sleep(2 * time.Second)
		r.healChecked = true
		r.healOneMAC = true
		for _, x := range f.arp.between(healed.Add(time.Second), time.Now()) {
			if len(x.macs) != 1 {
				r.healOneMAC = false
			}
		}
	} else {
		// The restarted speaker joins; the address stays where it went —
		// or, when the speaker was back before the others noticed it had
		// gone, on its node (no move at all).
		waitLog(b, f.c.Speakers[owner.Name], "Joined: electing", 15*time.Second)
		time.Sleep(time.Second)
		if first, ok := f.probe.FirstAnswer(url, at, func(n string) bool { return n != owner.Name && n != "" }); ok {
			r.outage, r.moved = first.Sub(at), true
		}
		for _, g := range f.probe.Gaps(url, at, time.Now()) {
			r.lostProbes += int(g/(5*time.Millisecond)) + 1
		}
	}
	return r
}
