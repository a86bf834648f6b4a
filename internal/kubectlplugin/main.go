// Package kubectlplugin is `kubectl lbstack`: it reads what lbstack
// records in the API (the configuration, Services, ServiceAnnouncements,
// BGPPeer status, the stack's status, the components' pods and the
// controller's Lease) and puts it together: which node announces an IP and
// why, how full the pools are, how the BGP sessions are, whether the
// components are healthy. It only reads; `migrate` writes YAML to stdout
// for the user to review and apply.
package kubectlplugin

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/spf13/pflag"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/lbstack/lbstack/internal/version"
)

// IO is where the plugin reads and writes.
type IO struct {
	In       io.Reader
	Out, Err io.Writer
}

// Options are the flags every subcommand takes.
type Options struct {
	Kubeconfig     string
	KubeContext    string
	Namespace      string
	AllNamespaces  bool
	Output         string
	RequestTimeout time.Duration
	// LBStackNamespace is where the controller and speakers run; empty:
	// found from the speaker DaemonSet.
	LBStackNamespace string

	// Now is the clock ages are computed against (tests fix it).
	Now func() time.Time
	// RESTConfig, when set, is used instead of loading a kubeconfig (tests).
	RESTConfig *rest.Config
	// Context, when set, bounds the command (tests); SIGINT and SIGTERM
	// end it too.
	Context context.Context

	namespaceExplicit bool
	client            client.WithWatch
	host              string
}

// command is one subcommand.
type command struct {
	name, args, short string
	// flags adds the command's own flags and returns its run function.
	flags func(fs *pflag.FlagSet, o *Options) func(ctx context.Context, o *Options, args []string, io IO) error
	// offline commands need no API server unless asked.
	offline bool
}

func commands() []command {
	return []command{
		{name: "status", short: "the stack's conditions, the controller's leader and every node's speaker", flags: statusFlags},
		{name: "services", short: "every LoadBalancer Service: IPs, pool, who announces them, since when, last move and why", flags: servicesFlags},
		{name: "pools", short: "address usage per pool and family (exact), optionally with the Services in each", flags: poolsFlags},
		{name: "peers", short: "BGP sessions per peer and node: state, BFD, prefixes, last error", flags: peersFlags},
		{name: "explain-ip", args: "IP", short: "which pool and Service hold an IP, which node announces it and why that node (or why none does)", flags: explainFlags},
		{name: "migrate", short: "write a LoadBalancerStack equivalent to a MetalLB configuration (files or the cluster), listing what cannot be expressed", flags: migrateFlags, offline: true},
	}
}

// Main runs the plugin with args (without the program name) and returns
// the exit code: 0 success, 1 failure, 2 bad usage.
func Main(args []string, stdio IO, base Options) int {
	cmds := commands()
	usage := func(w io.Writer) {
		fmt.Fprintf(w, "kubectl lbstack: what lbstack does with your Services, from the API\n\nUsage: kubectl lbstack <command> [flags]\n\nCommands:\n")
		for _, c := range cmds {
			fmt.Fprintf(w, "  %-11s %s\n", c.name, c.short)
		}
		fmt.Fprintf(w, "  %-11s %s\n", "version", "print the plugin's version")
		fmt.Fprintf(w, "\nRun 'kubectl lbstack <command> --help' for a command's flags.\n")
	}
	if len(args) == 0 {
		usage(stdio.Err)
		return 2
	}
	switch args[0] {
	case "-h", "--help", "help":
		usage(stdio.Out)
		return 0
	case "version", "--version":
		fmt.Fprintln(stdio.Out, version.String())
		return 0
	}
	i := slices.IndexFunc(cmds, func(c command) bool { return c.name == args[0] })
	if i < 0 {
		fmt.Fprintf(stdio.Err, "kubectl lbstack: unknown command %q\n\n", args[0])
		usage(stdio.Err)
		return 2
	}
	cmd := cmds[i]
	o := base
	fs := pflag.NewFlagSet("kubectl lbstack "+cmd.name, pflag.ContinueOnError)
	fs.SetOutput(stdio.Err)
	fs.StringVar(&o.Kubeconfig, "kubeconfig", "", "path to the kubeconfig file (default: $KUBECONFIG or ~/.kube/config)")
	fs.StringVar(&o.KubeContext, "context", "", "the kubeconfig context to use")
	fs.StringVarP(&o.Namespace, "namespace", "n", "", "the namespace (default: the context's)")
	fs.StringVarP(&o.Output, "output", "o", "", "output format: table (default), json or yaml")
	fs.DurationVar(&o.RequestTimeout, "request-timeout", 30*time.Second, "how long to wait for the API server")
	fs.StringVar(&o.LBStackNamespace, "lbstack-namespace", "", "the namespace lbstack's controller and speakers run in (default: found from the speaker DaemonSet)")
	run := cmd.flags(fs, &o)
	fs.Usage = func() {
		fmt.Fprintf(stdio.Err, "kubectl lbstack %s: %s\n\nUsage: kubectl lbstack %s %s[flags]\n\nFlags:\n%s", cmd.name, cmd.short, cmd.name,
			map[bool]string{true: cmd.args + " ", false: ""}[cmd.args != ""], fs.FlagUsages())
	}
	if err := fs.Parse(args[1:]); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			return 0
		}
		fmt.Fprintf(stdio.Err, "kubectl lbstack %s: %v\n", cmd.name, err)
		return 2
	}
	o.namespaceExplicit = fs.Changed("namespace")
	switch o.Output {
	case "", "table", "json", "yaml":
	default:
		fmt.Fprintf(stdio.Err, "kubectl lbstack %s: unknown output format %q: use table, json or yaml\n", cmd.name, o.Output)
		return 2
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	parent := o.Context
	if parent == nil {
		parent = context.Background()
	}
	ctx, stop := signalContext(parent)
	defer stop()
	if err := run(ctx, &o, fs.Args(), stdio); err != nil {
		var u usageError
		if errors.As(err, &u) {
			fmt.Fprintf(stdio.Err, "kubectl lbstack %s: %v\n", cmd.name, err)
			return 2
		}
		fmt.Fprintf(stdio.Err, "Error: %v\n", err)
		return 1
	}
	return 0
}

// usageError is a mistake in the command line (exit code 2).
type usageError struct{ error }

func usagef(format string, args ...any) error { return usageError{fmt.Errorf(format, args...)} }

// noArgs refuses positional arguments.
func noArgs(args []string) error {
	if len(args) > 0 {
		return usagef("unexpected arguments %q", args)
	}
	return nil
}

// timeout bounds one round of reads.
func (o *Options) timeout(ctx context.Context) (context.Context, context.CancelFunc) {
	if o.RequestTimeout <= 0 {
		return context.WithCancel(ctx)
	}
	return context.WithTimeout(ctx, o.RequestTimeout)
}

// Run is Main for the kubectl-lbstack binary.
func Run() int {
	return Main(os.Args[1:], IO{In: os.Stdin, Out: os.Stdout, Err: os.Stderr}, Options{})
}

// joinOr joins non-empty strings, or returns dash when there are none.
func joinOr(parts []string, sep string) string {
	if len(parts) == 0 {
		return "-"
	}
	return strings.Join(parts, sep)
}
