package testenv

import (
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"

	"k8s.io/client-go/tools/clientcmd"

	"sigs.k8s.io/controller-runtime/pkg/envtest"
)

// WriteKubeconfig writes a cluster-admin kubeconfig for the control plane
// into dir and returns its path, for components run as subprocesses.
func (e *Env) WriteKubeconfig(dir string) (string, error) {
	user, err := e.env.ControlPlane.AddUser(envtest.User{Name: "lbstack-test-admin", Groups: []string{"system:masters"}}, nil)
	if err != nil {
		return "", fmt.Errorf("adding admin user: %w", err)
	}
	data, err := user.KubeConfig()
	if err != nil {
		return "", fmt.Errorf("rendering kubeconfig: %w", err)
	}
	path := filepath.Join(dir, "kubeconfig")
	if err := os.WriteFile(path, data, 0o600); err != nil {
		return "", err
	}
	return path, nil
}

// WriteKubeconfigVia writes a cluster-admin kubeconfig like
// WriteKubeconfig, but pointing at host (an address of this machine the
// API server also listens on, such as a lab network's gateway) while still
// verifying the serving certificate, which names 127.0.0.1.
func (e *Env) WriteKubeconfigVia(dir, host string) (string, error) {
	path, err := e.WriteKubeconfig(dir)
	if err != nil {
		return "", err
	}
	cfg, err := clientcmd.LoadFromFile(path)
	if err != nil {
		return "", err
	}
	for _, c := range cfg.Clusters {
		u, err := url.Parse(c.Server)
		if err != nil {
			return "", err
		}
		c.TLSServerName = u.Hostname()
		u.Host = net.JoinHostPort(host, u.Port())
		c.Server = u.String()
	}
	path = filepath.Join(dir, "kubeconfig-"+host)
	return path, clientcmd.WriteToFile(*cfg, path)
}
