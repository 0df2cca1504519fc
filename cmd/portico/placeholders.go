package main

import (
	"errors"

	"github.com/spf13/cobra"
)

// errDevNeedsCheckout: the local platform builds kube-apiserver, etcd, kube-controller-manager and
// cert-manager from their Go modules and runs the e2e harness (test/e2e), none of which belongs in
// the product binary, so `make dev` in a checkout is the one way to run it.
var errDevNeedsCheckout = errors.New("the local platform runs from a Portico checkout: `git clone` it and run `make dev` " +
	"(it builds the local control plane on first use and prints the curl and kubectl commands to try); " +
	"to install into a real cluster run `make deploy` with KUBECONFIG set, or use the Helm chart in charts/portico")

func newDevCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "dev",
		Short: "Run the whole platform on a local control plane (points at `make dev` in a checkout)",
		RunE:  func(*cobra.Command, []string) error { return errDevNeedsCheckout },
	}
}
