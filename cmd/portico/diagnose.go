package main

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/portico-dev/portico/diagnose"
)

type diagnoseFlags struct {
	namespace, output string
	probe             diagnose.ProbeOptions
}

func newDiagnoseCommand() *cobra.Command {
	f := &diagnoseFlags{}
	cmd := &cobra.Command{
		Use:   "diagnose",
		Short: "Walk the debugging checklist for an Ingress, HTTPRoute, TenantRoute, host or EdgeProxy",
		Long: `Debug from backend to edge: backend Service, port and ready endpoints; class → controller →
EdgeProxy; namespace and hostname admission; hostname ownership; TenantRoute conditions; certificate
and Secret; the EdgeProxy's replicas and external address; and with --probe a real request through
the proxy with the right Host and SNI. Each step is ok, WARN or FAIL with its evidence, likely cause
and fix. Steps your RBAC does not allow are reported as not checked.

Exit code: 0 healthy, 1 a step failed, 2 warnings only.`,
	}
	pf := cmd.PersistentFlags()
	pf.StringVarP(&f.namespace, "namespace", "n", "", "namespace of the object (default: the kubeconfig context's)")
	pf.StringVarP(&f.output, "output", "o", "text", "output format: text or json")
	pf.BoolVar(&f.probe.Enabled, "probe", false, "send a real request through the proxy with the route's Host and SNI")
	pf.StringVar(&f.probe.HTTPAddress, "probe-address", "", "host:port to probe over HTTP instead of the EdgeProxy's address")
	pf.StringVar(&f.probe.HTTPSAddress, "probe-https-address", "", "host:port to probe over HTTPS instead of the EdgeProxy's address")
	pf.StringVar(&f.probe.Path, "probe-path", "/", "path of the probe request")
	addKubeconfigFlag(cmd)

	named := func(use, kind string, run func(context.Context, client.Reader, types.NamespacedName, diagnose.Options) (*diagnose.Report, error)) *cobra.Command {
		return &cobra.Command{
			Use: use + " NAME", Short: "Diagnose a " + kind, Args: cobra.ExactArgs(1),
			RunE: func(cmd *cobra.Command, args []string) error {
				ns := f.namespace
				if ns == "" {
					ns = currentNamespace(cmd)
				}
				return runDiagnose(cmd, f, func(ctx context.Context, c client.Reader, o diagnose.Options) (*diagnose.Report, error) {
					return run(ctx, c, types.NamespacedName{Namespace: ns, Name: args[0]}, o)
				})
			},
		}
	}
	cmd.AddCommand(
		named("ingress", "networking.k8s.io Ingress", diagnose.Ingress),
		named("httproute", "Gateway API HTTPRoute", diagnose.HTTPRoute),
		named("tenantroute", "TenantRoute", diagnose.TenantRoute),
		&cobra.Command{Use: "host HOSTNAME", Short: "Diagnose a hostname: the routes claiming it and the one serving it", Args: cobra.ExactArgs(1),
			RunE: func(cmd *cobra.Command, args []string) error {
				return runDiagnose(cmd, f, func(ctx context.Context, c client.Reader, o diagnose.Options) (*diagnose.Report, error) {
					return diagnose.Host(ctx, c, args[0], o)
				})
			}},
		&cobra.Command{Use: "edgeproxy NAME", Short: "Diagnose an EdgeProxy's fleet and its routes", Args: cobra.ExactArgs(1),
			RunE: func(cmd *cobra.Command, args []string) error {
				return runDiagnose(cmd, f, func(ctx context.Context, c client.Reader, o diagnose.Options) (*diagnose.Report, error) {
					return diagnose.EdgeProxy(ctx, c, args[0], o)
				})
			}},
	)
	return cmd
}

func runDiagnose(cmd *cobra.Command, f *diagnoseFlags, run func(context.Context, client.Reader, diagnose.Options) (*diagnose.Report, error)) error {
	if f.output != "text" && f.output != "json" {
		return fmt.Errorf("--output must be text or json, not %q", f.output)
	}
	c, err := kubeClient()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(cmd.Context(), 60*time.Second)
	defer cancel()
	rep, err := run(ctx, c, diagnose.Options{Probe: f.probe})
	if err != nil {
		return err
	}
	if f.output == "json" {
		err = rep.WriteJSON(cmd.OutOrStdout())
	} else {
		err = rep.WriteText(cmd.OutOrStdout())
	}
	if err != nil {
		return err
	}
	if code := rep.ExitCode(); code != 0 {
		os.Exit(code)
	}
	return nil
}
