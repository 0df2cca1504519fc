package harness

import (
	"context"
	"fmt"
	"os"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/portico-dev/portico/controllers/snapshot"
)

// Portico's own image: the operator renders proxy Deployments with it, the harness runs the freshly
// built portico binary for it.
const (
	PorticoImageRepository = "ghcr.io/portico-dev/portico"
	// SnapshotPort is the operator's snapshot gRPC port (the chart's snapshot Service port).
	SnapshotPort = 18000
)

// PorticoImage runs containers of Portico's image with binary. Nothing is added to the pod: the
// rendered proxy Deployment mounts the operator's CA bundle from the ConfigMap the operator applies
// in the proxy namespace (render.OperatorCAName), which the harness bind-mounts like any ConfigMap
// volume, so the container runs exactly as rendered.
func PorticoImage(binary string) Image {
	return Image{
		Entrypoint: []string{binary},
		Commands:   map[string]string{"/portico": binary, "/usr/local/bin/portico": binary},
	}
}

// OperatorOptions start `portico operator` as a host process.
type OperatorOptions struct {
	Binary    string // the portico binary
	Namespace string // --operator-namespace (created when missing); default portico-system
	// ProxyImage is --proxy-image; default PorticoImageRepository + ":dev".
	ProxyImage string
	ExtraArgs  []string
	// Name of the process (and of its log file); default "operator". Replicas need their own.
	Name string
	// User, when set, runs the operator as its own API user (a client certificate, group
	// system:masters) instead of the harness's admin, so its requests carry that username in the
	// audit log.
	User string
}

// OperatorAddress is the snapshot Service name proxies dial (as the Helm chart names it). The
// harness maps it to the host's gateway address in every pod's /etc/hosts.
func OperatorAddress(ns string) string {
	return fmt.Sprintf("portico-snapshots.%s.svc:%d", ns, SnapshotPort)
}

// StartOperator runs the operator exactly as in-cluster (leader election, the chart's arguments),
// pointed at the apiserver by kubeconfig, serving snapshots on the gateway address, and waits until
// it has created its CA Secret.
func (c *Cluster) StartOperator(ctx context.Context, o OperatorOptions) (*Process, error) {
	if o.Namespace == "" {
		o.Namespace = "portico-system"
	}
	if o.ProxyImage == "" {
		o.ProxyImage = PorticoImageRepository + ":dev"
	}
	if err := c.EnsureNamespace(ctx, o.Namespace); err != nil {
		return nil, err
	}
	addr := OperatorAddress(o.Namespace)
	c.AddHostAlias(addr[:len(addr)-len(fmt.Sprintf(":%d", SnapshotPort))], c.Gateway.String())
	kubeconfig := c.Kubeconfig
	if o.User != "" {
		var err error
		if kubeconfig, err = c.UserKubeconfig(o.User, "system:masters"); err != nil {
			return nil, err
		}
	}
	args := append([]string{o.Binary, "operator",
		"--kubeconfig=" + kubeconfig,
		"--leader-elect",
		"--operator-namespace=" + o.Namespace,
		"--proxy-image=" + o.ProxyImage,
		fmt.Sprintf("--snapshot-bind-address=%s:%d", c.Gateway, SnapshotPort),
		"--operator-address=" + addr,
		"--metrics-bind-address=0",
		"--health-probe-bind-address=0",
		"--zap-log-level=info",
	}, o.ExtraArgs...)
	env := append(os.Environ(), "POD_NAMESPACE="+o.Namespace)
	if o.Name == "" {
		o.Name = "operator"
	}
	p, err := c.StartProcess(o.Name, args, env)
	if err != nil {
		return nil, err
	}
	err = wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, 90*time.Second, true, func(ctx context.Context) (bool, error) {
		if isDone(p) {
			return false, fmt.Errorf("operator exited; last lines:\n%s", p.Tail(30))
		}
		_, err := c.Clientset.CoreV1().Secrets(o.Namespace).Get(ctx, snapshot.CASecretName, metav1.GetOptions{})
		return err == nil, nil
	})
	if err != nil {
		return p, fmt.Errorf("operator did not create its CA Secret: %w", err)
	}
	return p, nil
}

// EnsureNamespace creates a namespace unless it exists.
func (c *Cluster) EnsureNamespace(ctx context.Context, name string) error {
	err := c.Client.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}})
	if apierrors.IsAlreadyExists(err) {
		return nil
	}
	return err
}

// AddHostAlias adds "ip name" to the /etc/hosts of pods started from now on.
func (c *Cluster) AddHostAlias(name, ip string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.Opts.HostAliases == nil {
		c.Opts.HostAliases = map[string]string{}
	}
	c.Opts.HostAliases[name] = ip
}

func (c *Cluster) hostAliases() map[string]string {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := map[string]string{}
	for k, v := range c.Opts.HostAliases {
		out[k] = v
	}
	return out
}
