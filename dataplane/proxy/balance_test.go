package proxy_test

import (
	"net/http"
	"strings"
	"testing"

	dpt "github.com/portico-dev/portico/dataplane/dataplanetest"
	"github.com/portico-dev/portico/dataplane/proxy"
	"github.com/portico-dev/portico/dataplane/upstream"
)

func TestWeightedBackendsAndEndpointRoundRobin(t *testing.T) {
	h := dpt.Start(t, dpt.Options{})
	a1, a2, b1 := dpt.NewEcho(t, "a1"), dpt.NewEcho(t, "a2"), dpt.NewEcho(t, "b1")
	h.Dataplane.SetEndpoints(upstream.Endpoints{
		dpt.Key("a"): {dpt.EndpointOf(t, a1.URL), dpt.EndpointOf(t, a2.URL)},
		dpt.Key("b"): {dpt.EndpointOf(t, b1.URL)},
	})
	h.Apply(t, dpt.Routes(t, `
metadata: {name: split}
spec:
  hostnames: [app.example]
  rules:
  - backendRefs: [{name: a, port: 80, weight: 3}, {name: b, port: 80, weight: 1}, {name: c, port: 80, weight: 0}]
`), nil, proxy.Settings{})
	c := newClient(t, h.HTTP)
	counts := map[string]int{}
	for range 400 {
		counts[c.get("app.example", "/").Header.Get("X-Backend")]++
	}
	// Smooth weighted round robin is exact over whole cycles: 300 to a (150 per endpoint), 100 to b.
	if counts["a1"] != 150 || counts["a2"] != 150 || counts["b1"] != 100 {
		t.Errorf("distribution %v", counts)
	}
}

func TestPassiveHealthAndRetries(t *testing.T) {
	h := dpt.Start(t, dpt.Options{})
	good := dpt.NewEcho(t, "good")
	dead := dpt.EndpointOf(t, dpt.ClosedPort(t))
	h.Dataplane.SetEndpoints(upstream.Endpoints{
		dpt.Key("retry"):   {dead, dpt.EndpointOf(t, good.URL)},
		dpt.Key("noretry"): {dead, dpt.EndpointOf(t, good.URL)},
	})
	h.Apply(t, dpt.Routes(t, `
metadata: {name: r}
spec:
  hostnames: [retry.example]
  rules: [{retry: {attempts: 2}, backendRefs: [{name: retry, port: 80}]}]
`, `
metadata: {name: n}
spec:
  hostnames: [noretry.example]
  rules: [{backendRefs: [{name: noretry, port: 80}]}]
`), nil, proxy.Settings{})
	c := newClient(t, h.HTTP)

	// Idempotent requests are retried on the other endpoint: every one succeeds.
	for i := range 6 {
		if r := c.get("retry.example", "/"); r.StatusCode != 200 {
			t.Fatalf("GET %d: %d %s", i, r.StatusCode, r.body)
		}
	}
	// POST is not idempotent: no retry. The dead endpoint is ejected after its first failure, so
	// at most one request fails before traffic avoids it.
	h.Endpoints.Health.Succeeded(dead.Addr) // forget the ejection the GETs caused
	failed := 0
	for range 6 {
		r := c.do("POST", "noretry.example", "/", strings.NewReader("x"))
		if r.StatusCode == 502 {
			expectAnswer(t, r, 502, proxy.ReasonUpstreamConnectFailed)
			failed++
		}
	}
	if failed != 1 {
		t.Errorf("%d POSTs failed, want exactly 1 before the dead endpoint was ejected", failed)
	}
	if !h.Endpoints.Health.Ejected(dead.Addr) {
		t.Error("dead endpoint not ejected")
	}
}

func TestRetryReplaysBufferedBody(t *testing.T) {
	h := dpt.Start(t, dpt.Options{})
	good := dpt.NewEcho(t, "good")
	dead := dpt.EndpointOf(t, dpt.ClosedPort(t))
	h.Dataplane.SetEndpoints(upstream.Endpoints{dpt.Key("app"): {dead, dpt.EndpointOf(t, good.URL)}})
	h.Apply(t, dpt.Routes(t, `
metadata: {name: r}
spec:
  hostnames: [app.example]
  rules: [{retry: {attempts: 1}, backendRefs: [{name: app, port: 80}]}]
`), nil, proxy.Settings{})
	c := newClient(t, h.HTTP)
	for range 4 {
		e := c.do("PUT", "app.example", "/", strings.NewReader("payload")).echo(t)
		if e.Body != "payload" {
			t.Fatalf("body after retry: %q", e.Body)
		}
	}
}

func TestSessionAffinity(t *testing.T) {
	h := dpt.Start(t, dpt.Options{})
	var eps []upstream.Endpoint
	for _, n := range []string{"e1", "e2", "e3"} {
		eps = append(eps, dpt.EndpointOf(t, dpt.NewEcho(t, n).URL))
	}
	h.Dataplane.SetEndpoints(upstream.Endpoints{dpt.Key("app"): eps})
	h.Apply(t, dpt.Routes(t, `
metadata: {name: sticky}
spec:
  hostnames: [app.example]
  policy: {sessionAffinity: {type: Cookie, cookieName: stick, ttl: 1h}}
  rules: [{backendRefs: [{name: app, port: 80}]}]
`), nil, proxy.Settings{})
	c := newClient(t, h.HTTP)
	first := c.get("app.example", "/")
	var cookie *http.Cookie
	for _, ck := range first.Cookies() {
		if ck.Name == "stick" {
			cookie = ck
		}
	}
	if cookie == nil || cookie.MaxAge != 3600 || !cookie.HttpOnly || strings.Contains(cookie.Value, "127.0.0.1") {
		t.Fatalf("affinity cookie %+v", cookie)
	}
	backend := first.Header.Get("X-Backend")
	for range 10 {
		r := c.get("app.example", "/", "Cookie", "stick="+cookie.Value)
		if got := r.Header.Get("X-Backend"); got != backend {
			t.Fatalf("sticky request went to %s, want %s", got, backend)
		}
		if len(r.Cookies()) != 0 {
			t.Error("cookie re-set although it was valid")
		}
	}
	// An unknown token is replaced.
	r := c.get("app.example", "/", "Cookie", "stick=bogus")
	if len(r.Cookies()) != 1 {
		t.Error("bogus cookie not replaced")
	}
}

func TestLeastRequestOption(t *testing.T) {
	h := dpt.Start(t, dpt.Options{Proxy: proxy.Options{LoadBalancing: upstream.LeastRequest}})
	a, b := dpt.NewEcho(t, "a"), dpt.NewEcho(t, "b")
	h.Dataplane.SetEndpoints(upstream.Endpoints{dpt.Key("app"): {dpt.EndpointOf(t, a.URL), dpt.EndpointOf(t, b.URL)}})
	h.Apply(t, dpt.Routes(t, simpleRoute), nil, proxy.Settings{})
	c := newClient(t, h.HTTP)
	for range 20 {
		if r := c.get("app.example", "/"); r.StatusCode != 200 {
			t.Fatalf("status %d", r.StatusCode)
		}
	}
	if a.Requests.Load() == 0 || b.Requests.Load() == 0 {
		t.Errorf("idle endpoints should share the load: a=%d b=%d", a.Requests.Load(), b.Requests.Load())
	}
}

func TestH2CUpstreamByAppProtocol(t *testing.T) {
	h := dpt.Start(t, dpt.Options{})
	grpc := dpt.NewH2CEcho(t, "h2c")
	ep := dpt.EndpointOf(t, grpc.URL)
	ep.AppProtocol = "kubernetes.io/h2c"
	plain := dpt.EndpointOf(t, grpc.URL)
	h.Dataplane.SetEndpoints(upstream.Endpoints{dpt.Key("h2"): {ep}, dpt.Key("h1"): {plain}})
	h.Apply(t, dpt.Routes(t, `
metadata: {name: r}
spec:
  hostnames: [app.example]
  rules:
  - matches: [{path: {type: PathPrefix, value: /h2}}]
    backendRefs: [{name: h2, port: 80}]
  - backendRefs: [{name: h1, port: 80}]
`), nil, proxy.Settings{})
	c := newClient(t, h.HTTP)
	if e := c.get("app.example", "/h2/x").echo(t); e.Proto != "HTTP/2.0" {
		t.Errorf("kubernetes.io/h2c endpoint spoken to over %s", e.Proto)
	}
	if e := c.get("app.example", "/x").echo(t); e.Proto != "HTTP/1.1" {
		t.Errorf("plain endpoint spoken to over %s", e.Proto)
	}
}

// Endpoint updates do not need a new table.
func TestEndpointUpdateWithoutTableChange(t *testing.T) {
	h, c, _ := setup(t, simpleRoute)
	table := h.Proxy.Table()
	other := dpt.NewEcho(t, "other")
	h.Dataplane.SetEndpoints(upstream.Endpoints{dpt.Key("app"): {dpt.EndpointOf(t, other.URL)}})
	if got := c.get("app.example", "/").Header.Get("X-Backend"); got != "other" {
		t.Errorf("served by %q after endpoint update", got)
	}
	if h.Proxy.Table() != table {
		t.Error("endpoint update replaced the table")
	}
}
