package main

import (
	"flag"

	"github.com/spf13/cobra"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/config"

	"github.com/portico-dev/portico/diagnose"
)

// addKubeconfigFlag adds controller-runtime's own --kubeconfig flag (the same one the operator
// takes) to a command and its subcommands.
func addKubeconfigFlag(cmd *cobra.Command) {
	gofs := flag.NewFlagSet(cmd.Name(), flag.ContinueOnError)
	config.RegisterFlags(gofs)
	cmd.PersistentFlags().AddGoFlagSet(gofs)
}

// kubeClient is a client with the user's kubeconfig and credentials (controller-runtime's loader:
// --kubeconfig, $KUBECONFIG, ~/.kube/config, in-cluster).
func kubeClient() (client.Client, error) {
	cfg, err := config.GetConfig()
	if err != nil {
		return nil, err
	}
	return client.New(cfg, client.Options{Scheme: diagnose.Scheme()})
}

// currentNamespace is the kubeconfig context's namespace, as kubectl uses it, else "default".
func currentNamespace(cmd *cobra.Command) string {
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	if f := cmd.Flag("kubeconfig"); f != nil && f.Value.String() != "" {
		rules.ExplicitPath = f.Value.String()
	}
	ns, _, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, &clientcmd.ConfigOverrides{}).Namespace()
	if err != nil || ns == "" {
		return "default"
	}
	return ns
}
