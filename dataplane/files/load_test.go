package files

import (
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	gwapiv1 "sigs.k8s.io/gateway-api/apis/v1"

	edgev1alpha1 "github.com/portico-dev/portico/api/v1alpha1"
	dpt "github.com/portico-dev/portico/dataplane/dataplanetest"
	"github.com/portico-dev/portico/dataplane/proxy"
	"github.com/portico-dev/portico/dataplane/routing"
)

func write(t *testing.T, dir, name, content string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

func load(t *testing.T, dir string) *Config {
	t.Helper()
	c, err := Load(dir, proxy.Settings{}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// The shipped example must load cleanly, exactly as the README uses it.
func TestStandaloneExampleLoads(t *testing.T) {
	c := load(t, "../../examples/standalone")
	if len(c.Problems) != 0 {
		t.Fatalf("problems in examples/standalone: %v", c.Problems)
	}
	key := routing.BackendKey{Namespace: "demo", Name: "hello", Port: 80}
	eps := c.Endpoints[key]
	if len(eps) != 1 || eps[0].Addr != netip.MustParseAddrPort("127.0.0.1:9000") {
		t.Errorf("endpoints %v", c.Endpoints)
	}
	m, res := c.Table.Lookup(&routing.Request{Host: "hello.localhost", Path: "/api/users", Method: "GET"})
	if res != routing.Matched || m.Rule.Rewrite == nil {
		t.Errorf("lookup /api/users: %v %+v", res, m)
	}
}

const service = `
apiVersion: v1
kind: Service
metadata: {name: app, namespace: team}
spec:
  ports:
  - {name: http, port: 80, targetPort: 8080}
  - {name: grpc, port: 9090, appProtocol: kubernetes.io/h2c}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: app-1
  namespace: team
  labels: {kubernetes.io/service-name: app}
addressType: IPv4
ports:
- {name: http, port: 8080}
- {name: grpc, port: 9091}
endpoints:
- addresses: [10.0.0.1]
- addresses: [10.0.0.2]
  conditions: {ready: false}
- addresses: [10.0.0.3]
  conditions: {ready: true, terminating: true}
- addresses: [10.0.0.4]
  conditions: {ready: true}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: other
  namespace: team
  labels: {kubernetes.io/service-name: other}
addressType: IPv4
ports: [{name: http, port: 7000}]
endpoints: [{addresses: [10.9.9.9]}]
`

func TestEndpointsFromSlices(t *testing.T) {
	dir := t.TempDir()
	write(t, dir, "svc.yaml", service)
	c := load(t, dir)
	http := c.Endpoints[routing.BackendKey{Namespace: "team", Name: "app", Port: 80}]
	if len(http) != 2 || http[0].Addr.String() != "10.0.0.1:8080" || http[1].Addr.String() != "10.0.0.4:8080" {
		t.Errorf("http port endpoints %v (want ready, non-terminating, by port name)", http)
	}
	grpc := c.Endpoints[routing.BackendKey{Namespace: "team", Name: "app", Port: 9090}]
	if len(grpc) != 2 || grpc[0].Addr.Port() != 9091 || grpc[0].AppProtocol != "kubernetes.io/h2c" {
		t.Errorf("grpc port endpoints %v", grpc)
	}
}

func TestProblemsNameFileObjectAndField(t *testing.T) {
	dir := t.TempDir()
	write(t, dir, "a-unknown-field.yaml", `
apiVersion: edge.portico.dev/v1alpha1
kind: TenantRoute
metadata: {name: typo, namespace: team}
spec:
  edgeProxy: e
  hostnmes: [x.example]
  rules: [{backendRefs: [{name: app, port: 80}]}]
`)
	write(t, dir, "b-invalid-route.yaml", `
apiVersion: edge.portico.dev/v1alpha1
kind: TenantRoute
metadata: {name: bad, namespace: team}
spec:
  edgeProxy: e
  hostnames: [bad.example]
  rules:
  - matches: [{path: {type: PathPrefix, value: "no-slash"}}]
    backendRefs: [{name: app, port: 80}]
`)
	write(t, dir, "c-broken.yaml", "apiVersion: v1\nkind: Service\nmetadata: {name: x\n")
	write(t, dir, "d-ingress.yaml", "apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata: {name: ing}\n")
	write(t, dir, ".hidden.yaml", "this is not yaml: [")
	write(t, dir, "notes.txt", "ignored")
	c := load(t, dir)
	find := func(file string) *Problem {
		for i := range c.Problems {
			if c.Problems[i].File == file {
				return &c.Problems[i]
			}
		}
		t.Errorf("no problem reported for %s: %v", file, c.Problems)
		return &Problem{}
	}
	if p := find("a-unknown-field.yaml"); p.Object != "TenantRoute team/typo" || p.Field != "spec.hostnmes" && p.Field != "hostnmes" || p.Warning {
		t.Errorf("unknown field: %+v", *p)
	}
	if p := find("b-invalid-route.yaml"); p.Object != "TenantRoute team/bad" || !strings.Contains(p.Field, "spec.rules[0].matches[0].path") || p.Warning {
		t.Errorf("invalid route: %+v", *p)
	}
	if p := find("c-broken.yaml"); p.Warning {
		t.Errorf("broken YAML: %+v", *p)
	}
	if p := find("d-ingress.yaml"); !p.Warning {
		t.Errorf("unsupported kind should be a warning: %+v", *p)
	}
	for _, p := range c.Problems {
		if p.File == ".hidden.yaml" || p.File == "notes.txt" {
			t.Errorf("%s should be skipped", p.File)
		}
	}
}

// The EdgeProxy's admission is the operator's, injected (internal/filesmode tests it with the real
// one); here, that the directory's objects reach the hook and its verdicts and defaults are applied.
func TestEdgeProxyAdmissionHook(t *testing.T) {
	dir := t.TempDir()
	write(t, dir, "edge.yaml", `
apiVersion: edge.portico.dev/v1alpha1
kind: EdgeProxy
metadata: {name: edge}
spec:
  proxyNamespace: edge-system
  tenantNamespaces: {names: [team]}
  hostnames: ["*.team.example"]
  tls: {redirectHTTPToHTTPS: true}
  traffic: {trustedHops: 2}
---
apiVersion: v1
kind: Namespace
metadata: {name: team, labels: {tenant: "yes"}}
`)
	route := func(name, host string) string {
		return `
apiVersion: edge.portico.dev/v1alpha1
kind: TenantRoute
metadata: {name: ` + name + `, namespace: team}
spec:
  edgeProxy: edge
  hostnames: [` + host + `]
  rules: [{backendRefs: [{name: app, port: 80}]}]
---
`
	}
	write(t, dir, "routes.yaml", route("ok", "a.team.example")+route("refused", "b.team.example"))
	write(t, dir, "svc.yaml", service)
	var got AdmitInput
	hooks := Hooks{Admit: func(in AdmitInput) AdmitOutput {
		got = in
		return AdmitOutput{Defaults: routing.Defaults{MaxRequestBodyBytes: 2048}, Refused: map[int]string{1: "HostnameConflict: taken"}}
	}}
	c, err := LoadWith(dir, proxy.Settings{}, time.Now(), hooks)
	if err != nil {
		t.Fatal(err)
	}
	if got.EdgeProxy == nil || got.EdgeProxy.Name != "edge" || len(got.Routes) != 2 || got.NamespaceLabels["team"]["tenant"] != "yes" {
		t.Fatalf("admission input %+v", got)
	}
	if _, res := c.Table.Lookup(&routing.Request{Host: "b.team.example", Path: "/", Method: "GET"}); res == routing.Matched {
		t.Error("a refused route is served")
	}
	m, res := c.Table.Lookup(&routing.Request{Host: "a.team.example", Path: "/", Method: "GET"})
	if res != routing.Matched || m.Rule.Route.Policy.MaxRequestBodyBytes != 2048 {
		t.Errorf("admitted route: %v, defaults not applied: %+v", res, m)
	}
	if len(c.Errors()) != 0 || len(c.Problems) != 1 || !strings.Contains(c.Problems[0].Message, "HostnameConflict: taken") {
		t.Errorf("refusals must be warnings naming the reason: %v", c.Problems)
	}
	if !c.Settings.RedirectHTTPToHTTPS || c.Settings.TrustedHops != 2 || c.Settings.Tenant != "edge" {
		t.Errorf("settings %+v", c.Settings)
	}

	// Without the hook the routes are served, with a warning that nothing was checked.
	c = load(t, dir)
	if _, res := c.Table.Lookup(&routing.Request{Host: "b.team.example", Path: "/", Method: "GET"}); res != routing.Matched {
		t.Error("without an admission hook every route is served")
	}
	if len(c.Problems) != 1 || !c.Problems[0].Warning || c.Problems[0].Object != "EdgeProxy edge" {
		t.Errorf("want one warning on the EdgeProxy: %v", c.Problems)
	}
}

// Ingresses are translated by the injected hook; their routes are attributed to the Ingress's file,
// and a Service's ports (port names) change the routes digest.
func TestIngressTranslationHook(t *testing.T) {
	dir := t.TempDir()
	write(t, dir, "svc.yaml", service)
	write(t, dir, "ingress.yaml", `
apiVersion: networking.k8s.io/v1
kind: IngressClass
metadata: {name: nginx}
spec: {controller: edge.portico.dev/ingress-controller}
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: web, namespace: team}
spec:
  ingressClassName: nginx
  rules:
  - host: web.example
    http:
      paths:
      - {path: /v1, pathType: Prefix, backend: {service: {name: app, port: {name: no-such-port}}}}
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: other, namespace: team}
spec: {ingressClassName: other}
`)
	if c := load(t, dir); len(c.Problems) != 2 || !c.Problems[0].Warning || c.Problems[0].Object != "Ingress team/web" {
		t.Errorf("without a translation hook Ingresses are ignored with a warning: %v", c.Problems)
	}
	hooks := Hooks{TranslateIngress: func(in IngressInput) IngressOutput {
		if in.Ingress.Name == "other" {
			return IngressOutput{Ignored: "not Portico's"}
		}
		if len(in.IngressClasses) != 1 || len(in.Services) != 1 || len(in.Ingresses) != 2 {
			t.Errorf("translation input: %d classes, %d services, %d ingresses", len(in.IngressClasses), len(in.Services), len(in.Ingresses))
		}
		tr := testRoute("ingress-web", "web.example")
		return IngressOutput{Routes: []edgev1alpha1.TenantRoute{tr},
			Problems: []Finding{{Field: "metadata.annotations[x]", Message: "ignored", Warning: true}}}
	}}
	c, err := LoadWith(dir, proxy.Settings{}, time.Now(), hooks)
	if err != nil {
		t.Fatal(err)
	}
	if _, res := c.Table.Lookup(&routing.Request{Host: "web.example", Path: "/", Method: "GET"}); res != routing.Matched {
		t.Errorf("translated route not served; problems %v", c.Problems)
	}
	if len(c.Problems) != 2 || c.Problems[0].File != "ingress.yaml" || c.Problems[0].Field != "metadata.annotations[x]" ||
		c.Problems[1].Message != "not Portico's" {
		t.Errorf("problems %v", c.Problems)
	}
	before := c.RoutesDigest
	write(t, dir, "svc.yaml", strings.Replace(service, "name: http, port: 80", "name: web, port: 80", 1))
	if c, _ := LoadWith(dir, proxy.Settings{}, time.Now(), hooks); c.RoutesDigest == before {
		t.Error("a Service port rename must change the routes digest when Ingresses are present")
	}
}

func testRoute(name, host string) edgev1alpha1.TenantRoute {
	port := gwapiv1.PortNumber(80)
	return edgev1alpha1.TenantRoute{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "team"},
		Spec: edgev1alpha1.TenantRouteSpec{
			EdgeProxy: "e",
			Hostnames: []edgev1alpha1.Hostname{edgev1alpha1.Hostname(host)},
			Rules: []edgev1alpha1.TenantRouteRule{{BackendRefs: []gwapiv1.HTTPBackendRef{{BackendRef: gwapiv1.BackendRef{
				BackendObjectReference: gwapiv1.BackendObjectReference{Name: "app", Port: &port}}}}}},
		},
	}
}

func TestRoutesDigestIgnoresEndpoints(t *testing.T) {
	dir := t.TempDir()
	write(t, dir, "svc.yaml", service)
	write(t, dir, "route.yaml", `
apiVersion: edge.portico.dev/v1alpha1
kind: TenantRoute
metadata: {name: r, namespace: team}
spec:
  edgeProxy: e
  hostnames: [app.example]
  rules: [{backendRefs: [{name: app, port: 80}]}]
`)
	a := load(t, dir)
	write(t, dir, "svc.yaml", strings.Replace(service, "10.0.0.1", "10.0.0.5", 1))
	b := load(t, dir)
	if a.RoutesDigest != b.RoutesDigest {
		t.Error("an EndpointSlice change altered the routes digest")
	}
	write(t, dir, "route.yaml", strings.Replace(`
apiVersion: edge.portico.dev/v1alpha1
kind: TenantRoute
metadata: {name: r, namespace: team}
spec:
  edgeProxy: e
  hostnames: [app.example]
  rules: [{backendRefs: [{name: app, port: 80}]}]
`, "app.example", "new.example", 1))
	if load(t, dir).RoutesDigest == b.RoutesDigest {
		t.Error("a route change kept the digest")
	}
}

// Gateway API objects reach the translation hook (v1 and v1beta1 alike, namespaces defaulted,
// Secrets' stringData merged into data); the TenantRoutes it returns are served, and a listener
// certificate of another namespace is served to the route under the alias "<namespace>.<name>".
func TestGatewayAPITranslationHook(t *testing.T) {
	dir := t.TempDir()
	ca := dpt.NewCA(t)
	certPEM, keyPEM, _ := ca.Issue(t, "web.example")
	indent := func(b []byte) string {
		return "    " + strings.ReplaceAll(strings.TrimSpace(string(b)), "\n", "\n    ")
	}
	write(t, dir, "gateway.yaml", `
apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata: {name: portico}
spec: {controllerName: edge.portico.dev/gateway-controller}
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: gw, namespace: infra}
spec:
  gatewayClassName: portico
  listeners: [{name: http, protocol: HTTP, port: 80}]
---
apiVersion: gateway.networking.k8s.io/v1beta1
kind: HTTPRoute
metadata: {name: web}
spec:
  parentRefs: [{name: gw, namespace: infra}]
---
apiVersion: gateway.networking.k8s.io/v1beta1
kind: ReferenceGrant
metadata: {name: g, namespace: infra}
spec:
  from: [{group: gateway.networking.k8s.io, kind: HTTPRoute, namespace: default}]
  to: [{group: "", kind: Service}]
---
apiVersion: v1
kind: Secret
metadata: {name: web-tls, namespace: infra}
type: kubernetes.io/tls
stringData:
  tls.crt: |
`+indent(certPEM)+`
  tls.key: |
`+indent(keyPEM)+"\n")
	if c := load(t, dir); len(c.Problems) != 4 || !c.Problems[0].Warning || c.Problems[2].Object != "HTTPRoute default/web" {
		t.Errorf("without a translation hook Gateway API objects are ignored with a warning: %v", c.Problems)
	}
	hooks := Hooks{TranslateGatewayAPI: func(in GatewayAPIInput) GatewayAPIOutput {
		if len(in.GatewayClasses) != 1 || len(in.Gateways) != 1 || len(in.HTTPRoutes) != 1 || len(in.ReferenceGrants) != 1 ||
			in.HTTPRoutes[0].Namespace != "default" || len(in.Secrets) != 1 || len(in.Secrets[0].Data["tls.crt"]) == 0 {
			t.Errorf("translation input: %+v", in)
		}
		tr := testRoute("httproute-web", "web.example")
		tr.Namespace = "default"
		return GatewayAPIOutput{
			Gateways: []GatewayOutput{{Problems: []Finding{{Field: "spec.listeners[0]", Message: "listener", Warning: true}}}},
			HTTPRoutes: []HTTPRouteOutput{{Routes: []edgev1alpha1.TenantRoute{tr},
				Certificates: []Certificate{{Route: "httproute-web", Hosts: []string{"web.example"}, Secret: types.NamespacedName{Namespace: "infra", Name: "web-tls"}}},
				Problems:     []Finding{{Field: "spec.parentRefs[0]", Message: "refused", Warning: true}}}},
		}
	}}
	c, err := LoadWith(dir, proxy.Settings{}, time.Now(), hooks)
	if err != nil {
		t.Fatal(err)
	}
	if _, res := c.Table.Lookup(&routing.Request{Host: "web.example", Path: "/", Method: "GET"}); res != routing.Matched {
		t.Errorf("translated route not served; problems %v", c.Problems)
	}
	alias := types.NamespacedName{Namespace: "default", Name: "infra.web-tls"}
	if sec, ok := c.Table.TLSSecretFor("web.example"); !ok || sec.Secret != alias || c.Keypairs[alias] == nil ||
		c.Keypairs[alias] != c.Keypairs[types.NamespacedName{Namespace: "infra", Name: "web-tls"}] {
		t.Errorf("listener certificate: %+v %v", sec, c.Keypairs)
	}
	var got []string
	for _, p := range c.Problems {
		if !strings.Contains(p.Message, "requests will get 503") {
			got = append(got, p.Object+" "+p.Field+" "+p.Message)
		}
	}
	if want := "Gateway infra/gw spec.listeners[0] listener,HTTPRoute default/web spec.parentRefs[0] refused"; strings.Join(got, ",") != want {
		t.Errorf("problems %q, want %q", got, want)
	}
	before := c.RoutesDigest
	write(t, dir, "svc.yaml", service)
	if c, _ := LoadWith(dir, proxy.Settings{}, time.Now(), hooks); c.RoutesDigest == before {
		t.Error("Services must change the routes digest when HTTPRoutes are present")
	}
}
