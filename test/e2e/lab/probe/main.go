// Command probe measures a Service's outage as a client sees it: it opens
// a fresh HTTP connection to each target every interval (no keep-alive,
// so every request is routed and answered anew) and prints one JSON line
// whenever a target goes down, comes back up or is answered by another node,
// until it is stopped (SIGTERM, SIGINT) or its duration ends. The demo, the
// lab's failover tests and benchmarks and the real-cluster tests run it in
// the client's network namespace.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Event is one state change of a target.
type Event struct {
	Time   time.Time `json:"time"`
	Target string    `json:"target"`
	OK     bool      `json:"ok"`
	// Node is the backend node that answered (from "node=..." in the body).
	Node  string `json:"node,omitempty"`
	Error string `json:"error,omitempty"`
}

func main() {
	interval := flag.Duration("interval", 5*time.Millisecond, "time between two requests to a target")
	timeout := flag.Duration("timeout", 100*time.Millisecond, "timeout of one request")
	duration := flag.Duration("duration", 10*time.Minute, "stop after this long")
	flag.Parse()
	if flag.NArg() == 0 {
		fmt.Fprintln(os.Stderr, "usage: probe [flags] URL...")
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, *duration)
	defer cancel()
	var mu sync.Mutex
	enc := json.NewEncoder(os.Stdout)
	emit := func(e Event) {
		mu.Lock()
		defer mu.Unlock()
		_ = enc.Encode(e)
	}
	var wg sync.WaitGroup
	for _, target := range flag.Args() {
		wg.Add(1)
		go func() {
			defer wg.Done()
			probe(ctx, target, *interval, *timeout, emit)
		}()
	}
	wg.Wait()
}

// probe starts a request to target every interval, each on a fresh
// connection and without waiting for the previous ones (a request to a
// dead path takes the whole timeout; waiting for it would make the outage
// look up to a timeout longer than it is). Results are put back in the
// order the requests started, and an event is emitted whenever the target
// goes down, comes back or is answered by another node; an event's Time is
// when its request started.
func probe(ctx context.Context, target string, interval, timeout time.Duration, emit func(Event)) {
	hc := &http.Client{Timeout: timeout, Transport: &http.Transport{DisableKeepAlives: true}}
	type result struct {
		seq uint64
		e   Event
	}
	results := make(chan result, 1024)
	var inflight sync.WaitGroup
	go func() {
		tick := time.NewTicker(interval)
		defer tick.Stop()
		for seq := uint64(0); ; seq++ {
			inflight.Add(1)
			go func() {
				defer inflight.Done()
				results <- result{seq: seq, e: request(hc, target)}
			}()
			select {
			case <-ctx.Done():
				inflight.Wait()
				close(results)
				return
			case <-tick.C:
			}
		}
	}()
	pending := map[uint64]Event{}
	var next uint64
	var last *Event
	for r := range results {
		pending[r.seq] = r.e
		for {
			e, ok := pending[next]
			if !ok {
				break
			}
			delete(pending, next)
			next++
			if last == nil || last.OK != e.OK || e.OK && last.Node != e.Node {
				emit(e)
				last = &e
			}
		}
	}
}

// request makes one request to target on a fresh connection.
func request(hc *http.Client, target string) Event {
	e := Event{Time: time.Now(), Target: target}
	resp, err := hc.Get(target)
	if err != nil {
		e.Error = err.Error()
		return e
	}
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	resp.Body.Close()
	e.OK = resp.StatusCode == http.StatusOK
	if i := strings.Index(string(body), "node="); i >= 0 {
		if f := strings.Fields(string(body)[i+len("node="):]); len(f) > 0 {
			e.Node = f[0]
		}
	} else if f := strings.Fields(string(body)); len(f) == 1 {
		e.Node = f[0] // the lab's name server answers with the bare name
	}
	if !e.OK {
		e.Error = resp.Status
	}
	return e
}
