package routing

import (
	"fmt"
	"net/http"
	"runtime"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	gwapiv1 "sigs.k8s.io/gateway-api/apis/v1"

	edgev1alpha1 "github.com/portico-dev/portico/api/v1alpha1"
)

var benchEpoch = time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)

func benchPath(t gwapiv1.PathMatchType, v string) gwapiv1.HTTPRouteMatch {
	return gwapiv1.HTTPRouteMatch{Path: &gwapiv1.HTTPPathMatch{Type: ptrTo(t), Value: ptrTo(v)}}
}

func benchRule(svc string, matches ...gwapiv1.HTTPRouteMatch) edgev1alpha1.TenantRouteRule {
	return edgev1alpha1.TenantRouteRule{
		Matches: matches,
		BackendRefs: []gwapiv1.HTTPBackendRef{{BackendRef: gwapiv1.BackendRef{
			BackendObjectReference: gwapiv1.BackendObjectReference{Name: gwapiv1.ObjectName(svc), Port: ptrTo[gwapiv1.PortNumber](80)},
		}}},
	}
}

// benchRoutes makes n routes on distinct hosts h<i>.example.com, each with several paths, like a
// typical Ingress: "/", "/api", "/api/v1" (plus a POST variant), "/static" and exact "/healthz".
func benchRoutes(n int) []edgev1alpha1.TenantRoute {
	routes := make([]edgev1alpha1.TenantRoute, n)
	for i := range routes {
		post := benchPath(gwapiv1.PathMatchPathPrefix, "/api/v1")
		post.Method = ptrTo(gwapiv1.HTTPMethodPost)
		routes[i] = edgev1alpha1.TenantRoute{
			ObjectMeta: metav1.ObjectMeta{
				Namespace: fmt.Sprintf("tenant-%d", i%97), Name: fmt.Sprintf("route-%d", i),
				CreationTimestamp: metav1.NewTime(benchEpoch.Add(time.Duration(i) * time.Second)),
			},
			Spec: edgev1alpha1.TenantRouteSpec{
				EdgeProxy: "edge",
				Hostnames: []edgev1alpha1.Hostname{edgev1alpha1.Hostname(fmt.Sprintf("h%d.example.com", i))},
				Rules: []edgev1alpha1.TenantRouteRule{
					benchRule("frontend"),
					benchRule("api", benchPath(gwapiv1.PathMatchPathPrefix, "/api")),
					benchRule("api-v1", benchPath(gwapiv1.PathMatchPathPrefix, "/api/v1"), post),
					benchRule("static", benchPath(gwapiv1.PathMatchPathPrefix, "/static/")),
					benchRule("health", benchPath(gwapiv1.PathMatchExact, "/healthz")),
				},
			},
		}
	}
	return routes
}

// manyPathsRoute is one host with n prefix paths /svc-<i>/v1 and n exact paths /svc-<i>/health.
func manyPathsRoute(n int) []edgev1alpha1.TenantRoute {
	tr := edgev1alpha1.TenantRoute{
		ObjectMeta: metav1.ObjectMeta{Namespace: "big", Name: "monolith", CreationTimestamp: metav1.NewTime(benchEpoch)},
		Spec:       edgev1alpha1.TenantRouteSpec{EdgeProxy: "edge", Hostnames: []edgev1alpha1.Hostname{"big.example.com"}},
	}
	for i := 0; i < n; i++ {
		tr.Spec.Rules = append(tr.Spec.Rules, benchRule(fmt.Sprintf("svc-%d", i),
			benchPath(gwapiv1.PathMatchPathPrefix, fmt.Sprintf("/svc-%d/v1", i)),
			benchPath(gwapiv1.PathMatchExact, fmt.Sprintf("/svc-%d/health", i))))
	}
	// Compile caps rules at 64 per route; split the rules over routes on the same host.
	var out []edgev1alpha1.TenantRoute
	for i := 0; i < len(tr.Spec.Rules); i += maxRules {
		part := *tr.DeepCopy()
		part.Name = fmt.Sprintf("monolith-%d", i/maxRules)
		part.Spec.Rules = tr.Spec.Rules[i:min(i+maxRules, len(tr.Spec.Rules))]
		out = append(out, part)
	}
	return out
}

func benchTable(b *testing.B, routes []edgev1alpha1.TenantRoute) *Table {
	b.Helper()
	tbl, errs := Build(Snapshot{Version: "bench", Routes: routes})
	if len(errs) > 0 {
		b.Fatalf("%d route errors, first: %v", len(errs), errs[0].Errors)
	}
	runtime.GC() // do not time the collection of what building left behind
	return tbl
}

func BenchmarkLookup(b *testing.B) {
	paths := []string{"/api/v1/users/42", "/static/app.js", "/healthz", "/", "/api/orders", "/about/team"}
	for _, n := range []int{10, 1_000, 100_000} {
		b.Run(fmt.Sprintf("routes=%d", n), func(b *testing.B) {
			tbl := benchTable(b, benchRoutes(n))
			reqs := make([]Request, 4096)
			for i := range reqs {
				reqs[i] = Request{Host: fmt.Sprintf("h%d.example.com", (i*7919)%n), Path: paths[i%len(paths)], Method: http.MethodGet}
			}
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if _, res := tbl.Lookup(&reqs[i%len(reqs)]); res != Matched {
					b.Fatalf("lookup %+v: %v", reqs[i%len(reqs)], res)
				}
			}
		})
	}
	b.Run("one-host-10k-paths", func(b *testing.B) {
		tbl := benchTable(b, manyPathsRoute(10_000))
		reqs := make([]Request, 4096)
		for i := range reqs {
			p := fmt.Sprintf("/svc-%d/v1/items/%d/detail", (i*7919)%10_000, i)
			if i%2 == 1 {
				p = fmt.Sprintf("/svc-%d/health", (i*7919)%10_000)
			}
			reqs[i] = Request{Host: "big.example.com:443", Path: p, Method: http.MethodGet}
		}
		b.ReportAllocs()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			if _, res := tbl.Lookup(&reqs[i%len(reqs)]); res != Matched {
				b.Fatalf("lookup %+v: %v", reqs[i%len(reqs)], res)
			}
		}
	})
	b.Run("headers-and-regex", func(b *testing.B) {
		tbl := mustBuild(b, lookupRoutes(true))
		reqs := []Request{
			{Host: "shop.example.com", Path: "/api/x", Method: "GET", Header: http.Header{"X-Canary": {"true"}, "X-User": {"admin"}}},
			{Host: "regex.example.com", Path: "/items/42", Method: "GET"},
			{Host: "shop.example.com", Path: "/api/x", Method: "GET", RawQuery: "a=b&debug=1"},
		}
		b.ReportAllocs()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			if _, res := tbl.Lookup(&reqs[i%len(reqs)]); res != Matched {
				b.Fatal(res)
			}
		}
	})
}

func BenchmarkBuild(b *testing.B) {
	for _, n := range []int{10_000} {
		b.Run(fmt.Sprintf("routes=%d", n), func(b *testing.B) {
			s := Snapshot{Version: "bench", Routes: benchRoutes(n)}
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if _, errs := Build(s); len(errs) > 0 {
					b.Fatal(errs[0].Errors)
				}
			}
		})
	}
}

func ptrTo[T any](v T) *T { return &v }
