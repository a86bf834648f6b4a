package render

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"maps"
	"strconv"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	lbv1 "github.com/lbstack/lbstack/api/v1alpha1"
)

// Defaults used where a stack built in Go (not through the API server's
// defaulting) leaves a field empty; they equal the CRD defaults.
const (
	DefaultControllerReplicas = 2
	DefaultMemberlistPort     = 7946
	DefaultHeartbeatInterval  = 100 * time.Millisecond
	DefaultMissedHeartbeats   = 4
	DefaultProbeInterval      = time.Second
	DefaultProbeTimeout       = 500 * time.Millisecond
)

// memberlistKeyDir is where the speaker finds its memberlist key file.
const memberlistKeyDir = "/etc/lbstack/memberlist"

// ControllerDeployment renders the controller: leader-elected replicas
// spread over nodes, on the pod network, under the restricted Pod
// Security profile.
func ControllerDeployment(stack *lbv1.LoadBalancerStack, p Params) *appsv1.Deployment {
	c := stack.Spec.Controller
	replicas := int32(DefaultControllerReplicas)
	if c.Replicas != nil {
		replicas = *c.Replicas
	}
	podLabels := selectorLabels(ComponentController)
	return &appsv1.Deployment{
		TypeMeta:   typeMeta("apps/v1", "Deployment"),
		ObjectMeta: meta(stack, p.Namespace, ControllerName, ComponentController),
		Spec: appsv1.DeploymentSpec{
			Replicas: &replicas,
			Selector: &metav1.LabelSelector{MatchLabels: podLabels},
			Strategy: appsv1.DeploymentStrategy{
				Type: appsv1.RollingUpdateDeploymentStrategyType,
				RollingUpdate: &appsv1.RollingUpdateDeployment{
					MaxUnavailable: ptr.To(intstr.FromInt32(0)),
					MaxSurge:       ptr.To(intstr.FromInt32(1)),
				},
			},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: podLabels},
				Spec: corev1.PodSpec{
					ServiceAccountName:            ControllerName,
					ImagePullSecrets:              imagePullSecrets(c.WorkloadSpec, p),
					NodeSelector:                  maps.Clone(c.NodeSelector),
					Tolerations:                   tolerations(c.Tolerations),
					TerminationGracePeriodSeconds: ptr.To[int64](10),
					SecurityContext: &corev1.PodSecurityContext{
						RunAsNonRoot:   ptr.To(true),
						SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
					},
					Affinity: &corev1.Affinity{PodAntiAffinity: &corev1.PodAntiAffinity{
						PreferredDuringSchedulingIgnoredDuringExecution: []corev1.WeightedPodAffinityTerm{{
							Weight: 100,
							PodAffinityTerm: corev1.PodAffinityTerm{
								LabelSelector: &metav1.LabelSelector{MatchLabels: podLabels},
								TopologyKey:   corev1.LabelHostname,
							},
						}},
					}},
					Containers: []corev1.Container{{
						Name:  ComponentController,
						Image: image(c.WorkloadSpec, p),
						Args: []string{
							"controller",
							"--leader-elect",
							"--leader-election-namespace=" + p.Namespace,
							"--log-level=" + logLevel(c.WorkloadSpec),
							fmt.Sprintf("--metrics-bind-address=:%d", ControllerMetricsPort),
							"--metrics-secure=true",
							fmt.Sprintf("--health-probe-bind-address=:%d", ControllerProbePort),
						},
						Env: []corev1.EnvVar{memoryLimitEnv(ComponentController)},
						Ports: []corev1.ContainerPort{
							{Name: "metrics", ContainerPort: ControllerMetricsPort, Protocol: corev1.ProtocolTCP},
							{Name: "probes", ContainerPort: ControllerProbePort, Protocol: corev1.ProtocolTCP},
						},
						LivenessProbe:  httpProbe("/healthz", 10, 20),
						ReadinessProbe: httpProbe("/readyz", 0, 10),
						Resources:      resources(c.Resources, "10m", "64Mi", "256Mi"),
						SecurityContext: &corev1.SecurityContext{
							AllowPrivilegeEscalation: ptr.To(false),
							ReadOnlyRootFilesystem:   ptr.To(true),
							Capabilities:             &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
						},
					}},
				},
			},
		},
	}
}

// SpeakerCapabilities are the only capabilities the speaker holds
// (everything else is dropped): NET_RAW, for the AF_PACKET socket that
// answers ARP and the raw ICMPv6 socket that answers NDP. Nothing else
// needs one: joining the solicited-node multicast groups, the ICMPv6
// filter and the hop-limit and TTL options (NDP, BFD's TTL 255 and
// IP_RECVTTL, its network-control TOS) are unprivileged socket options;
// memberlist (7946), BFD (3784, source ports from 49152) and the probe
// and metrics ports are above 1024; the embedded BGP speaker only
// connects out (it does not listen on 179) and TCP-MD5 needs no
// privilege; and the speaker writes no sysctl. The speaker's test
// TestSocketsWithSpeakerCapabilities opens every one of these sockets
// with exactly these capabilities.
func SpeakerCapabilities() []corev1.Capability { return []corev1.Capability{"NET_RAW"} }

// MemberlistKeyHashAnnotation on the speaker pod template carries a hash of
// the memberlist key (KeyHash): when the key changes, every speaker rolls,
// so that none keeps running with a key the others no longer use.
const MemberlistKeyHashAnnotation = "lbstack.io/memberlist-key-hash"

// KeyHash is a short, one-way digest of a key (the first 16 hex digits of
// its SHA-256), safe to show.
func KeyHash(key []byte) string {
	sum := sha256.Sum256(key)
	return hex.EncodeToString(sum[:8])
}

// SpeakerDaemonSet renders the speaker: one pod per matching node on the
// host network, running as root with only SpeakerCapabilities (a non-root
// container gets no effective capabilities from the runtime, so it could
// not open its ARP/NDP sockets), no privilege escalation and a read-only
// root filesystem; the memberlist key file (mode 0400, owned by root) is
// readable by root alone. Updates replace one node at a time
// and wait minReadySeconds before the next, so the membership settles and
// a leaving speaker's IPs are taken over (it leaves gracefully on SIGTERM)
// before another speaker goes.
func SpeakerDaemonSet(stack *lbv1.LoadBalancerStack, p Params) *appsv1.DaemonSet {
	s := stack.Spec.Speaker
	fd := s.FailureDetection
	port := s.MemberlistBindPort
	if port == 0 {
		port = DefaultMemberlistPort
	}
	missed := fd.MissedHeartbeats
	if missed == 0 {
		missed = DefaultMissedHeartbeats
	}
	podLabels := selectorLabels(ComponentSpeaker)
	// One definition of where speakers run, shared with the speakers'
	// expectation of their peers.
	placeSel, placeTol := SpeakerPlacement(stack)
	return &appsv1.DaemonSet{
		TypeMeta:   typeMeta("apps/v1", "DaemonSet"),
		ObjectMeta: meta(stack, p.Namespace, SpeakerName, ComponentSpeaker),
		Spec: appsv1.DaemonSetSpec{
			Selector:        &metav1.LabelSelector{MatchLabels: podLabels},
			MinReadySeconds: 5,
			UpdateStrategy: appsv1.DaemonSetUpdateStrategy{
				Type: appsv1.RollingUpdateDaemonSetStrategyType,
				RollingUpdate: &appsv1.RollingUpdateDaemonSet{
					MaxUnavailable: ptr.To(intstr.FromInt32(1)),
					MaxSurge:       ptr.To(intstr.FromInt32(0)),
				},
			},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: podLabels, Annotations: map[string]string{MemberlistKeyHashAnnotation: KeyHash(p.MemberlistKey)}},
				Spec: corev1.PodSpec{
					ServiceAccountName:            SpeakerName,
					ImagePullSecrets:              imagePullSecrets(s.WorkloadSpec, p),
					HostNetwork:                   true,
					DNSPolicy:                     corev1.DNSClusterFirstWithHostNet,
					NodeSelector:                  placeSel,
					Tolerations:                   placeTol,
					TerminationGracePeriodSeconds: ptr.To[int64](5),
					PriorityClassName:             "system-node-critical",
					SecurityContext: &corev1.PodSecurityContext{
						SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
					},
					Containers: []corev1.Container{{
						Name:  ComponentSpeaker,
						Image: image(s.WorkloadSpec, p),
						Args: []string{
							"speaker",
							"--node-name=$(NODE_NAME)",
							"--namespace=$(POD_NAMESPACE)",
							"--log-level=" + logLevel(s.WorkloadSpec),
							"--memberlist-bind-address=$(HOST_IP)",
							fmt.Sprintf("--memberlist-bind-port=%d", port),
							"--memberlist-key-file=" + memberlistKeyDir + "/" + MemberlistSecretKey,
							"--heartbeat-interval=" + duration(fd.HeartbeatInterval, DefaultHeartbeatInterval),
							"--missed-heartbeats=" + strconv.Itoa(int(missed)),
							"--probe-interval=" + duration(fd.ProbeInterval, DefaultProbeInterval),
							"--probe-timeout=" + duration(fd.ProbeTimeout, DefaultProbeTimeout),
							fmt.Sprintf("--metrics-bind-address=:%d", SpeakerMetricsPort),
							"--metrics-secure=true",
							fmt.Sprintf("--health-probe-bind-address=:%d", SpeakerProbePort),
						},
						Env: []corev1.EnvVar{
							fieldEnv("NODE_NAME", "spec.nodeName"),
							fieldEnv("POD_NAMESPACE", "metadata.namespace"),
							fieldEnv("HOST_IP", "status.hostIP"),
							memoryLimitEnv(ComponentSpeaker),
						},
						Ports: []corev1.ContainerPort{
							{Name: "memberlist-tcp", ContainerPort: port, Protocol: corev1.ProtocolTCP},
							{Name: "memberlist-udp", ContainerPort: port, Protocol: corev1.ProtocolUDP},
							{Name: "metrics", ContainerPort: SpeakerMetricsPort, Protocol: corev1.ProtocolTCP},
							{Name: "probes", ContainerPort: SpeakerProbePort, Protocol: corev1.ProtocolTCP},
						},
						LivenessProbe:  httpProbe("/healthz", 10, 10),
						ReadinessProbe: httpProbe("/readyz", 0, 5),
						Resources:      resources(s.Resources, "20m", "64Mi", "256Mi"),
						SecurityContext: &corev1.SecurityContext{
							// Root, for added capabilities to be effective:
							// the runtime gives a non-root process none.
							RunAsUser:                ptr.To[int64](0),
							RunAsGroup:               ptr.To[int64](0),
							RunAsNonRoot:             ptr.To(false),
							AllowPrivilegeEscalation: ptr.To(false),
							ReadOnlyRootFilesystem:   ptr.To(true),
							Capabilities: &corev1.Capabilities{
								Drop: []corev1.Capability{"ALL"},
								Add:  SpeakerCapabilities(),
							},
						},
						VolumeMounts: []corev1.VolumeMount{{Name: "memberlist", MountPath: memberlistKeyDir, ReadOnly: true}},
					}},
					Volumes: []corev1.Volume{{
						Name: "memberlist",
						VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{
							SecretName:  MemberlistSecretName,
							DefaultMode: ptr.To[int32](0o400),
						}},
					}},
				},
			},
		},
	}
}

// MetricsServices render one Service per component for Prometheus to
// scrape; the speaker's is headless (its pods are on the host network).
// The components serve HTTPS (--metrics-secure) to callers whose token may
// get /metrics (the metrics-reader ClusterRole of config/rbac).
func MetricsServices(stack *lbv1.LoadBalancerStack, p Params) []client.Object {
	svc := func(component string, port int32, headless bool) *corev1.Service {
		s := &corev1.Service{
			TypeMeta:   typeMeta("v1", "Service"),
			ObjectMeta: meta(stack, p.Namespace, "lbstack-"+component+"-metrics", component),
			Spec: corev1.ServiceSpec{
				Selector: selectorLabels(component),
				Ports:    []corev1.ServicePort{{Name: "metrics", Port: port, TargetPort: intstr.FromString("metrics"), Protocol: corev1.ProtocolTCP}},
			},
		}
		if headless {
			s.Spec.ClusterIP = corev1.ClusterIPNone
		}
		return s
	}
	return []client.Object{
		svc(ComponentController, ControllerMetricsPort, false),
		svc(ComponentSpeaker, SpeakerMetricsPort, true),
	}
}

func httpProbe(path string, initialDelay, period int32) *corev1.Probe {
	return &corev1.Probe{
		ProbeHandler:        corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: path, Port: intstr.FromString("probes")}},
		InitialDelaySeconds: initialDelay,
		PeriodSeconds:       period,
	}
}

// memoryLimitEnv sets GOMEMLIMIT to the container's memory limit, so the
// Go garbage collector works harder as the limit nears instead of letting
// the process be OOM-killed.
func memoryLimitEnv(container string) corev1.EnvVar {
	return corev1.EnvVar{Name: "GOMEMLIMIT", ValueFrom: &corev1.EnvVarSource{ResourceFieldRef: &corev1.ResourceFieldSelector{
		ContainerName: container, Resource: "limits.memory"}}}
}

func fieldEnv(name, path string) corev1.EnvVar {
	return corev1.EnvVar{Name: name, ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: path}}}
}

func duration(d metav1.Duration, def time.Duration) string {
	if d.Duration == 0 {
		return def.String()
	}
	return d.Duration.String()
}

// resources returns the stack's requirements or, when it sets none, modest
// requests and a memory limit.
func resources(r *corev1.ResourceRequirements, cpu, memory, memoryLimit string) corev1.ResourceRequirements {
	if r != nil {
		return *r.DeepCopy()
	}
	return corev1.ResourceRequirements{
		Requests: corev1.ResourceList{corev1.ResourceCPU: mustQuantity(cpu), corev1.ResourceMemory: mustQuantity(memory)},
		Limits:   corev1.ResourceList{corev1.ResourceMemory: mustQuantity(memoryLimit)},
	}
}

// SpeakerPlacement returns the node selector and tolerations of the
// speaker pods of stack, as SpeakerDaemonSet renders them, so that a
// speaker can tell on which nodes to expect the others. (The DaemonSet
// controller adds its own tolerations on top.)
func SpeakerPlacement(stack *lbv1.LoadBalancerStack) (map[string]string, []corev1.Toleration) {
	if stack == nil {
		return nodeSelector(nil), speakerTolerations(nil)
	}
	return nodeSelector(stack.Spec.Speaker.NodeSelector), speakerTolerations(stack.Spec.Speaker.Tolerations)
}

// nodeSelector restricts the speakers to Linux nodes plus the stack's selector.
func nodeSelector(sel map[string]string) map[string]string {
	out := map[string]string{corev1.LabelOSStable: "linux"}
	maps.Copy(out, sel)
	return out
}

func tolerations(t []corev1.Toleration) []corev1.Toleration {
	out := make([]corev1.Toleration, 0, len(t))
	for _, x := range t {
		out = append(out, *x.DeepCopy())
	}
	if len(out) == 0 {
		return nil
	}
	return out
}

// speakerTolerations returns the stack's tolerations or, when it sets none,
// tolerations for control-plane nodes: a Service IP may have to be
// announced from any node.
func speakerTolerations(t []corev1.Toleration) []corev1.Toleration {
	if len(t) > 0 {
		return tolerations(t)
	}
	return []corev1.Toleration{
		{Key: "node-role.kubernetes.io/control-plane", Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoSchedule},
		{Key: "node-role.kubernetes.io/master", Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoSchedule},
	}
}

func mustQuantity(s string) resource.Quantity { return resource.MustParse(s) }
