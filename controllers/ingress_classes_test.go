package controllers

import (
	"encoding/json"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	gwapiv1 "sigs.k8s.io/gateway-api/apis/v1"

	edgev1alpha1 "github.com/portico-dev/portico/api/v1alpha1"
)

var _ = Describe("Ingress classes, canaries and Services", func() {
	BeforeEach(func() { migrationFixture() })

	It("leaves an Ingress of another class alone, byte for byte, whatever happens around it", func() {
		other := &networkingv1.IngressClass{
			ObjectMeta: metav1.ObjectMeta{Name: unique("other")},
			Spec:       networkingv1.IngressClassSpec{Controller: "example.com/other-controller"},
		}
		Expect(k8sClient.Create(ctx, other)).To(Succeed())
		DeferCleanup(func() { Expect(client.IgnoreNotFound(k8sClient.Delete(ctx, other))).To(Succeed()) })
		ensureServices(migrationNamespace, 80, "frontend", "web-api", "admin-ui")
		ing := sourceExample("host-path-routing.yaml")
		ing.Name = unique("foreign")
		ing.Spec.IngressClassName = ptr.To(other.Name)
		key := createIngress(ing, "")
		ing = getIngress(key)
		ing.Status.LoadBalancer.Ingress = []networkingv1.IngressLoadBalancerIngress{{IP: "198.51.100.7"}}
		Expect(k8sClient.Status().Update(ctx, ing)).To(Succeed())
		before, err := json.Marshal(getIngress(key))
		Expect(err).NotTo(HaveOccurred())

		By("its class, its Services and the EdgeProxy change")
		Eventually(func() error {
			cur := &networkingv1.IngressClass{}
			if err := k8sClient.Get(ctx, keyOf(other.Name), cur); err != nil {
				return err
			}
			cur.Labels = map[string]string{"touched": "yes"}
			return k8sClient.Update(ctx, cur)
		}).Should(Succeed())
		touchService(routeKey(migrationNamespace, "frontend"))
		Consistently(func() string {
			b, err := json.Marshal(getIngress(key))
			Expect(err).NotTo(HaveOccurred())
			return string(b)
		}).Should(Equal(string(before)))
		Expect(routeNames(key)).To(BeEmpty())
		Expect(ingressEvents(key)()).To(BeEmpty())
	})

	It("serves an Ingress naming no class through the default IngressClass (basic-two-services.yaml)", func() {
		ns := migrationTenantNamespace()
		name := unique("default")
		proxyNS := createNamespace(name+"-edge", nil).Name
		ep := newEdgeProxy(name, proxyNS, []string{ns}, "yourdomain.com")
		ep.Spec.IngressClass = &edgev1alpha1.IngressClassSpec{Name: name, Default: true}
		Expect(k8sClient.Create(ctx, ep)).To(Succeed())
		DeferCleanup(func() {
			// No garbage collector here: the default class must not outlive the test.
			Expect(client.IgnoreNotFound(k8sClient.Delete(ctx, ep))).To(Succeed())
			Expect(client.IgnoreNotFound(k8sClient.Delete(ctx, &networkingv1.IngressClass{ObjectMeta: metav1.ObjectMeta{Name: name}}))).To(Succeed())
		})
		Eventually(func() error { return k8sClient.Get(ctx, keyOf(name), &networkingv1.IngressClass{}) }).Should(Succeed())
		ensureServices(ns, 80, "web-app-service")
		ensureServices(ns, 8080, "api-service")

		key := createIngress(sourceExample("basic-two-services.yaml"), ns)
		expectRoutes(key, "ingress-my-basic-ingress")
		route := routeKey(ns, "ingress-my-basic-ingress")
		tr := expectAccepted(route)
		Expect(tr.Spec.EdgeProxy).To(Equal(name))
		Expect(tr.Spec.Rules).To(HaveLen(2))

		By("rewrite-target \"/\" is reproduced, and the route and the Ingress say what it does")
		for _, rule := range tr.Spec.Rules {
			Expect(rule.Filters).To(ContainElement(HaveField("URLRewrite.Path.ReplaceFullPath", HaveValue(Equal("/")))))
		}
		expectCondition(route, edgev1alpha1.RouteConditionTranslated, metav1.ConditionTrue, edgev1alpha1.RouteReasonTranslated,
			"nginx.ingress.kubernetes.io/rewrite-target (exact)")
		Eventually(ingressEvents(key)).Should(haveEvent(corev1.EventTypeWarning, string(eventReasonAnnotationNotice),
			"nginx.ingress.kubernetes.io/rewrite-target"))
		Eventually(func() []networkingv1.IngressLoadBalancerIngress {
			return getIngress(key).Status.LoadBalancer.Ingress
		}).Should(Equal(expectedAddresses(name)))
	})

	It("re-translates the main Ingress when its canary changes", func() {
		ensureServices(migrationNamespace, 80, "web-api", "web-api-v2")
		key := createIngress(sourceExample("basic-ingress.yaml"), "")
		route := routeKey(key.Namespace, "ingress-web-api")
		expectRoutes(key, route.Name)
		expectAccepted(route)

		canary := sourceExample("basic-ingress.yaml")
		canary.Name = unique("web-api-canary")
		canary.Annotations = map[string]string{
			"nginx.ingress.kubernetes.io/canary":        "true",
			"nginx.ingress.kubernetes.io/canary-weight": "20",
		}
		canary.Spec.Rules[0].HTTP.Paths[0].Backend.Service.Name = "web-api-v2"
		canaryKey := createIngress(canary, "")
		weights := func() map[string]int32 {
			out := map[string]int32{}
			for _, rule := range getRoute(route).Spec.Rules {
				for _, b := range rule.BackendRefs {
					out[string(b.Name)] = ptr.Deref(b.Weight, 1)
				}
			}
			return out
		}
		Eventually(weights).Should(Equal(map[string]int32{"web-api": 80, "web-api-v2": 20}))
		Expect(routeNames(canaryKey)).To(BeEmpty(), "a canary has no route of its own")
		Eventually(func() []networkingv1.IngressLoadBalancerIngress {
			return getIngress(canaryKey).Status.LoadBalancer.Ingress
		}).ShouldNot(BeEmpty(), "a canary is served, through its main Ingress")

		updateIngress(canaryKey, func(ing *networkingv1.Ingress) {
			ing.Annotations["nginx.ingress.kubernetes.io/canary-weight"] = "50"
		})
		Eventually(weights).Should(Equal(map[string]int32{"web-api": 50, "web-api-v2": 50}))

		Expect(k8sClient.Delete(ctx, getIngress(canaryKey))).To(Succeed())
		Eventually(weights).Should(Equal(map[string]int32{"web-api": 1}))
	})

	It("resolves a backend port by name once the Service exists", func() {
		ns := migrationTenantNamespace()
		ing := sourceExample("tls-secret-ingress.yaml")
		ing.Spec.IngressClassName = ptr.To(migrationClass)
		ing.Spec.Rules[0].HTTP.Paths[0].Backend.Service.Port = networkingv1.ServiceBackendPort{Name: "web"}
		key := createIngress(ing, ns)
		Eventually(ingressEvents(key)).Should(haveEvent(corev1.EventTypeWarning, string(eventReasonTranslationFailed),
			"spec.rules[0].http.paths[0].backend.service.port.name"))
		Expect(routeNames(key)).To(BeEmpty())

		svc := &corev1.Service{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "web-app-service"},
			Spec:       corev1.ServiceSpec{Ports: []corev1.ServicePort{{Name: "web", Port: 8080}}},
		}
		Expect(k8sClient.Create(ctx, svc)).To(Succeed())
		expectRoutes(key, "ingress-my-tls-ingress")
		tr := getRoute(routeKey(ns, "ingress-my-tls-ingress"))
		Expect(tr.Spec.Rules[0].BackendRefs[0].Port).To(HaveValue(Equal(gwapiv1.PortNumber(8080))))
		Expect(tr.Spec.TLS).To(ContainElement(HaveField("SecretName", "my-tls-secret")))
	})
})
