// Package plan is the speaker's pure planning: from the validated
// configuration (internal/config) and what the speaker knows of Services
// and Nodes it computes the layer-2 groups (L2) and this node's BGP plan
// (BGP, RouterID) in the data plane's vocabulary (speaker/dataplane). Every
// speaker computes the same plan from the same objects; no function here
// does I/O.
package plan
