package e2e

import (
	"net/http"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	gwapiv1 "sigs.k8s.io/gateway-api/apis/v1"
)

// Scenario 2: the source documents' gateway-httproute.yaml, applied as written. Its listener names
// no allowedRoutes, so only routes of the Gateway's own namespace may attach (from: Same) and the
// HTTPRoute in app is refused; with from: All it attaches and is served over TLS with the listener's
// certificate, whose Secret lives in the Gateway's namespace.
var _ = Describe("source document Gateway and HTTPRoute", Ordered, func() {
	const host = "api.example.com"
	gateway := types.NamespacedName{Namespace: "gateway-system", Name: "public-gateway"}
	route := types.NamespacedName{Namespace: "app", Name: "web-api"}
	var certPEM []byte

	routeAccepted := func(ctx SpecContext) func() *metav1.Condition {
		return func() *metav1.Condition {
			r := &gwapiv1.HTTPRoute{}
			if err := k8s.Get(ctx, route, r); err != nil {
				return nil
			}
			for _, p := range r.Status.Parents {
				if string(p.ParentRef.Name) == gateway.Name {
					for i := range p.Conditions {
						if p.Conditions[i].Type == string(gwapiv1.RouteConditionAccepted) {
							return &p.Conditions[i]
						}
					}
				}
			}
			return nil
		}
	}

	BeforeAll(func(ctx SpecContext) {
		Expect(createOrKeep(ctx, &gwapiv1.GatewayClass{ObjectMeta: metav1.ObjectMeta{Name: "nginx"},
			Spec: gwapiv1.GatewayClassSpec{ControllerName: "edge.portico.dev/gateway-controller"}})).To(Succeed())
		for _, ns := range []string{"gateway-system", "app"} {
			Expect(cluster.EnsureNamespace(ctx, ns)).To(Succeed())
		}
		echoBackend(ctx, "app", "web-api", 1)
		var keyPEM []byte
		certPEM, keyPEM = selfSigned(host)
		Expect(k8s.Create(ctx, &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Name: "api-example-com-tls", Namespace: gateway.Namespace}, Type: corev1.SecretTypeTLS,
			Data: map[string][]byte{corev1.TLSCertKey: certPEM, corev1.TLSPrivateKeyKey: keyPEM},
		})).To(Succeed())
	})

	It("refuses the HTTPRoute in app with NotAllowedByListeners when applied as written", func(ctx SpecContext) {
		Expect(cluster.ApplyPath(ctx, sourceExample("gateway-httproute.yaml"))).To(Succeed())
		Eventually(ctx, routeAccepted(ctx)).WithTimeout(timeout).WithPolling(poll).Should(And(Not(BeNil()),
			HaveField("Status", metav1.ConditionFalse), HaveField("Reason", string(gwapiv1.RouteReasonNotAllowedByListeners))))
	})

	It("attaches it with allowedRoutes from All and serves it over TLS with the listener's certificate", func(ctx SpecContext) {
		Eventually(ctx, func() error {
			gw := &gwapiv1.Gateway{}
			if err := k8s.Get(ctx, gateway, gw); err != nil {
				return err
			}
			gw.Spec.Listeners[0].AllowedRoutes = &gwapiv1.AllowedRoutes{Namespaces: &gwapiv1.RouteNamespaces{From: ptr.To(gwapiv1.NamespacesFromAll)}}
			return k8s.Update(ctx, gw)
		}).WithTimeout(timeout).WithPolling(poll).Should(Succeed())
		Eventually(ctx, routeAccepted(ctx)).WithTimeout(timeout).WithPolling(poll).Should(And(Not(BeNil()),
			HaveField("Status", metav1.ConditionTrue)))

		var addr string
		Eventually(ctx, func(g Gomega) {
			gw := &gwapiv1.Gateway{}
			g.Expect(k8s.Get(ctx, gateway, gw)).To(Succeed())
			g.Expect(gw.Status.Addresses).NotTo(BeEmpty())
			addr = gw.Status.Addresses[0].Value
		}).WithTimeout(timeout).WithPolling(poll).Should(Succeed())

		roots := certPool(certPEM)
		Eventually(ctx, func(g Gomega) {
			c, err := dialTLS(addr, host, roots)
			g.Expect(err).NotTo(HaveOccurred())
			defer c.Close()
			g.Expect(c.get("/")).To(Equal(http.StatusOK))
		}).WithTimeout(timeout).WithPolling(poll).Should(Succeed())
	})
})
