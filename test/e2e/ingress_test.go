package e2e

import (
	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	edgev1alpha1 "github.com/portico-dev/portico/api/v1alpha1"
)

// Scenario 1: the source documents' Ingress examples, applied as written.
var _ = Describe("source document Ingresses", Ordered, func() {
	var ep *edgev1alpha1.EdgeProxy
	var addr string

	BeforeAll(func(ctx SpecContext) {
		ep = edgeProxy(ctx, "docs", "docs-edge", "nginx", []string{"app"},
			"api.example.com", "app.example.com", "admin.example.com")
		for _, b := range []string{"web-api", "frontend", "admin-ui"} {
			echoBackend(ctx, "app", b, 1)
		}
	})

	It("serves basic-ingress.yaml: api.example.com → web-api:80", func(ctx SpecContext) {
		Expect(cluster.ApplyPath(ctx, sourceExample("basic-ingress.yaml"))).To(Succeed())
		addr = proxyAddress(ctx, ep)
		expectIngressAddress(ctx, "app", "web-api", addr)
		e := expectServed(ctx, addr, "api.example.com", "/", "web-api")
		Expect(e.Host).To(Equal("api.example.com"))
		expectServed(ctx, addr, "api.example.com", "/users/42", "web-api")
	})

	It("serves host-path-routing.yaml: hosts split, /api wins over / by longest match", func(ctx SpecContext) {
		Expect(cluster.ApplyPath(ctx, sourceExample("host-path-routing.yaml"))).To(Succeed())
		expectServed(ctx, addr, "app.example.com", "/", "frontend")
		expectServed(ctx, addr, "app.example.com", "/api", "web-api")
		expectServed(ctx, addr, "app.example.com", "/api/orders", "web-api")
		expectServed(ctx, addr, "app.example.com", "/apocalypse", "frontend")
		expectServed(ctx, addr, "admin.example.com", "/", "admin-ui")
		expectServed(ctx, addr, "admin.example.com", "/api", "admin-ui")
	})
})
