package diagnose

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	"sigs.k8s.io/yaml"

	edgev1alpha1 "github.com/portico-dev/portico/api/v1alpha1"
	"github.com/portico-dev/portico/controllers/render"
	"github.com/portico-dev/portico/controllers/snapshot"
	"github.com/portico-dev/portico/internal/testenv"
)

// The envtest tests run against a real kube-apiserver with no operator: each test creates the
// objects and writes the statuses an operator would, then asserts that diagnose names the cause.
var (
	testEnv   *envtest.Environment
	k8sClient client.Client
	seq       atomic.Int32
)

func TestMain(m *testing.M) {
	if os.Getenv("PORTICO_SKIP_ENVTEST") != "" {
		os.Exit(m.Run())
	}
	env, cfg, err := testenv.Start()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	testEnv = env
	k8sClient, err = client.New(cfg, client.Options{Scheme: testenv.Scheme()})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := m.Run()
	_ = env.Stop()
	os.Exit(code)
}

func needEnv(t *testing.T) context.Context {
	t.Helper()
	if k8sClient == nil {
		t.Skip("PORTICO_SKIP_ENVTEST is set")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// tenant is one namespace served by its own EdgeProxy, whose fleet is healthy and has an address.
type tenant struct {
	ns, ep string
	host   string
}

func newTenant(t *testing.T, ctx context.Context) tenant {
	t.Helper()
	n := seq.Add(1)
	tn := tenant{ns: fmt.Sprintf("diag-%d", n), ep: fmt.Sprintf("diag-%d", n), host: fmt.Sprintf("app%d.example.com", n)}
	create(t, ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: tn.ns}})
	ep := &edgev1alpha1.EdgeProxy{ObjectMeta: metav1.ObjectMeta{Name: tn.ep}, Spec: edgev1alpha1.EdgeProxySpec{
		TenantNamespaces: edgev1alpha1.TenantNamespaces{Names: []string{tn.ns}},
		Hostnames:        []edgev1alpha1.Hostname{"*.example.com"},
		ProxyNamespace:   tn.ns,
	}}
	create(t, ctx, ep)
	ep.Status = edgev1alpha1.EdgeProxyStatus{ObservedGeneration: ep.Generation, Replicas: 2, ReadyReplicas: 2,
		Addresses:        []edgev1alpha1.EdgeProxyAddress{{Type: "IPAddress", Value: "192.0.2.10"}},
		ConnectedProxies: 2,
		Proxies: []edgev1alpha1.ConnectedProxy{{Pod: tn.ep + "-proxy-a", Version: "1", ConnectedSince: metav1.Now()},
			{Pod: tn.ep + "-proxy-b", Version: "1", ConnectedSince: metav1.Now()}}}
	apimeta.SetStatusCondition(&ep.Status.Conditions, metav1.Condition{Type: "Ready", Status: "True", Reason: "Available", ObservedGeneration: ep.Generation})
	must(t, k8sClient.Status().Update(ctx, ep))
	svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: tn.ns, Name: render.ObjectName(ep)}, Spec: corev1.ServiceSpec{
		Type: corev1.ServiceTypeLoadBalancer,
		Ports: []corev1.ServicePort{{Name: "http", Port: 80, TargetPort: intstr.FromString("http")},
			{Name: "https", Port: 443, TargetPort: intstr.FromString("https")}},
	}}
	create(t, ctx, svc)
	svc.Status.LoadBalancer.Ingress = []corev1.LoadBalancerIngress{{IP: "192.0.2.10"}}
	must(t, k8sClient.Status().Update(ctx, svc))
	return tn
}

// backend creates Service name (port 80 → 8080, "http") with one EndpointSlice of the given readiness.
func (tn tenant) backend(t *testing.T, ctx context.Context, name string, ready ...bool) {
	t.Helper()
	create(t, ctx, &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: tn.ns, Name: name}, Spec: corev1.ServiceSpec{
		Selector: map[string]string{"app": name},
		Ports:    []corev1.ServicePort{{Name: "http", Port: 80, TargetPort: intstr.FromInt32(8080)}},
	}})
	sl := &discoveryv1.EndpointSlice{
		ObjectMeta: metav1.ObjectMeta{Namespace: tn.ns, Name: name + "-abc", Labels: map[string]string{
			discoveryv1.LabelServiceName: name, discoveryv1.LabelManagedBy: snapshot.ManagedByEndpointSliceController}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Ports:       []discoveryv1.EndpointPort{{Name: ptr.To("http"), Port: ptr.To(int32(8080))}},
	}
	for i, r := range ready {
		sl.Endpoints = append(sl.Endpoints, discoveryv1.Endpoint{Addresses: []string{fmt.Sprintf("10.1.0.%d", i+1)},
			Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(r)}})
	}
	create(t, ctx, sl)
}

// route creates a TenantRoute from YAML (namespace, edgeProxy and host filled in as %s: NS, EP,
// HOST) and writes the status the operator would: every condition True unless overridden.
func (tn tenant) route(t *testing.T, ctx context.Context, doc string, conds ...metav1.Condition) *edgev1alpha1.TenantRoute {
	t.Helper()
	doc = strings.NewReplacer("NS", tn.ns, "EP", tn.ep, "HOST", tn.host).Replace(doc)
	tr := &edgev1alpha1.TenantRoute{}
	if err := yaml.UnmarshalStrict([]byte(doc), tr); err != nil {
		t.Fatal(err)
	}
	create(t, ctx, tr)
	for _, c := range []string{"Accepted", "ResolvedRefs", "CertificateReady", "Programmed"} {
		apimeta.SetStatusCondition(&tr.Status.Conditions, metav1.Condition{Type: c, Status: "True", Reason: c, Message: "test", ObservedGeneration: tr.Generation})
	}
	for _, c := range conds {
		c.ObservedGeneration = tr.Generation
		apimeta.SetStatusCondition(&tr.Status.Conditions, c)
	}
	tr.Status.ObservedGeneration = tr.Generation
	must(t, k8sClient.Status().Update(ctx, tr))
	return tr
}

func create(t *testing.T, ctx context.Context, obj client.Object) {
	t.Helper()
	must(t, k8sClient.Create(ctx, obj))
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// show logs the report as the CLI prints it.
func show(t *testing.T, r *Report) {
	t.Helper()
	var b bytes.Buffer
	_ = r.WriteText(&b)
	t.Logf("\n%s", b.String())
}

// wantStep asserts a step whose title contains title has the status and a cause containing cause.
func wantStep(t *testing.T, r *Report, title string, status Status, cause string) {
	t.Helper()
	for _, s := range r.Find(title) {
		if s.Status == status && strings.Contains(s.Cause, cause) {
			return
		}
	}
	show(t, r)
	t.Fatalf("no step %q with status %s and a cause containing %q", title, status, cause)
}

const basicRoute = `
metadata: {name: web, namespace: NS}
spec:
  edgeProxy: EP
  hostnames: [HOST]
  rules:
  - backendRefs: [{name: web, port: 80}]
`
