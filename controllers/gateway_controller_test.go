package controllers

import (
	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	gwapiv1 "sigs.k8s.io/gateway-api/apis/v1"

	edgev1alpha1 "github.com/portico-dev/portico/api/v1alpha1"
	"github.com/portico-dev/portico/controllers/translate"
)

var _ = Describe("Gateway API GatewayClass", func() {
	It("accepts Portico's classes and lists the supported features", func() {
		gc := createGatewayClass(unique("portico"))
		Eventually(func(g Gomega) {
			cur := &gwapiv1.GatewayClass{}
			g.Expect(k8sClient.Get(ctx, keyOf(gc.Name), cur)).To(Succeed())
			g.Expect(cur.Status.Conditions).To(haveStdCondition(gwapiv1.GatewayClassConditionStatusAccepted,
				metav1.ConditionTrue, gwapiv1.GatewayClassReasonAccepted, cur.Generation))
			var names []string
			for _, f := range cur.Status.SupportedFeatures {
				names = append(names, string(f.Name))
			}
			want := make([]string, 0, len(translate.SupportedGatewayFeatures))
			for _, f := range translate.SupportedGatewayFeatures {
				want = append(want, string(f))
			}
			g.Expect(names).To(Equal(want))
		}).Should(Succeed())
	})

	It("is InvalidParameters while its parametersRef names a missing EdgeProxy, Accepted once it exists", func() {
		name := unique("portico")
		gc := &gwapiv1.GatewayClass{
			ObjectMeta: metav1.ObjectMeta{Name: name},
			Spec: gwapiv1.GatewayClassSpec{
				ControllerName: edgev1alpha1.GatewayControllerName,
				ParametersRef:  &gwapiv1.ParametersReference{Group: "edge.portico.dev", Kind: "EdgeProxy", Name: name},
			},
		}
		Expect(k8sClient.Create(ctx, gc)).To(Succeed())
		accepted := func(s metav1.ConditionStatus, reason gwapiv1.GatewayClassConditionReason) {
			GinkgoHelper()
			Eventually(func(g Gomega) {
				cur := &gwapiv1.GatewayClass{}
				g.Expect(k8sClient.Get(ctx, keyOf(name), cur)).To(Succeed())
				g.Expect(cur.Status.Conditions).To(haveStdCondition(gwapiv1.GatewayClassConditionStatusAccepted, s, reason, cur.Generation))
			}).Should(Succeed())
		}
		accepted(metav1.ConditionFalse, gwapiv1.GatewayClassReasonInvalidParameters)
		proxyNS := createNamespace(name+"-edge", nil).Name
		Expect(k8sClient.Create(ctx, newEdgeProxy(name, proxyNS, []string{name}, edgev1alpha1.Hostname(name+".example.com")))).To(Succeed())
		accepted(metav1.ConditionTrue, gwapiv1.GatewayClassReasonAccepted)
	})

	It("leaves GatewayClasses of other controllers alone", func() {
		gc := &gwapiv1.GatewayClass{
			ObjectMeta: metav1.ObjectMeta{Name: unique("other")},
			Spec:       gwapiv1.GatewayClassSpec{ControllerName: "example.com/other-controller"},
		}
		Expect(k8sClient.Create(ctx, gc)).To(Succeed())
		Consistently(func(g Gomega) {
			cur := &gwapiv1.GatewayClass{}
			g.Expect(k8sClient.Get(ctx, keyOf(gc.Name), cur)).To(Succeed())
			g.Expect(cur.Status.SupportedFeatures).To(BeEmpty())
			g.Expect(cur.Status.Conditions).NotTo(ContainElement(HaveField("Status", metav1.ConditionTrue)))
		}).Should(Succeed())
	})
})

var _ = Describe("Gateway API Gateway", func() {
	var (
		ns    string
		class string
	)
	BeforeEach(func() {
		ns = createNamespace(unique("gw"), nil).Name
		class = createGatewayClass(unique("portico")).Name
	})

	It("generates its EdgeProxy, is Programmed once that is Ready, counts attached routes, and removes the EdgeProxy with the Gateway", func() {
		host := ns + ".example.com"
		gw := &gwapiv1.Gateway{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "edge"},
			Spec: gwapiv1.GatewaySpec{
				GatewayClassName: gwapiv1.ObjectName(class),
				Listeners:        []gwapiv1.Listener{httpListener("http", host, gwapiv1.NamespacesFromSame)},
				Infrastructure: &gwapiv1.GatewayInfrastructure{
					Labels:      map[gwapiv1.LabelKey]gwapiv1.LabelValue{"team": "payments"},
					Annotations: map[gwapiv1.AnnotationKey]gwapiv1.AnnotationValue{"example.com/owner": "payments"},
				},
			},
		}
		Expect(k8sClient.Create(ctx, gw)).To(Succeed())
		key := client.ObjectKeyFromObject(gw)
		epName := translate.GatewayEdgeProxyName(gw)

		By("creating the EdgeProxy, labelled, with a finalizer on the Gateway")
		Eventually(func(g Gomega) {
			ep := &edgev1alpha1.EdgeProxy{}
			g.Expect(k8sClient.Get(ctx, keyOf(epName), ep)).To(Succeed())
			g.Expect(ep.Labels).To(And(
				HaveKeyWithValue(translate.LabelGatewayNamespace, ns),
				HaveKeyWithValue(translate.LabelGatewayName, "edge"),
				HaveKeyWithValue("team", "payments"),
			))
			g.Expect(ep.Annotations).To(HaveKeyWithValue("example.com/owner", "payments"))
			g.Expect(ep.Spec.Deployment).NotTo(BeNil())
			g.Expect(ep.Spec.Deployment.PodLabels).To(HaveKeyWithValue("team", "payments"))
			g.Expect(ep.Spec.Deployment.PodAnnotations).To(HaveKeyWithValue("example.com/owner", "payments"))
			g.Expect(ep.Spec.ProxyNamespace).To(Equal(ns))
			g.Expect(ep.Spec.TenantNamespaces.Names).To(ConsistOf(ns))
			g.Expect(ep.Spec.Hostnames).To(ConsistOf(edgev1alpha1.Hostname(host)))
			g.Expect(ep.GetManagedFields()).To(ContainElement(HaveField("Manager", edgev1alpha1.FieldOwner)))
			g.Expect(getGateway(key).Finalizers).To(ContainElement(gatewayFinalizer))
		}).Should(Succeed())

		By("being Accepted but not Programmed while the EdgeProxy is not Ready")
		Eventually(func(g Gomega) {
			cur := getGateway(key)
			g.Expect(cur.Status.Conditions).To(And(
				haveStdCondition(gwapiv1.GatewayConditionAccepted, metav1.ConditionTrue, gwapiv1.GatewayReasonAccepted, cur.Generation),
				haveStdCondition(gwapiv1.GatewayConditionProgrammed, metav1.ConditionFalse, gwapiv1.GatewayReasonPending, cur.Generation),
			))
			g.Expect(cur.Status.Addresses).To(BeEmpty())
			g.Expect(cur.Status.Listeners).To(HaveLen(1))
			l := cur.Status.Listeners[0]
			g.Expect(l.Conditions).To(And(
				haveStdCondition(gwapiv1.ListenerConditionAccepted, metav1.ConditionTrue, gwapiv1.ListenerReasonAccepted, cur.Generation),
				haveStdCondition(gwapiv1.ListenerConditionResolvedRefs, metav1.ConditionTrue, gwapiv1.ListenerReasonResolvedRefs, cur.Generation),
				haveStdCondition(gwapiv1.ListenerConditionConflicted, metav1.ConditionFalse, gwapiv1.ListenerReasonNoConflicts, cur.Generation),
				haveStdCondition(gwapiv1.ListenerConditionProgrammed, metav1.ConditionFalse, gwapiv1.ListenerReasonPending, cur.Generation),
			))
			g.Expect(l.SupportedKinds).To(ContainElement(HaveField("Kind", gwapiv1.Kind("HTTPRoute"))))
			g.Expect(l.AttachedRoutes).To(BeZero())
		}).Should(Succeed())

		By("being Programmed, with the EdgeProxy's address, once the proxies are ready")
		rollOutEdgeProxy(epName)
		Eventually(func(g Gomega) {
			cur := getGateway(key)
			g.Expect(cur.Status.Conditions).To(haveStdCondition(gwapiv1.GatewayConditionProgrammed,
				metav1.ConditionTrue, gwapiv1.GatewayReasonProgrammed, cur.Generation))
			g.Expect(cur.Status.Addresses).NotTo(BeEmpty())
			g.Expect(cur.Status.Listeners[0].Conditions).To(haveStdCondition(gwapiv1.ListenerConditionProgrammed,
				metav1.ConditionTrue, gwapiv1.ListenerReasonProgrammed, cur.Generation))
		}).Should(Succeed())

		By("counting an attached HTTPRoute")
		createService(ns, "web", corev1.ServiceTypeClusterIP)
		Expect(k8sClient.Create(ctx, newHTTPRoute(ns, "web", key, types.NamespacedName{Namespace: ns, Name: "web"}, host))).To(Succeed())
		Eventually(func(g Gomega) {
			g.Expect(getGateway(key).Status.Listeners[0].AttachedRoutes).To(BeEquivalentTo(1))
		}).Should(Succeed())

		By("deleting the EdgeProxy with the Gateway")
		Expect(k8sClient.Delete(ctx, gw)).To(Succeed())
		Eventually(func() bool {
			return apierrors.IsNotFound(k8sClient.Get(ctx, keyOf(epName), &edgev1alpha1.EdgeProxy{}))
		}).Should(BeTrue())
		Eventually(func() bool {
			return apierrors.IsNotFound(k8sClient.Get(ctx, key, &gwapiv1.Gateway{}))
		}).Should(BeTrue())
	})

	It("uses the EdgeProxy its parametersRef names and generates none", func() {
		name := unique("named")
		Expect(k8sClient.Create(ctx, newEdgeProxy(name, ns, []string{ns}, edgev1alpha1.Hostname(ns+".example.com")))).To(Succeed())
		gw := &gwapiv1.Gateway{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "edge"},
			Spec: gwapiv1.GatewaySpec{
				GatewayClassName: gwapiv1.ObjectName(class),
				Listeners:        []gwapiv1.Listener{httpListener("http", ns+".example.com", gwapiv1.NamespacesFromSame)},
				Infrastructure: &gwapiv1.GatewayInfrastructure{ParametersRef: &gwapiv1.LocalParametersReference{
					Group: "edge.portico.dev", Kind: "EdgeProxy", Name: name,
				}},
			},
		}
		Expect(k8sClient.Create(ctx, gw)).To(Succeed())
		rollOutEdgeProxy(name)
		Eventually(func(g Gomega) {
			cur := getGateway(client.ObjectKeyFromObject(gw))
			g.Expect(cur.Status.Conditions).To(haveStdCondition(gwapiv1.GatewayConditionProgrammed,
				metav1.ConditionTrue, gwapiv1.GatewayReasonProgrammed, cur.Generation))
			g.Expect(cur.Finalizers).NotTo(ContainElement(gatewayFinalizer))
		}).Should(Succeed())
		Expect(apierrors.IsNotFound(k8sClient.Get(ctx, keyOf(translate.GatewayEdgeProxyName(gw)), &edgev1alpha1.EdgeProxy{}))).To(BeTrue())
	})

	It("is InvalidParameters when its parametersRef names a missing EdgeProxy", func() {
		gw := createGateway(ns, "edge", class, httpListener("http", ns+".example.com", gwapiv1.NamespacesFromSame))
		Eventually(func(g Gomega) {
			g.Expect(getGateway(client.ObjectKeyFromObject(gw)).Status.Conditions).To(haveStdCondition(gwapiv1.GatewayConditionAccepted,
				metav1.ConditionTrue, gwapiv1.GatewayReasonAccepted, 0))
		}).Should(Succeed())
		Eventually(func() error {
			cur := getGateway(client.ObjectKeyFromObject(gw))
			cur.Spec.Infrastructure = &gwapiv1.GatewayInfrastructure{ParametersRef: &gwapiv1.LocalParametersReference{
				Group: "edge.portico.dev", Kind: "EdgeProxy", Name: "does-not-exist",
			}}
			return k8sClient.Update(ctx, cur)
		}).Should(Succeed())
		Eventually(func(g Gomega) {
			cur := getGateway(client.ObjectKeyFromObject(gw))
			g.Expect(cur.Status.Conditions).To(haveStdCondition(gwapiv1.GatewayConditionAccepted,
				metav1.ConditionFalse, gwapiv1.GatewayReasonInvalidParameters, cur.Generation))
			// The generated EdgeProxy is no longer needed: deleted, and the finalizer dropped.
			g.Expect(cur.Finalizers).NotTo(ContainElement(gatewayFinalizer))
			g.Expect(apierrors.IsNotFound(k8sClient.Get(ctx, keyOf(translate.GatewayEdgeProxyName(gw)), &edgev1alpha1.EdgeProxy{}))).To(BeTrue())
		}).Should(Succeed())
	})

	It("provisions a Gateway whose listeners name no hostname, then allows the attached routes' hostnames", func() {
		gw := createGateway(ns, "open", class, httpListener("http", "", gwapiv1.NamespacesFromSame))
		key := client.ObjectKeyFromObject(gw)
		epName := translate.GatewayEdgeProxyName(gw)
		// No hostname anywhere yet: the EdgeProxy allows the reserved placeholder (it needs one).
		Eventually(func(g Gomega) {
			ep := &edgev1alpha1.EdgeProxy{}
			g.Expect(k8sClient.Get(ctx, keyOf(epName), ep)).To(Succeed())
			g.Expect(ep.Spec.Hostnames).To(ConsistOf(edgev1alpha1.Hostname(translate.NoHostnamePlaceholder)))
			cur := getGateway(key)
			g.Expect(cur.Status.Conditions).To(haveStdCondition(gwapiv1.GatewayConditionProgrammed,
				metav1.ConditionFalse, gwapiv1.GatewayReasonPending, cur.Generation))
		}).Should(Succeed())

		createService(ns, "web", corev1.ServiceTypeClusterIP)
		host := "app." + ns + ".example.com"
		Expect(k8sClient.Create(ctx, newHTTPRoute(ns, "web", key, types.NamespacedName{Namespace: ns, Name: "web"}, host))).To(Succeed())
		Eventually(func(g Gomega) {
			ep := &edgev1alpha1.EdgeProxy{}
			g.Expect(k8sClient.Get(ctx, keyOf(epName), ep)).To(Succeed())
			g.Expect(ep.Spec.Hostnames).To(ConsistOf(edgev1alpha1.Hostname(host)))
		}).Should(Succeed())
		Eventually(func(g Gomega) {
			cur := getGateway(key)
			g.Expect(cur.Status.Conditions).To(haveStdCondition(gwapiv1.GatewayConditionProgrammed,
				metav1.ConditionFalse, gwapiv1.GatewayReasonPending, cur.Generation))
		}).Should(Succeed())
	})

	It("leaves Gateways of other classes alone", func() {
		gw := createGateway(ns, "foreign", unique("not-ours"), httpListener("http", "", gwapiv1.NamespacesFromSame))
		Consistently(func(g Gomega) {
			cur := getGateway(client.ObjectKeyFromObject(gw))
			g.Expect(cur.Finalizers).To(BeEmpty())
			g.Expect(cur.Status.Listeners).To(BeEmpty())
		}).Should(Succeed())
	})
})
