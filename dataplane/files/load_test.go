package files

import (
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

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

func TestEdgeProxyAdmissionAndDefaults(t *testing.T) {
	dir := t.TempDir()
	write(t, dir, "edge.yaml", `
apiVersion: edge.portico.dev/v1alpha1
kind: EdgeProxy
metadata: {name: edge}
spec:
  proxyNamespace: edge-system
  tenantNamespaces:
    names: [team]
    selector: {matchLabels: {tenant: "yes"}}
  hostnames: ["*.team.example", exact.example]
  tls: {redirectHTTPToHTTPS: true}
  traffic: {maxRequestBodySize: 2Ki, trustedHops: 2}
---
apiVersion: v1
kind: Namespace
metadata: {name: labelled, labels: {tenant: "yes"}}
`)
	route := func(name, ns, edge, host string) string {
		return `
apiVersion: edge.portico.dev/v1alpha1
kind: TenantRoute
metadata: {name: ` + name + `, namespace: ` + ns + `}
spec:
  edgeProxy: ` + edge + `
  hostnames: [` + host + `]
  rules: [{backendRefs: [{name: app, port: 80}]}]
---
`
	}
	write(t, dir, "routes.yaml", route("ok", "team", "edge", "a.team.example")+
		route("exact", "labelled", "edge", "exact.example")+
		route("deep", "team", "edge", "a.b.team.example")+
		route("othered", "team", "other", "b.team.example")+
		route("outsider", "elsewhere", "edge", "c.team.example"))
	c := load(t, dir)
	for _, tc := range []struct {
		host   string
		served bool
	}{{"a.team.example", true}, {"exact.example", true}, {"a.b.team.example", false}, {"b.team.example", false}, {"c.team.example", false}} {
		_, res := c.Table.Lookup(&routing.Request{Host: tc.host, Path: "/", Method: "GET"})
		if (res == routing.Matched) != tc.served {
			t.Errorf("%s served=%v, want %v", tc.host, res == routing.Matched, tc.served)
		}
	}
	if len(c.Errors()) != 0 {
		t.Errorf("admission refusals must be warnings: %v", c.Errors())
	}
	m, _ := c.Table.Lookup(&routing.Request{Host: "a.team.example", Path: "/", Method: "GET"})
	if m.Rule.Route.Policy.MaxRequestBodyBytes != 2048 {
		t.Errorf("EdgeProxy body limit not applied: %d", m.Rule.Route.Policy.MaxRequestBodyBytes)
	}
	if !c.Settings.RedirectHTTPToHTTPS || c.Settings.TrustedHops != 2 {
		t.Errorf("settings %+v", c.Settings)
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
