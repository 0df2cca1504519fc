package e2e

import (
	"net/http"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Scenario 3: path semantics of the source documents' pathType discussion, as the Ingress spec
// defines them (test/testdata/source-examples/README.md lists where the documents are wrong).
var _ = Describe("Ingress path semantics", Ordered, func() {
	const ns = "paths"
	var addr string

	BeforeAll(func(ctx SpecContext) {
		ep := edgeProxy(ctx, "paths", "paths-edge", "paths", []string{ns}, "*.paths.example.com")
		for _, b := range []string{"api", "special", "root"} {
			echoBackend(ctx, ns, b, 1)
		}
		prefix, exact := networkingv1.PathTypePrefix, networkingv1.PathTypeExact
		p := func(path string, t networkingv1.PathType, svc string) networkingv1.HTTPIngressPath {
			return networkingv1.HTTPIngressPath{Path: path, PathType: &t, Backend: networkingv1.IngressBackend{
				Service: &networkingv1.IngressServiceBackend{Name: svc, Port: networkingv1.ServiceBackendPort{Number: 80}}}}
		}
		rule := func(host string, paths ...networkingv1.HTTPIngressPath) networkingv1.IngressRule {
			return networkingv1.IngressRule{Host: host, IngressRuleValue: networkingv1.IngressRuleValue{
				HTTP: &networkingv1.HTTPIngressRuleValue{Paths: paths}}}
		}
		class := "paths"
		Expect(k8s.Create(ctx, &networkingv1.Ingress{
			ObjectMeta: metav1.ObjectMeta{Name: "paths", Namespace: ns},
			Spec: networkingv1.IngressSpec{IngressClassName: &class, Rules: []networkingv1.IngressRule{
				// /api/special listed after /api on one host and before it on the other.
				rule("general-first.paths.example.com", p("/api", prefix, "api"), p("/api/special", prefix, "special")),
				rule("special-first.paths.example.com", p("/api/special", prefix, "special"), p("/api", prefix, "api")),
				rule("exact.paths.example.com", p("/api", exact, "api"), p("/", prefix, "root")),
			}},
		})).To(Succeed())
		addr = proxyAddress(ctx, ep)
		expectIngressAddress(ctx, ns, "paths", addr)
	})

	It("matches Prefix /api by whole segments: /api, /api/, /api/v1 but never /apocalypse", func(ctx SpecContext) {
		for _, path := range []string{"/api", "/api/", "/api/v1"} {
			expectServed(ctx, addr, "general-first.paths.example.com", path, "api")
		}
		expectStatus(ctx, addr, "general-first.paths.example.com", "/apocalypse", http.StatusNotFound)
	})

	It("lets /api/special win over /api whichever is listed first", func(ctx SpecContext) {
		for _, host := range []string{"general-first.paths.example.com", "special-first.paths.example.com"} {
			expectServed(ctx, addr, host, "/api/special", "special")
			expectServed(ctx, addr, host, "/api/special/x", "special")
			expectServed(ctx, addr, host, "/api/specialist", "api")
			expectServed(ctx, addr, host, "/api/other", "api")
		}
	})

	It("does not match Exact /api for /api/", func(ctx SpecContext) {
		expectServed(ctx, addr, "exact.paths.example.com", "/api", "api")
		expectServed(ctx, addr, "exact.paths.example.com", "/api/", "root")
		expectServed(ctx, addr, "exact.paths.example.com", "/api/v1", "root")
	})
})
