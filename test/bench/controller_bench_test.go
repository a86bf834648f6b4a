// Package bench holds end-to-end benchmarks: lbstack components run as
// subprocesses against a real kube-apiserver and etcd (internal/testenv).
//
// Run them with
//
//	make bench
//
// or, for the controller benchmark alone, three times (KUBEBUILDER_ASSETS
// must be absolute: go test runs in the package's folder):
//
//	KUBEBUILDER_ASSETS=$(ls -d $PWD/bin/envtest/k8s-*) go test -run '^$' \
//	    -bench BenchmarkController5000Services -benchtime=1x -count 3 ./test/bench/
//
// LBSTACK_BENCH_BINARY=/path/to/lbstack measures that build instead of
// building cmd/lbstack. -v also prints the API server's request counts.
// docs/benchmarks.md records the figures and the targets.
package bench

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	lbv1 "github.com/lbstack/lbstack/api/v1alpha1"
	"github.com/lbstack/lbstack/internal/testenv"
)

var env *testenv.Env

// TestMain starts a control plane only when a benchmark was asked for, so
// `go test ./...` (make test) pays nothing for this package.
func TestMain(m *testing.M) {
	flag.Parse()
	if f := flag.Lookup("test.bench"); f == nil || f.Value.String() == "" {
		os.Exit(m.Run())
	}
	testenv.Main(m, testenv.Options{APIServerArgs: map[string]string{
		// envtest's default 10.0.0.0/24 holds 254 ClusterIPs; the
		// benchmark needs thousands.
		"service-cluster-ip-range": "10.0.0.0/16",
	}}, func(e *testenv.Env) { env = e })
}

const (
	numServices   = 5000
	numNamespaces = 5
	// groupSize Services share one lbstack.io/allow-shared-ip key, each
	// on its own port (80, 81, ...), so 5,000 Services need 500 addresses
	// of the pool's 768.
	groupSize     = 10
	createWorkers = 16
	// tailTimeout bounds the wait for the last assignment after the last
	// create, so that a slow controller fails the benchmark instead of
	// hanging it (the targets ask for 1 s).
	tailTimeout = time.Minute
	// settleTimeout bounds the wait for the writes that follow the last
	// assignment (annotation, event, pool status) before the counters
	// are read.
	settleTimeout = 30 * time.Second
)

// poolCIDRs are the pool's addresses: documentation ranges only.
var poolCIDRs = []string{"192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24"}

var runSeq atomic.Int64

// result is one run's figures.
type result struct {
	p50, p99, max     time.Duration
	tail              time.Duration // last create returned → last assignment seen
	wall              time.Duration // first create started → last assignment seen
	perSecond         float64
	cpuPerService     float64 // ms
	rssMiB            float64
	statusWrites      float64 // per Service
	metaWrites        float64 // per Service
	events            float64 // lbstack's events per Service (listed)
	apiEvents         float64 // event POSTs per Service (API server counter, anyone's)
	reconciles        float64 // per Service
	poolStatusWrites  float64 // total
	conflicts         float64 // total, any resource
	ourConflicts      float64 // on Services, IPAddressPools and events
	distinctAddresses int
}

// BenchmarkController5000Services measures the IP-assigning controller
// (`lbstack controller`, a subprocess) while 5,000 Services of type
// LoadBalancer are created at once: create→IP latency, throughput, the
// controller's CPU and memory, and the API writes it makes per Service.
// Each iteration is one whole 5,000-Service run; use -benchtime=1x.
func BenchmarkController5000Services(b *testing.B) {
	if env == nil {
		testenv.Skip(b, "no control plane (kube-apiserver and etcd)")
	}
	bin := buildBinary(b)
	var runs []result
	b.StopTimer()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		runs = append(runs, runOnce(b, bin))
	}
	mean := func(f func(r result) float64) float64 {
		s := 0.0
		for _, r := range runs {
			s += f(r)
		}
		return s / float64(len(runs))
	}
	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	b.ReportMetric(mean(func(r result) float64 { return ms(r.p50) }), "p50-ms")
	b.ReportMetric(mean(func(r result) float64 { return ms(r.p99) }), "p99-ms")
	b.ReportMetric(mean(func(r result) float64 { return ms(r.max) }), "max-ms")
	b.ReportMetric(mean(func(r result) float64 { return ms(r.tail) }), "tail-ms")
	b.ReportMetric(mean(func(r result) float64 { return r.perSecond }), "svc/s")
	b.ReportMetric(mean(func(r result) float64 { return r.cpuPerService }), "cpu-ms/svc")
	b.ReportMetric(mean(func(r result) float64 { return r.rssMiB }), "rss-MiB")
	b.ReportMetric(mean(func(r result) float64 { return r.statusWrites }), "status-writes/svc")
	b.ReportMetric(mean(func(r result) float64 { return r.metaWrites }), "meta-writes/svc")
	b.ReportMetric(mean(func(r result) float64 { return r.events }), "events/svc")
	b.ReportMetric(mean(func(r result) float64 { return r.reconciles }), "reconciles/svc")
	b.ReportMetric(mean(func(r result) float64 { return r.poolStatusWrites }), "pool-status-writes")
	b.ReportMetric(mean(func(r result) float64 { return r.conflicts }), "409s")
	b.ReportMetric(mean(func(r result) float64 { return r.ourConflicts }), "409s-lbstack")
}

// buildBinary builds cmd/lbstack into a temporary folder, or returns
// $LBSTACK_BENCH_BINARY when set (to measure a candidate build).
func buildBinary(b *testing.B) string {
	b.Helper()
	if bin := os.Getenv("LBSTACK_BENCH_BINARY"); bin != "" {
		b.Logf("using LBSTACK_BENCH_BINARY=%s", bin)
		return bin
	}
	bin := filepath.Join(b.TempDir(), "lbstack")
	cmd := exec.Command("go", "build", "-o", bin, "./cmd/lbstack")
	cmd.Dir = testenv.RepoRoot()
	if out, err := cmd.CombinedOutput(); err != nil {
		b.Fatalf("building lbstack: %v\n%s", err, out)
	}
	return bin
}

// assignment is what the watch saw of one Service.
type assignment struct {
	at  time.Time
	ips []string
}

// runOnce creates the Services against a fresh controller and measures.
func runOnce(b *testing.B, bin string) result {
	run := runSeq.Add(1)
	runLabel := map[string]string{"lbstack-bench-run": strconv.FormatInt(run, 10)}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()

	cfg := rest.CopyConfig(env.Config)
	cfg.QPS, cfg.Burst = 1000, 2000
	cfg.ContentType = "application/vnd.kubernetes.protobuf"
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		b.Fatal(err)
	}

	// Namespaces and the pool.
	var namespaces []string
	for k := 0; k < numNamespaces; k++ {
		ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("bench-%d-%d", run, k)}}
		if _, err := cs.CoreV1().Namespaces().Create(ctx, ns, metav1.CreateOptions{}); err != nil {
			b.Fatal(err)
		}
		namespaces = append(namespaces, ns.Name)
	}
	pool := &lbv1.IPAddressPool{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("bench-%d", run)}}
	for _, c := range poolCIDRs {
		pool.Spec.Addresses = append(pool.Spec.Addresses, lbv1.PoolAddress(c))
	}
	if err := env.Client.Create(ctx, pool); err != nil {
		b.Fatal(err)
	}
	defer cleanup(b, cs, namespaces, pool)

	// The controller.
	dir := b.TempDir()
	kubeconfig, err := env.WriteKubeconfig(dir)
	if err != nil {
		b.Fatal(err)
	}
	// The metrics endpoint is on (loopback, plain HTTP) only to count
	// reconciles; controller-runtime records its metrics either way.
	probe, metricsAddr := freeAddr(b), freeAddr(b)
	cmd := exec.Command(bin, "controller", "--kubeconfig", kubeconfig, "--leader-elect=false",
		"--metrics-bind-address="+metricsAddr, "--metrics-secure=false", "--health-probe-bind-address="+probe, "--log-level=error")
	var stderr syncBuffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	pid := cmd.Process.Pid
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	defer func() {
		_ = cmd.Process.Kill()
		<-exited
		if s := stderr.String(); s != "" {
			b.Logf("controller stderr (errors only):\n%s", truncate(s, 4000))
		}
	}()
	waitReady(b, probe, exited, &stderr)

	// Warm-up: one Service before measuring, so the controller's caches,
	// its first configuration load and restore are not counted.
	warm := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: namespaces[0], Name: "warmup"},
		Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeLoadBalancer, AllocateLoadBalancerNodePorts: ptr.To(false),
			Ports: []corev1.ServicePort{{Name: "http", Port: 80, Protocol: corev1.ProtocolTCP}}}}
	if _, err := cs.CoreV1().Services(warm.Namespace).Create(ctx, warm, metav1.CreateOptions{}); err != nil {
		b.Fatal(err)
	}
	poll(b, 60*time.Second, "the warm-up Service gets an IP and the pool counts it", func() bool {
		s, err := cs.CoreV1().Services(warm.Namespace).Get(ctx, warm.Name, metav1.GetOptions{})
		if err != nil || len(s.Status.LoadBalancer.Ingress) == 0 {
			return false
		}
		return poolAssigned(ctx, pool.Name) == 1
	})
	time.Sleep(1500 * time.Millisecond) // the warm-up's annotation and event
	// The idle controller's CPU, to tell background work from per-Service work.
	idleFrom, idleCPU0 := time.Now(), cpuTime(b, pid)
	time.Sleep(3 * time.Second)
	idleCPU := (cpuTime(b, pid) - idleCPU0) / time.Since(idleFrom).Seconds()

	// Watch the benchmark's Services for their first ingress address.
	var mu sync.Mutex
	assigned := make(map[string]assignment, numServices)
	allAssigned := make(chan struct{})
	record := func(obj any) {
		s, ok := obj.(*corev1.Service)
		if !ok || len(s.Status.LoadBalancer.Ingress) == 0 {
			return
		}
		now := time.Now()
		key := s.Namespace + "/" + s.Name
		mu.Lock()
		defer mu.Unlock()
		if _, seen := assigned[key]; seen {
			return
		}
		var ips []string
		for _, in := range s.Status.LoadBalancer.Ingress {
			ips = append(ips, in.IP)
		}
		assigned[key] = assignment{at: now, ips: ips}
		if len(assigned) == numServices {
			close(allAssigned)
		}
	}
	factory := informers.NewSharedInformerFactoryWithOptions(cs, 0, informers.WithTweakListOptions(func(o *metav1.ListOptions) {
		o.LabelSelector = "lbstack-bench-run=" + runLabel["lbstack-bench-run"]
	}))
	inf := factory.Core().V1().Services().Informer()
	if _, err := inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    record,
		UpdateFunc: func(_, obj any) { record(obj) },
	}); err != nil {
		b.Fatal(err)
	}
	stopInformer := make(chan struct{})
	defer close(stopInformer)
	factory.Start(stopInformer)
	if !cache.WaitForCacheSync(stopInformer, inf.HasSynced) {
		b.Fatal("Service informer did not sync")
	}

	metricsBefore := scrapeRequests(b, ctx, cs)
	reconcilesBefore := scrapeReconciles(b, metricsAddr)
	cpuBefore := cpuTime(b, pid)

	// Create the Services from several workers, as fast as the API server
	// takes them.
	created := make([]time.Time, numServices)
	names := make([]string, numServices)
	jobs := make(chan int)
	errs := make(chan error, createWorkers)
	var wg sync.WaitGroup
	b.StartTimer()
	start := time.Now()
	for w := 0; w < createWorkers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range jobs {
				s := benchService(i, namespaces, runLabel)
				if _, err := cs.CoreV1().Services(s.Namespace).Create(ctx, s, metav1.CreateOptions{}); err != nil {
					errs <- fmt.Errorf("creating Service %s/%s: %w", s.Namespace, s.Name, err)
					return
				}
				created[i] = time.Now()
				names[i] = s.Namespace + "/" + s.Name
			}
		}()
	}
	func() {
		defer close(jobs)
		for i := 0; i < numServices; i++ {
			select {
			case jobs <- i:
			case err := <-errs:
				b.Fatal(err)
			}
		}
	}()
	wg.Wait()
	select {
	case err := <-errs:
		b.Fatal(err)
	default:
	}
	lastCreate := start
	for _, t := range created {
		if t.After(lastCreate) {
			lastCreate = t
		}
	}
	b.Logf("run %d: created %d Services in %v (%.0f/s)", run, numServices, lastCreate.Sub(start).Round(time.Millisecond),
		numServices/lastCreate.Sub(start).Seconds())

	complete := true
	select {
	case <-allAssigned:
	case err := <-exited:
		b.Fatalf("controller exited: %v\n%s", err, truncate(stderr.String(), 4000))
	case <-time.After(time.Until(lastCreate.Add(tailTimeout))):
		complete = false
	}
	b.StopTimer()

	// Latencies. When the wait timed out, a Service without an address
	// counts as waiting until now, so the percentiles are lower bounds.
	now := time.Now()
	mu.Lock()
	lats := make([]time.Duration, numServices)
	var lastAssigned time.Time
	seenIPs := map[string]bool{}
	n := 0 // Services with an address
	for i, name := range names {
		a, ok := assigned[name]
		if !ok {
			lats[i] = now.Sub(created[i])
			continue
		}
		n++
		lats[i] = max(a.at.Sub(created[i]), 0)
		if a.at.After(lastAssigned) {
			lastAssigned = a.at
		}
		for _, ip := range a.ips {
			seenIPs[ip] = true
		}
	}
	mu.Unlock()
	if n == 0 {
		b.Fatalf("no Service got an IP by %v after the last create", tailTimeout)
	}
	sort.Slice(lats, func(i, j int) bool { return lats[i] < lats[j] })

	// Let the writes that follow an assignment (annotation, event, pool
	// status) finish: wait until the pool counts every address and the
	// controller's write counters stop moving.
	var metricsAfter requestCounts
	if complete {
		wantAddrs := len(seenIPs) + 1 // and the warm-up's
		poll(b, settleTimeout, fmt.Sprintf("the pool status counts %d addresses", wantAddrs), func() bool {
			return poolAssigned(ctx, pool.Name) == int64(wantAddrs)
		})
		metricsAfter = settle(b, ctx, cs)
	} else {
		lastAssigned = now
		metricsAfter = scrapeRequests(b, ctx, cs)
	}
	cpuAfter := cpuTime(b, pid)
	rss := peakRSS(b, pid)
	reconciles := scrapeReconciles(b, metricsAddr) - reconcilesBefore

	d := func(match func(sample) bool) float64 { return metricsAfter.sum(match) - metricsBefore.sum(match) }
	r := result{
		p50:              percentile(lats, 0.50),
		p99:              percentile(lats, 0.99),
		max:              lats[len(lats)-1],
		tail:             max(lastAssigned.Sub(lastCreate), 0),
		wall:             lastAssigned.Sub(start),
		cpuPerService:    (cpuAfter - cpuBefore) / float64(n),
		rssMiB:           rss,
		statusWrites:     d(isWrite("services", "status")) / float64(n),
		metaWrites:       d(isWrite("services", "")) / float64(n),
		events:           d(isEventCreate) / float64(n),
		apiEvents:        d(isEventCreate) / float64(n),
		reconciles:       reconciles / float64(n),
		poolStatusWrites: d(isWrite("ipaddresspools", "status")),
		conflicts:        d(func(s sample) bool { return s.labels["code"] == "409" }),
		ourConflicts: d(func(s sample) bool {
			r := s.labels["resource"]
			return s.labels["code"] == "409" && (r == "services" || r == "ipaddresspools" || r == "events")
		}),
	}
	r.perSecond = float64(n) / r.wall.Seconds()
	of, events := "", ""
	if !complete {
		of = fmt.Sprintf(" (INCOMPLETE, %d Services with an IP: latencies are lower bounds, per-Service figures per Service with an IP)", n)
	}
	b.Logf("run %d%s: p50 %v p99 %v max %v tail %v, %.1f Services/s, CPU %.0f ms (%.3f ms/Service; idle %.0f ms/s), peak RSS %.1f MiB",
		run, of, r.p50.Round(time.Millisecond), r.p99.Round(time.Millisecond), r.max.Round(time.Millisecond),
		r.tail.Round(time.Millisecond), r.perSecond, cpuAfter-cpuBefore, r.cpuPerService, idleCPU, r.rssMiB)
	if complete {
		// Count lbstack's own events: the API server's ClusterIP repair
		// loop also posts events on Services under load.
		var lbEvents int
		r.distinctAddresses, lbEvents, events = verify(b, ctx, cs, runLabel)
		r.events = float64(lbEvents) / float64(n)
	}
	fn := float64(n)
	b.Logf("run %d: for %d Services: %.0f status writes, %.0f metadata writes, %.0f lbstack events (%.0f event POSTs in all), %.0f reconciles; "+
		"%.0f pool status writes (%.2f/s); %.0f conflicts (409), %.0f of them on Services, pools or events",
		run, n, r.statusWrites*fn, r.metaWrites*fn, r.events*fn, r.apiEvents*fn, r.reconciles*fn,
		r.poolStatusWrites, r.poolStatusWrites/r.wall.Seconds(), r.conflicts, r.ourConflicts)
	if events != "" {
		b.Logf("run %d: %d distinct addresses; events on the Services: %s", run, r.distinctAddresses, events)
	}
	if testing.Verbose() {
		// Not b.Logf: a benchmark's log is cut after ten lines.
		fmt.Fprintf(os.Stderr, "run %d: API requests during the run (delta by verb, resource and code; controller and benchmark together):\n%s\n",
			run, metricsAfter.deltaTable(metricsBefore))
	}
	if !complete {
		b.Fatalf("only %d of %d Services got an IP by %v after the last create (%.1f/s)", n, numServices, tailTimeout, r.perSecond)
	}
	return r
}

// benchService is Service i: its sharing group (10 consecutive Services,
// one namespace) and its port within the group.
func benchService(i int, namespaces []string, labels map[string]string) *corev1.Service {
	group := i / groupSize
	return &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{
			Namespace:   namespaces[group%len(namespaces)],
			Name:        fmt.Sprintf("svc-%04d", i),
			Labels:      labels,
			Annotations: map[string]string{lbv1.AnnotationAllowSharedIP: fmt.Sprintf("group-%03d", group)},
		},
		Spec: corev1.ServiceSpec{
			Type: corev1.ServiceTypeLoadBalancer,
			// 5,000 Services would exhaust the 2,768 NodePorts.
			AllocateLoadBalancerNodePorts: ptr.To(false),
			Selector:                      map[string]string{"app": fmt.Sprintf("app-%04d", i)},
			Ports:                         []corev1.ServicePort{{Name: "p", Port: int32(80 + i%groupSize), Protocol: corev1.ProtocolTCP}},
		},
	}
}

// verify checks that every Service has one IP from the pool and that
// Services holding the same IP share a key on distinct ports. It returns
// the number of distinct addresses, the number of lbstack's events on the
// Services and a summary of all their events.
func verify(b *testing.B, ctx context.Context, cs kubernetes.Interface, labels map[string]string) (addresses, lbEvents int, events string) {
	b.Helper()
	list, err := cs.CoreV1().Services("").List(ctx, metav1.ListOptions{LabelSelector: "lbstack-bench-run=" + labels["lbstack-bench-run"]})
	if err != nil {
		b.Fatal(err)
	}
	if len(list.Items) != numServices {
		b.Fatalf("listed %d Services, want %d", len(list.Items), numServices)
	}
	var prefixes []netip.Prefix
	for _, c := range poolCIDRs {
		prefixes = append(prefixes, netip.MustParsePrefix(c))
	}
	type use struct{ svc, key, port string }
	byIP := map[string][]use{}
	var problems []string
	noAnnotation := 0
	for _, s := range list.Items {
		name := s.Namespace + "/" + s.Name
		if len(s.Status.LoadBalancer.Ingress) != 1 {
			problems = append(problems, fmt.Sprintf("%s has %d ingress addresses", name, len(s.Status.LoadBalancer.Ingress)))
			continue
		}
		ip, err := netip.ParseAddr(s.Status.LoadBalancer.Ingress[0].IP)
		inPool := false
		for _, p := range prefixes {
			inPool = inPool || (err == nil && p.Contains(ip))
		}
		if !inPool {
			problems = append(problems, fmt.Sprintf("%s has %q, not from the pool", name, s.Status.LoadBalancer.Ingress[0].IP))
			continue
		}
		if s.Annotations[lbv1.AnnotationAllocatedFromPool] == "" {
			noAnnotation++
		}
		p := s.Spec.Ports[0]
		byIP[ip.String()] = append(byIP[ip.String()], use{svc: name, key: s.Annotations[lbv1.AnnotationAllowSharedIP],
			port: fmt.Sprintf("%d/%s", p.Port, p.Protocol)})
	}
	for ip, uses := range byIP {
		ports := map[string]string{}
		for _, u := range uses {
			if u.key != uses[0].key {
				problems = append(problems, fmt.Sprintf("%s is held by %s (key %q) and %s (key %q)", ip, uses[0].svc, uses[0].key, u.svc, u.key))
			}
			if other, clash := ports[u.port]; clash {
				problems = append(problems, fmt.Sprintf("%s is held by %s and %s, both on port %s", ip, other, u.svc, u.port))
			}
			ports[u.port] = u.svc
		}
	}
	if noAnnotation > 0 {
		// Reported, not a failure: the benchmark checks addresses.
		b.Logf("%d Services lack the %s annotation", noAnnotation, lbv1.AnnotationAllocatedFromPool)
	}
	if len(problems) > 0 {
		sort.Strings(problems)
		if len(problems) > 20 {
			problems = append(problems[:20], fmt.Sprintf("... and %d more", len(problems)-20))
		}
		b.Fatalf("wrong assignments:\n%s", strings.Join(problems, "\n"))
	}
	lbEvents, events = eventSummary(b, ctx, cs, list.Items)
	return len(byIP), lbEvents, events
}

// lbstackReporter is the controller's event reporter.
const lbstackReporter = "lbstack-controller"

// eventSummary counts lbstack's events on the run's Services, and all
// their events by reporter and reason, with the Services that got more
// than one event of a reason.
func eventSummary(b *testing.B, ctx context.Context, cs kubernetes.Interface, svcs []corev1.Service) (int, string) {
	b.Helper()
	namespaces := map[string]bool{}
	ours := map[string]bool{}
	for _, s := range svcs {
		namespaces[s.Namespace] = true
		ours[s.Namespace+"/"+s.Name] = true
	}
	byReason := map[string]int{}
	perService := map[string]int{}
	lb := 0
	for ns := range namespaces {
		list, err := cs.EventsV1().Events(ns).List(ctx, metav1.ListOptions{})
		if err != nil {
			b.Fatal(err)
		}
		for _, e := range list.Items {
			key := e.Regarding.Namespace + "/" + e.Regarding.Name
			if !ours[key] {
				continue
			}
			n := 1
			if e.Series != nil {
				n = int(e.Series.Count)
			}
			reporter := e.ReportingController
			if reporter == "" {
				reporter = e.DeprecatedSource.Component
			}
			if reporter == lbstackReporter {
				lb += n
			}
			byReason[reporter+"/"+e.Reason] += n
			perService[key+" "+e.Reason] += n
		}
	}
	var parts []string
	for r, n := range byReason {
		parts = append(parts, fmt.Sprintf("%s=%d", r, n))
	}
	sort.Strings(parts)
	var repeated []string
	for k, n := range perService {
		if n > 1 {
			repeated = append(repeated, fmt.Sprintf("%s×%d", k, n))
		}
	}
	sort.Strings(repeated)
	out := strings.Join(parts, " ")
	if len(repeated) > 0 {
		out += fmt.Sprintf("; %d Service/reason pairs repeated, e.g. %s", len(repeated), strings.Join(repeated[:min(3, len(repeated))], ", "))
	}
	return lb, out
}

// cleanup deletes the run's Services, namespaces and pool. envtest runs no
// namespace controller, so the Services are deleted explicitly.
func cleanup(b *testing.B, cs kubernetes.Interface, namespaces []string, pool *lbv1.IPAddressPool) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	// Services have no deletecollection; delete them one by one.
	todo := make(chan types.NamespacedName)
	var wg sync.WaitGroup
	var failed atomic.Int64
	for w := 0; w < createWorkers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := range todo {
				if err := cs.CoreV1().Services(n.Namespace).Delete(ctx, n.Name, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
					failed.Add(1)
				}
			}
		}()
	}
	for _, ns := range namespaces {
		list, err := cs.CoreV1().Services(ns).List(ctx, metav1.ListOptions{})
		if err != nil {
			b.Logf("listing Services in %s: %v", ns, err)
			continue
		}
		for _, s := range list.Items {
			todo <- types.NamespacedName{Namespace: s.Namespace, Name: s.Name}
		}
	}
	close(todo)
	wg.Wait()
	if n := failed.Load(); n > 0 {
		b.Logf("could not delete %d Services", n)
	}
	for _, ns := range namespaces {
		if err := cs.CoreV1().Namespaces().Delete(ctx, ns, metav1.DeleteOptions{}); err != nil {
			b.Logf("deleting namespace %s: %v", ns, err)
		}
	}
	if err := env.Client.Delete(ctx, pool); err != nil {
		b.Logf("deleting pool %s: %v", pool.Name, err)
	}
}

func poolAssigned(ctx context.Context, name string) int64 {
	var p lbv1.IPAddressPool
	if err := env.Client.Get(ctx, client.ObjectKey{Name: name}, &p); err != nil || p.Status.IPv4 == nil {
		return -1
	}
	return p.Status.IPv4.Assigned
}

func percentile(sorted []time.Duration, q float64) time.Duration {
	i := int(math.Ceil(q*float64(len(sorted)))) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}

// --- The controller process ---------------------------------------------

func freeAddr(b *testing.B) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func waitReady(b *testing.B, probe string, exited <-chan error, stderr *syncBuffer) {
	b.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		resp, err := http.Get("http://" + probe + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		select {
		case err := <-exited:
			b.Fatalf("controller exited before becoming ready: %v\n%s", err, stderr.String())
		default:
		}
		if time.Now().After(deadline) {
			b.Fatalf("controller not ready after 60s\n%s", stderr.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

var clockTicks = func() float64 {
	out, err := exec.Command("getconf", "CLK_TCK").Output()
	if err != nil {
		return 100
	}
	n, err := strconv.ParseFloat(strings.TrimSpace(string(out)), 64)
	if err != nil || n <= 0 {
		return 100
	}
	return n
}()

// cpuTime is the process's user+system CPU time in milliseconds.
func cpuTime(b *testing.B, pid int) float64 {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		b.Fatal(err)
	}
	// The command name (field 2) may hold spaces; fields follow ')'.
	s := string(data)
	fields := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	// fields[0] is field 3 (state); utime and stime are fields 14 and 15.
	utime, err1 := strconv.ParseFloat(fields[11], 64)
	stime, err2 := strconv.ParseFloat(fields[12], 64)
	if err1 != nil || err2 != nil {
		b.Fatalf("parsing /proc/%d/stat: %q", pid, s)
	}
	return (utime + stime) * 1000 / clockTicks
}

// peakRSS is the process's VmHWM in MiB.
func peakRSS(b *testing.B, pid int) float64 {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		b.Fatal(err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, err := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 64)
			if err != nil {
				b.Fatalf("parsing %q: %v", line, err)
			}
			return kb / 1024
		}
	}
	b.Fatalf("no VmHWM in /proc/%d/status", pid)
	return 0
}

// --- kube-apiserver request counters ------------------------------------

// sample is one apiserver_request_total series.
type sample struct {
	labels map[string]string
	value  float64
}

type requestCounts []sample

func (c requestCounts) sum(match func(sample) bool) float64 {
	t := 0.0
	for _, s := range c {
		if match(s) {
			t += s.value
		}
	}
	return t
}

// deltaTable lists the series that changed since before, for the log.
func (c requestCounts) deltaTable(before requestCounts) string {
	key := func(s sample) string {
		g := s.labels["group"]
		if g == "" {
			g = "core"
		}
		sub := s.labels["subresource"]
		if sub != "" {
			sub = "/" + sub
		}
		return fmt.Sprintf("%-8s %s %s%s code=%s", s.labels["verb"], g, s.labels["resource"], sub, s.labels["code"])
	}
	delta := map[string]float64{}
	for _, s := range c {
		delta[key(s)] += s.value
	}
	for _, s := range before {
		delta[key(s)] -= s.value
	}
	var lines []string
	for k, v := range delta {
		if v != 0 {
			lines = append(lines, fmt.Sprintf("  %8.0f  %s", v, k))
		}
	}
	sort.Strings(lines)
	return strings.Join(lines, "\n")
}

var writeVerbs = map[string]bool{"PATCH": true, "PUT": true, "UPDATE": true, "APPLY": true}

func isWrite(resource, subresource string) func(sample) bool {
	return func(s sample) bool {
		return s.labels["resource"] == resource && s.labels["subresource"] == subresource && writeVerbs[s.labels["verb"]]
	}
}

func isEventCreate(s sample) bool {
	g := s.labels["group"]
	return s.labels["resource"] == "events" && (g == "" || g == "events.k8s.io") && (s.labels["verb"] == "POST" || s.labels["verb"] == "CREATE")
}

// scrapeRequests reads apiserver_request_total from the API server's /metrics.
func scrapeRequests(b *testing.B, ctx context.Context, cs kubernetes.Interface) requestCounts {
	b.Helper()
	raw, err := cs.CoreV1().RESTClient().Get().AbsPath("/metrics").DoRaw(ctx)
	if err != nil {
		b.Fatalf("reading kube-apiserver /metrics: %v", err)
	}
	out, err := parseCounter(raw, "apiserver_request_total")
	if err != nil {
		b.Fatal(err)
	}
	if len(out) == 0 {
		b.Fatal("kube-apiserver /metrics has no apiserver_request_total")
	}
	return out
}

// parseCounter reads one metric's series from the Prometheus text format.
func parseCounter(raw []byte, name string) (requestCounts, error) {
	var out requestCounts
	for _, line := range strings.Split(string(raw), "\n") {
		rest, ok := strings.CutPrefix(line, name+"{")
		if !ok {
			continue
		}
		end := strings.LastIndexByte(rest, '}')
		if end < 0 {
			return nil, fmt.Errorf("malformed metric line %q", line)
		}
		labels, err := parseLabels(rest[:end])
		if err != nil {
			return nil, fmt.Errorf("%w in %q", err, line)
		}
		v, err := strconv.ParseFloat(strings.Fields(rest[end+1:])[0], 64)
		if err != nil {
			return nil, fmt.Errorf("value in %q: %w", line, err)
		}
		out = append(out, sample{labels: labels, value: v})
	}
	return out, nil
}

func parseLabels(s string) (map[string]string, error) {
	out := map[string]string{}
	for len(s) > 0 {
		eq := strings.IndexByte(s, '=')
		if eq < 0 || eq+1 >= len(s) || s[eq+1] != '"' {
			return nil, fmt.Errorf("malformed labels")
		}
		name := strings.TrimSpace(s[:eq])
		var val strings.Builder
		i := eq + 2
		for ; i < len(s) && s[i] != '"'; i++ {
			if s[i] == '\\' && i+1 < len(s) {
				i++
				switch s[i] {
				case 'n':
					val.WriteByte('\n')
				default:
					val.WriteByte(s[i])
				}
				continue
			}
			val.WriteByte(s[i])
		}
		if i >= len(s) {
			return nil, fmt.Errorf("unterminated label value")
		}
		out[name] = val.String()
		s = strings.TrimPrefix(s[i+1:], ",")
	}
	return out, nil
}

// settle waits until the controller's writes (Service patches, events,
// pool status) stop for two seconds, and returns the counters then.
func settle(b *testing.B, ctx context.Context, cs kubernetes.Interface) requestCounts {
	b.Helper()
	controllerWrites := func(c requestCounts) float64 {
		return c.sum(func(s sample) bool {
			switch s.labels["resource"] {
			case "services", "ipaddresspools":
				return writeVerbs[s.labels["verb"]]
			case "events":
				return s.labels["verb"] != "WATCH" && s.labels["verb"] != "LIST" && s.labels["verb"] != "GET"
			}
			return false
		})
	}
	deadline := time.Now().Add(settleTimeout)
	last := scrapeRequests(b, ctx, cs)
	stableSince := time.Now()
	for {
		time.Sleep(500 * time.Millisecond)
		cur := scrapeRequests(b, ctx, cs)
		if controllerWrites(cur) != controllerWrites(last) {
			stableSince = time.Now()
		}
		last = cur
		if time.Since(stableSince) >= 2*time.Second {
			return cur
		}
		if time.Now().After(deadline) {
			b.Logf("controller writes still going %v after the last assignment; counting what was written so far", settleTimeout)
			return cur
		}
	}
}

// --- helpers ---------------------------------------------------------------

func poll(b *testing.B, timeout time.Duration, what string, cond func() bool) {
	b.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			b.Fatalf("timed out after %v waiting until %s", timeout, what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.buf.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.buf.String()
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + fmt.Sprintf("\n... (%d more bytes)", len(s)-n)
}

// scrapeReconciles reads the controller's controller_runtime_reconcile_total
// for the Service controller.
func scrapeReconciles(b *testing.B, addr string) float64 {
	b.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		b.Fatalf("reading the controller's metrics: %v", err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		b.Fatal(err)
	}
	c, err := parseCounter(raw, "controller_runtime_reconcile_total")
	if err != nil {
		b.Fatal(err)
	}
	return c.sum(func(s sample) bool { return s.labels["controller"] == "service" })
}
