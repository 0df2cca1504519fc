// Command portico is the one binary of Portico: operator, proxy, and the kubectl plugin
// (installed as kubectl-portico). Subcommands live one per file and hold no logic.
package main

import (
	"fmt"
	"os"
)

func main() {
	if err := newRootCommand().Execute(); err != nil {
		fmt.Fprintln(os.Stderr, "error:", err)
		os.Exit(1)
	}
}
