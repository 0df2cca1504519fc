package controllers

import (
	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"

	edgev1alpha1 "github.com/portico-dev/portico/api/v1alpha1"
	"github.com/portico-dev/portico/controllers/translate"
)

var _ = Describe("Ingress translation", func() {
	BeforeEach(func() { migrationFixture() })

	It("serves host-path-routing.yaml through the nginx IngressClass: owned, labelled TenantRoutes, their source, and the Ingress's address", func() {
		ensureServices(migrationNamespace, 80, "frontend", "web-api", "admin-ui")
		key := createIngress(sourceExample("host-path-routing.yaml"), "")
		main, admin := "ingress-platform-routes", "ingress-platform-routes-admin.example.com"
		expectRoutes(key, main, admin)

		ing := getIngress(key)
		for _, tr := range routesOfIngress(key) {
			Expect(tr.Spec.EdgeProxy).To(Equal(migrationEdgeProxy))
			Expect(tr.Labels).To(HaveKeyWithValue(edgev1alpha1.LabelEdgeProxy, migrationEdgeProxy))
			for k, v := range translate.SourceLabels(ing.Name) {
				Expect(tr.Labels).To(HaveKeyWithValue(k, v))
			}
			owner := metav1.GetControllerOf(&tr)
			Expect(owner).NotTo(BeNil())
			Expect(owner.UID).To(Equal(ing.UID))
		}
		tr := expectAccepted(routeKey(key.Namespace, main))
		Expect(tr.Spec.Hostnames).To(ConsistOf(edgev1alpha1.Hostname("app.example.com")))
		Expect(tr.Spec.Rules).To(HaveLen(2))
		tr = expectCondition(routeKey(key.Namespace, main), edgev1alpha1.RouteConditionTranslated, metav1.ConditionTrue,
			edgev1alpha1.RouteReasonTranslated, "generation 1 of Ingress platform-routes")
		Expect(tr.Status.Source).To(Equal(&edgev1alpha1.RouteSource{
			Group: "networking.k8s.io", Kind: "Ingress", Name: "platform-routes", ObservedGeneration: ing.Generation}))
		// No proxy serves it here (Programmed=False/Pending): Reconciling, so InProgress, never Failed.
		Expect(kstatusOf(tr, "TenantRoute")).To(Equal(status.InProgressStatus))
		Expect(tr.Status.Conditions).To(haveCondition(edgev1alpha1.RouteConditionReconciling, metav1.ConditionTrue,
			edgev1alpha1.RouteReasonPending, tr.Generation))

		By("the Ingress's status.loadBalancer follows the EdgeProxy's addresses")
		Eventually(func() []networkingv1.IngressLoadBalancerIngress {
			return getIngress(key).Status.LoadBalancer.Ingress
		}).Should(Equal(expectedAddresses(migrationEdgeProxy)))
		svc := proxyService(migrationEdgeProxy)
		svc.Status.LoadBalancer.Ingress = []corev1.LoadBalancerIngress{{IP: "203.0.113.80"}, {Hostname: unique("lb") + ".example.net"}}
		Expect(k8sClient.Status().Update(ctx, svc)).To(Succeed())
		Eventually(func() []networkingv1.IngressLoadBalancerIngress {
			return getIngress(key).Status.LoadBalancer.Ingress
		}).Should(Equal([]networkingv1.IngressLoadBalancerIngress{
			{IP: "203.0.113.80"}, {Hostname: svc.Status.LoadBalancer.Ingress[1].Hostname}}))
	})

	It("updates and deletes TenantRoutes as the Ingress changes, and deletes them with it", func() {
		ensureServices(migrationNamespace, 80, "web-api", "frontend")
		key := createIngress(sourceExample("basic-ingress.yaml"), "")
		expectRoutes(key, "ingress-web-api")
		expectAccepted(routeKey(key.Namespace, "ingress-web-api"))

		By("a second host adds a route")
		updateIngress(key, func(ing *networkingv1.Ingress) {
			rule := *ing.Spec.Rules[0].DeepCopy()
			rule.Host = "admin.example.com"
			rule.HTTP.Paths[0].Backend.Service.Name = "frontend"
			ing.Spec.Rules = append(ing.Spec.Rules, rule)
		})
		expectRoutes(key, "ingress-web-api", "ingress-web-api-admin.example.com")

		By("a changed backend updates the route")
		updateIngress(key, func(ing *networkingv1.Ingress) {
			ing.Spec.Rules[0].HTTP.Paths[0].Backend.Service.Name = "frontend"
		})
		Eventually(func() string {
			return string(getRoute(routeKey(key.Namespace, "ingress-web-api")).Spec.Rules[0].BackendRefs[0].Name)
		}).Should(Equal("frontend"))
		expectCondition(routeKey(key.Namespace, "ingress-web-api"), edgev1alpha1.RouteConditionTranslated,
			metav1.ConditionTrue, edgev1alpha1.RouteReasonTranslated, "generation 3")

		By("removing the host deletes its route")
		updateIngress(key, func(ing *networkingv1.Ingress) { ing.Spec.Rules = ing.Spec.Rules[:1] })
		expectRoutes(key, "ingress-web-api")

		By("deleting the Ingress deletes the rest")
		Expect(k8sClient.Delete(ctx, getIngress(key))).To(Succeed())
		expectRoutes(key)
	})

	It("reports annotations it ignores or approximates: a Warning Event each, and Translated=True/UnsupportedAnnotation without touching Accepted", func() {
		ensureServices(migrationNamespace, 80, "frontend", "web-api", "admin-ui")
		key := createIngress(sourceExample("host-path-routing.yaml"), "")
		main := routeKey(key.Namespace, "ingress-platform-routes")
		expectRoutes(key, main.Name, "ingress-platform-routes-admin.example.com")
		expectAccepted(main)

		updateIngress(key, func(ing *networkingv1.Ingress) {
			ing.Annotations = map[string]string{
				"nginx.ingress.kubernetes.io/proxy-buffering": "on",
				"nginx.ingress.kubernetes.io/affinity-mode":   "persistent",
				"nginx.ingress.kubernetes.io/affinity":        "cookie",
			}
		})
		tr := expectCondition(main, edgev1alpha1.RouteConditionTranslated, metav1.ConditionTrue,
			edgev1alpha1.RouteReasonUnsupportedAnnotation,
			"nginx.ingress.kubernetes.io/proxy-buffering (ignored)", "nginx.ingress.kubernetes.io/affinity-mode (approximated)")
		Expect(tr.Status.Conditions).To(haveCondition(edgev1alpha1.RouteConditionAccepted, metav1.ConditionTrue,
			edgev1alpha1.RouteReasonAccepted, tr.Generation))
		// InProgress only because no proxy serves it here (Programmed=False/Pending).
		Expect(kstatusOf(tr, "TenantRoute")).To(Equal(status.InProgressStatus), "a notice must not make the route look failed")
		Expect(tr.Spec.Policy.SessionAffinity).NotTo(BeNil(), "the supported annotation still applies")
		Eventually(ingressEvents(key)).Should(And(
			haveEvent(corev1.EventTypeWarning, string(edgev1alpha1.RouteReasonUnsupportedAnnotation), "nginx.ingress.kubernetes.io/proxy-buffering", "ignored"),
			haveEvent(corev1.EventTypeWarning, string(edgev1alpha1.RouteReasonUnsupportedAnnotation), "nginx.ingress.kubernetes.io/affinity-mode", "approximated"),
		))

		By("reported once, not on every reconcile")
		count := len(ingressEvents(key)())
		touchService(routeKey(migrationNamespace, "frontend")) // re-translates the Ingress
		Consistently(func() int { return len(ingressEvents(key)()) }).Should(Equal(count))

		By("removing the annotations clears the reason")
		updateIngress(key, func(ing *networkingv1.Ingress) { ing.Annotations = nil })
		expectCondition(main, edgev1alpha1.RouteConditionTranslated, metav1.ConditionTrue, edgev1alpha1.RouteReasonTranslated)
	})

	It("refuses a snippet: a Warning Event naming the field, nothing new served, the last good routes kept", func() {
		ensureServices(migrationNamespace, 80, "frontend", "web-api", "admin-ui")
		key := createIngress(sourceExample("host-path-routing.yaml"), "")
		main := routeKey(key.Namespace, "ingress-platform-routes")
		expectRoutes(key, main.Name, "ingress-platform-routes-admin.example.com")
		expectAccepted(main)
		before := getRoute(main)
		Eventually(func() []networkingv1.IngressLoadBalancerIngress {
			return getIngress(key).Status.LoadBalancer.Ingress
		}).ShouldNot(BeEmpty())

		snippet := "nginx.ingress.kubernetes.io/server-snippet"
		updateIngress(key, func(ing *networkingv1.Ingress) {
			ing.Annotations = map[string]string{snippet: "location /admin { return 200; }"}
			rule := *ing.Spec.Rules[0].DeepCopy()
			rule.Host = "api.example.com"
			ing.Spec.Rules = append(ing.Spec.Rules, rule)
		})
		Eventually(ingressEvents(key)).Should(haveEvent(corev1.EventTypeWarning, string(eventReasonTranslationFailed),
			"metadata.annotations["+snippet+"]"))
		expectCondition(main, edgev1alpha1.RouteConditionTranslated, metav1.ConditionFalse, edgev1alpha1.RouteReasonInvalid,
			snippet, "keeps serving its translation of generation 1")
		Consistently(func() []string { return hostsRouted(key) }).Should(Equal(
			[]string{"admin.example.com", "app.example.com"}), "nothing routes the new host")
		after := getRoute(main)
		Expect(after.Generation).To(Equal(before.Generation))
		Expect(after.Spec).To(Equal(before.Spec))
		Expect(getIngress(key).Status.LoadBalancer.Ingress).NotTo(BeEmpty(), "the last good routes still serve it")

		By("removing the snippet serves the new version")
		updateIngress(key, func(ing *networkingv1.Ingress) { ing.Annotations = nil })
		Eventually(func() []string { return hostsRouted(key) }).Should(Equal(
			[]string{"admin.example.com", "api.example.com", "app.example.com"}))
		expectCondition(main, edgev1alpha1.RouteConditionTranslated, metav1.ConditionTrue, edgev1alpha1.RouteReasonTranslated)

		By("an Ingress refused from the start has no route and no address")
		ing := sourceExample("basic-ingress.yaml")
		ing.Name = unique("snippet")
		ing.Annotations = map[string]string{"nginx.ingress.kubernetes.io/configuration-snippet": "proxy_pass http://evil;"}
		fresh := createIngress(ing, "")
		Eventually(ingressEvents(fresh)).Should(haveEvent(corev1.EventTypeWarning, string(eventReasonTranslationFailed),
			"nginx.ingress.kubernetes.io/configuration-snippet"))
		Consistently(func() []string { return routeNames(fresh) }).Should(BeEmpty())
		Expect(getIngress(fresh).Status.LoadBalancer.Ingress).To(BeEmpty())
	})

	It("takes everything back when an Ingress leaves the class: routes deleted, status cleared", func() {
		ensureServices(migrationNamespace, 80, "web-api")
		key := createIngress(sourceExample("basic-ingress.yaml"), "")
		expectRoutes(key, "ingress-web-api")
		Eventually(func() []networkingv1.IngressLoadBalancerIngress {
			return getIngress(key).Status.LoadBalancer.Ingress
		}).Should(Equal(expectedAddresses(migrationEdgeProxy)))

		updateIngress(key, func(ing *networkingv1.Ingress) { ing.Spec.IngressClassName = ptr.To(unique("elsewhere")) })
		expectRoutes(key)
		Eventually(func(g Gomega) {
			ing := getIngress(key)
			g.Expect(ing.Status.LoadBalancer.Ingress).To(BeEmpty())
			g.Expect(ownsLoadBalancerStatus(ing)).To(BeFalse())
		}).Should(Succeed())

		By("coming back serves it again")
		updateIngress(key, func(ing *networkingv1.Ingress) { ing.Spec.IngressClassName = ptr.To(migrationClass) })
		expectRoutes(key, "ingress-web-api")
		Eventually(func() []networkingv1.IngressLoadBalancerIngress {
			return getIngress(key).Status.LoadBalancer.Ingress
		}).ShouldNot(BeEmpty())
	})
})
