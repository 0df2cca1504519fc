package controllers

import (
	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"

	edgev1alpha1 "github.com/portico-dev/portico/api/v1alpha1"
	"github.com/portico-dev/portico/controllers/render"
)

var _ = Describe("EdgeProxy status", func() {
	var (
		ep  *edgev1alpha1.EdgeProxy
		key types.NamespacedName
	)

	BeforeEach(func() {
		name := unique("tenant")
		proxyNS := createNamespace(name+"-edge", nil).Name
		ep = newEdgeProxy(name, proxyNS, []string{name}, edgev1alpha1.Hostname(name+".example.com"))
		Expect(k8sClient.Create(ctx, ep)).To(Succeed())
		key = types.NamespacedName{Namespace: proxyNS, Name: render.ObjectName(ep)}
	})

	// rollOut plays the Deployment controller and kubelet: every desired replica runs the latest
	// template and is ready.
	rollOut := func(ready int32) {
		GinkgoHelper()
		Eventually(func() error {
			dep := &appsv1.Deployment{}
			if err := k8sClient.Get(ctx, key, dep); err != nil {
				return err
			}
			dep.Status = appsv1.DeploymentStatus{
				ObservedGeneration: dep.Generation,
				Replicas:           *dep.Spec.Replicas,
				UpdatedReplicas:    *dep.Spec.Replicas,
				ReadyReplicas:      ready,
				AvailableReplicas:  ready,
			}
			return k8sClient.Status().Update(ctx, dep)
		}).Should(Succeed())
	}

	It("is InProgress (Reconciling) until the proxies are ready, then Current (Ready)", func() {
		Eventually(func(g Gomega) {
			cur := getEdgeProxy(ep.Name)
			g.Expect(cur.Status.ObservedGeneration).To(Equal(cur.Generation))
			g.Expect(cur.Status.Conditions).To(And(
				haveCondition(edgev1alpha1.EdgeProxyConditionReconciling, metav1.ConditionTrue, edgev1alpha1.EdgeProxyReasonProgressing, cur.Generation),
				haveCondition(edgev1alpha1.EdgeProxyConditionReady, metav1.ConditionFalse, edgev1alpha1.EdgeProxyReasonProgressing, cur.Generation),
				haveCondition(edgev1alpha1.EdgeProxyConditionStalled, metav1.ConditionFalse, edgev1alpha1.EdgeProxyReasonProgressing, cur.Generation),
			))
			g.Expect(kstatusOf(cur, "EdgeProxy")).To(Equal(status.InProgressStatus))
		}).Should(Succeed())

		By("one of two replicas ready: still in progress")
		rollOut(1)
		Eventually(func(g Gomega) {
			cur := getEdgeProxy(ep.Name)
			g.Expect(cur.Status.ReadyReplicas).To(BeEquivalentTo(1))
			g.Expect(condition(cur.Status.Conditions, edgev1alpha1.EdgeProxyConditionReconciling).Message).To(Equal("1 of 2 proxy replicas ready"))
			g.Expect(kstatusOf(cur, "EdgeProxy")).To(Equal(status.InProgressStatus))
		}).Should(Succeed())

		By("every replica ready: Current")
		rollOut(2)
		Eventually(func(g Gomega) {
			cur := getEdgeProxy(ep.Name)
			g.Expect(cur.Status.Replicas).To(BeEquivalentTo(2))
			g.Expect(cur.Status.ReadyReplicas).To(BeEquivalentTo(2))
			g.Expect(cur.Status.Conditions).To(And(
				haveCondition(edgev1alpha1.EdgeProxyConditionReady, metav1.ConditionTrue, edgev1alpha1.EdgeProxyReasonAvailable, cur.Generation),
				haveCondition(edgev1alpha1.EdgeProxyConditionReconciling, metav1.ConditionFalse, edgev1alpha1.EdgeProxyReasonAvailable, cur.Generation),
				haveCondition(edgev1alpha1.EdgeProxyConditionStalled, metav1.ConditionFalse, edgev1alpha1.EdgeProxyReasonAvailable, cur.Generation),
			))
			g.Expect(kstatusOf(cur, "EdgeProxy")).To(Equal(status.CurrentStatus))
		}).Should(Succeed())

		By("a new pod template not yet rolled out: in progress again")
		Eventually(func() error {
			cur := getEdgeProxy(ep.Name)
			cur.Spec.Deployment = &edgev1alpha1.ProxyDeploymentSpec{PodAnnotations: map[string]string{"rev": "2"}}
			return k8sClient.Update(ctx, cur)
		}).Should(Succeed())
		Eventually(func(g Gomega) {
			cur := getEdgeProxy(ep.Name)
			g.Expect(cur.Status.Conditions).To(haveCondition(edgev1alpha1.EdgeProxyConditionReconciling, metav1.ConditionTrue,
				edgev1alpha1.EdgeProxyReasonProgressing, cur.Generation))
			g.Expect(kstatusOf(cur, "EdgeProxy")).To(Equal(status.InProgressStatus))
		}).Should(Succeed())
	})

	It("reports the Service's addresses: its cluster IP, then the load balancer's", func() {
		svc := &corev1.Service{}
		Eventually(func() error { return k8sClient.Get(ctx, key, svc) }).Should(Succeed())
		Eventually(func(g Gomega) {
			g.Expect(getEdgeProxy(ep.Name).Status.Addresses).To(ConsistOf(
				edgev1alpha1.EdgeProxyAddress{Type: "IPAddress", Value: svc.Spec.ClusterIP}))
		}).Should(Succeed())

		svc.Status.LoadBalancer.Ingress = []corev1.LoadBalancerIngress{{IP: "203.0.113.10"}, {Hostname: "lb.example.net"}}
		Expect(k8sClient.Status().Update(ctx, svc)).To(Succeed())
		Eventually(func(g Gomega) {
			g.Expect(getEdgeProxy(ep.Name).Status.Addresses).To(Equal([]edgev1alpha1.EdgeProxyAddress{
				{Type: "IPAddress", Value: "203.0.113.10"}, {Type: "Hostname", Value: "lb.example.net"},
			}))
		}).Should(Succeed())
	})

	It("is Stalled (kstatus Failed) when the Deployment exceeds its progress deadline", func() {
		Eventually(func() error {
			dep := &appsv1.Deployment{}
			if err := k8sClient.Get(ctx, key, dep); err != nil {
				return err
			}
			dep.Status = appsv1.DeploymentStatus{
				ObservedGeneration: dep.Generation,
				Replicas:           2,
				UpdatedReplicas:    2,
				Conditions: []appsv1.DeploymentCondition{{
					Type: appsv1.DeploymentProgressing, Status: corev1.ConditionFalse, Reason: "ProgressDeadlineExceeded",
					Message:            `ReplicaSet "x" has timed out progressing.`,
					LastUpdateTime:     metav1.Now(),
					LastTransitionTime: metav1.Now(),
				}},
			}
			return k8sClient.Status().Update(ctx, dep)
		}).Should(Succeed())
		Eventually(func(g Gomega) {
			cur := getEdgeProxy(ep.Name)
			g.Expect(cur.Status.Conditions).To(haveCondition(edgev1alpha1.EdgeProxyConditionStalled, metav1.ConditionTrue,
				edgev1alpha1.EdgeProxyReasonProgressDeadlineExceeded, cur.Generation))
			g.Expect(kstatusOf(cur, "EdgeProxy")).To(Equal(status.FailedStatus))
		}).Should(Succeed())
	})
})

var _ = Describe("EdgeProxy whose proxy namespace does not exist", func() {
	It("is Stalled with ProxyNamespaceNotFound and a Warning Event, and provisions once the namespace appears", func() {
		name := unique("tenant")
		ep := newEdgeProxy(name, name+"-edge", []string{name}, "x.example.com")
		Expect(k8sClient.Create(ctx, ep)).To(Succeed())

		Eventually(func(g Gomega) {
			cur := getEdgeProxy(name)
			g.Expect(cur.Status.Conditions).To(And(
				haveCondition(edgev1alpha1.EdgeProxyConditionStalled, metav1.ConditionTrue, edgev1alpha1.EdgeProxyReasonProxyNamespaceMissing, cur.Generation),
				haveCondition(edgev1alpha1.EdgeProxyConditionReady, metav1.ConditionFalse, edgev1alpha1.EdgeProxyReasonProxyNamespaceMissing, cur.Generation),
				haveCondition(edgev1alpha1.EdgeProxyConditionReconciling, metav1.ConditionFalse, edgev1alpha1.EdgeProxyReasonProxyNamespaceMissing, cur.Generation),
			))
			g.Expect(condition(cur.Status.Conditions, edgev1alpha1.EdgeProxyConditionStalled).Message).To(ContainSubstring("spec.proxyNamespace"))
			g.Expect(kstatusOf(cur, "EdgeProxy")).To(Equal(status.FailedStatus))
		}).Should(Succeed())
		// Events about a cluster-scoped object are recorded in the default namespace.
		Eventually(func() any { return eventsAbout("default", name) }).Should(
			haveEvent(corev1.EventTypeWarning, string(edgev1alpha1.EdgeProxyReasonProxyNamespaceMissing), name+"-edge"))

		createNamespace(name+"-edge", nil)
		Eventually(func() error {
			return k8sClient.Get(ctx, types.NamespacedName{Namespace: name + "-edge", Name: render.ObjectName(ep)}, &appsv1.Deployment{})
		}).Should(Succeed())
		Eventually(func(g Gomega) {
			cur := getEdgeProxy(name)
			g.Expect(cur.Status.Conditions).To(haveCondition(edgev1alpha1.EdgeProxyConditionStalled, metav1.ConditionFalse, edgev1alpha1.EdgeProxyReasonProgressing, 0))
			g.Expect(kstatusOf(cur, "EdgeProxy")).To(Equal(status.InProgressStatus))
		}).Should(Succeed())
	})
})
