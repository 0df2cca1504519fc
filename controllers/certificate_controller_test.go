package controllers

import (
	cmv1 "github.com/cert-manager/cert-manager/pkg/apis/certmanager/v1"
	cmmeta "github.com/cert-manager/cert-manager/pkg/apis/meta/v1"
	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	edgev1alpha1 "github.com/portico-dev/portico/api/v1alpha1"
	"github.com/portico-dev/portico/controllers/certificates"
)

// certTenancy is a tenancy whose EdgeProxy names a default ClusterIssuer.
func certTenancy() tenancy {
	GinkgoHelper()
	t := newTenancy()
	updateEdgeProxy(t.edgeProxy, func(ep *edgev1alpha1.EdgeProxy) {
		ep.Spec.TLS = &edgev1alpha1.TLSDefaults{Issuer: &edgev1alpha1.IssuerReference{Name: "default-ca", Kind: "ClusterIssuer", Group: "cert-manager.io"}}
	})
	return t
}

func withTLS(tr *edgev1alpha1.TenantRoute, secret string) *edgev1alpha1.TenantRoute {
	tr.Spec.TLS = []edgev1alpha1.RouteTLS{{SecretName: secret}}
	return tr
}

func ourCertificate(ns, secret string) func(Gomega) *cmv1.Certificate {
	return func(g Gomega) *cmv1.Certificate {
		c := &cmv1.Certificate{}
		g.Expect(k8sClient.Get(ctx, types.NamespacedName{Namespace: ns, Name: certificates.Name(secret)}, c)).To(Succeed())
		return c
	}
}

func expectNoCertificate(ns, secret string) {
	GinkgoHelper()
	Eventually(func() bool {
		err := k8sClient.Get(ctx, types.NamespacedName{Namespace: ns, Name: certificates.Name(secret)}, &cmv1.Certificate{})
		return apierrors.IsNotFound(err)
	}).Should(BeTrue())
}

// playCertManager sets a Certificate's Ready condition as cert-manager would.
func playCertManager(ns, name string, status cmmeta.ConditionStatus, reason, message string) {
	GinkgoHelper()
	Eventually(func() error {
		c := &cmv1.Certificate{}
		if err := k8sClient.Get(ctx, types.NamespacedName{Namespace: ns, Name: name}, c); err != nil {
			return err
		}
		c.Status.Conditions = []cmv1.CertificateCondition{{Type: cmv1.CertificateConditionReady, Status: status,
			Reason: reason, Message: message, ObservedGeneration: c.Generation}}
		return k8sClient.Status().Update(ctx, c)
	}).Should(Succeed())
}

var _ = Describe("Certificates", func() {
	It("creates, updates, mirrors and deletes the Certificate of an admitted route's Secret", func() {
		t := certTenancy()
		key := createRoute(withTLS(t.newRoute(t.a, "web", t.host("www"), t.host("*")), "web-tls"))
		expectAccepted(key)

		var c *cmv1.Certificate
		Eventually(func(g Gomega) {
			c = ourCertificate(t.a, "web-tls")(g)
			g.Expect(c.Spec.DNSNames).To(Equal([]string{"*." + t.domain, "www." + t.domain}))
		}).Should(Succeed())
		Expect(c.Spec.SecretName).To(Equal("web-tls"))
		Expect(c.Spec.IssuerRef).To(Equal(cmmeta.IssuerReference{Name: "default-ca", Kind: "ClusterIssuer", Group: "cert-manager.io"}))
		Expect(c.Labels).To(HaveKeyWithValue(edgev1alpha1.LabelEdgeProxy, t.edgeProxy))
		Expect(metav1.GetControllerOf(c).Name).To(Equal("web"))

		// Pending: the Secret does not exist yet, which does not make ResolvedRefs fail.
		expectCondition(key, edgev1alpha1.RouteConditionCertificateReady, metav1.ConditionFalse, edgev1alpha1.RouteReasonCertificatePending, c.Name)
		expectCondition(key, edgev1alpha1.RouteConditionResolvedRefs, metav1.ConditionTrue, edgev1alpha1.RouteReasonResolvedRefs, "not issued yet")

		playCertManager(t.a, c.Name, cmmeta.ConditionFalse, "Failed", "ACME order failed: rate limited")
		expectCondition(key, edgev1alpha1.RouteConditionCertificateReady, metav1.ConditionFalse, edgev1alpha1.RouteReasonCertificatePending, "Failed: ACME order failed: rate limited")
		playCertManager(t.a, c.Name, cmmeta.ConditionTrue, "Ready", "Certificate is up to date and has not expired")
		expectCondition(key, edgev1alpha1.RouteConditionCertificateReady, metav1.ConditionTrue, edgev1alpha1.RouteReasonCertificateIssued, "up to date")

		// New hostnames: the Certificate follows.
		updateRoute(key, func(tr *edgev1alpha1.TenantRoute) { tr.Spec.Hostnames = []edgev1alpha1.Hostname{t.host("api")} })
		Eventually(func(g Gomega) []string { return ourCertificate(t.a, "web-tls")(g).Spec.DNSNames }).Should(Equal([]string{"api." + t.domain}))

		// No TLS any more: the Certificate goes, the condition says NoTLS.
		updateRoute(key, func(tr *edgev1alpha1.TenantRoute) { tr.Spec.TLS = nil })
		expectNoCertificate(t.a, "web-tls")
		expectCondition(key, edgev1alpha1.RouteConditionCertificateReady, metav1.ConditionTrue, edgev1alpha1.RouteReasonNoTLS)
	})

	It("is never a second writer: a foreign Certificate wins and is left untouched", func() {
		t := certTenancy()
		key := createRoute(withTLS(t.newRoute(t.a, "web", t.host("www")), "web-tls"))
		Eventually(ourCertificate(t.a, "web-tls")).ShouldNot(BeNil())

		foreign := &cmv1.Certificate{ObjectMeta: metav1.ObjectMeta{Namespace: t.a, Name: "hand-made"},
			Spec: cmv1.CertificateSpec{SecretName: "web-tls", DNSNames: []string{"www." + t.domain},
				IssuerRef: cmmeta.IssuerReference{Name: "other", Kind: "Issuer", Group: "cert-manager.io"}}}
		Expect(k8sClient.Create(ctx, foreign)).To(Succeed())
		expectNoCertificate(t.a, "web-tls")
		expectCondition(key, edgev1alpha1.RouteConditionCertificateReady, metav1.ConditionFalse,
			edgev1alpha1.RouteReasonCertificateManagedExternally, "hand-made", "not Portico's")
		playCertManager(t.a, "hand-made", cmmeta.ConditionTrue, "Ready", "issued by hand")
		expectCondition(key, edgev1alpha1.RouteConditionCertificateReady, metav1.ConditionTrue,
			edgev1alpha1.RouteReasonCertificateManagedExternally, "issued by hand")

		Consistently(func(g Gomega) {
			live := &cmv1.Certificate{}
			g.Expect(k8sClient.Get(ctx, types.NamespacedName{Namespace: t.a, Name: "hand-made"}, live)).To(Succeed())
			g.Expect(live.OwnerReferences).To(BeEmpty())
			g.Expect(live.Labels).To(BeEmpty())
			g.Expect(live.Spec.DNSNames).To(Equal([]string{"www." + t.domain}))
			g.Expect(live.Spec.IssuerRef.Name).To(Equal("other"))
		}).Should(Succeed())

		// Once the other writer leaves, Portico takes over with its own Certificate.
		Expect(k8sClient.Delete(ctx, foreign)).To(Succeed())
		Eventually(ourCertificate(t.a, "web-tls")).ShouldNot(BeNil())
	})

	It("gives two routes sharing a Secret one Certificate, owned by the oldest", func() {
		t := certTenancy()
		old := createRoute(withTLS(t.newRoute(t.a, "old", t.host("one")), "shared-tls"))
		expectAccepted(old)
		young := createRoute(withTLS(t.newRoute(t.a, "young", t.host("two")), "shared-tls"))
		expectAccepted(young)
		Eventually(func(g Gomega) {
			c := ourCertificate(t.a, "shared-tls")(g)
			g.Expect(c.Spec.DNSNames).To(Equal([]string{"one." + t.domain, "two." + t.domain}))
			g.Expect(metav1.GetControllerOf(c).Name).To(Equal("old"))
			g.Expect(c.OwnerReferences).To(HaveLen(2))
		}).Should(Succeed())

		Expect(k8sClient.Delete(ctx, getRoute(old))).To(Succeed())
		Eventually(func(g Gomega) {
			c := ourCertificate(t.a, "shared-tls")(g)
			g.Expect(c.Spec.DNSNames).To(Equal([]string{"two." + t.domain}))
			g.Expect(metav1.GetControllerOf(c).Name).To(Equal("young"))
			g.Expect(c.OwnerReferences).To(HaveLen(1))
		}).Should(Succeed())
	})

	It("leaves an Ingress carrying cert-manager's annotations to its ingress-shim", func() {
		migrationFixture()
		ns := migrationTenantNamespace()
		ensureServices(ns, 80, "web-api")
		ing := sourceExample("tls-ingress.yaml")
		ing.Namespace = ns
		key := createIngress(ing, ns)
		var route types.NamespacedName
		Eventually(func(g Gomega) {
			routes := routesOfIngress(key)
			g.Expect(routes).To(HaveLen(1))
			route = types.NamespacedName{Namespace: ns, Name: routes[0].Name}
		}).Should(Succeed())
		expectCondition(route, edgev1alpha1.RouteConditionCertificateReady, metav1.ConditionFalse,
			edgev1alpha1.RouteReasonCertificateManagedExternally, "ingress-shim")
		expectCondition(route, edgev1alpha1.RouteConditionResolvedRefs, metav1.ConditionTrue, edgev1alpha1.RouteReasonResolvedRefs)
		Consistently(func(g Gomega) {
			var list cmv1.CertificateList
			g.Expect(k8sClient.List(ctx, &list)).To(Succeed())
			for _, c := range list.Items {
				g.Expect(c.Namespace).NotTo(Equal(ns))
			}
		}).Should(Succeed())
	})
})
