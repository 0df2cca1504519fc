package main

import (
	"time"

	"flag"
	"fmt"
	"net"
	"os"

	"github.com/spf13/cobra"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/config"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/leaderelection"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"github.com/portico-dev/portico/controllers"
	"github.com/portico-dev/portico/controllers/snapshot"
	"github.com/portico-dev/portico/internal/leasefence"
	"github.com/portico-dev/portico/internal/version"
)

// proxyImageRepository is where the one Portico image is published; the proxy runs the operator's
// own version of it unless --proxy-image says otherwise.
const proxyImageRepository = "ghcr.io/portico-dev/portico"

type operatorFlags struct {
	metricsAddr, probeAddr string
	leaderElect            bool
	// Leader election timing: a leader that crashes is replaced once its lease expires, within
	// leaseDuration plus about two retry periods (client-go adds up to 20 % jitter): ~12–15 s by
	// default; one that stops cleanly releases the lease (ReleaseOnCancel) and a standby takes it
	// at its next attempt, within ~1.2 s.
	leaseDuration, renewDeadline, retryPeriod time.Duration
	proxyImage                                string
	operatorNamespace                         string
	monitoringNamespace                       string
	snapshotBindAddress                       string
	operatorAddress                           string
	zap                                       zap.Options
}

func newOperatorCommand() *cobra.Command {
	f := operatorFlags{zap: zap.Options{Development: false}}
	cmd := &cobra.Command{
		Use:   "operator",
		Short: "Run the Portico operator",
		Long: `Run the Portico operator: it provisions every EdgeProxy's proxy fleet and admits TenantRoutes.

Out of a cluster, --kubeconfig (or $KUBECONFIG) selects the cluster.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return runOperator(cmd, f) },
	}
	fs := cmd.Flags()
	fs.StringVar(&f.metricsAddr, "metrics-bind-address", ":8080", `address of the Prometheus metrics endpoint ("0" disables it)`)
	fs.StringVar(&f.probeAddr, "health-probe-bind-address", ":8081", "address of /healthz and /readyz")
	fs.BoolVar(&f.leaderElect, "leader-elect", false, "elect a leader among operator replicas; only the leader reconciles")
	fs.DurationVar(&f.leaseDuration, "leader-elect-lease-duration", 12*time.Second, "how long a leader's lease lasts without renewal (a crashed leader is replaced after it)")
	fs.DurationVar(&f.renewDeadline, "leader-elect-renew-deadline", 8*time.Second, "how long the leader retries renewing before it gives up leadership (less than the lease duration)")
	fs.DurationVar(&f.retryPeriod, "leader-elect-retry-period", time.Second, "how often candidates try to acquire and the leader renews")
	fs.StringVar(&f.proxyImage, "proxy-image", proxyImageRepository+":"+version.Version,
		"image of the proxy fleets unless an EdgeProxy sets spec.deployment.image (the operator's own image)")
	fs.StringVar(&f.operatorNamespace, "operator-namespace", envOr("POD_NAMESPACE", "portico-system"),
		"namespace the operator runs in; proxies may reach it through their NetworkPolicy")
	fs.StringVar(&f.monitoringNamespace, "monitoring-namespace", "monitoring",
		`namespace allowed to scrape the proxies' admin port ("" allows none)`)
	fs.StringVar(&f.snapshotBindAddress, "snapshot-bind-address", snapshot.DefaultBindAddress,
		`address of the gRPC snapshot server proxies connect to (every replica listens, the leader serves; "0" disables config delivery)`)
	fs.StringVar(&f.operatorAddress, "operator-address", "",
		"host:port proxies reach the snapshot server at (the snapshot Service); passed to them as --operator-address and put in the server certificate")
	// --kubeconfig is controller-runtime's own flag; zap adds --zap-log-level and friends.
	gofs := flag.NewFlagSet("operator", flag.ContinueOnError)
	config.RegisterFlags(gofs)
	f.zap.BindFlags(gofs)
	fs.AddGoFlagSet(gofs)
	return cmd
}

func runOperator(cmd *cobra.Command, f operatorFlags) error {
	ctrl.SetLogger(zap.New(zap.UseFlagOptions(&f.zap)))
	setupLog := ctrl.Log.WithName("setup")

	cfg, err := config.GetConfig()
	if err != nil {
		return fmt.Errorf("kubernetes client configuration: %w", err)
	}
	scheme, err := controllers.NewScheme()
	if err != nil {
		return err
	}
	opts := ctrl.Options{
		Scheme:                        scheme,
		Cache:                         controllers.CacheOptions(),
		Metrics:                       metricsserver.Options{BindAddress: f.metricsAddr},
		HealthProbeBindAddress:        f.probeAddr,
		LeaderElection:                f.leaderElect,
		LeaderElectionID:              "operator.edge.portico.dev",
		LeaderElectionNamespace:       f.operatorNamespace,
		LeaderElectionReleaseOnCancel: true,
		LeaseDuration:                 &f.leaseDuration,
		RenewDeadline:                 &f.renewDeadline,
		RetryPeriod:                   &f.retryPeriod,
	}
	var fence *leasefence.Fence
	if f.leaderElect {
		// A leader paused past its lease (frozen, partitioned) must not finish writes once another
		// replica leads: the manager's client refuses writes while the last renewal is older than
		// the renew deadline (internal/leasefence).
		fence = leasefence.New(f.renewDeadline)
		lock, err := fence.NewLock(cfg, leaderelection.Options{LeaderElection: true,
			LeaderElectionID: opts.LeaderElectionID, LeaderElectionNamespace: opts.LeaderElectionNamespace, RenewDeadline: f.renewDeadline})
		if err != nil {
			return err
		}
		opts.LeaderElectionResourceLockInterface = lock
		opts.NewClient = func(config *rest.Config, o client.Options) (client.Client, error) {
			c, err := client.New(config, o)
			if err != nil {
				return nil, err
			}
			return fence.Client(c), nil
		}
	}
	mgr, err := ctrl.NewManager(cfg, opts)
	if err != nil {
		return fmt.Errorf("create manager: %w", err)
	}
	if fence != nil {
		fence.BindRecorder(mgr)
	}
	ctx := ctrl.SetupSignalHandler()
	ctrlOpts := controllers.Options{
		ProxyImage:          f.proxyImage,
		OperatorNamespace:   f.operatorNamespace,
		OperatorPodLabels:   controllers.DefaultOperatorPodLabels(),
		MonitoringNamespace: f.monitoringNamespace,
		OperatorAddress:     f.operatorAddress,
	}
	if f.snapshotBindAddress != "0" {
		ctrlOpts.Snapshot = &snapshot.Options{BindAddress: f.snapshotBindAddress, Namespace: f.operatorNamespace,
			DNSNames: snapshotDNSNames(f.operatorAddress), IPs: snapshotIPs(f.operatorAddress)}
	}
	if err := controllers.SetupWithManager(ctx, mgr, ctrlOpts); err != nil {
		return err
	}
	if err := controllers.RegisterMetrics(mgr.GetClient()); err != nil {
		return fmt.Errorf("register operator metrics: %w", err)
	}
	if err := mgr.AddHealthzCheck("healthz", healthz.Ping); err != nil {
		return err
	}
	if err := mgr.AddReadyzCheck("readyz", healthz.Ping); err != nil {
		return err
	}
	setupLog.Info("starting operator", "version", version.String(), "proxyImage", f.proxyImage)
	return mgr.Start(ctx)
}

// snapshotDNSNames are the names in the snapshot server's certificate: the host proxies dial and localhost.
func snapshotDNSNames(operatorAddress string) []string {
	names := []string{"localhost"}
	if host, _, err := net.SplitHostPort(operatorAddress); err == nil && host != "" && net.ParseIP(host) == nil {
		names = append(names, host)
	}
	return names
}

// snapshotIPs are the IP addresses in the snapshot server's certificate: loopback, and the address
// proxies dial when --operator-address names an IP rather than a DNS name.
func snapshotIPs(operatorAddress string) []net.IP {
	ips := []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback}
	if host, _, err := net.SplitHostPort(operatorAddress); err == nil {
		if ip := net.ParseIP(host); ip != nil && !ip.IsLoopback() {
			ips = append(ips, ip)
		}
	}
	return ips
}

func envOr(name, fallback string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return fallback
}
