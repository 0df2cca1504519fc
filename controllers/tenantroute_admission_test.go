package controllers

import (
	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	gwapiv1 "sigs.k8s.io/gateway-api/apis/v1"
	gwapiv1beta1 "sigs.k8s.io/gateway-api/apis/v1beta1"

	edgev1alpha1 "github.com/portico-dev/portico/api/v1alpha1"
)

var _ = Describe("TenantRoute admission", func() {
	var t tenancy
	BeforeEach(func() { t = newTenancy() })

	It("accepts a valid route, resolves its refs, says it is not programmed yet, and writes status once", func() {
		key := createRoute(t.newRoute(t.a, "shop", t.host("shop")))
		tr := expectAccepted(key)
		Expect(tr.Status.Conditions).To(And(
			haveCondition(edgev1alpha1.RouteConditionResolvedRefs, metav1.ConditionTrue, edgev1alpha1.RouteReasonResolvedRefs, tr.Generation),
			haveCondition(edgev1alpha1.RouteConditionProgrammed, metav1.ConditionFalse, edgev1alpha1.RouteReasonPending, tr.Generation),
		))
		rv := tr.ResourceVersion
		Consistently(func() string { return getRoute(key).ResourceVersion }).Should(Equal(rv),
			"an unchanged route must not be written again: status writes do not re-trigger admission")
	})

	It("refuses a route whose EdgeProxy does not exist (EdgeProxyNotFound) until it appears", func() {
		tr := t.newRoute(t.a, "orphan", t.host("shop"))
		tr.Spec.EdgeProxy = "missing-" + t.suffix
		key := createRoute(tr)
		expectCondition(key, edgev1alpha1.RouteConditionAccepted, metav1.ConditionFalse, edgev1alpha1.RouteReasonEdgeProxyNotFound, "spec.edgeProxy")
		expectWarning(key, edgev1alpha1.RouteReasonEdgeProxyNotFound, "missing-"+t.suffix)

		ep := newEdgeProxy("missing-"+t.suffix, "missing-"+t.suffix+"-edge", []string{t.a}, edgev1alpha1.Hostname("*."+t.domain))
		Expect(k8sClient.Create(ctx, ep)).To(Succeed())
		expectAccepted(key)
	})

	It("refuses a route in a namespace the EdgeProxy does not serve (NamespaceNotServed) until its labels match", func() {
		key := createRoute(t.newRoute(t.d, "shop", t.host("shop")))
		expectCondition(key, edgev1alpha1.RouteConditionAccepted, metav1.ConditionFalse, edgev1alpha1.RouteReasonNamespaceNotServed, t.d)
		expectWarning(key, edgev1alpha1.RouteReasonNamespaceNotServed)

		Eventually(func() error {
			ns := &corev1.Namespace{}
			if err := k8sClient.Get(ctx, keyOf(t.d), ns); err != nil {
				return err
			}
			ns.Labels = map[string]string{"tenant": t.suffix}
			return k8sClient.Update(ctx, ns)
		}).Should(Succeed())
		expectAccepted(key)

		other := createRoute(t.newRoute(t.c, "shop", t.host("other")))
		expectCondition(other, edgev1alpha1.RouteConditionAccepted, metav1.ConditionFalse, edgev1alpha1.RouteReasonNamespaceNotServed)
	})

	It("refuses hostnames outside the EdgeProxy's allow-list (HostnameNotAllowed), naming the field", func() {
		key := createRoute(t.newRoute(t.a, "evil", t.host("ok"), "login.bank.example.org"))
		expectCondition(key, edgev1alpha1.RouteConditionAccepted, metav1.ConditionFalse, edgev1alpha1.RouteReasonHostnameNotAllowed,
			"spec.hostnames[1]", "login.bank.example.org")
		expectWarning(key, edgev1alpha1.RouteReasonHostnameNotAllowed, "spec.hostnames[1]")

		By("allowing the host on the EdgeProxy")
		updateEdgeProxy(t.edgeProxy, func(ep *edgev1alpha1.EdgeProxy) {
			ep.Spec.Hostnames = append(ep.Spec.Hostnames, "login.bank.example.org")
		})
		expectAccepted(key)
	})

	It("refuses a route that does not compile (Invalid) with the field path, then accepts the fix", func() {
		tr := t.newRoute(t.a, "regex", t.host("shop"))
		tr.Spec.Rules[0].Matches = []gwapiv1.HTTPRouteMatch{{Path: &gwapiv1.HTTPPathMatch{
			Type: ptr.To(gwapiv1.PathMatchRegularExpression), Value: ptr.To("/(unclosed"),
		}}}
		key := createRoute(tr)
		expectCondition(key, edgev1alpha1.RouteConditionAccepted, metav1.ConditionFalse, edgev1alpha1.RouteReasonInvalid,
			"spec.rules[0].matches[0].path")
		expectWarning(key, edgev1alpha1.RouteReasonInvalid, "spec.rules[0].matches[0].path")

		updateRoute(key, func(tr *edgev1alpha1.TenantRoute) { tr.Spec.Rules[0].Matches[0].Path.Value = ptr.To("/(closed)") })
		expectAccepted(key)
	})

	It("reports a missing backend Service (BackendNotFound) until it exists", func() {
		tr := t.newRoute(t.a, "api", t.host("api"))
		tr.Spec.Rules[0].BackendRefs = []gwapiv1.HTTPBackendRef{backendRef("", "api")}
		key := createRoute(tr)
		expectCondition(key, edgev1alpha1.RouteConditionResolvedRefs, metav1.ConditionFalse, edgev1alpha1.RouteReasonBackendNotFound,
			"spec.rules[0].backendRefs[0]", `Service "api"`)
		expectAccepted(key) // a missing backend answers 500; the route itself is fine
		expectWarning(key, edgev1alpha1.RouteReasonBackendNotFound, "spec.rules[0].backendRefs[0]")

		createService(t.a, "api", corev1.ServiceTypeClusterIP)
		expectCondition(key, edgev1alpha1.RouteConditionResolvedRefs, metav1.ConditionTrue, edgev1alpha1.RouteReasonResolvedRefs)
	})

	It("allows a cross-namespace backend only with a ReferenceGrant, and revokes it with the grant (RefNotPermitted)", func() {
		tr := t.newRoute(t.a, "search", t.host("search"))
		tr.Spec.Rules[0].BackendRefs = []gwapiv1.HTTPBackendRef{backendRef(t.c, "web")}
		key := createRoute(tr)
		expectCondition(key, edgev1alpha1.RouteConditionResolvedRefs, metav1.ConditionFalse, edgev1alpha1.RouteReasonRefNotPermitted,
			"spec.rules[0].backendRefs[0]", "ReferenceGrant")
		expectWarning(key, edgev1alpha1.RouteReasonRefNotPermitted)

		grant := &gwapiv1beta1.ReferenceGrant{
			ObjectMeta: metav1.ObjectMeta{Namespace: t.c, Name: "routes-of-a"},
			Spec: gwapiv1beta1.ReferenceGrantSpec{
				From: []gwapiv1beta1.ReferenceGrantFrom{{Group: "edge.portico.dev", Kind: "TenantRoute", Namespace: gwapiv1.Namespace(t.a)}},
				To:   []gwapiv1beta1.ReferenceGrantTo{{Group: "", Kind: "Service", Name: ptr.To(gwapiv1.ObjectName("web"))}},
			},
		}
		Expect(k8sClient.Create(ctx, grant)).To(Succeed())
		expectCondition(key, edgev1alpha1.RouteConditionResolvedRefs, metav1.ConditionTrue, edgev1alpha1.RouteReasonResolvedRefs)

		Expect(k8sClient.Delete(ctx, grant)).To(Succeed())
		expectCondition(key, edgev1alpha1.RouteConditionResolvedRefs, metav1.ConditionFalse, edgev1alpha1.RouteReasonRefNotPermitted)
	})

	It("refuses ExternalName backends unless the EdgeProxy allows them", func() {
		createService(t.a, "partner", corev1.ServiceTypeExternalName)
		tr := t.newRoute(t.a, "partner", t.host("partner"))
		tr.Spec.Rules[0].BackendRefs = []gwapiv1.HTTPBackendRef{backendRef("", "partner")}
		key := createRoute(tr)
		expectCondition(key, edgev1alpha1.RouteConditionResolvedRefs, metav1.ConditionFalse, edgev1alpha1.RouteReasonRefNotPermitted,
			"ExternalName", "spec.allowExternalNameServices")

		updateEdgeProxy(t.edgeProxy, func(ep *edgev1alpha1.EdgeProxy) { ep.Spec.AllowExternalNameServices = true })
		expectCondition(key, edgev1alpha1.RouteConditionResolvedRefs, metav1.ConditionTrue, edgev1alpha1.RouteReasonResolvedRefs)
	})

	It("counts hand-written EndpointSlices of a selectorless Service only when the EdgeProxy allows them", func() {
		createService(t.a, "legacy", corev1.ServiceTypeClusterIP) // no selector
		Expect(k8sClient.Create(ctx, &discoveryv1.EndpointSlice{
			ObjectMeta: metav1.ObjectMeta{Namespace: t.a, Name: "legacy-by-hand", Labels: map[string]string{
				discoveryv1.LabelServiceName: "legacy", discoveryv1.LabelManagedBy: "someone-by-hand"}},
			AddressType: discoveryv1.AddressTypeIPv4,
			Ports:       []discoveryv1.EndpointPort{{Port: ptr.To(int32(8080))}},
			Endpoints:   []discoveryv1.Endpoint{{Addresses: []string{"198.51.100.40"}}},
		})).To(Succeed())
		tr := t.newRoute(t.a, "legacy", t.host("legacy"))
		tr.Spec.Rules[0].BackendRefs = []gwapiv1.HTTPBackendRef{backendRef("", "legacy")}
		key := createRoute(tr)
		expectCondition(key, edgev1alpha1.RouteConditionResolvedRefs, metav1.ConditionFalse, edgev1alpha1.RouteReasonNoReadyEndpoints,
			"spec.rules[0].backendRefs[0]", `"legacy"`)

		updateEdgeProxy(t.edgeProxy, func(ep *edgev1alpha1.EdgeProxy) { ep.Spec.AllowUnmanagedEndpointSlices = true })
		expectCondition(key, edgev1alpha1.RouteConditionResolvedRefs, metav1.ConditionTrue, edgev1alpha1.RouteReasonResolvedRefs)
		updateEdgeProxy(t.edgeProxy, func(ep *edgev1alpha1.EdgeProxy) { ep.Spec.AllowUnmanagedEndpointSlices = false })
		expectCondition(key, edgev1alpha1.RouteConditionResolvedRefs, metav1.ConditionFalse, edgev1alpha1.RouteReasonNoReadyEndpoints)
	})

	It("checks the TLS Secret: SecretNotFound, then InvalidCertificate, then resolved", func() {
		host := t.host("secure")
		tr := t.newRoute(t.a, "secure", host)
		tr.Spec.TLS = []edgev1alpha1.RouteTLS{{SecretName: "secure-tls"}}
		key := createRoute(tr)
		expectCondition(key, edgev1alpha1.RouteConditionResolvedRefs, metav1.ConditionFalse, edgev1alpha1.RouteReasonSecretNotFound,
			"spec.tls[0].secretName", `"secure-tls"`)
		expectWarning(key, edgev1alpha1.RouteReasonSecretNotFound, "spec.tls[0].secretName")

		secret := &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Namespace: t.a, Name: "secure-tls"},
			Type:       corev1.SecretTypeTLS,
			Data:       map[string][]byte{corev1.TLSCertKey: []byte("not a certificate"), corev1.TLSPrivateKeyKey: []byte("nor a key")},
		}
		Expect(k8sClient.Create(ctx, secret)).To(Succeed())
		expectCondition(key, edgev1alpha1.RouteConditionResolvedRefs, metav1.ConditionFalse, edgev1alpha1.RouteReasonInvalidCertificate,
			"spec.tls[0].secretName")
		expectWarning(key, edgev1alpha1.RouteReasonInvalidCertificate)

		By("a valid key pair for another host is still invalid")
		cert, keyPEM := selfSignedKeyPair("elsewhere.example.org")
		secret.Data = map[string][]byte{corev1.TLSCertKey: cert, corev1.TLSPrivateKeyKey: keyPEM}
		Expect(k8sClient.Update(ctx, secret)).To(Succeed())
		expectCondition(key, edgev1alpha1.RouteConditionResolvedRefs, metav1.ConditionFalse, edgev1alpha1.RouteReasonInvalidCertificate,
			"does not cover", string(host))

		cert, keyPEM = selfSignedKeyPair(string(host))
		secret.Data = map[string][]byte{corev1.TLSCertKey: cert, corev1.TLSPrivateKeyKey: keyPEM}
		Expect(k8sClient.Update(ctx, secret)).To(Succeed())
		expectCondition(key, edgev1alpha1.RouteConditionResolvedRefs, metav1.ConditionTrue, edgev1alpha1.RouteReasonResolvedRefs)
	})
})
