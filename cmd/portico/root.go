package main

import (
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"
)

func newRootCommand() *cobra.Command {
	use := "portico"
	// Installed as kubectl-portico, kubectl runs us as "kubectl portico"; say so in help.
	if strings.HasPrefix(filepath.Base(os.Args[0]), "kubectl-") {
		use = "kubectl portico"
	}
	root := &cobra.Command{
		Use:   use,
		Short: "Portico: a multi-tenant edge platform for Kubernetes",
		Long: `Portico gives every tenant its own edge proxy fleet, declared by an EdgeProxy, and serves
plain Ingress and Gateway API HTTPRoute objects through one normalized TenantRoute.

The same binary runs the operator, the proxy, and the debugging commands.`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.AddCommand(
		newVersionCommand(),
		newOperatorCommand(),
		newProxyCommand(),
		newDiagnoseCommand(),
		newExplainCommand(),
		newDevCommand(),
	)
	return root
}
