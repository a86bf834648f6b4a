package config

import (
	"fmt"

	corev1 "k8s.io/api/core/v1"
)

// MaxPasswordLength is the longest TCP MD5 key Linux accepts
// (TCP_MD5SIG_MAXKEYLEN).
const MaxPasswordLength = 80

// PasswordProblem says why Secret s cannot give a BGP session its TCP MD5
// password under key, or returns "" when it can. Only Opaque and
// kubernetes.io/basic-auth Secrets hold passwords: a Secret of another
// type (a TLS key pair, a ServiceAccount token) is the wrong Secret. The
// admission webhook warns with this text and the speaker leaves the peer
// out (NotConfigured) with it, rather than opening the session without the
// password.
func PasswordProblem(s *corev1.Secret, key string) string {
	switch s.Type {
	case "", corev1.SecretTypeOpaque, corev1.SecretTypeBasicAuth:
	default:
		return fmt.Sprintf("Secret %s/%s is of type %s; a password Secret is Opaque or %s", s.Namespace, s.Name, s.Type, corev1.SecretTypeBasicAuth)
	}
	v, ok := s.Data[key]
	switch {
	case !ok:
		return fmt.Sprintf("Secret %s/%s has no key %q", s.Namespace, s.Name, key)
	case len(v) == 0:
		return fmt.Sprintf("Secret %s/%s has an empty %q", s.Namespace, s.Name, key)
	case len(v) > MaxPasswordLength:
		return fmt.Sprintf("Secret %s/%s: the password under %q is %d bytes; TCP MD5 keys are at most %d", s.Namespace, s.Name, key, len(v), MaxPasswordLength)
	}
	return ""
}
