// Package dataplane is the part of the speaker that keeps announcing when
// the API server is gone: the layer-2 election loop (Core) over membership
// and the announcer, and the BGP driver (BGPDriver) over the embedded BGP
// speaker and BFD. Its input is plain data — layer-2 groups and a BGP plan
// computed by speaker/plan from the Kubernetes objects — and its output is
// facts (moves, owned groups, session states) that the Kubernetes side of
// the speaker reports.
//
// It imports no Kubernetes API, client or lbstack configuration package
// (TestNoKubernetesImports fails when one creeps in); only the protocol
// packages, logr and an injected k8s.io/utils clock.
package dataplane
