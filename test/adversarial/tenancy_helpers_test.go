package adversarial

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	eventsv1 "k8s.io/api/events/v1"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	ctrlconfig "sigs.k8s.io/controller-runtime/pkg/config"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	gwapiv1 "sigs.k8s.io/gateway-api/apis/v1"

	edgev1alpha1 "github.com/portico-dev/portico/api/v1alpha1"
	"github.com/portico-dev/portico/controllers"
	"github.com/portico-dev/portico/controllers/render"
	"github.com/portico-dev/portico/controllers/snapshot"
	dpt "github.com/portico-dev/portico/dataplane/dataplanetest"
	"github.com/portico-dev/portico/dataplane/server"
	"github.com/portico-dev/portico/dataplane/snapshotclient"
	"github.com/portico-dev/portico/dataplane/upstream"
	"github.com/portico-dev/portico/internal/testenv"
)

// The tenancy tier shares one control plane (kube-apiserver + etcd) and one operator (every
// reconciler and the snapshot server, in-process) between its tests: starting them is most of a
// test's cost on a loaded machine. Each test makes its own namespaces and EdgeProxies, whose names
// start with the test's prefix, and starts its own proxies (runner.Run on 127.0.0.1, connected to
// the operator over gRPC with a real projected-token TokenReview), as controllers/snapshot's
// envtest suite does.
type cluster struct {
	cfg      *rest.Config
	c        client.Client
	fast     client.Client // no client-side rate limit (client-go's default is 5 QPS)
	cs       *kubernetes.Clientset
	env      *envtest.Environment
	stopOp   context.CancelFunc
	opDone   chan struct{}
	bind     string
	ca       []byte
	tokenDir string
}

var (
	sharedOnce sync.Once
	shared     *cluster
	sharedErr  error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if shared != nil {
		shared.stop()
	}
	os.Exit(code)
}

// tenancyCluster returns the shared control plane and operator, starting them on first use. It
// skips when PORTICO_SKIP_ENVTEST is set.
func tenancyCluster(t *testing.T) *cluster {
	t.Helper()
	if os.Getenv("PORTICO_SKIP_ENVTEST") != "" {
		t.Skip("PORTICO_SKIP_ENVTEST is set")
	}
	sharedOnce.Do(func() { shared, sharedErr = startCluster() })
	if sharedErr != nil {
		t.Fatal(sharedErr)
	}
	return shared
}

func startCluster() (*cluster, error) {
	ctrl.SetLogger(logr.Discard())
	env, cfg, err := testenv.Start()
	if err != nil {
		return nil, err
	}
	cl := &cluster{cfg: cfg, env: env}
	fail := func(err error) (*cluster, error) { _ = env.Stop(); return nil, err }
	if cl.c, err = client.New(cfg, client.Options{Scheme: testenv.Scheme()}); err != nil {
		return fail(err)
	}
	fastCfg := rest.CopyConfig(cfg)
	fastCfg.QPS, fastCfg.Burst = 1000, 2000
	if cl.fast, err = client.New(fastCfg, client.Options{Scheme: testenv.Scheme()}); err != nil {
		return fail(err)
	}
	cl.cs = kubernetes.NewForConfigOrDie(cfg)
	if cl.tokenDir, err = os.MkdirTemp("", "portico-tenancy-"); err != nil {
		return fail(err)
	}
	if err := cl.c.Create(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "portico-system"}}); err != nil {
		return fail(err)
	}
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		Scheme: testenv.Scheme(), Cache: controllers.CacheOptions(),
		Metrics:                metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress: "0",
		Controller:             ctrlconfig.Controller{SkipNameValidation: ptr.To(true)},
	})
	if err != nil {
		return fail(err)
	}
	var d *snapshot.Delivery
	ctx, cancel := context.WithCancel(context.Background())
	if err := controllers.SetupWithManager(ctx, mgr, controllers.Options{
		ProxyImage: "example.com/portico:test", OperatorNamespace: "portico-system",
		OperatorPodLabels: controllers.DefaultOperatorPodLabels(),
		Snapshot: &snapshot.Options{BindAddress: "127.0.0.1:0", Namespace: "portico-system",
			IPs: []net.IP{net.IPv4(127, 0, 0, 1)}, OnSetup: func(x *snapshot.Delivery) { d = x }},
	}); err != nil {
		cancel()
		return fail(err)
	}
	cl.opDone = make(chan struct{})
	go func() {
		defer close(cl.opDone)
		if err := mgr.Start(ctx); err != nil {
			fmt.Fprintf(os.Stderr, "tenancy: manager: %v\n", err)
		}
	}()
	cl.stopOp = cancel
	addrCtx, done := context.WithTimeout(ctx, 60*time.Second)
	defer done()
	if cl.bind, err = d.Server.Addr(addrCtx); err != nil {
		cl.stop()
		return nil, err
	}
	cl.ca = d.Server.CAPEM()
	return cl, nil
}

func (cl *cluster) stop() {
	cl.stopOp()
	<-cl.opDone
	_ = cl.env.Stop()
	_ = os.RemoveAll(cl.tokenDir)
}

// tenant is one EdgeProxy serving the namespaces given, hostnames *.<domain>, with its proxy fleet
// in <name>-edge.
type tenant struct {
	name, domain, proxyNS string
	namespaces            []string
}

// newTenant creates the namespaces and the EdgeProxy.
func (cl *cluster) newTenant(t *testing.T, name, domain string, namespaces ...string) tenant {
	t.Helper()
	tn := tenant{name: name, domain: domain, proxyNS: name + "-edge", namespaces: namespaces}
	for _, ns := range append([]string{tn.proxyNS}, namespaces...) {
		cl.create(t, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}})
	}
	cl.create(t, &edgev1alpha1.EdgeProxy{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: edgev1alpha1.EdgeProxySpec{
		TenantNamespaces: edgev1alpha1.TenantNamespaces{Names: namespaces},
		Hostnames:        []edgev1alpha1.Hostname{edgev1alpha1.Hostname("*." + domain)},
		ProxyNamespace:   tn.proxyNS,
	}})
	return tn
}

func (cl *cluster) create(t testing.TB, o client.Object) {
	t.Helper()
	if err := cl.c.Create(context.Background(), o); err != nil {
		t.Fatalf("create %T %s/%s: %v", o, o.GetNamespace(), o.GetName(), err)
	}
}

// poll calls f every 20 ms until it returns nil or the timeout passes, and returns how long it took.
func poll(t testing.TB, what string, timeout time.Duration, f func() error) time.Duration {
	t.Helper()
	start := time.Now()
	deadline := start.Add(timeout)
	for {
		err := f()
		if err == nil {
			return time.Since(start)
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v: %v", what, timeout, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// tproxy is one proxy replica in cluster mode: the complete data plane of dataplanetest (listeners,
// request checks, proxy, TLS store, guarded transports) fed by the real snapshot client connected
// to the operator over gRPC (TLS, projected-token TokenReview, ACK/NACK) — what runner.Run
// assembles, except for one thing: the kube-apiserver refuses loopback addresses in EndpointSlices,
// so the test's backends are published at 192.0.2.x (TEST-NET-1) and the sink maps that prefix to
// 127.0.0.1 (same port) before the endpoint store sees it. Every request stays on loopback.
type tproxy struct {
	*dpt.Harness
	Snapshots *snapshotclient.Client
}

// testNet is where the test's backends are published; loopbackSink maps it to 127.0.0.1.
var testNet = netip.MustParsePrefix("192.0.2.0/24")

type loopbackSink struct{ *server.Dataplane }

func (s loopbackSink) SetEndpoints(eps upstream.Endpoints) {
	out := make(upstream.Endpoints, len(eps))
	for k, list := range eps {
		mapped := make([]upstream.Endpoint, len(list))
		for i, ep := range list {
			if testNet.Contains(ep.Addr.Addr()) {
				ep.Addr = netip.AddrPortFrom(netip.AddrFrom4([4]byte{127, 0, 0, 1}), ep.Addr.Port())
			}
			mapped[i] = ep
		}
		out[k] = mapped
	}
	s.Dataplane.SetEndpoints(out)
}

// proxy starts one proxy replica of the tenant's EdgeProxy and waits until it serves its first
// snapshot. It stops with the test.
func (cl *cluster) proxy(t *testing.T, tn tenant, pod string) *tproxy {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	sa := render.ObjectName(&edgev1alpha1.EdgeProxy{ObjectMeta: metav1.ObjectMeta{Name: tn.name}})
	poll(t, "proxy ServiceAccount rendered", 60*time.Second, func() error {
		return cl.c.Get(ctx, client.ObjectKey{Namespace: tn.proxyNS, Name: sa}, &corev1.ServiceAccount{})
	})
	tr, err := cl.cs.CoreV1().ServiceAccounts(tn.proxyNS).CreateToken(ctx, sa, &authenticationv1.TokenRequest{
		Spec: authenticationv1.TokenRequestSpec{Audiences: []string{render.TokenAudience}, ExpirationSeconds: ptr.To(int64(3600))}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	tokenFile := filepath.Join(cl.tokenDir, tn.name+"-"+pod)
	if err := os.WriteFile(tokenFile, []byte(tr.Status.Token), 0o600); err != nil {
		t.Fatal(err)
	}
	h := dpt.Start(t, dpt.Options{})
	p := &tproxy{Harness: h, Snapshots: snapshotclient.New(snapshotclient.Options{Address: cl.bind, CAPEM: cl.ca,
		TokenFile: tokenFile, PodName: pod, EdgeProxy: tn.name, Logger: dpt.Logger(),
		MinBackoff: 50 * time.Millisecond, MaxBackoff: 300 * time.Millisecond}, loopbackSink{h.Dataplane})}
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = p.Snapshots.Run(ctx)
	}()
	t.Cleanup(func() { cancel(); <-done })
	poll(t, "proxy "+tn.name+"/"+pod+" has a snapshot", 60*time.Second, func() error {
		if p.Snapshots.Version() == "" {
			return fmt.Errorf("no snapshot yet")
		}
		return nil
	})
	return p
}

// backend starts an echo backend on 127.0.0.1 and publishes it as Service ns/name port 80 with a
// controller-managed EndpointSlice (what the endpointslice controller would write).
func (cl *cluster) backend(t *testing.T, ns, name string) *countingBackend {
	t.Helper()
	b := newCountingBackend(t, ns+"/"+name)
	ap := netip.MustParseAddrPort(b.ln.Addr().String())
	published := netip.AddrFrom4([4]byte{192, 0, 2, 10}) // loopbackSink maps it back to 127.0.0.1
	cl.create(t, &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: corev1.ServiceSpec{Selector: map[string]string{"app": name}, Ports: []corev1.ServicePort{{Name: "http", Port: 80}}}})
	cl.create(t, &discoveryv1.EndpointSlice{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name + "-abcde", Labels: map[string]string{
			discoveryv1.LabelServiceName: name, discoveryv1.LabelManagedBy: snapshot.ManagedByEndpointSliceController}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Ports:       []discoveryv1.EndpointPort{{Name: ptr.To("http"), Port: ptr.To(int32(ap.Port()))}},
		Endpoints: []discoveryv1.Endpoint{{Addresses: []string{published.String()},
			Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(true)}}},
	})
	return b
}

// countingBackend answers every request with its name (and X-Backend) and counts them.
type countingBackend struct {
	name string
	ln   net.Listener
	srv  *http.Server
	mu   sync.Mutex
	n    int64
}

func newCountingBackend(t *testing.T, name string) *countingBackend {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	b := &countingBackend{name: name, ln: ln}
	b.srv = &http.Server{ReadHeaderTimeout: 10 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b.mu.Lock()
		b.n++
		b.mu.Unlock()
		w.Header().Set("X-Backend", name)
		_, _ = io.WriteString(w, name)
	})}
	go func() { _ = b.srv.Serve(ln) }()
	t.Cleanup(func() { _ = b.srv.Close() })
	return b
}

func (b *countingBackend) count() int64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.n
}

// route is a TenantRoute of ns for the EdgeProxy ep with one backend rule per path (a rule with
// backend "" has no matches and sends everything to the backend named by the last element).
func route(ns, name, ep string, hosts []string, rules ...edgev1alpha1.TenantRouteRule) *edgev1alpha1.TenantRoute {
	tr := &edgev1alpha1.TenantRoute{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: edgev1alpha1.TenantRouteSpec{EdgeProxy: ep, Rules: rules}}
	for _, h := range hosts {
		tr.Spec.Hostnames = append(tr.Spec.Hostnames, edgev1alpha1.Hostname(h))
	}
	return tr
}

// prefixRule sends path prefix p to Service ns/name port 80 (ns "" = the route's namespace).
func prefixRule(p, ns, name string) edgev1alpha1.TenantRouteRule {
	ref := gwapiv1.BackendObjectReference{Name: gwapiv1.ObjectName(name), Port: ptr.To(gwapiv1.PortNumber(80))}
	if ns != "" {
		ref.Namespace = ptr.To(gwapiv1.Namespace(ns))
	}
	r := edgev1alpha1.TenantRouteRule{BackendRefs: []gwapiv1.HTTPBackendRef{{BackendRef: gwapiv1.BackendRef{BackendObjectReference: ref}}}}
	if p != "" {
		r.Matches = []gwapiv1.HTTPRouteMatch{{Path: &gwapiv1.HTTPPathMatch{Type: ptr.To(gwapiv1.PathMatchPathPrefix), Value: ptr.To(p)}}}
	}
	return r
}

// condition returns the route's condition of type ct for its current generation (nil if none).
func (cl *cluster) condition(ns, name string, ct edgev1alpha1.ConditionType) (*metav1.Condition, error) {
	tr := &edgev1alpha1.TenantRoute{}
	if err := cl.c.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: name}, tr); err != nil {
		return nil, err
	}
	c := apimeta.FindStatusCondition(tr.Status.Conditions, string(ct))
	if c == nil || c.ObservedGeneration != tr.Generation {
		return nil, fmt.Errorf("no %s condition for generation %d: %v", ct, tr.Generation, tr.Status.Conditions)
	}
	return c, nil
}

// waitCondition polls until the route's condition ct has status and reason, and returns how long.
func (cl *cluster) waitCondition(t testing.TB, ns, name string, ct edgev1alpha1.ConditionType, status metav1.ConditionStatus,
	reason edgev1alpha1.ConditionReason, timeout time.Duration) time.Duration {
	t.Helper()
	return poll(t, fmt.Sprintf("%s/%s %s=%s %s", ns, name, ct, status, reason), timeout, func() error {
		c, err := cl.condition(ns, name, ct)
		if err != nil {
			return err
		}
		if c.Status != status || c.Reason != string(reason) {
			return fmt.Errorf("%s=%s %s: %s", ct, c.Status, c.Reason, c.Message)
		}
		return nil
	})
}

// warningEvent returns the reasons of the Warning Events regarding the TenantRoute ns/name.
func (cl *cluster) warningEvents(ns, name string) ([]string, error) {
	var evs eventsv1.EventList
	if err := cl.c.List(context.Background(), &evs, client.InNamespace(ns)); err != nil {
		return nil, err
	}
	var out []string
	for _, ev := range evs.Items {
		if ev.Regarding.Kind == "TenantRoute" && ev.Regarding.Name == name && ev.Type == corev1.EventTypeWarning {
			out = append(out, ev.Reason)
		}
	}
	return out, nil
}

// fetch sends GET path with Host host to the proxy and returns the status and body.
func fetch(c *http.Client, p *tproxy, host, path string) (int, string, error) {
	req, err := http.NewRequest(http.MethodGet, "http://"+p.HTTP+path, nil)
	if err != nil {
		return 0, "", err
	}
	req.Host = host
	resp, err := c.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

// waitServes polls until GET host/path through p answers code with body (body "" = any).
func waitServes(t testing.TB, p *tproxy, host, path string, code int, body string, timeout time.Duration) time.Duration {
	t.Helper()
	c := &http.Client{Timeout: 5 * time.Second}
	defer c.CloseIdleConnections()
	return poll(t, fmt.Sprintf("GET %s%s → %d %s", host, path, code, body), timeout, func() error {
		got, b, err := fetch(c, p, host, path)
		if err != nil {
			return err
		}
		if got != code || body != "" && b != body {
			return fmt.Errorf("%d %q", got, b)
		}
		return nil
	})
}

// percentile of sorted durations (q in [0,1]).
func percentile(sorted []time.Duration, q float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(q*float64(len(sorted))+0.5) - 1
	i = max(0, min(i, len(sorted)-1))
	return sorted[i]
}

func sortDurations(d []time.Duration) []time.Duration {
	out := append([]time.Duration(nil), d...)
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}

// joinReasons is for messages.
func joinReasons(r []string) string { return strings.Join(r, ",") }
