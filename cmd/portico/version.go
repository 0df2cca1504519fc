package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/portico-dev/portico/internal/version"
)

func newVersionCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version of this binary",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			_, err := fmt.Fprintln(cmd.OutOrStdout(), "portico", version.String())
			return err
		},
	}
}
