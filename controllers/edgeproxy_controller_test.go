package controllers

import (
	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	edgev1alpha1 "github.com/portico-dev/portico/api/v1alpha1"
	"github.com/portico-dev/portico/controllers/render"
)

var _ = Describe("EdgeProxy provisioning", func() {
	var (
		ep  *edgev1alpha1.EdgeProxy
		key types.NamespacedName // of the namespaced children
	)

	BeforeEach(func() {
		name := unique("tenant")
		proxyNS := createNamespace(name+"-edge", nil).Name
		ep = newEdgeProxy(name, proxyNS, []string{name}, edgev1alpha1.Hostname(name+".example.com"))
		Expect(k8sClient.Create(ctx, ep)).To(Succeed())
		key = types.NamespacedName{Namespace: proxyNS, Name: render.ObjectName(ep)}
	})

	// children returns empty objects of every kind the default EdgeProxy gets, with their keys.
	children := func() map[client.Object]types.NamespacedName {
		return map[client.Object]types.NamespacedName{
			&corev1.ServiceAccount{}:        key,
			&appsv1.Deployment{}:            key,
			&corev1.Service{}:               key,
			&policyv1.PodDisruptionBudget{}: key,
			&networkingv1.NetworkPolicy{}:   key,
			&networkingv1.IngressClass{}:    {Name: ep.Name},
		}
	}

	It("creates the whole fleet with the expected key fields", func() {
		dep := &appsv1.Deployment{}
		Eventually(func() error { return k8sClient.Get(ctx, key, dep) }).Should(Succeed())
		Expect(dep.Spec.Replicas).To(HaveValue(BeEquivalentTo(2)))
		Expect(dep.Spec.Strategy.RollingUpdate.MaxUnavailable.IntValue()).To(Equal(0))
		Expect(dep.Spec.Strategy.RollingUpdate.MaxSurge.IntValue()).To(Equal(1))
		pod := dep.Spec.Template.Spec
		Expect(pod.AutomountServiceAccountToken).To(HaveValue(BeFalse()))
		Expect(pod.ServiceAccountName).To(Equal(key.Name))
		Expect(pod.TerminationGracePeriodSeconds).To(HaveValue(BeEquivalentTo(75)))
		Expect(pod.TopologySpreadConstraints).To(HaveLen(2))
		Expect(pod.Volumes).To(ContainElement(HaveField("VolumeSource.Projected.Sources",
			ContainElement(HaveField("ServiceAccountToken.Audience", "portico-operator")))))
		c := pod.Containers[0]
		Expect(c.Image).To(Equal(testOptions.ProxyImage))
		Expect(c.Args).To(Equal([]string{"proxy", "--http-addr=:8080", "--https-addr=:8443", "--admin-addr=:9901"}))
		Expect(c.ReadinessProbe.HTTPGet.Path).To(Equal("/readyz"))
		Expect(c.LivenessProbe.HTTPGet.Path).To(Equal("/healthz"))
		Expect(c.VolumeMounts).To(ContainElement(HaveField("ReadOnly", true)))
		sc := c.SecurityContext
		Expect(sc.RunAsNonRoot).To(HaveValue(BeTrue()))
		Expect(sc.RunAsUser).To(HaveValue(BeEquivalentTo(65532)))
		Expect(sc.ReadOnlyRootFilesystem).To(HaveValue(BeTrue()))
		Expect(sc.AllowPrivilegeEscalation).To(HaveValue(BeFalse()))
		Expect(sc.Capabilities.Drop).To(ConsistOf(corev1.Capability("ALL")))
		Expect(sc.SeccompProfile.Type).To(Equal(corev1.SeccompProfileTypeRuntimeDefault))
		Expect(c.Env).To(ContainElement(HaveField("Name", "GOMEMLIMIT")))

		sa := &corev1.ServiceAccount{}
		Eventually(func() error { return k8sClient.Get(ctx, key, sa) }).Should(Succeed())
		Expect(sa.AutomountServiceAccountToken).To(HaveValue(BeFalse()))

		svc := &corev1.Service{}
		Eventually(func() error { return k8sClient.Get(ctx, key, svc) }).Should(Succeed())
		Expect(svc.Spec.Type).To(Equal(corev1.ServiceTypeLoadBalancer))
		Expect(svc.Spec.Ports).To(ConsistOf(
			And(HaveField("Port", BeEquivalentTo(80)), HaveField("TargetPort.StrVal", "http")),
			And(HaveField("Port", BeEquivalentTo(443)), HaveField("TargetPort.StrVal", "https")),
		))
		Expect(svc.Spec.Selector).To(Equal(dep.Spec.Selector.MatchLabels))

		pdb := &policyv1.PodDisruptionBudget{}
		Eventually(func() error { return k8sClient.Get(ctx, key, pdb) }).Should(Succeed())
		Expect(pdb.Spec.MaxUnavailable.IntValue()).To(Equal(1))

		np := &networkingv1.NetworkPolicy{}
		Eventually(func() error { return k8sClient.Get(ctx, key, np) }).Should(Succeed())
		Expect(np.Spec.PolicyTypes).To(ConsistOf(networkingv1.PolicyTypeIngress, networkingv1.PolicyTypeEgress))
		Expect(np.Spec.PodSelector.MatchLabels).To(Equal(dep.Spec.Selector.MatchLabels))

		ic := &networkingv1.IngressClass{}
		Eventually(func() error { return k8sClient.Get(ctx, types.NamespacedName{Name: ep.Name}, ic) }).Should(Succeed())
		Expect(ic.Spec.Controller).To(Equal(edgev1alpha1.IngressControllerName))
		Expect(ic.Spec.Parameters.Kind).To(Equal("EdgeProxy"))
		Expect(ic.Spec.Parameters.Name).To(Equal(ep.Name))
		Expect(ic.Spec.Parameters.Scope).To(HaveValue(Equal("Cluster")))

		hpa := &autoscalingv2.HorizontalPodAutoscaler{}
		Expect(apierrors.IsNotFound(k8sClient.Get(ctx, key, hpa))).To(BeTrue(), "no HPA without spec.autoscaling")
	})

	It("makes the EdgeProxy the controller of every child, so deletion garbage-collects the fleet", func() {
		ep = getEdgeProxy(ep.Name)
		for obj, k := range children() {
			Eventually(func() error { return k8sClient.Get(ctx, k, obj) }).Should(Succeed(), "%T", obj)
			Expect(obj.GetOwnerReferences()).To(ConsistOf(metav1.OwnerReference{
				APIVersion: "edge.portico.dev/v1alpha1", Kind: "EdgeProxy", Name: ep.Name, UID: ep.UID,
				Controller: ptr.To(true), BlockOwnerDeletion: ptr.To(true),
			}), "%T", obj)
			Expect(obj.GetLabels()).To(HaveKeyWithValue(edgev1alpha1.LabelEdgeProxy, ep.Name))
			Expect(obj.GetManagedFields()).To(ContainElement(And(
				HaveField("Manager", edgev1alpha1.FieldOwner), HaveField("Operation", metav1.ManagedFieldsOperationApply),
			)), "%T is server-side applied by the operator", obj)
		}
	})

	It("repairs drift: a deleted Service comes back, edited replicas are restored", func() {
		svc := &corev1.Service{}
		Eventually(func() error { return k8sClient.Get(ctx, key, svc) }).Should(Succeed())
		oldUID := svc.UID
		Expect(k8sClient.Delete(ctx, svc)).To(Succeed())
		Eventually(func(g Gomega) {
			g.Expect(k8sClient.Get(ctx, key, svc)).To(Succeed())
			g.Expect(svc.UID).NotTo(Equal(oldUID))
		}).Should(Succeed())

		dep := &appsv1.Deployment{}
		Expect(k8sClient.Get(ctx, key, dep)).To(Succeed())
		dep.Spec.Replicas = ptr.To(int32(7))
		dep.Spec.Template.Spec.Containers[0].Image = "attacker.example.com/proxy:latest"
		Expect(k8sClient.Update(ctx, dep, client.FieldOwner("kubectl-edit"))).To(Succeed())
		Eventually(func(g Gomega) {
			g.Expect(k8sClient.Get(ctx, key, dep)).To(Succeed())
			g.Expect(dep.Spec.Replicas).To(HaveValue(BeEquivalentTo(2)))
			g.Expect(dep.Spec.Template.Spec.Containers[0].Image).To(Equal(testOptions.ProxyImage))
		}).Should(Succeed())

		np := &networkingv1.NetworkPolicy{}
		Expect(k8sClient.Get(ctx, key, np)).To(Succeed())
		np.Spec.Egress = nil // "allow nothing" → restored
		np.Spec.Ingress = append(np.Spec.Ingress, networkingv1.NetworkPolicyIngressRule{})
		Expect(k8sClient.Update(ctx, np, client.FieldOwner("kubectl-edit"))).To(Succeed())
		Eventually(func(g Gomega) {
			g.Expect(k8sClient.Get(ctx, key, np)).To(Succeed())
			g.Expect(np.Spec.Egress).NotTo(BeEmpty())
			g.Expect(np.Spec.Ingress).NotTo(ContainElement(networkingv1.NetworkPolicyIngressRule{}))
		}).Should(Succeed())
	})

	It("rolls the Deployment only when the pod template changes", func() {
		dep := &appsv1.Deployment{}
		Eventually(func() error { return k8sClient.Get(ctx, key, dep) }).Should(Succeed())
		gen, template := dep.Generation, dep.Spec.Template.DeepCopy()

		// Unrelated fields: hostnames, tenant namespaces, traffic defaults, replicas.
		Eventually(func() error {
			cur := getEdgeProxy(ep.Name)
			cur.Spec.Hostnames = append(cur.Spec.Hostnames, edgev1alpha1.Hostname("*."+ep.Name+".example.com"))
			cur.Spec.TenantNamespaces.Names = append(cur.Spec.TenantNamespaces.Names, "another-team")
			cur.Spec.Traffic = &edgev1alpha1.TrafficDefaults{TrustedHops: 1}
			return k8sClient.Update(ctx, cur)
		}).Should(Succeed())
		np := &networkingv1.NetworkPolicy{}
		Eventually(func(g Gomega) { // the change was applied (the NetworkPolicy follows tenant namespaces)...
			g.Expect(k8sClient.Get(ctx, key, np)).To(Succeed())
			g.Expect(np.Spec.Egress[0].To[0].NamespaceSelector.MatchExpressions[0].Values).To(ContainElement("another-team"))
			g.Expect(getEdgeProxy(ep.Name).Status.ObservedGeneration).To(Equal(getEdgeProxy(ep.Name).Generation))
		}).Should(Succeed())
		Expect(k8sClient.Get(ctx, key, dep)).To(Succeed()) // ...and the Deployment did not roll.
		Expect(dep.Generation).To(Equal(gen))
		Expect(dep.Spec.Template).To(Equal(*template))

		// A real pod template change rolls it once.
		Eventually(func() error {
			cur := getEdgeProxy(ep.Name)
			cur.Spec.Deployment = &edgev1alpha1.ProxyDeploymentSpec{PriorityClassName: "edge-critical"}
			return k8sClient.Update(ctx, cur)
		}).Should(Succeed())
		Eventually(func(g Gomega) {
			g.Expect(k8sClient.Get(ctx, key, dep)).To(Succeed())
			g.Expect(dep.Spec.Template.Spec.PriorityClassName).To(Equal("edge-critical"))
		}).Should(Succeed())
		Expect(dep.Generation).To(Equal(gen + 1))
		Consistently(func(g Gomega) {
			g.Expect(k8sClient.Get(ctx, key, dep)).To(Succeed())
			g.Expect(dep.Generation).To(Equal(gen + 1))
		}).Should(Succeed(), "re-applying an unchanged fleet must be a no-op")
	})

	It("deletes the PodDisruptionBudget at one replica and the autoscaler when autoscaling is removed", func() {
		pdb := &policyv1.PodDisruptionBudget{}
		Eventually(func() error { return k8sClient.Get(ctx, key, pdb) }).Should(Succeed())
		Eventually(func() error {
			cur := getEdgeProxy(ep.Name)
			cur.Spec.Deployment = &edgev1alpha1.ProxyDeploymentSpec{Replicas: ptr.To(int32(1))}
			return k8sClient.Update(ctx, cur)
		}).Should(Succeed())
		Eventually(func() bool { return apierrors.IsNotFound(k8sClient.Get(ctx, key, pdb)) }).Should(BeTrue())

		Eventually(func() error {
			cur := getEdgeProxy(ep.Name)
			cur.Spec.Deployment = nil
			cur.Spec.Autoscaling = &edgev1alpha1.AutoscalingSpec{MinReplicas: ptr.To(int32(3)), MaxReplicas: 6}
			return k8sClient.Update(ctx, cur)
		}).Should(Succeed())
		hpa := &autoscalingv2.HorizontalPodAutoscaler{}
		Eventually(func() error { return k8sClient.Get(ctx, key, hpa) }).Should(Succeed())
		Expect(hpa.Spec.MinReplicas).To(HaveValue(BeEquivalentTo(3)))
		Expect(hpa.Spec.ScaleTargetRef.Name).To(Equal(key.Name))
		Eventually(func() error { return k8sClient.Get(ctx, key, pdb) }).Should(Succeed())

		Eventually(func() error {
			cur := getEdgeProxy(ep.Name)
			cur.Spec.Autoscaling = nil
			return k8sClient.Update(ctx, cur)
		}).Should(Succeed())
		Eventually(func() bool { return apierrors.IsNotFound(k8sClient.Get(ctx, key, hpa)) }).Should(BeTrue())
	})

	It("renames the IngressClass and removes the old one", func() {
		ic := &networkingv1.IngressClass{}
		Eventually(func() error { return k8sClient.Get(ctx, types.NamespacedName{Name: ep.Name}, ic) }).Should(Succeed())
		newName := unique("class")
		Eventually(func() error {
			cur := getEdgeProxy(ep.Name)
			cur.Spec.IngressClass = &edgev1alpha1.IngressClassSpec{Name: newName, Default: true}
			return k8sClient.Update(ctx, cur)
		}).Should(Succeed())
		Eventually(func(g Gomega) {
			g.Expect(k8sClient.Get(ctx, types.NamespacedName{Name: newName}, ic)).To(Succeed())
			g.Expect(ic.Annotations).To(HaveKeyWithValue(render.AnnotationDefaultIngressClass, "true"))
		}).Should(Succeed())
		Eventually(func() bool {
			return apierrors.IsNotFound(k8sClient.Get(ctx, types.NamespacedName{Name: ep.Name}, &networkingv1.IngressClass{}))
		}).Should(BeTrue())
	})
})

var _ = Describe("EdgeProxy and objects it does not own", func() {
	It("never takes over an existing IngressClass (ingress-nginx's \"nginx\", say)", func() {
		name := unique("tenant")
		proxyNS := createNamespace(name+"-edge", nil).Name
		foreign := &networkingv1.IngressClass{
			ObjectMeta: metav1.ObjectMeta{Name: unique("nginx")},
			Spec:       networkingv1.IngressClassSpec{Controller: "k8s.io/ingress-nginx"},
		}
		Expect(k8sClient.Create(ctx, foreign)).To(Succeed())
		ep := newEdgeProxy(name, proxyNS, []string{name}, "x.example.com")
		ep.Spec.IngressClass = &edgev1alpha1.IngressClassSpec{Name: foreign.Name}
		Expect(k8sClient.Create(ctx, ep)).To(Succeed())

		Eventually(func(g Gomega) {
			cur := getEdgeProxy(name)
			g.Expect(cur.Status.Conditions).To(haveCondition(edgev1alpha1.EdgeProxyConditionStalled, metav1.ConditionTrue,
				edgev1alpha1.EdgeProxyReasonResourceConflict, cur.Generation))
			g.Expect(condition(cur.Status.Conditions, edgev1alpha1.EdgeProxyConditionStalled).Message).To(ContainSubstring(foreign.Name))
		}).Should(Succeed())
		Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(foreign), foreign)).To(Succeed())
		Expect(foreign.Spec.Controller).To(Equal("k8s.io/ingress-nginx"))
		Expect(foreign.OwnerReferences).To(BeEmpty())
		Expect(apierrors.IsNotFound(k8sClient.Get(ctx, types.NamespacedName{Namespace: proxyNS, Name: render.ObjectName(ep)}, &appsv1.Deployment{}))).
			To(BeTrue(), "nothing is applied while a child is foreign")

		By("releasing the name once the foreign class is gone")
		Expect(k8sClient.Delete(ctx, foreign)).To(Succeed())
		Eventually(func(g Gomega) {
			ic := &networkingv1.IngressClass{}
			g.Expect(k8sClient.Get(ctx, types.NamespacedName{Name: foreign.Name}, ic)).To(Succeed())
			g.Expect(ic.Spec.Controller).To(Equal(edgev1alpha1.IngressControllerName))
		}).Should(Succeed())
	})
})
