// Command cluster brings up a real Kubernetes cluster on this machine
// (test/realcluster: control plane and kubelet nodes in network
// namespaces), prints how to reach it, and tears it down completely on
// Ctrl-C or SIGTERM. `make cluster` builds what it needs first.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/lbstack/lbstack/internal/testenv"
	"github.com/lbstack/lbstack/test/realcluster"
)

func main() {
	nodes := flag.Int("nodes", 3, fmt.Sprintf("number of nodes (at most %d)", realcluster.MaxNodes))
	dir := flag.String("dir", "", "folder for logs and the kubeconfig (default: a new temporary folder)")
	flag.Parse()
	if err := run(*nodes, *dir); err != nil {
		fmt.Fprintln(os.Stderr, "cluster:", err)
		os.Exit(1)
	}
}

func run(nodes int, dir string) error {
	if dir == "" {
		var err error
		if dir, err = os.MkdirTemp("", "lbstack-cluster-"); err != nil {
			return err
		}
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var images []string
	for _, name := range []string{"pause", "lbstack", "echo"} {
		path := filepath.Join(testenv.RepoRoot(), "bin", "images", name+".tar")
		if _, err := os.Stat(path); err != nil {
			fmt.Printf("No %s: run `make image test-images` to have it on the nodes\n", path)
			continue
		}
		images = append(images, path)
	}
	c, err := realcluster.Up(ctx, realcluster.Options{
		Nodes:      nodes,
		Dir:        dir,
		Images:     images,
		PauseImage: realcluster.PauseImage,
		Logf:       func(f string, a ...any) { fmt.Printf(time.Now().Format("15:04:05.000 ")+f+"\n", a...) },
	})
	defer func() {
		fmt.Println("Tearing the cluster down")
		if c != nil {
			c.Close()
		}
	}()
	if err != nil {
		return err
	}
	fmt.Printf("\nexport KUBECONFIG=%s\nkubectl: %s\nlogs: %s\n", c.Kubeconfig, filepath.Join(c.Bin, "kubectl"), dir)
	for _, n := range c.Nodes {
		fmt.Printf("%s: namespace %s, %s %s, pods %s %s\n", n.Name, n.NS, n.IPv4, n.IPv6, n.PodCIDRv4, n.PodCIDRv6)
	}
	fmt.Printf("client namespace: %s (%s, %s)\nPress Ctrl-C to tear it down.\n", c.Lab.Client, "192.0.2.100", "2001:db8::100")
	<-ctx.Done()
	return nil
}
