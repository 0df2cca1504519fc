package main

import (
	"errors"

	"github.com/spf13/cobra"
)

// Subcommands whose issues have not landed yet. Each says so plainly instead of pretending.
var errNotYet = errors.New("not available in this build yet")

func placeholder(use, short string) *cobra.Command {
	return &cobra.Command{
		Use:   use,
		Short: short + " (not available yet)",
		RunE:  func(*cobra.Command, []string) error { return errNotYet },
	}
}

func newDiagnoseCommand() *cobra.Command {
	return placeholder("diagnose", "Walk the debugging checklist for an Ingress, HTTPRoute, TenantRoute, host or EdgeProxy")
}

func newExplainCommand() *cobra.Command {
	return placeholder("explain", "Explain how a request would be routed")
}

func newDevCommand() *cobra.Command {
	return placeholder("dev", "Run the whole platform on a local control plane")
}
