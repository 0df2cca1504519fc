package main

import (
	"net"
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

func TestSnapshotCertificateNamesTheOperatorAddress(t *testing.T) {
	if got := snapshotDNSNames("portico-snapshots.portico-system.svc:18000"); len(got) != 2 || got[1] != "portico-snapshots.portico-system.svc" {
		t.Fatalf("DNS names %v", got)
	}
	ips := snapshotIPs("198.51.100.1:18000")
	if len(ips) != 3 || !ips[2].Equal(net.ParseIP("198.51.100.1")) {
		t.Fatalf("IPs %v: want loopback and 198.51.100.1", ips)
	}
	if len(snapshotIPs("portico-snapshots:18000")) != 2 || len(snapshotDNSNames("198.51.100.1:18000")) != 1 {
		t.Fatal("a DNS name must not become an IP SAN, nor an IP a DNS SAN")
	}
}
