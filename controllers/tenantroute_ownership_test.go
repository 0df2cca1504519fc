package controllers

import (
	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	gwapiv1 "sigs.k8s.io/gateway-api/apis/v1"

	edgev1alpha1 "github.com/portico-dev/portico/api/v1alpha1"
)

var _ = Describe("TenantRoute hostname ownership", func() {
	var t tenancy
	BeforeEach(func() { t = newTenancy() })

	It("refuses tenant B's later claim on tenant A's host with HostnameConflict and an Event, leaving A untouched", func() {
		shop := t.host("shop")
		a := createRoute(t.newRoute(t.a, "shop", shop))
		routeA := expectAccepted(a)
		rvA := routeA.ResourceVersion

		b := createRoute(t.newRoute(t.b, "shop", t.host("other"), shop))
		routeB := expectCondition(b, edgev1alpha1.RouteConditionAccepted, metav1.ConditionFalse, edgev1alpha1.RouteReasonHostnameConflict,
			"spec.hostnames[1]", string(shop))
		Expect(condition(routeB.Status.Conditions, edgev1alpha1.RouteConditionAccepted).Message).NotTo(ContainSubstring(t.a),
			"the owner's namespace is not revealed to the other tenant")
		expectWarning(b, edgev1alpha1.RouteReasonHostnameConflict, string(shop))
		Expect(eventsAbout(t.b, "shop")).NotTo(ContainElement(HaveField("Note", ContainSubstring(t.a))))

		Consistently(func() string { return getRoute(a).ResourceVersion }).Should(Equal(rvA), "the owner's route is not touched")
		Expect(getRoute(a).Status.Conditions).To(haveCondition(edgev1alpha1.RouteConditionAccepted, metav1.ConditionTrue, edgev1alpha1.RouteReasonAccepted, 0))
		Expect(eventsAbout(t.a, "shop")).To(BeEmpty())

		By("counting accepted and rejected routes on the EdgeProxy")
		Eventually(func(g Gomega) {
			ep := getEdgeProxy(t.edgeProxy)
			g.Expect(ep.Status.AcceptedRoutes).To(BeEquivalentTo(1))
			g.Expect(ep.Status.RejectedRoutes).To(BeEquivalentTo(1))
		}).Should(Succeed())
	})

	It("admits the next claimant when the owner goes away", func() {
		shop := t.host("shop")
		a := createRoute(t.newRoute(t.a, "shop", shop))
		expectAccepted(a)
		b := createRoute(t.newRoute(t.b, "shop", shop))
		expectCondition(b, edgev1alpha1.RouteConditionAccepted, metav1.ConditionFalse, edgev1alpha1.RouteReasonHostnameConflict)

		Expect(k8sClient.Delete(ctx, getRoute(a))).To(Succeed())
		expectAccepted(b)
		Eventually(func() any { return eventsAbout(t.b, "shop") }).Should(
			haveEvent(corev1.EventTypeNormal, string(edgev1alpha1.RouteReasonAccepted)))

		By("the former owner coming back is now the younger claim")
		a2 := createRoute(t.newRoute(t.a, "shop-again", shop))
		expectCondition(a2, edgev1alpha1.RouteConditionAccepted, metav1.ConditionFalse, edgev1alpha1.RouteReasonHostnameConflict)
	})

	It("admits the next claimant when the owner gives the hostname up", func() {
		shop := t.host("shop")
		a := createRoute(t.newRoute(t.a, "shop", shop))
		expectAccepted(a)
		b := createRoute(t.newRoute(t.b, "shop", shop))
		expectCondition(b, edgev1alpha1.RouteConditionAccepted, metav1.ConditionFalse, edgev1alpha1.RouteReasonHostnameConflict)

		updateRoute(a, func(tr *edgev1alpha1.TenantRoute) { tr.Spec.Hostnames = []edgev1alpha1.Hostname{t.host("shop-v2")} })
		expectAccepted(b)
		expectAccepted(a)
	})

	It("refuses an exact host that another namespace serves through its wildcard", func() {
		a := createRoute(t.newRoute(t.a, "all", edgev1alpha1.Hostname("*."+t.domain)))
		expectAccepted(a)
		b := createRoute(t.newRoute(t.b, "login", t.host("login")))
		expectCondition(b, edgev1alpha1.RouteConditionAccepted, metav1.ConditionFalse, edgev1alpha1.RouteReasonHostnameConflict, string(t.host("login")))
	})

	It("merges routes of the same namespace", func() {
		shop := t.host("shop")
		api := t.newRoute(t.a, "shop-api", shop)
		api.Spec.Rules[0].Matches = []gwapiv1.HTTPRouteMatch{{Path: &gwapiv1.HTTPPathMatch{
			Type: ptr.To(gwapiv1.PathMatchPathPrefix), Value: ptr.To("/api"),
		}}}
		first := createRoute(api)
		second := createRoute(t.newRoute(t.a, "shop-web", shop))
		expectAccepted(first)
		expectAccepted(second)
	})

	It("never lets a bad route block a good one", func() {
		shop := t.host("shop")
		bad := t.newRoute(t.b, "broken", shop)
		bad.Spec.Rules[0].Matches = []gwapiv1.HTTPRouteMatch{{Path: &gwapiv1.HTTPPathMatch{
			Type: ptr.To(gwapiv1.PathMatchRegularExpression), Value: ptr.To("/(broken"),
		}}}
		badKey := createRoute(bad)
		expectCondition(badKey, edgev1alpha1.RouteConditionAccepted, metav1.ConditionFalse, edgev1alpha1.RouteReasonInvalid)

		good := createRoute(t.newRoute(t.a, "shop", shop))
		expectAccepted(good)
		Consistently(func(g Gomega) {
			g.Expect(getRoute(good).Status.Conditions).To(haveCondition(edgev1alpha1.RouteConditionAccepted, metav1.ConditionTrue, edgev1alpha1.RouteReasonAccepted, 0))
		}).Should(Succeed())

		By("once fixed, the older route does not take the host from the route serving it")
		rv := getRoute(good).ResourceVersion
		updateRoute(badKey, func(tr *edgev1alpha1.TenantRoute) { tr.Spec.Rules[0].Matches[0].Path.Value = ptr.To("/(fixed)") })
		expectCondition(badKey, edgev1alpha1.RouteConditionAccepted, metav1.ConditionFalse, edgev1alpha1.RouteReasonHostnameConflict, string(shop))
		Consistently(func() string { return getRoute(good).ResourceVersion }).Should(Equal(rv))
	})
})
