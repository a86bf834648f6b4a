package kubectlplugin

import (
	"context"
	"fmt"
	"io"
	"os"

	"github.com/spf13/pflag"

	"github.com/lbstack/lbstack/internal/migrate"
)

func migrateFlags(fs *pflag.FlagSet, o *Options) func(context.Context, *Options, []string, IO) error {
	var files []string
	var fromCluster bool
	var metallbNamespace, name, class, secretNamespace string
	fs.StringArrayVarP(&files, "filename", "f", nil, "a file of MetalLB configuration (legacy ConfigMap, its config document, or metallb.io CRs); - reads standard input; repeatable")
	fs.BoolVar(&fromCluster, "from-cluster", false, "read MetalLB's CRs and legacy ConfigMap from the cluster")
	fs.StringVar(&metallbNamespace, "metallb-namespace", migrate.DefaultMetalLBNamespace, "the namespace MetalLB runs in (with --from-cluster)")
	fs.StringVar(&name, "name", migrate.DefaultStackName, "the name of the LoadBalancerStack to write")
	fs.StringVar(&class, "load-balancer-class", "", "spec.loadBalancerClass of the stack: the class MetalLB served (its --lb-class), none by default")
	fs.StringVar(&secretNamespace, "secret-namespace", migrate.DefaultSecretNamespace, "where the Secrets made for MetalLB's plain-text BGP passwords go (lbstack's namespace)")
	return func(ctx context.Context, o *Options, args []string, stdio IO) error {
		if err := noArgs(args); err != nil {
			return err
		}
		if len(files) == 0 && !fromCluster {
			return usagef("say where MetalLB's configuration is: -f FILE (repeatable, - for standard input) or --from-cluster")
		}
		in := &migrate.Input{}
		for _, f := range files {
			var data []byte
			var err error
			if f == "-" {
				data, err = io.ReadAll(stdio.In)
			} else {
				data, err = os.ReadFile(f)
			}
			if err != nil {
				return fmt.Errorf("reading %s: %w", f, err)
			}
			got, err := migrate.Parse(data)
			if err != nil {
				return fmt.Errorf("%s: %w", f, err)
			}
			in.Append(got)
		}
		if fromCluster {
			if err := o.connect(); err != nil {
				return err
			}
			ctx, cancel := o.timeout(ctx)
			defer cancel()
			got, err := migrate.FromCluster(ctx, o.client, metallbNamespace)
			if err != nil {
				return o.read("read MetalLB's configuration in namespace "+metallbNamespace, err)
			}
			in.Append(got)
		}
		res, err := migrate.ConvertAll(in, migrate.Options{Name: name, LoadBalancerClass: class, SecretNamespace: secretNamespace, MetalLBNamespace: metallbNamespace})
		if err != nil {
			return err
		}
		findings := res.Findings
		out, err := migrate.Marshal(res.Stack, findings, res.Extra)
		if err != nil {
			return err
		}
		if _, err := stdio.Out.Write(out); err != nil {
			return err
		}
		if len(findings) > 0 {
			fmt.Fprintf(stdio.Err, "kubectl lbstack migrate: %d findings, listed at the top of the output: review them before applying\n", len(findings))
		}
		return nil
	}
}
