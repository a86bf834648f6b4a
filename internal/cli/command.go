package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	stdlog "log"
	"os/signal"
	"sort"
	"strings"
	"syscall"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/klog/v2"
	ctrl "sigs.k8s.io/controller-runtime"
	crmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"

	"github.com/lbstack/lbstack/internal/version"
)

// Command is one subcommand of the lbstack binary.
type Command struct {
	// Name is the word that selects the command.
	Name string
	// Short is the one-line description shown in the usage.
	Short string
	// Flags registers the command's flags and returns the function that
	// runs it once the flags are parsed. The function runs until ctx is
	// cancelled (SIGTERM or SIGINT) or it fails.
	Flags func(fs *flag.FlagSet) func(ctx context.Context, log logr.Logger) error
}

// Main dispatches args to the named command (or prints the version on
// stdout for "version") and returns the process exit code: 0 on success
// or clean shutdown, 1 on failure, 2 on bad usage.
func Main(args []string, stdout, stderr io.Writer, commands []Command) int {
	sort.Slice(commands, func(i, j int) bool { return commands[i].Name < commands[j].Name })
	usage := func() {
		fmt.Fprintf(stderr, "lbstack: a load balancer for bare-metal Kubernetes clusters\n\nUsage: lbstack <command> [flags]\n\nCommands:\n")
		for _, c := range commands {
			fmt.Fprintf(stderr, "  %-12s %s\n", c.Name, c.Short)
		}
		fmt.Fprintf(stderr, "  %-12s %s\n", "version", "print the version of lbstack")
		fmt.Fprintf(stderr, "\nRun 'lbstack <command> --help' for the flags of a command.\n")
	}
	if len(args) == 0 {
		usage()
		return 2
	}
	if args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		usage()
		return 0
	}
	if args[0] == "version" || args[0] == "--version" {
		if len(args) > 1 {
			fmt.Fprintf(stderr, "lbstack version: unexpected arguments %q\n", args[1:])
			return 2
		}
		fmt.Fprintln(stdout, version.String())
		return 0
	}
	var cmd *Command
	for i := range commands {
		if commands[i].Name == args[0] {
			cmd = &commands[i]
		}
	}
	if cmd == nil {
		fmt.Fprintf(stderr, "lbstack: unknown command %q\n\n", args[0])
		usage()
		return 2
	}

	fs := flag.NewFlagSet("lbstack "+cmd.Name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	var logOpts LogOptions
	logOpts.AddFlags(fs)
	run := cmd.Flags(fs)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "lbstack %s: %s\n\nUsage: lbstack %s [flags]\n\nFlags:\n", cmd.Name, cmd.Short, cmd.Name)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "lbstack %s: unexpected arguments %q\n", cmd.Name, fs.Args())
		return 2
	}
	log, err := logOpts.NewLogger()
	if err != nil {
		fmt.Fprintf(stderr, "lbstack %s: %v\n", cmd.Name, err)
		return 2
	}
	log = log.WithValues("component", cmd.Name)
	// lbstack_build_info on the component's metrics endpoint. A second
	// Main in one process (tests) finds it registered already.
	if err := crmetrics.Registry.Register(version.BuildInfo(cmd.Name)); err != nil && !errors.As(err, new(prometheus.AlreadyRegisteredError)) {
		fmt.Fprintf(stderr, "lbstack %s: %v\n", cmd.Name, err)
		return 1
	}
	// controller-runtime and client-go log through these.
	ctrl.SetLogger(log)
	klog.SetLogger(log)
	// So does the standard library's logger (net/http's server errors,
	// such as a TLS handshake cut short by the shutdown): every line JSON.
	stdlog.SetFlags(0)
	stdlog.SetOutput(stdlibWriter{log.WithName("stdlib")})

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	ctx = logr.NewContext(ctx, log)
	if err := run(ctx, log); err != nil {
		log.Error(err, "Exiting on error")
		return 1
	}
	log.Info("Stopped")
	return 0
}

// stdlibWriter turns the standard library logger's lines into log entries.
type stdlibWriter struct{ log logr.Logger }

func (w stdlibWriter) Write(p []byte) (int, error) {
	w.log.Info(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}
