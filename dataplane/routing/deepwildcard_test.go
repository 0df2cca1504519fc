package routing

import (
	"strings"
	"testing"
)

// Routes translated from HTTPRoutes (label edge.portico.dev/source-kind: HTTPRoute) match wildcard
// hostnames the Gateway API's way, any number of extra labels; others keep Ingress's one label.
func TestDeepWildcards(t *testing.T) {
	rule := func(svc string) string {
		return "  - backendRefs:\n    - name: " + svc + "\n      port: 80\n"
	}
	fromHTTPRoute := func(doc string) string {
		return strings.Replace(doc, "metadata:\n", "metadata:\n  labels:\n    edge.portico.dev/source-kind: HTTPRoute\n", 1)
	}
	tbl := mustBuild(t, strings.Join([]string{
		fromHTTPRoute(routeYAML("a", "gw", "2024-01-01T00:00:00Z", []string{"*.gw.example.com"}, rule("gw"))),
		fromHTTPRoute(routeYAML("a", "gw-deeper", "2024-01-01T00:00:00Z", []string{"*.b.gw.example.com"}, rule("gw-deeper"))),
		routeYAML("a", "ing", "2024-01-01T00:00:00Z", []string{"*.ing.example.com"}, rule("ing")),
	}, ""))
	for host, want := range map[string]string{
		"x.gw.example.com":     "gw",
		"x.y.gw.example.com":   "gw",
		"x.y.z.gw.example.com": "gw",
		"x.b.gw.example.com":   "gw-deeper", // the longest suffix wins
		"x.y.b.gw.example.com": "gw-deeper",
		"gw.example.com":       "",
		"x.ing.example.com":    "ing",
		"x.y.ing.example.com":  "", // Ingress: one label
	} {
		m, res := tbl.Lookup(&Request{Host: host, Path: "/"})
		got := ""
		if res == Matched {
			got = m.Rule.Backends[0].Key.Name
		}
		if got != want {
			t.Errorf("%s: got %q (%v), want %q", host, got, res, want)
		}
	}
}
