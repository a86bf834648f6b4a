package v1alpha1

// LogLevel is the verbosity of a component's log.
// +kubebuilder:validation:Enum=error;warn;info;debug
type LogLevel string

// Log levels, from the quietest to the most verbose.
const (
	LogLevelError LogLevel = "error"
	LogLevelWarn  LogLevel = "warn"
	LogLevelInfo  LogLevel = "info"
	LogLevelDebug LogLevel = "debug"
)

// SecretReference names a Secret and the key inside it.
type SecretReference struct {
	// name of the Secret.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +required
	Name string `json:"name"`

	// namespace of the Secret. Empty means the namespace the lbstack operator runs in.
	// +kubebuilder:validation:MaxLength=63
	// +optional
	Namespace string `json:"namespace,omitempty"`

	// key inside the Secret's data that holds the value.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:default=password
	// +optional
	Key string `json:"key,omitempty"`
}

// FamilyCounts counts the addresses of one IP family in a pool.
//
// available is a decimal string so that it stays exact for any pool size:
// an IPv6 /48 holds 2^80 addresses, more than any 64-bit integer.
type FamilyCounts struct {
	// assigned is the number of addresses of this family held by Services.
	// +kubebuilder:validation:Minimum=0
	// +optional
	Assigned int64 `json:"assigned"`

	// available is the number of addresses of this family that can still be
	// assigned, as an exact base-10 integer (it may exceed 2^64).
	// +kubebuilder:validation:Pattern=`^(0|[1-9][0-9]*)$`
	// +kubebuilder:validation:MaxLength=40
	// +optional
	Available string `json:"available,omitempty"`
}

// PoolUsage is how much of one pool is in use.
type PoolUsage struct {
	// ipv4 counts the pool's IPv4 addresses. Absent when the pool has none.
	// +optional
	IPv4 *FamilyCounts `json:"ipv4,omitempty"`

	// ipv6 counts the pool's IPv6 addresses. Absent when the pool has none.
	// +optional
	IPv6 *FamilyCounts `json:"ipv6,omitempty"`
}
