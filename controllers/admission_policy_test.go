package controllers

import (
	"path/filepath"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	networkingv1 "k8s.io/api/networking/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	edgev1alpha1 "github.com/portico-dev/portico/api/v1alpha1"
	"github.com/portico-dev/portico/internal/manifest"
	"github.com/portico-dev/portico/internal/testenv"
)

// The shipped ValidatingAdmissionPolicy, installed into the real API server. Its binding is narrowed
// to one labelled namespace so the rest of the suite (which creates such routes on purpose to test
// the operator's own HostnameNotAllowed) is unaffected.
var _ = Describe("config/admission ValidatingAdmissionPolicy", func() {
	It("refuses TenantRoutes and Ingresses whose hosts the EdgeProxy does not allow", func() {
		t := newTenancy()
		objs, err := manifest.ReadDir(filepath.Join(testenv.RepoRoot(), "config", "admission"))
		Expect(err).NotTo(HaveOccurred())
		var policy admissionregistrationv1.ValidatingAdmissionPolicy
		var binding admissionregistrationv1.ValidatingAdmissionPolicyBinding
		for _, o := range objs {
			switch o.GetKind() {
			case "ValidatingAdmissionPolicy":
				Expect(runtime.DefaultUnstructuredConverter.FromUnstructured(o.Object, &policy)).To(Succeed())
			case "ValidatingAdmissionPolicyBinding":
				Expect(runtime.DefaultUnstructuredConverter.FromUnstructured(o.Object, &binding)).To(Succeed())
			}
		}
		Expect(policy.Name).NotTo(BeEmpty())
		Expect(binding.Spec.PolicyName).To(Equal(policy.Name))
		binding.Spec.MatchResources = &admissionregistrationv1.MatchResources{
			NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"portico-policy-test": t.suffix}},
		}
		Expect(k8sClient.Create(ctx, &policy)).To(Succeed())
		DeferCleanup(func() { Expect(client.IgnoreNotFound(k8sClient.Delete(ctx, &policy))).To(Succeed()) })
		Expect(k8sClient.Create(ctx, &binding)).To(Succeed())
		DeferCleanup(func() { Expect(client.IgnoreNotFound(k8sClient.Delete(ctx, &binding))).To(Succeed()) })
		ns := createNamespace(unique("policy"), map[string]string{"portico-policy-test": t.suffix}).Name
		updateEdgeProxy(t.edgeProxy, func(ep *edgev1alpha1.EdgeProxy) {
			ep.Spec.TenantNamespaces.Names = append(ep.Spec.TenantNamespaces.Names, ns)
		})

		By("a TenantRoute with a host outside the allow-list")
		Eventually(func(g Gomega) {
			err := k8sClient.Create(ctx, t.newRoute(ns, "evil", "login.bank.example.org"), client.DryRunAll)
			g.Expect(apierrors.IsInvalid(err)).To(BeTrue(), "want 422 from the policy, got %v", err)
			g.Expect(err.Error()).To(ContainSubstring("spec.hostnames"))
			g.Expect(err.Error()).To(ContainSubstring(t.edgeProxy))
		}).Should(Succeed())

		By("a TenantRoute TLS host outside the allow-list")
		tlsRoute := t.newRoute(ns, "tls", t.host("shop"))
		tlsRoute.Spec.TLS = []edgev1alpha1.RouteTLS{{SecretName: "s", Hosts: []edgev1alpha1.Hostname{"x.example.org"}}}
		Expect(apierrors.IsInvalid(k8sClient.Create(ctx, tlsRoute, client.DryRunAll))).To(BeTrue())

		By("allowed hosts: exact, and one label under a wildcard, any case")
		Expect(k8sClient.Create(ctx, t.newRoute(ns, "ok", t.host("Shop"), edgev1alpha1.Hostname(t.domain)), client.DryRunAll)).To(Succeed())
		Expect(apierrors.IsInvalid(k8sClient.Create(ctx, t.newRoute(ns, "deep", t.host("a.b")), client.DryRunAll))).
			To(BeTrue(), "a wildcard allows one label only")

		By("another EdgeProxy's route is checked against that EdgeProxy only")
		other := t.newRoute(ns, "other", "login.bank.example.org")
		other.Spec.EdgeProxy = "no-such-edgeproxy-" + t.suffix
		Expect(k8sClient.Create(ctx, other, client.DryRunAll)).To(Succeed())

		By("an Ingress of the EdgeProxy's IngressClass")
		ing := &networkingv1.Ingress{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "evil"},
			Spec: networkingv1.IngressSpec{
				IngressClassName: ptr.To(t.edgeProxy),
				Rules:            []networkingv1.IngressRule{{Host: "login.bank.example.org"}},
			},
		}
		err = k8sClient.Create(ctx, ing, client.DryRunAll)
		Expect(apierrors.IsInvalid(err)).To(BeTrue(), "got %v", err)
		Expect(err.Error()).To(ContainSubstring("spec.rules[*].host"))
		ing.Spec.Rules[0].Host = string(t.host("shop"))
		Expect(k8sClient.Create(ctx, ing, client.DryRunAll)).To(Succeed())
		ing.Spec.IngressClassName = ptr.To("someone-else")
		ing.Spec.Rules[0].Host = "login.bank.example.org"
		Expect(k8sClient.Create(ctx, ing, client.DryRunAll)).To(Succeed(), "other IngressClasses are not Portico's business")
	})
})
