package filesmode_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	dpt "github.com/portico-dev/portico/dataplane/dataplanetest"
	"github.com/portico-dev/portico/dataplane/files"
	"github.com/portico-dev/portico/dataplane/proxy"
	"github.com/portico-dev/portico/dataplane/routing"
	"github.com/portico-dev/portico/internal/filesmode"
	"github.com/portico-dev/portico/internal/testenv"
)

func write(t *testing.T, dir, name, content string) {
	t.Helper()
	tmp := filepath.Join(dir, ".tmp-"+name)
	if err := os.WriteFile(tmp, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(dir, name)); err != nil {
		t.Fatal(err)
	}
}

func sourceExample(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(testenv.RepoRoot(), "test", "testdata", "source-examples", name))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// nginxClass is the IngressClass "nginx" pointing at Portico, as after a migration.
const nginxClass = `
apiVersion: networking.k8s.io/v1
kind: IngressClass
metadata: {name: nginx}
spec:
  controller: edge.portico.dev/ingress-controller
  parameters: {apiGroup: edge.portico.dev, kind: EdgeProxy, name: local, scope: Cluster}
`

// backendYAML is a Service of namespace app with one port 80 and an EndpointSlice sending it to a
// backend on 127.0.0.1.
func backendYAML(t *testing.T, name string, b *dpt.Backend) string {
	t.Helper()
	host, port, err := net.SplitHostPort(strings.TrimPrefix(b.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	return `
---
apiVersion: v1
kind: Service
metadata: {name: ` + name + `, namespace: app}
spec:
  ports: [{name: http, port: 80}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: ` + name + `-1, namespace: app, labels: {kubernetes.io/service-name: ` + name + `}}
addressType: IPv4
ports: [{name: http, port: ` + port + `}]
endpoints: [{addresses: [` + host + `]}]
`
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// get sends GET host+path to addr and returns the status and the backend that answered.
func get(t *testing.T, c *http.Client, addr, host, path string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest("GET", "http://"+addr+path, nil)
	req.Host = host
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("GET %s%s: %v", host, path, err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode, resp.Header.Get("X-Backend")
}

// A directory of plain Ingress YAML, the source document's host-path-routing.yaml unchanged, served
// over real HTTP on 127.0.0.1 through the operator's translation, then a TLS Ingress with its Secret,
// then a refused snippet that keeps the last good configuration serving.
func TestServesIngressDirectory(t *testing.T) {
	dir := t.TempDir()
	h := dpt.Start(t, dpt.Options{})
	frontend, api, admin := dpt.NewEcho(t, "frontend"), dpt.NewEcho(t, "web-api"), dpt.NewEcho(t, "admin-ui")
	write(t, dir, "class.yaml", nginxClass)
	write(t, dir, "backends.yaml", backendYAML(t, "frontend", frontend)+backendYAML(t, "web-api", api)+backendYAML(t, "admin-ui", admin))
	write(t, dir, "host-path-routing.yaml", sourceExample(t, "host-path-routing.yaml"))

	var logs syncBuffer
	src := files.NewSource(files.Options{Dir: dir, Debounce: 50 * time.Millisecond, Hooks: filesmode.Hooks(),
		Logger: slog.New(slog.NewJSONHandler(&logs, nil))}, h.Dataplane)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if err := src.Start(ctx); err != nil {
		t.Fatal(err)
	}
	c := &http.Client{Timeout: 5 * time.Second}
	for _, tc := range []struct {
		host, path string
		status     int
		backend    string
	}{
		{"app.example.com", "/", 200, "frontend"},
		{"app.example.com", "/api", 200, "web-api"},
		{"app.example.com", "/api/users", 200, "web-api"},
		{"app.example.com", "/apocalypse", 200, "frontend"}, // Prefix matches whole segments
		{"admin.example.com", "/settings", 200, "admin-ui"},
		{"unknown.example.com", "/", 404, ""},
	} {
		status, backend := get(t, c, h.HTTP, tc.host, tc.path)
		if status != tc.status || backend != tc.backend {
			t.Errorf("%s%s: %d from %q, want %d from %q", tc.host, tc.path, status, backend, tc.status, tc.backend)
		}
	}
	if strings.Contains(logs.String(), `"level":"ERROR"`) {
		t.Errorf("errors loading the directory: %s", logs.String())
	}

	t.Run("TLS from a Secret", func(t *testing.T) {
		ca := dpt.NewCA(t)
		certPEM, keyPEM, _ := ca.Issue(t, "api.example.com")
		indent := func(s string) string { return "    " + strings.ReplaceAll(strings.TrimSpace(s), "\n", "\n    ") }
		write(t, dir, "secret.yaml", `
apiVersion: v1
kind: Secret
metadata: {name: api-example-com-tls, namespace: app}
type: kubernetes.io/tls
stringData:
  tls.crt: |
`+indent(string(certPEM))+`
  tls.key: |
`+indent(string(keyPEM))+"\n")
		write(t, dir, "tls-ingress.yaml", sourceExample(t, "tls-ingress.yaml"))
		tc := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
			TLSClientConfig: &tls.Config{ServerName: "api.example.com", RootCAs: ca.Pool()}}}
		eventually(t, "the TLS Ingress to be served", func() bool {
			req, _ := http.NewRequest("GET", "https://"+h.HTTPS+"/", nil)
			req.Host = "api.example.com"
			resp, err := tc.Do(req)
			if err != nil {
				return false
			}
			resp.Body.Close()
			return resp.StatusCode == 200 && resp.Header.Get("X-Backend") == "web-api"
		})
	})

	t.Run("a refused snippet keeps the last good configuration", func(t *testing.T) {
		refused := strings.Replace(sourceExample(t, "host-path-routing.yaml"), "  namespace: app\n",
			"  namespace: app\n  annotations:\n    nginx.ingress.kubernetes.io/server-snippet: \"return 200;\"\n", 1)
		refused = strings.ReplaceAll(refused, "admin.example.com", "new.example.com")
		write(t, dir, "host-path-routing.yaml", refused)
		eventually(t, "the refusal to be logged", func() bool {
			l := logs.String()
			return strings.Contains(l, `"object":"Ingress app/platform-routes"`) &&
				strings.Contains(l, `"field":"metadata.annotations[nginx.ingress.kubernetes.io/server-snippet]"`)
		})
		if status, _ := get(t, c, h.HTTP, "new.example.com", "/"); status != 404 {
			t.Errorf("a host of the refused version is served: %d", status)
		}
		if status, backend := get(t, c, h.HTTP, "admin.example.com", "/"); status != 200 || backend != "admin-ui" {
			t.Errorf("the last good configuration stopped serving: %d from %q", status, backend)
		}
	})
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// The directory's EdgeProxy admits routes exactly as the operator does (controllers/admission):
// served namespaces by name or label, allowed hostnames (a wildcard allows one label), and a
// hostname claimed by two namespaces belongs to one.
func TestAdmissionIsTheOperators(t *testing.T) {
	dir := t.TempDir()
	write(t, dir, "edge.yaml", `
apiVersion: edge.portico.dev/v1alpha1
kind: EdgeProxy
metadata: {name: edge}
spec:
  proxyNamespace: edge-system
  tenantNamespaces:
    names: [team, rival]
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
		route("outsider", "elsewhere", "edge", "c.team.example")+
		route("squatter", "rival", "edge", "a.team.example"))
	c, err := files.LoadWith(dir, proxy.Settings{}, time.Now(), filesmode.Hooks())
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		host   string
		served bool
	}{{"a.team.example", true}, {"exact.example", true}, {"a.b.team.example", false}, {"b.team.example", false}, {"c.team.example", false}} {
		_, res := c.Table.Lookup(&routing.Request{Host: tc.host, Path: "/", Method: "GET"})
		if (res == routing.Matched) != tc.served {
			t.Errorf("%s served=%v, want %v", tc.host, res == routing.Matched, tc.served)
		}
	}
	m, _ := c.Table.Lookup(&routing.Request{Host: "a.team.example", Path: "/", Method: "GET"})
	if m.Rule.Route.Namespace != "rival" && m.Rule.Route.Namespace != "team" || m.Rule.Route.Policy.MaxRequestBodyBytes != 2048 {
		t.Errorf("a.team.example: %+v", m.Rule.Route)
	}
	var conflicts, refusals int
	for _, p := range c.Problems {
		if !p.Warning {
			t.Errorf("admission refusals must be warnings: %v", p)
		}
		if strings.Contains(p.Message, "not served: ") {
			refusals++
		}
		if strings.Contains(p.Message, "HostnameConflict") {
			conflicts++
		}
	}
	if refusals != 4 || conflicts != 1 {
		t.Errorf("want 4 refusals, one a hostname conflict: %v", c.Problems)
	}
	if !c.Settings.RedirectHTTPToHTTPS || c.Settings.TrustedHops != 2 {
		t.Errorf("settings %+v", c.Settings)
	}
}
