package harness

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/envtest"
)

// StartCertManager runs the real cert-manager controller (built from its module into
// bin/control-plane by hack/control-plane.sh, built when missing) against the cluster with its
// default controllers, ingress-shim included, as an admin of the API server — as its Helm chart's
// ClusterRoles would allow. Issuers' resources live in namespace cert-manager. Stop ends it.
func (c *Cluster) StartCertManager(ctx context.Context) (*Process, error) {
	bin, err := controlPlaneBinary("cert-manager-controller")
	if err != nil {
		return nil, err
	}
	user, err := c.env.AddUser(envtest.User{Name: "cert-manager", Groups: []string{"system:masters"}}, c.Config)
	if err != nil {
		return nil, err
	}
	kubeconfig, err := user.KubeConfig()
	if err != nil {
		return nil, err
	}
	path := filepath.Join(c.Opts.StateDir, "cert-manager.kubeconfig")
	if err := os.WriteFile(path, kubeconfig, 0o600); err != nil {
		return nil, err
	}
	if err := c.EnsureNamespace(ctx, "cert-manager"); err != nil {
		return nil, err
	}
	port, err := freeLoopbackPort()
	if err != nil {
		return nil, err
	}
	c.logf("starting cert-manager-controller")
	p, err := c.StartProcess("cert-manager", []string{bin, "--kubeconfig=" + path, "--leader-elect=false",
		"--cluster-resource-namespace=cert-manager", "--enable-certificate-owner-ref=true",
		"--metrics-listen-address=127.0.0.1:" + strconv.Itoa(port), "--v=1"}, nil)
	if err != nil {
		return nil, err
	}
	select {
	case <-p.Done():
		return p, fmt.Errorf("cert-manager-controller exited at once; last lines:\n%s", p.Tail(20))
	case <-time.After(time.Second):
	}
	return p, nil
}

func freeLoopbackPort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
