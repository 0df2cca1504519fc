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

func newDevCommand() *cobra.Command {
	return placeholder("dev", "Run the whole platform on a local control plane")
}
