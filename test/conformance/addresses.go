package main

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/util/wait"
	"sigs.k8s.io/controller-runtime/pkg/client"
	gwapiv1 "sigs.k8s.io/gateway-api/apis/v1"
)

// baseGateways are the Gateways of the suite's base manifests.
var baseGateways = []string{"same-namespace", "same-namespace-with-https-listener", "all-namespaces", "backend-namespaces"}

// checkGatewayAddresses waits until the base Gateways are Programmed and checks what the suite
// relies on: each has an address of its own in status.addresses, and every listener port accepts
// TCP connections there. It returns a one-line verdict.
func checkGatewayAddresses(ctx context.Context, c client.Client) error {
	var gws []gwapiv1.Gateway
	err := wait.PollUntilContextTimeout(ctx, time.Second, 3*time.Minute, true, func(ctx context.Context) (bool, error) {
		gws = gws[:0]
		for _, name := range baseGateways {
			gw := gwapiv1.Gateway{}
			if err := c.Get(ctx, client.ObjectKey{Namespace: "gateway-conformance-infra", Name: name}, &gw); err != nil {
				return false, nil
			}
			if !meta.IsStatusConditionTrue(gw.Status.Conditions, string(gwapiv1.GatewayConditionProgrammed)) || len(gw.Status.Addresses) == 0 {
				return false, nil
			}
			gws = append(gws, gw)
		}
		return true, nil
	})
	if err != nil {
		return fmt.Errorf("the base Gateways were not all Programmed with an address: %w", err)
	}
	owner := map[string]string{}
	var report []string
	for _, gw := range gws {
		for _, a := range gw.Status.Addresses {
			if prev, dup := owner[a.Value]; dup {
				return fmt.Errorf("Gateways %s and %s share the address %s", prev, gw.Name, a.Value)
			}
			owner[a.Value] = gw.Name
		}
		addr := gw.Status.Addresses[0].Value
		var ports []string
		for _, l := range gw.Spec.Listeners {
			p := strconv.Itoa(int(l.Port))
			if strings.Contains(strings.Join(ports, ","), p) {
				continue
			}
			conn, err := net.DialTimeout("tcp", net.JoinHostPort(addr, p), 3*time.Second)
			if err != nil {
				return fmt.Errorf("Gateway %s: listener port %s at %s: %w", gw.Name, p, addr, err)
			}
			conn.Close()
			ports = append(ports, p)
		}
		report = append(report, fmt.Sprintf("%s=%s:%s", gw.Name, addr, strings.Join(ports, ",")))
	}
	logf("base Gateways have addresses of their own, every listener port open: %s", strings.Join(report, " "))
	return nil
}
