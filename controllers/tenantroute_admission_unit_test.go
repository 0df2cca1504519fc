package controllers

import (
	"slices"
	"testing"

	edgev1alpha1 "github.com/portico-dev/portico/api/v1alpha1"
)

// Plain Go: a route's hostname neighbours (what a change of it re-queues) include every route whose
// ownership can conflict with it, in both directions, and nothing of another EdgeProxy.
func TestHostnameNeighbourKeysFindConflictingRoutes(t *testing.T) {
	route := func(ep string, hosts ...string) *edgev1alpha1.TenantRoute {
		tr := &edgev1alpha1.TenantRoute{Spec: edgev1alpha1.TenantRouteSpec{EdgeProxy: ep}}
		for _, h := range hosts {
			tr.Spec.Hostnames = append(tr.Spec.Hostnames, edgev1alpha1.Hostname(h))
		}
		return tr
	}
	finds := func(changed, other *edgev1alpha1.TenantRoute) bool {
		idx := hostnameKeys(other)
		for _, k := range hostnameNeighbourKeys(changed) {
			if slices.Contains(idx, k) {
				return true
			}
		}
		return false
	}
	related := []struct {
		name string
		a, b *edgev1alpha1.TenantRoute
	}{
		{"same host, any case", route("acme", "Shop.Example.com"), route("acme", "other.example.com", "shop.example.com")},
		{"exact under wildcard", route("acme", "shop.example.com"), route("acme", "*.example.com")},
		{"catch-all", route("acme"), route("acme")},
	}
	for _, c := range related {
		if !finds(c.a, c.b) || !finds(c.b, c.a) {
			t.Errorf("%s: not neighbours both ways", c.name)
		}
	}
	unrelated := []struct {
		name string
		a, b *edgev1alpha1.TenantRoute
	}{
		{"other host", route("acme", "a.example.com"), route("acme", "b.example.com")},
		{"two labels under a wildcard", route("acme", "a.b.example.com"), route("acme", "*.example.com")},
		{"other edgeproxy", route("acme", "a.example.com"), route("globex", "a.example.com")},
		{"catch-all and a host", route("acme"), route("acme", "a.example.com")},
	}
	for _, c := range unrelated {
		if finds(c.a, c.b) || finds(c.b, c.a) {
			t.Errorf("%s: neighbours", c.name)
		}
	}
}
