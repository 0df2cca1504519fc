package proxy_test

import (
	"net/http"
	"testing"

	dpt "github.com/portico-dev/portico/dataplane/dataplanetest"
	"github.com/portico-dev/portico/dataplane/proxy"
	"github.com/portico-dev/portico/dataplane/tlsstore"
	"k8s.io/apimachinery/pkg/types"
)

func TestHeaderModifiers(t *testing.T) {
	_, c, _ := setup(t, `
metadata: {name: app}
spec:
  hostnames: [app.example]
  rules:
  - backendRefs: [{name: app, port: 80}]
    filters:
    - type: RequestHeaderModifier
      requestHeaderModifier:
        set: [{name: X-Env, value: prod}]
        add: [{name: X-Tag, value: b}]
        remove: [X-Drop]
    - type: ResponseHeaderModifier
      responseHeaderModifier:
        set: [{name: X-Frame-Options, value: DENY}]
        add: [{name: X-Served-By, value: portico}]
        remove: [X-Backend]
`)
	r := c.get("app.example", "/", "X-Env", "dev", "X-Tag", "a", "X-Drop", "1")
	e := r.echo(t)
	hdr := http.Header(e.Header)
	if hdr.Get("X-Env") != "prod" || len(hdr.Values("X-Tag")) != 2 || hdr.Get("X-Drop") != "" {
		t.Errorf("request headers %v", hdr)
	}
	if r.Header.Get("X-Frame-Options") != "DENY" || r.Header.Get("X-Served-By") != "portico" || r.Header.Get("X-Backend") != "" {
		t.Errorf("response headers %v", r.Header)
	}
}

func TestRedirects(t *testing.T) {
	_, c, _ := setup(t, `
metadata: {name: redirects}
spec:
  hostnames: [old.example]
  rules:
  - matches: [{path: {type: PathPrefix, value: /https}}]
    filters: [{type: RequestRedirect, requestRedirect: {scheme: https}}]
  - matches: [{path: {type: PathPrefix, value: /moved}}]
    filters: [{type: RequestRedirect, requestRedirect: {hostname: new.example, statusCode: 301}}]
  - matches: [{path: {type: PathPrefix, value: /port}}]
    filters: [{type: RequestRedirect, requestRedirect: {port: 8443}}]
  - matches: [{path: {type: PathPrefix, value: /full}}]
    filters: [{type: RequestRedirect, requestRedirect: {path: {type: ReplaceFullPath, replaceFullPath: /landing}, statusCode: 308}}]
  - matches: [{path: {type: PathPrefix, value: /v1}}]
    filters: [{type: RequestRedirect, requestRedirect: {path: {type: ReplacePrefixMatch, replacePrefixMatch: /v2}}}]
  - matches: [{path: {type: PathPrefix, value: /schemeport}}]
    filters: [{type: RequestRedirect, requestRedirect: {scheme: https, port: 443}}]
`)
	for _, tc := range []struct {
		host, target, want string
		status             int
	}{
		{"old.example", "/https/a?q=1", "https://old.example/https/a?q=1", 302},
		{"old.example:8080", "/https/a", "https://old.example/https/a", 302},
		{"old.example", "/moved/x", "http://new.example/moved/x", 301},
		{"old.example:8080", "/moved/x", "http://new.example:8080/moved/x", 301},
		{"old.example", "/port/x", "http://old.example:8443/port/x", 302},
		{"old.example", "/full/deep/path?x", "http://old.example/landing?x", 308},
		{"old.example", "/v1/users/7", "http://old.example/v2/users/7", 302},
		{"old.example", "/v1", "http://old.example/v2", 302},
		{"old.example:8080", "/schemeport", "https://old.example/schemeport", 302},
	} {
		r := c.get(tc.host, tc.target)
		if r.StatusCode != tc.status || r.Header.Get("Location") != tc.want {
			t.Errorf("%s%s: %d %q, want %d %q", tc.host, tc.target, r.StatusCode, r.Header.Get("Location"), tc.status, tc.want)
		}
	}
}

func TestRewrites(t *testing.T) {
	_, c, _ := setup(t, `
metadata: {name: rewrites}
spec:
  hostnames: [app.example]
  rules:
  - matches: [{path: {type: PathPrefix, value: /api/v1}}]
    filters: [{type: URLRewrite, urlRewrite: {path: {type: ReplacePrefixMatch, replacePrefixMatch: /v2}}}]
    backendRefs: [{name: app, port: 80}]
  - matches: [{path: {type: PathPrefix, value: /strip}}]
    filters: [{type: URLRewrite, urlRewrite: {path: {type: ReplacePrefixMatch, replacePrefixMatch: /}}}]
    backendRefs: [{name: app, port: 80}]
  - matches: [{path: {type: PathPrefix, value: /full}}]
    filters: [{type: URLRewrite, urlRewrite: {hostname: internal.svc, path: {type: ReplaceFullPath, replaceFullPath: /index.html}}}]
    backendRefs: [{name: app, port: 80}]
  - matches: [{path: {type: RegularExpression, value: "/users/([0-9]+)/posts/([a-z]+)"}}]
    regexRewrite: {substitution: "/posts/$2/by/$1"}
    backendRefs: [{name: app, port: 80}]
`)
	for _, tc := range []struct{ target, uri, host string }{
		{"/api/v1/items?x=1", "/v2/items?x=1", "app.example"},
		{"/api/v1", "/v2", "app.example"},
		{"/strip/a/b", "/a/b", "app.example"},
		{"/full/anything", "/index.html", "internal.svc"},
	} {
		e := c.get("app.example", tc.target).echo(t)
		if e.URI != tc.uri || e.Host != tc.host {
			t.Errorf("%s: backend saw %s %s, want %s %s", tc.target, e.Host, e.URI, tc.host, tc.uri)
		}
	}
	e := c.get("app.example", "/users/42/posts/hello?x=1").echo(t)
	if e.URI != "/posts/hello/by/42?x=1" {
		t.Errorf("regex rewrite: backend saw %s", e.URI)
	}
}

func TestHTTPToHTTPSRedirect(t *testing.T) {
	h, _, _ := setup(t, simpleRoute)
	ca := dpt.NewCA(t)
	_, _, cert := ca.Issue(t, "secure.example")
	h.Apply(t, dpt.Routes(t, simpleRoute, `
metadata: {name: secure}
spec:
  hostnames: [secure.example]
  tls: [{secretName: secure-tls}]
  rules: [{backendRefs: [{name: app, port: 80}]}]
`), tlsstore.Keypairs{types.NamespacedName{Namespace: "team", Name: "secure-tls"}: cert}, proxy.Settings{RedirectHTTPToHTTPS: true})
	c := newClient(t, h.HTTP)
	r := c.get("secure.example:8080", "/a?b=1")
	if r.StatusCode != 308 || r.Header.Get("Location") != "https://secure.example/a?b=1" {
		t.Errorf("got %d %q", r.StatusCode, r.Header.Get("Location"))
	}
	if r := c.get("secure.example", "/.well-known/acme-challenge/token"); r.StatusCode != 200 {
		t.Errorf("ACME challenge redirected: %d", r.StatusCode)
	}
	if r := c.get("app.example", "/"); r.StatusCode != 200 {
		t.Errorf("host without TLS redirected: %d", r.StatusCode)
	}
}

func TestCORS(t *testing.T) {
	_, c, app := setup(t, `
metadata: {name: app}
spec:
  hostnames: [app.example]
  policy:
    cors:
      allowOrigins: ["https://web.example", "https://*.apps.example"]
      allowMethods: [GET, PUT]
      allowHeaders: [X-Custom]
      exposeHeaders: [X-Total]
      maxAge: 60
  rules: [{backendRefs: [{name: app, port: 80}]}]
`)
	r := c.do("OPTIONS", "app.example", "/x", nil, "Origin", "https://web.example", "Access-Control-Request-Method", "PUT")
	if r.StatusCode != 204 || r.Header.Get("Access-Control-Allow-Origin") != "https://web.example" ||
		r.Header.Get("Access-Control-Allow-Methods") != "GET, PUT" || r.Header.Get("Access-Control-Max-Age") != "60" ||
		r.Header.Get("Access-Control-Allow-Headers") != "X-Custom" {
		t.Errorf("preflight: %d %v", r.StatusCode, r.Header)
	}
	if app.Requests.Load() != 0 {
		t.Error("preflight reached the backend")
	}
	r = c.get("app.example", "/x", "Origin", "https://a.apps.example")
	if r.Header.Get("Access-Control-Allow-Origin") != "https://a.apps.example" || r.Header.Get("Access-Control-Expose-Headers") != "X-Total" {
		t.Errorf("simple request: %v", r.Header)
	}
	r = c.get("app.example", "/x", "Origin", "https://evil.example")
	if r.Header.Get("Access-Control-Allow-Origin") != "" || r.StatusCode != 200 {
		t.Errorf("disallowed origin: %d %v", r.StatusCode, r.Header)
	}
}
