// Command dev runs the whole Portico platform locally, in the foreground (`make dev`): a real
// kube-apiserver, etcd and kube-controller-manager, the e2e harness playing kubelet and load
// balancer, the operator as a process, and examples/quickstart applied. It prints the curl and
// kubectl commands that work and shuts everything down on Ctrl-C. Needs root (network namespaces).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"github.com/portico-dev/portico/internal/testenv"
	"github.com/portico-dev/portico/test/e2e/harness"
)

func main() {
	harness.RunRoleIfRequested() // the quickstart's backend pods are this binary
	root := testenv.RepoRoot()
	portico := flag.String("portico", filepath.Join(root, "bin", "portico"), "the portico binary (make build)")
	stateDir := flag.String("state-dir", filepath.Join(root, "bin", "dev"), "logs, kubeconfig and pod volumes (emptied at start)")
	examples := flag.String("apply", filepath.Join(root, "examples", "quickstart"), "manifests to apply once the platform is up")
	flag.Parse()
	if err := run(*portico, *stateDir, *examples); err != nil {
		fmt.Fprintln(os.Stderr, "dev:", err)
		os.Exit(1)
	}
}

func run(portico, stateDir, examples string) error {
	if _, err := os.Stat(portico); err != nil {
		return fmt.Errorf("%s: %w (run `make build`)", portico, err)
	}
	ctrl.SetLogger(zap.New(zap.WriteTo(discard{})))
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := os.RemoveAll(stateDir); err != nil {
		return err
	}
	echo, err := harness.EchoImageSpec()
	if err != nil {
		return err
	}
	const operatorNS = "portico-system"
	c, err := harness.Start(ctx, harness.Options{
		Name:     "pdev",
		Subnet:   netip.MustParsePrefix("198.51.100.128/25"),
		StateDir: stateDir,
		Images: map[string]harness.Image{
			harness.PorticoImageRepository: harness.PorticoImage(portico),
			harness.AgnhostImage:           echo,
			harness.EchoImage:              echo,
		},
	})
	if err != nil {
		return err
	}
	defer func() {
		fmt.Fprintln(os.Stderr, "dev: shutting down")
		c.Stop()
	}()
	if _, err := c.StartOperator(ctx, harness.OperatorOptions{Binary: portico, Namespace: operatorNS}); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "dev: applying %s\n", examples)
	if err := c.ApplyPath(ctx, examples); err != nil {
		return err
	}
	addr, err := waitServed(ctx, c)
	if err != nil {
		c.Dump(os.Stderr)
		return err
	}
	fmt.Printf(`
Portico is up. The quickstart Ingress (app/web-api, class nginx) is served by the proxy of EdgeProxy
"quickstart" at %[1]s:

  curl --resolve api.example.com:80:%[1]s http://api.example.com/

Look around:

  kubectl --kubeconfig %[2]s get edgeproxies,tr,ingress -A
  kubectl --kubeconfig %[2]s get pods -A -o wide

Logs: %[3]s/logs (operator, kube-controller-manager) and %[3]s/pods (proxies, backends).
Ctrl-C stops everything.
`, addr, c.Kubeconfig, stateDir)
	<-ctx.Done()
	return nil
}

// waitServed waits until the Ingress carries the proxy's load-balancer address and a request
// through it reaches the backend.
func waitServed(ctx context.Context, c *harness.Cluster) (string, error) {
	var addr string
	fmt.Fprintln(os.Stderr, "dev: waiting for the proxy to serve api.example.com")
	err := wait.PollUntilContextTimeout(ctx, 500*time.Millisecond, 3*time.Minute, true, func(ctx context.Context) (bool, error) {
		ing := &networkingv1.Ingress{}
		if err := c.Client.Get(ctx, types.NamespacedName{Namespace: "app", Name: "web-api"}, ing); err != nil {
			return false, nil
		}
		lb := c.LoadBalancerAddress("quickstart-edge", "portico-quickstart")
		if lb == "" || len(ing.Status.LoadBalancer.Ingress) == 0 || ing.Status.LoadBalancer.Ingress[0].IP != lb {
			return false, nil
		}
		addr = lb
		client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{Proxy: nil,
			DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
				return (&net.Dialer{}).DialContext(ctx, network, net.JoinHostPort(lb, "80"))
			}}}
		resp, err := client.Get("http://api.example.com/")
		if err != nil {
			return false, nil
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK, nil
	})
	if err != nil {
		return "", errors.New("api.example.com was not served within 3 minutes; objects and logs follow")
	}
	return addr, nil
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }
