package runner

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"google.golang.org/protobuf/proto"

	dpt "github.com/portico-dev/portico/dataplane/dataplanetest"
)

type lines struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lines) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lines) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func poll(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func freeAddr(t *testing.T) string { return strings.TrimPrefix(dpt.ClosedPort(t), "http://") }

const edgeProxy = `apiVersion: edge.portico.dev/v1alpha1
kind: EdgeProxy
metadata: {name: acme}
spec:
  proxyNamespace: acme-edge
  tenantNamespaces: {names: [team]}
  hostnames: [app.example]
  observability: %s
`

func directory(t *testing.T, backend string, observability string) string {
	t.Helper()
	u, _ := url.Parse(backend)
	dir := t.TempDir()
	write(t, dir, "edge.yaml", fmt.Sprintf(edgeProxy, observability))
	write(t, dir, "app.yaml", `apiVersion: edge.portico.dev/v1alpha1
kind: TenantRoute
metadata: {name: web, namespace: team}
spec:
  edgeProxy: acme
  hostnames: [app.example]
  rules: [{backendRefs: [{name: app, port: 80}]}]
---
apiVersion: v1
kind: Service
metadata: {name: app, namespace: team}
spec:
  ports: [{name: http, port: 80}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: app, namespace: team, labels: {kubernetes.io/service-name: app}}
addressType: IPv4
ports: [{name: http, port: `+u.Port()+`}]
endpoints: [{addresses: [127.0.0.1], conditions: {ready: true}}]
`)
	return dir
}

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

func get(t *testing.T, addr, host, path string) string {
	t.Helper()
	req, _ := http.NewRequest("GET", "http://"+addr+path, nil)
	req.Host = host
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("GET %s%s: %d %s", host, path, resp.StatusCode, b)
	}
	return string(b)
}

// The EdgeProxy in the directory names the tenant and overrides the flags: its text format and,
// later, its switch turning the log off and tracing on, apply without a restart.
func TestRunAppliesEdgeProxyObservability(t *testing.T) {
	app := dpt.NewEcho(t, "app")
	var spans atomic.Int64
	collector := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		data, _ := io.ReadAll(r.Body)
		var req coltracepb.ExportTraceServiceRequest
		if proto.Unmarshal(data, &req) == nil {
			for _, rs := range req.GetResourceSpans() {
				for _, ss := range rs.GetScopeSpans() {
					spans.Add(int64(len(ss.GetSpans())))
				}
			}
		}
		w.Header().Set("Content-Type", "application/x-protobuf")
	}))
	defer collector.Close()

	dir := directory(t, app.URL, "{accessLog: {format: Text}}")
	httpAddr, adminAddr := freeAddr(t), freeAddr(t)
	log := &lines{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- Run(ctx, Config{Files: dir, HTTPAddr: httpAddr, AdminAddr: adminAddr, ShutdownGrace: time.Millisecond,
			DrainTimeout: time.Second, AccessLog: true, AccessLogFormat: "json", AccessLogWriter: log,
			TracingSamplingPercent: 100, TracingBatchTimeout: 20 * time.Millisecond})
	}()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	}()
	poll(t, "readiness", func() bool {
		resp, err := http.Get("http://" + adminAddr + "/readyz")
		if err == nil {
			resp.Body.Close()
		}
		return err == nil && resp.StatusCode == 200
	})

	get(t, httpAddr, "app.example", "/first")
	poll(t, "a text access log line", func() bool { return strings.Contains(log.String(), `"GET /first HTTP/1.1" 200`) })
	if l := log.String(); !strings.HasPrefix(l, "127.0.0.1 - - [") || !strings.Contains(l, " tenant=acme namespace=team route=web ") {
		t.Errorf("line: %s", l)
	}
	metrics := func() string {
		resp, err := http.Get("http://" + adminAddr + "/metrics")
		if err != nil {
			return ""
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return string(b)
	}
	poll(t, "request metrics on the admin port", func() bool {
		return strings.Contains(metrics(), `portico_proxy_requests_total{backend="team/app:80",code_class="2xx",namespace="team",route="web",tenant="acme"} 1`)
	})
	if m := metrics(); !strings.Contains(m, `portico_proxy_snapshot_applies_total{result="applied",tenant="acme"} 1`) ||
		!strings.Contains(m, "go_goroutines") {
		t.Errorf("admin /metrics lacks snapshot or Go metrics")
	}

	// Access log off, tracing on, from the EdgeProxy.
	write(t, dir, "edge.yaml", fmt.Sprintf(edgeProxy, "{accessLog: {enabled: false}, tracing: {endpoint: "+
		strings.TrimPrefix(collector.URL, "http://")+", samplingPercent: 100}}"))
	poll(t, "the new EdgeProxy", func() bool {
		return strings.Contains(metrics(), `portico_proxy_snapshot_applies_total{result="applied",tenant="acme"} 2`)
	})
	echo := get(t, httpAddr, "app.example", "/second")
	if !strings.Contains(echo, `"Traceparent":["00-`) {
		t.Errorf("upstream got no traceparent: %s", echo)
	}
	poll(t, "spans at the collector", func() bool { return spans.Load() >= 2 })
	poll(t, "the request to finish", func() bool {
		return strings.Contains(metrics(), `portico_proxy_requests_total{backend="team/app:80",code_class="2xx",namespace="team",route="web",tenant="acme"} 2`) &&
			strings.Contains(metrics(), `portico_proxy_in_flight_requests{protocol="http1",tenant="acme"} 0`)
	})
	if strings.Contains(log.String(), "/second") {
		t.Errorf("logged with accessLog.enabled=false:\n%s", log.String())
	}
}

func TestRunRefusesBadObservabilityFlags(t *testing.T) {
	for _, c := range []Config{
		{Files: t.TempDir(), AccessLogFormat: "yaml"},
		{Files: t.TempDir(), TracingSamplingPercent: 150},
		{Files: t.TempDir(), AccessLogFile: filepath.Join(t.TempDir(), "missing", "access.log")},
	} {
		if err := Run(context.Background(), c); err == nil {
			t.Errorf("%+v accepted", c)
		}
	}
}
