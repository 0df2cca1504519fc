package metrics_test

import (
	"bufio"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/apimachinery/pkg/types"

	dpt "github.com/portico-dev/portico/dataplane/dataplanetest"
	"github.com/portico-dev/portico/dataplane/metrics"
	"github.com/portico-dev/portico/dataplane/proxy"
	"github.com/portico-dev/portico/dataplane/requestcheck"
	"github.com/portico-dev/portico/dataplane/routing"
	"github.com/portico-dev/portico/dataplane/server"
	"github.com/portico-dev/portico/dataplane/tlsstore"
	"github.com/portico-dev/portico/dataplane/upstream"
)

const routes = `
metadata: {name: web}
spec:
  hostnames: [app.example]
  tls: [{secretName: app-tls}]
  policy: {maxRequestBodySize: "16"}
  rules:
  - backendRefs: [{name: app, port: 80}]
  - matches: [{path: {type: PathPrefix, value: /slow}}]
    timeouts: {backendRequest: 100ms}
    backendRefs: [{name: app, port: 80}]
  - matches: [{path: {type: PathPrefix, value: /empty}}]
    backendRefs: [{name: missing, port: 80}]
  - matches: [{path: {type: PathPrefix, value: /down}}]
    retry: {attempts: 1}
    backendRefs: [{name: down, port: 80}]
`

type env struct {
	h    *dpt.Harness
	reg  *prometheus.Registry
	m    *metrics.Metrics
	ca   *dpt.CA
	kp   tlsstore.Keypairs
	http *http.Client
}

func start(t *testing.T) *env {
	t.Helper()
	e := &env{reg: prometheus.NewRegistry()}
	e.m = metrics.New(e.reg, metrics.Options{
		InFlight:         func() (int64, int64) { return e.h.Proxy.InFlightByProtocol() },
		EjectedEndpoints: func() int { return e.h.Endpoints.Health.EjectedCount() },
		AccessLogDropped: func() uint64 { return 0 }, AccessLogWriteFailures: func() uint64 { return 0 },
	})
	e.h = dpt.Start(t, dpt.Options{Proxy: proxy.Options{Observer: e.m}, Server: server.Config{
		Registry: e.reg, OnConnState: e.m.ConnState, OnHandshake: e.m.Handshake,
		OnReject: func(r *requestcheck.Rejection, _ net.Addr) { e.m.Rejected(r) },
	}})
	e.h.Dataplane.OnRoutes = e.m.Applied
	app := dpt.NewEcho(t, "app")
	e.h.Dataplane.SetEndpoints(upstream.Endpoints{
		dpt.Key("app"):  {dpt.EndpointOf(t, app.URL)},
		dpt.Key("down"): {dpt.EndpointOf(t, dpt.ClosedPort(t)), dpt.EndpointOf(t, dpt.ClosedPort(t))},
	})
	e.ca = dpt.NewCA(t)
	e.kp = tlsstore.Keypairs{}
	_, _, e.kp[types.NamespacedName{Namespace: "team", Name: "app-tls"}] = e.ca.Issue(t, "app.example")
	e.h.Apply(t, dpt.Routes(t, routes), e.kp, proxy.Settings{Tenant: "acme"})
	tr := &http.Transport{}
	t.Cleanup(tr.CloseIdleConnections)
	e.http = &http.Client{Transport: tr, Timeout: 10 * time.Second}
	return e
}

func (e *env) do(t *testing.T, method, host, target string, body string) int {
	t.Helper()
	var r io.Reader
	if body != "" {
		r = strings.NewReader(body)
	}
	req, _ := http.NewRequest(method, "http://"+e.h.HTTP+target, r)
	req.Host = host
	resp, err := e.http.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

// sequence sends a known set of requests and returns when each got its answer.
func (e *env) sequence(t *testing.T) {
	t.Helper()
	for _, s := range []struct {
		method, host, target, body string
		status                     int
	}{
		{"GET", "app.example", "/", "", 200},
		{"GET", "app.example", "/a", "", 200},
		{"POST", "app.example", "/b", "12345", 200},
		{"GET", "nobody.example", "/", "", 404},
		{"GET", "app.example", "/empty", "", 503},
		{"GET", "app.example", "/slow/sleep?d=5s", "", 504},
		{"POST", "app.example", "/upload", strings.Repeat("x", 100), 413},
		{"GET", "app.example", "/down", "", 502},
	} {
		if got := e.do(t, s.method, s.host, s.target, s.body); got != s.status {
			t.Fatalf("%s %s%s: %d, want %d", s.method, s.host, s.target, got, s.status)
		}
	}
	// A request the raw checks refuse.
	c, err := net.Dial("tcp", e.h.HTTP)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_, _ = io.WriteString(c, "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n")
	if resp, err := http.ReadResponse(bufio.NewReader(c), nil); err != nil || resp.StatusCode != 400 {
		t.Fatalf("raw refusal: %v %v", resp, err)
	}
}

func TestRequestMetricsAfterKnownSequence(t *testing.T) {
	e := start(t)
	e.sequence(t)

	want := `# HELP portico_proxy_requests_total Requests served, by route, backend and status code class.
# TYPE portico_proxy_requests_total counter
portico_proxy_requests_total{backend="_other",code_class="4xx",namespace="_other",route="_other",tenant="acme"} 2
portico_proxy_requests_total{backend="_other",code_class="4xx",namespace="team",route="web",tenant="acme"} 1
portico_proxy_requests_total{backend="team/app:80",code_class="2xx",namespace="team",route="web",tenant="acme"} 3
portico_proxy_requests_total{backend="team/app:80",code_class="5xx",namespace="team",route="web",tenant="acme"} 1
portico_proxy_requests_total{backend="team/down:80",code_class="5xx",namespace="team",route="web",tenant="acme"} 1
portico_proxy_requests_total{backend="team/missing:80",code_class="5xx",namespace="team",route="web",tenant="acme"} 1
# HELP portico_proxy_local_responses_total Answers the proxy made itself (no_route, no_endpoints, upstream_timeout, body_too_large, misdirected, rejected_request, redirects...), by reason.
# TYPE portico_proxy_local_responses_total counter
portico_proxy_local_responses_total{namespace="_other",reason="no_route",route="_other",tenant="acme"} 1
portico_proxy_local_responses_total{namespace="_other",reason="rejected_request",route="_other",tenant="acme"} 1
portico_proxy_local_responses_total{namespace="team",reason="body_too_large",route="web",tenant="acme"} 1
portico_proxy_local_responses_total{namespace="team",reason="no_endpoints",route="web",tenant="acme"} 1
portico_proxy_local_responses_total{namespace="team",reason="upstream_connect_failed",route="web",tenant="acme"} 1
portico_proxy_local_responses_total{namespace="team",reason="upstream_timeout",route="web",tenant="acme"} 1
# HELP portico_proxy_upstream_connect_errors_total Failed connection attempts to backend endpoints.
# TYPE portico_proxy_upstream_connect_errors_total counter
portico_proxy_upstream_connect_errors_total{backend="team/down:80",tenant="acme"} 2
# HELP portico_proxy_upstream_ejections_total Endpoints taken out of rotation by passive health checks.
# TYPE portico_proxy_upstream_ejections_total counter
portico_proxy_upstream_ejections_total{backend="team/down:80",tenant="acme"} 2
# HELP portico_proxy_upstream_retries_total Attempts on another endpoint after a failed connection.
# TYPE portico_proxy_upstream_retries_total counter
portico_proxy_upstream_retries_total{backend="team/down:80",tenant="acme"} 1
# HELP portico_proxy_upstream_timeouts_total Requests answered 504 because the backend or request timeout expired.
# TYPE portico_proxy_upstream_timeouts_total counter
portico_proxy_upstream_timeouts_total{backend="team/app:80",tenant="acme"} 1
# HELP portico_proxy_request_bytes_total Request body bytes received from clients.
# TYPE portico_proxy_request_bytes_total counter
portico_proxy_request_bytes_total{backend="team/app:80",namespace="team",route="web",tenant="acme"} 5
`
	names := []string{"portico_proxy_requests_total", "portico_proxy_local_responses_total",
		"portico_proxy_upstream_connect_errors_total", "portico_proxy_upstream_ejections_total",
		"portico_proxy_upstream_retries_total", "portico_proxy_upstream_timeouts_total", "portico_proxy_request_bytes_total"}
	// The last exchange is counted as its handler returns, which may be just after the client
	// read the answer.
	eventually(t, func() error {
		if diff := cmp.Diff(sortFamilies(want), sortFamilies(exposition(t, e.reg, names...))); diff != "" {
			return fmt.Errorf("metrics (-want +got):\n%s", diff)
		}
		return nil
	})
	if n := value(t, e.reg, "portico_proxy_request_duration_seconds", "route", "web", "backend", "team/app:80", "code_class", "2xx"); n != 3 {
		t.Errorf("duration histogram counted %v requests, want 3", n)
	}
	if v := value(t, e.reg, "portico_proxy_response_bytes_total", "route", "web", "backend", "team/app:80"); v < 100 {
		t.Errorf("response bytes %v", v)
	}
	if v := value(t, e.reg, "portico_proxy_upstream_ejected_endpoints"); v != 2 {
		t.Errorf("ejected endpoints %v, want 2", v)
	}
	for _, proto := range []string{"http1", "http2"} {
		if v := value(t, e.reg, "portico_proxy_in_flight_requests", "protocol", proto); v != 0 {
			t.Errorf("%s requests in flight: %v", proto, v)
		}
	}
	if v := value(t, e.reg, "portico_proxy_connections_total", "listener", "http", "tenant", "acme"); v < 2 {
		t.Errorf("accepted connections %v", v)
	}
}

// sortFamilies makes the comparison independent of the order families are gathered in.
func sortFamilies(s string) string {
	blocks := strings.Split(strings.TrimSpace(s), "# HELP ")
	for i := range blocks {
		blocks[i] = strings.TrimSpace(blocks[i])
	}
	slices.Sort(blocks)
	return strings.Join(blocks, "\n# HELP ")
}

func TestSnapshotAndCertificateMetrics(t *testing.T) {
	e := start(t)
	e.m.Built(true, 3*time.Millisecond)
	e.m.Built(false, time.Millisecond)
	leaf := e.kp[types.NamespacedName{Namespace: "team", Name: "app-tls"}].Leaf
	want := fmt.Sprintf(`# HELP portico_proxy_certificate_expiry_timestamp_seconds NotAfter of each served certificate, by its Secret.
# TYPE portico_proxy_certificate_expiry_timestamp_seconds gauge
portico_proxy_certificate_expiry_timestamp_seconds{namespace="team",secret="app-tls",tenant="acme"} %g
# HELP portico_proxy_snapshot_applies_total Configurations received: applied, or rejected (the last good one keeps serving).
# TYPE portico_proxy_snapshot_applies_total counter
portico_proxy_snapshot_applies_total{result="applied",tenant="acme"} 1
portico_proxy_snapshot_applies_total{result="rejected",tenant="acme"} 1
# HELP portico_proxy_snapshot_info The configuration being served: 1 for its version.
# TYPE portico_proxy_snapshot_info gauge
portico_proxy_snapshot_info{tenant="acme",version="test"} 1
`, float64(leaf.NotAfter.Unix()))
	got := exposition(t, e.reg, "portico_proxy_certificate_expiry_timestamp_seconds", "portico_proxy_snapshot_applies_total",
		"portico_proxy_snapshot_info")
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	if v := value(t, e.reg, "portico_proxy_snapshot_last_apply_timestamp_seconds"); time.Since(time.Unix(int64(v), 0)) > time.Minute {
		t.Errorf("last apply %v", v)
	}
	if n := value(t, e.reg, "portico_proxy_snapshot_build_duration_seconds"); n != 2 {
		t.Errorf("build durations observed %v", n)
	}
	// A new table without TLS: its certificate is no longer served, its series goes.
	e.h.Apply(t, dpt.Routes(t, `
metadata: {name: plain}
spec:
  rules: [{backendRefs: [{name: app, port: 80}]}]
`), e.kp, proxy.Settings{Tenant: "acme"})
	if got := exposition(t, e.reg, "portico_proxy_certificate_expiry_timestamp_seconds"); got != "" {
		t.Errorf("certificate still reported:\n%s", got)
	}
}

func TestTLSHandshakeMetrics(t *testing.T) {
	e := start(t)
	dial := func(sni string) error {
		c, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", e.h.HTTPS,
			&tls.Config{ServerName: sni, RootCAs: e.ca.Pool()})
		if err == nil {
			c.Close()
		}
		return err
	}
	if err := dial("app.example"); err != nil {
		t.Fatal(err)
	}
	if err := dial("unknown.example"); err == nil {
		t.Fatal("handshake for an unknown name succeeded")
	}
	eventually(t, func() error {
		ok := value(t, e.reg, "portico_proxy_tls_handshakes_total", "version", "1.3")
		bad := value(t, e.reg, "portico_proxy_tls_handshake_errors_total", "reason", "unknown_server_name")
		if ok != 1 || bad != 1 {
			return fmt.Errorf("handshakes %v, unknown_server_name failures %v; want 1 and 1", ok, bad)
		}
		return nil
	})
}

// Names follow Prometheus conventions, and every metric the proxy registers is linted.
func TestMetricNamesLint(t *testing.T) {
	e := start(t)
	e.sequence(t)
	e.m.Built(true, time.Millisecond)
	rec := &recorder{Registerer: prometheus.NewRegistry()}
	metrics.New(rec, metrics.Options{InFlight: func() (int64, int64) { return 0, 0 },
		EjectedEndpoints: func() int { return 0 }, AccessLogDropped: func() uint64 { return 0 },
		AccessLogWriteFailures: func() uint64 { return 0 }})
	for _, p := range lint(t, e.reg) {
		t.Errorf("%s: %s", p.Metric, p.Text)
	}
	mfs, _ := e.reg.Gather()
	gathered := map[string]bool{}
	for _, mf := range mfs {
		gathered[mf.GetName()] = true
	}
	for _, name := range rec.names() {
		if !strings.HasPrefix(name, "portico_proxy_") {
			t.Errorf("%s is not portico_proxy_*", name)
		}
		if !gathered[name] {
			t.Errorf("%s was not exercised, so not linted", name)
		}
	}
}

// Counting a request allocates nothing once its series exist.
func TestObserveDoesNotAllocate(t *testing.T) {
	m := metrics.New(prometheus.NewRegistry(), metrics.Options{})
	table := dpt.Build(t, "v1", dpt.Routes(t, routes))
	match, res := table.Lookup(&routing.Request{Host: "app.example", Path: "/", Method: "GET", Header: http.Header{}})
	if res != routing.Matched {
		t.Fatal("no rule")
	}
	m.Applied(table, nil, proxy.Settings{Tenant: "acme"})
	for _, ex := range []*proxy.Exchange{
		{Tenant: "acme", Rule: match.Rule, Backend: dpt.Key("app"), Status: 200, Duration: time.Millisecond,
			BytesRead: 10, BytesWritten: 100, Attempts: 1},
		{Tenant: "acme", Status: 404, Reason: proxy.ReasonNoRoute, BytesWritten: 20},
	} {
		m.Observe(ex)
		if n := testing.AllocsPerRun(1000, func() { m.Observe(ex) }); n != 0 {
			t.Errorf("Observe of a %d allocates %v times per request", ex.Status, n)
		}
	}
}
