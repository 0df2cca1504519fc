package routing

import (
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	edgev1alpha1 "github.com/portico-dev/portico/api/v1alpha1"
	"github.com/portico-dev/portico/dataplane/urlpath"
)

// FuzzLookup: for any Host and path, the rule chosen for the normalized path is the rule the
// forwarded path (the same normalized string) selects again; a matched prefix is a whole-segment
// prefix of that path; the host matcher only answers for a host the route names (exactly, by a
// one-label wildcard, or as catch-all); and case, a port or a trailing dot never change the result.
func FuzzLookup(f *testing.F) {
	table := mustBuild(f, lookupRoutes(true))
	for _, s := range [][2]string{{"shop.example.com", "/api/v1/x"}, {"SHOP.example.com.:80", "/api/../api/v1"},
		{"a.foo.example.com", "/x"}, {"foo.example.com", "//only"}, {"exact.example.com", "/only/%2e%2e/x"},
		{"order.example.com", "/a/b/../bc"}, {"regex.example.com", "/items/7"}, {"", "/"}, {"[::1]:80", "/"}} {
		f.Add(s[0], s[1], "GET")
	}
	f.Fuzz(func(t *testing.T, host, raw, method string) {
		p, err := urlpath.Normalize(raw)
		if err != nil {
			return
		}
		r := &Request{Host: host, Path: p, Method: method, Header: http.Header{}}
		m, res := table.Lookup(r)
		fwd := *r
		fwd.Path, _ = urlpath.Normalize(p)
		m2, res2 := table.Lookup(&fwd)
		if res != res2 || m.Rule != m2.Rule {
			t.Fatalf("%s%s: the routed path and the forwarded path select different rules", host, raw)
		}
		if res != Matched {
			return
		}
		if pre := m.MatchedPrefix; pre != "" && pre != "/" && p != pre && !strings.HasPrefix(p, strings.TrimSuffix(pre, "/")+"/") {
			t.Fatalf("%s: prefix %q matched path %q", raw, pre, p)
		}
		h := normalizeHost(host)
		route := m.Rule.Route
		ok := len(route.Hostnames) == 0
		for _, rh := range route.Hostnames {
			if rh == h {
				ok = true
			}
			if suffix, isWild := strings.CutPrefix(rh, "*"); isWild && strings.HasSuffix(h, suffix) &&
				!strings.Contains(strings.TrimSuffix(h, suffix), ".") && len(h) > len(suffix) {
				ok = true
			}
		}
		if !ok {
			t.Fatalf("host %q (normalized %q) served by route %s/%s for %v", host, h, route.Namespace, route.Name, route.Hostnames)
		}
		for _, variant := range []string{strings.ToUpper(host), h + ":8443", h + "."} {
			if h == "" || strings.ContainsAny(host, ":[]") {
				break
			}
			v := *r
			v.Host = variant
			if m3, res3 := table.Lookup(&v); res3 != res || m3.Rule != m.Rule {
				t.Fatalf("host %q and %q select different rules", host, variant)
			}
		}
	})
}

// FuzzCompile: compiling a TenantRoute built from arbitrary strings never panics, and a route that
// compiles contains only what its spec said: its hostnames, path values, header names, backend
// names and rewrite, nothing added or altered beyond case and canonical form.
func FuzzCompile(f *testing.F) {
	f.Add("app.example", "PathPrefix", "/api", "X-Canary", "true", "svc", "/v2", int32(80))
	f.Add("*.example.com", "Exact", "/a/../b", "x_y", "a\nb", "Svc", "", int32(0))
	f.Add("a..b", "RegularExpression", "/items/[0-9]+", "", "{{", "svc\x00", "//x", int32(70000))
	f.Fuzz(func(t *testing.T, host, pathType, pathValue, hdrName, hdrValue, backend, rewrite string, port int32) {
		spec := map[string]any{
			"edgeProxy": "edge",
			"hostnames": []string{host},
			"rules": []any{map[string]any{
				"matches": []any{map[string]any{
					"path":    map[string]any{"type": pathType, "value": pathValue},
					"headers": []any{map[string]any{"name": hdrName, "value": hdrValue}},
				}},
				"filters": []any{map[string]any{"type": "URLRewrite", "urlRewrite": map[string]any{
					"path": map[string]any{"type": "ReplacePrefixMatch", "replacePrefixMatch": rewrite}}}},
				"backendRefs": []any{map[string]any{"name": backend, "port": port}},
			}},
		}
		raw, err := json.Marshal(map[string]any{"spec": spec})
		if err != nil {
			return
		}
		var tr edgev1alpha1.TenantRoute
		if err := json.Unmarshal(raw, &tr); err != nil {
			return
		}
		tr.ObjectMeta = metav1.ObjectMeta{Namespace: "team", Name: "fuzz"}
		route, errs := Compile(&tr, Defaults{})
		if len(errs) > 0 {
			return
		}
		for _, h := range route.Hostnames {
			if !strings.EqualFold(strings.TrimSuffix(h, "."), strings.TrimSuffix(host, ".")) {
				t.Fatalf("hostname %q compiled from %q", h, host)
			}
		}
		if len(route.Rules) != 1 {
			t.Fatalf("%d rules from one", len(route.Rules))
		}
		rule := route.Rules[0]
		for _, b := range rule.Backends {
			if b.Key.Name != backend || b.Key.Namespace != "team" || b.Key.Port != port {
				t.Fatalf("backend %+v compiled from %q port %d", b.Key, backend, port)
			}
		}
		for _, m := range rule.Matches {
			if m.Path != "" && m.Path != pathValue && strings.TrimSuffix(m.Path, "/") != strings.TrimSuffix(pathValue, "/") {
				t.Fatalf("path %q compiled from %q", m.Path, pathValue)
			}
			for _, hm := range m.Headers {
				if !strings.EqualFold(hm.Name, hdrName) || hm.Value != hdrValue && hm.Regex == nil {
					t.Fatalf("header match %q=%q compiled from %q=%q", hm.Name, hm.Value, hdrName, hdrValue)
				}
			}
		}
		if rw := rule.Rewrite; rw != nil && rw.Path != nil && rw.Path.Value != rewrite && !slices.Contains([]string{"", "/"}, rewrite) {
			t.Fatalf("rewrite %q compiled from %q", rw.Path.Value, rewrite)
		}
	})
}
