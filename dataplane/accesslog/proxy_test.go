package accesslog_test

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/types"

	"github.com/portico-dev/portico/dataplane/accesslog"
	dpt "github.com/portico-dev/portico/dataplane/dataplanetest"
	"github.com/portico-dev/portico/dataplane/proxy"
	"github.com/portico-dev/portico/dataplane/routing"
	"github.com/portico-dev/portico/dataplane/server"
	"github.com/portico-dev/portico/dataplane/tlsstore"
	"github.com/portico-dev/portico/dataplane/upstream"
)

// sink collects written lines.
type sink struct {
	mu  sync.Mutex
	buf strings.Builder
}

func (s *sink) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.buf.Write(p)
}

func (s *sink) lines() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := strings.Split(s.buf.String(), "\n")
	return out[:len(out)-1]
}

// waitLines polls until n lines were written (5 s at most).
func (s *sink) waitLines(t *testing.T, n int) []string {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		l := s.lines()
		if len(l) >= n {
			return l
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d access log lines after 5 s, want %d:\n%s", len(l), n, strings.Join(l, "\n"))
		}
		time.Sleep(5 * time.Millisecond)
	}
}

type env struct {
	h      *dpt.Harness
	sink   *sink
	log    *accesslog.Logger
	http   *http.Client
	ca     *dpt.CA
	appURL string
}

const routes = `
metadata: {name: web}
spec:
  hostnames: [app.example]
  rules:
  - name: main
    backendRefs: [{name: app, port: 80}]
  - matches: [{path: {type: PathPrefix, value: /slow}}]
    timeouts: {backendRequest: 100ms}
    backendRefs: [{name: app, port: 80}]
  - matches: [{path: {type: PathPrefix, value: /empty}}]
    backendRefs: [{name: missing, port: 80}]
  - matches: [{path: {type: PathPrefix, value: /upload}}]
    backendRefs: [{name: app, port: 80}]
  policy: {maxRequestBodySize: "16"}
  tls: [{secretName: app-tls}]
---
metadata: {name: other}
spec:
  hostnames: [other.example]
  tls: [{secretName: other-tls}]
  rules: [{backendRefs: [{name: app, port: 80}]}]
---
metadata: {name: health}
spec:
  hostnames: [health.example]
  policy: {accessLog: false}
  rules: [{backendRefs: [{name: app, port: 80}]}]
`

func start(t *testing.T) *env {
	t.Helper()
	s := &sink{}
	l := accesslog.New(accesslog.Options{Writer: s})
	t.Cleanup(func() { _ = l.Close(context.Background()) })
	h := dpt.Start(t, dpt.Options{Proxy: proxy.Options{Observer: l}, Server: server.Config{OnReject: l.Rejected}})
	h.Dataplane.OnRoutes = func(_ *routing.Table, _ tlsstore.Keypairs, st proxy.Settings) { l.SetTenant(st.Tenant) }
	app := dpt.NewEcho(t, "app")
	h.Dataplane.SetEndpoints(upstream.Endpoints{dpt.Key("app"): {dpt.EndpointOf(t, app.URL)}})
	ca := dpt.NewCA(t)
	kp := tlsstore.Keypairs{}
	_, _, kp[types.NamespacedName{Namespace: "team", Name: "app-tls"}] = ca.Issue(t, "app.example")
	_, _, kp[types.NamespacedName{Namespace: "team", Name: "other-tls"}] = ca.Issue(t, "other.example")
	h.Apply(t, dpt.Routes(t, strings.Split(routes, "---")...), kp, proxy.Settings{Tenant: "acme"})
	tr := &http.Transport{DisableCompression: true}
	t.Cleanup(tr.CloseIdleConnections)
	return &env{h: h, sink: s, log: l, ca: ca, appURL: app.URL,
		http: &http.Client{Transport: tr, Timeout: 10 * time.Second}}
}

func (e *env) do(t *testing.T, method, host, target string, body io.Reader, hdr ...string) *http.Response {
	t.Helper()
	req, err := http.NewRequest(method, "http://"+e.h.HTTP+target, body)
	if err != nil {
		t.Fatal(err)
	}
	req.Host = host
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := e.http.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp
}

// Placeholders for fields whose value varies from run to run.
type matcher func(any) bool

var (
	anyTime matcher = func(v any) bool {
		return regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$`).MatchString(str(v))
	}
	positive matcher = func(v any) bool { f, ok := v.(float64); return ok && f >= 0 }
	hexID    matcher = func(v any) bool { return regexp.MustCompile(`^[0-9a-f]{32}$`).MatchString(str(v)) }
	loopback matcher = func(v any) bool { return regexp.MustCompile(`^127\.0\.0\.1:\d+$`).MatchString(str(v)) }
)

func str(v any) string { s, _ := v.(string); return s }

// expectLine checks every field of a JSON line: want holds exact values or matchers, and
// every field of the schema must be in want.
func expectLine(t *testing.T, line string, want map[string]any) {
	t.Helper()
	var got map[string]any
	if err := json.Unmarshal([]byte(line), &got); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, line)
	}
	if len(got) != len(accesslog.Fields) {
		t.Errorf("line has %d fields, the schema %d", len(got), len(accesslog.Fields))
	}
	for _, f := range accesslog.Fields {
		w, ok := want[f]
		if !ok {
			t.Errorf("test does not say what %s should be (got %#v)", f, got[f])
			continue
		}
		if m, isMatcher := w.(matcher); isMatcher {
			if !m(got[f]) {
				t.Errorf("%s = %#v does not match", f, got[f])
			}
		} else if got[f] != w {
			t.Errorf("%s = %#v, want %#v", f, got[f], w)
		}
	}
	if t.Failed() {
		t.Logf("line: %s", line)
	}
}

// base is what a plain-HTTP request to app.example logs; cases override what differs.
func (e *env) base(over map[string]any) map[string]any {
	backendAddr := matcher(func(v any) bool { return "http://"+str(v) == e.appURL })
	m := map[string]any{
		"start_time": anyTime, "duration_ms": positive, "method": "GET", "scheme": "http", "host": "app.example",
		"path": "/", "protocol": "HTTP/1.1", "status": 200.0, "bytes_in": 0.0, "bytes_out": positive,
		"client_address": "127.0.0.1", "peer_address": loopback, "x_forwarded_for": "", "user_agent": "portico-test",
		"request_id": hexID, "trace_id": "", "span_id": "", "tenant": "acme", "namespace": "team", "route": "web",
		"rule_index": 0.0, "rule_name": "main", "source": "", "backend": "team/app:80", "upstream": backendAddr,
		"upstream_status": 200.0, "upstream_latency_ms": positive, "attempts": 1.0, "tls_version": "", "sni": "",
		"reason": "", "detail": "",
	}
	for k, v := range over {
		m[k] = v
	}
	return m
}

func TestAccessLogFields(t *testing.T) {
	e := start(t)
	ua := []string{"User-Agent", "portico-test"}

	cases := []struct {
		name string
		send func() *http.Response
		want map[string]any
	}{
		{"success", func() *http.Response {
			return e.do(t, "POST", "app.example", "/hello?q=1", strings.NewReader("12345"),
				"User-Agent", "portico-test", "X-Forwarded-For", "198.51.100.1, 198.51.100.2", "X-Request-Id", "req-42")
		}, e.base(map[string]any{"method": "POST", "path": "/hello", "bytes_in": 5.0,
			"x_forwarded_for": "198.51.100.1, 198.51.100.2", "request_id": "req-42"})},
		{"404 no_route", func() *http.Response { return e.do(t, "GET", "nobody.example", "/x", nil, ua...) },
			e.base(map[string]any{"host": "nobody.example", "path": "/x", "status": 404.0, "namespace": "", "route": "",
				"rule_index": nil, "rule_name": "", "backend": "", "upstream": "", "upstream_status": nil,
				"upstream_latency_ms": nil, "attempts": 0.0, "reason": "no_route"})},
		{"503 no_endpoints", func() *http.Response { return e.do(t, "GET", "app.example", "/empty/x", nil, ua...) },
			e.base(map[string]any{"path": "/empty/x", "status": 503.0, "rule_index": 2.0, "rule_name": "",
				"backend": "team/missing:80", "upstream": "", "upstream_status": nil, "upstream_latency_ms": nil,
				"attempts": 0.0, "reason": "no_endpoints"})},
		{"504 upstream_timeout", func() *http.Response {
			return e.do(t, "GET", "app.example", "/slow/sleep?d=5s", nil, ua...)
		}, e.base(map[string]any{"path": "/slow/sleep", "status": 504.0, "rule_index": 1.0, "rule_name": "",
			"upstream_status": nil, "reason": "upstream_timeout"})},
		{"413 body_too_large", func() *http.Response {
			return e.do(t, "POST", "app.example", "/upload", strings.NewReader(strings.Repeat("x", 100)), ua...)
		}, e.base(map[string]any{"method": "POST", "path": "/upload", "status": 413.0, "rule_index": 3.0,
			"rule_name": "", "backend": "", "upstream": "", "upstream_status": nil, "upstream_latency_ms": nil,
			"attempts": 0.0, "reason": "body_too_large"})},
		{"400 rejected in the handler", func() *http.Response { return e.do(t, "GET", "app.example", "/a%2Fb", nil, ua...) },
			e.base(map[string]any{"path": "", "status": 400.0, "namespace": "", "route": "", "rule_index": nil,
				"rule_name": "", "backend": "", "upstream": "", "upstream_status": nil, "upstream_latency_ms": nil,
				"attempts": 0.0, "reason": "rejected_request", "detail": "encoded slash (%2F)"})},
		{"silenced route", func() *http.Response { return e.do(t, "GET", "health.example", "/healthz", nil, ua...) }, nil},
	}
	logged := 0
	for _, tc := range cases {
		resp := tc.send()
		if tc.want == nil {
			continue
		}
		if want := int(tc.want["status"].(float64)); resp.StatusCode != want {
			t.Fatalf("%s: status %d, want %d", tc.name, resp.StatusCode, want)
		}
		logged++
		lines := e.sink.waitLines(t, logged)
		t.Run(tc.name, func(t *testing.T) { expectLine(t, lines[logged-1], tc.want) })
	}
	// The silenced request wrote nothing: a later request's line directly follows the last one.
	e.do(t, "GET", "app.example", "/after", nil, ua...)
	lines := e.sink.waitLines(t, logged+1)
	if len(lines) != logged+1 || !strings.Contains(lines[logged], `"path":"/after"`) {
		t.Errorf("policy.accessLog=false did not silence the route:\n%s", strings.Join(lines, "\n"))
	}
}

// 421 needs TLS: SNI app.example, Host other.example (served, but under another certificate).
func TestAccessLogMisdirected(t *testing.T) {
	e := start(t)
	tr := &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: e.ca.Pool(), ServerName: "app.example"},
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, network, e.h.HTTPS)
		},
		ForceAttemptHTTP2: true,
	}
	defer tr.CloseIdleConnections()
	req, _ := http.NewRequest("GET", "https://app.example/x", nil)
	req.Host = "other.example"
	req.Header.Set("User-Agent", "portico-test")
	resp, err := (&http.Client{Transport: tr, Timeout: 10 * time.Second}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMisdirectedRequest {
		t.Fatalf("status %d, want 421", resp.StatusCode)
	}
	expectLine(t, e.sink.waitLines(t, 1)[0], e.base(map[string]any{"scheme": "https", "host": "other.example",
		"path": "/x", "protocol": "HTTP/2.0", "status": 421.0, "namespace": "", "route": "", "rule_index": nil,
		"rule_name": "", "backend": "", "upstream": "", "upstream_status": nil, "upstream_latency_ms": nil,
		"attempts": 0.0, "tls_version": "TLSv1.3", "sni": "app.example", "reason": "misdirected"}))
}

// A request the raw checks refuse never reaches the handler; OnReject logs it.
func TestAccessLogRawRejection(t *testing.T) {
	e := start(t)
	c, err := net.Dial("tcp", e.h.HTTP)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(c, "GET / HTTP/1.1\r\nHost: app.example\r\nHost: other.example\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 400 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	expectLine(t, e.sink.waitLines(t, 1)[0], map[string]any{
		"start_time": anyTime, "duration_ms": 0.0, "method": "", "scheme": "", "host": "", "path": "", "protocol": "",
		"status": 400.0, "bytes_in": 0.0, "bytes_out": 0.0, "client_address": "127.0.0.1",
		"peer_address": c.LocalAddr().String(), "x_forwarded_for": "", "user_agent": "", "request_id": "",
		"trace_id": "", "span_id": "", "tenant": "acme", "namespace": "", "route": "", "rule_index": nil,
		"rule_name": "", "source": "", "backend": "", "upstream": "", "upstream_status": nil,
		"upstream_latency_ms": nil, "attempts": 0.0, "tls_version": "", "sni": "", "reason": "rejected_request",
		"detail": "duplicate Host",
	})
}
