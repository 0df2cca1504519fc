package e2e

import (
	"crypto/x509"
	"net/http"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

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

	It("serves tls-ingress.yaml over HTTPS with the certificate cert-manager issued, and a renewal without dropping a connection", func(ctx SpecContext) {
		const host = "api.example.com"
		caPEM := createCAChain(ctx, "letsencrypt-prod") // the ClusterIssuer tls-ingress.yaml names
		roots := certPool(caPEM)
		Expect(cluster.ApplyPath(ctx, sourceExample("tls-ingress.yaml"))).To(Succeed())

		By("cert-manager's ingress-shim issues api-example-com-tls and the proxy serves it, verified against the CA")
		var first *x509.Certificate
		Eventually(ctx, func(g Gomega) {
			leaf, err := servedLeaf(addr, host, roots)
			g.Expect(err).NotTo(HaveOccurred())
			first = leaf
		}).WithTimeout(timeout).WithPolling(poll).Should(Succeed())
		Expect(first.DNSNames).To(ContainElement(host))
		Eventually(ctx, func() *metav1.Condition {
			return routeCondition(ctx, "app", "ingress-web-api", string(edgev1alpha1.RouteConditionCertificateReady))
		}).WithTimeout(timeout).WithPolling(poll).Should(And(Not(BeNil()),
			HaveField("Status", metav1.ConditionTrue), HaveField("Reason", string(edgev1alpha1.RouteReasonCertificateManagedExternally))))

		By("an open HTTPS connection serves requests")
		open, err := dialTLS(addr, host, roots)
		Expect(err).NotTo(HaveOccurred())
		defer open.Close()
		Expect(open.get("/")).To(Equal(http.StatusOK))

		By("forcing a renewal changes the certificate of new handshakes")
		renewCertificate(ctx, types.NamespacedName{Namespace: "app", Name: "api-example-com-tls"})
		Eventually(ctx, func(g Gomega) {
			leaf, err := servedLeaf(addr, host, roots)
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(leaf.SerialNumber).NotTo(Equal(first.SerialNumber), "still the first certificate")
		}).WithTimeout(timeout).WithPolling(poll).Should(Succeed())

		By("the connection opened before the renewal is still open and served")
		Expect(open.get("/users/42")).To(Equal(http.StatusOK))
		Expect(open.leaf().SerialNumber).To(Equal(first.SerialNumber))
	})
})
