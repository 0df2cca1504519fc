package main

import (
	"strings"
	"testing"
)

func TestOperatorFlags(t *testing.T) {
	out, err := run(t, "operator", "--help")
	if err != nil {
		t.Fatal(err)
	}
	for _, flag := range []string{
		"--kubeconfig", "--metrics-bind-address", "--health-probe-bind-address", "--leader-elect",
		"--proxy-image", "--operator-namespace", "--monitoring-namespace", "--zap-log-level",
	} {
		if !strings.Contains(out, flag+" ") {
			t.Errorf("operator --help does not list %s:\n%s", flag, out)
		}
	}
	if !strings.Contains(out, `"ghcr.io/portico-dev/portico:`) {
		t.Errorf("--proxy-image should default to the operator's own image:\n%s", out)
	}
}

func TestOperatorRefusesArguments(t *testing.T) {
	if _, err := run(t, "operator", "extra"); err == nil {
		t.Fatal("want an error for a positional argument")
	}
}
