package diagnose

import (
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"

	edgev1alpha1 "github.com/portico-dev/portico/api/v1alpha1"
	"github.com/portico-dev/portico/dataplane/dataplanetest"
	"github.com/portico-dev/portico/dataplane/proxy"
	"github.com/portico-dev/portico/dataplane/routing"
	"github.com/portico-dev/portico/dataplane/upstream"
)

// Each test reproduces one row of the symptom table of the source documents
// (../shared/source-docs/ingress-and-gateway-guide.txt) and asserts diagnose names its cause.

func TestHealthyRouteExitsZero(t *testing.T) {
	ctx := needEnv(t)
	tn := newTenant(t, ctx)
	tn.backend(t, ctx, "web", true, true)
	tn.route(t, ctx, basicRoute)
	r, err := TenantRoute(ctx, k8sClient, types.NamespacedName{Namespace: tn.ns, Name: "web"}, Options{})
	must(t, err)
	show(t, r)
	if r.ExitCode() != 0 {
		t.Fatalf("exit code %d for a healthy route; first problem: %+v", r.ExitCode(), r.Cause())
	}
}

// Row "Ingress has no external address": controller Service pending.
func TestSymptomNoExternalAddress(t *testing.T) {
	ctx := needEnv(t)
	tn := newTenant(t, ctx)
	ep := &edgev1alpha1.EdgeProxy{}
	must(t, k8sClient.Get(ctx, types.NamespacedName{Name: tn.ep}, ep))
	svc := &corev1.Service{}
	must(t, k8sClient.Get(ctx, types.NamespacedName{Namespace: tn.ns, Name: "portico-" + tn.ep}, svc))
	svc.Status.LoadBalancer.Ingress = nil
	must(t, k8sClient.Status().Update(ctx, svc))
	ep.Status.Addresses = nil
	must(t, k8sClient.Status().Update(ctx, ep))

	r, err := EdgeProxy(ctx, k8sClient, tn.ep, Options{})
	must(t, err)
	show(t, r)
	wantStep(t, r, "external address", Failed, "no external address: controller Service pending")
	if r.ExitCode() != 1 {
		t.Errorf("exit code %d, want 1", r.ExitCode())
	}
}

// Row "404 from controller": wrong ingress class, and a host no route serves.
func TestSymptom404(t *testing.T) {
	ctx := needEnv(t)
	tn := newTenant(t, ctx)
	create(t, ctx, &networkingv1.IngressClass{ObjectMeta: metav1.ObjectMeta{Name: tn.ns + "-nginx"},
		Spec: networkingv1.IngressClassSpec{Controller: "k8s.io/ingress-nginx"}})
	create(t, ctx, ingress(tn, "shop", tn.ns+"-nginx", nil))
	r, err := Ingress(ctx, k8sClient, types.NamespacedName{Namespace: tn.ns, Name: "shop"}, Options{})
	must(t, err)
	show(t, r)
	wantStep(t, r, "IngressClass", Failed, "wrong ingress class")

	r, err = Host(ctx, k8sClient, "nobody.example.com", Options{})
	must(t, err)
	show(t, r)
	wantStep(t, r, "routes claiming nobody.example.com", Failed, "host does not match any rule")
}

// Row "502 or 503": Service has no endpoints / Pod not ready, and wrong Service port.
func TestSymptom503(t *testing.T) {
	ctx := needEnv(t)
	tn := newTenant(t, ctx)
	tn.backend(t, ctx, "web", false, false)
	tn.route(t, ctx, basicRoute)
	r, err := TenantRoute(ctx, k8sClient, types.NamespacedName{Namespace: tn.ns, Name: "web"}, Options{})
	must(t, err)
	show(t, r)
	wantStep(t, r, "Service "+tn.ns+"/web port 80", Failed, "Pod not ready")

	tn.backend(t, ctx, "api", true)
	tn.route(t, ctx, `
metadata: {name: api, namespace: NS}
spec:
  edgeProxy: EP
  hostnames: [api-HOST]
  rules:
  - backendRefs: [{name: api, port: 8080}]
`)
	r, err = TenantRoute(ctx, k8sClient, types.NamespacedName{Namespace: tn.ns, Name: "api"}, Options{})
	must(t, err)
	show(t, r)
	wantStep(t, r, "Service "+tn.ns+"/api port 8080", Failed, "wrong Service port")
}

// Row "504 timeout": a real proxy (the data plane harness) in front of a slow backend; the probe
// reports the proxy's reason, upstream_timeout.
func TestSymptom504(t *testing.T) {
	ctx := needEnv(t)
	tn := newTenant(t, ctx)
	tn.backend(t, ctx, "web", true)
	tr := tn.route(t, ctx, `
metadata: {name: web, namespace: NS}
spec:
  edgeProxy: EP
  hostnames: [HOST]
  rules:
  - backendRefs: [{name: web, port: 80}]
    timeouts: {backendRequest: 200ms}
`)
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-time.After(3 * time.Second):
		case <-r.Context().Done():
		}
	}))
	defer slow.Close()
	h := dataplanetest.Start(t, dataplanetest.Options{})
	h.Apply(t, []edgev1alpha1.TenantRoute{*tr}, nil, proxy.Settings{Tenant: tn.ep})
	h.Dataplane.SetEndpoints(upstream.Endpoints{
		routing.BackendKey{Namespace: tn.ns, Name: "web", Port: 80}: {dataplanetest.EndpointOf(t, slow.URL)}})

	r, err := TenantRoute(ctx, k8sClient, types.NamespacedName{Namespace: tn.ns, Name: "web"},
		Options{Probe: ProbeOptions{Enabled: true, HTTPAddress: h.HTTP}})
	must(t, err)
	show(t, r)
	wantStep(t, r, "GET http://"+tn.host+"/", Failed, "504 timeout: backend slow, timeout too low")
	for _, s := range r.Find("GET http://") {
		if !contains(s.Evidence, "the proxy answered itself: upstream_timeout") {
			t.Errorf("probe evidence %q lacks the proxy's reason", s.Evidence)
		}
	}
}

// Row "TLS certificate mismatch": the Secret's certificate is for another host.
func TestSymptomTLSMismatch(t *testing.T) {
	ctx := needEnv(t)
	tn := newTenant(t, ctx)
	tn.backend(t, ctx, "web", true)
	ca := dataplanetest.NewCA(t)
	crt, key, _ := ca.Issue(t, "other.example.com")
	create(t, ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: tn.ns, Name: "web-tls"}, Type: corev1.SecretTypeTLS,
		Data: map[string][]byte{"tls.crt": crt, "tls.key": key}})
	tn.route(t, ctx, tlsRoute, metav1.Condition{Type: "ResolvedRefs", Status: "False", Reason: "InvalidCertificate",
		Message: `spec.tls[0].secretName: Secret "web-tls": the certificate does not cover host`})
	r, err := TenantRoute(ctx, k8sClient, types.NamespacedName{Namespace: tn.ns, Name: "web"}, Options{})
	must(t, err)
	show(t, r)
	wantStep(t, r, "Secret "+tn.ns+"/web-tls", Failed, "TLS certificate mismatch: wrong Secret or wrong host")
	wantStep(t, r, "ResolvedRefs", Failed, "TLS certificate mismatch")
}

// Row "HTTP works, HTTPS fails": the Secret is not a TLS key pair.
func TestSymptomHTTPSFails(t *testing.T) {
	ctx := needEnv(t)
	tn := newTenant(t, ctx)
	tn.backend(t, ctx, "web", true)
	create(t, ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: tn.ns, Name: "web-tls"},
		Data: map[string][]byte{"cert": []byte("not a certificate")}})
	tn.route(t, ctx, tlsRoute)
	r, err := TenantRoute(ctx, k8sClient, types.NamespacedName{Namespace: tn.ns, Name: "web"}, Options{})
	must(t, err)
	show(t, r)
	wantStep(t, r, "Secret "+tn.ns+"/web-tls", Failed, "HTTP works, HTTPS fails: Secret invalid")
}

// Row "Path rewrite breaks app": rewrite-target "/" without capture groups.
func TestSymptomRewriteBreaksApp(t *testing.T) {
	ctx := needEnv(t)
	tn := newTenant(t, ctx)
	tn.backend(t, ctx, "web", true)
	create(t, ctx, &networkingv1.IngressClass{ObjectMeta: metav1.ObjectMeta{Name: tn.ep},
		Spec: networkingv1.IngressClassSpec{Controller: edgev1alpha1.IngressControllerName}})
	create(t, ctx, ingress(tn, "shop", tn.ep, map[string]string{"nginx.ingress.kubernetes.io/rewrite-target": "/"}))
	r, err := Ingress(ctx, k8sClient, types.NamespacedName{Namespace: tn.ns, Name: "shop"}, Options{})
	must(t, err)
	show(t, r)
	wantStep(t, r, "IngressClass", OK, "")
	wantStep(t, r, "rewrite-target", Warning, "path rewrite breaks app")
}

const tlsRoute = `
metadata: {name: web, namespace: NS}
spec:
  edgeProxy: EP
  hostnames: [HOST]
  tls: [{secretName: web-tls}]
  rules:
  - backendRefs: [{name: web, port: 80}]
`

func ingress(tn tenant, name, class string, annotations map[string]string) *networkingv1.Ingress {
	prefix := networkingv1.PathTypePrefix
	return &networkingv1.Ingress{
		ObjectMeta: metav1.ObjectMeta{Namespace: tn.ns, Name: name, Annotations: annotations},
		Spec: networkingv1.IngressSpec{IngressClassName: ptr.To(class), Rules: []networkingv1.IngressRule{{
			Host: tn.host,
			IngressRuleValue: networkingv1.IngressRuleValue{HTTP: &networkingv1.HTTPIngressRuleValue{Paths: []networkingv1.HTTPIngressPath{{
				Path: "/api", PathType: &prefix,
				Backend: networkingv1.IngressBackend{Service: &networkingv1.IngressServiceBackend{Name: "web", Port: networkingv1.ServiceBackendPort{Number: 80}}},
			}}}},
		}}},
	}
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// explain from the cluster: the admitted routes of the EdgeProxy allowing the host, and the
// endpoints the operator's snapshot builder would send.
func TestExplainFromCluster(t *testing.T) {
	ctx := needEnv(t)
	tn := newTenant(t, ctx)
	tn.backend(t, ctx, "web", true, false)
	tn.route(t, ctx, basicRoute)
	tbl, err := FromCluster(ctx, k8sClient, tn.host, "", time.Now())
	must(t, err)
	ex := explain(t, tbl, Request{URL: "http://" + tn.host + "/anything"})
	if ex.EdgeProxy != tn.ep || ex.Route != tn.ns+"/web" || len(ex.Backends) != 1 || len(ex.Backends[0].Endpoints) != 1 ||
		ex.Backends[0].Endpoints[0] != "10.1.0.1:8080" {
		t.Fatalf("got edgeproxy %q route %q backends %+v", ex.EdgeProxy, ex.Route, ex.Backends)
	}
}
