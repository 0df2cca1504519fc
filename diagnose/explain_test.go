package diagnose

import (
	"bytes"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"

	edgev1alpha1 "github.com/portico-dev/portico/api/v1alpha1"
	"github.com/portico-dev/portico/dataplane/routing"
)

// table builds a routing table from TenantRoute YAML documents with routing.Build, as the proxy does.
// Every backend "web"/"api"/... has one endpoint except "empty", which has none.
func table(t *testing.T, docs ...string) Table {
	t.Helper()
	var routes []edgev1alpha1.TenantRoute
	for i, d := range docs {
		var tr edgev1alpha1.TenantRoute
		if err := yaml.UnmarshalStrict([]byte(d), &tr); err != nil {
			t.Fatalf("route %d: %v", i, err)
		}
		if tr.Namespace == "" {
			tr.Namespace = "app"
		}
		tr.CreationTimestamp = metav1.NewTime(time.Date(2026, 1, 1, 0, i, 0, 0, time.UTC))
		routes = append(routes, tr)
	}
	tbl, errs := routing.Build(routing.Snapshot{Version: "test", Routes: routes})
	if len(errs) > 0 {
		t.Fatalf("build: %v", errs)
	}
	return Table{EdgeProxy: "tenant-a", Table: tbl, Endpoints: func(k routing.BackendKey) ([]string, bool) {
		if k.Name == "empty" {
			return nil, true
		}
		return []string{"10.0.0.1:8080"}, true
	}}
}

func explain(t *testing.T, tb Table, req Request) *Explanation {
	t.Helper()
	ex, err := Explain(tb, req)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	_ = ex.WriteText(&buf)
	t.Logf("\n%s", buf.String())
	return ex
}

func hasWhy(ex *Explanation, sub string) bool {
	for _, w := range ex.Why {
		if strings.Contains(w, sub) {
			return true
		}
	}
	return false
}

func outcome(ex *Explanation, match string) string {
	for _, c := range ex.Candidates {
		if c.Match == match {
			return c.Outcome
		}
	}
	return "(no candidate " + match + ")"
}

const apiRoute = `
metadata: {name: shop}
spec:
  edgeProxy: tenant-a
  hostnames: [shop.example.com]
  rules:
  - matches: [{path: {type: PathPrefix, value: /api}}]
    backendRefs: [{name: api, port: 80}]
  - matches: [{path: {type: PathPrefix, value: /}}]
    backendRefs: [{name: web, port: 80}]
`

func TestExplainPrefixMatchesWholeSegments(t *testing.T) {
	tb := table(t, apiRoute)
	ex := explain(t, tb, Request{URL: "http://shop.example.com/apocalypse"})
	if ex.Status != 0 || ex.Match != "PathPrefix /" || ex.Backends[0].Backend != "app/web:80" {
		t.Fatalf("/apocalypse: got %s match %q backends %v, want PathPrefix / to web", ex.Verdict(), ex.Match, ex.Backends)
	}
	// The chapter says Prefix /api matches /apocalypse. It does not, and not even as a string
	// prefix ("/apo..."); "/apiary" is the string-prefix case, refused because prefixes match whole
	// path segments.
	if o := outcome(ex, "PathPrefix /api"); o != "no: /apocalypse is not under PathPrefix /api" {
		t.Errorf("PathPrefix /api outcome = %q", o)
	}
	ex = explain(t, tb, Request{URL: "http://shop.example.com/apiary"})
	if o := outcome(ex, "PathPrefix /api"); ex.Match != "PathPrefix /" || !strings.Contains(o, "whole path segments") {
		t.Errorf("/apiary: match %q, PathPrefix /api outcome = %q, want it to say prefixes match whole segments", ex.Match, o)
	}
	ex = explain(t, tb, Request{URL: "http://shop.example.com/api/v1/items"})
	if ex.Match != "PathPrefix /api" || ex.Backends[0].Backend != "app/api:80" {
		t.Fatalf("/api/v1/items: got match %q", ex.Match)
	}
	if !hasWhy(ex, "longest prefix wins (4 > 1") {
		t.Errorf("why %q: want the longest prefix to be named as the reason over /", ex.Why)
	}
}

func TestExplainLongestPrefixWinsWhateverTheOrder(t *testing.T) {
	tb := table(t, `
metadata: {name: special}
spec:
  edgeProxy: tenant-a
  hostnames: [shop.example.com]
  rules:
  - matches: [{path: {type: PathPrefix, value: /api}}]
    backendRefs: [{name: api, port: 80}]
  - matches: [{path: {type: PathPrefix, value: /api/special}}]
    backendRefs: [{name: special, port: 80}]
`)
	ex := explain(t, tb, Request{URL: "http://shop.example.com/api/special/x"})
	if ex.Match != "PathPrefix /api/special" || ex.Rule != "1" {
		t.Fatalf("got match %q rule %s, want /api/special (rule 1)", ex.Match, ex.Rule)
	}
	if !hasWhy(ex, "beats PathPrefix /api") || !hasWhy(ex, "longest prefix wins (12 > 4") {
		t.Errorf("why %q", ex.Why)
	}
	if o := outcome(ex, "PathPrefix /api"); o != "matches too, but lower precedence" {
		t.Errorf("/api outcome %q", o)
	}
}

func TestExplainExactBeatsPrefix(t *testing.T) {
	tb := table(t, `
metadata: {name: exact}
spec:
  edgeProxy: tenant-a
  hostnames: [shop.example.com]
  rules:
  - matches: [{path: {type: PathPrefix, value: /api}}]
    backendRefs: [{name: api, port: 80}]
  - matches: [{path: {type: Exact, value: /api}}]
    backendRefs: [{name: exact, port: 80}]
`)
	ex := explain(t, tb, Request{URL: "http://shop.example.com/api"})
	if ex.Match != "Exact /api" || !hasWhy(ex, "an Exact path beats a PathPrefix match") {
		t.Fatalf("/api: match %q why %q", ex.Match, ex.Why)
	}
	ex = explain(t, tb, Request{URL: "http://shop.example.com/api/"})
	if ex.Match != "PathPrefix /api" {
		t.Fatalf("/api/: match %q, want the prefix (Exact /api does not match /api/)", ex.Match)
	}
	if o := outcome(ex, "Exact /api"); !strings.Contains(o, "Exact /api is not /api/") {
		t.Errorf("Exact outcome %q", o)
	}
}

func TestExplainExactHostBeatsWildcard(t *testing.T) {
	tb := table(t, `
metadata: {name: wild}
spec:
  edgeProxy: tenant-a
  hostnames: ["*.example.com"]
  rules: [{backendRefs: [{name: wild, port: 80}]}]
`, `
metadata: {name: exact}
spec:
  edgeProxy: tenant-a
  hostnames: [a.example.com]
  rules: [{backendRefs: [{name: exact, port: 80}]}]
`)
	ex := explain(t, tb, Request{URL: "http://a.example.com/"})
	if ex.HostMatch != "exact" || ex.Route != "app/exact" || !hasWhy(ex, "*.example.com also covers it, but an exact host beats a wildcard") {
		t.Fatalf("a.example.com: %s host %q why %q", ex.Route, ex.HostMatch, ex.Why)
	}
	ex = explain(t, tb, Request{URL: "http://b.example.com/"})
	if ex.HostMatch != "wildcard *.example.com" || ex.Route != "app/wild" {
		t.Fatalf("b.example.com: %s host %q", ex.Route, ex.HostMatch)
	}
	ex = explain(t, tb, Request{URL: "http://x.b.example.com/"})
	if ex.Status != 404 || ex.Reason != "no_route" || !hasWhy(ex, "exactly one extra label") {
		t.Fatalf("x.b.example.com: %s why %q", ex.Verdict(), ex.Why)
	}
}

func TestExplainProxyAnswers(t *testing.T) {
	tb := table(t, `
metadata: {name: guarded}
spec:
  edgeProxy: tenant-a
  hostnames: [a.example.com, b.example.com]
  tls: [{hosts: [a.example.com], secretName: a-tls}, {hosts: [b.example.com], secretName: b-tls}]
  policy: {sourceRanges: [192.0.2.0/24], maxRequestBodySize: 1Ki}
  rules:
  - matches: [{path: {type: PathPrefix, value: /}, method: POST}]
    backendRefs: [{name: empty, port: 80}]
`)
	cases := []struct {
		req    Request
		status int
		reason string
	}{
		{Request{URL: "https://a.example.com/", SNI: "b.example.com", Method: "POST"}, 421, "misdirected"},
		{Request{URL: "https://c.example.com/"}, 0, "no_certificate"},
		{Request{URL: "http://a.example.com/", Method: "POST", ClientIP: "198.51.100.7"}, 403, "forbidden_source"},
		{Request{URL: "http://a.example.com/", Method: "POST", ClientIP: "192.0.2.7", BodyBytes: 4096}, 413, "body_too_large"},
		{Request{URL: "http://a.example.com/", Method: "POST", ClientIP: "192.0.2.7"}, 503, "no_endpoints"},
		{Request{URL: "http://a.example.com/"}, 404, "no_route"},
	}
	for _, c := range cases {
		ex := explain(t, tb, c.req)
		if ex.Status != c.status || ex.Reason != c.reason {
			t.Errorf("%s %s (SNI %q): got %d %s, want %d %s", c.req.Method, c.req.URL, c.req.SNI, ex.Status, ex.Reason, c.status, c.reason)
		}
	}
}
