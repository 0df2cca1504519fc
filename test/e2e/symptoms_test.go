package e2e

import (
	"context"
	"net/http"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"

	edgev1alpha1 "github.com/portico-dev/portico/api/v1alpha1"
)

// Scenario 4: the source documents' "Symptom to cause" table, reproduced.
var _ = Describe("symptom to cause", Ordered, func() {
	const ns = "symptoms"
	var addr string

	ingress := func(ctx context.Context, name, host, svc, class string, annotations map[string]string, tlsSecret string) *networkingv1.Ingress {
		prefix := networkingv1.PathTypePrefix
		ing := &networkingv1.Ingress{
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, Annotations: annotations},
			Spec: networkingv1.IngressSpec{IngressClassName: &class, Rules: []networkingv1.IngressRule{{Host: host,
				IngressRuleValue: networkingv1.IngressRuleValue{HTTP: &networkingv1.HTTPIngressRuleValue{Paths: []networkingv1.HTTPIngressPath{{
					Path: "/", PathType: &prefix, Backend: networkingv1.IngressBackend{Service: &networkingv1.IngressServiceBackend{
						Name: svc, Port: networkingv1.ServiceBackendPort{Number: 80}}}}}}}}}},
		}
		if tlsSecret != "" {
			ing.Spec.TLS = []networkingv1.IngressTLS{{Hosts: []string{host}, SecretName: tlsSecret}}
		}
		Expect(k8s.Create(ctx, ing)).To(Succeed())
		return ing
	}

	BeforeAll(func(ctx SpecContext) {
		ep := edgeProxy(ctx, "symptoms", "symptoms-edge", "symptoms", []string{ns}, "*.symptoms.example.com")
		echoBackend(ctx, ns, "web", 1)
		// A Service whose selector matches no pod: it never has ready endpoints.
		Expect(k8s.Create(ctx, &corev1.Service{
			ObjectMeta: metav1.ObjectMeta{Name: "nobody", Namespace: ns},
			Spec: corev1.ServiceSpec{Selector: map[string]string{"app": "nobody"},
				Ports: []corev1.ServicePort{{Name: "http", Port: 80, TargetPort: intstr.FromInt32(8080)}}},
		})).To(Succeed())
		ingress(ctx, "ok", "ok.symptoms.example.com", "web", "symptoms", nil, "")
		addr = proxyAddress(ctx, ep)
		expectServed(ctx, addr, "ok.symptoms.example.com", "/", "web")
	})

	It("answers 404 from the proxy for an unknown host", func(ctx SpecContext) {
		expectStatus(ctx, addr, "unknown.symptoms.example.com", "/", http.StatusNotFound)
		expectStatus(ctx, addr, "nobody.example.org", "/", http.StatusNotFound)
	})

	It("answers 503 for a Service with no ready endpoints, and says so on the route until a Pod is Ready", func(ctx SpecContext) {
		ingress(ctx, "empty", "empty.symptoms.example.com", "nobody", "symptoms", nil, "")
		expectStatus(ctx, addr, "empty.symptoms.example.com", "/", http.StatusServiceUnavailable)
		Eventually(ctx, func() *metav1.Condition {
			return routeCondition(ctx, ns, "ingress-empty", string(edgev1alpha1.RouteConditionResolvedRefs))
		}).WithTimeout(timeout).WithPolling(poll).Should(And(Not(BeNil()), HaveField("Status", metav1.ConditionFalse),
			HaveField("Reason", string(edgev1alpha1.RouteReasonNoReadyEndpoints)), HaveField("Message", ContainSubstring(`Service "nobody"`))))
		By("the route waits (Reconciling) rather than failing: a Pod becoming Ready clears it")
		Expect(routeCondition(ctx, ns, "ingress-empty", string(edgev1alpha1.RouteConditionStalled))).To(BeNil())
		echoDeployment(ctx, ns, "nobody", 1)
		expectServed(ctx, addr, "empty.symptoms.example.com", "/", "nobody")
		Eventually(ctx, func() *metav1.Condition {
			return routeCondition(ctx, ns, "ingress-empty", string(edgev1alpha1.RouteConditionResolvedRefs))
		}).WithTimeout(timeout).WithPolling(poll).Should(HaveField("Status", metav1.ConditionTrue))
	})

	It("answers 504 when the backend is slower than proxy-read-timeout", func(ctx SpecContext) {
		ingress(ctx, "slow", "slow.symptoms.example.com", "web", "symptoms",
			map[string]string{"nginx.ingress.kubernetes.io/proxy-read-timeout": "1"}, "")
		expectServed(ctx, addr, "slow.symptoms.example.com", "/", "web")
		expectStatus(ctx, addr, "slow.symptoms.example.com", "/?delay=3s", http.StatusGatewayTimeout)
	})

	It("says on the route when the TLS Secret does not exist", func(ctx SpecContext) {
		ingress(ctx, "wrong-secret", "tls.symptoms.example.com", "web", "symptoms", nil, "no-such-secret")
		Eventually(ctx, func(g Gomega) {
			tr := &edgev1alpha1.TenantRoute{}
			g.Expect(k8s.Get(ctx, types.NamespacedName{Namespace: ns, Name: "ingress-wrong-secret"}, tr)).To(Succeed())
			var reasons []string
			for _, c := range tr.Status.Conditions {
				if c.Status == metav1.ConditionFalse {
					reasons = append(reasons, c.Reason)
				}
			}
			g.Expect(reasons).To(ContainElement(string(edgev1alpha1.RouteReasonSecretNotFound)))
		}).WithTimeout(timeout).WithPolling(poll).Should(Succeed())
	})

	It("leaves an Ingress of another class untouched", func(ctx SpecContext) {
		ing := ingress(ctx, "not-ours", "other.symptoms.example.com", "web", "someone-else", nil, "")
		Consistently(ctx, func(g Gomega) {
			err := k8s.Get(ctx, types.NamespacedName{Namespace: ns, Name: "ingress-not-ours"}, &edgev1alpha1.TenantRoute{})
			g.Expect(apierrors.IsNotFound(err)).To(BeTrue(), "a TenantRoute was generated for another class's Ingress")
			cur := &networkingv1.Ingress{}
			g.Expect(k8s.Get(ctx, types.NamespacedName{Namespace: ns, Name: ing.Name}, cur)).To(Succeed())
			g.Expect(cur.Status.LoadBalancer.Ingress).To(BeEmpty())
			g.Expect(cur.Finalizers).To(BeEmpty())
			g.Expect(cur.ResourceVersion).To(Equal(ing.ResourceVersion))
		}).WithTimeout(4 * time.Second).WithPolling(poll).Should(Succeed())
		expectStatus(ctx, addr, "other.symptoms.example.com", "/", http.StatusNotFound)
	})
})
