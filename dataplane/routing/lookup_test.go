package routing

import (
	"net/http"
	"os"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// rule writes one rule sending to service svc; each match is YAML for one entry of matches.
func rule(svc string, matches ...string) string {
	s := "  - backendRefs:\n    - name: " + svc + "\n      port: 80\n"
	if len(matches) > 0 {
		s += "    matches:\n"
		for _, m := range matches {
			s += "    - " + m + "\n"
		}
	}
	return s
}

const (
	t0 = "2024-01-01T00:00:00Z"
	t1 = "2024-02-01T00:00:00Z"
)

func lookupRoutes(catchAll bool) string {
	s := routeYAML("a", "shop", t0, []string{"Shop.Example.com"},
		rule("root")+ // rule 0: no matches = PathPrefix "/"
			rule("api", `path: {type: PathPrefix, value: /api}`)+
			rule("api-exact", `path: {type: Exact, value: /api}`)+
			rule("v1", `path: {type: PathPrefix, value: /api/v1/}`)+
			rule("api-post", `{path: {value: /api}, method: POST}`)+
			rule("canary", `{path: {value: /api}, headers: [{name: X-Canary, value: "true"}]}`)+
			rule("canary-admin", `{path: {value: /api}, headers: [{name: x-canary, value: "true"}, {name: X-User, type: RegularExpression, value: "adm.*"}]}`)+
			rule("debug", `{path: {value: /api}, queryParams: [{name: debug, value: "1"}]}`)+
			rule("items-regex", `path: {type: RegularExpression, value: "/items/[0-9]+"}`)+
			rule("case", `path: {type: Exact, value: /Case}`)+
			rule("dup-first", `path: {type: Exact, value: /dup}`)+ // rule 10
			rule("dup-second", `path: {type: Exact, value: /dup}`)+ // rule 11: same match, later rule
			rule("multi", `path: {type: Exact, value: /m0}`, `path: {type: Exact, value: /m1}`)) +
		routeYAML("b", "wild", t0, []string{"*.example.com"}, rule("wild")) +
		routeYAML("c", "only", t0, []string{"exact.example.com"}, rule("only", `path: {value: /only}`)) +
		// Longest prefix wins whatever the rule order.
		routeYAML("c", "order", t0, []string{"order.example.com"},
			rule("long", `path: {value: /a/b}`)+rule("short", `path: {value: /a}`)) +
		// Route age, then namespace/name, decide between equal matches on one host.
		routeYAML("z", "old", t0, []string{"tie.example.com"}, rule("old", `path: {value: /x}`)) +
		routeYAML("a", "new", t1, []string{"tie.example.com"}, rule("new", `path: {value: /x}`)+rule("new-y", `path: {value: /y}`)) +
		routeYAML("b", "same", t1, []string{"tie.example.com"}, rule("b-same", `path: {value: /y}`)) +
		// Regexes come after every exact and prefix match, longer patterns first, anchored.
		routeYAML("r", "regex", t0, []string{"regex.example.com"},
			rule("static", `path: {value: /static}`)+
				rule("short-re", `path: {type: RegularExpression, value: "/items/.*"}`)+
				rule("long-re", `path: {type: RegularExpression, value: "/items/[0-9]+"}`)+
				rule("exact-items", `path: {type: Exact, value: /items/7}`)) +
		// A method match beats more header matches.
		routeYAML("m", "method", t0, []string{"method.example.com"},
			rule("headers", `{path: {value: /}, headers: [{name: a, value: "1"}, {name: b, value: "2"}]}`)+
				rule("get", `{path: {value: /}, method: GET}`))
	if catchAll {
		s += routeYAML("d", "default", t0, nil, rule("default"))
	}
	return s
}

type got struct {
	Result  LookupResult
	Backend string
	Prefix  string
}

func TestLookup(t *testing.T) {
	full := mustBuild(t, lookupRoutes(true))
	noCatchAll := mustBuild(t, lookupRoutes(false))
	h := func(kv ...string) http.Header {
		hd := http.Header{}
		for i := 0; i < len(kv); i += 2 {
			hd.Add(kv[i], kv[i+1])
		}
		return hd
	}
	tests := []struct {
		name  string
		table *Table
		req   Request
		want  got
	}{
		{"exact host, root prefix", full, Request{Host: "shop.example.com", Path: "/"}, got{Matched, "root", "/"}},
		{"host upper case", full, Request{Host: "SHOP.Example.COM", Path: "/"}, got{Matched, "root", "/"}},
		{"host with port", full, Request{Host: "shop.example.com:8443", Path: "/"}, got{Matched, "root", "/"}},
		{"host trailing dot", full, Request{Host: "shop.example.com.", Path: "/"}, got{Matched, "root", "/"}},
		{"host trailing dot and port", full, Request{Host: "shop.example.com.:80", Path: "/"}, got{Matched, "root", "/"}},
		{"empty path is /", full, Request{Host: "shop.example.com"}, got{Matched, "root", "/"}},
		{"exact beats prefix", full, Request{Host: "shop.example.com", Path: "/api"}, got{Matched, "api-exact", ""}},
		{"exact /api does not match /api/", full, Request{Host: "shop.example.com", Path: "/api/"}, got{Matched, "api", "/api"}},
		{"prefix whole segment", full, Request{Host: "shop.example.com", Path: "/api/users"}, got{Matched, "api", "/api"}},
		{"prefix never /apocalypse", full, Request{Host: "shop.example.com", Path: "/apocalypse"}, got{Matched, "root", "/"}},
		{"longest prefix, trailing slash ignored", full, Request{Host: "shop.example.com", Path: "/api/v1"}, got{Matched, "v1", "/api/v1"}},
		{"longest prefix deeper", full, Request{Host: "shop.example.com", Path: "/api/v1/users/7"}, got{Matched, "v1", "/api/v1"}},
		{"prefix /api/v1 not /api/v10", full, Request{Host: "shop.example.com", Path: "/api/v10"}, got{Matched, "api", "/api"}},
		{"method match", full, Request{Host: "shop.example.com", Path: "/api/x", Method: "POST"}, got{Matched, "api-post", "/api"}},
		{"method beats headers", full, Request{Host: "shop.example.com", Path: "/api/x", Method: "POST", Header: h("X-Canary", "true")}, got{Matched, "api-post", "/api"}},
		{"one header", full, Request{Host: "shop.example.com", Path: "/api/x", Method: "GET", Header: h("x-canary", "true")}, got{Matched, "canary", "/api"}},
		{"header value exact", full, Request{Host: "shop.example.com", Path: "/api/x", Header: h("X-Canary", "True")}, got{Matched, "api", "/api"}},
		{"more headers win", full, Request{Host: "shop.example.com", Path: "/api/x", Header: h("X-Canary", "true", "X-User", "admin")}, got{Matched, "canary-admin", "/api"}},
		{"header regex anchored", full, Request{Host: "shop.example.com", Path: "/api/x", Header: h("X-Canary", "true", "X-User", "badmin")}, got{Matched, "canary", "/api"}},
		{"repeated header joined", full, Request{Host: "shop.example.com", Path: "/api/x", Header: h("X-Canary", "true", "X-Canary", "true")}, got{Matched, "api", "/api"}},
		{"query match", full, Request{Host: "shop.example.com", Path: "/api/x", RawQuery: "a=b&debug=1"}, got{Matched, "debug", "/api"}},
		{"query decoded", full, Request{Host: "shop.example.com", Path: "/api/x", RawQuery: "debug=%31"}, got{Matched, "debug", "/api"}},
		{"query first value", full, Request{Host: "shop.example.com", Path: "/api/x", RawQuery: "debug=2&debug=1"}, got{Matched, "api", "/api"}},
		{"headers beat query", full, Request{Host: "shop.example.com", Path: "/api/x", RawQuery: "debug=1", Header: h("X-Canary", "true")}, got{Matched, "canary", "/api"}},
		{"regex after prefix /", full, Request{Host: "shop.example.com", Path: "/items/42"}, got{Matched, "root", "/"}},
		{"exact is case-sensitive", full, Request{Host: "shop.example.com", Path: "/case"}, got{Matched, "root", "/"}},
		{"exact case", full, Request{Host: "shop.example.com", Path: "/Case"}, got{Matched, "case", ""}},
		{"prefix is case-sensitive", full, Request{Host: "shop.example.com", Path: "/API/x"}, got{Matched, "root", "/"}},
		{"rule index tie-break", full, Request{Host: "shop.example.com", Path: "/dup"}, got{Matched, "dup-first", ""}},
		{"second match of a rule", full, Request{Host: "shop.example.com", Path: "/m1"}, got{Matched, "multi", ""}},
		{"wildcard one label", full, Request{Host: "foo.example.com", Path: "/x"}, got{Matched, "wild", "/"}},
		{"wildcard upper case", full, Request{Host: "FOO.example.com:80", Path: "/x"}, got{Matched, "wild", "/"}},
		{"wildcard not two labels", full, Request{Host: "a.foo.example.com", Path: "/x"}, got{Matched, "default", "/"}},
		{"wildcard not the apex", full, Request{Host: "example.com", Path: "/x"}, got{Matched, "default", "/"}},
		{"wildcard needs a label", full, Request{Host: ".example.com", Path: "/x"}, got{Matched, "default", "/"}},
		{"exact host beats wildcard", full, Request{Host: "exact.example.com", Path: "/only/x"}, got{Matched, "only", "/only"}},
		{"no fall-through to wildcard", full, Request{Host: "exact.example.com", Path: "/other"}, got{NoRule, "", ""}},
		{"no fall-through to catch-all", full, Request{Host: "regex.example.com", Path: "/nothing"}, got{NoRule, "", ""}},
		{"longest wins regardless of rule order", full, Request{Host: "order.example.com", Path: "/a/b/c"}, got{Matched, "long", "/a/b"}},
		{"shorter prefix", full, Request{Host: "order.example.com", Path: "/a/bc"}, got{Matched, "short", "/a"}},
		{"oldest route wins", full, Request{Host: "tie.example.com", Path: "/x"}, got{Matched, "old", "/x"}},
		{"same age: namespace/name", full, Request{Host: "tie.example.com", Path: "/y"}, got{Matched, "new-y", "/y"}},
		{"regex long pattern first", full, Request{Host: "regex.example.com", Path: "/items/42"}, got{Matched, "long-re", ""}},
		{"regex shorter pattern", full, Request{Host: "regex.example.com", Path: "/items/abc"}, got{Matched, "short-re", ""}},
		{"regex anchored", full, Request{Host: "regex.example.com", Path: "/x/items/42"}, got{NoRule, "", ""}},
		{"exact beats regex", full, Request{Host: "regex.example.com", Path: "/items/7"}, got{Matched, "exact-items", ""}},
		{"prefix beats regex", full, Request{Host: "regex.example.com", Path: "/static/1"}, got{Matched, "static", "/static"}},
		{"method beats header count", full, Request{Host: "method.example.com", Path: "/", Method: "GET", Header: h("A", "1", "B", "2")}, got{Matched, "get", "/"}},
		{"headers without method", full, Request{Host: "method.example.com", Path: "/", Method: "PUT", Header: h("A", "1", "B", "2")}, got{Matched, "headers", "/"}},
		{"catch-all", full, Request{Host: "unknown.test", Path: "/x"}, got{Matched, "default", "/"}},
		{"IPv6 host", full, Request{Host: "[::1]:8080", Path: "/"}, got{Matched, "default", "/"}},
		{"unknown host without catch-all", noCatchAll, Request{Host: "unknown.test", Path: "/"}, got{NoHost, "", ""}},
		{"wildcard two labels without catch-all", noCatchAll, Request{Host: "a.b.example.com", Path: "/"}, got{NoHost, "", ""}},
		{"nil table", nil, Request{Host: "shop.example.com", Path: "/"}, got{NoHost, "", ""}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m, res := tc.table.Lookup(&tc.req)
			g := got{Result: res, Prefix: m.MatchedPrefix}
			if m.Rule != nil {
				g.Backend = m.Rule.Backends[0].Key.Name
			}
			if (res == Matched) != (m.Rule != nil) {
				t.Errorf("result %v with rule %v", res, m.Rule)
			}
			if diff := cmp.Diff(tc.want, g); diff != "" {
				t.Errorf("Lookup(%+v) (-want +got):\n%s", tc.req, diff)
			}
		})
	}
}

func TestLookupAllocs(t *testing.T) {
	tbl := mustBuild(t, lookupRoutes(true))
	for _, req := range []Request{
		{Host: "shop.example.com", Path: "/api/v1/users/7", Method: "GET"},
		{Host: "shop.example.com:443", Path: "/api", Method: "GET"},
		{Host: "foo.example.com", Path: "/a/b/c", Method: "GET"},
		{Host: "exact.example.com", Path: "/nothing", Method: "GET"},
	} {
		allocs := testing.AllocsPerRun(200, func() {
			if _, res := tbl.Lookup(&req); res == NoHost {
				t.Fatal("no host")
			}
		})
		if allocs != 0 {
			t.Errorf("Lookup(%+v): %v allocations, want 0", req, allocs)
		}
	}
}

func TestTLSSecretFor(t *testing.T) {
	tls := func(ns, name, created string, hosts []string, tls string) string {
		return routeYAML(ns, name, created, hosts, rule("svc")) + "  tls:\n" + tls
	}
	tbl := mustBuild(t,
		tls("a", "shop", t1, []string{"shop.example.com", "www.example.com"}, "  - secretName: shop-tls\n")+
			tls("b", "older", t0, []string{"www.example.com"}, "  - secretName: older-tls\n")+
			tls("c", "wild", t0, []string{"*.example.com"}, "  - secretName: wild-tls\n")+
			tls("d", "extra", t0, nil, "  - secretName: first\n    hosts: [API.example.org]\n  - secretName: second\n    hosts: [api.example.org, other.example.org]\n"))
	tests := []struct {
		sni, want string
	}{
		{"shop.example.com", "a/shop-tls"},
		{"SHOP.example.com.", "a/shop-tls"},
		{"www.example.com", "b/older-tls"}, // oldest route wins
		{"foo.example.com", "c/wild-tls"},
		{"a.foo.example.com", ""},
		{"example.com", ""},
		{"api.example.org", "d/first"},
		{"other.example.org", "d/second"},
		{"unknown.test", ""},
	}
	for _, tc := range tests {
		got := ""
		if tls, ok := tbl.TLSSecretFor(tc.sni); ok {
			got = tls.Secret.String()
		}
		if got != tc.want {
			t.Errorf("TLSSecretFor(%q) = %q, want %q", tc.sni, got, tc.want)
		}
	}
}

func TestPathModifierApply(t *testing.T) {
	// The Gateway API's ReplacePrefixMatch table (httproute_types.go); prefixes as Lookup reports
	// them, i.e. without a trailing '/'.
	tests := []struct{ path, prefix, repl, want string }{
		{"/foo/bar", "/foo", "/xyz", "/xyz/bar"},
		{"/foo/bar", "/foo", "/xyz/", "/xyz/bar"},
		{"/foo", "/foo", "/xyz", "/xyz"},
		{"/foo/", "/foo", "/xyz", "/xyz/"},
		{"/foo/bar", "/foo", "", "/bar"},
		{"/foo/", "/foo", "", "/"},
		{"/foo", "/foo", "", "/"},
		{"/foo/", "/foo", "/", "/"},
		{"/foo", "/foo", "/", "/"},
		{"/foo/bar", "/", "/xyz", "/xyz/foo/bar"},
		{"/", "/", "/xyz", "/xyz/"},
	}
	for _, tc := range tests {
		pm := &PathModifier{Type: "ReplacePrefixMatch", Value: tc.repl}
		if got := pm.Apply(tc.path, tc.prefix); got != tc.want {
			t.Errorf("Apply(%q, %q) with %q = %q, want %q", tc.path, tc.prefix, tc.repl, got, tc.want)
		}
	}
	full := &PathModifier{Type: "ReplaceFullPath", Value: "/new"}
	if got := full.Apply("/old/x", "/old"); got != "/new" {
		t.Errorf("ReplaceFullPath: %q", got)
	}
}

// TestLookupIngressExample checks the routes translated from the host-path-routing Ingress example
// (testdata/build/host-path-routing.in.yaml) the way a user would try them with curl.
func TestLookupIngressExample(t *testing.T) {
	text, err := os.ReadFile("testdata/build/host-path-routing.in.yaml")
	if err != nil {
		t.Fatal(err)
	}
	tbl := mustBuild(t, string(text))
	tests := []struct {
		host, path string
		want       got
	}{
		{"app.example.com", "/", got{Matched, "frontend", "/"}},
		{"app.example.com", "/index.html", got{Matched, "frontend", "/"}},
		{"app.example.com", "/api", got{Matched, "web-api", "/api"}},
		{"app.example.com", "/api/", got{Matched, "web-api", "/api"}},
		{"app.example.com", "/api/v1/users", got{Matched, "web-api", "/api"}},
		{"app.example.com", "/apocalypse", got{Matched, "frontend", "/"}},
		{"APP.example.com:443", "/api", got{Matched, "web-api", "/api"}},
		{"admin.example.com", "/api", got{Matched, "admin-ui", "/"}},
		{"other.example.com", "/", got{NoHost, "", ""}},
	}
	for _, tc := range tests {
		m, res := tbl.Lookup(&Request{Host: tc.host, Path: tc.path, Method: "GET"})
		g := got{Result: res, Prefix: m.MatchedPrefix}
		if m.Rule != nil {
			g.Backend = m.Rule.Backends[0].Key.Name
		}
		if diff := cmp.Diff(tc.want, g); diff != "" {
			t.Errorf("%s%s (-want +got):\n%s", tc.host, tc.path, diff)
		}
	}
}

// TestLookupConcurrent runs lookups from several goroutines: with -race it proves the table is
// read-only after Build.
func TestLookupConcurrent(t *testing.T) {
	tbl := mustBuild(t, lookupRoutes(true))
	reqs := []Request{
		{Host: "shop.example.com", Path: "/api/v1/x", Method: "GET"},
		{Host: "regex.example.com", Path: "/items/42"},
		{Host: "foo.example.com", Path: "/"},
		{Host: "shop.example.com", Path: "/api/x", Header: http.Header{"X-Canary": {"true"}}, RawQuery: "debug=1"},
	}
	var wg sync.WaitGroup
	for g := 0; g < 4; g++ {
		wg.Go(func() {
			for i := 0; i < 500; i++ {
				if _, res := tbl.Lookup(&reqs[(g+i)%len(reqs)]); res != Matched {
					t.Errorf("lookup %d: %v", i, res)
					return
				}
				tbl.TLSSecretFor("shop.example.com")
			}
		})
	}
	wg.Wait()
}
