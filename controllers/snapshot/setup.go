package snapshot

import (
	"context"
	"fmt"
	"net"

	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	crmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"

	edgev1alpha1 "github.com/portico-dev/portico/api/v1alpha1"
	"github.com/portico-dev/portico/controllers/render"
)

// DefaultBindAddress is where the snapshot server listens (the chart's snapshot Service targets it).
const DefaultBindAddress = ":18000"

// CASecretName is the Secret of the operator namespace holding the snapshot channel's CA.
const CASecretName = "portico-operator-ca"

// Options configure config delivery.
type Options struct {
	// BindAddress of the gRPC server; DefaultBindAddress when empty.
	BindAddress string
	// Namespace of the operator: where the CA Secret lives.
	Namespace string
	// DNSNames and IPs of the serving certificate (the snapshot Service's names).
	DNSNames []string
	IPs      []net.IP
	// Audience of the proxies' tokens; render.TokenAudience when empty.
	Audience string
	// Recorder records a Warning Event on the EdgeProxy when one of its proxies refuses a snapshot.
	Recorder events.EventRecorder
	// OnSetup, when set, is handed the Delivery (tests, and cmd for logging the CA).
	OnSetup func(*Delivery)
}

// Delivery is config delivery wired into a manager.
type Delivery struct {
	Hub     *Hub
	Tracker *Tracker
	Server  *Server
}

// Config delivery's metrics, on controller-runtime's registry (served on --metrics-bind-address).
// Each operator replica reports the proxies connected to it.
var (
	nacks = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "portico_operator_snapshot_nacks_total",
		Help: "Snapshots refused by a proxy replica, by EdgeProxy.",
	}, []string{"edgeproxy"})
	connectedProxies = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "portico_operator_connected_proxies",
		Help: "Proxy replicas connected to this operator replica, by EdgeProxy.",
	}, []string{"edgeproxy"})
	pushSeconds = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "portico_operator_snapshot_push_seconds",
		Help:    "Time from a snapshot version being built to a proxy replica acknowledging it, by EdgeProxy.",
		Buckets: []float64{0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60},
	}, []string{"edgeproxy"})
)

func init() { crmetrics.Registry.MustRegister(nacks, connectedProxies, pushSeconds) }

// Setup adds the snapshot builder (every replica), the gRPC server (every replica) and the
// tracker's event pump (leader only) to mgr. The Tracker it returns is the Programmed source of
// the TenantRoute reconciler.
func Setup(ctx context.Context, mgr ctrl.Manager, o Options) (*Delivery, error) {
	if o.BindAddress == "" {
		o.BindAddress = DefaultBindAddress
	}
	if o.Audience == "" {
		o.Audience = render.TokenAudience
	}
	d := &Delivery{Hub: NewHub(), Tracker: NewTracker()}
	d.Hub.OnPublish = d.Tracker.Published
	c := mgr.GetClient()
	d.Tracker.OnNack = func(epName, pod, version, reason string) {
		nacks.WithLabelValues(epName).Inc()
		ep := &edgev1alpha1.EdgeProxy{}
		if o.Recorder == nil || c.Get(context.Background(), types.NamespacedName{Name: epName}, ep) != nil {
			return
		}
		o.Recorder.Eventf(ep, nil, corev1.EventTypeWarning, string(edgev1alpha1.RouteReasonRejected), "Deliver",
			"proxy %s refused snapshot %s: %s", pod, version, truncate(reason, 512))
	}
	if err := (&Builder{Client: c, APIReader: mgr.GetAPIReader(), Hub: d.Hub}).SetupWithManager(ctx, mgr); err != nil {
		return nil, fmt.Errorf("set up the snapshot builder: %w", err)
	}
	d.Server = NewServer(ServerOptions{
		BindAddress: o.BindAddress,
		CASecret:    types.NamespacedName{Namespace: o.Namespace, Name: CASecretName},
		DNSNames:    o.DNSNames, IPs: o.IPs,
		Reader: mgr.GetAPIReader(), Writer: c,
		Auth: &Authenticator{Client: c, Audience: o.Audience},
		Hub:  d.Hub, Tracker: d.Tracker,
		Log:     mgr.GetLogger().WithName("snapshot-server"),
		Elected: mgr.Elected(),
	})
	if err := mgr.Add(d.Server); err != nil {
		return nil, err
	}
	if err := mgr.Add(manager.RunnableFunc(d.Tracker.Run)); err != nil {
		return nil, err
	}
	if o.OnSetup != nil {
		o.OnSetup(d)
	}
	return d, nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
