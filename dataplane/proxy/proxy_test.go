package proxy_test

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	dpt "github.com/portico-dev/portico/dataplane/dataplanetest"
	"github.com/portico-dev/portico/dataplane/proxy"
	"github.com/portico-dev/portico/dataplane/upstream"
)

func TestRoutesAndProxyMadeAnswers(t *testing.T) {
	h, c, _ := setup(t, simpleRoute, `
metadata: {name: api}
spec:
  hostnames: [api.example]
  rules:
  - matches: [{path: {type: PathPrefix, value: /v1}}]
    backendRefs: [{name: missing, port: 80}]
  - matches: [{path: {type: PathPrefix, value: /down}}]
    backendRefs: [{name: down, port: 80}]
  - matches: [{path: {type: PathPrefix, value: /slow}}]
    timeouts: {backendRequest: 200ms}
    backendRefs: [{name: app, port: 80}]
  - matches: [{path: {type: PathPrefix, value: /total}}]
    timeouts: {request: 200ms}
    backendRefs: [{name: app, port: 80}]
  - matches: [{path: {type: PathPrefix, value: /nobackend}}]
`)
	down := dpt.EndpointOf(t, dpt.ClosedPort(t))
	app := h.Endpoints.Get(dpt.Key("app")).Endpoints
	h.Dataplane.SetEndpoints(upstream.Endpoints{dpt.Key("app"): app, dpt.Key("down"): {down}})

	e := c.get("app.example", "/hello?x=1").echo(t)
	if e.URI != "/hello?x=1" || e.Host != "app.example" {
		t.Errorf("backend saw %s %s", e.Host, e.URI)
	}
	expectAnswer(t, c.get("nobody.example", "/"), 404, proxy.ReasonNoRoute)
	expectAnswer(t, c.get("api.example", "/other"), 404, proxy.ReasonNoRoute)
	expectAnswer(t, c.get("api.example", "/v1/x"), 503, proxy.ReasonNoEndpoints)
	expectAnswer(t, c.get("api.example", "/down"), 502, proxy.ReasonUpstreamConnectFailed)
	expectAnswer(t, c.get("api.example", "/slow/sleep?d=5s"), 504, proxy.ReasonUpstreamTimeout)
	expectAnswer(t, c.get("api.example", "/total/sleep?d=5s"), 504, proxy.ReasonUpstreamTimeout)
	expectAnswer(t, c.get("api.example", "/nobackend"), 500, proxy.ReasonNoBackend)
	if r := c.get("api.example", "/slow/sleep?d=10ms"); r.StatusCode != 200 {
		t.Errorf("fast enough request: %d", r.StatusCode)
	}
}

func TestNotReadyBeforeFirstTable(t *testing.T) {
	h := dpt.Start(t, dpt.Options{})
	expectAnswer(t, newClient(t, h.HTTP).get("app.example", "/"), 503, proxy.ReasonNotReady)
}

func TestObserverSeesReasonsAndRoute(t *testing.T) {
	obs := newObserved()
	h := dpt.Start(t, dpt.Options{Proxy: proxy.Options{Observer: obs}})
	app := dpt.NewEcho(t, "app")
	h.Dataplane.SetEndpoints(upstream.Endpoints{dpt.Key("app"): {dpt.EndpointOf(t, app.URL)}})
	h.Apply(t, dpt.Routes(t, simpleRoute), nil, proxy.Settings{})
	c := newClient(t, h.HTTP)

	c.get("app.example", "/x")
	ex := obs.next(t)
	if ex.Status != 200 || ex.Reason != "" || ex.Rule == nil || ex.Rule.Route.Name != "app" ||
		ex.Backend != dpt.Key("app") || !ex.Endpoint.IsValid() || ex.Attempts != 1 || ex.RequestID == "" {
		t.Errorf("exchange %+v", ex)
	}
	c.get("unknown.example", "/x")
	if ex := obs.next(t); ex.Status != 404 || ex.Reason != proxy.ReasonNoRoute || ex.Rule != nil {
		t.Errorf("exchange %+v", ex)
	}
	c.get("app.example", "/a%2Fb")
	if ex := obs.next(t); ex.Status != 400 || ex.Reason != proxy.ReasonRejectedRequest || ex.Detail != "encoded slash (%2F)" {
		t.Errorf("exchange %+v", ex)
	}
}

// The path the route matched is the path the backend receives.
func TestNormalizedPathIsForwarded(t *testing.T) {
	_, c, _ := setup(t, simpleRoute, `
metadata: {name: admin}
spec:
  hostnames: [app.example]
  rules:
  - matches: [{path: {type: PathPrefix, value: /admin}}]
    backendRefs: [{name: app, port: 80}]
    filters:
    - type: RequestHeaderModifier
      requestHeaderModifier: {set: [{name: X-Rule, value: admin}]}
`)
	for _, tc := range []struct{ in, want string }{
		{"/a/../admin/x", "/admin/x"},
		{"/%61dmin/x", "/admin/x"},
		{"//admin//x/./y", "/admin/x/y"},
		{"/static/%7euser/a%20b", "/static/~user/a%20b"},
		{"/x/%2e%2e/admin", "/admin"},
	} {
		e := c.get("app.example", tc.in).echo(t)
		if e.URI != tc.want {
			t.Errorf("%s: backend saw %s, want %s", tc.in, e.URI, tc.want)
		}
		wantRule := strings.HasPrefix(tc.want, "/admin")
		if got := len(e.Header["X-Rule"]) > 0; got != wantRule {
			t.Errorf("%s: matched admin rule = %v, want %v", tc.in, got, wantRule)
		}
	}
	for _, bad := range []string{"/admin%2Fx", "/a%5Cb", "/a%00", "/%c0%ae%c0%ae/admin", "/api/..;/admin"} {
		expectAnswer(t, c.get("app.example", bad), 400, proxy.ReasonRejectedRequest)
	}
}

func TestForwardingHeaders(t *testing.T) {
	_, c, _ := setup(t, simpleRoute)
	e := c.get("app.example", "/", "X-Forwarded-For", "6.6.6.6", "X-Real-IP", "6.6.6.6",
		"Forwarded", "for=6.6.6.6", "X-Forwarded-Host", "evil.example", "X-Forwarded-Proto", "https",
		"X-Forwarded-Prefix", "/evil").echo(t)
	hdr := http.Header(e.Header)
	if got := hdr.Get("X-Forwarded-For"); got != "127.0.0.1" {
		t.Errorf("X-Forwarded-For = %q", got)
	}
	if hdr.Get("X-Real-Ip") != "127.0.0.1" || hdr.Get("X-Forwarded-Proto") != "http" ||
		hdr.Get("X-Forwarded-Host") != "app.example" || hdr.Get("X-Forwarded-Prefix") != "" {
		t.Errorf("forwarding headers %v", hdr)
	}
	if got := hdr.Get("Forwarded"); got != `for="127.0.0.1";host="app.example";proto=http` {
		t.Errorf("Forwarded = %q", got)
	}
	if id := hdr.Get("X-Request-Id"); len(id) != 32 {
		t.Errorf("generated X-Request-Id %q", id)
	}
	e = c.get("app.example", "/", "X-Request-Id", "abc-123").echo(t)
	if got := http.Header(e.Header).Get("X-Request-Id"); got != "abc-123" {
		t.Errorf("X-Request-Id not kept: %q", got)
	}
}

func TestTrustedHops(t *testing.T) {
	h, _, _ := setup(t, simpleRoute)
	h.Apply(t, dpt.Routes(t, simpleRoute+`
  policy: {sourceRanges: [203.0.113.0/24]}`), nil, proxy.Settings{TrustedHops: 1})
	c := newClient(t, h.HTTP)
	e := c.get("app.example", "/", "X-Forwarded-For", "6.6.6.6, 203.0.113.7", "X-Forwarded-Proto", "https").echo(t)
	hdr := http.Header(e.Header)
	if hdr.Get("X-Real-Ip") != "203.0.113.7" || hdr.Get("X-Forwarded-For") != "203.0.113.7, 127.0.0.1" ||
		hdr.Get("X-Forwarded-Proto") != "https" {
		t.Errorf("with one trusted hop: %v", hdr)
	}
	expectAnswer(t, c.get("app.example", "/", "X-Forwarded-For", "203.0.113.7, 6.6.6.6"), 403, proxy.ReasonForbiddenSource)
}

func TestHopByHopAndUpgradeStripped(t *testing.T) {
	_, c, _ := setup(t, simpleRoute)
	e := c.get("app.example", "/", "Connection", "X-Secret, Upgrade", "X-Secret", "s", "Upgrade", "h2c",
		"HTTP2-Settings", "AAMAAABkAARAAAAAAAIAAAAA", "Proxy", "http://evil", "Keep-Alive", "timeout=5",
		"TE", "trailers").echo(t)
	for _, k := range []string{"X-Secret", "Upgrade", "Http2-Settings", "Proxy", "Keep-Alive", "Connection"} {
		if v, ok := e.Header[k]; ok {
			t.Errorf("%s forwarded: %v", k, v)
		}
	}
}

func TestBodyLimits(t *testing.T) {
	h := dpt.Start(t, dpt.Options{Proxy: proxy.Options{BufferBodyBytes: 64}})
	app := dpt.NewEcho(t, "app")
	h.Dataplane.SetEndpoints(upstream.Endpoints{dpt.Key("app"): {dpt.EndpointOf(t, app.URL)}})
	h.Apply(t, dpt.Routes(t, `
metadata: {name: small}
spec:
  hostnames: [small.example]
  policy: {maxRequestBodySize: "10"}
  rules: [{backendRefs: [{name: app, port: 80}]}]
`, `
metadata: {name: big}
spec:
  hostnames: [big.example]
  policy: {maxRequestBodySize: "200"}
  rules: [{backendRefs: [{name: app, port: 80}]}]
`), nil, proxy.Settings{})
	c := newClient(t, h.HTTP)

	expectAnswer(t, c.do("POST", "small.example", "/", strings.NewReader(strings.Repeat("x", 11))), 413, proxy.ReasonBodyTooLarge)
	if app.Requests.Load() != 0 {
		t.Fatal("backend contacted for a declared oversize body")
	}
	e := c.do("POST", "small.example", "/", strings.NewReader("0123456789")).echo(t)
	if e.Body != "0123456789" {
		t.Errorf("body %q", e.Body)
	}
	// Unknown length (chunked): read ahead, forwarded with a Content-Length.
	e = c.do("POST", "small.example", "/", io.MultiReader(strings.NewReader("01234"), strings.NewReader("56789"))).echo(t)
	if e.Body != "0123456789" || e.Length != 10 || len(e.TE) != 0 {
		t.Errorf("buffered chunked body forwarded as %q len=%d te=%v", e.Body, e.Length, e.TE)
	}
	before := app.Requests.Load()
	expectAnswer(t, c.do("POST", "small.example", "/", io.MultiReader(strings.NewReader("0123456789"), strings.NewReader("X"))), 413, proxy.ReasonBodyTooLarge)
	if app.Requests.Load() != before {
		t.Fatal("backend contacted for an oversize chunked body")
	}
	// Longer than the 64-byte read-ahead, within the route's 200: streamed, chunked.
	long := strings.Repeat("y", 150)
	e = c.do("POST", "big.example", "/", io.MultiReader(strings.NewReader(long[:100]), strings.NewReader(long[100:]))).echo(t)
	if e.Body != long || e.Length != -1 {
		t.Errorf("streamed body: len(body)=%d contentLength=%d", len(e.Body), e.Length)
	}
	// Streamed past the limit: the cap cuts it.
	r := c.do("POST", "big.example", "/", io.MultiReader(strings.NewReader(long), strings.NewReader(long)))
	if r.StatusCode != 413 && r.StatusCode != 502 {
		t.Errorf("streamed oversize body: %d %s", r.StatusCode, r.body)
	}
}

// A bad chunk on a real connection: 400 from the connection, nothing reaches the backend.
func TestBadChunkNeverReachesBackend(t *testing.T) {
	h, _, app := setup(t, simpleRoute)
	conn, err := net.Dial("tcp", h.HTTP)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
	fmt.Fprint(conn, "POST / HTTP/1.1\r\nHost: app.example\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n5;\x00\r\nworld\r\n0\r\n\r\n")
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 400 || app.Requests.Load() != 0 {
		t.Errorf("status %d, backend requests %d", resp.StatusCode, app.Requests.Load())
	}
}

func TestSourceRanges(t *testing.T) {
	_, c, _ := setup(t, `
metadata: {name: internal}
spec:
  hostnames: [internal.example]
  policy: {sourceRanges: [10.0.0.0/8]}
  rules: [{backendRefs: [{name: app, port: 80}]}]
`, `
metadata: {name: local}
spec:
  hostnames: [local.example]
  policy: {sourceRanges: [10.0.0.0/8, 127.0.0.0/8]}
  rules: [{backendRefs: [{name: app, port: 80}]}]
`)
	expectAnswer(t, c.get("internal.example", "/"), 403, proxy.ReasonForbiddenSource)
	if r := c.get("local.example", "/"); r.StatusCode != 200 {
		t.Errorf("allowed source: %d", r.StatusCode)
	}
}

func TestEgressGuardRefusesLoopbackInClusterMode(t *testing.T) {
	h := dpt.Start(t, dpt.Options{StrictEgress: true})
	app := dpt.NewEcho(t, "app")
	h.Dataplane.SetEndpoints(upstream.Endpoints{dpt.Key("app"): {dpt.EndpointOf(t, app.URL)}})
	h.Apply(t, dpt.Routes(t, simpleRoute), nil, proxy.Settings{})
	expectAnswer(t, newClient(t, h.HTTP).get("app.example", "/"), 502, proxy.ReasonUpstreamConnectFailed)
	if app.Requests.Load() != 0 {
		t.Error("loopback backend reached with the strict guard")
	}
}
