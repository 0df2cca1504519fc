package snapshot_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	ctrlconfig "sigs.k8s.io/controller-runtime/pkg/config"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	gwapiv1 "sigs.k8s.io/gateway-api/apis/v1"

	snapshotv1 "github.com/portico-dev/portico/api/snapshot/v1"
	edgev1alpha1 "github.com/portico-dev/portico/api/v1alpha1"
	"github.com/portico-dev/portico/controllers"
	"github.com/portico-dev/portico/controllers/render"
	"github.com/portico-dev/portico/controllers/snapshot"
	"github.com/portico-dev/portico/dataplane/routing"
	"github.com/portico-dev/portico/dataplane/runner"
	"github.com/portico-dev/portico/dataplane/snapshotclient"
	"github.com/portico-dev/portico/internal/testenv"
)

// env is one real kube-apiserver + etcd, the operator's manager (reconcilers + snapshot server on
// 127.0.0.1) and two in-process proxies (runner.Run, listeners on 127.0.0.1).
type env struct {
	t        *testing.T
	cfg      *rest.Config
	c        client.Client
	cs       *kubernetes.Clientset
	stopOp   context.CancelFunc
	opDone   chan struct{}
	bind     string
	ca       []byte
	proxies  []runner.Started
	mu       sync.Mutex
	started  chan runner.Started
	tokenDir string
	delivery *snapshot.Delivery
}

const (
	epName    = "acme"
	proxyNS   = "acme-edge"
	tenantNS  = "shop"
	poisonTag = "poison" // the proxies' test check refuses snapshots holding a route of this name
)

func eventually(t *testing.T, what string, timeout time.Duration, f func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %v", what, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func startEnv(t *testing.T) *env {
	if os.Getenv("PORTICO_SKIP_ENVTEST") != "" {
		t.Skip("PORTICO_SKIP_ENVTEST is set")
	}
	ctrl.SetLogger(logr.Discard())
	testEnv, cfg, err := testenv.Start()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = testEnv.Stop() })
	c, err := client.New(cfg, client.Options{Scheme: testenv.Scheme()})
	if err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, cfg: cfg, c: c, cs: kubernetes.NewForConfigOrDie(cfg), bind: "127.0.0.1:0", tokenDir: t.TempDir()}
	ctx := context.Background()
	for _, ns := range []string{"portico-system", proxyNS, tenantNS} {
		must(t, c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}))
	}
	must(t, c.Create(ctx, &edgev1alpha1.EdgeProxy{ObjectMeta: metav1.ObjectMeta{Name: epName}, Spec: edgev1alpha1.EdgeProxySpec{
		TenantNamespaces: edgev1alpha1.TenantNamespaces{Names: []string{tenantNS}},
		Hostnames:        []edgev1alpha1.Hostname{"*.example.com"},
		ProxyNamespace:   proxyNS,
	}}))
	e.startOperator()
	return e
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func (e *env) startOperator() {
	t := e.t
	mgr, err := ctrl.NewManager(e.cfg, ctrl.Options{
		Scheme: testenv.Scheme(), Cache: controllers.CacheOptions(),
		Metrics:                metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress: "0",
		Controller:             ctrlconfig.Controller{SkipNameValidation: ptr.To(true)},
	})
	must(t, err)
	var d *snapshot.Delivery
	ctx, cancel := context.WithCancel(context.Background())
	must(t, controllers.SetupWithManager(ctx, mgr, controllers.Options{
		ProxyImage: "example.com/portico:test", OperatorNamespace: "portico-system",
		OperatorPodLabels: controllers.DefaultOperatorPodLabels(),
		Snapshot: &snapshot.Options{BindAddress: e.bind, Namespace: "portico-system",
			IPs: []net.IP{net.IPv4(127, 0, 0, 1)}, OnSetup: func(x *snapshot.Delivery) { d = x }},
	}))
	e.opDone = make(chan struct{})
	go func() {
		defer close(e.opDone)
		if err := mgr.Start(ctx); err != nil {
			t.Errorf("manager: %v", err)
		}
	}()
	e.stopOp = cancel
	addrCtx, done := context.WithTimeout(ctx, 60*time.Second)
	defer done()
	addr, err := d.Server.Addr(addrCtx)
	must(t, err)
	e.bind, e.ca, e.delivery = addr, d.Server.CAPEM(), d
}

func (e *env) stopOperator() {
	e.stopOp()
	<-e.opDone
}

// token asks the TokenRequest API for a token of ServiceAccount ns/name with audience aud.
func (e *env) token(ns, name, aud string) string {
	tr, err := e.cs.CoreV1().ServiceAccounts(ns).CreateToken(context.Background(), name, &authenticationv1.TokenRequest{
		Spec: authenticationv1.TokenRequestSpec{Audiences: []string{aud}, ExpirationSeconds: ptr.To(int64(3600))}}, metav1.CreateOptions{})
	must(e.t, err)
	return tr.Status.Token
}

func (e *env) startProxy(ctx context.Context, pod string) runner.Started {
	t := e.t
	sa := render.ObjectName(&edgev1alpha1.EdgeProxy{ObjectMeta: metav1.ObjectMeta{Name: epName}})
	eventually(t, "proxy ServiceAccount rendered", 60*time.Second, func() error {
		return e.c.Get(ctx, client.ObjectKey{Namespace: proxyNS, Name: sa}, &corev1.ServiceAccount{})
	})
	tokenFile := filepath.Join(e.tokenDir, pod)
	must(t, os.WriteFile(tokenFile, []byte(e.token(proxyNS, sa, render.TokenAudience)), 0o600))
	got := make(chan runner.Started, 1)
	go func() {
		err := runner.Run(ctx, runner.Config{HTTPAddr: "127.0.0.1:0", AdminAddr: "127.0.0.1:0",
			ShutdownGrace: time.Millisecond, DrainTimeout: time.Second,
			Operator: snapshotclient.Options{Address: e.bind, CAPEM: e.ca, TokenFile: tokenFile, PodName: pod,
				MinBackoff: 50 * time.Millisecond, MaxBackoff: 300 * time.Millisecond,
				Check: func(d *snapshotclient.Decoded) error {
					for _, r := range d.Routes {
						if r.Name == poisonTag {
							return fmt.Errorf("test check: route %s/%s is poison", r.Namespace, r.Name)
						}
					}
					return nil
				}},
			Started: func(s runner.Started) { got <- s }})
		if err != nil {
			t.Errorf("proxy %s: %v", pod, err)
		}
	}()
	return <-got
}

func hello(name string, rules ...edgev1alpha1.TenantRouteRule) *edgev1alpha1.TenantRoute {
	return &edgev1alpha1.TenantRoute{ObjectMeta: metav1.ObjectMeta{Namespace: tenantNS, Name: name},
		Spec: edgev1alpha1.TenantRouteSpec{EdgeProxy: epName,
			Hostnames: []edgev1alpha1.Hostname{edgev1alpha1.Hostname(name + ".example.com")}, Rules: rules}}
}

// redirectRule answers /redirect with a 302 from the proxy itself: real HTTP proof that the
// table is live without a backend reachable from the test.
func redirectRule() edgev1alpha1.TenantRouteRule {
	return edgev1alpha1.TenantRouteRule{
		Matches: []gwapiv1.HTTPRouteMatch{{Path: &gwapiv1.HTTPPathMatch{Type: ptr.To(gwapiv1.PathMatchExact), Value: ptr.To("/redirect")}}},
		Filters: []gwapiv1.HTTPRouteFilter{{Type: gwapiv1.HTTPRouteFilterRequestRedirect,
			RequestRedirect: &gwapiv1.HTTPRequestRedirectFilter{Hostname: ptr.To(gwapiv1.PreciseHostname("elsewhere.example.com")), StatusCode: ptr.To(302)}}},
	}
}

func backendRule() edgev1alpha1.TenantRouteRule {
	return edgev1alpha1.TenantRouteRule{BackendRefs: []gwapiv1.HTTPBackendRef{{BackendRef: gwapiv1.BackendRef{
		BackendObjectReference: gwapiv1.BackendObjectReference{Name: "web", Port: ptr.To(gwapiv1.PortNumber(80))}}}}}
}

var noRedirect = &http.Client{Timeout: 5 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

func get(p runner.Started, host, path string) (int, error) {
	req, _ := http.NewRequest(http.MethodGet, "http://"+p.Server.HTTPAddr()+path, nil)
	req.Host = host
	resp, err := noRedirect.Do(req)
	if err != nil {
		return 0, err
	}
	resp.Body.Close()
	return resp.StatusCode, nil
}

func (e *env) programmed(name string) (*metav1.Condition, string, error) {
	tr := &edgev1alpha1.TenantRoute{}
	if err := e.c.Get(context.Background(), client.ObjectKey{Namespace: tenantNS, Name: name}, tr); err != nil {
		return nil, "", err
	}
	c := apimeta.FindStatusCondition(tr.Status.Conditions, string(edgev1alpha1.RouteConditionProgrammed))
	if c == nil || c.ObservedGeneration != tr.Generation {
		return nil, "", fmt.Errorf("no Programmed condition for generation %d: %v", tr.Generation, tr.Status.Conditions)
	}
	return c, tr.Status.ProgrammedVersion, nil
}

// edgeProxyCondition returns a condition of the EdgeProxy for its current generation.
func (e *env) edgeProxyCondition(t edgev1alpha1.ConditionType) (*metav1.Condition, error) {
	ep := &edgev1alpha1.EdgeProxy{}
	if err := e.c.Get(context.Background(), client.ObjectKey{Name: epName}, ep); err != nil {
		return nil, err
	}
	c := apimeta.FindStatusCondition(ep.Status.Conditions, string(t))
	if c == nil || c.ObservedGeneration != ep.Generation {
		return nil, fmt.Errorf("no %s condition for generation %d: %v", t, ep.Generation, ep.Status.Conditions)
	}
	return c, nil
}

func (e *env) waitProgrammed(name string, timeout time.Duration) string {
	var version string
	eventually(e.t, "route "+name+" Programmed=True", timeout, func() error {
		c, v, err := e.programmed(name)
		if err != nil {
			return err
		}
		if c.Status != metav1.ConditionTrue || v == "" {
			return fmt.Errorf("Programmed %s/%s: %s (version %q)", c.Status, c.Reason, c.Message, v)
		}
		version = v
		return nil
	})
	return version
}

func slice(addrs ...string) *discoveryv1.EndpointSlice {
	s := &discoveryv1.EndpointSlice{
		ObjectMeta: metav1.ObjectMeta{Namespace: tenantNS, Name: "web-abcde", Labels: map[string]string{
			discoveryv1.LabelServiceName: "web", discoveryv1.LabelManagedBy: snapshot.ManagedByEndpointSliceController}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Ports:       []discoveryv1.EndpointPort{{Name: ptr.To("http"), Port: ptr.To(int32(8080))}},
	}
	for _, a := range addrs {
		s.Endpoints = append(s.Endpoints, discoveryv1.Endpoint{Addresses: []string{a}, Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(true)}})
	}
	return s
}

var webKey = routing.BackendKey{Namespace: tenantNS, Name: "web", Port: 80}

func endpointsOf(p runner.Started) []string {
	set := p.Dataplane.Endpoints.Get(webKey)
	if set == nil {
		return nil
	}
	var out []string
	for _, ep := range set.Endpoints {
		out = append(out, ep.Addr.String())
	}
	return out
}

func (e *env) waitEndpoints(want ...string) {
	for i, p := range e.proxies {
		eventually(e.t, fmt.Sprintf("proxy %d endpoints %v", i, want), 20*time.Second, func() error {
			if got := strings.Join(endpointsOf(p), ","); got != strings.Join(want, ",") {
				return fmt.Errorf("endpoints %q", got)
			}
			return nil
		})
	}
}

func grpcCall(addr string, ca []byte, token string) error {
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(ca)
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(credentials.NewTLS(&tls.Config{RootCAs: pool})))
	if err != nil {
		return err
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(metadata.AppendToOutgoingContext(context.Background(), "authorization", "Bearer "+token), 20*time.Second)
	defer cancel()
	st, err := snapshotv1.NewSnapshotServiceClient(conn).Stream(ctx)
	if err != nil {
		return err
	}
	// Send may only see io.EOF when the server already ended the stream; Recv has the status.
	_ = st.Send(&snapshotv1.ProxyMessage{Message: &snapshotv1.ProxyMessage_Hello{Hello: &snapshotv1.Hello{PodName: "intruder"}}})
	_, err = st.Recv()
	return err
}
