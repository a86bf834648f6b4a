package main

import (
	"context"
	"flag"
	"time"

	"github.com/go-logr/logr"

	"github.com/lbstack/lbstack/controllers"
	"github.com/lbstack/lbstack/internal/cli"
	"github.com/lbstack/lbstack/internal/operator"
	"github.com/lbstack/lbstack/speaker"
)

func operatorCommand() cli.Command {
	return cli.Command{
		Name:  "operator",
		Short: "render LoadBalancerStacks into the controller, the speakers and their configuration; serve the admission webhooks",
		Flags: func(fs *flag.FlagSet) func(context.Context, logr.Logger) error {
			var o operator.Options
			o.AddFlags(fs)
			return func(ctx context.Context, log logr.Logger) error { return operator.Run(ctx, o, log) }
		},
	}
}

func controllerCommand() cli.Command {
	return cli.Command{
		Name:  "controller",
		Short: "assign external IPs from the pools to Services of type LoadBalancer",
		Flags: func(fs *flag.FlagSet) func(context.Context, logr.Logger) error {
			var m cli.ManagerOptions
			m.AddFlags(fs, ":7472", ":7473", true)
			m.LeaderElectionID = "lbstack-controller.lbstack.io"
			var o controllers.ControllerOptions
			fs.IntVar(&o.Workers, "workers", 8, "concurrent Service reconciles (allocation is serialized; API writes are not)")
			fs.DurationVar(&o.PoolStatusInterval, "pool-status-interval", time.Second, "how often IPAddressPool status counters are written at most")
			return func(ctx context.Context, log logr.Logger) error {
				cfg, err := m.RESTConfig()
				if err != nil {
					return err
				}
				mgr, err := m.NewManager(cfg, nil)
				if err != nil {
					return err
				}
				if err := controllers.SetupController(mgr, o); err != nil {
					return err
				}
				log.Info("Starting controller", "workers", o.Workers)
				return mgr.Start(ctx)
			}
		},
	}
}

func speakerCommand() cli.Command {
	return cli.Command{
		Name:  "speaker",
		Short: "announce Service IPs from this node over ARP/NDP or BGP",
		Flags: func(fs *flag.FlagSet) func(context.Context, logr.Logger) error {
			var o speaker.Options
			o.AddFlags(fs)
			return func(ctx context.Context, log logr.Logger) error { return speaker.Run(ctx, o, log) }
		},
	}
}
