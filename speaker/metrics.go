package speaker

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/lbstack/lbstack/speaker/bfd"
	"github.com/lbstack/lbstack/speaker/dataplane"
	"github.com/lbstack/lbstack/speaker/l2"
)

// metrics are the speaker's Prometheus metrics (registered with
// controller-runtime's registry, served on --metrics-bind-address).
type metrics struct {
	members   prometheus.Gauge
	owned     prometheus.Gauge
	handovers *prometheus.CounterVec
	conflicts prometheus.Counter
	// apiFresh, withdrawn and withdrawals follow the speaker's API view
	// (see APIView, dataplane.Core.API).
	apiFresh    prometheus.Gauge
	withdrawn   prometheus.Gauge
	withdrawals prometheus.Counter
}

// membershipHealth is what the metrics read from membership: undecryptable
// packets so far, and whether the speaker joined none of the speakers it
// expects.
type membershipHealth func() (undecryptable uint64, isolated bool)

func newMetrics(reg prometheus.Registerer, stats func() l2.Stats, bgpMetrics func() dataplane.BGPMetrics, health membershipHealth, eventsDropped func() uint64, announcementWrites func() (layer2, bgp uint64)) (*metrics, error) {
	m := &metrics{
		members: prometheus.NewGauge(prometheus.GaugeOpts{Name: "lbstack_speaker_members",
			Help: "Live speakers this speaker sees, itself included"}),
		owned: prometheus.NewGauge(prometheus.GaugeOpts{Name: "lbstack_speaker_l2_owned_addresses",
			Help: "Addresses this node announces over ARP/NDP"}),
		handovers: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "lbstack_speaker_l2_handovers_total",
			Help: "Address groups this node took over, by reason"}, []string{"reason"}),
		conflicts: prometheus.NewCounter(prometheus.CounterOpts{Name: "lbstack_speaker_l2_conflicts_reported_total",
			Help: "Split-brain reports: another MAC answered for an address this node announces (rate-limited per address and MAC)"}),
		apiFresh: prometheus.NewGauge(prometheus.GaugeOpts{Name: "lbstack_speaker_api_view_fresh",
			Help: "1 while the API server answered this speaker within half of --api-stale-after: its view of Services and configuration is current"}),
		withdrawn: prometheus.NewGauge(prometheus.GaugeOpts{Name: "lbstack_speaker_withdrawn",
			Help: "1 while this speaker announces nothing because it cannot reach the API server while another speaker can (a stale view)"}),
		withdrawals: prometheus.NewCounter(prometheus.CounterOpts{Name: "lbstack_speaker_withdrawals_total",
			Help: "Times this speaker withdrew because it could not reach the API server while another speaker could"}),
	}
	undecryptable := prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "lbstack_speaker_membership_undecryptable_total",
		Help: "Memberlist packets and streams this speaker could not decrypt: a speaker with another memberlist key (it can never join this one's cluster)"},
		func() float64 { u, _ := health(); return float64(u) })
	isolated := prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "lbstack_speaker_membership_isolated",
		Help: "1 while this speaker has joined none of the speakers expected on other Ready nodes"},
		func() float64 {
			if _, iso := health(); iso {
				return 1
			}
			return 0
		})
	dropped := prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "lbstack_speaker_events_dropped_total",
		Help: "Kubernetes events the speaker dropped because its event queue was full (the statuses still carry the state)"},
		func() float64 { return float64(eventsDropped()) })
	var writes []prometheus.Collector
	for _, proto := range []string{"layer2", "bgp"} {
		writes = append(writes, prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "lbstack_speaker_announcement_writes_total",
			Help:        "ServiceAnnouncement status writes of this speaker, by protocol (bgp: only of the Services it is the writer of)",
			ConstLabels: prometheus.Labels{"protocol": proto}},
			func() float64 {
				l2w, bgpw := announcementWrites()
				if proto == "bgp" {
					return float64(bgpw)
				}
				return float64(l2w)
			}))
	}
	for _, c := range append(writes, m.members, m.owned, m.handovers, m.conflicts, m.apiFresh, m.withdrawn, m.withdrawals, undecryptable, isolated, dropped, &l2Collector{stats: stats}, &bgpCollector{read: bgpMetrics}) {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// l2Collector exposes the announcer's packet counters.
type l2Collector struct{ stats func() l2.Stats }

var l2Descs = map[string]*prometheus.Desc{
	"requests":   prometheus.NewDesc("lbstack_speaker_l2_requests_received_total", "ARP requests / Neighbor Solicitations received", []string{"protocol"}, nil),
	"replies":    prometheus.NewDesc("lbstack_speaker_l2_replies_sent_total", "ARP replies / Neighbor Advertisements sent for owned addresses", []string{"protocol"}, nil),
	"gratuitous": prometheus.NewDesc("lbstack_speaker_l2_gratuitous_sent_total", "Gratuitous ARP / unsolicited Neighbor Advertisements sent", []string{"protocol"}, nil),
	"conflicts":  prometheus.NewDesc("lbstack_speaker_l2_conflict_packets_total", "Packets in which another MAC claimed an announced address", []string{"protocol"}, nil),
	"malformed":  prometheus.NewDesc("lbstack_speaker_l2_malformed_packets_total", "Packets dropped as malformed", []string{"protocol"}, nil),
	"sendErrors": prometheus.NewDesc("lbstack_speaker_l2_send_errors_total", "Packets that could not be sent", []string{"protocol"}, nil),
}

var l2SuppressedDesc = prometheus.NewDesc("lbstack_speaker_l2_conflicts_suppressed_total",
	"Conflicts not reported (no log line, no event) because several other MACs already claimed the same address within the conflict interval: a spoofing storm", nil, nil)

func (c *l2Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range l2Descs {
		ch <- d
	}
	ch <- l2SuppressedDesc
}

func (c *l2Collector) Collect(ch chan<- prometheus.Metric) {
	s := c.stats()
	for proto, p := range map[string]l2.ProtocolStats{"arp": s.ARP, "ndp": s.NDP} {
		for name, v := range map[string]uint64{"requests": p.RequestsReceived, "replies": p.RepliesSent, "gratuitous": p.GratuitousSent,
			"conflicts": p.Conflicts, "malformed": p.Malformed, "sendErrors": p.SendErrors} {
			ch <- prometheus.MustNewConstMetric(l2Descs[name], prometheus.CounterValue, float64(v), proto)
		}
	}
	ch <- prometheus.MustNewConstMetric(l2SuppressedDesc, prometheus.CounterValue, float64(s.ConflictsSuppressed))
}

// bgpCollector exposes the BGP sessions and BFD sessions of the driver,
// read through its Metrics method (which takes the driver's lock).
type bgpCollector struct{ read func() dataplane.BGPMetrics }

var (
	bgpUpDesc       = prometheus.NewDesc("lbstack_speaker_bgp_session_up", "1 when the BGP session with the peer is established", []string{"peer"}, nil)
	bgpUpdatesDesc  = prometheus.NewDesc("lbstack_speaker_bgp_updates_sent_total", "UPDATE messages sent to the peer", []string{"peer"}, nil)
	bgpPrefixesDesc = prometheus.NewDesc("lbstack_speaker_bgp_prefixes_advertised", "Prefixes advertised to the peer", []string{"peer"}, nil)
	bfdUpDesc       = prometheus.NewDesc("lbstack_speaker_bfd_session_up", "1 when the BFD session with the peer is Up", []string{"peer"}, nil)
	bfdTransDesc    = prometheus.NewDesc("lbstack_speaker_bfd_transitions_total", "State transitions of the BFD session with the peer", []string{"peer"}, nil)
	bfdRecvDesc     = prometheus.NewDesc("lbstack_speaker_bfd_packets_received_total", "BFD datagrams read from the BFD ports", nil, nil)
	bfdDropDesc     = prometheus.NewDesc("lbstack_speaker_bfd_packets_dropped_total",
		"BFD datagrams dropped, by reason: bad_ttl (TTL/hop limit not 255 single-hop, below the minimum multi-hop), malformed, no_session (no session for the discriminator or peer), rejected (discarded by the session, e.g. failed authentication)", []string{"reason"}, nil)
	bfdSentDesc      = prometheus.NewDesc("lbstack_speaker_bfd_packets_sent_total", "BFD packets sent", nil, nil)
	bfdSendErrorDesc = prometheus.NewDesc("lbstack_speaker_bfd_send_errors_total", "BFD packets that could not be sent", nil, nil)
)

func (c *bgpCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{bgpUpDesc, bgpUpdatesDesc, bgpPrefixesDesc, bfdUpDesc, bfdTransDesc, bfdRecvDesc, bfdDropDesc, bfdSentDesc, bfdSendErrorDesc} {
		ch <- d
	}
}

func (c *bgpCollector) Collect(ch chan<- prometheus.Metric) {
	m := c.read()
	for _, p := range m.Peers {
		up := 0.0
		if p.Up {
			up = 1
		}
		ch <- prometheus.MustNewConstMetric(bgpUpDesc, prometheus.GaugeValue, up, p.Name)
		ch <- prometheus.MustNewConstMetric(bgpUpdatesDesc, prometheus.CounterValue, float64(p.UpdatesSent), p.Name)
		ch <- prometheus.MustNewConstMetric(bgpPrefixesDesc, prometheus.GaugeValue, float64(p.PrefixesAdvertised), p.Name)
	}
	for name, s := range m.BFD {
		up := 0.0
		if s.State == bfd.StateUp {
			up = 1
		}
		ch <- prometheus.MustNewConstMetric(bfdUpDesc, prometheus.GaugeValue, up, name)
		ch <- prometheus.MustNewConstMetric(bfdTransDesc, prometheus.CounterValue, float64(s.Transitions), name)
	}
	p := m.BFDPackets
	ch <- prometheus.MustNewConstMetric(bfdRecvDesc, prometheus.CounterValue, float64(p.Received))
	for reason, v := range map[string]uint64{"bad_ttl": p.BadTTL, "malformed": p.Malformed, "no_session": p.NoSession, "rejected": p.Rejected} {
		ch <- prometheus.MustNewConstMetric(bfdDropDesc, prometheus.CounterValue, float64(v), reason)
	}
	ch <- prometheus.MustNewConstMetric(bfdSentDesc, prometheus.CounterValue, float64(p.Sent))
	ch <- prometheus.MustNewConstMetric(bfdSendErrorDesc, prometheus.CounterValue, float64(p.SendErrors))
}
